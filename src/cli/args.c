#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "cli/args.h"
#include "hearth/error.h"

void cli_usage(FILE *out)
{
	fputs("usage: hearth [run] [OPTIONS]        run a VM\n"
	      "       hearth devices [OPTIONS]      build the VM's devices, print them, don't run\n"
	      "       hearth devices --classes      list the device classes\n"
	      "       hearth snapshot --api PATH --to DIR [--stop]\n"
	      "                                     checkpoint a running VM through its API\n"
	      "\n"
	      "options:\n"
	      "  --config FILE             JSON configuration (docs/config.md); flags override it\n"
	      "  --cpus N                  vCPUs (default 1)\n"
	      "  --memory SIZE             guest RAM, e.g. 256M, 2G (default 256M)\n"
	      "  --kernel FILE             multiboot kernel (ELF32, ELF64 or a.out kludge)\n"
	      "  --cmdline STRING          kernel command line\n"
	      "  --module FILE[,STRING]    multiboot module (repeatable)\n"
	      "  --firmware FILE           raw ROM ending at 4 GiB; the CPU starts at the reset "
	      "vector\n"
	      "  --serial BACKEND          COM1: stdio (default), file:PATH, socket:PATH, pty, "
	      "none\n"
	      "  --console BACKEND         virtio console: stdio, file:PATH, socket:PATH, pty\n"
	      "  --disk path=FILE[,readonly=on][,direct=on][,id=ID][,queues=N]\n"
	      "                            virtio-blk disk on a raw image (repeatable)\n"
	      "  --device CLASS[,K=V...]   add a device of any class (repeatable)\n"
	      "  --api PATH                serve the control API on this UNIX socket "
	      "(docs/api.md)\n"
	      "  -h, --help                this text;   --version  the version\n"
	      "\n"
	      "exit status:\n"
	      "  0        the guest reset or powered off, or the user quit (Ctrl-A x)\n"
	      "  odd N    the guest wrote V to debug-exit: N = ((V << 1) | 1) & 0xff\n"
	      "  2        bad command line or configuration; nothing was started\n"
	      "  4        guest crash: KVM internal error, triple fault, unhandled exit\n"
	      "           (the vCPU registers are printed)\n"
	      "  6        host failure: /dev/kvm missing, out of memory, I/O error\n"
	      "  128+SIG  stopped by SIGINT, SIGTERM or SIGHUP\n"
	      "  hearth snapshot: 0 saved, 1 the VM refused or the save failed, 2 bad command\n"
	      "  line, 6 the API socket cannot be reached\n",
	      out);
}

enum {
	OPT_CONFIG = 256,
	OPT_CPUS,
	OPT_MEMORY,
	OPT_KERNEL,
	OPT_CMDLINE,
	OPT_MODULE,
	OPT_FIRMWARE,
	OPT_SERIAL,
	OPT_CONSOLE,
	OPT_DISK,
	OPT_DEVICE,
	OPT_CLASSES,
	OPT_VERSION,
	OPT_API,
	OPT_TO,
	OPT_STOP,
};

static const struct option options[] = {
	{"config", required_argument, NULL, OPT_CONFIG},
	{"cpus", required_argument, NULL, OPT_CPUS},
	{"memory", required_argument, NULL, OPT_MEMORY},
	{"kernel", required_argument, NULL, OPT_KERNEL},
	{"cmdline", required_argument, NULL, OPT_CMDLINE},
	{"module", required_argument, NULL, OPT_MODULE},
	{"firmware", required_argument, NULL, OPT_FIRMWARE},
	{"serial", required_argument, NULL, OPT_SERIAL},
	{"console", required_argument, NULL, OPT_CONSOLE},
	{"disk", required_argument, NULL, OPT_DISK},
	{"device", required_argument, NULL, OPT_DEVICE},
	{"classes", no_argument, NULL, OPT_CLASSES},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{"api", required_argument, NULL, OPT_API},
	{"to", required_argument, NULL, OPT_TO},
	{"stop", no_argument, NULL, OPT_STOP},
	{NULL, 0, NULL, 0},
};

static struct json_object *module_from_spec(const char *spec)
{
	struct json_object *m = json_object_new_object();
	const char *comma = strchr(spec, ',');
	size_t plen = comma ? (size_t)(comma - spec) : strlen(spec);

	json_object_object_add(m, "path", json_object_new_string_len(spec, (int)plen));
	if (comma)
		json_object_object_add(m, "string", json_object_new_string(comma + 1));
	return m;
}

static void append(struct json_object *tree, const char *key, struct json_object *item)
{
	struct json_object *arr;

	if (!json_object_object_get_ex(tree, key, &arr)) {
		arr = json_object_new_array();
		json_object_object_add(tree, key, arr);
	}
	json_object_array_add(arr, item);
}

/* The kernel would cut a longer path short; a socket at another path than asked is worse
 * than a refusal. */
static int check_socket_path(const char *path)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

	if (!path[0])
		return hearth_err("--api: the socket path is empty");
	if (strlen(path) > max)
		return hearth_err("--api %s: %zu bytes, longer than the %zu a UNIX socket path can "
				  "hold",
				  path, strlen(path), max);
	return 0;
}

