/* The state file parser against damaged and hostile files: truncation at every length, a
 * flipped bit at every byte, bad magic and versions, duplicate names, malformed fields, CPU
 * feature mismatches; and CRC32C itself. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "snapshot/crc32c.h"
#include "snapshot/store.h"
#include "testutil.h"

static struct ckpt_cpu fake_cpu;

static void set_fake_cpu(void)
{
	memset(&fake_cpu, 0, sizeof(fake_cpu));
	memcpy(fake_cpu.vendor, "TestVendorXY", 12);
	fake_cpu.family = 6;
	fake_cpu.model = 85;
	fake_cpu.feat[CPU_F1_ECX] = 1u << 28 | 1u << 20; /* avx, sse4.2 */
	fake_cpu.feat[CPU_F1_EDX] = 1u << 26;		 /* sse2 */
	fake_cpu.feat[CPU_F7_EBX] = 1u << 5 | 1u << 16;	 /* avx2, avx512f */
	fake_cpu.feat[CPU_F7_ECX] = 0;
	fake_cpu.feat[CPU_F7_EDX] = 0;
}

static char tmpdir[64];

/* A state file with every field type, several contexts and an empty one. */
static uint8_t *sample(size_t *len)
{
	struct hearth_ckpt_writer *w;
	struct hearth_ckpt *ck;
	uint64_t regs[16];
	uint32_t u32s[3] = {1, 2, 0xffffffff};
	uint8_t xsave[512];
	char path[128];
	uint8_t *buf;

	for (int i = 0; i < 16; i++)
		regs[i] = 0x0101010101010101ull * (uint64_t)i;
	for (int i = 0; i < 512; i++)
		xsave[i] = (uint8_t)(i * 7);
	strcpy(tmpdir, "/tmp/hearth-sf-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(hearth_ckpt_writer_new(tmpdir, &w), 0);
	ckpt_writer_set_cpu(w, &fake_cpu);
	assert_int_equal(hearth_ckpt_open_ctx(w, "vm", 1, 0, &ck), 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "a", 0xab), 0);
	assert_int_equal(hearth_ckpt_put_u16(ck, "b", 0xabcd), 0);
	assert_int_equal(hearth_ckpt_put_u32(ck, "c", 0xdeadbeef), 0);
	assert_int_equal(hearth_ckpt_put_u64(ck, "d", 0x0123456789abcdefull), 0);
	assert_int_equal(hearth_ckpt_put_bool(ck, "e", true), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "f", "0123456789", 10), 0);
	assert_int_equal(hearth_ckpt_put_str(ck, "g", "hello"), 0);
	assert_int_equal(hearth_ckpt_put_u32_array(ck, "h", u32s, 3), 0);
	assert_int_equal(hearth_ckpt_put_u64_array(ck, "i", regs, 2), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	assert_int_equal(hearth_ckpt_open_ctx(w, "vcpu/0", 2, 0, &ck), 0);
	assert_int_equal(hearth_ckpt_put_u64_array(ck, "regs", regs, 16), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "xsave", xsave, sizeof(xsave)), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	assert_int_equal(hearth_ckpt_open_ctx(w, "devices/com1", 1, 0, &ck), 0);
	assert_int_equal(hearth_ckpt_put_str(ck, "_class", "uart8250"), 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "lcr", 3), 0);
	assert_int_equal(hearth_ckpt_put_u8_opt(ck, "scratch", 0x55), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	assert_int_equal(hearth_ckpt_open_ctx(w, "extra", 1, HEARTH_CKPT_CTX_OPTIONAL, &ck), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	assert_int_equal(hearth_ckpt_writer_finish(w), 0);
	hearth_ckpt_writer_free(w);
	snprintf(path, sizeof(path), "%s/state", tmpdir);
	buf = read_whole_file(path, len);
	rm_tree(tmpdir);
	return buf;
}

/* Parse an exact-size heap copy, so reading past the end is caught by ASan. */
static int parse_copy(const uint8_t *buf, size_t len, const struct ckpt_cpu *host)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct hearth_ckpt_reader *r = NULL;
	int ret;

	memcpy(copy, buf, len);
	hearth_err_clear();
	ret = statefile_parse(copy, len, host, &r);
	if (ret == 0)
		assert_non_null(r);
	else
		assert_null(r);
	hearth_ckpt_reader_free(r);
	free(copy);
	return ret;
}

