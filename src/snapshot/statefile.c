/* The reading side of the checkpoint store: a state file is validated completely (header,
 * host CPU, every context's length and CRC32C, every field's length and type, unique names)
 * before any of it is handed out. The file may be hostile: every length is checked against
 * what is left before it is used, and allocations are bounded by the file's size. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/crc32c.h"
#include "snapshot/store.h"

bool ckpt_name_valid(const char *s, size_t len)
{
	if (len < 1 || len > CKPT_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '/' || c == '-'))
			return false;
	}
	return true;
}

const char *ckpt_type_name(unsigned type)
{
	static const char *const names[] = {
		[CKPT_T_U8] = "u8",
		[CKPT_T_U16] = "u16",
		[CKPT_T_U32] = "u32",
		[CKPT_T_U64] = "u64",
		[CKPT_T_BOOL] = "bool",
		[CKPT_T_BYTES] = "bytes",
		[CKPT_T_STR] = "string",
		[CKPT_T_U32_ARRAY] = "u32 array",
		[CKPT_T_U64_ARRAY] = "u64 array",
	};
	return type >= 1 && type <= CKPT_T_MAX ? names[type] : "unknown type";
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

static int field_cmp(const void *a, const void *b)
{
	const struct ckpt_field *x = a, *y = b;
	return key_cmp(x->key, x->key_len, y->key, y->key_len);
}

uint32_t ckpt_fields_count(const uint8_t *p, uint64_t len)
{
	uint64_t off = 0;
	uint32_t n = 0;

	while (off < len) {
		uint64_t rem = len - off;
		if (++n > CKPT_MAX_FIELDS)
			return UINT32_MAX;
		if (rem < FIELD_FIXED_LEN || rem < (uint64_t)FIELD_FIXED_LEN + p[off])
			break; /* the index refuses it */
		off += FIELD_FIXED_LEN + p[off] + (uint64_t)le_get32(p + off + 3 + p[off]);
	}
	return n;
}

/* The value must have the size its type says; bools are 0 or 1, strings hold no NUL. */
static const char *value_problem(unsigned type, const uint8_t *v, uint32_t len)
{
	static const uint8_t fixed[] = {[CKPT_T_U8] = 1,
					[CKPT_T_U16] = 2,
					[CKPT_T_U32] = 4,
					[CKPT_T_U64] = 8,
					[CKPT_T_BOOL] = 1};

	switch (type) {
	case CKPT_T_U8:
	case CKPT_T_U16:
	case CKPT_T_U32:
	case CKPT_T_U64:
	case CKPT_T_BOOL:
		if (len != fixed[type])
			return "wrong length for its type";
		if (type == CKPT_T_BOOL && v[0] > 1)
			return "a bool that is neither 0 nor 1";
		return NULL;
	case CKPT_T_STR:
		return memchr(v, 0, len) ? "a string with a NUL byte" : NULL;
	case CKPT_T_U32_ARRAY:
		return len % 4 ? "a u32 array whose length is not a multiple of 4" : NULL;
	case CKPT_T_U64_ARRAY:
		return len % 8 ? "a u64 array whose length is not a multiple of 8" : NULL;
	default:
		return NULL;
	}
}

