/* Resource hooks with ownership. Port and MMIO ranges live on the buses; MSRs, CPUID leaves
 * and hypercall numbers live in small tables here. Each entry records its owner so removal
 * of a device releases exactly what it took. */
#include <stdlib.h>
#include <string.h>

#include "dev/machine.h"

int hearth_hook_pio(struct hearth_dev *dev, uint16_t base, uint32_t len,
		    const struct hearth_io_ops *ops, void *opaque)
{
	struct hearth_io_range r = {base, len, ops, opaque, dev};
	return iobus_add(&dev->vm->pio, &r);
}

int hearth_hook_mmio(struct hearth_dev *dev, uint64_t base, uint64_t len,
		     const struct hearth_io_ops *ops, void *opaque)
{
	struct hearth_io_range r = {base, len, ops, opaque, dev};
	return iobus_add(&dev->vm->mmio, &r);
}

int hearth_unhook_pio(struct hearth_dev *dev, uint16_t base)
{
	return iobus_remove(&dev->vm->pio, dev, base);
}

int hearth_unhook_mmio(struct hearth_dev *dev, uint64_t base)
{
	return iobus_remove(&dev->vm->mmio, dev, base);
}

/* Append a zeroed slot to a hook table; NULL when out of memory. */
static void *table_slot(void **v, unsigned *n, unsigned *cap, size_t elem)
{
	if (*n == *cap) {
		unsigned ncap = *cap ? *cap * 2 : 8;
		void *nv = realloc(*v, ncap * elem);
		if (!nv)
			return NULL;
		*v = nv;
		*cap = ncap;
	}
	return memset((char *)*v + (*n)++ * elem, 0, elem);
}

#define TABLE_SLOT(t) table_slot((void **)&(t).v, &(t).n, &(t).cap, sizeof(*(t).v))

/* Keep the entries not owned by owner; returns how many went. */
#define TABLE_DROP_OWNER(t, who)                                                                   \
	do {                                                                                       \
		unsigned kept_ = 0;                                                                \
		for (unsigned i_ = 0; i_ < (t).n; i_++)                                            \
			if ((t).v[i_].owner != (who))                                              \
				(t).v[kept_++] = (t).v[i_];                                        \
		(t).n = kept_;                                                                     \
	} while (0)

int hearth_hook_msr(struct hearth_dev *dev, uint32_t msr, const struct hearth_msr_ops *ops,
		    void *opaque)
{
	struct hearth_vm *vm = dev->vm;
	struct hearth_msr_hook *h;
	int ret = -1;

	pthread_mutex_lock(&vm->hooks_lock);
	for (unsigned i = 0; i < vm->msrs.n; i++) {
		if (vm->msrs.v[i].msr == msr) {
			hearth_err("device '%s': MSR %#x is already hooked by '%s'", dev->id, msr,
				   vm->msrs.v[i].owner->id);
			goto out;
		}
	}
	h = TABLE_SLOT(vm->msrs);
	if (!h) {
		hearth_err("device '%s': out of memory hooking MSR %#x", dev->id, msr);
		goto out;
	}
	*h = (struct hearth_msr_hook){msr, ops, opaque, dev};
	ret = 0;
out:
	pthread_mutex_unlock(&vm->hooks_lock);
	if (ret == 0 && vm->msrs_changed && vm->msrs_changed(vm) < 0) {
		/* Undo only this hook: the device's other hooks are still wanted, and the
		 * platform kept its previous MSR set when it refused the new one. */
		pthread_mutex_lock(&vm->hooks_lock);
		for (unsigned i = 0; i < vm->msrs.n; i++) {
			if (vm->msrs.v[i].msr == msr) {
				vm->msrs.v[i] = vm->msrs.v[--vm->msrs.n];
				break;
			}
		}
		pthread_mutex_unlock(&vm->hooks_lock);
		return -1;
	}
	return ret;
}

int hearth_hook_cpuid(struct hearth_dev *dev, uint32_t leaf, uint32_t subleaf, hearth_cpuid_fn fn,
		      void *opaque)
{
	struct hearth_vm *vm = dev->vm;
	struct hearth_cpuid_hook *h;
	int ret = -1;

	pthread_mutex_lock(&vm->hooks_lock);
	for (unsigned i = 0; i < vm->cpuids.n; i++) {
		struct hearth_cpuid_hook *o = &vm->cpuids.v[i];
		if (o->leaf == leaf && (o->subleaf == subleaf || o->subleaf == HEARTH_CPUID_ANY ||
					subleaf == HEARTH_CPUID_ANY)) {
			hearth_err("device '%s': CPUID leaf %#x is already hooked by '%s'", dev->id,
				   leaf, o->owner->id);
			goto out;
		}
	}
	h = TABLE_SLOT(vm->cpuids);
	if (!h) {
		hearth_err("device '%s': out of memory hooking CPUID leaf %#x", dev->id, leaf);
		goto out;
	}
	*h = (struct hearth_cpuid_hook){leaf, subleaf, fn, opaque, dev};
	ret = 0;
out:
	pthread_mutex_unlock(&vm->hooks_lock);
	return ret;
}

