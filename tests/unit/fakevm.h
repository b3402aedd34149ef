/* A VM without KVM for unit tests: the device framework with RAM in a heap buffer, IRQ
 * lines and stop requests recorded instead of delivered. */
#pragma once

#include <stdint.h>

#include "config/cfg.h"
#include "dev/machine.h"
#include "vm/loop.h"

struct fakevm {
	struct hearth_vm vm;
	uint8_t *ram;
	int irq_level[32];  /* last level per GSI */
	int irq_raises[32]; /* 0->1 transitions per GSI */
	int stop_requested; /* number of stop requests */
	int stop_status;    /* last status requested */
};

/* RAM of ram_size bytes at guest physical 0; an event loop that is not started (drive it
 * with loop_run_once). */
struct fakevm *fakevm_new(uint64_t ram_size);
void fakevm_free(struct fakevm *f);
struct fakevm *fakevm_of(struct hearth_vm *vm);

/* Build a device from a JSON text such as "{\"port\": 1016}"; NULL json = no keys. */
struct hearth_dev *fakevm_dev(struct fakevm *f, const char *cls, const char *id, const char *json);
