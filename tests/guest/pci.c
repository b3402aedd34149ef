/*
 * PCI bus 0 through configuration mechanism #1 (address at 0xCF8, data at
 * 0xCFC-0xCFF).  Every access is two port exits, so the bus is scanned once
 * and the result cached.  Firmware (SeaBIOS under QEMU) or the VMM (hearth)
 * normally assigns BARs; one that is unassigned, or lies above the 4 GiB the
 * page tables map, gets an address here from the same windows hearth uses.
 */
#include "testos.h"

#define CFG_ADDR 0xCF8
#define CFG_DATA 0xCFC
#define REG_VENDOR 0x00
#define REG_COMMAND 0x04
#define REG_STATUS 0x06
#define REG_CLASS 0x08
#define REG_HEADER 0x0E
#define REG_BAR0 0x10
#define REG_CAP_PTR 0x34
#define REG_INT_LINE 0x3C
#define REG_INT_PIN 0x3D
#define STATUS_CAPS 0x10
#define MAX_CAPS 48 /* (256 - 64) / 4: more means a loop */

#define IO_WIN_BASE 0xC000ull
#define IO_WIN_END 0x10000ull
#define MEM_WIN_BASE 0xC0000000ull
#define MEM_WIN_END 0xD0000000ull
#define ECAM_BASE 0xE0000000u

static struct pci_func funcs[PCI_MAX_FUNCS];
static unsigned nfuncs;
static bool scanned;

static uint32_t cfg_addr(unsigned dev, unsigned fn, unsigned off)
{
	return 0x80000000u | dev << 11 | fn << 8 | (off & 0xFC);
}

uint32_t pci_cfg_read_bdf(unsigned dev, unsigned fn, unsigned off, unsigned size)
{
	outl(CFG_ADDR, cfg_addr(dev, fn, off));
	if (size == 1)
		return inb(CFG_DATA + (off & 3));
	if (size == 2)
		return inw(CFG_DATA + (off & 2));
	return inl(CFG_DATA);
}

void pci_cfg_write_bdf(unsigned dev, unsigned fn, unsigned off, unsigned size, uint32_t v)
{
	outl(CFG_ADDR, cfg_addr(dev, fn, off));
	if (size == 1)
		outb(CFG_DATA + (off & 3), (uint8_t)v);
	else if (size == 2)
		outw(CFG_DATA + (off & 2), (uint16_t)v);
	else
		outl(CFG_DATA, v);
}

uint32_t pci_cfg_read(const struct pci_func *f, unsigned off, unsigned size)
{
	return pci_cfg_read_bdf(f->dev, f->fn, off, size);
}

void pci_cfg_write(const struct pci_func *f, unsigned off, unsigned size, uint32_t v)
{
	pci_cfg_write_bdf(f->dev, f->fn, off, size, v);
}

void pci_enable(const struct pci_func *f, uint16_t bits)
{
	uint16_t cmd = (uint16_t)pci_cfg_read(f, REG_COMMAND, 2);
	if ((cmd & bits) != bits)
		pci_cfg_write(f, REG_COMMAND, 2, cmd | bits);
}

/* All ones to a BAR reads back its size mask; decoding is off meanwhile so the
 * device never answers at the transient address. */
static uint32_t bar_probe(const struct pci_func *f, unsigned reg, uint32_t *orig)
{
	*orig = pci_cfg_read(f, reg, 4);
	pci_cfg_write(f, reg, 4, 0xFFFFFFFF);
	uint32_t mask = pci_cfg_read(f, reg, 4);
	pci_cfg_write(f, reg, 4, *orig);
	return mask;
}

static void size_bars(struct pci_func *f)
{
	uint16_t cmd = (uint16_t)pci_cfg_read(f, REG_COMMAND, 2);
	pci_cfg_write(f, REG_COMMAND, 2, cmd & ~(PCI_CMD_IO | PCI_CMD_MEM));
	for (unsigned i = 0; i < 6; i++) {
		struct pci_bar *b = &f->bar[i];
		uint32_t orig, mask = bar_probe(f, REG_BAR0 + 4 * i, &orig);
		if (!mask)
			continue;
		if (orig & 1) {
			uint32_t m = mask & ~3u;
			if (!(m >> 16))
				m |= 0xFFFF0000u; /* a 16-bit decoder */
			b->io = true;
			b->base = orig & ~3u;
			b->size = (uint32_t)(~m + 1);
			continue;
		}
		uint64_t m = (mask & ~0xFull) | 0xFFFFFFFF00000000ull;
		b->base = orig & ~0xFu;
		b->prefetch = orig & 8;
		if (((orig >> 1) & 3) == 2 && i < 5) {
			uint32_t hi_orig, hi = bar_probe(f, REG_BAR0 + 4 * (i + 1), &hi_orig);
			b->mem64 = true;
			m = (m & 0xFFFFFFFFull) | (uint64_t)hi << 32;
			b->base |= (uint64_t)hi_orig << 32;
		}
		b->size = ~m + 1;
		i += b->mem64;
	}
	pci_cfg_write(f, REG_COMMAND, 2, cmd);
}

