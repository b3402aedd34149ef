/* One thread per vCPU: KVM_RUN, then route the exit to the buses and hook tables. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/vm.h"

#define HYPERVISOR_LEAF 0x40000000u
#define TSC_LEAF 0x40000010u /* eax = TSC kHz, ebx = LAPIC bus kHz (common hypervisor use) */

static void set_leaf(struct kvm_cpuid2 *t, uint32_t fn, uint32_t idx, uint32_t eax, uint32_t ebx,
		     uint32_t ecx, uint32_t edx)
{
	for (unsigned i = 0; i < t->nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];
		if (e->function == fn && e->index == idx) {
			e->eax = eax, e->ebx = ebx, e->ecx = ecx, e->edx = edx;
			return;
		}
	}
	t->entries[t->nent++] = (struct kvm_cpuid_entry2){
		.function = fn, .index = idx, .eax = eax, .ebx = ebx, .ecx = ecx, .edx = edx};
}

/* A leaf above its range's maximum (eax of the range's first leaf) is never answered, so
 * the maximum covers every leaf the table now holds. */
static void raise_max_leaf(struct kvm_cpuid2 *t, uint32_t base)
{
	uint32_t max = base;
	struct kvm_cpuid_entry2 *head = NULL;

	for (unsigned i = 0; i < t->nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];
		if (e->function == base)
			head = e;
		if ((e->function & 0xffff0000u) == base && e->function > max)
			max = e->function;
	}
	if (!head)
		set_leaf(t, base, 0, max, 0, 0, 0);
	else if (head->eax < max)
		head->eax = max;
}

/* The supported table, made per-vCPU (APIC ids, TSC frequency) and passed through the
 * devices' CPUID hooks. */
static int setup_cpuid(struct vm *vm, struct vcpu *c)
{
	const struct kvm_cpuid2 *sup = vm->kvm.cpuid;
	size_t bytes = sizeof(*sup) + (sup->nent + 2 + vm->m.cpuids.n) * sizeof(sup->entries[0]);
	struct kvm_cpuid2 *t = malloc(bytes);
	int tsc_khz = kvm_tsc_khz(c->kvm.fd);
	int ret;

	if (!t)
		return hearth_err("vCPU %u: out of memory", c->id);
	memcpy(t, sup, sizeof(*sup) + sup->nent * sizeof(sup->entries[0]));
	for (unsigned i = 0; i < t->nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];
		if (e->function == 1)
			e->ebx = (e->ebx & 0x00ffffff) | (c->id << 24);
		else if (e->function == 0xb || e->function == 0x1f)
			e->edx = c->id;
	}
	if (tsc_khz)
		set_leaf(t, TSC_LEAF, 0, tsc_khz, 1000000, 0, 0);
	/* a leaf a device defines must exist for its hook to answer */
	for (unsigned i = 0; i < vm->m.cpuids.n; i++) {
		const struct hearth_cpuid_hook *h = &vm->m.cpuids.v[i];
		uint32_t idx = h->subleaf == HEARTH_CPUID_ANY ? 0 : h->subleaf;
		bool found = false;
		for (unsigned j = 0; j < t->nent && !found; j++)
			found = t->entries[j].function == h->leaf && t->entries[j].index == idx;
		if (!found) {
			set_leaf(t, h->leaf, idx, 0, 0, 0, 0);
			if (h->subleaf != HEARTH_CPUID_ANY)
				t->entries[t->nent - 1].flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		}
	}
	raise_max_leaf(t, HYPERVISOR_LEAF);
	for (unsigned i = 0; i < t->nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];
		struct hearth_cpuid_regs r = {e->eax, e->ebx, e->ecx, e->edx};
		hearth_cpuid_apply(&vm->m, c->id, e->function, e->index, &r);
		e->eax = r.eax, e->ebx = r.ebx, e->ecx = r.ecx, e->edx = r.edx;
	}
	ret = kvm_vcpu_set_cpuid(&c->kvm, t);
	free(t);
	return ret;
}

int vcpu_create(struct vm *vm, struct vcpu *c, unsigned id)
{
	c->vm = vm;
	c->id = id;
	if (kvm_vcpu_create(&vm->kvm, vm->vmfd, id, &c->kvm) < 0)
		return -1;
	return setup_cpuid(vm, c);
}

