/* hearth's test device: two windows, one in port space and one in MMIO space, with the same
 * small register set, so guest tests can check port and MMIO dispatch, access sizes and
 * write counting end to end. The test OS depends on this register contract (see
 * docs/devices.md); change both together. */
#include <stdlib.h>

#include "hearth/checkpoint.h"
#include "hearth/device.h"

#define PIO_LEN 16
#define MMIO_LEN 4096

#define REG_SCRATCH 0x0
#define REG_WRITES 0x4
#define REG_ID 0x8
#define REG_PATTERN 0x10 /* from here on, reads return a value computed from the offset */

#define TESTDEV_ID 0x48525448u /* "HRTH", most significant byte first */

struct window {
	uint32_t scratch;
	uint32_t writes;
};

struct testdev {
	struct window pio, mmio;
	uint64_t msr_value;
};

/* The non-bus hooks, so guest tests reach MSR, CPUID and hypercall dispatch too. */
#define DEFAULT_MSR 0x4b564e00u	     /* above KVM's own 0x4b564dxx range */
#define DEFAULT_CPUID 0x40000100u    /* above the hypervisor leaves KVM reports */
#define DEFAULT_HYPERCALL 0x48525448 /* "HRTH" */

static uint64_t size_mask(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

static uint64_t window_read(void *opaque, uint64_t offset, unsigned size)
{
	struct window *w = opaque;
	uint64_t v;

	if (offset >= REG_PATTERN)
		v = (uint32_t)(offset * 0x01010101u) ^ 0xa5a5a5a5u;
	else if (offset == REG_SCRATCH)
		v = w->scratch;
	else if (offset == REG_WRITES)
		v = w->writes;
	else if (offset == REG_ID)
		v = TESTDEV_ID;
	else
		v = 0; /* the bytes between registers read as zero */
	return v & size_mask(size);
}

static void window_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	struct window *w = opaque;

	w->writes++;
	if (offset == REG_SCRATCH) {
		/* a narrow write replaces the low bytes and keeps the rest */
		uint32_t mask = (uint32_t)size_mask(size);
		w->scratch = (w->scratch & ~mask) | ((uint32_t)value & mask);
	}
}

static const struct hearth_io_ops window_ops = {.read = window_read, .write = window_write};

static int msr_read(void *opaque, uint32_t msr, uint64_t *value)
{
	(void)msr;
	*value = ((struct testdev *)opaque)->msr_value;
	return 0;
}

static int msr_write(void *opaque, uint32_t msr, uint64_t value)
{
	(void)msr;
	((struct testdev *)opaque)->msr_value = value;
	return 0;
}

static const struct hearth_msr_ops msr_ops = {.read = msr_read, .write = msr_write};

/* The leaf answers with the ID and the vCPU, so a guest can tell the hook ran per vCPU. */
static void cpuid_leaf(void *opaque, unsigned vcpu, uint32_t leaf, uint32_t subleaf,
		       struct hearth_cpuid_regs *regs)
{
	(void)opaque;
	*regs = (struct hearth_cpuid_regs){TESTDEV_ID, vcpu, leaf, subleaf};
}

/* Sum of the arguments, xored with the ID: any argument lost or swapped shows. */
static uint64_t hypercall(void *opaque, unsigned vcpu, const uint64_t args[4])
{
	(void)opaque;
	(void)vcpu;
	return (args[0] + 2 * args[1] + 3 * args[2] + 4 * args[3]) ^ TESTDEV_ID;
}
static int testdev_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	uint64_t port, mmio, msr, leaf, hcall;
	struct testdev *s;

	if (hearth_cfg_u64(cfg, "port", 0x700, 0, 0x10000 - PIO_LEN, &port) < 0 ||
	    hearth_cfg_u64(cfg, "mmio", 0xd0000000, 0, UINT64_MAX - MMIO_LEN, &mmio) < 0 ||
	    hearth_cfg_u64(cfg, "msr", DEFAULT_MSR, 0, UINT32_MAX, &msr) < 0 ||
	    hearth_cfg_u64(cfg, "cpuid", DEFAULT_CPUID, 0, UINT32_MAX, &leaf) < 0 ||
	    hearth_cfg_u64(cfg, "hypercall", DEFAULT_HYPERCALL, 0, UINT32_MAX, &hcall) < 0)
		return -1;
	/* the test OS maps the window as one page */
	if (mmio % MMIO_LEN)
		return hearth_err("key 'mmio': %#llx is not aligned to %u bytes",
				  (unsigned long long)mmio, MMIO_LEN);
	s = calloc(1, sizeof(*s));
	if (!s)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, s);
	if (hearth_hook_pio(dev, (uint16_t)port, PIO_LEN, &window_ops, &s->pio) < 0 ||
	    hearth_hook_mmio(dev, mmio, MMIO_LEN, &window_ops, &s->mmio) < 0 ||
	    hearth_hook_msr(dev, (uint32_t)msr, &msr_ops, s) < 0 ||
	    hearth_hook_cpuid(dev, (uint32_t)leaf, HEARTH_CPUID_ANY, cpuid_leaf, s) < 0 ||
	    hearth_hook_hypercall(dev, (uint32_t)hcall, hypercall, s) < 0)
		return -1;
	return 0;
}

static void testdev_free(struct hearth_dev *dev)
{
	free(hearth_dev_priv(dev));
}

static void testdev_reset(struct hearth_dev *dev)
{
	struct testdev *s = hearth_dev_priv(dev);

	s->pio = (struct window){0};
	s->mmio = (struct window){0};
	s->msr_value = 0;
}

static int testdev_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct testdev *s = hearth_dev_priv(dev);
	const uint32_t regs[4] = {s->pio.scratch, s->pio.writes, s->mmio.scratch, s->mmio.writes};

	if (hearth_ckpt_set_version(ck, 1) < 0 ||
	    hearth_ckpt_put_u32_array(ck, "windows", regs, 4) < 0)
		return -1;
	return hearth_ckpt_put_u64(ck, "msr", s->msr_value);
}

static int testdev_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct testdev *s = hearth_dev_priv(dev);
	uint32_t regs[4];

	if (hearth_ckpt_accept_versions(ck, 1, 1) < 0 ||
	    hearth_ckpt_get_u32_array(ck, "windows", regs, 4, NULL) < 0 ||
	    hearth_ckpt_get_u64(ck, "msr", &s->msr_value) < 0)
		return -1;
	s->pio = (struct window){regs[0], regs[1]};
	s->mmio = (struct window){regs[2], regs[3]};
	return 0;
}

HEARTH_DEVICE_CLASS(testdev_class, .name = "testdev",
		    .summary = "hearth test device: scratch, write-counter and ID registers in a "
			       "port and an MMIO window; an MSR, a CPUID leaf and a hypercall",
		    .init = testdev_init, .free = testdev_free, .reset = testdev_reset,
		    .save = testdev_save, .load = testdev_load);
