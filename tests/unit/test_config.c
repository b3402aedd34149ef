/* The configuration tree: flags, JSON files and their merge, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/args.h"
#include "hearth/error.h"

static char json_path[64];

static int parse(struct vm_config *cfg, enum cli_cmd *cmd, ...)
{
	char *argv[32] = {"hearth"};
	int argc = 1;
	va_list ap;

	va_start(ap, cmd);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	return cli_parse(argc, argv, cmd, cfg);
}

#define PARSE(cfg, ...) parse(cfg, &cmd, __VA_ARGS__, (char *)NULL)

static void write_json(const char *text)
{
	strcpy(json_path, "/tmp/hearth-cfg-XXXXXX");
	int fd = mkstemp(json_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void expect_error(int ret, const char *a, const char *b)
{
	assert_int_equal(ret, -1);
	if (!strstr(hearth_err_msg(), a) || (b && !strstr(hearth_err_msg(), b)))
		fail_msg("error '%s' lacks '%s' / '%s'", hearth_err_msg(), a, b ? b : "");
}

static const char *dev_str(struct vm_config *cfg, size_t i, const char *key)
{
	struct json_object *d = json_object_array_get_idx(cfg->devices, i), *v;
	return json_object_object_get_ex(d, key, &v) ? json_object_get_string(v) : NULL;
}

static void defaults(void **state)
{
	struct vm_config cfg;
	enum cli_cmd cmd;
	(void)state;

	assert_int_equal(PARSE(&cfg, "--kernel", "k"), 0);
	assert_int_equal(cmd, CMD_RUN);
	assert_int_equal(cfg.cpus, 1);
	assert_int_equal(cfg.memory, 256u << 20);
	assert_string_equal(cfg.kernel, "k");
	assert_null(cfg.cmdline);
	/* fixed devices, then the stdio backend of com1 */
	assert_int_equal(json_object_array_length(cfg.devices), 6);
	assert_string_equal(dev_str(&cfg, 0, "id"), "com1");
	assert_string_equal(dev_str(&cfg, 0, "class"), "uart8250");
	assert_string_equal(dev_str(&cfg, 4, "class"), "pci-host");
	assert_string_equal(dev_str(&cfg, 5, "class"), "char-stdio");
	assert_string_equal(dev_str(&cfg, 5, "frontend"), "com1");
	vmconfig_free(&cfg);
}

static void flags(void **state)
{
	struct vm_config cfg;
	enum cli_cmd cmd;
	(void)state;

	assert_int_equal(PARSE(&cfg, "run", "--kernel", "k", "--cpus", "4", "--memory", "1G",
			       "--cmdline", "a b", "--module", "m1", "--module", "m2,two words",
			       "--serial", "file:/tmp/x", "--device", "testdev,port=0x800",
			       "--device", "testdev"),
			 0);
	assert_int_equal(cfg.cpus, 4);
	assert_int_equal(cfg.memory, 1ull << 30);
	assert_string_equal(cfg.cmdline, "a b");
	assert_int_equal(cfg.nmodules, 2);
	assert_string_equal(cfg.modules[0].string, "m1"); /* the path when none given */
	assert_string_equal(cfg.modules[1].path, "m2");
	assert_string_equal(cfg.modules[1].string, "two words");
	assert_string_equal(dev_str(&cfg, 5, "class"), "char-file");
	assert_string_equal(dev_str(&cfg, 5, "path"), "/tmp/x");
	/* ids: the class name, then class name + 1 */
	assert_string_equal(dev_str(&cfg, 6, "id"), "testdev");
	assert_string_equal(dev_str(&cfg, 6, "port"), "0x800");
	assert_string_equal(dev_str(&cfg, 7, "id"), "testdev1");
	vmconfig_free(&cfg);

	assert_int_equal(PARSE(&cfg, "--kernel", "k", "--serial", "none"), 0);
	assert_int_equal(json_object_array_length(cfg.devices), 5);
	vmconfig_free(&cfg);
	assert_int_equal(PARSE(&cfg, "--kernel", "k", "--serial", "socket:/tmp/s"), 0);
	assert_string_equal(dev_str(&cfg, 5, "class"), "char-socket");
	vmconfig_free(&cfg);
	assert_int_equal(PARSE(&cfg, "--kernel", "k", "--serial", "pty"), 0);
	assert_string_equal(dev_str(&cfg, 5, "class"), "char-pty");
	vmconfig_free(&cfg);
	assert_int_equal(PARSE(&cfg, "--firmware", "rom"), 0);
	assert_string_equal(cfg.firmware, "rom");
	vmconfig_free(&cfg);
}

