/* The VM's event-loop thread (epoll): backends, notifications and sockets are served here,
 * never on a vCPU thread. Callbacks run on the loop thread. */
#pragma once

#include <stdint.h>

struct hearth_vm;

typedef void (*hearth_fd_fn)(void *opaque, uint32_t events);

/* events are EPOLLIN/EPOLLOUT/... ; one registration per fd. */
int hearth_loop_add(struct hearth_vm *vm, int fd, uint32_t events, hearth_fd_fn fn, void *opaque);
int hearth_loop_mod(struct hearth_vm *vm, int fd, uint32_t events);
/* After return the callback for fd is not running and will not run again. */
void hearth_loop_del(struct hearth_vm *vm, int fd);