static bool overlaps_any(uint64_t base, uint64_t size, bool io)
{
	for (unsigned i = 0; i < nfuncs; i++)
		for (unsigned j = 0; j < 6; j++) {
			const struct pci_bar *b = &funcs[i].bar[j];
			if (b->size && b->base && b->io == io && base < b->base + b->size &&
			    b->base < base + size)
				return true;
		}
	return false;
}

static void write_bar(struct pci_func *f, unsigned i)
{
	const struct pci_bar *b = &f->bar[i];
	pci_cfg_write(f, REG_BAR0 + 4 * i, 4,
		      (uint32_t)b->base | (b->io ? 1 : 0) | (b->mem64 ? 4 : 0) |
			      (b->prefetch ? 8 : 0));
	if (b->mem64)
		pci_cfg_write(f, REG_BAR0 + 4 * (i + 1), 4, (uint32_t)(b->base >> 32));
}

/* First naturally aligned free spot in the window (from its top: last), never
 * the BAR's current place; false when the window is full. */
static bool assign(struct pci_func *f, unsigned i, bool top)
{
	struct pci_bar *b = &f->bar[i];
	uint64_t lo = b->io ? IO_WIN_BASE : MEM_WIN_BASE, hi = b->io ? IO_WIN_END : MEM_WIN_END;
	uint64_t first =
		top ? (hi - b->size) & ~(b->size - 1) : (lo + b->size - 1) & ~(b->size - 1);
	int64_t step = top ? -(int64_t)b->size : (int64_t)b->size;
	for (uint64_t a = first; a >= lo && a + b->size <= hi; a += step)
		if (!overlaps_any(a, b->size, b->io)) {
			uint16_t cmd = (uint16_t)pci_cfg_read(f, REG_COMMAND, 2);
			pci_cfg_write(f, REG_COMMAND, 2, cmd & ~(PCI_CMD_IO | PCI_CMD_MEM));
			b->base = a;
			b->moved = true;
			write_bar(f, i);
			pci_cfg_write(f, REG_COMMAND, 2, cmd | (b->io ? PCI_CMD_IO : PCI_CMD_MEM));
			return true;
		}
	return false;
}

static void add_func(unsigned dev, unsigned fn, uint16_t vendor)
{
	if (nfuncs == PCI_MAX_FUNCS)
		return;
	struct pci_func *f = &funcs[nfuncs++];
	f->dev = (uint8_t)dev;
	f->fn = (uint8_t)fn;
	f->vendor = vendor;
	f->device = (uint16_t)pci_cfg_read(f, REG_VENDOR + 2, 2);
	f->class_code = pci_cfg_read(f, REG_CLASS, 4) >> 8;
	f->header = (uint8_t)pci_cfg_read(f, REG_HEADER, 1);
	uint32_t irq = pci_cfg_read(f, REG_INT_LINE, 2);
	f->irq_line = (uint8_t)irq;
	f->irq_pin = (uint8_t)(irq >> 8);
	if ((f->header & 0x7F) == 0)
		size_bars(f);
}

