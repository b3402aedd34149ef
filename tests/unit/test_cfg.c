/* Configuration nodes: every getter with its default, JSON-typed and string forms, and each
 * way a value is refused; the unknown-key check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config/cfg.h"
#include "hearth/error.h"

static struct hearth_cfg *cfg_of(const char *json)
{
	struct json_object *o = json_tokener_parse(json);
	assert_non_null(o);
	struct hearth_cfg *c = cfg_new(o, "device 'dev0'");
	json_object_put(o); /* the node holds its own reference */
	assert_non_null(c);
	return c;
}

static void assert_err(const char *a, const char *b)
{
	const char *m = hearth_err_msg();
	if (!strstr(m, a) || (b && !strstr(m, b)))
		fail_msg("error '%s' lacks '%s' / '%s'", m, a, b ? b : "");
	assert_non_null(strstr(m, "device 'dev0'"));
}

/* ---- strings ---- */

static void str_getter(void **state)
{
	struct hearth_cfg *c = cfg_of("{\"path\": \"/tmp/x\", \"n\": 3, \"empty\": \"\"}");
	const char *s = NULL;

	(void)state;
	assert_int_equal(hearth_cfg_str(c, "path", "def", &s), 0);
	assert_string_equal(s, "/tmp/x");
	assert_int_equal(hearth_cfg_str(c, "empty", "def", &s), 0);
	assert_string_equal(s, "");
	assert_int_equal(hearth_cfg_str(c, "missing", "def", &s), 0);
	assert_string_equal(s, "def");
	assert_int_equal(hearth_cfg_str(c, "missing", NULL, &s), 0);
	assert_null(s);
	hearth_err_clear();
	s = "untouched";
	assert_int_equal(hearth_cfg_str(c, "n", "def", &s), -1);
	assert_err("'n'", "expected a string");
	assert_string_equal(s, "untouched");
	cfg_free(c);
}

/* ---- integers ---- */

static void expect_u64(const char *json, uint64_t min, uint64_t max, uint64_t want)
{
	struct hearth_cfg *c = cfg_of(json);
	uint64_t v = 12345;

	if (hearth_cfg_u64(c, "k", 7, min, max, &v) != 0)
		fail_msg("%s: %s", json, hearth_err_msg());
	assert_int_equal(v, want);
	cfg_free(c);
}

static void expect_u64_error(const char *json, uint64_t min, uint64_t max, const char *why)
{
	struct hearth_cfg *c = cfg_of(json);
	uint64_t v = 12345;

	hearth_err_clear();
	if (hearth_cfg_u64(c, "k", 7, min, max, &v) != -1)
		fail_msg("%s accepted as %llu", json, (unsigned long long)v);
	assert_err("'k'", why);
	assert_int_equal(v, 12345);
	cfg_free(c);
}