int ckpt_fields_index(const char *ctx, const uint8_t *p, uint64_t len, struct ckpt_field *fields,
		      uint32_t max, uint32_t *n)
{
	uint64_t off = 0;
	uint32_t k = 0;

	*n = 0;
	while (off < len) {
		uint64_t rem = len - off;
		const uint8_t *f = p + off;
		struct ckpt_field fl;
		const char *bad;

		if (rem < FIELD_FIXED_LEN || rem < (uint64_t)FIELD_FIXED_LEN + f[0])
			return hearth_err(
				"checkpoint context '%s': field at payload offset %llu is "
				"truncated",
				ctx, (unsigned long long)off);
		fl.key_len = f[0];
		fl.key = (const char *)f + 1;
		if (!ckpt_name_valid(fl.key, fl.key_len))
			return hearth_err("checkpoint context '%s': field at payload offset %llu "
					  "has an invalid key",
					  ctx, (unsigned long long)off);
		fl.type = f[1 + fl.key_len];
		fl.flags = f[2 + fl.key_len];
		fl.len = le_get32(f + 3 + fl.key_len);
		fl.val = f + FIELD_FIXED_LEN + fl.key_len;
		fl.used = false;
		if (fl.len > rem - FIELD_FIXED_LEN - fl.key_len)
			return hearth_err("checkpoint context '%s', key '%.*s': value of %u bytes "
					  "runs past the end of the context",
					  ctx, fl.key_len, fl.key, fl.len);
		if (fl.flags & ~FIELD_FLAGS_KNOWN)
			return hearth_err(
				"checkpoint context '%s', key '%.*s': unknown field flags "
				"0x%x",
				ctx, fl.key_len, fl.key, fl.flags);
		if ((fl.type < 1 || fl.type > CKPT_T_MAX) && !(fl.flags & FIELD_FLAG_OPTIONAL))
			return hearth_err("checkpoint context '%s', key '%.*s': required field of "
					  "unknown type %u (written by a newer hearth?)",
					  ctx, fl.key_len, fl.key, fl.type);
		if ((bad = value_problem(fl.type, fl.val, fl.len)))
			return hearth_err("checkpoint context '%s', key '%.*s': %s (%s, %u bytes)",
					  ctx, fl.key_len, fl.key, bad, ckpt_type_name(fl.type),
					  fl.len);
		if (k >= max)
			return hearth_err("checkpoint context '%s': more than %u fields", ctx, max);
		fields[k++] = fl;
		off += FIELD_FIXED_LEN + fl.key_len + (uint64_t)fl.len;
	}
	qsort(fields, k, sizeof(*fields), field_cmp);
	for (uint32_t i = 1; i < k; i++)
		if (field_cmp(&fields[i - 1], &fields[i]) == 0)
			return hearth_err("checkpoint context '%s': key '%.*s' appears twice", ctx,
					  fields[i].key_len, fields[i].key);
	*n = k;
	return 0;
}

