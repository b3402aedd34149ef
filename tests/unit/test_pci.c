/* PCI: the host bridge's two configuration mechanisms, a function's configuration space
 * (write masks, BAR sizing, decode, moves, conflicts, capabilities), MSI-X and INTx, driven
 * as a guest would through the fake VM's buses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus/pci_internal.h"
#include "fakevm.h"
#include "hearth/pci.h"
#include "x86/mptable.h"

/* ---- a test function: one BAR of each kind, MSI-X, a vendor capability ---- */

#define T_VENDOR 0x1234
#define T_DEVICE 0x5678
#define T_CLASS 0x0b4001
#define T_NVEC 8
#define T_MSIX_BAR 4
#define T_PBA_OFF 0x1000

struct tbar {
	unsigned reads, writes;
	uint64_t off, value;
	unsigned size;
};

struct tdev {
	struct hearth_pci_func *f;
	struct tbar bar[6];
	int efd;
	int cap;
	unsigned cfg_writes;
	uint32_t last_cfg_off;
};

static uint64_t tbar_read(void *opaque, uint64_t off, unsigned size)
{
	struct tbar *b = opaque;

	b->reads++;
	b->off = off;
	b->size = size;
	return 0x1122334455667788ull;
}

static void tbar_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
	struct tbar *b = opaque;

	b->writes++;
	b->off = off;
	b->value = value;
	b->size = size;
}

static const struct hearth_io_ops tbar_ops = {.read = tbar_read, .write = tbar_write};

static void tcfg_write(void *opaque, uint32_t off, uint32_t value, unsigned size)
{
	struct tdev *t = opaque;

	(void)value;
	(void)size;
	t->cfg_writes++;
	t->last_cfg_off = off;
}

static const struct hearth_pci_config_ops tcfg_ops = {.write = tcfg_write};

static void tdev_free(struct hearth_dev *dev)
{
	struct tdev *t = hearth_dev_priv(dev);

	if (!t)
		return;
	hearth_pci_func_free(t->f);
	if (t->efd >= 0)
		close(t->efd);
	free(t);
}

static int tdev_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	static const uint8_t body[6] = {8, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE};
	static const uint8_t wmask[6] = {0, 0, 0xFF, 0x0F, 0, 0};
	uint64_t pin, msix_bar;
	bool big, iofd;
	struct tdev *t;

	if (hearth_cfg_u64(cfg, "pin", 1, 0, 9, &pin) < 0 ||
	    hearth_cfg_bool(cfg, "big", false, &big) < 0 ||
	    hearth_cfg_bool(cfg, "iofd", false, &iofd) < 0 ||
	    hearth_cfg_u64(cfg, "msix_bar", T_MSIX_BAR, 0, 9, &msix_bar) < 0)
		return -1;
	t = calloc(1, sizeof(*t));
	t->efd = -1;
	hearth_dev_set_priv(dev, t);
	struct hearth_pci_id id = {T_VENDOR, T_DEVICE, 0xabcd, 0x0042, T_CLASS, 7, (uint8_t)pin};
	t->f = hearth_pci_func_new(dev, &id);
	if (!t->f)
		return -1;
	struct hearth_pci_bar bars[] = {
		{HEARTH_PCI_BAR_IO, false, 32, &tbar_ops, &t->bar[0]},
		{HEARTH_PCI_BAR_MEM32, false, big ? 512ull << 20 : 4096, &tbar_ops, &t->bar[1]},
		{HEARTH_PCI_BAR_MEM64, true, 16384, &tbar_ops, &t->bar[2]},
		{HEARTH_PCI_BAR_MEM32, false, 8192, &tbar_ops, &t->bar[4]},
	};
	static const unsigned idx[] = {0, 1, 2, 4};
	for (unsigned i = 0; i < 4; i++)
		if (hearth_pci_bar(t->f, idx[i], &bars[i]) < 0)
			return -1;
	t->cap = hearth_pci_add_cap(t->f, HEARTH_PCI_CAP_ID_VENDOR, body, sizeof(body), wmask);
	if (t->cap < 0 || hearth_pci_msix_init(t->f, T_NVEC, (unsigned)msix_bar, 0, T_PBA_OFF) < 0)
		return -1;
	hearth_pci_set_config_ops(t->f, &tcfg_ops, t);
	if (iofd) {
		t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (hearth_pci_bar_ioeventfd(t->f, 1, 0x10, 2, t->efd) < 0)
			return -1;
	}
	return hearth_pci_plug(t->f, cfg);
}

static void tdev_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	hearth_pci_describe(((struct tdev *)hearth_dev_priv(dev))->f, buf, len);
}

HEARTH_DEVICE_CLASS(tdev_class, .name = "pcitest", .summary = "PCI test function",
		    .init = tdev_init, .free = tdev_free, .describe = tdev_describe);

/* ---- fixture and guest-style accessors ---- */

static struct fakevm *f;

static int setup(void **state)
{
	(void)state;
	f = fakevm_new(16 << 20);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fakevm_free(f);
	return 0;
}

static struct hearth_dev *make(const char *id, const char *json)
{
	struct hearth_dev *d = fakevm_dev(f, "pcitest", id, json);
	if (!d)
		fail_msg("pcitest '%s': %s", id, hearth_err_msg());
	return d;
}

static struct tdev *tdev(struct hearth_dev *d)
{
	return hearth_dev_priv(d);
}

static void make_fails(const char *json, const char *what)
{
	hearth_err_clear();
	if (fakevm_dev(f, "pcitest", "bad", json))
		fail_msg("pcitest %s was accepted", json ? json : "");
	if (!strstr(hearth_err_msg(), what))
		fail_msg("error '%s' lacks '%s'", hearth_err_msg(), what);
	assert_null(hearth_dev_find(&f->vm, "bad"));
}

static uint32_t cf8(unsigned slot, unsigned reg)
{
	return 0x80000000u | slot << 11 | (reg & 0xFC);
}

/* mechanism #1 at any size: the data port byte is picked by the low register bits */
static uint32_t cfg_rd(unsigned slot, unsigned reg, unsigned size)
{
	iobus_write(&f->vm.pio, 0xCF8, cf8(slot, reg), 4);
	return (uint32_t)iobus_read(&f->vm.pio, 0xCFC + (reg & 3), size);
}

static void cfg_wr(unsigned slot, unsigned reg, uint32_t v, unsigned size)
{
	iobus_write(&f->vm.pio, 0xCF8, cf8(slot, reg), 4);
	iobus_write(&f->vm.pio, 0xCFC + (reg & 3), v, size);
}

static uint64_t ecam_rd(unsigned slot, unsigned reg, unsigned size)
{
	return iobus_read(&f->vm.mmio, HEARTH_PCI_ECAM_BASE + (slot << 15) + reg, size);
}

static void ecam_wr(unsigned slot, unsigned reg, uint64_t v, unsigned size)
{
	iobus_write(&f->vm.mmio, HEARTH_PCI_ECAM_BASE + (slot << 15) + reg, v, size);
}

