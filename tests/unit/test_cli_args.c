/* The command line's process options (src/cli/args.c): --api for run, and the snapshot
 * client's --api/--to/--stop, kept out of the VM configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/args.h"
#include "hearth/error.h"

static enum cli_cmd cmd;
static struct vm_config cfg;
static struct cli_opts opts;

static int parse(int argc, const char **argv)
{
	int r = cli_parse_opts(argc, (char **)argv, &cmd, &cfg, &opts);
	vmconfig_free(&cfg);
	return r;
}

#define PARSE(...)                                                                                 \
	parse(sizeof((const char *[]){"hearth", __VA_ARGS__}) / sizeof(char *),                    \
	      (const char *[]){"hearth", __VA_ARGS__})

static void refused(int r, const char *want)
{
	if (r != -1 || !strstr(hearth_err_msg(), want))
		fail_msg("got %d '%s', expected the error '%s'", r, hearth_err_msg(), want);
}

static void test_run_api(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--kernel", "/k", "--api", "/tmp/h.sock"), 0);
	assert_int_equal(cmd, CMD_RUN);
	assert_string_equal(opts.api, "/tmp/h.sock");
	assert_null(opts.to);
	/* not part of the VM configuration tree */
	assert_int_equal(cli_parse_opts(5,
					(char *[]){"hearth", "--kernel", "/k", "--api", "/s", NULL},
					&cmd, &cfg, &opts),
			 0);
	assert_false(json_object_object_get_ex(cfg.root, "api", NULL));
	vmconfig_free(&cfg);
	/* nor accepted from a configuration file's keys: there is no "api" key */
	assert_int_equal(PARSE("--kernel", "/k"), 0);
	assert_null(opts.api);
}

static void test_api_path_checks(void **state)
{
	char longpath[200];

	(void)state;
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = 0;
	refused(PARSE("--kernel", "/k", "--api", longpath), "longer than the 107");
	/* 107 bytes fit exactly */
	longpath[107] = 0;
	assert_int_equal(PARSE("--kernel", "/k", "--api", longpath), 0);
	longpath[107] = 'a';
	longpath[108] = 0;
	refused(PARSE("--kernel", "/k", "--api", longpath), "108 bytes");
	refused(PARSE("--kernel", "/k", "--api", ""), "empty");
	refused(PARSE("devices", "--kernel", "/k", "--api", "/s"), "--api goes with 'hearth run'");
	refused(PARSE("--kernel", "/k", "--to", "/d"), "--to goes with 'hearth snapshot'");
	refused(PARSE("--kernel", "/k", "--stop"), "--stop goes with 'hearth snapshot'");
}

static void test_snapshot(void **state)
{
	(void)state;
	assert_int_equal(PARSE("snapshot", "--api", "/s", "--to", "/ck"), 0);
	assert_int_equal(cmd, CMD_SNAPSHOT);
	assert_string_equal(opts.api, "/s");
	assert_string_equal(opts.to, "/ck");
	assert_false(opts.stop);
	assert_int_equal(PARSE("snapshot", "--stop", "--to", "rel", "--api", "/s"), 0);
	assert_true(opts.stop);
	assert_string_equal(opts.to, "rel");

	refused(PARSE("snapshot", "--to", "/ck"), "needs --api");
	refused(PARSE("snapshot", "--api", "/s"), "needs --to");
	refused(PARSE("snapshot", "--api", "/s", "--to", ""), "needs --to");
	refused(PARSE("snapshot", "--api", "/s", "--to", "/ck", "--kernel", "/k"),
		"--kernel does not go with 'hearth snapshot'");
	refused(PARSE("snapshot", "--api", "/s", "--to", "/ck", "--classes"),
		"--classes does not go with");
	refused(PARSE("snapshot", "--api", "/s", "--to", "/ck", "extra"), "unexpected argument");
	refused(PARSE("snapshot", "--api", "/s", "--bogus"), "'--bogus' is unknown");
	assert_int_equal(PARSE("snapshot", "--help"), 0);
	assert_int_equal(cmd, CMD_HELP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_api),
		cmocka_unit_test(test_api_path_checks),
		cmocka_unit_test(test_snapshot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
