/* The class registry: building the table, lookups, and the name rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fakevm.h"

static int ok_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	(void)dev, (void)cfg;
	return 0;
}

#define CLASS(ident, nm, src)                                                                      \
	static const struct hearth_dev_class ident = {.source = src, .name = nm, .init = ok_init}

CLASS(c_zeta, "zeta", "zeta.c");
CLASS(c_alpha, "alpha", "alpha.c");
CLASS(c_mid, "Mid-1.x_y", "mid.c");
CLASS(c_alpha2, "alpha", "other/alpha_again.c");
CLASS(c_empty, "", "empty.c");
CLASS(c_digit, "9lives", "digit.c");
CLASS(c_space, "two words", "space.c");
CLASS(c_slash, "a/b", "slash.c");
CLASS(c_null, NULL, "null.c");
static const struct hearth_dev_class c_noinit = {.source = "noinit.c", .name = "noinit"};

static char name64[65], name63[64];

static void make_names(void)
{
	memset(name64, 'a', 64);
	name64[64] = 0;
	memset(name63, 'b', 63);
	name63[63] = 0;
}

/* First: the real table from the linker section (the devices are linked in whole). */
static void linker_section_classes(void **state)
{
	(void)state;
	assert_int_equal(hearth_classes_init(), 0);
	size_t n = hearth_class_count();
	assert_true(n >= 5);
	const struct hearth_dev_class *c = hearth_class_find("cmos");
	assert_non_null(c);
	assert_non_null(strstr(c->source, "cmos.c"));
	assert_non_null(hearth_class_find("testdev"));
	/* idempotent: a second call keeps the same table */
	assert_int_equal(hearth_classes_init(), 0);
	assert_int_equal(hearth_class_count(), n);
	assert_ptr_equal(hearth_class_find("cmos"), c);
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(hearth_class_at(i - 1)->name, hearth_class_at(i)->name) < 0);
}

static void valid_list_sorted(void **state)
{
	const struct hearth_dev_class *list[] = {&c_zeta, &c_alpha, &c_mid};

	(void)state;
	assert_int_equal(hearth_classes_build(list, 3), 0);
	assert_int_equal(hearth_class_count(), 3);
	/* strcmp order: upper case sorts before lower case */
	assert_ptr_equal(hearth_class_at(0), &c_mid);
	assert_ptr_equal(hearth_class_at(1), &c_alpha);
	assert_ptr_equal(hearth_class_at(2), &c_zeta);
	assert_null(hearth_class_at(3));
	assert_null(hearth_class_at((size_t)-1));
	assert_ptr_equal(hearth_class_find("zeta"), &c_zeta);
	assert_ptr_equal(hearth_class_find("alpha"), &c_alpha);
	assert_ptr_equal(hearth_class_find("Mid-1.x_y"), &c_mid);
	assert_null(hearth_class_find("alph"));
	assert_null(hearth_class_find("alphaa"));
	assert_null(hearth_class_find("mid-1.x_y")); /* case matters */
	assert_null(hearth_class_find(""));
	assert_null(hearth_class_find("zzz"));
	/* the table is built once: init keeps this one */
	assert_int_equal(hearth_classes_init(), 0);
	assert_int_equal(hearth_class_count(), 3);
}

static void many_classes_lookup(void **state)
{
	static struct hearth_dev_class many[200];
	static char names[200][16];
	const struct hearth_dev_class *list[200];

	(void)state;
	for (int i = 0; i < 200; i++) {
		/* reverse order so the build has to sort */
		snprintf(names[i], sizeof(names[i]), "c%03d", 199 - i);
		many[i] = (struct hearth_dev_class){
			.source = "many.c", .name = names[i], .init = ok_init};
		list[i] = &many[i];
	}
	assert_int_equal(hearth_classes_build(list, 200), 0);
	assert_int_equal(hearth_class_count(), 200);
	for (int i = 0; i < 200; i++) {
		char n[16];
		snprintf(n, sizeof(n), "c%03d", i);
		assert_ptr_equal(hearth_class_find(n), &many[199 - i]);
		assert_string_equal(hearth_class_at((size_t)i)->name, n);
	}
	assert_null(hearth_class_find("c200"));
	assert_null(hearth_class_find("c"));
}

static void empty_list(void **state)
{
	(void)state;
	assert_int_equal(hearth_classes_build(NULL, 0), 0);
	assert_int_equal(hearth_class_count(), 0);
	assert_null(hearth_class_at(0));
	assert_null(hearth_class_find("alpha"));
}

