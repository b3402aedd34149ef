/* `hearth devices` text and the API's GET /devices JSON come from one walk
 * (src/dev/inventory.c): the same devices, resources and links in both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dev/inventory.h"
#include "fakevm.h"

static struct fakevm *f;

static int setup(void **state)
{
	(void)state;
	f = fakevm_new(1 << 20);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fakevm_free(f);
	return 0;
}

static void make(const char *cls, const char *id, const char *json)
{
	if (!fakevm_dev(f, cls, id, json))
		fail_msg("%s '%s': %s", cls, id, hearth_err_msg());
}

static void build(void)
{
	make("testdev", "t0", NULL);
	make("uart8250", "com1", NULL);
	make("char-file", "s0", "{\"path\": \"/dev/null\", \"frontend\": \"com1\"}");
	make("uart8250", "com2", "{\"port\": 760, \"irq\": 3}");
	make("pci-host", "pci", NULL);
}

/* The format `hearth devices` has always printed, resource by resource. */
static const char expected_text[] = "t0           testdev\n"
				    "    port  0x0700-0x070f\n"
				    "    mmio  0xd0000000-0xd0000fff\n"
				    "    msr   0x4b564e00\n"
				    "    cpuid 0x40000100\n"
				    "    hypercall 1213355080\n"
				    "com1         uart8250\n"
				    "    port  0x03f8-0x03ff\n"
				    "    char frontend, backend: s0\n"
				    "s0           char-file\n"
				    "    char backend of 'com1'\n"
				    "    /dev/null\n"
				    "com2         uart8250\n"
				    "    port  0x02f8-0x02ff\n"
				    "    char frontend, backend: (none)\n"
				    "pci          pci-host\n"
				    "    port  0x0cf8-0x0cff\n"
				    "    mmio  0xe0000000-0xe00fffff\n";

static void test_text(void **state)
{
	char *text;
	size_t len;
	FILE *out = open_memstream(&text, &len);

	(void)state;
	build();
	machine_print(&f->vm, out);
	fclose(out);
	/* pci-host's describe line depends on the platform's windows: check its start */
	assert_int_equal(strncmp(text, expected_text, strlen(expected_text)), 0);
	assert_non_null(strstr(text + strlen(expected_text), "    pci 00:00.0 host bridge"));
	free(text);
}

static struct json_object *dev_of(struct json_object *all, const char *id)
{
	for (size_t i = 0; i < json_object_array_length(all); i++) {
		struct json_object *d = json_object_array_get_idx(all, i), *v;
		if (json_object_object_get_ex(d, "id", &v) &&
		    !strcmp(json_object_get_string(v), id))
			return d;
	}
	fail_msg("no device '%s'", id);
	return NULL;
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no key '%s' in %s", key, json_object_to_json_string(o));
	return v;
}

static int64_t num(struct json_object *o, const char *key)
{
	return json_object_get_int64(get(o, key));
}

static void test_json(void **state)
{
	struct json_object *all, *d, *res, *r, *fe;

	(void)state;
	build();
	all = machine_json(&f->vm);
	assert_non_null(all);
	assert_int_equal(json_object_array_length(all), 5);

	d = dev_of(all, "t0");
	assert_string_equal(json_object_get_string(get(d, "class")), "testdev");
	res = get(d, "resources");
	assert_int_equal(json_object_array_length(res), 5);
	r = json_object_array_get_idx(res, 0);
	assert_string_equal(json_object_get_string(get(r, "type")), "port");
	assert_int_equal(num(r, "start"), 0x700);
	assert_int_equal(num(r, "end"), 0x70f);
	r = json_object_array_get_idx(res, 1);
	assert_string_equal(json_object_get_string(get(r, "type")), "mmio");
	assert_int_equal(num(r, "start"), 0xd0000000);
	assert_int_equal(num(r, "end"), 0xd0000fff);
	r = json_object_array_get_idx(res, 2);
	assert_int_equal(num(r, "msr"), 0x4b564e00);
	r = json_object_array_get_idx(res, 3);
	assert_string_equal(json_object_get_string(get(r, "type")), "cpuid");
	assert_int_equal(num(r, "leaf"), 0x40000100);
	/* the hook takes every subleaf: no subleaf key */
	assert_false(json_object_object_get_ex(r, "subleaf", NULL));
	r = json_object_array_get_idx(res, 4);
	assert_int_equal(num(r, "nr"), 1213355080);
	assert_false(json_object_object_get_ex(d, "info", NULL));

	d = dev_of(all, "com1");
	r = json_object_array_get_idx(get(d, "resources"), 0);
	assert_int_equal(num(r, "start"), 0x3f8);
	assert_int_equal(num(r, "end"), 0x3ff);
	fe = json_object_array_get_idx(get(d, "frontends"), 0);
	assert_string_equal(json_object_get_string(get(fe, "type")), "char");
	assert_string_equal(json_object_get_string(get(fe, "backend")), "s0");
	assert_int_equal(json_object_array_length(get(d, "backend_for")), 0);

	d = dev_of(all, "s0");
	assert_int_equal(json_object_array_length(get(d, "resources")), 0);
	fe = json_object_array_get_idx(get(d, "backend_for"), 0);
	assert_string_equal(json_object_get_string(get(fe, "frontend")), "com1");
	assert_string_equal(json_object_get_string(get(d, "info")), "/dev/null");

	/* an unconnected frontend says so with null */
	d = dev_of(all, "com2");
	fe = json_object_array_get_idx(get(d, "frontends"), 0);
	assert_true(json_object_is_type(get(fe, "backend"), json_type_null));

	d = dev_of(all, "pci");
	assert_int_equal(json_object_array_length(get(d, "resources")), 2);
	assert_non_null(strstr(json_object_get_string(get(d, "info")), "host bridge"));
	json_object_put(all);
}

static void test_empty(void **state)
{
	struct json_object *all;
	char *text;
	size_t len;
	FILE *out = open_memstream(&text, &len);

	(void)state;
	machine_print(&f->vm, out);
	fclose(out);
	assert_int_equal(len, 0);
	free(text);
	all = machine_json(&f->vm);
	assert_non_null(all);
	assert_int_equal(json_object_array_length(all), 0);
	json_object_put(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