static void crc32c_vectors(void **state)
{
	uint8_t buf[300 + 8];
	(void)state;

	assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283);
	assert_int_equal(crc32c_sw(0, "123456789", 9), 0xe3069283);
	assert_int_equal(crc32c(0, "", 0), 0);
	/* 32 bytes of zeros (RFC 3720 B.4) */
	memset(buf, 0, 32);
	assert_int_equal(crc32c(0, buf, 32), 0x8a9136aa);
	assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 17);
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n <= 300; n++)
			assert_int_equal(crc32c(0x1234, buf + off, n),
					 crc32c_sw(0x1234, buf + off, n));
}

static void parse_sample(void **state)
{
	struct hearth_ckpt_reader *r;
	struct hearth_ckpt *ck;
	size_t len;
	uint8_t *buf = sample(&len);
	uint64_t d;
	(void)state;

	assert_int_equal(statefile_parse(buf, len, &fake_cpu, &r), 0);
	assert_int_equal(ckpt_reader_count(r), 4);
	assert_string_equal(ckpt_reader_at(r, 0)->name, "vm");
	assert_string_equal(ckpt_reader_at(r, 3)->name, "extra");
	assert_null(ckpt_reader_at(r, 4));
	assert_int_equal(r->format_version, CKPT_FORMAT_VERSION);
	assert_memory_equal(r->cpu.vendor, "TestVendorXY", 12);
	assert_int_equal(hearth_ckpt_find_ctx(r, "vm", 1, 1, &ck), 0);
	assert_int_equal(hearth_ckpt_get_u64(ck, "d", &d), 0);
	assert_int_equal(d, 0x0123456789abcdefull);
	hearth_ckpt_reader_free(r);
	/* the header, as documented */
	assert_memory_equal(buf, "HEARTHCK", 8);
	assert_int_equal(le_get32(buf + HDR_VERSION), 1);
	assert_int_equal(le_get32(buf + HDR_LEN), 80);
	assert_int_equal(le_get32(buf + HDR_NCTX), 4);
	assert_int_equal(le_get64(buf + HDR_FILE_SIZE), len);
	assert_int_equal(buf[HDR_V1_LEN], 2); /* first context: name length of "vm" */
	free(buf);
}

static void truncated_every_length(void **state)
{
	size_t len;
	uint8_t *buf = sample(&len);
	(void)state;

	assert_int_equal(parse_copy(buf, len, &fake_cpu), 0);
	for (size_t cut = 0; cut < len; cut++) {
		assert_int_equal(parse_copy(buf, cut, &fake_cpu), -1);
		assert_true(strstr(hearth_err_msg(), "truncated") ||
			    strstr(hearth_err_msg(), "header says"));
	}
	free(buf);
}

/* Even with the file size and CRCs patched to match, a cut file is refused by its structure. */
static void truncated_with_fixed_crcs(void **state)
{
	size_t len;
	uint8_t *buf = sample(&len);
	uint8_t *copy = malloc(len);
	(void)state;

	for (size_t cut = 0; cut < len; cut++) {
		memcpy(copy, buf, cut);
		statefile_fixup(copy, cut);
		assert_int_equal(parse_copy(copy, cut, &fake_cpu), -1);
		assert_string_not_equal(hearth_err_msg(), "unknown error");
	}
	free(copy);
	free(buf);
}

static void flipped_bits_in_every_context(void **state)
{
	struct hearth_ckpt_reader *r;
	size_t len, off[8], plen[8];
	char names[8][300];
	uint32_t n;
	uint8_t *buf = sample(&len);
	(void)state;

	assert_int_equal(statefile_parse(buf, len, &fake_cpu, &r), 0);
	n = ckpt_reader_count(r);
	for (uint32_t i = 0; i < n; i++) {
		struct hearth_ckpt *ck = ckpt_reader_at(r, i);
		off[i] = (size_t)(ck->payload - buf);
		plen[i] = ck->payload_len;
		snprintf(names[i], sizeof(names[i]), "context '%s' is damaged", ck->name);
	}
	hearth_ckpt_reader_free(r);
	for (uint32_t i = 0; i < n; i++) {
		for (size_t j = 0; j < plen[i]; j++) {
			uint8_t *p = buf + off[i] + j, old = *p;
			*p ^= (uint8_t)(1u << (j % 8));
			assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
			assert_true(msg_has(names[i]));
			*p = old;
		}
	}
	free(buf);
}

