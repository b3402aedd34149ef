/* The checkpoint store API: round trips of every type, versions, optional fields and
 * contexts, every getter's and putter's error, the atomic file replacement, and the device
 * walk (ckpt_save_devices / ckpt_load_devices) with test classes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "fakevm.h"
#include "testutil.h"
#include "snapshot/devices.h"
#include "snapshot/store.h"

static char dir[64];

/* Names in dir, sorted into one comma-separated string. */
static void list_dir(char *out, size_t size)
{
	char names[16][NAME_MAX + 1];
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		assert_true(n < 16);
		snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
	out[0] = 0;
	for (int i = 0; i < n; i++)
		snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? "," : "", names[i]);
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/hearth-ckpt-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	ckpt_atomic_no_tmpfile = false;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	rm_tree(dir);
	return 0;
}

static struct hearth_ckpt_writer *writer(void)
{
	struct hearth_ckpt_writer *w;

	assert_int_equal(hearth_ckpt_writer_new(dir, &w), 0);
	return w;
}

static struct hearth_ckpt *open_ctx(struct hearth_ckpt_writer *w, const char *name,
				    uint32_t version, unsigned flags)
{
	struct hearth_ckpt *ck;

	assert_int_equal(hearth_ckpt_open_ctx(w, name, version, flags, &ck), 0);
	return ck;
}

static void finish(struct hearth_ckpt_writer *w)
{
	assert_int_equal(hearth_ckpt_writer_finish(w), 0);
	hearth_ckpt_writer_free(w);
}

static struct hearth_ckpt_reader *reader(void)
{
	struct hearth_ckpt_reader *r;

	assert_int_equal(hearth_ckpt_reader_open(dir, &r), 0);
	return r;
}

static struct hearth_ckpt *find(struct hearth_ckpt_reader *r, const char *name, uint32_t min,
				uint32_t max)
{
	struct hearth_ckpt *ck;

	assert_int_equal(hearth_ckpt_find_ctx(r, name, min, max, &ck), 0);
	return ck;
}

