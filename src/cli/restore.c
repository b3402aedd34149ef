/* `hearth restore DIR`: a checkpointed VM resumed in this new process. The saved
 * configuration rebuilds the devices, so backends reconnect by the paths it names (stdio is
 * this process's stdio; a char-file appends, so the guest's output continues in the same
 * file); --serial replaces COM1's backend; --api serves the control API as `hearth run` does
 * (the API is not part of the checkpoint: a restored VM has one only when asked again). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "cli/restore.h"
#include "hearth/error.h"
#include "snapshot/vmsnap.h"
#include "vm/vm.h"

static void usage(FILE *out)
{
	fputs("usage: hearth restore DIR [--serial BACKEND] [--api PATH]\n"
	      "  resume the VM checkpointed in DIR in this process\n"
	      "  --serial BACKEND   COM1's backend instead of the saved one: stdio, file:PATH,\n"
	      "                     socket:PATH, pty, none (the class must match the saved one)\n"
	      "  --api PATH         serve the control API on this UNIX socket (docs/api.md)\n"
	      "exit status: as for 'hearth run'; 2 when the checkpoint is refused (nothing ran)\n",
	      out);
}

static const struct option options[] = {
	{"serial", required_argument, NULL, 's'},
	{"api", required_argument, NULL, 'a'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int cli_restore(int argc, char **argv)
{
	struct vm_restore_opts ro = {0};
	struct api_server *api = NULL;
	const char *dir = NULL, *api_path = NULL;
	struct vm_config cfg;
	struct timespec t0, t1;
	bool created;
	struct vm vm;
	int opt, status;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			ro.serial = optarg;
			break;
		case 'a':
			api_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr,
				"hearth: restore: option '%s' is unknown or needs a value "
				"(try hearth restore --help)\n",
				argv[optind - 1]);
			return EXIT_CONFIG;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "hearth: restore: expected one checkpoint directory (try hearth "
				"restore --help)\n");
		return EXIT_CONFIG;
	}
	dir = argv[optind];
	status = vm_restore(&vm, dir, &ro, &cfg, &created);
	if (status == 0) {
		const char *sig = getenv("HEARTH_SNAPSHOT_ON_SIGUSR2");
		if (sig && vmsnap_signal_setup(&vm, sig) < 0)
			status = EXIT_CONFIG;
	}
	if (status == 0 && api_path)
		status = api_start(&api, &vm, api_path);
	if (status) {
		fprintf(stderr, "hearth: %s\n", hearth_err_msg());
		if (created)
			vm_destroy(&vm);
		vmconfig_free(&cfg);
		return status;
	}
	if (getenv("HEARTH_RESTORE_TIMING")) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		fprintf(stderr, "hearth: restored in %.3f ms\n",
			(double)(t1.tv_sec - t0.tv_sec) * 1e3 +
				(double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	}
	status = vm_run(&vm);
	/* before vm_destroy: a request in progress still uses the VM */
	api_stop(api);
	vm_destroy(&vm);
	vmconfig_free(&cfg);
	return status;
}