static void handle_io(struct vcpu *c)
{
	struct kvm_run *run = c->kvm.run;
	struct hearth_vm *m = &c->vm->m;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned size = run->io.size;

	if (run->io.port == HEARTH_HYPERCALL_PORT && size == 4 &&
	    run->io.direction == KVM_EXIT_IO_OUT && run->io.count == 1) {
		struct kvm_regs r;
		if (kvm_get_regs(&c->kvm, &r) < 0)
			return;
		uint64_t args[4] = {r.rbx, r.rcx, r.rdx, r.rsi}, ret = ~0ull;
		if (!hearth_hypercall(m, c->id, (uint32_t)r.rax, args, &ret))
			ret = ~0ull;
		r.rax = ret;
		kvm_set_regs(&c->kvm, &r);
		return;
	}
	/* string I/O arrives as count items back to back */
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		if (run->io.direction == KVM_EXIT_IO_OUT) {
			uint64_t v = 0;
			memcpy(&v, data, size);
			iobus_write(&m->pio, run->io.port, v, size);
		} else {
			uint64_t v = iobus_read(&m->pio, run->io.port, size);
			memcpy(data, &v, size);
		}
	}
}

static void handle_mmio(struct vcpu *c)
{
	struct kvm_run *run = c->kvm.run;
	struct hearth_vm *m = &c->vm->m;
	unsigned len = run->mmio.len;

	if (len == 0 || len > 8)
		return;
	if (run->mmio.is_write) {
		uint64_t v = 0;
		memcpy(&v, run->mmio.data, len);
		iobus_write(&m->mmio, run->mmio.phys_addr, v, len);
	} else {
		uint64_t v = iobus_read(&m->mmio, run->mmio.phys_addr, len);
		memcpy(run->mmio.data, &v, len);
	}
}

static void handle_msr(struct vcpu *c, bool write)
{
	struct kvm_run *run = c->kvm.run;
	uint64_t v = run->msr.data;
	int r = write ? hearth_msr_write(&c->vm->m, run->msr.index, v)
		      : hearth_msr_read(&c->vm->m, run->msr.index, &v);
	if (!write)
		run->msr.data = v;
	run->msr.error = r == 1 ? 0 : 1; /* non-zero: KVM injects #GP */
}

void vcpu_dump(struct vcpu *c, const char *why)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	char buf[1024];
	int n;

	n = snprintf(buf, sizeof(buf), "hearth: guest crash on vCPU %u: %s\n", c->id, why);
	if (kvm_get_regs(&c->kvm, &r) == 0 && kvm_get_sregs(&c->kvm, &s) == 0)
		snprintf(buf + n, sizeof(buf) - n,
			 "  rip %016llx rsp %016llx rflags %08llx\n"
			 "  rax %016llx rbx %016llx rcx %016llx rdx %016llx\n"
			 "  rsi %016llx rdi %016llx rbp %016llx\n"
			 "  cs %04x (base %llx) ss %04x cr0 %llx cr2 %llx cr3 %llx cr4 %llx efer "
			 "%llx\n",
			 r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp,
			 s.cs.selector, s.cs.base, s.ss.selector, s.cr0, s.cr2, s.cr3, s.cr4,
			 s.efer);
	fputs(buf, stderr);
}

/* An emulation failure names the instruction KVM could not run (PVM's ring-0 emulator lacks
 * some, PVM.md), by its bytes when KVM gives them; other suberrors show their raw data. */
static void internal_error_text(const struct kvm_run *run, char *why, size_t len)
{
	int n = snprintf(why, len, "KVM internal error, suberror %u", run->internal.suberror);

	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		unsigned size = run->emulation_failure.insn_size;
		if (size > sizeof(run->emulation_failure.insn_bytes))
			size = sizeof(run->emulation_failure.insn_bytes);
		n += snprintf(why + n, len - n, " (emulation failed), instruction bytes:");
		for (unsigned i = 0; i < size && n < (int)len; i++)
			n += snprintf(why + n, len - n, " %02x",
				      run->emulation_failure.insn_bytes[i]);
		return;
	}
	n += snprintf(why + n, len - n, ", data:");
	for (unsigned i = 0; i < run->internal.ndata && i < 8 && n < (int)len; i++)
		n += snprintf(why + n, len - n, " %llx", run->internal.data[i]);
}