unsigned pci_scan(const struct pci_func **list)
{
	if (!scanned) {
		scanned = true;
		for (unsigned dev = 0; dev < 32; dev++) {
			uint16_t vendor = (uint16_t)pci_cfg_read_bdf(dev, 0, REG_VENDOR, 2);
			if (vendor == 0xFFFF)
				continue;
			add_func(dev, 0, vendor);
			if (!(funcs[nfuncs - 1].header & 0x80))
				continue;
			for (unsigned fn = 1; fn < 8; fn++) {
				vendor = (uint16_t)pci_cfg_read_bdf(dev, fn, REG_VENDOR, 2);
				if (vendor != 0xFFFF)
					add_func(dev, fn, vendor);
			}
		}
		/* pci=reassign: move every virtio BAR, to exercise this path where
		 * firmware or the VMM assigned them all */
		const char *how = cmdline_get("pci");
		bool force = how && !strcmp(how, "reassign");
		for (unsigned i = 0; i < nfuncs; i++)
			for (unsigned j = 0; j < 6; j++) {
				struct pci_bar *b = &funcs[i].bar[j];
				if (b->size && (!b->base || b->base + b->size > (1ull << 32) ||
						(force && funcs[i].vendor == VIRTIO_VENDOR)))
					assign(&funcs[i], j, force);
			}
	}
	if (list)
		*list = funcs;
	return nfuncs;
}

const struct pci_func *pci_find(uint16_t vendor, uint16_t device, unsigned nth)
{
	pci_scan(NULL);
	for (unsigned i = 0; i < nfuncs; i++)
		if (funcs[i].vendor == vendor && funcs[i].device == device && !nth--)
			return &funcs[i];
	return NULL;
}

unsigned pci_cap_next(const struct pci_func *f, unsigned prev, uint8_t id)
{
	unsigned p;
	if (!prev) {
		if (!(pci_cfg_read(f, REG_STATUS, 2) & STATUS_CAPS))
			return 0;
		p = pci_cfg_read(f, REG_CAP_PTR, 1);
	} else {
		p = pci_cfg_read(f, prev + 1, 1);
	}
	for (unsigned n = 0; n < MAX_CAPS && p >= 0x40; n++) {
		p &= 0xFC;
		uint32_t hdr = pci_cfg_read(f, p, 2);
		if ((hdr & 0xFF) == id)
			return p;
		p = hdr >> 8;
	}
	return 0;
}

/* ---- the "pci" guest test ---- */

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Re-probe every BAR: the size mask must be well formed and agree with the
 * scan, and writing the original value back must restore it exactly. */
static void check_bars(const struct pci_func *f)
{
	uint16_t cmd = (uint16_t)pci_cfg_read(f, REG_COMMAND, 2);
	pci_cfg_write(f, REG_COMMAND, 2, cmd & ~(PCI_CMD_IO | PCI_CMD_MEM));
	for (unsigned i = 0; i < 6; i++) {
		const struct pci_bar *b = &f->bar[i];
		uint32_t orig, mask = bar_probe(f, REG_BAR0 + 4 * i, &orig);
		uint32_t back = pci_cfg_read(f, REG_BAR0 + 4 * i, 4);
		tap_check(back == orig, "%02x.%x BAR%u: 0x%x after restore, was 0x%x", f->dev,
			  f->fn, i, back, orig);
		if (!b->size) {
			tap_check(!mask, "%02x.%x BAR%u: no BAR found but mask 0x%x", f->dev, f->fn,
				  i, mask);
			continue;
		}
		tap_check(is_pow2(b->size) && b->size >= (b->io ? 4u : 16u),
			  "%02x.%x BAR%u: size 0x%lx not a power of two >= %u", f->dev, f->fn, i,
			  b->size, b->io ? 4 : 16);
		tap_check(!b->io || b->size <= 256, "%02x.%x BAR%u: I/O BAR of 0x%lx bytes", f->dev,
			  f->fn, i, b->size);
		tap_check(b->io ? !(mask & 2) : ((mask >> 1) & 3) != 1 && ((mask >> 1) & 3) != 3,
			  "%02x.%x BAR%u: reserved type bits in mask 0x%x", f->dev, f->fn, i, mask);
		tap_check((mask & 0xF) == (orig & 0xF) || b->io,
			  "%02x.%x BAR%u: flag bits changed by sizing (0x%x, 0x%x)", f->dev, f->fn,
			  i, mask, orig);
		tap_check(!(b->base & (b->size - 1)),
			  "%02x.%x BAR%u: base 0x%lx not aligned to 0x%lx", f->dev, f->fn, i,
			  b->base, b->size);
		tap_note("%02x.%x BAR%u %s%s 0x%lx size 0x%lx%s", f->dev, f->fn, i,
			 b->io	    ? "io"
			 : b->mem64 ? "mem64"
				    : "mem32",
			 b->prefetch ? " pref" : "", b->base, b->size,
			 b->moved ? " (assigned by the test OS)" : "");
		i += b->mem64;
	}
	pci_cfg_write(f, REG_COMMAND, 2, cmd);
}

