/* Everything KVM holds for a vCPU and for the VM's in-kernel devices, fetched and put back
 * as plain structs for checkpoints. */
#pragma once

#include <linux/kvm.h>
#include <stdint.h>

#include "kvm/kvm.h"

#define KVM_STATE_MAX_MSRS 256
#define KVM_STATE_MAX_CPUID 256

struct kvm_vcpu_state {
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave; /* legacy 4 KiB area: covers x87/SSE/AVX on this host */
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	uint32_t nmsrs;
	struct kvm_msr_entry msrs[KVM_STATE_MAX_MSRS];
	/* the guest's CPUID table: restored as saved, so the guest sees the CPU it knew */
	uint32_t ncpuid;
	struct kvm_cpuid_entry2 cpuid[KVM_STATE_MAX_CPUID];
};

struct kvm_vm_state {
	struct kvm_irqchip pic_master, pic_slave, ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

/* Reads the MSR list KVM wants saved and checks the XSAVE area fits; call after kvm_open. */
int kvm_state_init(struct kvm_sys *k);
int kvm_vcpu_get_state(struct kvm_sys *k, struct kvm_vcpu_fd *v, struct kvm_vcpu_state *st);
int kvm_vcpu_set_state(struct kvm_vcpu_fd *v, const struct kvm_vcpu_state *st);
int kvm_vm_get_state(int vmfd, struct kvm_vm_state *st);
int kvm_vm_set_state(int vmfd, const struct kvm_vm_state *st);
