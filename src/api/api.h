/* --api PATH: the control API (docs/api.md) served over HTTP on a UNIX socket. */
#pragma once

struct vm;
struct api_server;

/* Creates the socket (mode 0600) and starts serving; call after vm_create and before
 * vm_run. 0, or the exit status that fits (EXIT_CONFIG for a bad path, EXIT_HOST) with
 * hearth_err set and nothing left behind. */
int api_start(struct api_server **out, struct vm *vm, const char *path);
/* After vm_run returns: waits for requests in progress (a snapshot ends first), leaves no
 * thread and removes the socket. NULL is fine. */
void api_stop(struct api_server *s);
