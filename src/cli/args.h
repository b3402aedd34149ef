#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "config/vmconfig.h"

enum cli_cmd { CMD_RUN, CMD_DEVICES, CMD_CLASSES, CMD_SNAPSHOT, CMD_HELP, CMD_VERSION };

/* Options of this process, not of the VM: they stay out of the configuration tree, so a
 * checkpoint (which saves that tree) never carries a socket path, and a VM restored in a
 * new process, maybe beside the old one, is given its own. */
struct cli_opts {
	const char *api; /* run: serve the control API here; snapshot: the API to ask */
	const char *to;	 /* snapshot: the checkpoint directory */
	bool stop;	 /* snapshot: stop the VM once it is saved */
};

/* Parses argv into a command, a finished configuration (for RUN and DEVICES) and the
 * process options. -1 with hearth_err set on any bad flag or configuration. */
int cli_parse_opts(int argc, char **argv, enum cli_cmd *cmd, struct vm_config *cfg,
		   struct cli_opts *opts);
/* The same, for callers that need no process options. */
int cli_parse(int argc, char **argv, enum cli_cmd *cmd, struct vm_config *cfg);
void cli_usage(FILE *out);
