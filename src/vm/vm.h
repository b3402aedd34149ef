/* VM lifecycle: build from a configuration, run vCPU threads and the event loop, stop. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/vmconfig.h"
#include "dev/machine.h"
#include "kvm/kvm.h"
#include "x86/firmware.h"

/* Process exit statuses (also in --help and README). Odd values belong to debug-exit. */
enum {
	EXIT_GUEST_OK = 0,	/* guest reset or power-off, or the user quit */
	EXIT_CONFIG = 2,	/* bad command line or configuration, nothing started */
	EXIT_GUEST_CRASH = 4,	/* KVM internal error, triple fault, unhandled exit */
	EXIT_HOST = 6,		/* host failure: no /dev/kvm, out of memory, I/O error */
	EXIT_SIGNAL_BASE = 128, /* + signal number for SIGINT/SIGTERM/SIGHUP */
};

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned id;
	struct kvm_vcpu_fd kvm;
	pthread_t thread; /* for join, set by the starter */
	bool started;
	pthread_t self;	     /* for kicks, set by the thread itself */
	atomic_bool running; /* self is valid and the thread has not returned */
};

struct vm {
	struct hearth_vm m; /* what devices see */
	struct kvm_sys kvm;
	int vmfd;
	struct kvm_irq *irq; /* GSI routing table (vm_irq.c) */
	int memfd;	     /* guest RAM, or -1 when mapped from a checkpoint */
	int mem_src_fd;	     /* restored VM: the checkpoint's memory file, mapped private */
	uint8_t *ram;	     /* the whole guest RAM mapping */
	unsigned nslots;     /* KVM memory slots in use */
	struct firmware fw;  /* firmware image, when booting one */
	unsigned ncpus;
	struct vcpu *vcpus;
	const struct vm_config *cfg;
	atomic_bool stopping;
	/* pause: vCPUs park at a safe point (pending I/O completed) until resumed */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	atomic_bool pause_req;
	unsigned parked, alive;
	atomic_int status;
	int stop_efd; /* written once when a stop is requested */
	/* SIGUSR2 snapshots into snap_sig_dir, then does snap_sig_then (vmsnap.h) */
	const char *snap_sig_dir;
	int snap_sig_then;
};

/* Devices only, no KVM: enough for `hearth devices`. */
int vm_build_devices(struct hearth_vm *m, const struct vm_config *cfg);

/* 0, or the exit status that fits the failure (EXIT_CONFIG, EXIT_HOST) with hearth_err set. */
int vm_create(struct vm *vm, const struct vm_config *cfg);
/* The same for a VM whose state comes from a checkpoint: guest RAM is mem_fd's first
 * cfg->memory bytes mapped copy-on-write (the VM owns mem_fd from here on), and nothing is
 * booted. */
int vm_create_restored(struct vm *vm, const struct vm_config *cfg, int mem_fd);
/* Runs until the guest or the user ends it; returns the process exit status. */
int vm_run(struct vm *vm);
void vm_destroy(struct vm *vm);
void vm_stop(struct vm *vm, int status);
/* Park every vCPU with its last exit completed, so KVM's state is consistent to read.
 * Returns once all are parked (or have ended). */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);

/* vm_irq.c: GSI routing (ISA wiring) and the MSI/irqfd/ioeventfd platform callbacks. */
int vm_irq_init(struct vm *vm);
void vm_irq_free(struct vm *vm);

/* vcpu.c */
int vcpu_create(struct vm *vm, struct vcpu *c, unsigned id);
int vcpu_start(struct vcpu *c);
void vcpu_kick(struct vcpu *c);
/* vCPU side of vm_pause: park until resumed or stopped. */
void vcpu_park(struct vcpu *c);
void vcpu_join(struct vcpu *c);
void vcpu_destroy(struct vcpu *c);
void vcpu_dump(struct vcpu *c, const char *why);
