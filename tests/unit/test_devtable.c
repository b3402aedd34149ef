/* The device table: creating, finding and removing devices, and that a device that fails
 * to build leaves nothing behind. */
#include <errno.h>
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
#include "hearth/chardev.h"

/* What the fake classes saw, in order. */
static char freed[16][HEARTH_NAME_MAX + 1];
static int nfreed;
static char reset_order[16][HEARTH_NAME_MAX + 1];
static int nreset;
static bool reset_saw_lock_held = true;

static void log_free(struct hearth_dev *dev)
{
	if (nfreed < 16)
		strcpy(freed[nfreed++], hearth_dev_id(dev));
	free(hearth_dev_priv(dev));
}

static int plain_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	(void)cfg;
	hearth_dev_set_priv(dev, malloc(32));
	return 0;
}

static void resettable_reset(struct hearth_dev *dev)
{
	if (!dev_locked(dev))
		reset_saw_lock_held = false;
	if (nreset < 16)
		strcpy(reset_order[nreset++], hearth_dev_id(dev));
}

static uint64_t io_read(void *opaque, uint64_t offset, unsigned size)
{
	(void)opaque, (void)size;
	return offset;
}

static const struct hearth_io_ops io_ops = {.read = io_read};

static int msr_read(void *opaque, uint32_t msr, uint64_t *value)
{
	(void)opaque;
	*value = msr;
	return 0;
}

static const struct hearth_msr_ops msr_ops = {.read = msr_read};

static void cpuid_fn(void *opaque, unsigned vcpu, uint32_t leaf, uint32_t subleaf,
		     struct hearth_cpuid_regs *regs)
{
	(void)opaque, (void)vcpu, (void)leaf, (void)subleaf;
	regs->eax = 0x1234;
}

static uint64_t hcall_fn(void *opaque, unsigned vcpu, const uint64_t args[4])
{
	(void)opaque, (void)vcpu;
	return args[0];
}

static const struct hearth_char_frontend_ops fe_ops;

/* Hooks one of everything (the port last), then fails when told to. */
static int hooker_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	uint64_t port, mmio, msr, leaf, hcall;
	bool fail, fe;

	hearth_dev_set_priv(dev, malloc(64)); /* leaks unless free runs */
	if (hearth_cfg_u64(cfg, "port", 0x100, 0, 0xffff, &port) < 0 ||
	    hearth_cfg_u64(cfg, "mmio", 0x10000000, 0, UINT64_MAX, &mmio) < 0 ||
	    hearth_cfg_u64(cfg, "msr", 0x4b564d00, 0, UINT32_MAX, &msr) < 0 ||
	    hearth_cfg_u64(cfg, "leaf", 0x40000000, 0, UINT32_MAX, &leaf) < 0 ||
	    hearth_cfg_u64(cfg, "hcall", 1, 0, UINT32_MAX, &hcall) < 0 ||
	    hearth_cfg_bool(cfg, "fail", false, &fail) < 0 ||
	    hearth_cfg_bool(cfg, "frontend", true, &fe) < 0)
		return -1;
	if (hearth_hook_mmio(dev, mmio, 0x1000, &io_ops, NULL) < 0 ||
	    hearth_hook_msr(dev, (uint32_t)msr, &msr_ops, NULL) < 0 ||
	    hearth_hook_cpuid(dev, (uint32_t)leaf, HEARTH_CPUID_ANY, cpuid_fn, NULL) < 0 ||
	    hearth_hook_hypercall(dev, (uint32_t)hcall, hcall_fn, NULL) < 0 ||
	    (fe && hearth_frontend_register(dev, HEARTH_FE_CHAR, &fe_ops, dev) < 0) ||
	    hearth_hook_pio(dev, (uint16_t)port, 8, &io_ops, NULL) < 0)
		return -1;
	if (fail)
		return hearth_err("told to fail");
	return 0;
}