static void disks_and_console(void **state)
{
	struct vm_config cfg;
	enum cli_cmd cmd;
	(void)state;

	assert_int_equal(PARSE(&cfg, "--kernel", "k", "--disk", "path=/a.img", "--disk",
			       "path=/b.img,readonly=on,direct=on,id=data,queues=4", "--console",
			       "socket:/tmp/c"),
			 0);
	/* serial backend, console + backend, two disks of two devices each */
	assert_int_equal(json_object_array_length(cfg.devices), 12);
	assert_string_equal(dev_str(&cfg, 6, "class"), "virtio-console");
	assert_string_equal(dev_str(&cfg, 7, "class"), "char-socket");
	assert_string_equal(dev_str(&cfg, 7, "frontend"), "console0");
	assert_string_equal(dev_str(&cfg, 8, "id"), "disk0");
	assert_string_equal(dev_str(&cfg, 8, "class"), "virtio-blk");
	assert_string_equal(dev_str(&cfg, 9, "class"), "blk-file");
	assert_string_equal(dev_str(&cfg, 9, "frontend"), "disk0");
	assert_string_equal(dev_str(&cfg, 9, "path"), "/a.img");
	assert_string_equal(dev_str(&cfg, 10, "id"), "data");
	assert_string_equal(dev_str(&cfg, 10, "queues"), "4");
	assert_string_equal(dev_str(&cfg, 11, "id"), "data-file");
	assert_string_equal(dev_str(&cfg, 11, "readonly"), "on");
	assert_string_equal(dev_str(&cfg, 11, "direct"), "on");
	vmconfig_free(&cfg);

	/* a stdio console takes the terminal from the default serial */
	assert_int_equal(PARSE(&cfg, "--kernel", "k", "--console", "stdio"), 0);
	assert_string_equal(dev_str(&cfg, 5, "class"), "virtio-console");
	assert_string_equal(dev_str(&cfg, 6, "class"), "char-stdio");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--console", "stdio", "--serial", "stdio"),
		     "'serial' and 'console'", NULL);
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--console", "tty"), "console 'tty'", NULL);
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--disk", "readonly=on"), "disks[0]", "'path'");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--disk", "path=/a,colour=red"), "disks[0]",
		     "unknown key 'colour'");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--disk", "path=/a,path=/b"), "given twice",
		     NULL);
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--disk", "/a.img"), "--disk '/a.img'",
		     "key=value");
	vmconfig_free(&cfg);
}

static void commands(void **state)
{
	struct vm_config cfg;
	enum cli_cmd cmd;
	(void)state;

	assert_int_equal(PARSE(&cfg, "--help"), 0);
	assert_int_equal(cmd, CMD_HELP);
	vmconfig_free(&cfg);
	assert_int_equal(PARSE(&cfg, "--version"), 0);
	assert_int_equal(cmd, CMD_VERSION);
	vmconfig_free(&cfg);
	assert_int_equal(PARSE(&cfg, "devices", "--classes"), 0);
	assert_int_equal(cmd, CMD_CLASSES);
	vmconfig_free(&cfg);
	assert_int_equal(PARSE(&cfg, "devices", "--kernel", "k"), 0);
	assert_int_equal(cmd, CMD_DEVICES);
	vmconfig_free(&cfg);
}