static void u64_getter(void **state)
{
	(void)state;
	expect_u64("{}", 0, 100, 7); /* default */
	expect_u64("{\"other\": 1}", 0, 100, 7);
	expect_u64("{\"k\": 42}", 0, 100, 42);
	expect_u64("{\"k\": 0}", 0, 100, 0);
	expect_u64("{\"k\": \"42\"}", 0, 100, 42);
	expect_u64("{\"k\": \"0x2a\"}", 0, 100, 42);
	expect_u64("{\"k\": \"0X2A\"}", 0, 100, 42);
	expect_u64("{\"k\": \"010\"}", 0, 100, 10); /* decimal, never octal */
	expect_u64("{\"k\": \"0\"}", 0, 100, 0);
	expect_u64("{\"k\": 100}", 100, 100, 100); /* both bounds inclusive */
	expect_u64("{\"k\": 9223372036854775807}", 0, UINT64_MAX, INT64_MAX);
	expect_u64("{\"k\": 18446744073709551615}", 0, UINT64_MAX, UINT64_MAX);
	expect_u64("{\"k\": \"18446744073709551615\"}", 0, UINT64_MAX, UINT64_MAX);
	expect_u64("{\"k\": \"0xffffffffffffffff\"}", 0, UINT64_MAX, UINT64_MAX);

	expect_u64_error("{\"k\": 101}", 0, 100, "101 is outside 0..100");
	expect_u64_error("{\"k\": 4}", 5, 100, "outside 5..100");
	expect_u64_error("{\"k\": \"0x65\"}", 0, 100, "outside");
	expect_u64_error("{\"k\": -1}", 0, 100, "-1");
	expect_u64_error("{\"k\": -9223372036854775807}", 0, 100, "expected an integer");
	expect_u64_error("{\"k\": \"-1\"}", 0, 100, "'-1'");
	expect_u64_error("{\"k\": \"+1\"}", 0, 100, "expected an integer");
	expect_u64_error("{\"k\": \" 1\"}", 0, 100, "expected an integer");
	expect_u64_error("{\"k\": \"1 \"}", 0, 100, "expected an integer");
	expect_u64_error("{\"k\": \"12abc\"}", 0, 100, "'12abc'");
	expect_u64_error("{\"k\": \"\"}", 0, 100, "expected an integer");
	expect_u64_error("{\"k\": \"0x\"}", 0, 100, "'0x'");
	expect_u64_error("{\"k\": \"0xg\"}", 0, 100, "'0xg'");
	expect_u64_error("{\"k\": \"0x-1\"}", 0, 100, "'0x-1'");
	expect_u64_error("{\"k\": \"0x 1\"}", 0, 100, "expected an integer");
	expect_u64_error("{\"k\": \"08x\"}", 0, 100, "expected an integer");
	expect_u64_error("{\"k\": \"18446744073709551616\"}", 0, UINT64_MAX, "expected an integer");
	expect_u64_error("{\"k\": \"0x10000000000000000\"}", 0, UINT64_MAX, "expected an integer");
	expect_u64_error("{\"k\": \"4K\"}", 0, UINT64_MAX, "'4K'"); /* sizes are not integers */
	expect_u64_error("{\"k\": 1.5}", 0, 100, "got double");
	expect_u64_error("{\"k\": true}", 0, 100, "got boolean");
	expect_u64("{\"k\": null}", 0, 100, 7); /* JSON null means "not set" */
	expect_u64_error("{\"k\": [1]}", 0, 100, "got array");
	expect_u64_error("{\"k\": {}}", 0, 100, "got object");
}

/* ---- sizes ---- */

static void expect_size(const char *s, uint64_t want)
{
	char json[128];
	uint64_t v = 0;

	snprintf(json, sizeof(json), "{\"k\": \"%s\"}", s);
	struct hearth_cfg *c = cfg_of(json);
	if (hearth_cfg_size(c, "k", 1, 0, UINT64_MAX, &v) != 0)
		fail_msg("'%s': %s", s, hearth_err_msg());
	assert_int_equal(v, want);
	cfg_free(c);
	/* the raw parser agrees */
	assert_int_equal(cfg_parse_size(s, &v), 0);
	assert_int_equal(v, want);
}

static void expect_size_error(const char *s)
{
	char json[128];
	uint64_t v = 99;

	snprintf(json, sizeof(json), "{\"k\": \"%s\"}", s);
	struct hearth_cfg *c = cfg_of(json);
	hearth_err_clear();
	if (hearth_cfg_size(c, "k", 1, 0, UINT64_MAX, &v) != -1)
		fail_msg("'%s' accepted as %llu", s, (unsigned long long)v);
	assert_err("'k'", "a size");
	assert_int_equal(v, 99);
	cfg_free(c);
	assert_int_equal(cfg_parse_size(s, &v), -1);
	assert_int_equal(v, 99);
}

