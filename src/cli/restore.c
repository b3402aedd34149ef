/* `hearth restore DIR`: a checkpointed VM resumed in this new process. The saved
 * configuration rebuilds the devices, so backends reconnect by the paths it names (stdio is
 * this process's stdio; a char-file appends, so the guest's output continues in the same
 * file); --serial replaces COM1's backend. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/restore.h"
#include "hearth/error.h"
#include "snapshot/vmsnap.h"
#include "vm/vm.h"

static void usage(FILE *out)
{
	fputs("usage: hearth restore DIR [--serial BACKEND]\n"
	      "  resume the VM checkpointed in DIR in this process\n"
	      "  --serial BACKEND   COM1's backend instead of the saved one: stdio, file:PATH,\n"
	      "                     socket:PATH, pty, none (the class must match the saved one)\n"
	      "exit status: as for 'hearth run'; 2 when the checkpoint is refused (nothing ran)\n",
	      out);
}

static const struct option options[] = {
	{"serial", required_argument, NULL, 's'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int cli_restore(int argc, char **argv)
{
	struct vm_restore_opts ro = {0};
	const char *dir = NULL;
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
	vm_destroy(&vm);
	vmconfig_free(&cfg);
	return status;
}