int hearth_hook_hypercall(struct hearth_dev *dev, uint32_t nr, hearth_hypercall_fn fn, void *opaque)
{
	struct hearth_vm *vm = dev->vm;
	struct hearth_hcall_hook *h;
	int ret = -1;

	pthread_mutex_lock(&vm->hooks_lock);
	for (unsigned i = 0; i < vm->hcalls.n; i++) {
		if (vm->hcalls.v[i].nr == nr) {
			hearth_err("device '%s': hypercall %u is already hooked by '%s'", dev->id,
				   nr, vm->hcalls.v[i].owner->id);
			goto out;
		}
	}
	h = TABLE_SLOT(vm->hcalls);
	if (!h) {
		hearth_err("device '%s': out of memory hooking hypercall %u", dev->id, nr);
		goto out;
	}
	*h = (struct hearth_hcall_hook){nr, fn, opaque, dev};
	ret = 0;
out:
	pthread_mutex_unlock(&vm->hooks_lock);
	return ret;
}

void hooks_release_owner(struct hearth_vm *vm, struct hearth_dev *owner)
{
	unsigned before;

	pthread_mutex_lock(&vm->hooks_lock);
	before = vm->msrs.n;
	TABLE_DROP_OWNER(vm->msrs, owner);
	TABLE_DROP_OWNER(vm->cpuids, owner);
	TABLE_DROP_OWNER(vm->hcalls, owner);
	bool msrs_changed = before != vm->msrs.n;
	pthread_mutex_unlock(&vm->hooks_lock);
	if (msrs_changed && vm->msrs_changed)
		vm->msrs_changed(vm);
}

static bool find_msr(struct hearth_vm *vm, uint32_t msr, struct hearth_msr_hook *out)
{
	bool found = false;

	pthread_mutex_lock(&vm->hooks_lock);
	for (unsigned i = 0; i < vm->msrs.n && !found; i++) {
		if (vm->msrs.v[i].msr == msr) {
			*out = vm->msrs.v[i];
			found = true;
		}
	}
	pthread_mutex_unlock(&vm->hooks_lock);
	return found;
}

int hearth_msr_read(struct hearth_vm *vm, uint32_t msr, uint64_t *value)
{
	struct hearth_msr_hook h;
	int r;

	if (!find_msr(vm, msr, &h) || !h.ops->read)
		return 0;
	hearth_dev_lock(h.owner);
	r = h.ops->read(h.opaque, msr, value);
	hearth_dev_unlock(h.owner);
	return r < 0 ? -1 : 1;
}

int hearth_msr_write(struct hearth_vm *vm, uint32_t msr, uint64_t value)
{
	struct hearth_msr_hook h;
	int r;

	if (!find_msr(vm, msr, &h) || !h.ops->write)
		return 0;
	hearth_dev_lock(h.owner);
	r = h.ops->write(h.opaque, msr, value);
	hearth_dev_unlock(h.owner);
	return r < 0 ? -1 : 1;
}

void hearth_cpuid_apply(struct hearth_vm *vm, unsigned vcpu, uint32_t leaf, uint32_t subleaf,
			struct hearth_cpuid_regs *regs)
{
	pthread_mutex_lock(&vm->hooks_lock);
	for (unsigned i = 0; i < vm->cpuids.n; i++) {
		struct hearth_cpuid_hook *h = &vm->cpuids.v[i];
		if (h->leaf == leaf && (h->subleaf == HEARTH_CPUID_ANY || h->subleaf == subleaf))
			h->fn(h->opaque, vcpu, leaf, subleaf, regs);
	}
	pthread_mutex_unlock(&vm->hooks_lock);
}

bool hearth_hypercall(struct hearth_vm *vm, unsigned vcpu, uint32_t nr, const uint64_t args[4],
		      uint64_t *ret)
{
	struct hearth_hcall_hook h;
	bool found = false;

	pthread_mutex_lock(&vm->hooks_lock);
	for (unsigned i = 0; i < vm->hcalls.n && !found; i++) {
		if (vm->hcalls.v[i].nr == nr) {
			h = vm->hcalls.v[i];
			found = true;
		}
	}
	pthread_mutex_unlock(&vm->hooks_lock);
	if (!found)
		return false;
	hearth_dev_lock(h.owner);
	*ret = h.fn(h.opaque, vcpu, args);
	hearth_dev_unlock(h.owner);
	return true;
}

void hearth_irq_line(struct hearth_vm *vm, unsigned gsi, int level)
{
	if (vm->irq_line)
		vm->irq_line(vm, gsi, level);
}

void hearth_vm_request_stop(struct hearth_vm *vm, int status)
{
	if (vm->request_stop)
		vm->request_stop(vm, status);
}

uint64_t hearth_vm_ram_size(const struct hearth_vm *vm)
{
	return vm->ram_size;
}