static void round_trip_every_type(void **state)
{
	struct hearth_ckpt_writer *w = writer();
	struct hearth_ckpt_reader *r;
	struct hearth_ckpt *ck = open_ctx(w, "vm", 3, 0);
	const uint32_t u32s[4] = {0, 1, 0x80000000, 0xffffffff};
	const uint64_t u64s[3] = {0, 0x8000000000000000ull, UINT64_MAX};
	uint8_t big[70000], back[70000];
	char text[300], listing[256];
	uint32_t a32[4];
	uint64_t a64[3];
	size_t n;
	const void *blob;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	bool b;
	(void)state;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i ^ (i >> 8));
	memset(text, 'x', 255);
	text[255] = 0;
	assert_int_equal(hearth_ckpt_put_u8(ck, "u8", 0xfe), 0);
	assert_int_equal(hearth_ckpt_put_u16(ck, "u16", 0xfedc), 0);
	assert_int_equal(hearth_ckpt_put_u32(ck, "u32", 0xfedcba98), 0);
	assert_int_equal(hearth_ckpt_put_u64(ck, "u64", 0xfedcba9876543210ull), 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "u8.zero", 0), 0);
	assert_int_equal(hearth_ckpt_put_u64(ck, "u64.max", UINT64_MAX), 0);
	assert_int_equal(hearth_ckpt_put_bool(ck, "yes", true), 0);
	assert_int_equal(hearth_ckpt_put_bool(ck, "no", false), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "big", big, sizeof(big)), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "empty", NULL, 0), 0);
	assert_int_equal(hearth_ckpt_put_str(ck, "text", text), 0);
	assert_int_equal(hearth_ckpt_put_str(ck, "nothing", ""), 0);
	assert_int_equal(hearth_ckpt_put_u32_array(ck, "a32", u32s, 4), 0);
	assert_int_equal(hearth_ckpt_put_u64_array(ck, "a64", u64s, 3), 0);
	assert_int_equal(hearth_ckpt_put_u64_array(ck, "a64.none", NULL, 0), 0);
	assert_int_equal(hearth_ckpt_put_u32_opt(ck, "opt.u32", 77), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	finish(w);
	list_dir(listing, sizeof(listing));
	assert_string_equal(listing, "state");

	r = reader();
	ck = find(r, "vm", 1, 3);
	assert_string_equal(hearth_ckpt_name(ck), "vm");
	assert_int_equal(hearth_ckpt_version(ck), 3);
	assert_int_equal(hearth_ckpt_get_u8(ck, "u8", &u8), 0);
	assert_int_equal(u8, 0xfe);
	assert_int_equal(hearth_ckpt_get_u16(ck, "u16", &u16), 0);
	assert_int_equal(u16, 0xfedc);
	assert_int_equal(hearth_ckpt_get_u32(ck, "u32", &u32), 0);
	assert_int_equal(u32, 0xfedcba98);
	assert_int_equal(hearth_ckpt_get_u64(ck, "u64", &u64), 0);
	assert_int_equal(u64, 0xfedcba9876543210ull);
	assert_int_equal(hearth_ckpt_get_u8(ck, "u8.zero", &u8), 0);
	assert_int_equal(u8, 0);
	assert_int_equal(hearth_ckpt_get_u64(ck, "u64.max", &u64), 0);
	assert_true(u64 == UINT64_MAX);
	assert_int_equal(hearth_ckpt_get_bool(ck, "yes", &b), 0);
	assert_true(b);
	assert_int_equal(hearth_ckpt_get_bool(ck, "no", &b), 0);
	assert_false(b);
	assert_int_equal(hearth_ckpt_get_bytes(ck, "big", back, sizeof(back), NULL), 0);
	assert_memory_equal(back, big, sizeof(big));
	assert_int_equal(hearth_ckpt_get_blob(ck, "big", &blob, &n), 0);
	assert_int_equal(n, sizeof(big));
	assert_memory_equal(blob, big, sizeof(big));
	assert_int_equal(hearth_ckpt_get_bytes(ck, "empty", back, sizeof(back), &n), 0);
	assert_int_equal(n, 0);
	memset(text, 0, sizeof(text));
	assert_int_equal(hearth_ckpt_get_str(ck, "text", text, sizeof(text)), 0);
	assert_int_equal(strlen(text), 255);
	assert_int_equal(hearth_ckpt_get_str(ck, "nothing", text, 1), 0);
	assert_string_equal(text, "");
	assert_int_equal(hearth_ckpt_get_u32_array(ck, "a32", a32, 4, NULL), 0);
	assert_memory_equal(a32, u32s, sizeof(u32s));
	assert_int_equal(hearth_ckpt_get_u64_array(ck, "a64", a64, 3, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(a64, u64s, sizeof(u64s));
	assert_int_equal(hearth_ckpt_get_u64_array(ck, "a64.none", a64, 3, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(hearth_ckpt_get_u32_opt(ck, "opt.u32", 5, &u32), 0);
	assert_int_equal(u32, 77);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	assert_int_equal(hearth_ckpt_reader_check_all_consumed(r), 0);
	hearth_ckpt_reader_free(r);
}

static void round_trip_opt_putters(void **state)
{
	struct hearth_ckpt_writer *w = writer();
	struct hearth_ckpt_reader *r;
	struct hearth_ckpt *ck = open_ctx(w, "dev", 1, 0);
	const uint32_t u32s[2] = {5, 6};
	const uint64_t u64s[1] = {7};
	uint8_t u8, bytes[3];
	uint16_t u16;
	uint64_t u64, a64[1];
	uint32_t a32[2];
	bool b;
	char s[8];
	(void)state;

	assert_int_equal(hearth_ckpt_put_u8_opt(ck, "a", 1), 0);
	assert_int_equal(hearth_ckpt_put_u16_opt(ck, "b", 2), 0);
	assert_int_equal(hearth_ckpt_put_u64_opt(ck, "c", 3), 0);
	assert_int_equal(hearth_ckpt_put_bool_opt(ck, "d", true), 0);
	assert_int_equal(hearth_ckpt_put_bytes_opt(ck, "e", "xyz", 3), 0);
	assert_int_equal(hearth_ckpt_put_str_opt(ck, "f", "str"), 0);
	assert_int_equal(hearth_ckpt_put_u32_array_opt(ck, "g", u32s, 2), 0);
	assert_int_equal(hearth_ckpt_put_u64_array_opt(ck, "h", u64s, 1), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	finish(w);

	/* an older reader that knows none of them: nothing refused */
	r = reader();
	ck = find(r, "dev", 1, 1);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	assert_int_equal(hearth_ckpt_reader_check_all_consumed(r), 0);
	hearth_ckpt_reader_free(r);

	/* a reader that knows them all gets the values, not the defaults */
	r = reader();
	ck = find(r, "dev", 1, 1);
	assert_int_equal(hearth_ckpt_get_u8_opt(ck, "a", 9, &u8), 0);
	assert_int_equal(u8, 1);
	assert_int_equal(hearth_ckpt_get_u16_opt(ck, "b", 9, &u16), 0);
	assert_int_equal(u16, 2);
	assert_int_equal(hearth_ckpt_get_u64_opt(ck, "c", 9, &u64), 0);
	assert_int_equal(u64, 3);
	assert_int_equal(hearth_ckpt_get_bool_opt(ck, "d", false, &b), 0);
	assert_true(b);
	assert_int_equal(hearth_ckpt_get_bytes_opt(ck, "e", bytes, 3, NULL), 0);
	assert_memory_equal(bytes, "xyz", 3);
	assert_int_equal(hearth_ckpt_get_str_opt(ck, "f", "default", s, sizeof(s)), 0);
	assert_string_equal(s, "str");
	assert_int_equal(hearth_ckpt_get_u32_array(ck, "g", a32, 2, NULL), 0);
	assert_int_equal(a32[1], 6);
	assert_int_equal(hearth_ckpt_get_u64_array(ck, "h", a64, 1, NULL), 0);
	assert_int_equal(a64[0], 7);
	hearth_ckpt_reader_free(r);
}

/* A reader newer than the writer: absent optional keys give their defaults. */
static void optional_defaults(void **state)
{
	struct hearth_ckpt_writer *w = writer();
	struct hearth_ckpt_reader *r;
	struct hearth_ckpt *ck = open_ctx(w, "dev", 1, 0);
	uint8_t u8, buf[4] = {1, 2, 3, 4};
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	bool b = true;
	char s[8];
	size_t n = 99;
	(void)state;

	assert_int_equal(hearth_ckpt_put_u16(ck, "old", 1), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	finish(w);
	r = reader();
	ck = find(r, "dev", 1, 2);
	assert_false(hearth_ckpt_has(ck, "new"));
	assert_true(hearth_ckpt_has(ck, "old"));
	assert_int_equal(hearth_ckpt_get_u8_opt(ck, "new", 8, &u8), 0);
	assert_int_equal(u8, 8);
	assert_int_equal(hearth_ckpt_get_u32_opt(ck, "new", 0x12345678, &u32), 0);
	assert_int_equal(u32, 0x12345678);
	assert_int_equal(hearth_ckpt_get_u64_opt(ck, "new", 64, &u64), 0);
	assert_int_equal(u64, 64);
	assert_int_equal(hearth_ckpt_get_bool_opt(ck, "new", false, &b), 0);
	assert_false(b);
	assert_int_equal(hearth_ckpt_get_str_opt(ck, "new", "dflt", s, sizeof(s)), 0);
	assert_string_equal(s, "dflt");
	assert_int_equal(hearth_ckpt_get_str_opt(ck, "new", "far too long", s, sizeof(s)), -1);
	assert_true(msg_has("does not fit"));
	assert_int_equal(hearth_ckpt_get_bytes_opt(ck, "new", buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(buf[0], 1); /* left alone */
	/* present but of another type: refused even by the _opt getter */
	assert_int_equal(hearth_ckpt_get_u32_opt(ck, "old", 0, &u32), -1);
	assert_true(msg_has("checkpoint context 'dev', key 'old': is u16 (2 bytes), expected u32"));
	assert_int_equal(hearth_ckpt_get_u16_opt(ck, "old", 0, &u16), 0);
	assert_int_equal(u16, 1);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	hearth_ckpt_reader_free(r);
}

static void context_versions(void **state)
{
	struct hearth_ckpt_writer *w = writer();
	struct hearth_ckpt_reader *r;
	struct hearth_ckpt *ck = open_ctx(w, "devices/com1", 1, 0), *got;
	(void)state;

	assert_int_equal(hearth_ckpt_set_version(ck, 4), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	finish(w);
	r = reader();
	assert_int_equal(hearth_ckpt_find_ctx(r, "devices/com1", 5, 7, &got), -1);
	assert_null(got);
	assert_true(msg_has("checkpoint context 'devices/com1' has version 4, this hearth reads "
			    "versions 5..7 (too old)"));
	assert_int_equal(hearth_ckpt_find_ctx(r, "devices/com1", 1, 3, &got), -1);
	assert_true(msg_has("version 4, this hearth reads versions 1..3 (written by a newer "
			    "hearth?)"));
	got = find(r, "devices/com1", 4, 4);
	assert_int_equal(hearth_ckpt_version(got), 4);
	assert_int_equal(hearth_ckpt_set_version(got, 1), -1);
	assert_true(msg_has("is being read"));
	/* the device path: taken without a check, accepted by the load op */
	got = ckpt_reader_take(r, "devices/com1");
	assert_int_equal(hearth_ckpt_accept_versions(got, 1, 2), -1);
	assert_true(msg_has("has version 4"));
	assert_int_equal(hearth_ckpt_accept_versions(got, 2, 9), 0);
	hearth_ckpt_reader_free(r);
}

static void reader_errors(void **state)
{
	struct hearth_ckpt_writer *w = writer();
	struct hearth_ckpt_reader *r;
	struct hearth_ckpt *ck = open_ctx(w, "vm", 1, 0), *got;
	const uint32_t three[3] = {1, 2, 3};
	uint8_t bytes[8];
	uint32_t u32, a32[4];
	uint16_t u16;
	uint64_t a64[4];
	char s[4];
	size_t n;
	const void *blob;
	(void)state;

	assert_int_equal(hearth_ckpt_put_u16(ck, "u16", 1), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "six", "123456", 6), 0);
	assert_int_equal(hearth_ckpt_put_str(ck, "word", "four"), 0);
	assert_int_equal(hearth_ckpt_put_u32_array(ck, "three", three, 3), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	finish(w);
	r = reader();

	assert_int_equal(hearth_ckpt_find_ctx(r, "devices/nope", 0, 9, &got), -1);
	assert_true(msg_has("checkpoint has no context 'devices/nope'"));
	ck = ckpt_reader_take(r, "vm");
	assert_null(ckpt_reader_take(r, "nope"));
	assert_int_equal(hearth_ckpt_get_u16(ck, "u16", &u16), -1);
	assert_true(msg_has("context 'vm': key 'u16' read before the context version 1 was "
			    "accepted"));
	ck = find(r, "vm", 1, 1);
	assert_int_equal(hearth_ckpt_get_u32(ck, "missing", &u32), -1);
	assert_true(msg_has("checkpoint context 'vm' (version 1): missing key 'missing'"));
	assert_int_equal(hearth_ckpt_get_u32(ck, "u16", &u32), -1);
	assert_true(msg_has("checkpoint context 'vm', key 'u16': is u16 (2 bytes), expected u32"));
	assert_int_equal(hearth_ckpt_get_u64_array(ck, "u16", a64, 4, &n), -1);
	assert_true(msg_has("expected u64 array"));
	assert_int_equal(hearth_ckpt_get_blob(ck, "word", &blob, &n), -1);
	assert_true(msg_has("key 'word': is string (4 bytes), expected bytes"));
	assert_int_equal(hearth_ckpt_get_bytes(ck, "six", bytes, 8, NULL), -1);
	assert_true(msg_has("key 'six': has 6 bytes, expected 8"));
	assert_int_equal(hearth_ckpt_get_bytes(ck, "six", bytes, 4, &n), -1);
	assert_true(msg_has("key 'six': has 6 bytes, at most 4 fit"));
	assert_int_equal(hearth_ckpt_get_bytes(ck, "six", bytes, 8, &n), 0);
	assert_int_equal(n, 6);
	assert_int_equal(hearth_ckpt_get_str(ck, "word", s, sizeof(s)), -1);
	assert_true(msg_has("key 'word': string of 4 characters does not fit in 3"));
	assert_int_equal(hearth_ckpt_get_u32_array(ck, "three", a32, 4, NULL), -1);
	assert_true(msg_has("key 'three': has 3 elements, expected 4"));
	assert_int_equal(hearth_ckpt_get_u32_array(ck, "three", a32, 2, &n), -1);
	assert_true(msg_has("has 3 elements, at most 2 fit"));
	/* reading a context does not let anyone write to it */
	assert_int_equal(hearth_ckpt_put_u8(ck, "new", 1), -1);
	assert_true(msg_has("checkpoint context 'vm' is being read: cannot write key 'new'"));
	/* fields not read yet: u16 and word were never read successfully */
	assert_int_equal(hearth_ckpt_close_ctx(ck), -1);
	assert_true(msg_has("checkpoint context 'vm': unknown required field"));
	assert_int_equal(hearth_ckpt_reader_check_all_consumed(r), -1);
	hearth_ckpt_reader_free(r);

	assert_int_equal(hearth_ckpt_reader_open("/nonexistent/ckpt", &r), -1);
	assert_null(r);
	assert_true(msg_has("checkpoint '/nonexistent/ckpt': No such file"));
	assert_int_equal(hearth_ckpt_reader_open("/", &r), -1);
	assert_true(msg_has("checkpoint '/': state file: No such file"));
	/* a FIFO or directory planted as the state file: refused, not waited on */
	{
		char path[128];
		snprintf(path, sizeof(path), "%s/state", dir);
		assert_int_equal(unlink(path), 0);
		assert_int_equal(mkfifo(path, 0600), 0);
		assert_int_equal(hearth_ckpt_reader_open(dir, &r), -1);
		assert_true(msg_has("state file is not a regular file"));
		assert_int_equal(unlink(path), 0);
		assert_int_equal(mkdir(path, 0700), 0);
		assert_int_equal(hearth_ckpt_reader_open(dir, &r), -1);
		assert_true(msg_has("state file is not a regular file"));
		assert_int_equal(rmdir(path), 0);
	}
}

/* A required field the reader does not know refuses the restore; an optional one does not. */
static void unknown_fields(void **state)
{
	struct hearth_ckpt_writer *w = writer();
	struct hearth_ckpt_reader *r;
	struct hearth_ckpt *ck = open_ctx(w, "devices/com1", 2, 0);
	uint8_t lcr;
	(void)state;

	assert_int_equal(hearth_ckpt_put_u8(ck, "lcr", 3), 0);
	assert_int_equal(hearth_ckpt_put_u8_opt(ck, "fifo.hint", 1), 0);
	assert_int_equal(hearth_ckpt_put_u32(ck, "fifo.level", 14), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	finish(w);

	r = reader();
	ck = find(r, "devices/com1", 1, 2);
	assert_int_equal(hearth_ckpt_get_u8(ck, "lcr", &lcr), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), -1);
	assert_true(msg_has("checkpoint context 'devices/com1': unknown required field "
			    "'fifo.level' (u32, version 2): written by a newer hearth?"));
	assert_int_equal(hearth_ckpt_reader_check_all_consumed(r), -1);
	assert_true(msg_has("unknown required field 'fifo.level'"));
	hearth_ckpt_reader_free(r);
}

static void unconsumed_contexts(void **state)
{
	struct hearth_ckpt_writer *w = writer();
	struct hearth_ckpt_reader *r;
	struct hearth_ckpt *ck;
	(void)state;

	ck = open_ctx(w, "vm", 1, 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	ck = open_ctx(w, "gpu/future", 1, 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	ck = open_ctx(w, "stats", 1, HEARTH_CKPT_CTX_OPTIONAL);
	assert_int_equal(hearth_ckpt_put_u64(ck, "exits", 1000), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	finish(w);

	r = reader();
	find(r, "vm", 1, 1);
	assert_int_equal(hearth_ckpt_reader_check_all_consumed(r), -1);
	assert_true(msg_has("checkpoint context 'gpu/future' is required but nothing restores it"));
	find(r, "gpu/future", 1, 1);
	/* "stats" is optional: fine unconsumed, even with a required field inside */
	assert_int_equal(hearth_ckpt_reader_check_all_consumed(r), 0);
	hearth_ckpt_reader_free(r);
}

static void writer_errors(void **state)
{
	struct hearth_ckpt_writer *w = writer();
	struct hearth_ckpt *ck, *ck2;
	char longname[300];
	uint8_t u8;
	(void)state;

	memset(longname, 'a', 256);
	longname[256] = 0;
	assert_int_equal(hearth_ckpt_open_ctx(w, longname, 1, 0, &ck), -1);
	assert_null(ck);
	assert_true(msg_has("is invalid (1..255 characters"));
	longname[255] = 0; /* 255 is fine */
	ck = open_ctx(w, longname, 1, 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	hearth_ckpt_writer_free(w);

	const char *bad[] = {"", "a b", "tab\t", "quote'", "caf\xc3\xa9"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		w = writer();
		assert_int_equal(hearth_ckpt_open_ctx(w, bad[i], 1, 0, &ck), -1);
		/* the writer is poisoned: finish repeats the first error */
		assert_int_equal(hearth_ckpt_writer_finish(w), -1);
		assert_true(msg_has("checkpoint not written: checkpoint context name"));
		hearth_ckpt_writer_free(w);
	}

	w = writer();
	assert_int_equal(hearth_ckpt_open_ctx(w, "vm", 1, 0x10, &ck), -1);
	assert_true(msg_has("checkpoint context 'vm': unknown flags 0x10"));
	hearth_ckpt_writer_free(w);

	w = writer();
	ck = open_ctx(w, "vm", 1, 0);
	assert_int_equal(hearth_ckpt_open_ctx(w, "vm", 2, 0, &ck2), -1);
	assert_true(msg_has("checkpoint context 'vm' is written twice"));
	hearth_ckpt_writer_free(w);

	w = writer();
	ck = open_ctx(w, "vm", 1, 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "bad key", 1), -1);
	assert_true(msg_has("checkpoint context 'vm': key 'bad key' is invalid"));
	assert_int_equal(hearth_ckpt_put_u8(ck, "", 1), -1);
	assert_int_equal(hearth_ckpt_writer_finish(w), -1);
	assert_true(msg_has("checkpoint not written: checkpoint context 'vm': key 'bad key'"));
	hearth_ckpt_writer_free(w);

	w = writer();
	ck = open_ctx(w, "vm", 1, 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "k", 1), 0);
	assert_int_equal(hearth_ckpt_put_u16(ck, "k", 2), 0); /* caught when sealed */
	assert_int_equal(hearth_ckpt_close_ctx(ck), -1);
	assert_true(msg_has("checkpoint context 'vm': key 'k' appears twice"));
	assert_int_equal(hearth_ckpt_close_ctx(ck), -1);
	assert_true(msg_has("closed twice"));
	assert_int_equal(hearth_ckpt_set_version(ck, 5), -1);
	assert_true(msg_has("checkpoint context 'vm' is closed"));
	assert_int_equal(hearth_ckpt_put_u8(ck, "late", 1), -1);
	assert_true(msg_has("checkpoint context 'vm' is closed: cannot write key 'late'"));
	assert_int_equal(hearth_ckpt_writer_finish(w), -1);
	assert_true(msg_has("key 'k' appears twice")); /* the first error */
	hearth_ckpt_writer_free(w);

	w = writer();
	ck = open_ctx(w, "vm", 1, 0);
	ck2 = open_ctx(w, "vcpu/0", 1, 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	assert_int_equal(hearth_ckpt_get_u8(ck2, "x", &u8), -1);
	assert_true(msg_has("checkpoint context 'vcpu/0' is being written: cannot read key 'x'"));
	assert_false(hearth_ckpt_has(ck2, "x"));
	assert_int_equal(hearth_ckpt_accept_versions(ck2, 1, 1), -1);
	assert_int_equal(hearth_ckpt_writer_finish(w), -1);
	assert_true(msg_has("checkpoint not written: context 'vcpu/0' is still open"));
	hearth_ckpt_writer_free(w);

	/* oversized values are refused at the put, before anything is copied */
	w = writer();
	ck = open_ctx(w, "vm", 1, 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "huge", "", (size_t)CKPT_MAX_FILE + 1), -1);
	assert_true(msg_has("key 'huge': 268435457 bytes would make the state file larger"));
	assert_int_equal(hearth_ckpt_put_u64_array(ck, "huge64", NULL, SIZE_MAX / 4), -1);
	assert_true(msg_has("elements would make the state file larger"));
	hearth_ckpt_writer_free(w);

	/* a directory that cannot be created, or is a file */
	assert_int_equal(hearth_ckpt_writer_new("/nonexistent/a/b", &w), -1);
	assert_null(w);
	assert_true(msg_has("creating checkpoint directory '/nonexistent/a/b'"));
	assert_int_equal(hearth_ckpt_writer_new("/dev/null", &w), -1);
	assert_true(msg_has("'/dev/null' is not a directory"));
	hearth_ckpt_writer_free(NULL);
	hearth_ckpt_reader_free(NULL);
}

static uint8_t *slurp(const char *name, size_t *len)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return read_whole_file(path, len);
}

static int write_then_fail(int fd, void *opaque)
{
	(void)opaque;
	assert_int_equal(ckpt_write_all(fd, "partial new contents", 20, "test"), 0);
	return hearth_err("simulated failure halfway");
}

static int write_hello(int fd, void *opaque)
{
	return ckpt_write_all(fd, opaque, strlen(opaque), "test");
}

static void save_ok(uint32_t value)
{
	struct hearth_ckpt_writer *w = writer();
	struct hearth_ckpt *ck = open_ctx(w, "vm", 1, 0);

	assert_int_equal(hearth_ckpt_put_u32(ck, "value", value), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	finish(w);
}

static uint32_t load_value(void)
{
	struct hearth_ckpt_reader *r = reader();
	struct hearth_ckpt *ck = find(r, "vm", 1, 1);
	uint32_t v;

	assert_int_equal(hearth_ckpt_get_u32(ck, "value", &v), 0);
	hearth_ckpt_reader_free(r);
	return v;
}

static void atomic_replace(bool tmpfile)
{
	struct hearth_ckpt_writer *w;
	struct hearth_ckpt *ck;
	uint8_t *before, *after;
	size_t blen, alen;
	char listing[256];
	struct stat st;
	char path[128];

	ckpt_atomic_no_tmpfile = !tmpfile;
	save_ok(1);
	before = slurp("state", &blen);

	/* a save whose writer fails midway */
	assert_int_equal(ckpt_write_file_atomic(dir, "state", write_then_fail, NULL), -1);
	assert_true(msg_has("writing '"));
	assert_true(msg_has("/state': simulated failure halfway"));
	after = slurp("state", &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	free(after);
	list_dir(listing, sizeof(listing));
	assert_string_equal(listing, "state");
	assert_int_equal(load_value(), 1);

	/* a checkpoint whose contents fail: finish refuses, nothing is touched */
	w = writer();
	ck = open_ctx(w, "vm", 1, 0);
	assert_int_equal(hearth_ckpt_put_u32(ck, "value", 2), 0);
	assert_int_equal(hearth_ckpt_put_u32(ck, "value", 3), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), -1);
	assert_int_equal(hearth_ckpt_writer_finish(w), -1);
	hearth_ckpt_writer_free(w);
	after = slurp("state", &alen);
	assert_memory_equal(after, before, blen);
	free(after);

	/* a successful save replaces it whole */
	save_ok(2);
	assert_int_equal(load_value(), 2);
	list_dir(listing, sizeof(listing));
	assert_string_equal(listing, "state");

	/* the memory file's helper: new file, mode 0600 */
	assert_int_equal(ckpt_write_file_atomic(dir, "memory", write_hello, "hello"), 0);
	after = slurp("memory", &alen);
	assert_int_equal(alen, 5);
	assert_memory_equal(after, "hello", 5);
	free(after);
	snprintf(path, sizeof(path), "%s/memory", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	list_dir(listing, sizeof(listing));
	assert_string_equal(listing, "memory,state");
	free(before);
	ckpt_atomic_no_tmpfile = false;
}

static void atomic_replace_tmpfile(void **state)
{
	(void)state;
	atomic_replace(true);
}

static void atomic_replace_named_temp(void **state)
{
	(void)state;
	atomic_replace(false);
}

static void atomic_bad_args(void **state)
{
	(void)state;
	assert_int_equal(ckpt_write_file_atomic(dir, "../escape", write_hello, "x"), -1);
	assert_true(msg_has("'../escape' is not a plain file name"));
	assert_int_equal(ckpt_write_file_atomic(dir, ".hidden", write_hello, "x"), -1);
	assert_int_equal(ckpt_write_file_atomic("/nonexistent", "state", write_hello, "x"), -1);
	assert_true(msg_has("checkpoint directory '/nonexistent'"));
	/* the directory vanished between writer_new and finish */
	{
		struct hearth_ckpt_writer *w = writer();
		assert_int_equal(rmdir(dir), 0);
		assert_int_equal(hearth_ckpt_writer_finish(w), -1);
		assert_true(msg_has("checkpoint directory"));
		hearth_ckpt_writer_free(w);
		assert_int_equal(mkdir(dir, 0700), 0);
	}
}

/* ---- the device walk ---- */

struct tdev {
	uint32_t counter;
	uint8_t regs[4];
	int loads;
};

static bool lock_held_in_op = true;
static uint32_t save_version = 2; /* what test-ckpt-a's save op writes */
static bool save_newer_field;	  /* test-ckpt-a's save adds a field this loader lacks */
static bool load_fails;

static void note_lock(struct hearth_dev *dev)
{
	if (!dev_locked(dev))
		lock_held_in_op = false;
}

static int t_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	uint64_t v;

	if (hearth_cfg_u64(cfg, "counter", 0, 0, UINT32_MAX, &v) < 0)
		return -1;
	struct tdev *t = calloc(1, sizeof(*t));
	t->counter = (uint32_t)v;
	for (int i = 0; i < 4; i++)
		t->regs[i] = (uint8_t)(v + (uint64_t)i);
	hearth_dev_set_priv(dev, t);
	return 0;
}

static void t_free(struct hearth_dev *dev)
{
	free(hearth_dev_priv(dev));
}

static int a_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct tdev *t = hearth_dev_priv(dev);

	note_lock(dev);
	if (hearth_ckpt_set_version(ck, save_version) ||
	    hearth_ckpt_put_u32(ck, "counter", t->counter) ||
	    hearth_ckpt_put_bytes(ck, "regs", t->regs, sizeof(t->regs)))
		return -1;
	if (save_newer_field && hearth_ckpt_put_u32(ck, "newer", 1))
		return -1;
	return 0;
}

static int a_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct tdev *t = hearth_dev_priv(dev);

	note_lock(dev);
	t->loads++;
	if (load_fails)
		return hearth_err("register 'regs' holds a value this device refuses");
	if (hearth_ckpt_accept_versions(ck, 1, 2))
		return -1;
	/* version 1 had no regs */
	if (hearth_ckpt_get_u32(ck, "counter", &t->counter))
		return -1;
	if (hearth_ckpt_version(ck) >= 2 &&
	    hearth_ckpt_get_bytes(ck, "regs", t->regs, sizeof(t->regs), NULL))
		return -1;
	return 0;
}

static int b_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct tdev *t = hearth_dev_priv(dev);

	note_lock(dev);
	return hearth_ckpt_put_u32(ck, "b.counter", t->counter);
}

static int b_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct tdev *t = hearth_dev_priv(dev);

	t->loads++;
	if (hearth_ckpt_accept_versions(ck, 1, 1))
		return -1;
	return hearth_ckpt_get_u32(ck, "b.counter", &t->counter);
}

/* Forgets to accept a version. */
static int lazy_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	(void)dev, (void)ck;
	return 0;
}

static int empty_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	(void)dev, (void)ck;
	return 0;
}

HEARTH_DEVICE_CLASS(ckpt_a_class, .name = "test-ckpt-a", .summary = "checkpoint test device",
		    .init = t_init, .free = t_free, .save = a_save, .load = a_load);
HEARTH_DEVICE_CLASS(ckpt_b_class, .name = "test-ckpt-b", .summary = "checkpoint test device",
		    .init = t_init, .free = t_free, .save = b_save, .load = b_load);
HEARTH_DEVICE_CLASS(ckpt_nosave_class, .name = "test-ckpt-nosave",
		    .summary = "checkpoint test device", .init = t_init, .free = t_free);
HEARTH_DEVICE_CLASS(ckpt_noload_class, .name = "test-ckpt-noload",
		    .summary = "checkpoint test device", .init = t_init, .free = t_free,
		    .save = empty_save);
HEARTH_DEVICE_CLASS(ckpt_lazy_class, .name = "test-ckpt-lazy", .summary = "checkpoint test device",
		    .init = t_init, .free = t_free, .save = empty_save, .load = lazy_load);

static struct tdev *tdev(struct fakevm *f, const char *id)
{
	return hearth_dev_priv(hearth_dev_find(&f->vm, id));
}

/* Save the VM's devices into dir. */
static int save_vm(struct fakevm *f)
{
	struct hearth_ckpt_writer *w = writer();
	int ret = ckpt_save_devices(&f->vm, w);

	if (ret == 0)
		ret = hearth_ckpt_writer_finish(w);
	hearth_ckpt_writer_free(w);
	return ret;
}

static int load_vm(struct fakevm *f)
{
	struct hearth_ckpt_reader *r = reader();
	int ret = ckpt_load_devices(&f->vm, r);

	if (ret == 0)
		ret = hearth_ckpt_reader_check_all_consumed(r);
	hearth_ckpt_reader_free(r);
	return ret;
}

static void reset_dev_knobs(void)
{
	lock_held_in_op = true;
	save_version = 2;
	save_newer_field = false;
	load_fails = false;
}

static void devices_round_trip(void **state)
{
	struct fakevm *f = fakevm_new(4096), *g = fakevm_new(4096);
	(void)state;

	reset_dev_knobs();
	assert_non_null(fakevm_dev(f, "test-ckpt-a", "a1", "{\"counter\": 41}"));
	assert_non_null(fakevm_dev(f, "test-ckpt-b", "b1", "{\"counter\": 7}"));
	tdev(f, "a1")->regs[2] = 0x99;
	assert_int_equal(save_vm(f), 0);

	assert_non_null(fakevm_dev(g, "test-ckpt-a", "a1", NULL));
	assert_non_null(fakevm_dev(g, "test-ckpt-b", "b1", NULL));
	assert_int_equal(load_vm(g), 0);
	assert_int_equal(tdev(g, "a1")->counter, 41);
	assert_memory_equal(tdev(g, "a1")->regs, tdev(f, "a1")->regs, 4);
	assert_int_equal(tdev(g, "a1")->regs[2], 0x99);
	assert_int_equal(tdev(g, "b1")->counter, 7);
	assert_int_equal(tdev(g, "a1")->loads, 1);
	assert_true(lock_held_in_op);
	/* the lock is released afterwards */
	assert_int_equal(pthread_mutex_trylock(&hearth_dev_find(&g->vm, "a1")->lock), 0);
	pthread_mutex_unlock(&hearth_dev_find(&g->vm, "a1")->lock);

	/* the class is recorded in the context */
	{
		struct hearth_ckpt_reader *r = reader();
		struct hearth_ckpt *ck = find(r, "devices/a1", 2, 2);
		char cls[64];
		assert_int_equal(hearth_ckpt_get_str(ck, "_class", cls, sizeof(cls)), 0);
		assert_string_equal(cls, "test-ckpt-a");
		hearth_ckpt_reader_free(r);
	}
	fakevm_free(f);
	fakevm_free(g);
}

static void devices_older_version(void **state)
{
	struct fakevm *f = fakevm_new(4096), *g = fakevm_new(4096);
	(void)state;

	reset_dev_knobs();
	save_version = 1;
	assert_non_null(fakevm_dev(f, "test-ckpt-a", "a1", "{\"counter\": 5}"));
	assert_int_equal(save_vm(f), 0);
	assert_non_null(fakevm_dev(g, "test-ckpt-a", "a1", "{\"counter\": 100}"));
	/* the version-1 loader skips regs, so that required field goes unread */
	assert_int_equal(load_vm(g), -1);
	assert_true(msg_has("restoring device 'a1' (test-ckpt-a): checkpoint context "
			    "'devices/a1': unknown required field 'regs'"));
	fakevm_free(f);
	fakevm_free(g);
}

static void devices_refused_before_any_op(void **state)
{
	struct fakevm *f = fakevm_new(4096), *g;
	struct hearth_ckpt_writer *w;
	(void)state;

	reset_dev_knobs();
	assert_non_null(fakevm_dev(f, "test-ckpt-a", "a1", NULL));
	assert_non_null(fakevm_dev(f, "test-ckpt-nosave", "n1", NULL));
	w = writer();
	assert_int_equal(ckpt_save_devices(&f->vm, w), -1);
	assert_true(msg_has("device 'n1' (test-ckpt-nosave) cannot be checkpointed: no save op"));
	assert_int_equal(w->nctx, 0); /* a1 was not saved first */
	hearth_ckpt_writer_free(w);
	fakevm_free(f);

	f = fakevm_new(4096);
	assert_non_null(fakevm_dev(f, "test-ckpt-noload", "x1", NULL));
	assert_int_equal(save_vm(f), -1);
	assert_true(msg_has("device 'x1' (test-ckpt-noload) cannot be checkpointed: no load op"));
	fakevm_free(f);

	/* a checkpoint of a1 + b1 */
	f = fakevm_new(4096);
	assert_non_null(fakevm_dev(f, "test-ckpt-a", "a1", "{\"counter\": 1}"));
	assert_non_null(fakevm_dev(f, "test-ckpt-b", "b1", "{\"counter\": 2}"));
	assert_int_equal(save_vm(f), 0);
	fakevm_free(f);

	/* the VM lacks b1 */
	g = fakevm_new(4096);
	assert_non_null(fakevm_dev(g, "test-ckpt-a", "a1", NULL));
	assert_int_equal(load_vm(g), -1);
	assert_true(msg_has("checkpoint has device 'b1' (test-ckpt-b) that this VM does not have"));
	assert_int_equal(tdev(g, "a1")->loads, 0);
	fakevm_free(g);

	/* the VM has one more */
	g = fakevm_new(4096);
	assert_non_null(fakevm_dev(g, "test-ckpt-a", "a1", NULL));
	assert_non_null(fakevm_dev(g, "test-ckpt-b", "b1", NULL));
	assert_non_null(fakevm_dev(g, "test-ckpt-b", "b2", NULL));
	assert_int_equal(load_vm(g), -1);
	assert_true(msg_has("device 'b2' (test-ckpt-b) is not in the checkpoint (no context "
			    "'devices/b2')"));
	assert_int_equal(tdev(g, "a1")->loads, 0);
	assert_int_equal(tdev(g, "b1")->loads, 0);
	fakevm_free(g);

	/* same id, other class */
	g = fakevm_new(4096);
	assert_non_null(fakevm_dev(g, "test-ckpt-a", "a1", NULL));
	assert_non_null(fakevm_dev(g, "test-ckpt-a", "b1", NULL));
	assert_int_equal(load_vm(g), -1);
	assert_true(msg_has("device 'b1' is a test-ckpt-a in this VM but a test-ckpt-b in the "
			    "checkpoint"));
	assert_int_equal(tdev(g, "a1")->loads, 0);
	fakevm_free(g);

	/* a device without a load op in the restoring VM */
	g = fakevm_new(4096);
	assert_non_null(fakevm_dev(g, "test-ckpt-a", "a1", NULL));
	assert_non_null(fakevm_dev(g, "test-ckpt-nosave", "b1", NULL));
	assert_int_equal(load_vm(g), -1);
	assert_true(msg_has("device 'b1' (test-ckpt-nosave) cannot be checkpointed: no save op"));
	assert_int_equal(tdev(g, "a1")->loads, 0);
	fakevm_free(g);
}

static void devices_load_failures(void **state)
{
	struct fakevm *f = fakevm_new(4096), *g;
	(void)state;

	reset_dev_knobs();
	save_version = 3;
	assert_non_null(fakevm_dev(f, "test-ckpt-a", "a1", NULL));
	assert_int_equal(save_vm(f), 0);
	g = fakevm_new(4096);
	assert_non_null(fakevm_dev(g, "test-ckpt-a", "a1", NULL));
	assert_int_equal(load_vm(g), -1);
	assert_true(msg_has("restoring device 'a1' (test-ckpt-a): checkpoint context "
			    "'devices/a1' has version 3, this hearth reads versions 1..2"));
	fakevm_free(g);

	save_version = 2;
	save_newer_field = true;
	assert_int_equal(save_vm(f), 0);
	g = fakevm_new(4096);
	assert_non_null(fakevm_dev(g, "test-ckpt-a", "a1", NULL));
	assert_int_equal(load_vm(g), -1);
	assert_true(msg_has("restoring device 'a1' (test-ckpt-a): checkpoint context "
			    "'devices/a1': unknown required field 'newer' (u32, version 2)"));
	fakevm_free(g);

	save_newer_field = false;
	load_fails = true;
	assert_int_equal(save_vm(f), 0);
	g = fakevm_new(4096);
	assert_non_null(fakevm_dev(g, "test-ckpt-a", "a1", NULL));
	assert_int_equal(load_vm(g), -1);
	assert_true(msg_has("restoring device 'a1' (test-ckpt-a): register 'regs' holds a value"));
	fakevm_free(g);
	fakevm_free(f);

	/* a load op that never accepts a version */
	f = fakevm_new(4096);
	assert_non_null(fakevm_dev(f, "test-ckpt-lazy", "l1", NULL));
	assert_int_equal(save_vm(f), 0);
	assert_int_equal(load_vm(f), -1);
	assert_true(msg_has("restoring device 'l1' (test-ckpt-lazy): the load op did not accept a "
			    "version of context 'devices/l1'"));
	fakevm_free(f);
}

/* A device context whose class field is missing or not a class name. */
static void devices_bad_class_field(void **state)
{
	struct fakevm *g = fakevm_new(4096);
	struct hearth_ckpt_writer *w = writer();
	struct hearth_ckpt *ck = open_ctx(w, "devices/a1", 1, 0);
	(void)state;

	reset_dev_knobs();
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	finish(w);
	assert_non_null(fakevm_dev(g, "test-ckpt-a", "a1", NULL));
	assert_int_equal(load_vm(g), -1);
	assert_true(msg_has("checkpoint context 'devices/a1' (version 1): missing key '_class'"));
	assert_int_equal(tdev(g, "a1")->loads, 0);
	fakevm_free(g);

	/* a device the VM lacks, whose class is not even a name: the message stays clean */
	w = writer();
	ck = open_ctx(w, "devices/z9", 1, 0);
	assert_int_equal(hearth_ckpt_put_str(ck, "_class", "\x1b[2Jx"), 0);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	finish(w);
	g = fakevm_new(4096);
	assert_int_equal(load_vm(g), -1);
	assert_true(msg_has("checkpoint context 'devices/z9': key '_class' is not a class name"));
	fakevm_free(g);
}

/* An empty VM checkpoints to an empty device set. */
static void devices_none(void **state)
{
	struct fakevm *f = fakevm_new(4096);
	(void)state;

	assert_int_equal(save_vm(f), 0);
	assert_int_equal(load_vm(f), 0);
	fakevm_free(f);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(round_trip_every_type),  T(round_trip_opt_putters),
		T(optional_defaults),	   T(context_versions),
		T(reader_errors),	   T(unknown_fields),
		T(unconsumed_contexts),	   T(writer_errors),
		T(atomic_replace_tmpfile), T(atomic_replace_named_temp),
		T(atomic_bad_args),	   T(devices_round_trip),
		T(devices_older_version),  T(devices_refused_before_any_op),
		T(devices_load_failures),  T(devices_bad_class_field),
		T(devices_none),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
