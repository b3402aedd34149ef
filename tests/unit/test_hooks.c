/* Resource hooks: ownership, conflicts named with both owners, and dispatch of MSRs, CPUID
 * leaves and hypercalls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakevm.h"
#include "testutil.h"

static int owner_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	(void)dev, (void)cfg;
	return 0;
}

static const struct hearth_dev_class c_owner = {
	.source = "t.c", .name = "owner", .init = owner_init};

struct fixture {
	struct fakevm *f;
	struct hearth_dev *a, *b;
};

static int setup(void **state)
{
	const struct hearth_dev_class *list[] = {&c_owner};
	struct fixture *x = calloc(1, sizeof(*x));

	if (hearth_classes_build(list, 1) < 0)
		return -1;
	x->f = fakevm_new(4096);
	x->a = fakevm_dev(x->f, "owner", "alice", NULL);
	x->b = fakevm_dev(x->f, "owner", "bob", NULL);
	*state = x;
	return x->a && x->b ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	fakevm_free(x->f);
	free(x);
	return 0;
}

/* ---- port and MMIO ranges, through the same checks ---- */

static uint64_t tag_read(void *opaque, uint64_t offset, unsigned size)
{
	(void)size;
	return (uint64_t)(uintptr_t)opaque << 16 | offset;
}

static const struct hearth_io_ops tag_ops = {.read = tag_read};

static int hook_pio(struct hearth_dev *d, uint64_t base, uint64_t len)
{
	return hearth_hook_pio(d, (uint16_t)base, (uint32_t)len, &tag_ops, (void *)(uintptr_t)1);
}

static int hook_mmio(struct hearth_dev *d, uint64_t base, uint64_t len)
{
	return hearth_hook_mmio(d, base, len, &tag_ops, (void *)(uintptr_t)2);
}

static int unhook_pio(struct hearth_dev *d, uint64_t base)
{
	return hearth_unhook_pio(d, (uint16_t)base);
}

struct kind {
	const char *name;
	int (*hook)(struct hearth_dev *d, uint64_t base, uint64_t len);
	int (*unhook)(struct hearth_dev *d, uint64_t base);
	size_t bus_offset;
	uint64_t base;
};

static const struct kind kinds[] = {
	{"port", hook_pio, unhook_pio, offsetof(struct hearth_vm, pio), 0x3f8},
	{"mmio", hook_mmio, hearth_unhook_mmio, offsetof(struct hearth_vm, mmio), 0xfee00000},
};

static struct hearth_iobus *bus_of(struct fixture *x, const struct kind *k)
{
	return (struct hearth_iobus *)((char *)&x->f->vm + k->bus_offset);
}

static void expect_conflict(struct fixture *x, const struct kind *k, uint64_t base, uint64_t len)
{
	unsigned n = bus_of(x, k)->n;

	hearth_err_clear();
	assert_int_equal(k->hook(x->b, base, len), -1);
	const char *m = hearth_err_msg();
	assert_non_null(strstr(m, "'alice'"));
	assert_non_null(strstr(m, "'bob'"));
	assert_non_null(strstr(m, k->name));
	assert_non_null(strstr(m, "overlaps"));
	assert_int_equal(bus_of(x, k)->n, n);
}

