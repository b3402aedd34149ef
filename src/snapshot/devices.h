/* Saving and restoring every device of a VM through its class's save/load ops. */
#pragma once

#include "hearth/checkpoint.h"

struct hearth_vm;

/* Device contexts are named "devices/<id>" and record the class as field "_class". */
#define CKPT_DEVICE_PREFIX "devices/"

/* Refuses (before saving anything) when a device cannot be checkpointed, naming it; then
 * each device's save op fills its context under the device lock. */
int ckpt_save_devices(struct hearth_vm *vm, struct hearth_ckpt_writer *w);
/* Checks first that every device has a context of its class and that every device context
 * has a device, then runs each load op under the device lock, which must accept the context
 * version and read every required field. */
int ckpt_load_devices(struct hearth_vm *vm, struct hearth_ckpt_reader *r);
