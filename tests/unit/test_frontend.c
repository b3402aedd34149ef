/* Frontends and backends: registration, every way a connection can fail, and release when
 * either side is removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakevm.h"

static int owner_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	(void)dev, (void)cfg;
	return 0;
}

static const struct hearth_dev_class c_owner = {
	.source = "t.c", .name = "owner", .init = owner_init};

static const int blk_ops = 1, char_ops = 2;
static int blk_opaque, char_opaque;

static int setup(void **state)
{
	const struct hearth_dev_class *list[] = {&c_owner};

	if (hearth_classes_build(list, 1) < 0)
		return -1;
	*state = fakevm_new(4096);
	return 0;
}

static int teardown(void **state)
{
	fakevm_free(*state);
	return 0;
}

static struct hearth_dev *dev(struct fakevm *f, const char *id)
{
	struct hearth_dev *d = fakevm_dev(f, "owner", id, NULL);
	assert_non_null(d);
	return d;
}

static void type_names(void **state)
{
	(void)state;
	assert_string_equal(hearth_fe_type_name(HEARTH_FE_BLK), "blk");
	assert_string_equal(hearth_fe_type_name(HEARTH_FE_NET), "net");
	assert_string_equal(hearth_fe_type_name(HEARTH_FE_CHAR), "char");
	assert_string_equal(hearth_fe_type_name(HEARTH_FE_CONSOLE), "console");
	assert_string_equal(hearth_fe_type_name((enum hearth_fe_type)42), "?");
}

static void register_twice_refused(void **state)
{
	struct fakevm *f = *state;
	struct hearth_dev *disk = dev(f, "disk0");

	assert_int_equal(hearth_frontend_register(disk, HEARTH_FE_BLK, &blk_ops, &blk_opaque), 0);
	hearth_err_clear();
	assert_int_equal(hearth_frontend_register(disk, HEARTH_FE_CHAR, &char_ops, NULL), -1);
	assert_non_null(strstr(hearth_err_msg(), "'disk0'"));
	assert_non_null(strstr(hearth_err_msg(), "blk"));
	assert_non_null(f->vm.frontends);
	assert_null(f->vm.frontends->next);
	assert_int_equal(f->vm.frontends->type, HEARTH_FE_BLK);
}

static void connect_errors_and_success(void **state)
{
	struct fakevm *f = *state;
	struct hearth_dev *uart = dev(f, "com1"), *plain = dev(f, "rtc");
	struct hearth_dev *be = dev(f, "stdio"), *be2 = dev(f, "file");
	const void *ops = NULL;
	void *opaque = NULL;

	assert_int_equal(hearth_frontend_register(uart, HEARTH_FE_CHAR, &char_ops, &char_opaque),
			 0);

	hearth_err_clear();
	assert_int_equal(hearth_frontend_connect(be, NULL, HEARTH_FE_CHAR, &ops, &opaque), -1);
	assert_non_null(strstr(hearth_err_msg(), "'stdio' names no frontend"));
	assert_int_equal(hearth_frontend_connect(be, "", HEARTH_FE_CHAR, &ops, &opaque), -1);
	assert_non_null(strstr(hearth_err_msg(), "names no frontend"));

	hearth_err_clear();
	assert_int_equal(hearth_frontend_connect(be, "com2", HEARTH_FE_CHAR, &ops, &opaque), -1);
	assert_non_null(strstr(hearth_err_msg(), "'stdio'"));
	assert_non_null(strstr(hearth_err_msg(), "no frontend 'com2'"));

	hearth_err_clear();
	assert_int_equal(hearth_frontend_connect(be, "rtc", HEARTH_FE_CHAR, &ops, &opaque), -1);
	assert_non_null(strstr(hearth_err_msg(), "device 'rtc' is not a frontend"));
	(void)plain;

	hearth_err_clear();
	assert_int_equal(hearth_frontend_connect(be, "com1", HEARTH_FE_BLK, &ops, &opaque), -1);
	assert_non_null(strstr(hearth_err_msg(), "'com1' is char, not blk"));
	assert_null(ops);
	assert_null(opaque);
	assert_null(f->vm.frontends->backend);

	assert_int_equal(hearth_frontend_connect(be, "com1", HEARTH_FE_CHAR, &ops, &opaque), 0);
	assert_ptr_equal(ops, &char_ops);
	assert_ptr_equal(opaque, &char_opaque);
	assert_ptr_equal(f->vm.frontends->backend, be);

	ops = opaque = NULL;
	hearth_err_clear();
	assert_int_equal(hearth_frontend_connect(be2, "com1", HEARTH_FE_CHAR, &ops, &opaque), -1);
	assert_non_null(strstr(hearth_err_msg(), "'file'"));
	assert_non_null(strstr(hearth_err_msg(), "already connected to 'stdio'"));
	assert_null(ops);
	assert_ptr_equal(f->vm.frontends->backend, be);
}

static void several_frontends(void **state)
{
	struct fakevm *f = *state;
	const char *ids[] = {"com1", "com2", "vda", "net0", "hvc0"};
	enum hearth_fe_type types[] = {HEARTH_FE_CHAR, HEARTH_FE_CHAR, HEARTH_FE_BLK, HEARTH_FE_NET,
				       HEARTH_FE_CONSOLE};
	int opaques[5];
	const void *ops;
	void *opaque;

	for (int i = 0; i < 5; i++)
		assert_int_equal(hearth_frontend_register(dev(f, ids[i]), types[i], &opaques[i],
							  &opaques[i]),
				 0);
	for (int i = 4; i >= 0; i--) {
		char beid[16];
		snprintf(beid, sizeof(beid), "be%d", i);
		struct hearth_dev *be = dev(f, beid);
		assert_int_equal(hearth_frontend_connect(be, ids[i], types[i], &ops, &opaque), 0);
		assert_ptr_equal(ops, &opaques[i]);
		assert_ptr_equal(opaque, &opaques[i]);
	}
}

static void released_on_removal(void **state)
{
	struct fakevm *f = *state;
	struct hearth_dev *uart = dev(f, "com1"), *be = dev(f, "stdio"), *be2 = dev(f, "pty");
	const void *ops;
	void *opaque;

	assert_int_equal(hearth_frontend_register(uart, HEARTH_FE_CHAR, &char_ops, NULL), 0);
	assert_int_equal(hearth_frontend_connect(be, "com1", HEARTH_FE_CHAR, &ops, &opaque), 0);
	assert_int_equal(hearth_frontend_connect(be2, "com1", HEARTH_FE_CHAR, &ops, &opaque), -1);
	/* the frontend cannot go while connected */
	assert_int_equal(hearth_dev_remove(uart), -1);
	assert_non_null(strstr(hearth_err_msg(), "'stdio'"));
	/* the backend goes: the frontend is free for another */
	assert_int_equal(hearth_dev_remove(be), 0);
	assert_null(f->vm.frontends->backend);
	assert_int_equal(hearth_frontend_connect(be2, "com1", HEARTH_FE_CHAR, &ops, &opaque), 0);
	assert_int_equal(hearth_dev_remove(be2), 0);
	/* the frontend goes: its registration with it */
	assert_int_equal(hearth_dev_remove(uart), 0);
	assert_null(f->vm.frontends);
	struct hearth_dev *be3 = dev(f, "file");
	hearth_err_clear();
	assert_int_equal(hearth_frontend_connect(be3, "com1", HEARTH_FE_CHAR, &ops, &opaque), -1);
	assert_non_null(strstr(hearth_err_msg(), "no frontend 'com1'"));
	/* a new device may take the id and register again */
	struct hearth_dev *uart2 = dev(f, "com1");
	assert_int_equal(hearth_frontend_register(uart2, HEARTH_FE_CHAR, &char_ops, NULL), 0);
	assert_int_equal(hearth_frontend_connect(be3, "com1", HEARTH_FE_CHAR, &ops, &opaque), 0);
}

/* A device that is both (a mux): removing it is allowed when it is its own backend. */
static void own_backend(void **state)
{
	struct fakevm *f = *state;
	struct hearth_dev *mux = dev(f, "mux");
	const void *ops;
	void *opaque;

	assert_int_equal(hearth_frontend_register(mux, HEARTH_FE_CONSOLE, &char_ops, NULL), 0);
	assert_int_equal(hearth_frontend_connect(mux, "mux", HEARTH_FE_CONSOLE, &ops, &opaque), 0);
	assert_int_equal(hearth_dev_remove(mux), 0);
	assert_null(f->vm.frontends);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(type_names),  T(register_twice_refused),
		T(connect_errors_and_success), T(several_frontends),
		T(released_on_removal),	       T(own_backend),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
