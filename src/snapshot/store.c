/* The writing side of the checkpoint store: contexts encoded in memory as they are put, the
 * state file written in one go by finish (format.h, docs/checkpoint-format.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "snapshot/crc32c.h"
#include "snapshot/store.h"

/* Remember the first failure: a caller that ignores a put's result still cannot finish. */
static int poison(struct hearth_ckpt_writer *w)
{
	if (w && !w->failed) {
		w->failed = true;
		strncpy(w->first_err, hearth_err_msg(), sizeof(w->first_err) - 1);
	}
	return -1;
}

#define FAIL(w, ...) (hearth_err(__VA_ARGS__), poison(w))

int hearth_ckpt_writer_new(const char *dir, struct hearth_ckpt_writer **out)
{
	struct hearth_ckpt_writer *w;
	struct stat st;

	*out = NULL;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return hearth_err("creating checkpoint directory '%s': %s", dir, strerror(errno));
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return hearth_err("checkpoint directory '%s' is not a directory", dir);
	w = calloc(1, sizeof(*w));
	if (!w || !(w->dir = strdup(dir))) {
		free(w);
		return hearth_err("checkpoint writer: out of memory");
	}
	ckpt_cpu_host(&w->cpu);
	*out = w;
	return 0;
}

void ckpt_writer_set_cpu(struct hearth_ckpt_writer *w, const struct ckpt_cpu *cpu)
{
	w->cpu = *cpu;
}

void hearth_ckpt_writer_free(struct hearth_ckpt_writer *w)
{
	if (!w)
		return;
	for (uint32_t i = 0; i < w->nctx; i++) {
		free(w->ctx[i]->buf);
		free(w->ctx[i]);
	}
	free(w->ctx);
	free(w->dir);
	free(w);
}

int hearth_ckpt_open_ctx(struct hearth_ckpt_writer *w, const char *name, uint32_t version,
			 unsigned flags, struct hearth_ckpt **out)
{
	size_t nlen = strnlen(name, CKPT_NAME_MAX + 1);
	struct hearth_ckpt *ck;

	*out = NULL;
	if (!ckpt_name_valid(name, nlen))
		return FAIL(w,
			    "checkpoint context name '%.*s' is invalid (1..%d characters of "
			    "[A-Za-z0-9_./-])",
			    CKPT_NAME_MAX, name, CKPT_NAME_MAX);
	if (flags & ~CTX_FLAGS_KNOWN)
		return FAIL(w, "checkpoint context '%s': unknown flags 0x%x", name, flags);
	for (uint32_t i = 0; i < w->nctx; i++)
		if (strcmp(w->ctx[i]->name, name) == 0)
			return FAIL(w, "checkpoint context '%s' is written twice", name);
	if (w->nctx >= CKPT_MAX_CONTEXTS)
		return FAIL(w, "checkpoint context '%s': over the limit of %u contexts", name,
			    CKPT_MAX_CONTEXTS);
	if (w->nctx == w->cap) {
		uint32_t cap = w->cap ? w->cap * 2 : 16;
		struct hearth_ckpt **v = realloc(w->ctx, cap * sizeof(*v));
		if (!v)
			return FAIL(w, "checkpoint context '%s': out of memory", name);
		w->ctx = v;
		w->cap = cap;
	}
	ck = calloc(1, sizeof(*ck));
	if (!ck)
		return FAIL(w, "checkpoint context '%s': out of memory", name);
	memcpy(ck->name, name, nlen + 1);
	ck->version = version;
	ck->flags = flags;
	ck->writing = true;
	ck->open = true;
	ck->w = w;
	w->ctx[w->nctx++] = ck;
	*out = ck;
	return 0;
}

int hearth_ckpt_set_version(struct hearth_ckpt *ck, uint32_t version)
{
	if (!ck->writing)
		return hearth_err("checkpoint context '%s' is being read: its version is fixed",
				  ck->name);
	if (!ck->open)
		return FAIL(ck->w, "checkpoint context '%s' is closed", ck->name);
	ck->version = version;
	return 0;
}