static bool mapped_to(struct hearth_iobus *bus, uint64_t addr, struct hearth_dev *d)
{
	struct hearth_io_range r;
	return iobus_find(bus, addr, 1, &r) && r.owner == d;
}

static uint64_t bar_base(unsigned slot, unsigned i)
{
	uint32_t lo = cfg_rd(slot, 0x10 + 4 * i, 4);
	if (lo & 1)
		return lo & ~3u;
	uint64_t b = lo & ~0xFull;
	if ((lo & 6) == 4)
		b |= (uint64_t)cfg_rd(slot, 0x14 + 4 * i, 4) << 32;
	return b;
}

/* ================= host bridge and configuration mechanisms ================= */

static void test_host_bridge(void **state)
{
	(void)state;
	make("t", NULL);
	assert_non_null(hearth_dev_find(&f->vm, "pci0")); /* created on demand */
	assert_int_equal(cfg_rd(0, 0, 4), 0x00081b36);
	assert_int_equal(cfg_rd(0, 0x08, 4) >> 8, 0x060000);
	assert_int_equal(cfg_rd(0, 0x0E, 1), 0); /* type 0, single function */
	/* a second host bridge is refused */
	hearth_err_clear();
	assert_null(fakevm_dev(f, "pci-host", "pci1", NULL));
	assert_non_null(strstr(hearth_err_msg(), "host bridge already"));
}

static void test_mech1_sizes(void **state)
{
	(void)state;
	make("t", NULL);
	unsigned s = 1;
	assert_int_equal(cfg_rd(s, 0, 4), T_DEVICE << 16 | T_VENDOR);
	assert_int_equal(cfg_rd(s, 0, 2), T_VENDOR);
	assert_int_equal(cfg_rd(s, 2, 2), T_DEVICE);
	assert_int_equal(cfg_rd(s, 1, 1), T_VENDOR >> 8);
	assert_int_equal(cfg_rd(s, 3, 1), T_DEVICE >> 8);
	/* unaligned word inside the dword */
	assert_int_equal(cfg_rd(s, 1, 2), (T_DEVICE & 0xFF) << 8 | T_VENDOR >> 8);
	/* revision and class through byte reads */
	assert_int_equal(cfg_rd(s, 0x08, 1), 7);
	assert_int_equal(cfg_rd(s, 0x0B, 1), T_CLASS >> 16);
	/* the address register reads back without its reserved bits */
	iobus_write(&f->vm.pio, 0xCF8, 0xFFFFFFFF, 4);
	assert_int_equal(iobus_read(&f->vm.pio, 0xCF8, 4), 0x80FFFFFC);
	/* byte and word writes to 0xCF8 do not latch an address */
	iobus_write(&f->vm.pio, 0xCF8, cf8(s, 0), 4);
	iobus_write(&f->vm.pio, 0xCF8, 0x12, 1);
	iobus_write(&f->vm.pio, 0xCFA, 0x1234, 2);
	assert_int_equal(iobus_read(&f->vm.pio, 0xCF8, 4), cf8(s, 0));
	assert_int_equal(iobus_read(&f->vm.pio, 0xCFA, 2), 0xFFFF);
	/* enable bit clear: all ones, writes dropped */
	iobus_write(&f->vm.pio, 0xCF8, cf8(s, 0x3C) & ~0x80000000u, 4);
	assert_int_equal(iobus_read(&f->vm.pio, 0xCFC, 4), 0xFFFFFFFF);
	assert_int_equal(iobus_read(&f->vm.pio, 0xCFD, 1), 0xFF);
	iobus_write(&f->vm.pio, 0xCFC, 0x55, 1);
	assert_int_not_equal(cfg_rd(s, 0x3C, 1), 0x55);
	/* absent slot, other functions, other buses: all ones */
	assert_int_equal(cfg_rd(9, 0, 4), 0xFFFFFFFF);
	assert_int_equal(cfg_rd(9, 0, 2), 0xFFFF);
	iobus_write(&f->vm.pio, 0xCF8, cf8(s, 0) | 1 << 8, 4);
	assert_int_equal(iobus_read(&f->vm.pio, 0xCFC, 4), 0xFFFFFFFF);
	iobus_write(&f->vm.pio, 0xCF8, cf8(s, 0) | 1 << 16, 4);
	assert_int_equal(iobus_read(&f->vm.pio, 0xCFC, 4), 0xFFFFFFFF);
	/* writes at every width land in the byte they address */
	cfg_wr(s, 0x3C, 0xA5, 1);
	assert_int_equal(cfg_rd(s, 0x3C, 1), 0xA5);
	cfg_wr(s, 0x0C, 0x1234, 2); /* cache line writable, latency timer read-only */
	assert_int_equal(cfg_rd(s, 0x0C, 2), 0x0034);
	/* 0xCF9: a reset request stops the VM */
	assert_int_equal(f->stop_requested, 0);
	iobus_write(&f->vm.pio, 0xCF9, 0x02, 1);
	assert_int_equal(iobus_read(&f->vm.pio, 0xCF9, 1), 0x02);
	assert_int_equal(f->stop_requested, 0);
	iobus_write(&f->vm.pio, 0xCF9, 0x06, 1);
	assert_int_equal(f->stop_requested, 1);
	assert_int_equal(f->stop_status, 0);
}

static void test_ecam(void **state)
{
	(void)state;
	make("t", NULL);
	assert_int_equal(ecam_rd(0, 0, 4), 0x00081b36);
	assert_int_equal(ecam_rd(1, 0, 4), T_DEVICE << 16 | T_VENDOR);
	assert_int_equal(ecam_rd(1, 2, 2), T_DEVICE);
	assert_int_equal(ecam_rd(1, 0, 8), (uint64_t)cfg_rd(1, 4, 4) << 32 | cfg_rd(1, 0, 4));
	assert_int_equal(ecam_rd(1, 0x100, 4), 0); /* no extended capabilities */
	assert_int_equal(ecam_rd(1, 0xFFC, 4), 0);
	assert_int_equal(ecam_rd(5, 0, 4), 0xFFFFFFFF);
	/* function 1 of slot 1 */
	assert_int_equal(iobus_read(&f->vm.mmio, HEARTH_PCI_ECAM_BASE + (1 << 15) + (1 << 12), 4),
			 0xFFFFFFFF);
	ecam_wr(1, 0x3C, 0x42, 1);
	assert_int_equal(cfg_rd(1, 0x3C, 1), 0x42);
	ecam_wr(1, 0x100, 0xFFFFFFFF, 4); /* dropped, no crash */
	assert_int_equal(ecam_rd(1, 0x100, 4), 0);
	/* an access that would run past the function's 4 KiB */
	assert_int_equal(ecam_rd(1, 0xFFE, 4), 0xFFFFFFFF);
	ecam_wr(1, 0xFFE, 0, 4);
	assert_int_equal(ecam_rd(2, 0, 4), 0xFFFFFFFF);
}

/* ================= BARs ================= */