static void io_ranges(void **state)
{
	struct fixture *x = *state;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct kind *k = &kinds[i];
		uint64_t b = k->base;
		struct hearth_io_range r;

		assert_int_equal(k->hook(x->a, b, 8), 0);
		assert_true(iobus_find(bus_of(x, k), b + 3, 1, &r));
		assert_ptr_equal(r.owner, x->a);
		assert_int_equal(iobus_read(bus_of(x, k), b + 3, 4), ((i + 1) << 16) | 3);

		expect_conflict(x, k, b, 8);	     /* the same range */
		expect_conflict(x, k, b - 2, 3);     /* overlaps the first byte */
		expect_conflict(x, k, b + 7, 4);     /* overlaps the last byte */
		expect_conflict(x, k, b + 2, 2);     /* inside */
		expect_conflict(x, k, b - 16, 0x40); /* covers it */
		/* the owner itself cannot overlap its own range either */
		hearth_err_clear();
		assert_int_equal(k->hook(x->a, b + 4, 1), -1);
		assert_non_null(strstr(hearth_err_msg(), "'alice'"));

		/* adjacent on both sides is fine */
		assert_int_equal(k->hook(x->b, b - 4, 4), 0);
		assert_int_equal(k->hook(x->b, b + 8, 4), 0);
		assert_true(iobus_find(bus_of(x, k), b - 1, 1, &r));
		assert_ptr_equal(r.owner, x->b);
		assert_true(iobus_find(bus_of(x, k), b + 8, 1, &r));
		assert_ptr_equal(r.owner, x->b);
		assert_true(iobus_find(bus_of(x, k), b + 7, 1, &r));
		assert_ptr_equal(r.owner, x->a);

		/* unhooking someone else's range is refused, and names who tried */
		hearth_err_clear();
		assert_int_equal(k->unhook(x->b, b), -1);
		assert_non_null(strstr(hearth_err_msg(), "'bob'"));
		assert_true(iobus_find(bus_of(x, k), b, 1, &r));
		/* only the base of a range unhooks it */
		assert_int_equal(k->unhook(x->a, b + 1), -1);
		assert_int_equal(k->unhook(x->a, b), 0);
		assert_false(iobus_find(bus_of(x, k), b, 1, &r));
		assert_int_equal(k->unhook(x->a, b), -1);
		/* the space is free for bob now */
		assert_int_equal(k->hook(x->b, b, 8), 0);

		/* empty and out-of-space ranges */
		hearth_err_clear();
		assert_int_equal(k->hook(x->a, 0x10, 0), -1);
		assert_non_null(strstr(hearth_err_msg(), "outside"));
	}
	/* port ranges cannot pass 0xffff; MMIO ones cannot wrap */
	assert_int_equal(hook_pio(x->a, 0xfffe, 3), -1);
	assert_int_equal(hook_pio(x->a, 0xfff0, 0x10), 0);
	assert_int_equal(hook_mmio(x->a, UINT64_MAX - 1, 4), -1);
	assert_int_equal(hook_mmio(x->a, UINT64_MAX - 0x1000, 0x1000), 0);
}

/* ---- MSRs ---- */

struct msr_dev {
	struct hearth_dev *dev;
	uint32_t last_msr;
	uint64_t value;
	int fail;
	bool lock_held;
};

static int msr_rd(void *opaque, uint32_t msr, uint64_t *value)
{
	struct msr_dev *m = opaque;

	m->last_msr = msr;
	m->lock_held = dev_locked(m->dev);
	*value = m->value;
	return m->fail ? -1 : 0;
}

static int msr_wr(void *opaque, uint32_t msr, uint64_t value)
{
	struct msr_dev *m = opaque;

	m->last_msr = msr;
	m->lock_held = dev_locked(m->dev);
	if (m->fail)
		return -1;
	m->value = value;
	return 0;
}

static const struct hearth_msr_ops msr_ops = {.read = msr_rd, .write = msr_wr};
static const struct hearth_msr_ops msr_ro_ops = {.read = msr_rd};

static void msr_hooks(void **state)
{
	struct fixture *x = *state;
	struct msr_dev m = {.dev = x->a, .value = 0x55};
	struct msr_dev mb = {.dev = x->b};
	uint64_t v = 0;

	assert_int_equal(hearth_msr_read(&x->f->vm, 0x4b564d00, &v), 0); /* not hooked */
	assert_int_equal(hearth_msr_write(&x->f->vm, 0x4b564d00, 1), 0);
	assert_int_equal(hearth_hook_msr(x->a, 0x4b564d00, &msr_ops, &m), 0);
	hearth_err_clear();
	assert_int_equal(hearth_hook_msr(x->b, 0x4b564d00, &msr_ops, &mb), -1);
	assert_non_null(strstr(hearth_err_msg(), "'alice'"));
	assert_non_null(strstr(hearth_err_msg(), "'bob'"));
	assert_non_null(strstr(hearth_err_msg(), "0x4b564d00"));
	assert_int_equal(x->f->vm.msrs.n, 1);

	assert_int_equal(hearth_msr_read(&x->f->vm, 0x4b564d00, &v), 1);
	assert_int_equal(v, 0x55);
	assert_int_equal(m.last_msr, 0x4b564d00);
	assert_true(m.lock_held);
	m.lock_held = false;
	assert_int_equal(hearth_msr_write(&x->f->vm, 0x4b564d00, 0x1234), 1);
	assert_int_equal(m.value, 0x1234);
	assert_true(m.lock_held);
	/* the device refuses: #GP */
	m.fail = 1;
	assert_int_equal(hearth_msr_read(&x->f->vm, 0x4b564d00, &v), -1);
	assert_int_equal(hearth_msr_write(&x->f->vm, 0x4b564d00, 9), -1);
	assert_int_equal(m.value, 0x1234);
	/* other MSRs still unhooked */
	assert_int_equal(hearth_msr_read(&x->f->vm, 0x4b564d01, &v), 0);

	/* a read-only hook: writes are not handled */
	assert_int_equal(hearth_hook_msr(x->b, 0x10, &msr_ro_ops, &mb), 0);
	assert_int_equal(hearth_msr_write(&x->f->vm, 0x10, 1), 0);
	assert_int_equal(hearth_msr_read(&x->f->vm, 0x10, &v), 1);
	assert_int_equal(mb.last_msr, 0x10);

	/* removing a device releases its MSRs only */
	assert_int_equal(hearth_dev_remove(x->b), 0);
	x->b = NULL;
	assert_int_equal(hearth_msr_read(&x->f->vm, 0x10, &v), 0);
	m.fail = 0;
	assert_int_equal(hearth_msr_read(&x->f->vm, 0x4b564d00, &v), 1);
}