static int keyed_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	uint64_t a;

	hearth_dev_set_priv(dev, malloc(8));
	if (hearth_cfg_u64(cfg, "a", 0, 0, 100, &a) < 0)
		return -1;
	return hearth_hook_pio(dev, 0x300, 1, &io_ops, NULL);
}

static int backend_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	const char *fe;
	const void *ops;
	void *opaque;

	if (hearth_cfg_str(cfg, "frontend", NULL, &fe) < 0)
		return -1;
	return hearth_frontend_connect(dev, fe, HEARTH_FE_CHAR, &ops, &opaque);
}

static const struct hearth_dev_class c_plain = {
	.source = "t.c", .name = "plain", .init = plain_init, .free = log_free};
static const struct hearth_dev_class c_hooker = {
	.source = "t.c", .name = "hooker", .init = hooker_init, .free = log_free};
static const struct hearth_dev_class c_keyed = {
	.source = "t.c", .name = "keyed", .init = keyed_init, .free = log_free};
static const struct hearth_dev_class c_reset = {.source = "t.c",
						.name = "resettable",
						.init = plain_init,
						.free = log_free,
						.reset = resettable_reset};
static const struct hearth_dev_class c_backend = {
	.source = "t.c", .name = "backend", .init = backend_init};

static int setup(void **state)
{
	const struct hearth_dev_class *list[] = {&c_plain, &c_hooker, &c_keyed, &c_reset,
						 &c_backend};

	if (hearth_classes_build(list, sizeof(list) / sizeof(list[0])) < 0)
		return -1;
	nfreed = nreset = 0;
	reset_saw_lock_held = true;
	*state = fakevm_new(4096);
	return 0;
}

static int teardown(void **state)
{
	fakevm_free(*state);
	return 0;
}

static unsigned ndevs(struct hearth_vm *vm)
{
	unsigned n = 0;
	for (struct hearth_dev *d = vm->devs; d; d = d->next)
		n++;
	return n;
}

/* Nothing hooked anywhere: the state of a VM without devices. */
static void assert_no_hooks(struct hearth_vm *vm)
{
	assert_int_equal(vm->pio.n, 0);
	assert_int_equal(vm->mmio.n, 0);
	assert_int_equal(vm->msrs.n, 0);
	assert_int_equal(vm->cpuids.n, 0);
	assert_int_equal(vm->hcalls.n, 0);
	assert_null(vm->frontends);
}

static void create_find_remove(void **state)
{
	struct fakevm *f = *state;
	struct hearth_dev *d = fakevm_dev(f, "plain", "d1", NULL);

	assert_non_null(d);
	assert_ptr_equal(hearth_dev_find(&f->vm, "d1"), d);
	assert_null(hearth_dev_find(&f->vm, "d2"));
	assert_null(hearth_dev_find(&f->vm, "d"));
	assert_string_equal(hearth_dev_id(d), "d1");
	assert_ptr_equal(hearth_dev_class(d), &c_plain);
	assert_ptr_equal(hearth_dev_vm(d), &f->vm);
	assert_non_null(hearth_dev_priv(d));
	assert_int_equal(nfreed, 0);

	struct hearth_dev *d2 = fakevm_dev(f, "plain", "d2", NULL);
	assert_non_null(d2);
	assert_ptr_equal(hearth_dev_find(&f->vm, "d2"), d2);
	assert_int_equal(ndevs(&f->vm), 2);

	assert_int_equal(hearth_dev_remove(d), 0);
	assert_null(hearth_dev_find(&f->vm, "d1"));
	assert_ptr_equal(hearth_dev_find(&f->vm, "d2"), d2);
	assert_int_equal(nfreed, 1);
	assert_string_equal(freed[0], "d1");
	/* the id is free again */
	assert_non_null(fakevm_dev(f, "plain", "d1", NULL));
	assert_int_equal(ndevs(&f->vm), 2);
}