/* `hearth snapshot` talks to a running VM: no VM options, and both --api and --to. */
static int finish_snapshot(const struct cli_opts *opts, const char *vm_flag)
{
	if (vm_flag)
		return hearth_err("--%s does not go with 'hearth snapshot'", vm_flag);
	if (!opts->api)
		return hearth_err("'hearth snapshot' needs --api PATH (the running VM's socket)");
	if (!opts->to || !opts->to[0])
		return hearth_err("'hearth snapshot' needs --to DIR");
	return check_socket_path(opts->api);
}

int cli_parse_opts(int argc, char **argv, enum cli_cmd *cmd, struct vm_config *cfg,
		   struct cli_opts *opts)
{
	struct json_object *flags = json_object_new_object(), *tree = NULL;
	const char *config_file = NULL, *vm_flag = NULL, *snap_flag = NULL;
	bool classes = false;
	int opt, ret = -1;

	*cmd = CMD_RUN;
	memset(cfg, 0, sizeof(*cfg));
	memset(opts, 0, sizeof(*opts));
	if (argc > 1 && argv[1][0] != '-') {
		if (strcmp(argv[1], "run") == 0) {
			*cmd = CMD_RUN;
		} else if (strcmp(argv[1], "devices") == 0) {
			*cmd = CMD_DEVICES;
		} else if (strcmp(argv[1], "snapshot") == 0) {
			*cmd = CMD_SNAPSHOT;
		} else {
			hearth_err("unknown command '%s' (try --help)", argv[1]);
			goto out;
		}
		argv++;
		argc--;
	}
	optind = 0; /* 0, not 1: GNU getopt then starts afresh (tests parse many times) */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (opt >= OPT_CONFIG && opt <= OPT_CLASSES)
			vm_flag = options[opt - OPT_CONFIG].name;
		switch (opt) {
		case 'h':
			*cmd = CMD_HELP;
			ret = 0;
			goto out;
		case OPT_VERSION:
			*cmd = CMD_VERSION;
			ret = 0;
			goto out;
		case OPT_CONFIG:
			config_file = optarg;
			break;
		case OPT_CPUS:
		case OPT_MEMORY:
		case OPT_KERNEL:
		case OPT_CMDLINE:
		case OPT_FIRMWARE:
		case OPT_SERIAL:
		case OPT_CONSOLE:
			json_object_object_add(flags, options[opt - OPT_CONFIG].name,
					       json_object_new_string(optarg));
			break;
		case OPT_MODULE:
			append(flags, "modules", module_from_spec(optarg));
			break;
		case OPT_DISK: {
			struct json_object *d = vmconfig_disk_from_spec(optarg);
			if (!d)
				goto out;
			append(flags, "disks", d);
			break;
		}
		case OPT_DEVICE: {
			struct json_object *d = vmconfig_device_from_spec(optarg);
			if (!d)
				goto out;
			append(flags, "devices", d);
			break;
		}
		case OPT_CLASSES:
			classes = true;
			break;
		case OPT_API:
			opts->api = optarg;
			break;
		case OPT_TO:
			opts->to = optarg;
			snap_flag = "to";
			break;
		case OPT_STOP:
			opts->stop = true;
			snap_flag = "stop";
			break;
		default:
			if (optopt >= OPT_CONFIG)
				hearth_err("option '--%s' needs a value (try --help)",
					   options[optopt - OPT_CONFIG].name);
			else if (optopt)
				hearth_err("option '-%c' is unknown (try --help)", optopt);
			else
				hearth_err("option '%s' is unknown (try --help)", argv[optind - 1]);
			goto out;
		}
	}
	if (optind < argc) {
		hearth_err("unexpected argument '%s' (try --help)", argv[optind]);
		goto out;
	}
	if (*cmd == CMD_SNAPSHOT) {
		ret = finish_snapshot(opts, vm_flag);
		goto out;
	}
	if (snap_flag) {
		hearth_err("--%s goes with 'hearth snapshot'", snap_flag);
		goto out;
	}
	if (opts->api && *cmd != CMD_RUN) {
		hearth_err("--api goes with 'hearth run'");
		goto out;
	}
	if (opts->api && check_socket_path(opts->api) < 0)
		goto out;
	if (classes) {
		if (*cmd != CMD_DEVICES) {
			hearth_err("--classes goes with 'hearth devices'");
			goto out;
		}
		*cmd = CMD_CLASSES;
		ret = 0;
		goto out;
	}
	tree = vmconfig_new_tree();
	if (config_file && vmconfig_merge_file(tree, config_file) < 0)
		goto out;
	/* flags override the file's values; modules and devices add to its lists */
	json_object_object_foreach(flags, key, val)
	{
		if (!strcmp(key, "modules") || !strcmp(key, "devices") || !strcmp(key, "disks")) {
			for (size_t i = 0; i < json_object_array_length(val); i++)
				append(tree, key,
				       json_object_get(json_object_array_get_idx(val, i)));
		} else {
			json_object_object_add(tree, key, json_object_get(val));
		}
	}
	ret = vmconfig_finish(tree, config_file ? config_file : "command line", cfg);
out:
	json_object_put(tree);
	json_object_put(flags);
	return ret;
}

int cli_parse(int argc, char **argv, enum cli_cmd *cmd, struct vm_config *cfg)
{
	struct cli_opts opts;

	return cli_parse_opts(argc, argv, cmd, cfg, &opts);
}