static void duplicate_names_both_sources(void **state)
{
	const struct hearth_dev_class *good[] = {&c_zeta, &c_alpha};
	const struct hearth_dev_class *dup[] = {&c_alpha, &c_zeta, &c_alpha2};

	(void)state;
	assert_int_equal(hearth_classes_build(good, 2), 0);
	hearth_err_clear();
	assert_int_equal(hearth_classes_build(dup, 3), -1);
	const char *m = hearth_err_msg();
	assert_non_null(strstr(m, "'alpha'"));
	assert_non_null(strstr(m, "twice"));
	assert_non_null(strstr(m, "alpha.c"));
	assert_non_null(strstr(m, "other/alpha_again.c"));
	/* a failed build leaves the previous table alone */
	assert_int_equal(hearth_class_count(), 2);
	assert_ptr_equal(hearth_class_find("alpha"), &c_alpha);
	assert_ptr_equal(hearth_class_find("zeta"), &c_zeta);
}

static void expect_build_error(const struct hearth_dev_class *bad, const char *why)
{
	const struct hearth_dev_class *list[] = {&c_alpha, bad, &c_zeta};
	const struct hearth_dev_class *good[] = {&c_mid};

	assert_int_equal(hearth_classes_build(good, 1), 0);
	hearth_err_clear();
	assert_int_equal(hearth_classes_build(list, 3), -1);
	assert_non_null(strstr(hearth_err_msg(), bad->source));
	assert_non_null(strstr(hearth_err_msg(), why));
	assert_int_equal(hearth_class_count(), 1);
	assert_ptr_equal(hearth_class_at(0), &c_mid);
}

static void invalid_names(void **state)
{
	struct hearth_dev_class long_name = {.source = "long.c", .name = name64, .init = ok_init};
	struct hearth_dev_class max_name = {.source = "max.c", .name = name63, .init = ok_init};
	const struct hearth_dev_class *list[] = {&max_name};

	(void)state;
	make_names();
	expect_build_error(&c_empty, "invalid name");
	expect_build_error(&c_digit, "invalid name");
	expect_build_error(&c_space, "invalid name");
	expect_build_error(&c_slash, "invalid name");
	expect_build_error(&c_null, "invalid name");
	expect_build_error(&long_name, "invalid name");
	assert_non_null(strstr(hearth_err_msg(), name64)); /* named in full, not cut */
	assert_int_equal(hearth_classes_build(list, 1), 0);
	assert_ptr_equal(hearth_class_find(name63), &max_name);
}

static void missing_init(void **state)
{
	(void)state;
	expect_build_error(&c_noinit, "no init function");
	assert_non_null(strstr(hearth_err_msg(), "'noinit'"));
}

static void name_rules(void **state)
{
	(void)state;
	make_names();
	assert_false(hearth_name_valid(NULL));
	assert_false(hearth_name_valid(""));
	assert_true(hearth_name_valid("a"));
	assert_true(hearth_name_valid("Z"));
	assert_true(hearth_name_valid("a_b-c.d9"));
	assert_true(hearth_name_valid("com1"));
	assert_true(hearth_name_valid(name63));
	assert_false(hearth_name_valid(name64));
	assert_false(hearth_name_valid("1abc"));
	assert_false(hearth_name_valid("_a"));
	assert_false(hearth_name_valid("-a"));
	assert_false(hearth_name_valid(".a"));
	assert_false(hearth_name_valid("a b"));
	assert_false(hearth_name_valid("a/b"));
	assert_false(hearth_name_valid("a:b"));
	assert_false(hearth_name_valid("a\n"));
	assert_false(hearth_name_valid("a\xc3\xa9"));
	assert_false(hearth_name_valid("\xc3\xa9"));
	/* one bad character anywhere */
	char n[64];
	for (int pos = 1; pos < 63; pos++) {
		memset(n, 'x', 63);
		n[63] = 0;
		n[pos] = '!';
		assert_false(hearth_name_valid(n));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(linker_section_classes),
		cmocka_unit_test(valid_list_sorted),
		cmocka_unit_test(many_classes_lookup),
		cmocka_unit_test(empty_list),
		cmocka_unit_test(duplicate_names_both_sources),
		cmocka_unit_test(invalid_names),
		cmocka_unit_test(missing_init),
		cmocka_unit_test(name_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