static void test_bar_sizing(void **state)
{
	(void)state;
	make("t", NULL);
	uint16_t cmd = (uint16_t)cfg_rd(1, 4, 2);
	cfg_wr(1, 4, 0, 2); /* as Linux does: decode off while sizing */
	uint32_t saved[6];
	for (unsigned i = 0; i < 6; i++) {
		saved[i] = cfg_rd(1, 0x10 + 4 * i, 4);
		cfg_wr(1, 0x10 + 4 * i, 0xFFFFFFFF, 4);
	}
	assert_int_equal(cfg_rd(1, 0x10, 4), 0x0000FFE1); /* I/O, 32 bytes, 16-bit decode */
	assert_int_equal(cfg_rd(1, 0x14, 4), 0xFFFFF000); /* mem32, 4 KiB */
	assert_int_equal(cfg_rd(1, 0x18, 4), 0xFFFFC00C); /* mem64 prefetchable, 16 KiB */
	assert_int_equal(cfg_rd(1, 0x1C, 4), 0xFFFFFFFF); /* its upper half */
	assert_int_equal(cfg_rd(1, 0x20, 4), 0xFFFFE000); /* mem32, 8 KiB */
	assert_int_equal(cfg_rd(1, 0x24, 4), 0);	  /* unused */
	cfg_wr(1, 0x30, 0xFFFFFFFF, 4);
	assert_int_equal(cfg_rd(1, 0x30, 4), 0); /* no expansion ROM */
	/* nothing was mapped at the sizing addresses */
	assert_false(mapped_to(&f->vm.mmio, 0xFFFFF000, hearth_dev_find(&f->vm, "t")));
	for (unsigned i = 0; i < 6; i++)
		cfg_wr(1, 0x10 + 4 * i, saved[i], 4);
	cfg_wr(1, 4, cmd, 2);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(cfg_rd(1, 0x10 + 4 * i, 4), saved[i]);
}

static void test_preassigned_and_decode(void **state)
{
	(void)state;
	struct hearth_dev *d = make("t", NULL);
	struct tdev *t = tdev(d);

	assert_int_equal(cfg_rd(1, 4, 2) & 7, 7); /* I/O, memory, bus master */
	uint64_t io = bar_base(1, 0), m1 = bar_base(1, 1), m2 = bar_base(1, 2), m4 = bar_base(1, 4);
	assert_true(io >= HEARTH_PCI_IO_BASE && io + 32 <= HEARTH_PCI_IO_END);
	assert_int_equal(io % 32, 0);
	assert_true(m1 >= HEARTH_PCI_MMIO_BASE && m1 + 4096 <= HEARTH_PCI_MMIO_END);
	assert_int_equal(m2 % 16384, 0);
	assert_true(m2 >= HEARTH_PCI_MMIO_BASE && m2 + 16384 <= HEARTH_PCI_MMIO_END);
	assert_int_equal(m4 % 8192, 0);
	assert_int_equal(hearth_pci_bar_addr(t->f, 2), m2);
	assert_true(mapped_to(&f->vm.pio, io, d));
	assert_true(mapped_to(&f->vm.mmio, m1, d));
	assert_true(mapped_to(&f->vm.mmio, m2 + 16383, d));
	/* accesses reach the device with BAR-relative offsets */
	iobus_write(&f->vm.pio, io + 6, 0xBEEF, 2);
	assert_int_equal(t->bar[0].writes, 1);
	assert_int_equal(t->bar[0].off, 6);
	assert_int_equal(t->bar[0].value, 0xBEEF);
	assert_int_equal(iobus_read(&f->vm.mmio, m2 + 0x100, 8), 0x1122334455667788ull);
	assert_int_equal(t->bar[2].off, 0x100);
	assert_int_equal(t->bar[2].size, 8);
	/* memory decode off: memory BARs gone, I/O stays */
	cfg_wr(1, 4, 0x5, 2);
	assert_false(mapped_to(&f->vm.mmio, m1, d));
	assert_false(mapped_to(&f->vm.mmio, m2, d));
	assert_false(mapped_to(&f->vm.mmio, m4, d));
	assert_true(mapped_to(&f->vm.pio, io, d));
	assert_int_equal(hearth_pci_bar_addr(t->f, 1), 0);
	unsigned before = t->bar[1].reads;
	assert_int_equal(iobus_read(&f->vm.mmio, m1, 4), 0xFFFFFFFF);
	assert_int_equal(t->bar[1].reads, before);
	/* I/O off too, then both back */
	cfg_wr(1, 4, 0x4, 2);
	assert_false(mapped_to(&f->vm.pio, io, d));
	cfg_wr(1, 4, 0x7, 2);
	assert_true(mapped_to(&f->vm.pio, io, d));
	assert_true(mapped_to(&f->vm.mmio, m1, d));
	assert_true(mapped_to(&f->vm.mmio, m4, d));
	/* a byte write to the command register's low byte works the same */
	cfg_wr(1, 4, 0x00, 1);
	assert_false(mapped_to(&f->vm.pio, io, d));
	cfg_wr(1, 4, 0x03, 1);
	assert_true(mapped_to(&f->vm.pio, io, d));
}

static void test_bar_move(void **state)
{
	(void)state;
	struct hearth_dev *d = make("t", NULL);
	struct tdev *t = tdev(d);
	uint64_t m1 = bar_base(1, 1), io = bar_base(1, 0);

	/* moving with decode on: the old range goes, the new one comes */
	cfg_wr(1, 0x14, 0xC8000000, 4);
	assert_false(mapped_to(&f->vm.mmio, m1, d));
	assert_true(mapped_to(&f->vm.mmio, 0xC8000000, d));
	iobus_write(&f->vm.mmio, 0xC8000000 + 0x20, 1, 4);
	assert_int_equal(t->bar[1].off, 0x20);
	/* the low bits are the size: writing them does not move the BAR off alignment */
	cfg_wr(1, 0x14, 0xC9000FFF, 4);
	assert_int_equal(cfg_rd(1, 0x14, 4), 0xC9000000);
	assert_true(mapped_to(&f->vm.mmio, 0xC9000000, d));
	/* a 64-bit BAR above 4 GiB, written in two halves */
	cfg_wr(1, 0x1C, 0x10, 4);
	cfg_wr(1, 0x18, 0x0000C000, 4);
	assert_int_equal(bar_base(1, 2), 0x100000C000ull);
	assert_true(mapped_to(&f->vm.mmio, 0x100000C000ull, d));
	assert_int_equal(hearth_pci_bar_addr(t->f, 2), 0x100000C000ull);
	/* I/O BAR move */
	cfg_wr(1, 0x10, 0xE000, 4);
	assert_false(mapped_to(&f->vm.pio, io, d));
	assert_true(mapped_to(&f->vm.pio, 0xE000, d));
	/* the upper half of an I/O BAR is read-only zero */
	cfg_wr(1, 0x10, 0xFFFF0000 | 0xE100, 4);
	assert_int_equal(cfg_rd(1, 0x10, 4), 0xE101);
}