static int changed_calls, changed_fail;
static unsigned changed_saw_n;

static int msrs_changed(struct hearth_vm *vm)
{
	changed_calls++;
	changed_saw_n = vm->msrs.n;
	if (changed_fail)
		return hearth_err("MSR filter refused");
	return 0;
}

static uint64_t hc_ret(void *opaque, unsigned vcpu, const uint64_t args[4])
{
	(void)opaque, (void)vcpu, (void)args;
	return 1;
}

static void msrs_changed_callback(void **state)
{
	struct fixture *x = *state;
	struct msr_dev m = {.dev = x->a};
	uint64_t v, args[4] = {0}, ret;

	changed_calls = changed_fail = 0;
	x->f->vm.msrs_changed = msrs_changed;
	assert_int_equal(hearth_hook_msr(x->a, 0x100, &msr_ops, &m), 0);
	assert_int_equal(changed_calls, 1);
	assert_int_equal(changed_saw_n, 1); /* called with the new MSR in the table */
	/* a refused conflict does not bother the platform */
	assert_int_equal(hearth_hook_msr(x->b, 0x100, &msr_ops, &m), -1);
	assert_int_equal(changed_calls, 1);

	/* the platform refuses: the new hook is undone, the device's other hooks stay */
	assert_int_equal(hearth_hook_hypercall(x->a, 3, hc_ret, NULL), 0);
	changed_fail = 1;
	hearth_err_clear();
	assert_int_equal(hearth_hook_msr(x->a, 0x200, &msr_ops, &m), -1);
	assert_non_null(strstr(hearth_err_msg(), "MSR filter refused"));
	assert_int_equal(changed_calls, 2);
	assert_int_equal(x->f->vm.msrs.n, 1);
	assert_int_equal(hearth_msr_read(&x->f->vm, 0x200, &v), 0);
	assert_int_equal(hearth_msr_read(&x->f->vm, 0x100, &v), 1);
	assert_true(hearth_hypercall(&x->f->vm, 0, 3, args, &ret));
	/* the MSR is free to hook once the platform agrees */
	changed_fail = 0;
	assert_int_equal(hearth_hook_msr(x->b, 0x200, &msr_ops, &m), 0);
	assert_int_equal(changed_calls, 3);

	/* removing a device with MSRs tells the platform; one without does not */
	struct hearth_dev *c = fakevm_dev(x->f, "owner", "carol", NULL);
	assert_int_equal(hearth_hook_hypercall(c, 4, hc_ret, NULL), 0);
	assert_int_equal(hearth_dev_remove(c), 0);
	assert_int_equal(changed_calls, 3);
	assert_int_equal(hearth_dev_remove(x->b), 0);
	x->b = NULL;
	assert_int_equal(changed_calls, 4);
	assert_int_equal(changed_saw_n, 1);
	x->f->vm.msrs_changed = NULL;
}

/* ---- CPUID ---- */