static int ctx_cmp(const void *a, const void *b)
{
	const struct hearth_ckpt *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

void hearth_ckpt_reader_free(struct hearth_ckpt_reader *r)
{
	if (!r)
		return;
	free(r->ctx);
	free(r->by_name);
	free(r->fields);
	free(r->owned);
	free(r);
}

static void decode_cpu(const uint8_t *h, struct ckpt_cpu *cpu)
{
	memcpy(cpu->vendor, h + HDR_CPU_VENDOR, 12);
	cpu->family = le_get32(h + HDR_CPU_FAMILY);
	cpu->model = le_get32(h + HDR_CPU_MODEL);
	cpu->stepping = le_get32(h + HDR_CPU_STEPPING);
	for (int i = 0; i < CKPT_CPU_NFEAT; i++)
		cpu->feat[i] = le_get32(h + HDR_CPU_FEAT + 4 * i);
}

/* Magic, header length, header CRC, format version, flags, file size; *hlen on success. */
static int check_header(const uint8_t *buf, size_t len, uint32_t *hlen_out)
{
	uint32_t version, hlen, crc;

	if (len >= CKPT_MAGIC_LEN && memcmp(buf, CKPT_MAGIC, CKPT_MAGIC_LEN) != 0)
		return hearth_err("not a hearth checkpoint state file (bad magic)");
	if (len < HDR_LEN + 4)
		return hearth_err("state file truncated: %zu bytes is shorter than its header",
				  len);
	version = le_get32(buf + HDR_VERSION);
	hlen = le_get32(buf + HDR_LEN);
	/* every version keeps magic, version and length first and the CRC last */
	if (hlen < HDR_LEN + 8 || hlen > CKPT_HEADER_MAX || hlen % 4)
		return hearth_err("state file header length %u is invalid", hlen);
	if (len < hlen)
		return hearth_err("state file truncated: %zu bytes is shorter than its %u-byte "
				  "header",
				  len, hlen);
	crc = crc32c(0, buf, hlen - 4);
	if (crc != le_get32(buf + hlen - 4))
		return hearth_err("state file header is damaged (checksum 0x%08x, computed 0x%08x)",
				  le_get32(buf + hlen - 4), crc);
	if (version > CKPT_FORMAT_VERSION)
		return hearth_err("checkpoint format version %u is newer than this hearth reads "
				  "(versions %u..%u)",
				  version, CKPT_FORMAT_MIN, CKPT_FORMAT_VERSION);
	if (version < CKPT_FORMAT_MIN)
		return hearth_err("checkpoint format version %u is not supported (versions %u..%u)",
				  version, CKPT_FORMAT_MIN, CKPT_FORMAT_VERSION);
	/* version 1 fields; a longer header of the same version carries only extensions an
	 * older reader may ignore */
	if (hlen < HDR_V1_LEN)
		return hearth_err("state file header length %u is shorter than format version %u "
				  "needs (%u)",
				  hlen, version, HDR_V1_LEN);
	if (le_get32(buf + HDR_FLAGS))
		return hearth_err("state file has unknown header flags 0x%x",
				  le_get32(buf + HDR_FLAGS));
	if (le_get64(buf + HDR_FILE_SIZE) != len)
		return hearth_err("state file is %zu bytes but its header says %llu: truncated or "
				  "appended to",
				  len, (unsigned long long)le_get64(buf + HDR_FILE_SIZE));
	if (len > CKPT_MAX_FILE)
		return hearth_err("state file of %zu bytes is over the limit of %llu", len,
				  (unsigned long long)CKPT_MAX_FILE);
	*hlen_out = hlen;
	return 0;
}

/* Walk the context records: lengths, names, flags and CRCs; counts each one's fields. */
static int check_contexts(struct hearth_ckpt_reader *r, const uint8_t *buf, size_t len, size_t off,
			  uint64_t *total_fields)
{
	*total_fields = 0;
	for (uint32_t i = 0; i < r->nctx; i++) {
		struct hearth_ckpt *ck = &r->ctx[i];
		size_t rem = len - off, nlen;
		const uint8_t *rec = buf + off, *p;
		uint32_t stored, crc;

		if (rem < CTX_FIXED_LEN + 1 || rem < CTX_FIXED_LEN + (size_t)rec[0])
			return hearth_err("state file truncated: context %u of %u at offset %zu", i,
					  r->nctx, off);
		nlen = rec[0];
		if (!ckpt_name_valid((const char *)rec + 1, nlen))
			return hearth_err("state file context %u at offset %zu has an invalid name",
					  i, off);
		memcpy(ck->name, rec + 1, nlen);
		ck->name[nlen] = 0;
		p = rec + 1 + nlen;
		ck->version = le_get32(p);
		ck->flags = le_get32(p + 4);
		ck->payload_len = le_get64(p + 8);
		stored = le_get32(p + 16);
		ck->payload = p + 20;
		ck->r = r;
		if (ck->payload_len > rem - CTX_FIXED_LEN - nlen)
			return hearth_err(
				"checkpoint context '%s': payload of %llu bytes runs past "
				"the end of the file",
				ck->name, (unsigned long long)ck->payload_len);
		crc = crc32c(crc32c(0, rec, CTX_FIXED_LEN - 4 + nlen), ck->payload,
			     ck->payload_len);
		if (crc != stored)
			return hearth_err("checkpoint context '%s' is damaged (checksum 0x%08x, "
					  "computed 0x%08x)",
					  ck->name, stored, crc);
		if (ck->flags & ~CTX_FLAGS_KNOWN)
			return hearth_err("checkpoint context '%s' has unknown flags 0x%x",
					  ck->name, ck->flags);
		ck->nfields = ckpt_fields_count(ck->payload, ck->payload_len);
		if (ck->nfields == UINT32_MAX)
			return hearth_err("checkpoint context '%s' has more than %u fields",
					  ck->name, CKPT_MAX_FIELDS);
		*total_fields += ck->nfields;
		if (*total_fields > CKPT_MAX_TOTAL_FIELDS)
			return hearth_err("state file has more than %u fields",
					  CKPT_MAX_TOTAL_FIELDS);
		off += CTX_FIXED_LEN + nlen + ck->payload_len;
	}
	if (off != len)
		return hearth_err("state file has %zu stray bytes after its last context",
				  len - off);
	return 0;
}

int statefile_parse(const uint8_t *buf, size_t len, const struct ckpt_cpu *host,
		    struct hearth_ckpt_reader **out)
{
	struct hearth_ckpt_reader *r;
	struct ckpt_cpu here;
	uint64_t total;
	uint32_t hlen = 0, nctx;
	struct ckpt_field *next;

	*out = NULL;
	if (check_header(buf, len, &hlen))
		return -1;
	nctx = le_get32(buf + HDR_NCTX);
	if (nctx > CKPT_MAX_CONTEXTS || nctx > (len - hlen) / (CTX_FIXED_LEN + 1))
		return hearth_err("state file claims %u contexts: more than %s", nctx,
				  nctx > CKPT_MAX_CONTEXTS ? "the limit" : "its size can hold");
	r = calloc(1, sizeof(*r));
	if (!r)
		return hearth_err("reading checkpoint: out of memory");
	r->format_version = le_get32(buf + HDR_VERSION);
	decode_cpu(buf, &r->cpu);
	if (!host) {
		ckpt_cpu_host(&here);
		host = &here;
	}
	if (ckpt_cpu_check(&r->cpu, host))
		goto fail;
	r->nctx = nctx;
	r->ctx = calloc(nctx + 1, sizeof(*r->ctx));
	r->by_name = calloc(nctx + 1, sizeof(*r->by_name));
	if (!r->ctx || !r->by_name) {
		hearth_err("reading checkpoint: out of memory");
		goto fail;
	}
	if (check_contexts(r, buf, len, hlen, &total))
		goto fail;
	r->fields = calloc(total + 1, sizeof(*r->fields));
	if (!r->fields) {
		hearth_err("reading checkpoint: out of memory");
		goto fail;
	}
	next = r->fields;
	for (uint32_t i = 0; i < nctx; i++) {
		struct hearth_ckpt *ck = &r->ctx[i];
		if (ckpt_fields_index(ck->name, ck->payload, ck->payload_len, next, ck->nfields,
				      &ck->nfields))
			goto fail;
		ck->fields = next;
		next += ck->nfields;
		r->by_name[i] = ck;
	}
	qsort(r->by_name, nctx, sizeof(*r->by_name), ctx_cmp);
	for (uint32_t i = 1; i < nctx; i++)
		if (strcmp(r->by_name[i - 1]->name, r->by_name[i]->name) == 0) {
			hearth_err("checkpoint context '%s' appears twice", r->by_name[i]->name);
			goto fail;
		}
	*out = r;
	return 0;
fail:
	hearth_ckpt_reader_free(r);
	return -1;
}

void statefile_fixup(uint8_t *buf, size_t len)
{
	uint32_t hlen;
	size_t off;

	if (len < HDR_LEN + 4)
		return;
	hlen = le_get32(buf + HDR_LEN);
	if (hlen < HDR_LEN + 8 || hlen > len || hlen % 4)
		return;
	if (hlen >= HDR_FILE_SIZE + 12)
		le_put64(buf + HDR_FILE_SIZE, len);
	le_put32(buf + hlen - 4, crc32c(0, buf, hlen - 4));
	for (off = hlen; off < len;) {
		size_t rem = len - off, nlen = buf[off];
		uint64_t plen;
		uint8_t *crcp;
		if (rem < CTX_FIXED_LEN + nlen)
			return;
		crcp = buf + off + 1 + nlen + 16;
		plen = le_get64(crcp - 8);
		if (plen > rem - CTX_FIXED_LEN - nlen)
			return;
		le_put32(crcp,
			 crc32c(crc32c(0, buf + off, CTX_FIXED_LEN - 4 + nlen), crcp + 4, plen));
		off += CTX_FIXED_LEN + nlen + plen;
	}
}

int hearth_ckpt_reader_open(const char *dir, struct hearth_ckpt_reader **out)
{
	struct hearth_ckpt_reader *r;
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd;

	*out = NULL;
	fd = openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return hearth_err("checkpoint '%s': %s", dir, strerror(errno));
	{
		int dfd = fd;
		/* non-blocking: a FIFO planted as the state file must not hang the restore */
		fd = openat(dfd, CKPT_STATE_FILE, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		close(dfd);
	}
	if (fd < 0)
		return hearth_err("checkpoint '%s': state file: %s", dir, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return hearth_err("checkpoint '%s': state file is not a regular file", dir);
	}
	if ((uint64_t)st.st_size > CKPT_MAX_FILE) {
		close(fd);
		return hearth_err("checkpoint '%s': state file of %lld bytes is over the limit of "
				  "%llu",
				  dir, (long long)st.st_size, (unsigned long long)CKPT_MAX_FILE);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return hearth_err("checkpoint '%s': out of memory", dir);
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			hearth_err("checkpoint '%s': reading state file: %s", dir,
				   n ? strerror(errno) : "file shrank");
			close(fd);
			free(buf);
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	if (statefile_parse(buf, got, NULL, &r)) {
		free(buf);
		return hearth_err_prefix("checkpoint '%s'", dir);
	}
	r->owned = buf;
	*out = r;
	return 0;
}

static struct hearth_ckpt *lookup_ctx(struct hearth_ckpt_reader *r, const char *name)
{
	size_t lo = 0, hi = r->nctx;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, r->by_name[mid]->name);
		if (c == 0)
			return r->by_name[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int check_version(struct hearth_ckpt *ck, uint32_t min, uint32_t max)
{
	if (ck->version < min || ck->version > max)
		return hearth_err("checkpoint context '%s' has version %u, this hearth reads "
				  "versions %u..%u (%s)",
				  ck->name, ck->version, min, max,
				  ck->version < min ? "too old" : "written by a newer hearth?");
	ck->version_ok = true;
	return 0;
}

int hearth_ckpt_find_ctx(struct hearth_ckpt_reader *r, const char *name, uint32_t min_version,
			 uint32_t max_version, struct hearth_ckpt **out)
{
	struct hearth_ckpt *ck = lookup_ctx(r, name);

	*out = NULL;
	if (!ck)
		return hearth_err("checkpoint has no context '%s'", name);
	ck->taken = true;
	if (check_version(ck, min_version, max_version))
		return -1;
	*out = ck;
	return 0;
}

int hearth_ckpt_accept_versions(struct hearth_ckpt *ck, uint32_t min_version, uint32_t max_version)
{
	if (ck->writing)
		return hearth_err("checkpoint context '%s' is being written: no version to accept",
				  ck->name);
	return check_version(ck, min_version, max_version);
}

uint32_t ckpt_reader_count(const struct hearth_ckpt_reader *r)
{
	return r->nctx;
}

struct hearth_ckpt *ckpt_reader_at(struct hearth_ckpt_reader *r, uint32_t i)
{
	return i < r->nctx ? &r->ctx[i] : NULL;
}

struct hearth_ckpt *ckpt_reader_take(struct hearth_ckpt_reader *r, const char *name)
{
	struct hearth_ckpt *ck = lookup_ctx(r, name);

	if (ck)
		ck->taken = true;
	return ck;
}

int ckpt_reader_close(struct hearth_ckpt *ck)
{
	for (uint32_t i = 0; i < ck->nfields; i++) {
		const struct ckpt_field *f = &ck->fields[i];
		if (!f->used && !(f->flags & FIELD_FLAG_OPTIONAL))
			return hearth_err("checkpoint context '%s': unknown required field '%.*s' "
					  "(%s, version %u): written by a newer hearth?",
					  ck->name, f->key_len, f->key, ckpt_type_name(f->type),
					  ck->version);
	}
	return 0;
}

int hearth_ckpt_reader_check_all_consumed(struct hearth_ckpt_reader *r)
{
	for (uint32_t i = 0; i < r->nctx; i++) {
		struct hearth_ckpt *ck = &r->ctx[i];
		if (!ck->taken && !(ck->flags & CTX_FLAG_OPTIONAL))
			return hearth_err(
				"checkpoint context '%s' is required but nothing restores "
				"it (written by a newer hearth, or for another machine?)",
				ck->name);
		if (ck->taken && ckpt_reader_close(ck))
			return -1;
	}
	return 0;
}

static struct ckpt_field *lookup_field(const struct hearth_ckpt *ck, const char *key)
{
	size_t klen = strnlen(key, CKPT_NAME_MAX + 1), lo = 0, hi = ck->nfields;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct ckpt_field *f = &ck->fields[mid];
		int c = key_cmp(key, klen, f->key, f->key_len);
		if (c == 0)
			return &ck->fields[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

bool hearth_ckpt_has(const struct hearth_ckpt *ck, const char *key)
{
	return !ck->writing && lookup_field(ck, key) != NULL;
}

/* The field of this type, or NULL with 0 when optional and absent. Marks it read. */
static int get_field(struct hearth_ckpt *ck, const char *key, unsigned type, bool opt,
		     struct ckpt_field **out)
{
	struct ckpt_field *f;

	*out = NULL;
	if (ck->writing)
		return hearth_err("checkpoint context '%s' is being written: cannot read key '%s'",
				  ck->name, key);
	if (!ck->version_ok)
		return hearth_err("checkpoint context '%s': key '%s' read before the context "
				  "version %u was accepted",
				  ck->name, key, ck->version);
	f = lookup_field(ck, key);
	if (!f)
		return opt ? 0
			   : hearth_err("checkpoint context '%s' (version %u): missing key '%s'",
					ck->name, ck->version, key);
	if (f->type != type)
		return hearth_err("checkpoint context '%s', key '%s': is %s (%u bytes), expected "
				  "%s",
				  ck->name, key, ckpt_type_name(f->type), f->len,
				  ckpt_type_name(type));
	f->used = true;
	*out = f;
	return 0;
}

#define GET_SCALAR(suffix, ctype, tag, decode)                                                     \
	int hearth_ckpt_get_##suffix(struct hearth_ckpt *ck, const char *key, ctype *v)            \
	{                                                                                          \
		struct ckpt_field *f;                                                              \
		if (get_field(ck, key, tag, false, &f))                                            \
			return -1;                                                                 \
		*v = (ctype)(decode);                                                              \
		return 0;                                                                          \
	}                                                                                          \
	int hearth_ckpt_get_##suffix##_opt(struct hearth_ckpt *ck, const char *key, ctype def,     \
					   ctype *v)                                               \
	{                                                                                          \
		struct ckpt_field *f;                                                              \
		if (get_field(ck, key, tag, true, &f))                                             \
			return -1;                                                                 \
		*v = f ? (ctype)(decode) : def;                                                    \
		return 0;                                                                          \
	}

GET_SCALAR(u8, uint8_t, CKPT_T_U8, f->val[0])
GET_SCALAR(u16, uint16_t, CKPT_T_U16, le_get16(f->val))
GET_SCALAR(u32, uint32_t, CKPT_T_U32, le_get32(f->val))
GET_SCALAR(u64, uint64_t, CKPT_T_U64, le_get64(f->val))
GET_SCALAR(bool, bool, CKPT_T_BOOL, f->val[0] != 0)

/* How many units of the field fit: exactly `max` when n is NULL, else at most. */
static int check_count(const struct hearth_ckpt *ck, const char *key, size_t have, size_t max,
		       const size_t *n, const char *unit)
{
	if (!n && have != max)
		return hearth_err("checkpoint context '%s', key '%s': has %zu %s, expected %zu",
				  ck->name, key, have, unit, max);
	if (have > max)
		return hearth_err("checkpoint context '%s', key '%s': has %zu %s, at most %zu fit",
				  ck->name, key, have, unit, max);
	return 0;
}

static int get_bytes(struct hearth_ckpt *ck, const char *key, bool opt, void *buf, size_t size,
		     size_t *len)
{
	struct ckpt_field *f;

	if (get_field(ck, key, CKPT_T_BYTES, opt, &f))
		return -1;
	if (!f) {
		if (len)
			*len = 0;
		return 0;
	}
	if (check_count(ck, key, f->len, size, len, "bytes"))
		return -1;
	if (f->len)
		memcpy(buf, f->val, f->len);
	if (len)
		*len = f->len;
	return 0;
}

int hearth_ckpt_get_bytes(struct hearth_ckpt *ck, const char *key, void *buf, size_t size,
			  size_t *len)
{
	return get_bytes(ck, key, false, buf, size, len);
}

int hearth_ckpt_get_bytes_opt(struct hearth_ckpt *ck, const char *key, void *buf, size_t size,
			      size_t *len)
{
	return get_bytes(ck, key, true, buf, size, len);
}

int hearth_ckpt_get_blob(struct hearth_ckpt *ck, const char *key, const void **data, size_t *len)
{
	struct ckpt_field *f;

	if (get_field(ck, key, CKPT_T_BYTES, false, &f))
		return -1;
	*data = f->val;
	*len = f->len;
	return 0;
}

static int copy_str(const struct hearth_ckpt *ck, const char *key, const char *s, size_t len,
		    char *buf, size_t size)
{
	if (len >= size)
		return hearth_err("checkpoint context '%s', key '%s': string of %zu characters "
				  "does not fit in %zu",
				  ck->name, key, len, size ? size - 1 : 0);
	memcpy(buf, s, len);
	buf[len] = 0;
	return 0;
}

int hearth_ckpt_get_str(struct hearth_ckpt *ck, const char *key, char *buf, size_t size)
{
	struct ckpt_field *f;

	if (get_field(ck, key, CKPT_T_STR, false, &f))
		return -1;
	return copy_str(ck, key, (const char *)f->val, f->len, buf, size);
}

int hearth_ckpt_get_str_opt(struct hearth_ckpt *ck, const char *key, const char *def, char *buf,
			    size_t size)
{
	struct ckpt_field *f;

	if (get_field(ck, key, CKPT_T_STR, true, &f))
		return -1;
	if (!f)
		return copy_str(ck, key, def, strlen(def), buf, size);
	return copy_str(ck, key, (const char *)f->val, f->len, buf, size);
}

int hearth_ckpt_get_u32_array(struct hearth_ckpt *ck, const char *key, uint32_t *v, size_t max,
			      size_t *n)
{
	struct ckpt_field *f;
	size_t have;

	if (get_field(ck, key, CKPT_T_U32_ARRAY, false, &f))
		return -1;
	have = f->len / 4;
	if (check_count(ck, key, have, max, n, "elements"))
		return -1;
	for (size_t i = 0; i < have; i++)
		v[i] = le_get32(f->val + 4 * i);
	if (n)
		*n = have;
	return 0;
}

int hearth_ckpt_get_u64_array(struct hearth_ckpt *ck, const char *key, uint64_t *v, size_t max,
			      size_t *n)
{
	struct ckpt_field *f;
	size_t have;

	if (get_field(ck, key, CKPT_T_U64_ARRAY, false, &f))
		return -1;
	have = f->len / 8;
	if (check_count(ck, key, have, max, n, "elements"))
		return -1;
	for (size_t i = 0; i < have; i++)
		v[i] = le_get64(f->val + 8 * i);
	if (n)
		*n = have;
	return 0;
}