static void test_bar_conflicts(void **state)
{
	(void)state;
	struct hearth_dev *a = make("a", NULL);
	struct hearth_dev *b = make("b", NULL);
	unsigned sa = hearth_pci_slot(tdev(a)->f), sb = hearth_pci_slot(tdev(b)->f);
	uint64_t a1 = bar_base(sa, 1), b1 = bar_base(sb, 1);

	assert_int_not_equal(sa, sb);
	assert_int_not_equal(a1, b1);
	/* b's BAR1 onto a's: refused on the bus, left unmapped, nothing crashes */
	cfg_wr(sb, 0x14, (uint32_t)a1, 4);
	assert_true(mapped_to(&f->vm.mmio, a1, a));
	assert_int_equal(hearth_pci_bar_addr(tdev(b)->f, 1), 0);
	/* again (log once), then moved somewhere free: mapped */
	cfg_wr(sb, 0x14, (uint32_t)a1, 4);
	cfg_wr(sb, 0x14, 0xCA000000, 4);
	assert_true(mapped_to(&f->vm.mmio, 0xCA000000, b));
	/* an I/O BAR over the host's own ports and over COM-like fixed ports */
	cfg_wr(sb, 0x10, 0xCE0, 4); /* 0xCE0-0xCFF covers 0xCF8 */
	assert_true(mapped_to(&f->vm.pio, 0xCF8, hearth_dev_find(&f->vm, "pci0")));
	assert_int_equal(hearth_pci_bar_addr(tdev(b)->f, 0), 0);
	assert_int_equal(cfg_rd(sa, 0, 2), T_VENDOR); /* config access still works */
	/* I/O BAR at the top of port space fits exactly; sizing with decode on is survived */
	cfg_wr(sb, 0x10, 0xFFE0, 4);
	assert_true(mapped_to(&f->vm.pio, 0xFFFF, b));
	cfg_wr(sb, 0x18, 0xFFFFFFFF, 4);
	cfg_wr(sb, 0x1C, 0xFFFFFFFF, 4);
	cfg_wr(sb, 0x14, 0xFFFFFFFF, 4);
	assert_int_equal(cfg_rd(sb, 0, 2), T_VENDOR);
	/* a memory BAR over the ECAM window is refused too */
	cfg_wr(sb, 0x14, (uint32_t)HEARTH_PCI_ECAM_BASE, 4);
	assert_int_equal(ecam_rd(sa, 0, 2), T_VENDOR);
}

/* ================= write masks and capabilities ================= */

static void test_write_masks(void **state)
{
	(void)state;
	make("t", NULL);
	uint8_t before[256], after[256];
	for (unsigned r = 0; r < 256; r++)
		before[r] = (uint8_t)cfg_rd(1, r, 1);
	/* all ones into every header byte except the BARs and the command register */
	for (unsigned r = 0; r < 0x40; r++)
		if ((r < 0x10 || r >= 0x28) && r != 4 && r != 5)
			cfg_wr(1, r, 0xFF, 1);
	for (unsigned r = 0; r < 256; r++)
		after[r] = (uint8_t)cfg_rd(1, r, 1);
	for (unsigned r = 0; r < 0x40; r++) {
		if (r == 0x0C || r == 0x3C)
			assert_int_equal(after[r], 0xFF); /* cache line size, interrupt line */
		else if (r < 0x10 || r >= 0x28)
			assert_int_equal(after[r], before[r]);
	}
	assert_int_equal(cfg_rd(1, 0x2C, 2), 0xabcd);
	assert_int_equal(cfg_rd(1, 0x2E, 2), 0x0042);
	assert_int_equal(cfg_rd(1, 0x3D, 1), 1); /* INTA */
	/* the command register keeps only its writable bits */
	cfg_wr(1, 4, 0xFFFF, 2);
	assert_int_equal(cfg_rd(1, 4, 2), 0x0547);
	/* status is read-only: capabilities bit stays, nothing else appears */
	cfg_wr(1, 6, 0xFFFF, 2);
	assert_int_equal(cfg_rd(1, 6, 2) & ~HEARTH_PCI_STATUS_INTX, HEARTH_PCI_STATUS_CAPS);
	/* the device's config hook saw the writes */
	assert_true(tdev(hearth_dev_find(&f->vm, "t"))->cfg_writes > 0);
}

static void test_capability_list(void **state)
{
	(void)state;
	struct tdev *t = tdev(make("t", NULL));
	unsigned ids[8], n = 0, at[8];

	assert_true(cfg_rd(1, 6, 2) & HEARTH_PCI_STATUS_CAPS);
	for (unsigned p = cfg_rd(1, 0x34, 1); p && n < 8; p = cfg_rd(1, p + 1, 1)) {
		assert_int_equal(p % 4, 0);
		assert_true(p >= 0x40);
		at[n] = p;
		ids[n++] = cfg_rd(1, p, 1);
	}
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], HEARTH_PCI_CAP_ID_VENDOR);
	assert_int_equal(ids[1], HEARTH_PCI_CAP_ID_MSIX);
	assert_int_equal(at[0], (unsigned)t->cap);
	/* vendor capability body and its write mask */
	assert_int_equal(ecam_rd(1, at[0] + 2, 4), 0xCCBBAA08); /* unaligned: ECAM only */
	ecam_wr(1, at[0] + 2, 0xFFFFFFFF, 4);
	assert_int_equal(ecam_rd(1, at[0] + 2, 4), 0xCFFFAA08);
	/* through mechanism #1 a dword that crosses the data port's end is not decoded */
	assert_int_equal(cfg_rd(1, at[0] + 2, 4), 0xFFFFFFFF);
	cfg_wr(1, at[0] + 1, 0, 1); /* the next pointer is read-only */
	assert_int_equal(cfg_rd(1, at[0] + 1, 1), at[1]);
	/* MSI-X: table size N-1, table in BAR4 at 0, PBA in BAR4 at 0x1000 */
	assert_int_equal(cfg_rd(1, at[1] + 2, 2), T_NVEC - 1);
	assert_int_equal(cfg_rd(1, at[1] + 4, 4), 0 | T_MSIX_BAR);
	assert_int_equal(cfg_rd(1, at[1] + 8, 4), T_PBA_OFF | T_MSIX_BAR);
	cfg_wr(1, at[1] + 2, 0xFFFF, 2);
	assert_int_equal(cfg_rd(1, at[1] + 2, 2), 0xC000 | (T_NVEC - 1));
	cfg_wr(1, at[1] + 4, 0, 4);
	assert_int_equal(cfg_rd(1, at[1] + 4, 4), T_MSIX_BAR);
}

/* ================= MSI-X ================= */

static unsigned msix_cap(void)
{
	unsigned p = cfg_rd(1, 0x34, 1);
	while (p && cfg_rd(1, p, 1) != HEARTH_PCI_CAP_ID_MSIX)
		p = cfg_rd(1, p + 1, 1);
	return p;
}

static void set_entry(uint64_t tbl, unsigned v, uint64_t addr, uint32_t data, uint32_t ctrl)
{
	iobus_write(&f->vm.mmio, tbl + 16 * v, (uint32_t)addr, 4);
	iobus_write(&f->vm.mmio, tbl + 16 * v + 4, addr >> 32, 4);
	iobus_write(&f->vm.mmio, tbl + 16 * v + 8, data, 4);
	iobus_write(&f->vm.mmio, tbl + 16 * v + 12, ctrl, 4);
}

