/* The device contract. A class registers at link time with HEARTH_DEVICE_CLASS in its own
 * file; the VM builds instances from its configuration tree. Everything a device hooks is
 * recorded against it, so removing the device releases all of it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/config.h"
#include "hearth/error.h"

struct hearth_vm;
struct hearth_dev;
struct hearth_ckpt;

/* Class names and device ids: 1..63 characters of [A-Za-z0-9_.-], starting with a letter. */
#define HEARTH_NAME_MAX 63

struct hearth_dev_class {
	const char *source; /* filled by HEARTH_DEVICE_CLASS: where the class is defined */
	const char *name;
	const char *summary; /* one line, shown by `hearth devices --classes` */
	/* Build the instance: read cfg, allocate state (hearth_dev_set_priv), hook resources.
	 * On failure return -1 with hearth_err set; the framework then unhooks whatever was
	 * hooked and calls free. */
	int (*init)(struct hearth_dev *dev, struct hearth_cfg *cfg);
	void (*free)(struct hearth_dev *dev);  /* release priv; hooks are already gone */
	void (*reset)(struct hearth_dev *dev); /* optional: machine reset */
	int (*save)(struct hearth_dev *dev,
		    struct hearth_ckpt *ck); /* NULL: VM not checkpointable */
	int (*load)(struct hearth_dev *dev, struct hearth_ckpt *ck);
	/* optional: called before save with every vCPU paused and without the device lock;
	 * returns once the device has no I/O in flight (asynchronous requests completed, their
	 * results in guest memory and rings), or -1 with hearth_err, which fails the checkpoint.
	 * From then on the device starts no I/O (it holds back what the guest asked for before
	 * the pause, e.g. a queue notification still on its way) until unquiesce. */
	int (*quiesce)(struct hearth_dev *dev);
	/* optional: the checkpoint is over (saved or failed), without the device lock; the
	 * device starts what it held back. Called for every device of the VM after every
	 * snapshot attempt, so it must be harmless when quiesce was not called. */
	void (*unquiesce)(struct hearth_dev *dev);
	/* optional: extra text for `hearth devices` (e.g. a backend's path) */
	void (*describe)(struct hearth_dev *dev, char *buf, size_t len);
};

/* HEARTH_DEVICE_CLASS(uart_class, .name = "uart8250", .init = uart_init, ...); */
#define HEARTH_DEVICE_CLASS(ident, ...)                                                            \
	static const struct hearth_dev_class ident = {.source = __FILE__, __VA_ARGS__};            \
	static const struct hearth_dev_class *const ident##_entry                                  \
		__attribute__((used, section("hearth_dev_classes"))) = &ident

const char *hearth_dev_id(const struct hearth_dev *dev);
const struct hearth_dev_class *hearth_dev_class(const struct hearth_dev *dev);
struct hearth_vm *hearth_dev_vm(const struct hearth_dev *dev);
void *hearth_dev_priv(const struct hearth_dev *dev);
void hearth_dev_set_priv(struct hearth_dev *dev, void *priv);

/* One lock per device: the framework holds it around every hook callback (port, MMIO, MSR,
 * hypercall). Other threads that touch the device's state (event loop, backends) take it too. */
void hearth_dev_lock(struct hearth_dev *dev);
void hearth_dev_unlock(struct hearth_dev *dev);

/* ---- resource hooks ----
 * A hook that overlaps one owned by anyone is refused with both owners named. */

struct hearth_io_ops {
	/* offset is relative to the hooked base; size is 1, 2, 4 or 8. Reads return the
	 * value in the low size bytes. */
	uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
	void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned size);
};

int hearth_hook_pio(struct hearth_dev *dev, uint16_t base, uint32_t len,
		    const struct hearth_io_ops *ops, void *opaque);
int hearth_hook_mmio(struct hearth_dev *dev, uint64_t base, uint64_t len,
		     const struct hearth_io_ops *ops, void *opaque);
/* Remove one range this device hooked at base (e.g. a BAR being moved). */
int hearth_unhook_pio(struct hearth_dev *dev, uint16_t base);
int hearth_unhook_mmio(struct hearth_dev *dev, uint64_t base);

struct hearth_msr_ops {
	/* return 0 on success, -1 to inject #GP */
	int (*read)(void *opaque, uint32_t msr, uint64_t *value);
	int (*write)(void *opaque, uint32_t msr, uint64_t value);
};
int hearth_hook_msr(struct hearth_dev *dev, uint32_t msr, const struct hearth_msr_ops *ops,
		    void *opaque);

/* A CPUID leaf (and subleaf, or HEARTH_CPUID_ANY) the device defines; applied to every vCPU's
 * table before it first runs, so it costs nothing at run time. */
#define HEARTH_CPUID_ANY 0xffffffffu
struct hearth_cpuid_regs {
	uint32_t eax, ebx, ecx, edx;
};
typedef void (*hearth_cpuid_fn)(void *opaque, unsigned vcpu, uint32_t leaf, uint32_t subleaf,
				struct hearth_cpuid_regs *regs);
int hearth_hook_cpuid(struct hearth_dev *dev, uint32_t leaf, uint32_t subleaf, hearth_cpuid_fn fn,
		      void *opaque);

/* Hypercalls: the guest puts the number in eax, arguments in rbx, rcx, rdx, rsi and does a
 * 32-bit OUT to HEARTH_HYPERCALL_PORT; the result lands in rax (docs/hypercalls.md). */
#define HEARTH_HYPERCALL_PORT 0x0cf4
typedef uint64_t (*hearth_hypercall_fn)(void *opaque, unsigned vcpu, const uint64_t args[4]);
int hearth_hook_hypercall(struct hearth_dev *dev, uint32_t nr, hearth_hypercall_fn fn,
			  void *opaque);

/* ---- interrupts and VM control ---- */

/* Drive a GSI (ISA IRQ n = GSI n) line: level 1 asserts, 0 deasserts. */
void hearth_irq_line(struct hearth_vm *vm, unsigned gsi, int level);
/* Ask the VM to stop with this process exit status (guest reset, debug exit, user quit). */
void hearth_vm_request_stop(struct hearth_vm *vm, int status);
uint64_t hearth_vm_ram_size(const struct hearth_vm *vm);

/* ---- frontends and backends ----
 * A frontend (the guest-facing half: a UART, a virtio disk) registers under its device id
 * with a type; a backend names that id in its config ("frontend") and connects. */
enum hearth_fe_type {
	HEARTH_FE_BLK,
	HEARTH_FE_NET,
	HEARTH_FE_CHAR,
	HEARTH_FE_CONSOLE,
};
const char *hearth_fe_type_name(enum hearth_fe_type type);

int hearth_frontend_register(struct hearth_dev *dev, enum hearth_fe_type type, const void *ops,
			     void *opaque);
/* Connect backend `be` to the frontend with this id and type: fills ops/opaque of the
 * frontend. Fails (naming both) when the id is unknown, of another type, or already taken. */
int hearth_frontend_connect(struct hearth_dev *be, const char *fe_id, enum hearth_fe_type type,
			    const void **ops, void **opaque);