static void null_cfg_and_accessors(void **state)
{
	struct fakevm *f = *state;
	struct hearth_dev *d = hearth_dev_create(&f->vm, "plain", "nocfg", NULL);
	int x;

	assert_non_null(d);
	free(hearth_dev_priv(d));
	hearth_dev_set_priv(d, NULL);
	assert_null(hearth_dev_priv(d));
	hearth_dev_set_priv(d, &x);
	assert_ptr_equal(hearth_dev_priv(d), &x);
	hearth_dev_set_priv(d, NULL);
	assert_string_equal(hearth_dev_id(NULL), "(none)");

	hearth_dev_lock(d);
	assert_int_equal(pthread_mutex_trylock(&d->lock), EBUSY);
	hearth_dev_unlock(d);
	assert_int_equal(pthread_mutex_trylock(&d->lock), 0);
	pthread_mutex_unlock(&d->lock);
}

static void duplicate_id(void **state)
{
	struct fakevm *f = *state;
	struct hearth_dev *d = fakevm_dev(f, "hooker", "dup", NULL);
	struct hearth_io_range r;

	assert_non_null(d);
	unsigned pio = f->vm.pio.n, mmio = f->vm.mmio.n, msrs = f->vm.msrs.n;
	hearth_err_clear();
	assert_null(fakevm_dev(f, "hooker", "dup", "{\"port\": 512, \"mmio\": 0, \"msr\": 1}"));
	assert_non_null(strstr(hearth_err_msg(), "'dup'"));
	assert_non_null(strstr(hearth_err_msg(), "already used"));
	assert_non_null(strstr(hearth_err_msg(), "hooker"));
	/* the table is as it was */
	assert_int_equal(ndevs(&f->vm), 1);
	assert_ptr_equal(hearth_dev_find(&f->vm, "dup"), d);
	assert_int_equal(f->vm.pio.n, pio);
	assert_int_equal(f->vm.mmio.n, mmio);
	assert_int_equal(f->vm.msrs.n, msrs);
	assert_true(iobus_find(&f->vm.pio, 0x100, 1, &r));
	assert_ptr_equal(r.owner, d);
	assert_false(iobus_find(&f->vm.pio, 512, 1, &r));
	assert_int_equal(nfreed, 0);
	/* a different class under a used id is refused the same way */
	assert_null(fakevm_dev(f, "plain", "dup", NULL));
	assert_int_equal(ndevs(&f->vm), 1);
}

/* A second device that hooks everything but collides on its last hook (the port) must
 * give back everything it got before the collision. */
static void failed_hook_releases_earlier_hooks(void **state)
{
	struct fakevm *f = *state;
	struct hearth_dev *first = fakevm_dev(f, "hooker", "first", NULL);
	struct hearth_io_range r;
	uint64_t v;

	assert_non_null(first);
	hearth_err_clear();
	assert_null(fakevm_dev(f, "hooker", "second",
			       "{\"mmio\": 536870912, \"msr\": 7, \"leaf\": 5, \"hcall\": 9, "
			       "\"port\": 260}"));
	const char *m = hearth_err_msg();
	assert_non_null(strstr(m, "'second'"));
	assert_non_null(strstr(m, "'first'"));
	assert_non_null(strstr(m, "port"));
	assert_int_equal(ndevs(&f->vm), 1);
	assert_null(hearth_dev_find(&f->vm, "second"));
	assert_int_equal(nfreed, 1);
	assert_string_equal(freed[0], "second");
	/* only the first device's hooks remain */
	assert_int_equal(f->vm.pio.n, 1);
	assert_int_equal(f->vm.mmio.n, 1);
	assert_int_equal(f->vm.msrs.n, 1);
	assert_int_equal(f->vm.cpuids.n, 1);
	assert_int_equal(f->vm.hcalls.n, 1);
	assert_false(iobus_find(&f->vm.mmio, 536870912, 1, &r));
	assert_int_equal(hearth_msr_read(&f->vm, 7, &v), 0);
	assert_int_equal(hearth_msr_read(&f->vm, 0x4b564d00, &v), 1);
	assert_non_null(f->vm.frontends);
	assert_ptr_equal(f->vm.frontends->dev, first);
	assert_null(f->vm.frontends->next);
}

