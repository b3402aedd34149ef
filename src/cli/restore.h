/* `hearth restore DIR [--serial BACKEND]` (argv[0] is "restore"): returns the exit status. */
#pragma once

int cli_restore(int argc, char **argv);