static void size_getter(void **state)
{
	struct hearth_cfg *c;
	uint64_t v;

	(void)state;
	expect_size("0", 0);
	expect_size("4096", 4096);
	expect_size("4K", 4096);
	expect_size("4k", 4096);
	expect_size("4KB", 4096);
	expect_size("4kb", 4096);
	expect_size("4KiB", 4096);
	expect_size("4kib", 4096);
	expect_size("256M", 256ull << 20);
	expect_size("256MiB", 256ull << 20);
	expect_size("3G", 3ull << 30);
	expect_size("3GB", 3ull << 30);
	expect_size("1T", 1ull << 40);
	expect_size("1TiB", 1ull << 40);
	expect_size("16777215T", 16777215ull << 40);
	expect_size("010M", 10ull << 20);
	expect_size("18446744073709551615", UINT64_MAX);

	expect_size_error("");
	expect_size_error("K");
	expect_size_error("-4K");
	expect_size_error("+4K");
	expect_size_error(" 4K");
	expect_size_error("4 K");
	expect_size_error("4X");
	expect_size_error("4B");
	expect_size_error("4iB");
	expect_size_error("4KBB");
	expect_size_error("4Ki");
	expect_size_error("4KiBx");
	expect_size_error("4Kx");
	expect_size_error("4.5M");
	expect_size_error("0x10");
	expect_size_error("16777216T"); /* 2^64 */
	expect_size_error("17179869184G");
	expect_size_error("18446744073709551616");

	/* JSON integers are bytes */
	c = cfg_of("{\"k\": 65536, \"neg\": -4096, \"f\": 1.0, \"b\": false}");
	assert_int_equal(hearth_cfg_size(c, "k", 1, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(hearth_cfg_size(c, "missing", 1234, 0, 10, &v), 0);
	assert_int_equal(v, 1234); /* the default is not range-checked */
	hearth_err_clear();
	assert_int_equal(hearth_cfg_size(c, "k", 1, 0, 65535, &v), -1);
	assert_err("'k'", "65536 is outside 0..65535");
	assert_int_equal(hearth_cfg_size(c, "k", 1, 65537, UINT64_MAX, &v), -1);
	assert_int_equal(hearth_cfg_size(c, "neg", 1, 0, UINT64_MAX, &v), -1);
	assert_err("'neg'", "-4096");
	assert_int_equal(hearth_cfg_size(c, "f", 1, 0, UINT64_MAX, &v), -1);
	assert_err("'f'", "got double");
	assert_int_equal(hearth_cfg_size(c, "b", 1, 0, UINT64_MAX, &v), -1);
	assert_err("'b'", "got boolean");
	cfg_free(c);

	c = cfg_of("{\"k\": \"2M\"}");
	assert_int_equal(hearth_cfg_size(c, "k", 1, 4ull << 20, UINT64_MAX, &v), -1);
	assert_err("'k'", "2097152 is outside 4194304..");
	cfg_free(c);
	assert_int_equal(cfg_parse_size(NULL, &v), -1);
	assert_int_equal(cfg_parse_u64(NULL, &v), -1);
}

/* ---- booleans ---- */

static void bool_getter(void **state)
{
	struct hearth_cfg *c = cfg_of("{\"t\": true, \"f\": false}");
	const char *yes[] = {"on", "true", "yes", "1"}, *no[] = {"off", "false", "no", "0"};
	const char *bad[] = {"", "On", "TRUE", "y", "2", "enable", " on", "on "};
	bool v;

	(void)state;
	assert_int_equal(hearth_cfg_bool(c, "t", false, &v), 0);
	assert_true(v);
	assert_int_equal(hearth_cfg_bool(c, "f", true, &v), 0);
	assert_false(v);
	assert_int_equal(hearth_cfg_bool(c, "missing", true, &v), 0);
	assert_true(v);
	assert_int_equal(hearth_cfg_bool(c, "missing", false, &v), 0);
	assert_false(v);
	cfg_free(c);

	for (int i = 0; i < 4; i++) {
		char json[64];
		snprintf(json, sizeof(json), "{\"y\": \"%s\", \"n\": \"%s\"}", yes[i], no[i]);
		c = cfg_of(json);
		v = false;
		assert_int_equal(hearth_cfg_bool(c, "y", false, &v), 0);
		assert_true(v);
		assert_int_equal(hearth_cfg_bool(c, "n", true, &v), 0);
		assert_false(v);
		cfg_free(c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char json[64];
		snprintf(json, sizeof(json), "{\"k\": \"%s\"}", bad[i]);
		c = cfg_of(json);
		hearth_err_clear();
		v = true;
		assert_int_equal(hearth_cfg_bool(c, "k", false, &v), -1);
		assert_err("'k'", "on/off");
		assert_true(v);
		cfg_free(c);
	}
	c = cfg_of("{\"i\": 1, \"z\": 0, \"n\": null, \"a\": []}");
	assert_int_equal(hearth_cfg_bool(c, "i", false, &v), -1);
	assert_err("'i'", "on/off");
	assert_int_equal(hearth_cfg_bool(c, "z", false, &v), -1);
	assert_int_equal(hearth_cfg_bool(c, "a", false, &v), -1);
	v = false;
	assert_int_equal(hearth_cfg_bool(c, "n", true, &v), 0); /* null: the default */
	assert_true(v);
	cfg_free(c);
}

/* ---- keys nobody read ---- */

static void first_unused_and_has(void **state)
{
	struct hearth_cfg *c = cfg_of("{\"a\": 1, \"b\": \"x\", \"c\": true}");
	uint64_t u;
	const char *s;
	bool b;

	(void)state;
	assert_string_equal(cfg_first_unused(c), "a");
	assert_int_equal(hearth_cfg_u64(c, "a", 0, 0, 10, &u), 0);
	assert_string_equal(cfg_first_unused(c), "b");
	/* a getter that fails still counts as having read the key */
	assert_int_equal(hearth_cfg_u64(c, "b", 0, 0, 10, &u), -1);
	assert_string_equal(cfg_first_unused(c), "c");
	/* reading absent keys changes nothing */
	assert_int_equal(hearth_cfg_str(c, "zzz", NULL, &s), 0);
	assert_false(hearth_cfg_has(c, "yyy"));
	assert_string_equal(cfg_first_unused(c), "c");
	/* has marks the key as read */
	assert_true(hearth_cfg_has(c, "c"));
	assert_null(cfg_first_unused(c));
	/* reading twice is harmless */
	assert_int_equal(hearth_cfg_bool(c, "c", false, &b), 0);
	assert_int_equal(hearth_cfg_bool(c, "c", false, &b), 0);
	assert_null(cfg_first_unused(c));
	cfg_free(c);

	c = cfg_of("{}");
	assert_null(cfg_first_unused(c));
	cfg_free(c);

	/* marking by name, for keys a device handles itself */
	c = cfg_of("{\"x\": 1}");
	cfg_mark_used(c, "x");
	assert_null(cfg_first_unused(c));
	cfg_free(c);
}

static void where_and_nodes(void **state)
{
	struct json_object *o = json_object_new_object();
	struct hearth_cfg *c;
	const char *s;

	(void)state;
	json_object_object_add(o, "k", json_object_new_string("v"));
	c = cfg_new(o, "device 'com1'");
	assert_string_equal(hearth_cfg_where(c), "device 'com1'");
	assert_ptr_equal(cfg_json(c), o);
	json_object_put(o); /* the node keeps it alive */
	assert_int_equal(hearth_cfg_str(c, "k", NULL, &s), 0);
	assert_string_equal(s, "v");
	hearth_err_clear();
	assert_int_equal(hearth_cfg_bool(c, "k", false, (bool[1]){0}), -1);
	assert_non_null(strstr(hearth_err_msg(), "device 'com1': key 'k'"));
	cfg_free(c);

	/* no object: an empty node */
	c = cfg_new(NULL, "flags");
	assert_non_null(c);
	assert_string_equal(hearth_cfg_where(c), "flags");
	assert_false(hearth_cfg_has(c, "k"));
	assert_null(cfg_first_unused(c));
	assert_int_equal(json_object_object_length(cfg_json(c)), 0);
	cfg_free(c);
	cfg_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(str_getter),		cmocka_unit_test(u64_getter),
		cmocka_unit_test(size_getter),		cmocka_unit_test(bool_getter),
		cmocka_unit_test(first_unused_and_has), cmocka_unit_test(where_and_nodes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