static void init_failure_releases_everything(void **state)
{
	struct fakevm *f = *state;
	struct hearth_cpuid_regs regs = {0};
	struct hearth_io_range r;
	uint64_t v, args[4] = {42, 0, 0, 0}, ret = 7;
	const void *ops;
	void *opaque;

	hearth_err_clear();
	assert_null(fakevm_dev(f, "hooker", "bad", "{\"fail\": true}"));
	const char *m = hearth_err_msg();
	assert_non_null(strstr(m, "device 'bad' (hooker)"));
	assert_non_null(strstr(m, "told to fail"));
	assert_null(hearth_dev_find(&f->vm, "bad"));
	assert_int_equal(ndevs(&f->vm), 0);
	assert_no_hooks(&f->vm);
	/* and through the dispatch paths */
	assert_false(iobus_find(&f->vm.pio, 0x100, 1, &r));
	assert_false(iobus_find(&f->vm.mmio, 0x10000000, 1, &r));
	assert_int_equal(hearth_msr_read(&f->vm, 0x4b564d00, &v), 0);
	hearth_cpuid_apply(&f->vm, 0, 0x40000000, 0, &regs);
	assert_int_equal(regs.eax, 0);
	assert_false(hearth_hypercall(&f->vm, 0, 1, args, &ret));
	assert_int_equal(ret, 7);
	struct hearth_dev *be = fakevm_dev(f, "plain", "be", NULL);
	assert_int_equal(hearth_frontend_connect(be, "bad", HEARTH_FE_CHAR, &ops, &opaque), -1);
	/* free ran for the failed device (its priv would leak otherwise) */
	assert_int_equal(nfreed, 1);
	assert_string_equal(freed[0], "bad");
	/* the same id and resources can be used by the next attempt */
	assert_non_null(fakevm_dev(f, "hooker", "bad", NULL));
}

static void config_error_in_init(void **state)
{
	struct fakevm *f = *state;

	hearth_err_clear();
	assert_null(fakevm_dev(f, "keyed", "k", "{\"a\": 101}"));
	assert_non_null(strstr(hearth_err_msg(), "device 'k' (keyed)"));
	assert_non_null(strstr(hearth_err_msg(), "'a'"));
	assert_int_equal(nfreed, 1);
	assert_no_hooks(&f->vm);
}

static void unknown_key(void **state)
{
	struct fakevm *f = *state;

	hearth_err_clear();
	assert_null(fakevm_dev(f, "keyed", "k1", "{\"a\": 1, \"colour\": \"red\"}"));
	assert_non_null(strstr(hearth_err_msg(), "unknown key 'colour'"));
	assert_non_null(strstr(hearth_err_msg(), "'k1'"));
	assert_null(hearth_dev_find(&f->vm, "k1"));
	assert_int_equal(ndevs(&f->vm), 0);
	assert_no_hooks(&f->vm);
	assert_int_equal(nfreed, 1);
	/* every key read: accepted */
	assert_non_null(fakevm_dev(f, "keyed", "k1", "{\"a\": 1}"));
}

static void unknown_class(void **state)
{
	struct fakevm *f = *state;

	hearth_err_clear();
	assert_null(fakevm_dev(f, "no-such-class", "x", NULL));
	assert_non_null(strstr(hearth_err_msg(), "unknown device class 'no-such-class'"));
	assert_int_equal(ndevs(&f->vm), 0);
	assert_null(fakevm_dev(f, "", "x", NULL));
	assert_int_equal(ndevs(&f->vm), 0);
}

static void invalid_ids(void **state)
{
	struct fakevm *f = *state;
	char longid[65];
	const char *bad[] = {"", "1x", "a b", "a/b", "_x", longid};

	memset(longid, 'i', 64);
	longid[64] = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hearth_err_clear();
		assert_null(hearth_dev_create(&f->vm, "plain", bad[i], NULL));
		assert_non_null(strstr(hearth_err_msg(), "invalid device id"));
		assert_non_null(strstr(hearth_err_msg(), bad[i]));
	}
	assert_int_equal(ndevs(&f->vm), 0);
	assert_int_equal(nfreed, 0);
	longid[63] = 0;
	assert_non_null(hearth_dev_create(&f->vm, "plain", longid, NULL));
}

