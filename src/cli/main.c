#include <stdio.h>

#include "cli/args.h"
#include "dev/inventory.h"
#include "vm/vm.h"

static int show_devices(const struct vm_config *cfg)
{
	struct hearth_vm m;
	int ret = 0;

	/* no KVM: the device framework alone builds and describes the devices */
	machine_init(&m);
	m.ram_size = cfg->memory;
	if (vm_build_devices(&m, cfg) < 0) {
		fprintf(stderr, "hearth: %s\n", hearth_err_msg());
		ret = EXIT_CONFIG;
	} else {
		machine_print(&m, stdout);
	}
	machine_destroy(&m);
	return ret;
}

int main(int argc, char **argv)
{
	struct vm_config cfg;
	enum cli_cmd cmd;
	struct vm vm;
	int status;

	if (cli_parse(argc, argv, &cmd, &cfg) < 0) {
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
	case CMD_RUN:
		break;
	}
	status = vm_create(&vm, &cfg);
	if (status) {
		fprintf(stderr, "hearth: %s\n", hearth_err_msg());
		vm_destroy(&vm);
		vmconfig_free(&cfg);
		return status;
	}
	status = vm_run(&vm);
	vm_destroy(&vm);
	vmconfig_free(&cfg);
	return status;
}