static void test_msix(void **state)
{
	(void)state;
	struct hearth_dev *d = make("t", NULL);
	struct tdev *t = tdev(d);
	unsigned cap = msix_cap();
	uint64_t tbl = bar_base(1, T_MSIX_BAR), pba = tbl + T_PBA_OFF;

	assert_int_equal(hearth_pci_msix_count(t->f), T_NVEC);
	/* power-on: every vector masked, disabled; notify reports "use INTx" */
	for (unsigned v = 0; v < T_NVEC; v++)
		assert_int_equal(iobus_read(&f->vm.mmio, tbl + 16 * v + 12, 4), 1);
	assert_false(hearth_pci_msix_enabled(t->f));
	assert_int_equal(hearth_pci_msix_notify(t->f, 0), -1);
	/* table entries: address bits 1:0 and reserved control bits read as zero */
	set_entry(tbl, 2, 0xFEE01003, 0x4041, 0xFFFFFFFF);
	assert_int_equal(iobus_read(&f->vm.mmio, tbl + 32, 4), 0xFEE01000);
	assert_int_equal(iobus_read(&f->vm.mmio, tbl + 32 + 8, 4), 0x4041);
	assert_int_equal(iobus_read(&f->vm.mmio, tbl + 32 + 12, 4), 1);
	assert_int_equal(iobus_read(&f->vm.mmio, tbl + 32, 8), 0xFEE01000ull);
	/* the table is the PCI layer's: the device's ops never see it */
	assert_int_equal(t->bar[4].writes, 0);
	/* the rest of the BAR is the device's */
	iobus_write(&f->vm.mmio, tbl + 0x1800, 5, 4);
	assert_int_equal(t->bar[4].writes, 1);
	assert_int_equal(t->bar[4].off, 0x1800);

	/* enable: masked vector 2 notified -> pending, no message */
	cfg_wr(1, cap + 2, 0x8000, 2);
	assert_true(hearth_pci_msix_enabled(t->f));
	assert_int_equal(hearth_pci_msix_notify(t->f, 2), 0);
	assert_int_equal(fakevm_msi_poll(f), 0);
	assert_int_equal(iobus_read(&f->vm.mmio, pba, 8), 1u << 2);
	iobus_write(&f->vm.mmio, pba, 0, 8); /* read-only */
	assert_int_equal(iobus_read(&f->vm.mmio, pba, 8), 1u << 2);
	/* unmask: the pending message goes out, the bit clears */
	iobus_write(&f->vm.mmio, tbl + 32 + 12, 0, 4);
	assert_int_equal(fakevm_msi_poll(f), 1);
	assert_int_equal(f->msi[0].addr, 0xFEE01000);
	assert_int_equal(f->msi[0].data, 0x4041);
	assert_int_equal(iobus_read(&f->vm.mmio, pba, 8), 0);
	/* unmasked: straight through an irqfd */
	assert_int_equal(hearth_pci_msix_notify(t->f, 2), 0);
	assert_int_equal(fakevm_msi_poll(f), 2);
	assert_true(f->nirqfd >= 1);
	/* function mask: pending again, delivered when cleared */
	cfg_wr(1, cap + 3, 0xC0, 1);
	assert_int_equal(hearth_pci_msix_notify(t->f, 2), 0);
	assert_int_equal(fakevm_msi_poll(f), 2);
	assert_int_equal(iobus_read(&f->vm.mmio, pba, 1), 1u << 2);
	cfg_wr(1, cap + 3, 0x80, 1);
	assert_int_equal(fakevm_msi_poll(f), 3);
	/* a new message on a vector: mask, rewrite, unmask -> the route follows */
	set_entry(tbl, 2, 0xFEE02000, 0x4055, 1);
	iobus_write(&f->vm.mmio, tbl + 32 + 12, 0, 4);
	assert_int_equal(hearth_pci_msix_notify(t->f, 2), 0);
	assert_int_equal(fakevm_msi_poll(f), 4);
	assert_int_equal(f->msi[3].addr, 0xFEE02000);
	assert_int_equal(f->msi[3].data, 0x4055);
	/* out of range vectors */
	assert_int_equal(hearth_pci_msix_notify(t->f, T_NVEC), -1);
	/* a message address that is not an interrupt: dropped, never routed */
	set_entry(tbl, 5, 0x1000, 1, 0);
	assert_int_equal(hearth_pci_msix_notify(t->f, 5), 0);
	assert_int_equal(fakevm_msi_poll(f), 4);
	set_entry(tbl, 5, 0x1FEE00000ull, 1, 0);
	assert_int_equal(hearth_pci_msix_notify(t->f, 5), 0);
	assert_int_equal(fakevm_msi_poll(f), 4);
	/* routing refused by the platform: the message still goes, through signal_msi */
	f->fail_msi_route = true;
	set_entry(tbl, 6, 0xFEE00000, 0x77, 0);
	assert_int_equal(hearth_pci_msix_notify(t->f, 6), 0);
	assert_int_equal(fakevm_msi_poll(f), 5);
	assert_int_equal(f->msi[4].data, 0x77);
	f->fail_msi_route = false;
	/* disable: notify says "use INTx" again */
	cfg_wr(1, cap + 2, 0, 2);
	assert_int_equal(hearth_pci_msix_notify(t->f, 2), -1);
	/* odd-sized and unaligned table accesses do not crash and stay inside the table */
	for (unsigned off = 0; off < 16 * T_NVEC + 16; off++)
		for (unsigned s = 1; s <= 8; s *= 2) {
			iobus_write(&f->vm.mmio, tbl + off, ~0ull, s);
			(void)iobus_read(&f->vm.mmio, tbl + off, s);
			(void)iobus_read(&f->vm.mmio, pba + off, s);
		}
	/* reset: masked, disabled, nothing pending */
	cfg_wr(1, cap + 2, 0xC000, 2);
	hearth_pci_msix_notify(t->f, 1);
	hearth_dev_lock(d);
	hearth_pci_func_reset(t->f);
	hearth_dev_unlock(d);
	assert_false(hearth_pci_msix_enabled(t->f));
	assert_int_equal(iobus_read(&f->vm.mmio, tbl + 16 + 12, 4), 1);
	assert_int_equal(iobus_read(&f->vm.mmio, pba, 8), 0);
	/* removing the device releases its routes and irqfds */
	assert_int_equal(hearth_dev_remove(d), 0);
	assert_int_equal(f->nirqfd, 0);
	for (unsigned i = 0; i < FAKEVM_MSI_ROUTES; i++)
		assert_false(f->msi_route[i].used);
}