static void destroy_newest_first(void **state)
{
	struct fakevm *f = *state;

	assert_non_null(fakevm_dev(f, "plain", "first", NULL));
	assert_non_null(fakevm_dev(f, "hooker", "second", NULL));
	assert_non_null(fakevm_dev(f, "plain", "third", NULL));
	machine_destroy(&f->vm);
	assert_int_equal(nfreed, 3);
	assert_string_equal(freed[0], "third");
	assert_string_equal(freed[1], "second");
	assert_string_equal(freed[2], "first");
	assert_null(f->vm.devs);
	/* teardown destroys it again: give it a fresh machine with the fake's platform */
	struct hearth_vm saved = f->vm;
	machine_init(&f->vm);
	f->vm.loop = saved.loop;
	f->vm.irq_line = saved.irq_line;
	f->vm.request_stop = saved.request_stop;
}

static void remove_refuses_connected_frontend(void **state)
{
	struct fakevm *f = *state;
	struct hearth_dev *fe = fakevm_dev(f, "hooker", "uart", NULL);
	struct hearth_dev *be = fakevm_dev(f, "backend", "stdio", "{\"frontend\": \"uart\"}");

	assert_non_null(fe);
	assert_non_null(be);
	hearth_err_clear();
	assert_int_equal(hearth_dev_remove(fe), -1);
	assert_non_null(strstr(hearth_err_msg(), "'uart'"));
	assert_non_null(strstr(hearth_err_msg(), "'stdio'"));
	assert_ptr_equal(hearth_dev_find(&f->vm, "uart"), fe);
	assert_int_equal(nfreed, 0);
	assert_int_equal(f->vm.pio.n, 1);
	/* backend first, then the frontend goes */
	assert_int_equal(hearth_dev_remove(be), 0);
	assert_null(f->vm.frontends->backend);
	assert_int_equal(hearth_dev_remove(fe), 0);
	assert_int_equal(ndevs(&f->vm), 0);
	assert_no_hooks(&f->vm);
}

static void backend_to_missing_frontend(void **state)
{
	struct fakevm *f = *state;

	hearth_err_clear();
	assert_null(fakevm_dev(f, "backend", "stdio", "{\"frontend\": \"com9\"}"));
	assert_non_null(strstr(hearth_err_msg(), "'com9'"));
	assert_non_null(strstr(hearth_err_msg(), "device 'stdio' (backend)"));
	assert_int_equal(ndevs(&f->vm), 0);
}

static void reset_under_lock_oldest_first(void **state)
{
	struct fakevm *f = *state;

	assert_non_null(fakevm_dev(f, "resettable", "r1", NULL));
	assert_non_null(fakevm_dev(f, "plain", "p", NULL)); /* no reset op: skipped */
	assert_non_null(fakevm_dev(f, "resettable", "r2", NULL));
	hearth_devs_reset(&f->vm);
	assert_int_equal(nreset, 2);
	assert_string_equal(reset_order[0], "r1");
	assert_string_equal(reset_order[1], "r2");
	assert_true(reset_saw_lock_held);
	/* and the lock is released afterwards */
	struct hearth_dev *r1 = hearth_dev_find(&f->vm, "r1");
	assert_int_equal(pthread_mutex_trylock(&r1->lock), 0);
	pthread_mutex_unlock(&r1->lock);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(create_find_remove),
		T(null_cfg_and_accessors),
		T(duplicate_id),
		T(failed_hook_releases_earlier_hooks),
		T(init_failure_releases_everything),
		T(config_error_in_init),
		T(unknown_key),
		T(unknown_class),
		T(invalid_ids),
		T(destroy_newest_first),
		T(remove_refuses_connected_frontend),
		T(backend_to_missing_frontend),
		T(reset_under_lock_oldest_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
