/* Internal side of hearth/loop.h: the VM owns one loop and its thread. */
#pragma once

#include "hearth/loop.h"

struct hearth_loop *loop_new(void);
int loop_start(struct hearth_loop *loop);
/* Stop the thread (if started) and wait for it; registrations stay until loop_free. */
void loop_stop(struct hearth_loop *loop);
void loop_free(struct hearth_loop *loop);
/* Run one batch of ready callbacks on the calling thread (tests); timeout in ms. */
int loop_run_once(struct hearth_loop *loop, int timeout_ms);
