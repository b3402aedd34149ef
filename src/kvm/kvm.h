/* The accelerator: the only code that issues KVM ioctls. Errors name the operation. */
#pragma once

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

struct kvm_sys {
	int fd;			  /* /dev/kvm */
	int run_size;		  /* KVM_GET_VCPU_MMAP_SIZE */
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID */
	bool user_msr;		  /* KVM_CAP_X86_USER_SPACE_MSR + MSR filter */
};

struct kvm_vcpu_fd {
	int fd;
	struct kvm_run *run;
	int run_size;
};

int kvm_open(struct kvm_sys *k);
void kvm_close(struct kvm_sys *k);

/* The VM, without its interrupt controllers: register guest RAM first, then call
 * kvm_vm_create_irqchip. A memory slot added after the in-kernel irqchip waits 5-7 ms for a
 * kernel grace period (SRCU) whatever its size; before it, ~0.1 ms. */
int kvm_vm_create(struct kvm_sys *k, int *vmfd);
/* In-kernel irqchip (PIC, IOAPIC, LAPIC) and PIT. */
int kvm_vm_create_irqchip(int vmfd);
int kvm_set_memory(int vmfd, uint32_t slot, uint64_t gpa, uint64_t size, void *hva, bool readonly);
int kvm_irq_line(int vmfd, unsigned gsi, int level);
/* Route exits of these MSRs to user space (filter deny); n = 0 clears. */
int kvm_set_msr_filter(struct kvm_sys *k, int vmfd, const uint32_t *msrs, unsigned n);
int kvm_tsc_khz(int vcpufd);

/* kvm_irq.c: the VM's GSI routing table (ISA wiring + MSI routes), irqfd, ioeventfd. */
struct kvm_irq;
/* Installs the PC's ISA routing (IRQ 0 on IOAPIC pin 2, GSIs 1..23 on pins 1..23). */
struct kvm_irq *kvm_irq_new(int vmfd);
void kvm_irq_free(struct kvm_irq *r);
/* Route a GSI to an MSI message: gsi < 0 takes a free one. Returns the GSI or -1. */
int kvm_irq_msi_route(struct kvm_irq *r, int gsi, uint64_t addr, uint32_t data);
void kvm_irq_msi_unroute(struct kvm_irq *r, int gsi);
int kvm_irqfd(int vmfd, int fd, unsigned gsi, bool assign);
int kvm_ioeventfd(int vmfd, bool pio, uint64_t addr, unsigned len, bool datamatch, uint64_t data,
		  int fd, bool assign);
int kvm_signal_msi(int vmfd, uint64_t addr, uint32_t data);

int kvm_vcpu_create(struct kvm_sys *k, int vmfd, unsigned id, struct kvm_vcpu_fd *out);
void kvm_vcpu_destroy(struct kvm_vcpu_fd *v);
int kvm_vcpu_set_cpuid(struct kvm_vcpu_fd *v, const struct kvm_cpuid2 *cpuid);
/* 0 on an exit to handle; -EINTR/-EAGAIN to retry or stop; other -errno is fatal. */
int kvm_vcpu_run(struct kvm_vcpu_fd *v);
int kvm_get_regs(struct kvm_vcpu_fd *v, struct kvm_regs *r);
int kvm_set_regs(struct kvm_vcpu_fd *v, const struct kvm_regs *r);
int kvm_get_sregs(struct kvm_vcpu_fd *v, struct kvm_sregs *s);
int kvm_set_sregs(struct kvm_vcpu_fd *v, const struct kvm_sregs *s);
