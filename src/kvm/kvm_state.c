#include "kvm/kvm_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hearth/error.h"

/* MSRs the kernel lists as worth saving, less those it then refuses to read back. */
static uint32_t msr_list[KVM_STATE_MAX_MSRS];
static unsigned msr_count;

int kvm_state_init(struct kvm_sys *k)
{
	struct {
		struct kvm_msr_list l;
		uint32_t idx[1024];
	} list = {.l.nmsrs = 1024};

	if (ioctl(k->fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return hearth_err("KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	if (list.l.nmsrs > KVM_STATE_MAX_MSRS)
		return hearth_err("KVM lists %u MSRs to save, hearth keeps at most %d",
				  list.l.nmsrs, KVM_STATE_MAX_MSRS);
	/* a larger area (AMX) needs KVM_GET_XSAVE2, which hearth does not use yet */
	int xsave = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (xsave > (int)sizeof(struct kvm_xsave))
		return hearth_err("this host's XSAVE area is %d bytes; hearth saves %zu", xsave,
				  sizeof(struct kvm_xsave));
	msr_count = 0;
	for (unsigned i = 0; i < list.l.nmsrs; i++)
		msr_list[msr_count++] = list.idx[i];
	return 0;
}

#define TRY(fd, req, arg)                                                                          \
	do {                                                                                       \
		if (ioctl(fd, req, arg) < 0)                                                       \
			return hearth_err(#req ": %s", strerror(errno));                           \
	} while (0)

/* One KVM_GET_MSRS per MSR is slow but tells exactly which ones this KVM will not give;
 * those are left out rather than failing the checkpoint. */
static void get_msrs(struct kvm_vcpu_fd *v, struct kvm_vcpu_state *st)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[KVM_STATE_MAX_MSRS];
	} m = {0};

	m.h.nmsrs = msr_count;
	for (unsigned i = 0; i < msr_count; i++)
		m.e[i].index = msr_list[i];
	int got = ioctl(v->fd, KVM_GET_MSRS, &m);
	st->nmsrs = 0;
	if (got == (int)msr_count) {
		memcpy(st->msrs, m.e, msr_count * sizeof(m.e[0]));
		st->nmsrs = msr_count;
		return;
	}
	for (unsigned i = 0; i < msr_count; i++) {
		struct {
			struct kvm_msrs h;
			struct kvm_msr_entry e;
		} one = {.h.nmsrs = 1, .e.index = msr_list[i]};
		if (ioctl(v->fd, KVM_GET_MSRS, &one) == 1)
			st->msrs[st->nmsrs++] = one.e;
	}
}

int kvm_vcpu_get_state(struct kvm_sys *k, struct kvm_vcpu_fd *v, struct kvm_vcpu_state *st)
{
	(void)k;
	memset(st, 0, sizeof(*st));
	TRY(v->fd, KVM_GET_MP_STATE, &st->mp);
	TRY(v->fd, KVM_GET_REGS, &st->regs);
	TRY(v->fd, KVM_GET_SREGS, &st->sregs);
	TRY(v->fd, KVM_GET_XSAVE, &st->xsave);
	TRY(v->fd, KVM_GET_XCRS, &st->xcrs);
	TRY(v->fd, KVM_GET_DEBUGREGS, &st->debugregs);
	TRY(v->fd, KVM_GET_LAPIC, &st->lapic);
	TRY(v->fd, KVM_GET_VCPU_EVENTS, &st->events);
	get_msrs(v, st);
	struct {
		struct kvm_cpuid2 h;
		struct kvm_cpuid_entry2 e[KVM_STATE_MAX_CPUID];
	} c = {.h.nent = KVM_STATE_MAX_CPUID};
	TRY(v->fd, KVM_GET_CPUID2, &c);
	st->ncpuid = c.h.nent;
	memcpy(st->cpuid, c.e, c.h.nent * sizeof(c.e[0]));
	return 0;
}

int kvm_vcpu_set_state(struct kvm_vcpu_fd *v, const struct kvm_vcpu_state *st)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[KVM_STATE_MAX_MSRS];
	} m = {0};

	struct {
		struct kvm_cpuid2 h;
		struct kvm_cpuid_entry2 e[KVM_STATE_MAX_CPUID];
	} c = {.h.nent = st->ncpuid};

	if (st->nmsrs > KVM_STATE_MAX_MSRS)
		return hearth_err("vCPU state: %u MSRs, at most %d", st->nmsrs, KVM_STATE_MAX_MSRS);
	if (st->ncpuid > KVM_STATE_MAX_CPUID)
		return hearth_err("vCPU state: %u CPUID entries, at most %d", st->ncpuid,
				  KVM_STATE_MAX_CPUID);
	/* CPUID first: KVM checks MSRs and XSAVE features against it */
	if (st->ncpuid) {
		memcpy(c.e, st->cpuid, st->ncpuid * sizeof(c.e[0]));
		TRY(v->fd, KVM_SET_CPUID2, &c);
	}
	/* sregs before the LAPIC (APIC base) and MSRs; events last, once all else is set */
	TRY(v->fd, KVM_SET_MP_STATE, &st->mp);
	TRY(v->fd, KVM_SET_SREGS, &st->sregs);
	TRY(v->fd, KVM_SET_REGS, &st->regs);
	TRY(v->fd, KVM_SET_XSAVE, &st->xsave);
	TRY(v->fd, KVM_SET_XCRS, &st->xcrs);
	TRY(v->fd, KVM_SET_DEBUGREGS, &st->debugregs);
	TRY(v->fd, KVM_SET_LAPIC, &st->lapic);
	m.h.nmsrs = st->nmsrs;
	memcpy(m.e, st->msrs, st->nmsrs * sizeof(m.e[0]));
	int set = ioctl(v->fd, KVM_SET_MSRS, &m);
	if (set != (int)st->nmsrs)
		return hearth_err("KVM_SET_MSRS: MSR %#x refused",
				  set >= 0 && (unsigned)set < st->nmsrs ? st->msrs[set].index : 0);
	TRY(v->fd, KVM_SET_VCPU_EVENTS, &st->events);
	return 0;
}

int kvm_vm_get_state(int vmfd, struct kvm_vm_state *st)
{
	memset(st, 0, sizeof(*st));
	st->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	st->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	st->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	TRY(vmfd, KVM_GET_IRQCHIP, &st->pic_master);
	TRY(vmfd, KVM_GET_IRQCHIP, &st->pic_slave);
	TRY(vmfd, KVM_GET_IRQCHIP, &st->ioapic);
	TRY(vmfd, KVM_GET_PIT2, &st->pit);
	TRY(vmfd, KVM_GET_CLOCK, &st->clock);
	return 0;
}

int kvm_vm_set_state(int vmfd, const struct kvm_vm_state *st)
{
	struct kvm_clock_data clock = {.clock = st->clock.clock};

	TRY(vmfd, KVM_SET_IRQCHIP, &st->pic_master);
	TRY(vmfd, KVM_SET_IRQCHIP, &st->pic_slave);
	TRY(vmfd, KVM_SET_IRQCHIP, &st->ioapic);
	TRY(vmfd, KVM_SET_PIT2, &st->pit);
	TRY(vmfd, KVM_SET_CLOCK, &clock);
	return 0;
}
