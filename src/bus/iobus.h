/* Port-I/O and MMIO dispatch: a sorted table of non-overlapping ranges, searched by
 * bisection. Readers copy the matching entry under a read lock and call it unlocked, so a
 * callback may itself hook or unhook ranges (a PCI BAR moving) without deadlock. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hearth/device.h"

struct hearth_io_range {
	uint64_t base, len;
	const struct hearth_io_ops *ops;
	void *opaque;
	struct hearth_dev *owner;
};

struct hearth_iobus {
	const char *name; /* "port" or "mmio", for messages */
	uint64_t limit;	  /* one past the highest address (0x10000 for ports) */
	pthread_rwlock_t lock;
	struct hearth_io_range *r;
	unsigned n, cap;
};

void iobus_init(struct hearth_iobus *bus, const char *name, uint64_t limit);
void iobus_destroy(struct hearth_iobus *bus);
/* -1 with hearth_err naming both owners on overlap, or on an empty/out-of-space range. */
int iobus_add(struct hearth_iobus *bus, const struct hearth_io_range *range);
int iobus_remove(struct hearth_iobus *bus, struct hearth_dev *owner, uint64_t base);
/* Drop every range of owner; returns how many. */
unsigned iobus_remove_owner(struct hearth_iobus *bus, struct hearth_dev *owner);
/* Copy of the range holding [addr, addr+size) entirely; false when none does. */
bool iobus_find(struct hearth_iobus *bus, uint64_t addr, unsigned size,
		struct hearth_io_range *out);
/* Dispatch with the owner's lock held. Unhooked reads give all ones, writes are dropped. */
uint64_t iobus_read(struct hearth_iobus *bus, uint64_t addr, unsigned size);
void iobus_write(struct hearth_iobus *bus, uint64_t addr, uint64_t value, unsigned size);