/* Anywhere in the file, one flipped bit or one garbled byte is refused. */
static void flipped_bits_anywhere(void **state)
{
	size_t len;
	uint8_t *buf = sample(&len);
	(void)state;

	for (size_t j = 0; j < len; j++) {
		uint8_t old = buf[j];
		buf[j] ^= (uint8_t)(1u << (j % 8));
		assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
		buf[j] = old ^ 0xff;
		assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
		buf[j] = old;
	}
	assert_int_equal(parse_copy(buf, len, &fake_cpu), 0);
	free(buf);
}

static void wrong_magic(void **state)
{
	size_t len;
	uint8_t *buf = sample(&len);
	(void)state;

	buf[0] = 'X';
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("bad magic"));
	assert_int_equal(parse_copy((const uint8_t *)"ELF\x7f garbage", 12, &fake_cpu), -1);
	assert_true(msg_has("bad magic"));
	free(buf);
}

static void format_versions(void **state)
{
	size_t len;
	uint8_t *buf = sample(&len);
	(void)state;

	le_put32(buf + HDR_VERSION, 2);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("format version 2 is newer than this hearth reads (versions 1..1)"));
	le_put32(buf + HDR_VERSION, 0xffffffff);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("format version 4294967295 is newer"));
	le_put32(buf + HDR_VERSION, 0);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("format version 0 is not supported"));
	/* without the CRC fixed the header is simply damaged */
	le_put32(buf + HDR_VERSION, 1);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("header is damaged"));
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), 0);
	free(buf);
}

static void header_fields(void **state)
{
	size_t len;
	uint8_t *buf = sample(&len);
	uint8_t *big;
	(void)state;

	le_put32(buf + HDR_FLAGS, 4);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("unknown header flags 0x4"));
	le_put32(buf + HDR_FLAGS, 0);

	const uint32_t bad_lens[] = {0, 12, 19, 82, 2048, 0xfffffffc};
	for (size_t i = 0; i < sizeof(bad_lens) / sizeof(bad_lens[0]); i++) {
		le_put32(buf + HDR_LEN, bad_lens[i]);
		statefile_fixup(buf, len);
		assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
		assert_true(msg_has("header length"));
	}
	/* a short but well-formed header of version 1 (fixup rewrites more than the header) */
	big = malloc(len);
	memcpy(big, buf, len);
	le_put32(big + HDR_LEN, 40);
	statefile_fixup(big, len);
	assert_int_equal(parse_copy(big, len, &fake_cpu), -1);
	assert_true(msg_has("header length 40 is shorter than format version 1 needs (80)"));
	free(big);
	le_put32(buf + HDR_LEN, 80);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), 0);

	/* more contexts than the file can hold, or than the limit */
	le_put32(buf + HDR_NCTX, 5);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("truncated: context 4 of 5"));
	le_put32(buf + HDR_NCTX, 1000);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("claims 1000 contexts: more than its size can hold"));
	le_put32(buf + HDR_NCTX, CKPT_MAX_CONTEXTS + 1);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("more than the limit"));
	le_put32(buf + HDR_NCTX, 3);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("stray bytes after its last context"));
	le_put32(buf + HDR_NCTX, 4);

	/* bytes appended to a good file */
	big = malloc(len + 3);
	memcpy(big, buf, len);
	memset(big + len, 0, 3);
	statefile_fixup(buf, len);
	memcpy(big, buf, len);
	assert_int_equal(parse_copy(big, len + 3, &fake_cpu), -1);
	assert_true(msg_has("header says"));
	statefile_fixup(big, len + 3);
	assert_int_equal(parse_copy(big, len + 3, &fake_cpu), -1);
	assert_true(msg_has("3 stray bytes"));
	free(big);
	free(buf);
}

/* Offset of the first occurrence of needle in buf. */
static size_t find(const uint8_t *buf, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(buf + i, needle, n) == 0)
			return i;
	fail_msg("'%s' not in the file", needle);
	return 0;
}