/* Returns true to keep running. */
static bool handle_exit(struct vcpu *c)
{
	struct kvm_run *run = c->kvm.run;
	char why[256];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(c);
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(c);
		return true;
	case KVM_EXIT_X86_RDMSR:
		handle_msr(c, false);
		return true;
	case KVM_EXIT_X86_WRMSR:
		handle_msr(c, true);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_HLT:
		return true;
	case KVM_EXIT_SYSTEM_EVENT:
		vm_stop(c->vm, EXIT_GUEST_OK);
		return false;
	case KVM_EXIT_SHUTDOWN:
		vcpu_dump(c, "triple fault (KVM_EXIT_SHUTDOWN)");
		vm_stop(c->vm, EXIT_GUEST_CRASH);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		internal_error_text(run, why, sizeof(why));
		vcpu_dump(c, why);
		vm_stop(c->vm, EXIT_GUEST_CRASH);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(why, sizeof(why), "VM entry failed, hardware reason %#llx",
			 run->fail_entry.hardware_entry_failure_reason);
		vcpu_dump(c, why);
		vm_stop(c->vm, EXIT_GUEST_CRASH);
		return false;
	default:
		snprintf(why, sizeof(why), "unhandled exit reason %u", run->exit_reason);
		vcpu_dump(c, why);
		vm_stop(c->vm, EXIT_GUEST_CRASH);
		return false;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *c = arg;
	struct vm *vm = c->vm;

	/* Publish the thread before the first pause check: a pause either sees it here and
	 * kicks it, or this check sees the pause (both are seq_cst), so none is missed. */
	c->self = pthread_self();
	atomic_store(&c->running, true);
	if (atomic_load(&vm->pause_req))
		vcpu_park(c);
	while (!atomic_load(&vm->stopping)) {
		int r = kvm_vcpu_run(&c->kvm);
		if (r == -EINTR || r == -EAGAIN) {
			c->kvm.run->immediate_exit = 0;
			/* orders the store above before the loads below, against vcpu_kick */
			atomic_thread_fence(memory_order_seq_cst);
			/* KVM_RUN returned EINTR, so the last exit's I/O is complete: a safe
			 * point to park for a pause */
			if (r == -EINTR && atomic_load(&vm->pause_req))
				vcpu_park(c);
			continue;
		}
		if (r < 0) {
			char why[128];
			snprintf(why, sizeof(why), "KVM_RUN failed: %s", strerror(-r));
			vcpu_dump(c, why);
			vm_stop(vm, EXIT_GUEST_CRASH);
			break;
		}
		if (!handle_exit(c))
			break;
	}
	pthread_mutex_lock(&vm->pause_lock);
	vm->alive--;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	/* no more kicks; one already on its way is harmless: the id is valid until joined */
	atomic_store(&c->running, false);
	return NULL;
}

void vcpu_park(struct vcpu *c)
{
	struct vm *vm = c->vm;

	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (atomic_load(&vm->pause_req) && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_start(struct vcpu *c)
{
	static bool installed;
	if (!installed) {
		struct sigaction sa = {.sa_handler = kick_handler};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
		installed = true;
	}
	pthread_mutex_lock(&c->vm->pause_lock);
	c->vm->alive++;
	pthread_mutex_unlock(&c->vm->pause_lock);
	int err = pthread_create(&c->thread, NULL, vcpu_thread, c);
	if (err) {
		pthread_mutex_lock(&c->vm->pause_lock);
		c->vm->alive--;
		pthread_mutex_unlock(&c->vm->pause_lock);
		return hearth_err("vCPU %u thread: %s", c->id, strerror(err));
	}
	c->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *c)
{
	if (!atomic_load(&c->running))
		return;
	/* immediate_exit covers a kick that lands just before KVM_RUN is entered */
	c->kvm.run->immediate_exit = 1;
	pthread_kill(c->self, SIGUSR1);
}

void vcpu_join(struct vcpu *c)
{
	if (c->started)
		pthread_join(c->thread, NULL);
	c->started = false;
}

void vcpu_destroy(struct vcpu *c)
{
	kvm_vcpu_destroy(&c->kvm);
}
