/* What the device framework keeps per VM. The VM layer embeds this and fills the platform
 * callbacks; unit tests build one without KVM. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/iobus.h"
#include "hearth/device.h"

struct hearth_loop;
struct pci_bus;

struct hearth_dev {
	char id[HEARTH_NAME_MAX + 1];
	const struct hearth_dev_class *cls;
	struct hearth_vm *vm;
	void *priv;
	pthread_mutex_t lock;
	bool inited; /* init returned 0 */
	struct hearth_dev *next;
};

struct hearth_msr_hook {
	uint32_t msr;
	const struct hearth_msr_ops *ops;
	void *opaque;
	struct hearth_dev *owner;
};

struct hearth_cpuid_hook {
	uint32_t leaf, subleaf;
	hearth_cpuid_fn fn;
	void *opaque;
	struct hearth_dev *owner;
};

struct hearth_hcall_hook {
	uint32_t nr;
	hearth_hypercall_fn fn;
	void *opaque;
	struct hearth_dev *owner;
};

struct hearth_frontend {
	struct hearth_dev *dev;
	enum hearth_fe_type type;
	const void *ops;
	void *opaque;
	struct hearth_dev *backend; /* connected backend, or NULL */
	struct hearth_frontend *next;
};

struct hearth_ram_slot {
	uint64_t gpa, size;
	uint8_t *hva;
};

#define HEARTH_MAX_RAM_SLOTS 4

/* Small tables that change only while building the VM; a plain array per kind. */
#define HOOK_TABLE(type)                                                                           \
	struct {                                                                                   \
		type *v;                                                                           \
		unsigned n, cap;                                                                   \
	}

struct hearth_vm {
	struct hearth_iobus pio, mmio;
	HOOK_TABLE(struct hearth_msr_hook) msrs;
	HOOK_TABLE(struct hearth_cpuid_hook) cpuids;
	HOOK_TABLE(struct hearth_hcall_hook) hcalls;
	pthread_mutex_t hooks_lock; /* guards the three tables above */

	struct hearth_dev *devs; /* creation order */
	struct hearth_frontend *frontends;

	struct hearth_ram_slot ram[HEARTH_MAX_RAM_SLOTS];
	unsigned nram;
	uint64_t ram_size;

	struct hearth_loop *loop;

	/* platform callbacks, set by the VM layer (or a test) */
	void (*irq_line)(struct hearth_vm *vm, unsigned gsi, int level);
	void (*request_stop)(struct hearth_vm *vm, int status);
	/* resources hooked after the vCPUs started (MSR filter) need the platform to know */
	int (*msrs_changed)(struct hearth_vm *vm);
	/* MSI (PCI MSI-X): route a GSI to a message (gsi < 0 allocates one; returns the GSI, or
	 * -1 with hearth_err), release it, bind an eventfd to a GSI (irqfd), or send a message
	 * now. NULL when the platform has none: MSI-X then falls back to signal_msi or drops. */
	int (*msi_route)(struct hearth_vm *vm, int gsi, uint64_t addr, uint32_t data);
	void (*msi_unroute)(struct hearth_vm *vm, int gsi);
	int (*irqfd)(struct hearth_vm *vm, int fd, unsigned gsi, bool assign);
	int (*signal_msi)(struct hearth_vm *vm, uint64_t addr, uint32_t data);
	/* Signal fd when the guest writes len bytes at addr (port space when pio), and only
	 * when the value is data if datamatch; assign false removes that registration. NULL:
	 * the writes reach the device's handlers instead. */
	int (*ioeventfd)(struct hearth_vm *vm, bool pio, uint64_t addr, unsigned len,
			 bool datamatch, uint64_t data, int fd, bool assign);

	struct pci_bus *pci; /* bus 0, while a pci-host device exists (src/bus) */
};

void machine_init(struct hearth_vm *vm);
/* Removes every device (newest first) and frees the tables. */
void machine_destroy(struct hearth_vm *vm);

/* Class registry (registry.c). */
int hearth_classes_build(const struct hearth_dev_class *const *list, size_t n);
int hearth_classes_init(void); /* from the linker section; idempotent */
const struct hearth_dev_class *hearth_class_find(const char *name);
size_t hearth_class_count(void);
const struct hearth_dev_class *hearth_class_at(size_t i);
bool hearth_name_valid(const char *name);

/* Device table (devtable.c). */
struct hearth_dev *hearth_dev_create(struct hearth_vm *vm, const char *cls_name, const char *id,
				     struct hearth_cfg *cfg);
int hearth_dev_remove(struct hearth_dev *dev);
struct hearth_dev *hearth_dev_find(struct hearth_vm *vm, const char *id);
/* Reset every device that has a reset op, oldest first. */
void hearth_devs_reset(struct hearth_vm *vm);

/* Hook tables (hooks.c). */
void hooks_release_owner(struct hearth_vm *vm, struct hearth_dev *owner);
/* 1 handled, 0 not hooked (guest gets #GP), -1 the device refused (#GP). */
int hearth_msr_read(struct hearth_vm *vm, uint32_t msr, uint64_t *value);
int hearth_msr_write(struct hearth_vm *vm, uint32_t msr, uint64_t value);
/* Apply every CPUID hook to the leaf (called while building a vCPU's table). */
void hearth_cpuid_apply(struct hearth_vm *vm, unsigned vcpu, uint32_t leaf, uint32_t subleaf,
			struct hearth_cpuid_regs *regs);
/* Returns false when nr is not hooked; the guest then gets ~0 in rax. */
bool hearth_hypercall(struct hearth_vm *vm, unsigned vcpu, uint32_t nr, const uint64_t args[4],
		      uint64_t *ret);

/* Frontends (frontend.c). */
void frontends_release_owner(struct hearth_vm *vm, struct hearth_dev *owner);