static void duplicate_names(void **state)
{
	size_t len, at;
	uint8_t *buf;
	(void)state;

	/* two contexts whose names have the same length, so one can be renamed in place */
	{
		struct hearth_ckpt_writer *w;
		struct hearth_ckpt *ck;
		char path[128];

		strcpy(tmpdir, "/tmp/hearth-sf-XXXXXX");
		assert_non_null(mkdtemp(tmpdir));
		assert_int_equal(hearth_ckpt_writer_new(tmpdir, &w), 0);
		ckpt_writer_set_cpu(w, &fake_cpu);
		assert_int_equal(hearth_ckpt_open_ctx(w, "aa", 1, 0, &ck), 0);
		assert_int_equal(hearth_ckpt_put_u8(ck, "k1", 1), 0);
		assert_int_equal(hearth_ckpt_put_u8(ck, "k2", 2), 0);
		assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
		assert_int_equal(hearth_ckpt_open_ctx(w, "ab", 1, 0, &ck), 0);
		assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
		assert_int_equal(hearth_ckpt_writer_finish(w), 0);
		hearth_ckpt_writer_free(w);
		snprintf(path, sizeof(path), "%s/state", tmpdir);
		buf = read_whole_file(path, &len);
		rm_tree(tmpdir);
	}
	assert_int_equal(parse_copy(buf, len, &fake_cpu), 0);
	at = find(buf, len, "ab");
	buf[at + 1] = 'a';
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("checkpoint context 'aa' appears twice"));
	buf[at + 1] = 'b';
	at = find(buf, len, "k2");
	buf[at + 1] = '1';
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("checkpoint context 'aa': key 'k1' appears twice"));
	/* names outside the character set */
	buf[at + 1] = '\n';
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("context 'aa': field at payload offset"));
	assert_true(msg_has("invalid key"));
	buf[at + 1] = '2';
	at = find(buf, len, "ab");
	buf[at] = 0x1b;
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("has an invalid name"));
	free(buf);
}

/* The sample's "lcr" field: key "lcr", type, flags, value_len, value. */
static void malformed_fields(void **state)
{
	size_t len, at;
	uint8_t *buf = sample(&len), *orig = malloc(len);
	(void)state;

	memcpy(orig, buf, len);
	at = find(buf, len, "lcr") + 3; /* type byte */

	buf[at] = 200; /* unknown type, required */
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("context 'devices/com1', key 'lcr': required field of unknown type "
			    "200"));
	buf[at + 1] = FIELD_FLAG_OPTIONAL; /* unknown type, optional: skipped */
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), 0);
	buf[at + 1] = 0x80; /* unknown flags */
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("key 'lcr': unknown field flags 0x80"));
	memcpy(buf, orig, len);

	buf[at] = CKPT_T_U16; /* a u16 of 1 byte */
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("key 'lcr': wrong length for its type (u16, 1 bytes)"));
	buf[at] = CKPT_T_BOOL; /* a bool of 3 */
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("a bool that is neither 0 nor 1"));
	buf[at] = CKPT_T_U32_ARRAY;
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("not a multiple of 4"));
	buf[at] = CKPT_T_STR; /* "\x03" is a fine string */
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), 0);
	buf[at + 6] = 0;
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("a string with a NUL byte"));
	memcpy(buf, orig, len);

	le_put32(buf + at + 2, 0x7fffffff); /* value runs past the context */
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("key 'lcr': value of 2147483647 bytes runs past the end of the "
			    "context"));
	memcpy(buf, orig, len);

	/* a context's unknown flags, and a payload longer than the file */
	at = find(buf, len, "devices/com1") + 12;
	le_put32(buf + at + 4, 2);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("checkpoint context 'devices/com1' has unknown flags 0x2"));
	memcpy(buf, orig, len);
	le_put64(buf + at + 8, 1ull << 40);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("context 'devices/com1': payload of 1099511627776 bytes runs past"));
	free(orig);
	free(buf);
}

