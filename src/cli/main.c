#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/args.h"
#include "cli/restore.h"
#include "cli/snapshot.h"
#include "dev/inventory.h"
#include "snapshot/vmsnap.h"
#include "vm/loop.h"
#include "vm/vm.h"

static int show_devices(const struct vm_config *cfg)
{
	struct hearth_vm m;
	int ret = 0;

	/* no KVM: the device framework alone builds and describes the devices. Backends
	 * register with the event loop as they are built: give them one that never runs. */
	machine_init(&m);
	m.ram_size = cfg->memory;
	m.loop = loop_new();
	if (!m.loop) {
		fprintf(stderr, "hearth: cannot create an event loop\n");
		machine_destroy(&m);
		return EXIT_HOST;
	}
	if (vm_build_devices(&m, cfg) < 0) {
		fprintf(stderr, "hearth: %s\n", hearth_err_msg());
		ret = EXIT_CONFIG;
	} else {
		machine_print(&m, stdout);
	}
	machine_destroy(&m);
	loop_free(m.loop);
	return ret;
}

int main(int argc, char **argv)
{
	struct api_server *api = NULL;
	struct vm_config cfg;
	struct cli_opts opts;
	enum cli_cmd cmd;
	struct vm vm;
	int status;

	/* restore builds its VM from a checkpoint, not from flags: its own parser */
	if (argc > 1 && !strcmp(argv[1], "restore"))
		return cli_restore(argc - 1, argv + 1);
	if (cli_parse_opts(argc, argv, &cmd, &cfg, &opts) < 0) {
		fprintf(stderr, "hearth: %s\n", hearth_err_msg());
		vmconfig_free(&cfg);
		return EXIT_CONFIG;
	}
	switch (cmd) {
	case CMD_HELP:
		cli_usage(stdout);
		return 0;
	case CMD_VERSION:
		puts("hearth " HEARTH_VERSION);
		return 0;
	case CMD_CLASSES:
		if (hearth_classes_init() < 0) {
			fprintf(stderr, "hearth: %s\n", hearth_err_msg());
			return EXIT_CONFIG;
		}
		classes_print(stdout);
		return 0;
	case CMD_DEVICES:
		status = show_devices(&cfg);
		vmconfig_free(&cfg);
		return status;
	case CMD_SNAPSHOT:
		return cli_snapshot(&opts);
	case CMD_RUN:
		break;
	}
	status = vm_create(&vm, &cfg);
	if (!status) {
		const char *sig = getenv("HEARTH_SNAPSHOT_ON_SIGUSR2");
		if (sig && vmsnap_signal_setup(&vm, sig) < 0)
			status = EXIT_CONFIG;
	}
	if (!status && opts.api)
		status = api_start(&api, &vm, opts.api);
	if (status) {
		fprintf(stderr, "hearth: %s\n", hearth_err_msg());
		vm_destroy(&vm);
		vmconfig_free(&cfg);
		return status;
	}
	status = vm_run(&vm);
	/* before vm_destroy: a request in progress still uses the VM */
	api_stop(api);
	vm_destroy(&vm);
	vmconfig_free(&cfg);
	return status;
}