static void test_msix_no_platform(void **state)
{
	(void)state;
	/* `hearth devices` builds without KVM: no callbacks at all */
	f->vm.msi_route = NULL;
	f->vm.irqfd = NULL;
	f->vm.signal_msi = NULL;
	f->vm.ioeventfd = NULL;
	struct tdev *t = tdev(make("t", "{\"iofd\": true}"));
	uint64_t tbl = bar_base(1, T_MSIX_BAR);
	cfg_wr(1, msix_cap() + 2, 0x8000, 2);
	set_entry(tbl, 0, 0xFEE00000, 1, 0);
	assert_int_equal(hearth_pci_msix_notify(t->f, 0), 0);
	assert_int_equal(f->nmsi, 0);
	/* the ioeventfd range is an ordinary part of the BAR then */
	iobus_write(&f->vm.mmio, bar_base(1, 1) + 0x10, 3, 2);
	assert_int_equal(t->bar[1].writes, 1);
}

/* ================= INTx ================= */

static void test_intx(void **state)
{
	(void)state;
	struct hearth_dev *d = make("t", NULL);
	struct tdev *t = tdev(d);
	int gsi = hearth_pci_intx_gsi(t->f);

	assert_int_equal(gsi, 16 + (1 + 1 - 1) % 8);
	assert_int_equal(cfg_rd(1, 0x3C, 1), gsi); /* interrupt line as firmware leaves it */
	hearth_pci_intx(t->f, 1);
	assert_int_equal(f->irq_level[gsi], 1);
	assert_true(cfg_rd(1, 6, 2) & HEARTH_PCI_STATUS_INTX);
	/* INTx disable drops the line, the status bit stays */
	cfg_wr(1, 4, 0x407, 2);
	assert_int_equal(f->irq_level[gsi], 0);
	assert_true(cfg_rd(1, 6, 2) & HEARTH_PCI_STATUS_INTX);
	cfg_wr(1, 4, 0x007, 2);
	assert_int_equal(f->irq_level[gsi], 1);
	assert_int_equal(f->irq_raises[gsi], 2);
	/* MSI-X enabled: INTx is not used */
	cfg_wr(1, msix_cap() + 2, 0x8000, 2);
	assert_int_equal(f->irq_level[gsi], 0);
	cfg_wr(1, msix_cap() + 2, 0, 2);
	assert_int_equal(f->irq_level[gsi], 1);
	hearth_pci_intx(t->f, 0);
	assert_int_equal(f->irq_level[gsi], 0);
	assert_false(cfg_rd(1, 6, 2) & HEARTH_PCI_STATUS_INTX);
}

static void test_intx_shared(void **state)
{
	(void)state;
	/* slot 1 INTB and slot 2 INTA share GSI 18 */
	struct tdev *a = tdev(make("a", "{\"addr\": 1, \"pin\": 2}"));
	struct tdev *b = tdev(make("b", "{\"addr\": 2, \"pin\": 1}"));
	int gsi = hearth_pci_intx_gsi(a->f);

	assert_int_equal(gsi, 18);
	assert_int_equal(hearth_pci_intx_gsi(b->f), gsi);
	hearth_pci_intx(a->f, 1);
	hearth_pci_intx(b->f, 1);
	assert_int_equal(f->irq_level[gsi], 1);
	hearth_pci_intx(a->f, 0);
	assert_int_equal(f->irq_level[gsi], 1); /* b still asserts */
	hearth_pci_intx(a->f, 0);		/* repeated: no underflow */
	assert_int_equal(f->irq_level[gsi], 1);
	hearth_pci_intx(b->f, 0);
	assert_int_equal(f->irq_level[gsi], 0);
	assert_int_equal(f->irq_raises[gsi], 1);
	/* no pin, no line */
	struct tdev *c = tdev(make("c", "{\"pin\": 0}"));
	assert_int_equal(hearth_pci_intx_gsi(c->f), -1);
	hearth_pci_intx(c->f, 1);
	assert_int_equal(cfg_rd(hearth_pci_slot(c->f), 0x3D, 1), 0);
	/* a device removed while asserting releases its share */
	hearth_pci_intx(b->f, 1);
	assert_int_equal(hearth_dev_remove(hearth_dev_find(&f->vm, "b")), 0);
	assert_int_equal(f->irq_level[gsi], 0);
}

/* ================= ioeventfd ================= */

static void test_ioeventfd_follows_bar(void **state)
{
	(void)state;
	struct hearth_dev *d = make("t", "{\"iofd\": true}");
	struct tdev *t = tdev(d);
	uint64_t m1 = bar_base(1, 1);
	uint64_t n;

	assert_int_equal(f->niofd, 1);
	assert_int_equal(f->iofd[0].addr, m1 + 0x10);
	assert_int_equal(f->iofd[0].len, 2);
	assert_false(f->iofd[0].pio);
	fakevm_guest_write(f, false, m1 + 0x10, 1, 2);
	assert_int_equal(read(t->efd, &n, sizeof(n)), sizeof(n));
	assert_int_equal(t->bar[1].writes, 0); /* no exit */
	/* a 4-byte write is not caught: it reaches the BAR */
	fakevm_guest_write(f, false, m1 + 0x10, 1, 4);
	assert_int_equal(t->bar[1].writes, 1);
	/* move the BAR: the ioeventfd moves */
	cfg_wr(1, 0x14, 0xC7000000, 4);
	assert_int_equal(f->niofd, 1);
	assert_int_equal(f->iofd[0].addr, 0xC7000010);
	/* decode off: gone; on: back */
	cfg_wr(1, 4, 0x5, 2);
	assert_int_equal(f->niofd, 0);
	cfg_wr(1, 4, 0x7, 2);
	assert_int_equal(f->niofd, 1);
	/* a platform that refuses: writes still reach the BAR */
	cfg_wr(1, 4, 0x5, 2);
	f->fail_ioeventfd = true;
	cfg_wr(1, 4, 0x7, 2);
	assert_int_equal(f->niofd, 0);
	fakevm_guest_write(f, false, 0xC7000010, 1, 2);
	assert_int_equal(t->bar[1].writes, 2);
	f->fail_ioeventfd = false;
	assert_int_equal(hearth_dev_remove(d), 0);
	assert_int_equal(f->niofd, 0);
}

/* ================= building functions: every refusal ================= */

struct refusal_dev {
	int which;
};