static void cpu_features(void **state)
{
	struct ckpt_cpu host;
	size_t len;
	uint8_t *buf = sample(&len);
	(void)state;

	host = fake_cpu;
	host.feat[CPU_F7_EBX] &= ~(1u << 5);
	assert_int_equal(parse_copy(buf, len, &host), -1);
	assert_true(msg_has("this host's CPU lacks 1 feature the checkpoint's host had "
			    "(TestVendorXY family 6 model 85): avx2 (CPUID.7.0:EBX bit 5)"));
	host.feat[CPU_F1_ECX] = 0;
	assert_int_equal(parse_copy(buf, len, &host), -1);
	assert_true(msg_has("lacks 3 features"));
	assert_true(msg_has("sse4.2 (CPUID.1:ECX bit 20)"));
	assert_true(msg_has("avx (CPUID.1:ECX bit 28)"));

	/* more features, or a difference only in OS/topology bits, is fine */
	host = fake_cpu;
	host.feat[CPU_F7_ECX] = 0xffffffff;
	host.model = 143;
	assert_int_equal(parse_copy(buf, len, &host), 0);
	{
		struct ckpt_cpu saved = fake_cpu;
		saved.feat[CPU_F1_ECX] |= 1u << 31 | 1u << 27;
		assert_int_equal(ckpt_cpu_check(&saved, &fake_cpu), 0);
		saved.feat[CPU_F1_EDX] |= 1u << 10; /* reserved: named by its bit */
		assert_int_equal(ckpt_cpu_check(&saved, &fake_cpu), -1);
		assert_true(msg_has("unnamed (CPUID.1:EDX bit 10)"));
		memset(saved.feat, 0xff, sizeof(saved.feat));
		assert_int_equal(ckpt_cpu_check(&saved, &fake_cpu), -1);
		assert_true(msg_has(", ..."));
	}

	host = fake_cpu;
	memcpy(host.vendor, "AuthenticAMD", 12);
	assert_int_equal(parse_copy(buf, len, &host), -1);
	assert_true(msg_has("taken on a TestVendorXY CPU, this host is AuthenticAMD"));
	/* control characters from a file are not printed */
	memcpy(buf + HDR_CPU_VENDOR, "Evil\x1b[2J\n\0ab", 12);
	statefile_fixup(buf, len);
	assert_int_equal(parse_copy(buf, len, &fake_cpu), -1);
	assert_true(msg_has("taken on a Evil?[2J??ab CPU"));
	free(buf);
}

static void real_host_cpu(void **state)
{
	struct ckpt_cpu host;
	(void)state;

	ckpt_cpu_host(&host);
	assert_int_equal(ckpt_cpu_check(&host, &host), 0);
#if defined(__x86_64__)
	/* every x86-64 CPU has SSE2 and a printable vendor */
	assert_true(host.feat[CPU_F1_EDX] & (1u << 26));
	for (int i = 0; i < 12; i++)
		assert_true(host.vendor[i] >= 0x20 && host.vendor[i] < 0x7f);
#endif
}

static void oversized_file_not_read(void **state)
{
	struct hearth_ckpt_reader *r = NULL;
	char path[128];
	int fd;
	(void)state;

	strcpy(tmpdir, "/tmp/hearth-sf-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/state", tmpdir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)CKPT_MAX_FILE + 1), 0); /* sparse */
	close(fd);
	assert_int_equal(hearth_ckpt_reader_open(tmpdir, &r), -1);
	assert_null(r);
	assert_true(msg_has("state file of 268435457 bytes is over the limit"));
	rm_tree(tmpdir);
}

/* Random damage with the CRCs patched: every refusal has a message, nothing crashes. */
static void random_damage(void **state)
{
	size_t len;
	uint8_t *buf = sample(&len), *m = malloc(len);
	unsigned seed = 12345, accepted = 0;
	(void)state;

	for (int iter = 0; iter < 3000; iter++) {
		memcpy(m, buf, len);
		for (int k = 0; k < 1 + iter % 4; k++) {
			seed = seed * 1103515245 + 12345;
			m[(seed >> 8) % len] = (uint8_t)(seed >> 24);
		}
		statefile_fixup(m, len);
		if (parse_copy(m, len, &fake_cpu) == 0)
			accepted++;
		else
			assert_string_not_equal(hearth_err_msg(), "unknown error");
	}
	/* damage inside values is accepted once the CRCs match: the check really ran */
	assert_true(accepted > 0 && accepted < 3000);
	free(m);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crc32c_vectors),
		cmocka_unit_test(parse_sample),
		cmocka_unit_test(truncated_every_length),
		cmocka_unit_test(truncated_with_fixed_crcs),
		cmocka_unit_test(flipped_bits_in_every_context),
		cmocka_unit_test(flipped_bits_anywhere),
		cmocka_unit_test(wrong_magic),
		cmocka_unit_test(format_versions),
		cmocka_unit_test(header_fields),
		cmocka_unit_test(duplicate_names),
		cmocka_unit_test(malformed_fields),
		cmocka_unit_test(cpu_features),
		cmocka_unit_test(real_host_cpu),
		cmocka_unit_test(oversized_file_not_read),
		cmocka_unit_test(random_damage),
	};

	set_fake_cpu();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