static void cpuid_set_eax(void *opaque, unsigned vcpu, uint32_t leaf, uint32_t subleaf,
			  struct hearth_cpuid_regs *regs)
{
	(void)leaf;
	regs->eax = (uint32_t)(uintptr_t)opaque;
	regs->ebx = vcpu;
	regs->ecx = subleaf;
}

static void cpuid_hooks(void **state)
{
	struct fixture *x = *state;
	struct hearth_cpuid_regs r;

	assert_int_equal(hearth_hook_cpuid(x->a, 0x40000000, HEARTH_CPUID_ANY, cpuid_set_eax,
					   (void *)(uintptr_t)0xaa),
			 0);
	for (uint32_t sub = 0; sub < 4; sub++) {
		r = (struct hearth_cpuid_regs){0};
		hearth_cpuid_apply(&x->f->vm, 3, 0x40000000, sub, &r);
		assert_int_equal(r.eax, 0xaa);
		assert_int_equal(r.ebx, 3);
		assert_int_equal(r.ecx, sub);
	}
	/* other leaves untouched */
	r = (struct hearth_cpuid_regs){.eax = 0x77};
	hearth_cpuid_apply(&x->f->vm, 0, 0x40000001, 0, &r);
	assert_int_equal(r.eax, 0x77);

	/* any subleaf conflicts with every specific one and the other way round */
	hearth_err_clear();
	assert_int_equal(hearth_hook_cpuid(x->b, 0x40000000, 1, cpuid_set_eax, NULL), -1);
	assert_non_null(strstr(hearth_err_msg(), "'alice'"));
	assert_non_null(strstr(hearth_err_msg(), "'bob'"));
	assert_non_null(strstr(hearth_err_msg(), "0x40000000"));
	assert_int_equal(hearth_hook_cpuid(x->b, 0x40000000, HEARTH_CPUID_ANY, cpuid_set_eax, NULL),
			 -1);

	/* specific subleaves of one leaf by two devices */
	assert_int_equal(hearth_hook_cpuid(x->a, 7, 0, cpuid_set_eax, (void *)(uintptr_t)0x70), 0);
	assert_int_equal(hearth_hook_cpuid(x->b, 7, 1, cpuid_set_eax, (void *)(uintptr_t)0x71), 0);
	assert_int_equal(hearth_hook_cpuid(x->b, 7, 0, cpuid_set_eax, NULL), -1);
	hearth_err_clear();
	assert_int_equal(hearth_hook_cpuid(x->b, 7, HEARTH_CPUID_ANY, cpuid_set_eax, NULL), -1);
	assert_non_null(strstr(hearth_err_msg(), "'alice'"));
	r = (struct hearth_cpuid_regs){0};
	hearth_cpuid_apply(&x->f->vm, 0, 7, 0, &r);
	assert_int_equal(r.eax, 0x70);
	r = (struct hearth_cpuid_regs){0};
	hearth_cpuid_apply(&x->f->vm, 0, 7, 1, &r);
	assert_int_equal(r.eax, 0x71);
	r = (struct hearth_cpuid_regs){.eax = 5};
	hearth_cpuid_apply(&x->f->vm, 0, 7, 2, &r);
	assert_int_equal(r.eax, 5);

	/* removal releases bob's subleaf only */
	assert_int_equal(hearth_dev_remove(x->b), 0);
	x->b = NULL;
	r = (struct hearth_cpuid_regs){0};
	hearth_cpuid_apply(&x->f->vm, 0, 7, 1, &r);
	assert_int_equal(r.eax, 0);
	hearth_cpuid_apply(&x->f->vm, 0, 7, 0, &r);
	assert_int_equal(r.eax, 0x70);
}

/* ---- hypercalls ---- */

struct hc_dev {
	struct hearth_dev *dev;
	unsigned vcpu;
	uint64_t args[4];
	bool lock_held;
};

static uint64_t hc_sum(void *opaque, unsigned vcpu, const uint64_t args[4])
{
	struct hc_dev *h = opaque;

	h->vcpu = vcpu;
	memcpy(h->args, args, sizeof(h->args));
	h->lock_held = dev_locked(h->dev);
	return args[0] + args[1] + args[2] + args[3];
}