static int refuse_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	uint64_t which;
	struct hearth_pci_id id = {T_VENDOR, T_DEVICE, 0, 0, T_CLASS, 0, 1};
	struct hearth_pci_bar io = {HEARTH_PCI_BAR_IO, false, 16, NULL, NULL};
	struct hearth_pci_bar mem = {HEARTH_PCI_BAR_MEM32, false, 4096, NULL, NULL};
	struct hearth_pci_bar mem64 = {HEARTH_PCI_BAR_MEM64, false, 4096, NULL, NULL};
	uint8_t big[300] = {0};
	struct hearth_pci_func *fn;
	int r = -1;

	if (hearth_cfg_u64(cfg, "case", 0, 0, 100, &which) < 0)
		return -1;
	switch (which) {
	case 0:
		id.vendor = 0xFFFF;
		break;
	case 1:
		id.intx_pin = 5;
		break;
	case 2:
		id.class_code = 0x1000000;
		break;
	}
	fn = hearth_pci_func_new(dev, &id);
	if (!fn)
		return -1;
	hearth_dev_set_priv(dev, fn);
	switch (which) {
	case 3:
		io.size = 24;
		return hearth_pci_bar(fn, 0, &io);
	case 4:
		io.size = 512;
		return hearth_pci_bar(fn, 0, &io);
	case 5:
		return hearth_pci_bar(fn, 6, &mem);
	case 6:
		return hearth_pci_bar(fn, 5, &mem64);
	case 7:
		r = hearth_pci_bar(fn, 0, &mem64);
		return r < 0 ? r : hearth_pci_bar(fn, 1, &mem);
	case 8:
		r = hearth_pci_bar(fn, 0, &mem);
		return r < 0 ? r : hearth_pci_bar(fn, 0, &mem);
	case 9:
		mem.size = 8;
		return hearth_pci_bar(fn, 0, &mem);
	case 10:
		return hearth_pci_add_cap(fn, 9, big, sizeof(big), NULL);
	case 11:
		r = hearth_pci_bar(fn, 0, &io);
		return r < 0 ? r : hearth_pci_msix_init(fn, 4, 0, 0, 8);
	case 12:
		r = hearth_pci_bar(fn, 0, &mem);
		return r < 0 ? r : hearth_pci_msix_init(fn, 0, 0, 0, 2048);
	case 13:
		r = hearth_pci_bar(fn, 0, &mem);
		return r < 0 ? r : hearth_pci_msix_init(fn, 4, 0, 0, 32);
	case 14:
		r = hearth_pci_bar(fn, 0, &mem);
		return r < 0 ? r : hearth_pci_msix_init(fn, 300, 0, 0, 2048);
	case 15:
		r = hearth_pci_bar(fn, 0, &mem);
		return r < 0 ? r : hearth_pci_msix_init(fn, 4, 0, 4, 2048);
	case 16:
		return hearth_pci_msix_init(fn, 4, 2, 0, 2048);
	case 17:
		r = hearth_pci_bar_ioeventfd(fn, 0, 0, 2, -1);
		return r;
	case 18:
		r = hearth_pci_bar(fn, 0, &mem);
		return r < 0 ? r : hearth_pci_bar_ioeventfd(fn, 0, 4095, 2, -1);
	case 19:
		r = hearth_pci_bar(fn, 0, &mem);
		return r < 0 ? r : hearth_pci_bar_ioeventfd(fn, 0, 0, 3, -1);
	case 20:
		r = hearth_pci_plug(fn, cfg);
		return r < 0 ? r : hearth_pci_bar(fn, 0, &mem);
	case 21:
		r = hearth_pci_plug(fn, cfg);
		return r < 0 ? r : hearth_pci_plug(fn, cfg);
	}
	return hearth_pci_plug(fn, cfg);
}

static void refuse_free(struct hearth_dev *dev)
{
	hearth_pci_func_free(hearth_dev_priv(dev));
}

HEARTH_DEVICE_CLASS(refuse_class, .name = "pcirefuse", .summary = "PCI refusals",
		    .init = refuse_init, .free = refuse_free);

static void refused(unsigned which, const char *what)
{
	char json[64];
	snprintf(json, sizeof(json), "{\"case\": %u}", which);
	hearth_err_clear();
	if (fakevm_dev(f, "pcirefuse", "bad", json))
		fail_msg("case %u was accepted", which);
	if (!strstr(hearth_err_msg(), what))
		fail_msg("case %u: error '%s' lacks '%s'", which, hearth_err_msg(), what);
	assert_null(hearth_dev_find(&f->vm, "bad"));
}

static void test_refusals(void **state)
{
	(void)state;
	refused(0, "vendor id 0xffff");
	refused(1, "interrupt pin 5");
	refused(2, "24 bits");
	refused(3, "power of two");
	refused(4, "4..256");
	refused(5, "BAR6");
	refused(6, "next register");
	refused(7, "BAR1: no such BAR register free");
	refused(8, "BAR0: no such BAR register free");
	refused(9, "16 bytes");
	refused(10, "does not fit");
	refused(11, "not a memory BAR");
	refused(12, "0 vectors");
	refused(13, "overlap");
	refused(14, "outside BAR0");
	refused(15, "8-byte aligned");
	refused(16, "BAR2");
	refused(17, "BAR0 does not exist");
	refused(18, "do not fit BAR0");
	refused(19, "3 bytes");
	refused(20, "plugged already");
	refused(21, "plugged already");
	/* slot rules */
	make("a", "{\"addr\": 3}");
	make_fails("{\"addr\": 3}", "slot 3 is taken by 'a'");
	make_fails("{\"addr\": 0}", "addr");
	make_fails("{\"addr\": 32}", "addr");
	/* a BAR larger than the window */
	make_fails("{\"big\": true}", "memory window");
	/* a failed plug left the slot free */
	struct tdev *t = tdev(make("b", NULL));
	assert_int_equal(hearth_pci_slot(t->f), 1);
}

static void test_windows_fill(void **state)
{
	(void)state;
	/* each test function takes 40 bytes... of I/O: 32-byte BAR, so the 16 KiB window holds
	 * many; the memory window holds 256 MiB / 32 KiB worth. 31 slots fit either way. */
	char id[8];
	for (unsigned i = 1; i < 32; i++) {
		snprintf(id, sizeof(id), "d%u", i);
		make(id, NULL);
	}
	make_fails(NULL, "bus 0 is full");
	/* every BAR of every function is mapped and distinct */
	for (unsigned s = 1; s < 32; s++)
		for (unsigned b = 0; b < 6; b++) {
			if (b == 3 || b == 5)
				continue;
			uint64_t base = bar_base(s, b);
			struct hearth_io_range r;
			assert_true(iobus_find(b ? &f->vm.mmio : &f->vm.pio, base, 1, &r));
			assert_int_equal(r.base, base);
		}
}

/* ================= MP table, inventory ================= */

static void test_mptable_routing(void **state)
{
	(void)state;
	static struct mptable t;
	make("a", "{\"addr\": 4, \"pin\": 3}");
	make("b", "{\"addr\": 5, \"pin\": 0}");
	assert_int_equal(mptable_init(&t, 1, 0, 0), 0);
	unsigned before = t.nirq;
	assert_int_equal(pci_mptable(&f->vm, &t), 0);
	/* bus 0 is PCI; one entry, for the function with a pin (the bridge has none) */
	assert_int_equal(t.nbus, 2);
	assert_int_equal(t.bus[1].id, 0);
	assert_memory_equal(t.bus[1].type, "PCI   ", 6);
	assert_int_equal(t.nirq, before + 1);
	const struct mptable_irq *e = &t.irq[before];
	assert_int_equal(e->bus, 0);
	assert_int_equal(e->bus_irq, 4 << 2 | 2);
	assert_int_equal(e->pin, 16 + (4 + 3 - 1) % 8);
	assert_int_equal(e->flags, MP_IRQ_PCI);
	assert_int_equal(mptable_write(&f->vm, &t), 0);
	/* without a host bridge there is nothing to add */
	struct fakevm *g = fakevm_new(16 << 20);
	assert_int_equal(mptable_init(&t, 1, 0, 0), 0);
	assert_int_equal(pci_mptable(&g->vm, &t), 0);
	assert_int_equal(t.nbus, 1);
	fakevm_free(g);
}