static int put(struct hearth_ckpt *ck, const char *key, uint8_t type, bool opt, const void *val,
	       size_t len)
{
	size_t klen = strnlen(key, CKPT_NAME_MAX + 1), need;
	struct hearth_ckpt_writer *w = ck->w;
	uint8_t *p;

	if (!ck->writing)
		return hearth_err("checkpoint context '%s' is being read: cannot write key '%.*s'",
				  ck->name, CKPT_NAME_MAX, key);
	if (!ck->open)
		return FAIL(w, "checkpoint context '%s' is closed: cannot write key '%.*s'",
			    ck->name, CKPT_NAME_MAX, key);
	if (!ckpt_name_valid(key, klen))
		return FAIL(w,
			    "checkpoint context '%s': key '%.*s' is invalid (1..%d characters "
			    "of [A-Za-z0-9_./-])",
			    ck->name, CKPT_NAME_MAX, key, CKPT_NAME_MAX);
	if (ck->nfields_put >= CKPT_MAX_FIELDS)
		return FAIL(w, "checkpoint context '%s', key '%s': over the limit of %u fields",
			    ck->name, key, CKPT_MAX_FIELDS);
	need = FIELD_FIXED_LEN + klen + len;
	if (len > CKPT_MAX_FILE || ck->len + need > CKPT_MAX_FILE)
		return FAIL(w,
			    "checkpoint context '%s', key '%s': %zu bytes would make the state "
			    "file larger than %llu bytes",
			    ck->name, key, len, (unsigned long long)CKPT_MAX_FILE);
	if (ck->len + need > ck->cap) {
		size_t cap = ck->cap ? ck->cap : 256;
		while (cap < ck->len + need)
			cap *= 2;
		p = realloc(ck->buf, cap);
		if (!p)
			return FAIL(w, "checkpoint context '%s', key '%s': out of memory", ck->name,
				    key);
		ck->buf = p;
		ck->cap = cap;
	}
	p = ck->buf + ck->len;
	*p++ = (uint8_t)klen;
	memcpy(p, key, klen);
	p += klen;
	*p++ = type;
	*p++ = opt ? FIELD_FLAG_OPTIONAL : 0;
	le_put32(p, (uint32_t)len);
	p += 4;
	if (len)
		memcpy(p, val, len);
	ck->len += need;
	ck->nfields_put++;
	return 0;
}

#define PUT_SCALAR(suffix, ctype, tag, bytes)                                                      \
	int hearth_ckpt_put_##suffix(struct hearth_ckpt *ck, const char *key, ctype v)             \
	{                                                                                          \
		uint8_t b[8];                                                                      \
		le_put64(b, (uint64_t)v);                                                          \
		return put(ck, key, tag, false, b, bytes);                                         \
	}                                                                                          \
	int hearth_ckpt_put_##suffix##_opt(struct hearth_ckpt *ck, const char *key, ctype v)       \
	{                                                                                          \
		uint8_t b[8];                                                                      \
		le_put64(b, (uint64_t)v);                                                          \
		return put(ck, key, tag, true, b, bytes);                                          \
	}

PUT_SCALAR(u8, uint8_t, CKPT_T_U8, 1)
PUT_SCALAR(u16, uint16_t, CKPT_T_U16, 2)
PUT_SCALAR(u32, uint32_t, CKPT_T_U32, 4)
PUT_SCALAR(u64, uint64_t, CKPT_T_U64, 8)
PUT_SCALAR(bool, bool, CKPT_T_BOOL, 1)

int hearth_ckpt_put_bytes(struct hearth_ckpt *ck, const char *key, const void *p, size_t len)
{
	return put(ck, key, CKPT_T_BYTES, false, p, len);
}

int hearth_ckpt_put_bytes_opt(struct hearth_ckpt *ck, const char *key, const void *p, size_t len)
{
	return put(ck, key, CKPT_T_BYTES, true, p, len);
}

int hearth_ckpt_put_str(struct hearth_ckpt *ck, const char *key, const char *s)
{
	return put(ck, key, CKPT_T_STR, false, s, strlen(s));
}

int hearth_ckpt_put_str_opt(struct hearth_ckpt *ck, const char *key, const char *s)
{
	return put(ck, key, CKPT_T_STR, true, s, strlen(s));
}

/* Arrays are encoded element by element so the file is little-endian on any host. */
static int put_array(struct hearth_ckpt *ck, const char *key, uint8_t type, bool opt, const void *v,
		     size_t n, unsigned esize)
{
	uint8_t *tmp;
	int ret;

	if (n > CKPT_MAX_FILE / esize)
		return FAIL(ck->w,
			    "checkpoint context '%s', key '%s': %zu elements would make the "
			    "state file larger than %llu bytes",
			    ck->name, key, n, (unsigned long long)CKPT_MAX_FILE);
	tmp = malloc(n * esize + 1);
	if (!tmp)
		return FAIL(ck->w, "checkpoint context '%s', key '%s': out of memory", ck->name,
			    key);
	for (size_t i = 0; i < n; i++) {
		if (esize == 4)
			le_put32(tmp + 4 * i, ((const uint32_t *)v)[i]);
		else
			le_put64(tmp + 8 * i, ((const uint64_t *)v)[i]);
	}
	ret = put(ck, key, type, opt, tmp, n * esize);
	free(tmp);
	return ret;
}

int hearth_ckpt_put_u32_array(struct hearth_ckpt *ck, const char *key, const uint32_t *v, size_t n)
{
	return put_array(ck, key, CKPT_T_U32_ARRAY, false, v, n, 4);
}

int hearth_ckpt_put_u32_array_opt(struct hearth_ckpt *ck, const char *key, const uint32_t *v,
				  size_t n)
{
	return put_array(ck, key, CKPT_T_U32_ARRAY, true, v, n, 4);
}

int hearth_ckpt_put_u64_array(struct hearth_ckpt *ck, const char *key, const uint64_t *v, size_t n)
{
	return put_array(ck, key, CKPT_T_U64_ARRAY, false, v, n, 8);
}

