#pragma once

#include <stdbool.h>

#include "config/vmconfig.h"

enum cli_cmd { CMD_RUN, CMD_DEVICES, CMD_CLASSES, CMD_HELP, CMD_VERSION };

/* Parses argv into a command and a finished configuration (for RUN and DEVICES).
 * -1 with hearth_err set on any bad flag or configuration. */
int cli_parse(int argc, char **argv, enum cli_cmd *cmd, struct vm_config *cfg);
void cli_usage(FILE *out);
