/* `hearth snapshot --api PATH --to DIR [--stop]`: a client of a running hearth's API. */
#pragma once

#include "cli/args.h"

/* Returns the exit status: 0 saved, 1 refused or failed, 2 bad arguments, 6 no API. */
int cli_snapshot(const struct cli_opts *opts);