static void check_caps(const struct pci_func *f)
{
	if (!(pci_cfg_read(f, REG_STATUS, 2) & STATUS_CAPS))
		return;
	uint8_t seen[256 / 32] = {0};
	unsigned p = pci_cfg_read(f, REG_CAP_PTR, 1), n = 0;
	char ids[96];
	size_t len = 0;
	ids[0] = 0;
	while (p) {
		if (!tap_check(p >= 0x40 && !(p & 3) && p <= 0xFC,
			       "%02x.%x: capability pointer 0x%x", f->dev, f->fn, p))
			return;
		if (!tap_check(!(seen[p / 32] & (1u << (p / 4 % 8))),
			       "%02x.%x: capability list loops at 0x%x", f->dev, f->fn, p))
			return;
		seen[p / 32] |= 1u << (p / 4 % 8);
		uint32_t hdr = pci_cfg_read(f, p, 2);
		if (len < sizeof(ids) - 8)
			len += snprintf(ids + len, sizeof(ids) - len, " %02x@%02x", hdr & 0xFF, p);
		tap_check((hdr & 0xFF) != 0 && (hdr & 0xFF) != 0xFF,
			  "%02x.%x: capability id 0x%x at 0x%x", f->dev, f->fn, hdr & 0xFF, p);
		if (++n > MAX_CAPS)
			return;
		p = hdr >> 8;
	}
	tap_note("%02x.%x caps:%s", f->dev, f->fn, ids);
}

/* The virtio common configuration (bar, offset) from the vendor capabilities. */
static bool virtio_common(const struct pci_func *f, unsigned *bar, uint32_t *off)
{
	for (unsigned p = pci_cap_next(f, 0, PCI_CAP_VENDOR); p;
	     p = pci_cap_next(f, p, PCI_CAP_VENDOR)) {
		uint32_t w = pci_cfg_read(f, p, 4);
		if (((w >> 24) & 0xFF) == 1) {
			*bar = pci_cfg_read(f, p + 4, 1);
			*off = pci_cfg_read(f, p + 8, 4);
			return *bar < 6 && f->bar[*bar].size && !f->bar[*bar].io;
		}
	}
	return false;
}

/* Memory decoding off must unmap the BAR, on must map it again; moving the BAR
 * must make the registers follow it. */
static void check_decode(const struct pci_func *f)
{
	unsigned bar = 0;
	uint32_t off = 0;
	if (!tap_check(virtio_common(f, &bar, &off), "%02x.%x: no virtio common capability", f->dev,
		       f->fn))
		return;
	const struct pci_bar *b = &f->bar[bar];
	uintptr_t reg = b->base + off + 0x12; /* num_queues: read-only, non-zero */
	uint16_t nq = mmio_read16(reg);
	uint16_t cmd = (uint16_t)pci_cfg_read(f, REG_COMMAND, 2);
	pci_cfg_write(f, REG_COMMAND, 2, cmd & ~PCI_CMD_MEM);
	uint16_t off_val = mmio_read16(reg);
	pci_cfg_write(f, REG_COMMAND, 2, cmd | PCI_CMD_MEM);
	uint16_t on_val = mmio_read16(reg);
	tap_check(nq && nq != 0xFFFF, "%02x.%x: num_queues reads 0x%x", f->dev, f->fn, nq);
	tap_check(off_val != nq, "%02x.%x: BAR%u still answers with decoding off (0x%x)", f->dev,
		  f->fn, bar, off_val);
	tap_check(on_val == nq, "%02x.%x: BAR%u reads 0x%x after decoding on, want 0x%x", f->dev,
		  f->fn, bar, on_val, nq);

	/* Move it to the highest free aligned spot in the window and back. */
	uint64_t to = 0;
	for (uint64_t a = (MEM_WIN_END - b->size) & ~(b->size - 1); a >= MEM_WIN_BASE; a -= b->size)
		if (!overlaps_any(a, b->size, false)) {
			to = a;
			break;
		}
	if (!tap_check(to, "no free spot to move BAR%u to", bar))
		return;
	struct pci_func tmp = *f;
	tmp.bar[bar].base = to;
	pci_cfg_write(f, REG_COMMAND, 2, cmd & ~PCI_CMD_MEM);
	write_bar(&tmp, bar);
	pci_cfg_write(f, REG_COMMAND, 2, cmd | PCI_CMD_MEM);
	uint16_t moved = mmio_read16(to + off + 0x12), old = mmio_read16(reg);
	pci_cfg_write(f, REG_COMMAND, 2, cmd & ~PCI_CMD_MEM);
	write_bar((struct pci_func *)f, bar);
	pci_cfg_write(f, REG_COMMAND, 2, cmd);
	uint16_t back = mmio_read16(reg);
	tap_check(moved == nq, "%02x.%x: BAR%u moved to 0x%lx reads 0x%x there", f->dev, f->fn, bar,
		  to, moved);
	tap_check(old != nq, "%02x.%x: BAR%u moved away still answers at 0x%lx", f->dev, f->fn, bar,
		  b->base);
	tap_check(back == nq, "%02x.%x: BAR%u moved back reads 0x%x", f->dev, f->fn, bar, back);
}