static void flag_errors(void **state)
{
	struct vm_config cfg;
	enum cli_cmd cmd;
	(void)state;

	expect_error(PARSE(&cfg, "frobnicate"), "unknown command 'frobnicate'", NULL);
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--frob"), "'--frob'", "unknown");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel"), "'--kernel'", "needs a value");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "extra"), "unexpected argument 'extra'", NULL);
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--classes"), "--classes", "devices");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--cpus", "0"), "'cpus'", "outside");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--cpus", "65"), "'cpus'", "outside");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--cpus", "two"), "'cpus'", "'two'");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--memory", "12Q"), "'memory'", "'12Q'");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--memory", "1M"), "'memory'", "outside");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--memory", "4097K"), "'memory'", "4 KiB");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--serial", "tcp:1"), "serial 'tcp:1'", NULL);
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--serial", "file:"), "serial 'file:'", NULL);
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--device", "a=b"), "--device 'a=b'", NULL);
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--device", "testdev,port"), "'port'",
		     "key=value");
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--device", "testdev,port=1,port=2"),
		     "key 'port' given twice", NULL);
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--kernel", "k", "--firmware", "f"), "exclude", NULL);
	vmconfig_free(&cfg);
	expect_error(PARSE(&cfg, "--cmdline", "x"), "'cmdline'", "'kernel'");
	vmconfig_free(&cfg);
}

static void json_file(void **state)
{
	struct vm_config cfg;
	enum cli_cmd cmd;
	(void)state;

	write_json("{\"cpus\": 2, \"memory\": \"64M\", \"kernel\": \"k\", \"cmdline\": \"c\","
		   " \"modules\": [{\"path\": \"m\", \"string\": \"s\"}],"
		   " \"serial\": \"none\", \"devices\": [{\"class\": \"testdev\", \"id\": \"t\","
		   " \"port\": 2048}]}");
	/* flags override values and add to lists */
	assert_int_equal(PARSE(&cfg, "--config", json_path, "--cpus", "3", "--device",
			       "port80,"
			       "id=p2"),
			 0);
	assert_int_equal(cfg.cpus, 3);
	assert_int_equal(cfg.memory, 64u << 20);
	assert_string_equal(cfg.modules[0].string, "s");
	assert_int_equal(json_object_array_length(cfg.devices), 7);
	assert_string_equal(dev_str(&cfg, 5, "id"), "t");
	assert_string_equal(dev_str(&cfg, 6, "id"), "p2");
	vmconfig_free(&cfg);
	unlink(json_path);
}

static void json_errors(void **state)
{
	static const struct {
		const char *json, *a, *b;
	} cases[] = {
		{"{\"cpu_count\": 2}", "unknown key 'cpu_count'", NULL},
		{"{\"cpus\": true}", "'cpus'", "boolean"},
		{"{\"cpus\": -1}", "'cpus'", "-1"},
		{"{\"memory\": [1]}", "'memory'", "array"},
		{"{\"kernel\": 7}", "'kernel'", "string"},
		{"{\"kernel\": \"k\", \"modules\": {}}", "'modules'", "array"},
		{"{\"kernel\": \"k\", \"modules\": [{\"string\": \"s\"}]}", "modules[0]", NULL},
		{"{\"kernel\": \"k\", \"modules\": [{\"path\": \"p\", \"x\": 1}]}", "modules[0]",
		 "'x'"},
		{"{\"kernel\": \"k\", \"devices\": {}}", "'devices'", "array"},
		{"{\"kernel\": \"k\", \"devices\": [1]}", "devices[0]", "class"},
		{"{\"kernel\": \"k\", \"devices\": [{\"id\": \"x\"}]}", "devices[0]", "class"},
		{"{\"kernel\": \"k\", \"devices\": [{\"class\": \"testdev\", \"id\": 5}]}", "'id'",
		 "string"},
		{"[1, 2]", "top level", "object"},
		{"{\"cpus\": 2,", NULL, NULL},
	};
	struct vm_config cfg;
	enum cli_cmd cmd;
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_json(cases[i].json);
		int ret = PARSE(&cfg, "--config", json_path);
		/* every message names the file */
		expect_error(ret, json_path, cases[i].a);
		if (cases[i].b)
			expect_error(ret, cases[i].b, NULL);
		vmconfig_free(&cfg);
		unlink(json_path);
	}
	expect_error(PARSE(&cfg, "--config", "/nonexistent/vm.json"), "/nonexistent/vm.json", NULL);
	vmconfig_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),	     cmocka_unit_test(flags),
		cmocka_unit_test(disks_and_console), cmocka_unit_test(commands),
		cmocka_unit_test(flag_errors),	     cmocka_unit_test(json_file),
		cmocka_unit_test(json_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