int hearth_ckpt_put_u64_array_opt(struct hearth_ckpt *ck, const char *key, const uint64_t *v,
				  size_t n)
{
	return put_array(ck, key, CKPT_T_U64_ARRAY, true, v, n, 8);
}

/* Sealing a context runs the reader's field checks over it: what the writer produces is what
 * the reader accepts, and a duplicate key is caught here, naming it. */
static int writer_close(struct hearth_ckpt *ck)
{
	struct ckpt_field *tmp;
	uint32_t n;
	int ret;

	if (!ck->open)
		return FAIL(ck->w, "checkpoint context '%s' is closed twice", ck->name);
	ck->open = false;
	tmp = malloc((ck->nfields_put + 1) * sizeof(*tmp));
	if (!tmp)
		return FAIL(ck->w, "checkpoint context '%s': out of memory", ck->name);
	ret = ckpt_fields_index(ck->name, ck->buf, ck->len, tmp, ck->nfields_put, &n);
	free(tmp);
	return ret ? poison(ck->w) : 0;
}

int hearth_ckpt_close_ctx(struct hearth_ckpt *ck)
{
	return ck->writing ? writer_close(ck) : ckpt_reader_close(ck);
}

const char *hearth_ckpt_name(const struct hearth_ckpt *ck)
{
	return ck->name;
}

uint32_t hearth_ckpt_version(const struct hearth_ckpt *ck)
{
	return ck->version;
}

/* The record header of a context (everything before the payload), CRC filled in. */
static size_t ctx_header(const struct hearth_ckpt *ck, uint8_t *out)
{
	size_t nlen = strlen(ck->name);
	uint8_t *p = out;

	*p++ = (uint8_t)nlen;
	memcpy(p, ck->name, nlen);
	p += nlen;
	le_put32(p, ck->version);
	le_put32(p + 4, ck->flags);
	le_put64(p + 8, ck->len);
	p += 16;
	le_put32(p, crc32c(crc32c(0, out, (size_t)(p - out)), ck->buf, ck->len));
	return (size_t)(p - out) + 4;
}

static void encode_header(const struct hearth_ckpt_writer *w, uint64_t size, uint8_t *h)
{
	memset(h, 0, HDR_V1_LEN);
	memcpy(h + HDR_MAGIC, CKPT_MAGIC, CKPT_MAGIC_LEN);
	le_put32(h + HDR_VERSION, CKPT_FORMAT_VERSION);
	le_put32(h + HDR_LEN, HDR_V1_LEN);
	le_put32(h + HDR_FLAGS, 0);
	le_put32(h + HDR_NCTX, w->nctx);
	le_put64(h + HDR_FILE_SIZE, size);
	memcpy(h + HDR_CPU_VENDOR, w->cpu.vendor, 12);
	le_put32(h + HDR_CPU_FAMILY, w->cpu.family);
	le_put32(h + HDR_CPU_MODEL, w->cpu.model);
	le_put32(h + HDR_CPU_STEPPING, w->cpu.stepping);
	for (int i = 0; i < CKPT_CPU_NFEAT; i++)
		le_put32(h + HDR_CPU_FEAT + 4 * i, w->cpu.feat[i]);
	le_put32(h + HDR_CRC, crc32c(0, h, HDR_CRC));
}

struct finish_job {
	const struct hearth_ckpt_writer *w;
	uint64_t size;
};

static int write_state(int fd, void *opaque)
{
	const struct finish_job *job = opaque;
	uint8_t hdr[HDR_V1_LEN], rec[CTX_FIXED_LEN + CKPT_NAME_MAX];

	encode_header(job->w, job->size, hdr);
	if (ckpt_write_all(fd, hdr, sizeof(hdr), "the header"))
		return -1;
	for (uint32_t i = 0; i < job->w->nctx; i++) {
		const struct hearth_ckpt *ck = job->w->ctx[i];
		size_t n = ctx_header(ck, rec);
		if (ckpt_write_all(fd, rec, n, ck->name) ||
		    ckpt_write_all(fd, ck->buf, ck->len, ck->name))
			return -1;
	}
	return 0;
}

int hearth_ckpt_writer_finish(struct hearth_ckpt_writer *w)
{
	struct finish_job job = {w, HDR_V1_LEN};

	if (w->failed)
		return hearth_err("checkpoint not written: %s", w->first_err);
	for (uint32_t i = 0; i < w->nctx; i++) {
		const struct hearth_ckpt *ck = w->ctx[i];
		if (ck->open)
			return hearth_err("checkpoint not written: context '%s' is still open",
					  ck->name);
		job.size += CTX_FIXED_LEN + strlen(ck->name) + ck->len;
		if (job.size > CKPT_MAX_FILE)
			return hearth_err(
				"checkpoint not written: with context '%s' the state file "
				"is over %llu bytes",
				ck->name, (unsigned long long)CKPT_MAX_FILE);
	}
	return ckpt_write_file_atomic(w->dir, CKPT_STATE_FILE, write_state, &job);
}