static void check_ecam(const struct pci_func *list, unsigned n, unsigned empty)
{
	for (unsigned i = 0; i < n; i++) {
		const struct pci_func *f = &list[i];
		uintptr_t e = ECAM_BASE + ((uintptr_t)f->dev << 15) + ((uintptr_t)f->fn << 12);
		uint32_t id = mmio_read32(e), cls = mmio_read32(e + 8);
		tap_check(id == ((uint32_t)f->device << 16 | f->vendor) &&
				  cls >> 8 == f->class_code,
			  "%02x.%x: ECAM reads id 0x%x class 0x%x", f->dev, f->fn, id, cls >> 8);
	}
	if (empty < 32)
		tap_check(mmio_read32(ECAM_BASE + (empty << 15)) == 0xFFFFFFFF,
			  "ECAM: absent slot %u does not read all ones", empty);
}

void test_pci(void)
{
	const struct pci_func *list;
	unsigned n = pci_scan(&list);
	if (!tap_check(n > 0, "no PCI functions on bus 0"))
		return;
	tap_check(list[0].dev == 0 && list[0].fn == 0 && list[0].class_code >> 8 == 0x0600,
		  "00.0 is not a host bridge (class 0x%06x)", list[0].class_code);
	unsigned virtio = 0;
	const struct pci_func *vf = NULL;
	for (unsigned i = 0; i < n; i++) {
		const struct pci_func *f = &list[i];
		tap_note("%02x.%x %04x:%04x class %06x header 0x%02x pin %u line %u", f->dev, f->fn,
			 f->vendor, f->device, f->class_code, f->header, f->irq_pin, f->irq_line);
		tap_check(f->irq_pin <= 4, "%02x.%x: interrupt pin %u", f->dev, f->fn, f->irq_pin);
		if ((f->header & 0x7F) == 0)
			check_bars(f);
		check_caps(f);
		if (f->vendor == VIRTIO_VENDOR && f->device >= 0x1040 && f->device <= 0x107F) {
			virtio++;
			if (!vf)
				vf = f;
		}
	}
	/* An absent device reads all ones at every size. */
	unsigned empty = 32;
	for (unsigned d = 31; d > 0 && empty == 32; d--)
		if ((uint16_t)pci_cfg_read_bdf(d, 0, 0, 2) == 0xFFFF)
			empty = d;
	if (empty < 32)
		tap_check(pci_cfg_read_bdf(empty, 0, 0, 4) == 0xFFFFFFFF &&
				  pci_cfg_read_bdf(empty, 0, 0xE, 1) == 0xFF &&
				  pci_cfg_read_bdf(empty, 0, 0x2, 2) == 0xFFFF,
			  "absent slot %u does not read all ones", empty);
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < 6; j++) {
			const struct pci_bar *b = &list[i].bar[j];
			if (!b->size || !b->base)
				continue;
			for (unsigned k = 0; k < n; k++)
				for (unsigned l = 0; l < 6; l++) {
					const struct pci_bar *c = &list[k].bar[l];
					if ((k != i || l != j) && c->size && c->base &&
					    c->io == b->io && b->base < c->base + c->size &&
					    c->base < b->base + b->size)
						tap_check(false,
							  "%02x.%x BAR%u overlaps %02x.%x BAR%u",
							  list[i].dev, list[i].fn, j, list[k].dev,
							  list[k].fn, l);
				}
		}
	if (tap_check(virtio, "no modern virtio function (1af4:1040-107f)"))
		check_decode(vf);
	if (on_hearth())
		check_ecam(list, n, empty);
	tap_note("%u functions, %u virtio", n, virtio);
}