static void test_describe(void **state)
{
	(void)state;
	struct hearth_dev *d = make("t", "{\"addr\": 7}");
	char buf[256] = "";
	hearth_dev_class(d)->describe(d, buf, sizeof(buf));
	assert_non_null(strstr(buf, "pci 00:07.0 1234:5678 class 0b4001"));
	assert_non_null(strstr(buf, "bar0 io 0xc"));
	assert_non_null(strstr(buf, "bar2 mem64 pref"));
	assert_non_null(strstr(buf, "INTA gsi 23"));
	assert_non_null(strstr(buf, "msi-x 8"));
	cfg_wr(7, 4, 0, 2);
	hearth_dev_class(d)->describe(d, buf, sizeof(buf));
	assert_non_null(strstr(buf, "(off)"));
	/* a short buffer is cut, never overrun */
	char small[16];
	memset(small, 'x', sizeof(small));
	hearth_pci_describe(tdev(d)->f, small, 10);
	assert_int_equal(strlen(small), 9);
	assert_int_equal(small[10], 'x');
	struct hearth_dev *h = hearth_dev_find(&f->vm, "pci0");
	hearth_dev_class(h)->describe(h, buf, sizeof(buf));
	assert_non_null(strstr(buf, "0xe0000000"));
}

/* ================= reset and teardown orders ================= */

static void test_func_reset(void **state)
{
	(void)state;
	struct hearth_dev *d = make("t", NULL);
	struct tdev *t = tdev(d);
	uint64_t m1 = bar_base(1, 1);

	cfg_wr(1, 0x14, 0xC9000000, 4);
	cfg_wr(1, 4, 0x400, 2);
	hearth_pci_intx(t->f, 1);
	hearth_dev_lock(d);
	hearth_pci_func_reset(t->f);
	hearth_dev_unlock(d);
	assert_int_equal(bar_base(1, 1), m1);
	assert_true(mapped_to(&f->vm.mmio, m1, d));
	assert_false(mapped_to(&f->vm.mmio, 0xC9000000, d));
	assert_int_equal(cfg_rd(1, 4, 2), 7);
	assert_int_equal(f->irq_level[hearth_pci_intx_gsi(t->f)], 0);
	/* the host's reset clears the address latch */
	struct hearth_dev *h = hearth_dev_find(&f->vm, "pci0");
	iobus_write(&f->vm.pio, 0xCF8, cf8(1, 0), 4);
	hearth_devs_reset(&f->vm);
	assert_int_equal(iobus_read(&f->vm.pio, 0xCF8, 4), 0);
	(void)h;
}

static void test_host_removed_first(void **state)
{
	(void)state;
	struct hearth_dev *d = make("t", "{\"iofd\": true}");
	struct tdev *t = tdev(d);
	hearth_pci_intx(t->f, 1);
	int gsi = hearth_pci_intx_gsi(t->f);
	/* the auto-created bridge is newer than the function: it goes first at teardown */
	assert_int_equal(hearth_dev_remove(hearth_dev_find(&f->vm, "pci0")), 0);
	assert_null(f->vm.pci);
	assert_int_equal(f->irq_level[gsi], 0);
	assert_int_equal(f->niofd, 0);
	assert_false(mapped_to(&f->vm.mmio, HEARTH_PCI_MMIO_BASE, d));
	/* the orphan still takes calls safely */
	hearth_pci_intx(t->f, 1);
	assert_int_equal(f->irq_level[gsi], 0);
	hearth_pci_func_reset(t->f);
	assert_int_equal(hearth_pci_bar_addr(t->f, 1), 0);
	/* a new bridge can come */
	assert_non_null(fakevm_dev(f, "pci-host", "pci1", NULL));
	assert_int_equal(cfg_rd(1, 0, 4), 0xFFFFFFFF);
}

/* ================= hostile configuration writes ================= */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_hostile_config(void **state)
{
	(void)state;
	make("a", NULL);
	make("b", "{\"iofd\": true}");
	static const uint32_t patterns[] = {0,		0xFFFFFFFF, 0xAAAAAAAA,
					    0x55555555, 0x80000000, 0x0000FFFF,
					    0xFFFF0000, 0xC0000000, 0xE0000000};
	/* every offset, every size, every pattern, both mechanisms, both functions */
	for (unsigned s = 0; s <= 2; s++)
		for (unsigned reg = 0; reg < 256; reg++)
			for (unsigned size = 1; size <= 4; size *= 2)
				for (unsigned p = 0; p < sizeof(patterns) / sizeof(patterns[0]);
				     p++) {
					if (s == 0 && reg < 8)
						continue; /* keep the bridge answering */
					cfg_wr(s, reg, patterns[p], size);
					(void)cfg_rd(s, reg, size);
					ecam_wr(s, reg, patterns[p], size);
					(void)ecam_rd(s, reg, size);
				}
	/* random traffic including the address register, the reset register and ECAM at
	 * any width */
	f->stop_requested = 0;
	for (unsigned i = 0; i < 200000; i++) {
		uint64_t r = rnd();
		unsigned size = 1u << (r & 3);
		uint64_t v = rnd();
		switch ((r >> 2) & 3) {
		case 0:
			iobus_write(&f->vm.pio, 0xCF8 + ((r >> 4) & 7), v, size > 4 ? 4 : size);
			break;
		case 1:
			(void)iobus_read(&f->vm.pio, 0xCF8 + ((r >> 4) & 7), size > 4 ? 4 : size);
			break;
		case 2:
			ecam_wr((r >> 8) % 3, (r >> 16) & 0xFFF, v, size);
			break;
		default:
			(void)ecam_rd((r >> 8) % 3, (r >> 16) & 0xFFF, size);
		}
	}
	/* the devices are still there and their hooks are still theirs */
	iobus_write(&f->vm.pio, 0xCF8, cf8(1, 0), 4);
	assert_int_equal(iobus_read(&f->vm.pio, 0xCFC, 2), T_VENDOR);
	struct hearth_iobus *buses[] = {&f->vm.pio, &f->vm.mmio};
	for (unsigned b = 0; b < 2; b++)
		for (unsigned i = 0; i < buses[b]->n; i++)
			assert_non_null(buses[b]->r[i].owner);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_host_bridge),
		T(test_mech1_sizes),
		T(test_ecam),
		T(test_bar_sizing),
		T(test_preassigned_and_decode),
		T(test_bar_move),
		T(test_bar_conflicts),
		T(test_write_masks),
		T(test_capability_list),
		T(test_msix),
		T(test_msix_no_platform),
		T(test_intx),
		T(test_intx_shared),
		T(test_ioeventfd_follows_bar),
		T(test_refusals),
		T(test_windows_fill),
		T(test_mptable_routing),
		T(test_describe),
		T(test_func_reset),
		T(test_host_removed_first),
		T(test_hostile_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