static void hypercall_hooks(void **state)
{
	struct fixture *x = *state;
	struct hc_dev h = {.dev = x->a};
	uint64_t args[4] = {1, 20, 300, 4000}, ret = 99;

	assert_false(hearth_hypercall(&x->f->vm, 0, 5, args, &ret));
	assert_int_equal(ret, 99);
	assert_int_equal(hearth_hook_hypercall(x->a, 5, hc_sum, &h), 0);
	hearth_err_clear();
	assert_int_equal(hearth_hook_hypercall(x->b, 5, hc_sum, &h), -1);
	assert_non_null(strstr(hearth_err_msg(), "'alice'"));
	assert_non_null(strstr(hearth_err_msg(), "'bob'"));
	assert_non_null(strstr(hearth_err_msg(), "hypercall 5"));

	assert_true(hearth_hypercall(&x->f->vm, 2, 5, args, &ret));
	assert_int_equal(ret, 4321);
	assert_int_equal(h.vcpu, 2);
	assert_memory_equal(h.args, args, sizeof(args));
	assert_true(h.lock_held);
	/* unknown numbers, including neighbours and the largest */
	ret = 99;
	assert_false(hearth_hypercall(&x->f->vm, 0, 4, args, &ret));
	assert_false(hearth_hypercall(&x->f->vm, 0, 6, args, &ret));
	assert_false(hearth_hypercall(&x->f->vm, 0, UINT32_MAX, args, &ret));
	assert_int_equal(ret, 99);
	assert_int_equal(hearth_hook_hypercall(x->b, UINT32_MAX, hc_sum, &h), 0);
	assert_true(hearth_hypercall(&x->f->vm, 0, UINT32_MAX, args, &ret));

	assert_int_equal(hearth_dev_remove(x->a), 0);
	x->a = NULL;
	assert_false(hearth_hypercall(&x->f->vm, 0, 5, args, &ret));
	assert_int_equal(hearth_hook_hypercall(x->b, 5, hc_sum, &h), 0);
}

/* Hook tables grow past their first allocation. */
static void many_hooks(void **state)
{
	struct fixture *x = *state;
	struct msr_dev m = {.dev = x->a, .value = 3};
	uint64_t v;

	for (uint32_t i = 0; i < 100; i++) {
		assert_int_equal(hearth_hook_msr(x->a, 0x1000 + i, &msr_ops, &m), 0);
		assert_int_equal(hearth_hook_hypercall(x->b, i, hc_ret, NULL), 0);
		assert_int_equal(hearth_hook_cpuid(x->a, 0x40000000 + i, 0, cpuid_set_eax, NULL),
				 0);
	}
	assert_int_equal(x->f->vm.msrs.n, 100);
	for (uint32_t i = 0; i < 100; i++) {
		assert_int_equal(hearth_msr_read(&x->f->vm, 0x1000 + i, &v), 1);
		assert_int_equal(m.last_msr, 0x1000 + i);
	}
	assert_int_equal(hearth_dev_remove(x->a), 0);
	x->a = NULL;
	assert_int_equal(x->f->vm.msrs.n, 0);
	assert_int_equal(x->f->vm.cpuids.n, 0);
	assert_int_equal(x->f->vm.hcalls.n, 100);
}

/* ---- VM control through the platform callbacks ---- */

static void vm_control(void **state)
{
	struct fixture *x = *state;

	hearth_irq_line(&x->f->vm, 4, 1);
	hearth_irq_line(&x->f->vm, 4, 1);
	assert_int_equal(x->f->irq_level[4], 1);
	assert_int_equal(x->f->irq_raises[4], 1);
	hearth_irq_line(&x->f->vm, 4, 0);
	assert_int_equal(x->f->irq_level[4], 0);
	hearth_vm_request_stop(&x->f->vm, 3);
	assert_int_equal(x->f->stop_requested, 1);
	assert_int_equal(x->f->stop_status, 3);
	assert_int_equal(hearth_vm_ram_size(&x->f->vm), 4096);
	/* a machine without a platform (early start-up) ignores them */
	x->f->vm.irq_line = NULL;
	x->f->vm.request_stop = NULL;
	hearth_irq_line(&x->f->vm, 4, 1);
	hearth_vm_request_stop(&x->f->vm, 1);
	assert_int_equal(x->f->stop_requested, 1);
	assert_int_equal(x->f->irq_raises[4], 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(io_ranges),	T(msr_hooks),	    T(msrs_changed_callback),
		T(cpuid_hooks), T(hypercall_hooks), T(many_hooks),
		T(vm_control),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
