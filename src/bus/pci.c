/* A PCI function's configuration space (type 0 header) and its BARs. Every byte has a write
 * mask, so whatever the guest writes at any offset and size only changes writable bits; the
 * side effects (decode on/off, a BAR moving, MSI-X control) are derived from the new bytes.
 * BAR sizing needs no special case: the address bits below the size are read-only zero, so
 * writing all ones reads back the size mask.
 *
 * A BAR the guest places over another range (a device's ports, another BAR) is left
 * unmapped and logged once; moving it somewhere free maps it again. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/pci_internal.h"
#include "config/cfg.h"
#include "dev/machine.h"

#define REG_VENDOR 0x00
#define REG_DEVICE 0x02
#define REG_REVISION 0x08
#define REG_CLASS 0x09
#define REG_CACHE_LINE 0x0C
#define REG_HEADER_TYPE 0x0E
#define REG_BAR0 0x10
#define REG_SUBSYS_VENDOR 0x2C
#define REG_SUBSYS 0x2E
#define REG_CAP_PTR 0x34
#define REG_INT_LINE 0x3C
#define REG_INT_PIN 0x3D

#define BAR_IO 0x1
#define BAR_MEM64 0x4
#define BAR_PREFETCH 0x8

#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASK 0x4000

/* Command bits a guest may change: I/O, memory, bus master, parity, SERR, INTx disable. */
#define CMD_WRITABLE 0x0547

static void put(uint8_t *p, uint32_t off, unsigned size, uint32_t v)
{
	for (unsigned i = 0; i < size; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get(const uint8_t *p, uint32_t off, unsigned size)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)p[off + i] << (8 * i);
	return v;
}

static uint16_t command(const struct hearth_pci_func *f)
{
	return (uint16_t)get(f->cfg, HEARTH_PCI_COMMAND, 2);
}

static bool valid_bar(const struct hearth_pci_func *f, unsigned idx)
{
	return idx < HEARTH_PCI_NUM_BARS && f->bar[idx].present;
}

/* ---- BAR dispatch: the PCI layer serves the MSI-X ranges, the device the rest ---- */

static bool in_range(uint64_t off, unsigned size, uint64_t start, uint64_t len)
{
	return off >= start && off - start < len && size <= len - (off - start);
}

static uint64_t msix_table_len(const struct hearth_pci_func *f)
{
	return (uint64_t)msix_nvec(f->msix) * 16;
}

static uint64_t msix_pba_len(const struct hearth_pci_func *f)
{
	return (msix_nvec(f->msix) + 63) / 64 * 8;
}

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
	struct pci_bar_state *b = opaque;
	struct hearth_pci_func *f = b->f;

	if (f->msix && f->msix_bar == b->idx) {
		if (in_range(off, size, f->msix_table_off, msix_table_len(f)))
			return msix_table_read(f->msix, off - f->msix_table_off, size);
		if (in_range(off, size, f->msix_pba_off, msix_pba_len(f)))
			return msix_pba_read(f->msix, off - f->msix_pba_off, size);
	}
	return b->ops && b->ops->read ? b->ops->read(b->opaque, off, size) : 0;
}

static void bar_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
	struct pci_bar_state *b = opaque;
	struct hearth_pci_func *f = b->f;

	if (f->msix && f->msix_bar == b->idx) {
		if (in_range(off, size, f->msix_table_off, msix_table_len(f))) {
			msix_table_write(f->msix, off - f->msix_table_off, value, size);
			return;
		}
		if (in_range(off, size, f->msix_pba_off, msix_pba_len(f)))
			return; /* the PBA is read-only */
	}
	if (b->ops && b->ops->write)
		b->ops->write(b->opaque, off, value, size);
}

static const struct hearth_io_ops bar_ops = {.read = bar_read, .write = bar_write};

uint64_t hearth_pci_bar_read(struct hearth_pci_func *f, unsigned bar, uint64_t offset,
			     unsigned size)
{
	if (!valid_bar(f, bar) || size == 0 || size > 8 ||
	    !in_range(offset, size, 0, f->bar[bar].size))
		return ~0ull;
	return bar_read(&f->bar[bar], offset, size);
}

void hearth_pci_bar_write(struct hearth_pci_func *f, unsigned bar, uint64_t offset, uint64_t value,
			  unsigned size)
{
	if (!valid_bar(f, bar) || size == 0 || size > 8 ||
	    !in_range(offset, size, 0, f->bar[bar].size))
		return;
	bar_write(&f->bar[bar], offset, value, size);
}

/* ---- mapping ---- */

static void ioeventfds_update(struct hearth_pci_func *f, struct pci_bar_state *b)
{
	struct hearth_vm *vm = f->dev->vm;

	for (unsigned i = 0; i < f->niofd; i++) {
		struct pci_ioeventfd *e = &f->iofds[i];
		if (e->bar != b->idx)
			continue;
		if (e->assigned && (!b->mapped || e->at != b->base + e->offset)) {
			vm->ioeventfd(vm, e->pio, e->at, e->len, false, 0, e->fd, false);
			e->assigned = false;
		}
		if (!e->assigned && b->mapped && vm->ioeventfd) {
			e->pio = b->kind == HEARTH_PCI_BAR_IO;
			e->at = b->base + e->offset;
			if (vm->ioeventfd(vm, e->pio, e->at, e->len, false, 0, e->fd, true) == 0)
				e->assigned = true;
			else
				/* the BAR's ops still see the writes: slower, not lost */
				hearth_log_once(f->ioeventfd_logged,
						"device '%s': ioeventfd at %#" PRIx64 ": %s",
						f->dev->id, e->at, hearth_err_msg());
		}
	}
}

static void bar_unmap(struct hearth_pci_func *f, struct pci_bar_state *b)
{
	if (!b->mapped)
		return;
	if (b->kind == HEARTH_PCI_BAR_IO)
		hearth_unhook_pio(f->dev, (uint16_t)b->base);
	else
		hearth_unhook_mmio(f->dev, b->base);
	b->mapped = false;
	ioeventfds_update(f, b);
}

/* Where the BAR registers and the command register say BAR b decodes; false when off. */
static bool bar_target(const struct hearth_pci_func *f, const struct pci_bar_state *b,
		       uint64_t *base)
{
	uint32_t lo = get(f->cfg, REG_BAR0 + 4 * b->idx, 4);

	if (!f->plugged || !f->bus)
		return false;
	if (b->kind == HEARTH_PCI_BAR_IO) {
		*base = lo & ~3u;
		return command(f) & HEARTH_PCI_CMD_IO;
	}
	*base = lo & ~0xFull;
	if (b->kind == HEARTH_PCI_BAR_MEM64)
		*base |= (uint64_t)get(f->cfg, REG_BAR0 + 4 * (b->idx + 1), 4) << 32;
	return command(f) & HEARTH_PCI_CMD_MEM;
}

static void bar_update(struct hearth_pci_func *f, struct pci_bar_state *b)
{
	uint64_t base = 0;
	bool on = bar_target(f, b, &base);
	int r;

	if (b->mapped && on && b->base == base)
		return;
	bar_unmap(f, b);
	if (!on)
		return;
	if (b->kind == HEARTH_PCI_BAR_IO)
		r = base + b->size > 0x10000 ? hearth_err("beyond port 0xffff")
					     : hearth_hook_pio(f->dev, (uint16_t)base,
							       (uint32_t)b->size, &bar_ops, b);
	else
		r = hearth_hook_mmio(f->dev, base, b->size, &bar_ops, b);
	if (r < 0) {
		hearth_log_once(b->conflict_logged,
				"PCI 00:%02x.0 ('%s'): BAR%u at %#" PRIx64 " left unmapped: %s",
				f->slot, f->dev->id, b->idx, base, hearth_err_msg());
		return;
	}
	b->mapped = true;
	b->base = base;
	ioeventfds_update(f, b);
}

static void bars_update(struct hearth_pci_func *f)
{
	for (unsigned i = 0; i < HEARTH_PCI_NUM_BARS; i++)
		if (f->bar[i].present)
			bar_update(f, &f->bar[i]);
}

/* ---- INTx ---- */

static void intx_update(struct hearth_pci_func *f)
{
	bool out = f->intx_req && !(command(f) & HEARTH_PCI_CMD_INTX_DISABLE) &&
		   !msix_is_enabled(f->msix) && f->intx_gsi >= 0 && f->bus;
	uint16_t status = (uint16_t)get(f->cfg, HEARTH_PCI_STATUS, 2);

	/* the status bit shows the function's request even while the line is disabled */
	status = f->intx_req ? status | HEARTH_PCI_STATUS_INTX : status & ~HEARTH_PCI_STATUS_INTX;
	put(f->cfg, HEARTH_PCI_STATUS, 2, status);
	if (out == f->intx_out)
		return;
	f->intx_out = out;
	pci_bus_intx(f->bus, f->dev->vm, f->intx_gsi, out);
}

void hearth_pci_intx(struct hearth_pci_func *f, int level)
{
	f->intx_req = level != 0;
	intx_update(f);
}

/* ---- configuration space ---- */

static bool touches(uint32_t off, unsigned size, uint32_t start, uint32_t len)
{
	return off < start + len && start < off + size;
}

uint32_t pci_cfg_read(struct hearth_pci_func *f, uint32_t off, unsigned size)
{
	uint32_t v = 0;

	if (size == 0 || size > 4 || off >= PCI_CFG_EXT_SIZE || size > PCI_CFG_EXT_SIZE - off)
		return ~0u;
	for (unsigned i = 0; i < size; i++)
		if (off + i < PCI_CFG_SIZE)
			v |= (uint32_t)f->cfg[off + i] << (8 * i);
	if (f->cops && f->cops->read)
		f->cops->read(f->copaque, off, size, &v);
	return v;
}

void pci_cfg_write(struct hearth_pci_func *f, uint32_t off, uint32_t value, unsigned size)
{
	uint16_t old_msix = 0;

	if (size == 0 || size > 4 || off >= PCI_CFG_SIZE || size > PCI_CFG_SIZE - off)
		return; /* the extended space has nothing writable */
	if (f->msix)
		old_msix = (uint16_t)get(f->cfg, f->msix_cap + 2, 2);
	for (unsigned i = 0; i < size; i++) {
		uint8_t m = f->wmask[off + i];
		f->cfg[off + i] = (uint8_t)((f->cfg[off + i] & ~m) | ((value >> (8 * i)) & m));
	}
	if (touches(off, size, HEARTH_PCI_COMMAND, 2) || touches(off, size, REG_BAR0, 24))
		bars_update(f);
	if (f->msix && touches(off, size, f->msix_cap + 2, 2)) {
		uint16_t ctrl = (uint16_t)get(f->cfg, f->msix_cap + 2, 2);
		if (ctrl != old_msix)
			msix_control(f->msix, ctrl & MSIX_CTRL_ENABLE, ctrl & MSIX_CTRL_MASK);
	}
	if (touches(off, size, HEARTH_PCI_COMMAND, 2) ||
	    (f->msix && touches(off, size, f->msix_cap + 2, 2)))
		intx_update(f);
	if (f->cops && f->cops->write)
		f->cops->write(f->copaque, off, value, size);
}

uint32_t hearth_pci_cfg_get(const struct hearth_pci_func *f, uint32_t offset, unsigned size)
{
	if (size == 0 || size > 4 || offset >= PCI_CFG_SIZE || size > PCI_CFG_SIZE - offset)
		return 0;
	return get(f->cfg, offset, size);
}

void hearth_pci_cfg_set(struct hearth_pci_func *f, uint32_t offset, unsigned size, uint32_t value)
{
	if (size == 0 || size > 4 || offset >= PCI_CFG_SIZE || size > PCI_CFG_SIZE - offset)
		return;
	put(f->cfg, offset, size, value);
}

/* ---- building a function ---- */

struct hearth_pci_func *hearth_pci_func_new(struct hearth_dev *dev, const struct hearth_pci_id *id)
{
	struct hearth_pci_func *f;

	if (id->vendor == 0xFFFF || id->vendor == 0) {
		hearth_err("PCI vendor id %#06x is reserved", id->vendor);
		return NULL;
	}
	if (id->intx_pin > 4) {
		hearth_err("PCI interrupt pin %u: use 0 (none) or 1..4 (INTA..INTD)", id->intx_pin);
		return NULL;
	}
	if (id->class_code > 0xFFFFFF) {
		hearth_err("PCI class code %#x is wider than 24 bits", id->class_code);
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		hearth_err("out of memory");
		return NULL;
	}
	f->dev = dev;
	f->id = *id;
	f->intx_gsi = -1;
	f->cap_end = PCI_CAP_START;
	for (unsigned i = 0; i < HEARTH_PCI_NUM_BARS; i++) {
		f->bar[i].f = f;
		f->bar[i].idx = i;
	}
	put(f->cfg, REG_VENDOR, 2, id->vendor);
	put(f->cfg, REG_DEVICE, 2, id->device);
	f->cfg[REG_REVISION] = id->revision;
	put(f->cfg, REG_CLASS, 3, id->class_code);
	put(f->cfg, REG_SUBSYS_VENDOR, 2, id->subsys_vendor);
	put(f->cfg, REG_SUBSYS, 2, id->subsys);
	f->cfg[REG_INT_PIN] = id->intx_pin;
	put(f->wmask, HEARTH_PCI_COMMAND, 2, CMD_WRITABLE);
	f->wmask[REG_CACHE_LINE] = 0xFF;
	f->wmask[REG_INT_LINE] = 0xFF;
	return f;
}

int hearth_pci_bar(struct hearth_pci_func *f, unsigned idx, const struct hearth_pci_bar *bar)
{
	uint64_t s = bar->size;
	uint32_t flags, reg = REG_BAR0 + 4 * idx;
	uint64_t mask;

	if (f->plugged)
		return hearth_err("BAR%u: the function is plugged already", idx);
	if (idx >= HEARTH_PCI_NUM_BARS || f->bar[idx].present ||
	    (idx > 0 && f->bar[idx - 1].present && f->bar[idx - 1].kind == HEARTH_PCI_BAR_MEM64))
		return hearth_err("BAR%u: no such BAR register free", idx);
	if (s == 0 || (s & (s - 1)))
		return hearth_err("BAR%u: size %#" PRIx64 " is not a power of two", idx, s);
	switch (bar->kind) {
	case HEARTH_PCI_BAR_IO:
		if (s < 4 || s > 256 || bar->prefetchable)
			return hearth_err("BAR%u: I/O BARs are 4..256 bytes, not prefetchable",
					  idx);
		flags = BAR_IO;
		/* 16-bit I/O decode: the upper half reads as zero */
		mask = ~(s - 1) & 0xFFFC;
		break;
	case HEARTH_PCI_BAR_MEM32:
		if (s < 16 || s > 0x80000000ull)
			return hearth_err("BAR%u: 32-bit memory BARs are 16 bytes..2 GiB", idx);
		flags = bar->prefetchable ? BAR_PREFETCH : 0;
		mask = ~(s - 1) & 0xFFFFFFF0u;
		break;
	case HEARTH_PCI_BAR_MEM64:
		if (idx == HEARTH_PCI_NUM_BARS - 1 || f->bar[idx + 1].present)
			return hearth_err("BAR%u: a 64-bit BAR needs the next register free", idx);
		if (s < 16 || s > (1ull << 40))
			return hearth_err("BAR%u: 64-bit memory BARs are 16 bytes..1 TiB", idx);
		flags = BAR_MEM64 | (bar->prefetchable ? BAR_PREFETCH : 0);
		mask = ~(s - 1) & ~0xFull;
		put(f->wmask, reg + 4, 4, (uint32_t)(mask >> 32));
		break;
	default:
		return hearth_err("BAR%u: unknown kind %d", idx, (int)bar->kind);
	}
	put(f->wmask, reg, 4, (uint32_t)mask);
	put(f->cfg, reg, 4, flags);
	f->bar[idx] = (struct pci_bar_state){.f = f,
					     .idx = idx,
					     .present = true,
					     .kind = bar->kind,
					     .prefetchable = bar->prefetchable,
					     .size = s,
					     .ops = bar->ops,
					     .opaque = bar->opaque};
	return 0;
}

int hearth_pci_add_cap(struct hearth_pci_func *f, uint8_t cap_id, const void *body, size_t len,
		       const void *wmask)
{
	unsigned at = f->cap_end;

	if (f->plugged)
		return hearth_err("capability %#x: the function is plugged already", cap_id);
	if (len > PCI_CFG_SIZE || at + 2 + len > PCI_CFG_SIZE)
		return hearth_err("capability %#x (%zu bytes) does not fit configuration space",
				  cap_id, len + 2);
	f->cfg[at] = cap_id;
	f->cfg[at + 1] = 0;
	if (len)
		memcpy(f->cfg + at + 2, body, len);
	if (wmask && len)
		memcpy(f->wmask + at + 2, wmask, len);
	if (f->cap_last)
		f->cfg[f->cap_last + 1] = (uint8_t)at;
	else
		f->cfg[REG_CAP_PTR] = (uint8_t)at;
	f->cfg[HEARTH_PCI_STATUS] |= HEARTH_PCI_STATUS_CAPS;
	f->cap_last = at;
	f->cap_end = (unsigned)(at + 2 + len + 3) & ~3u; /* capabilities are dword aligned */
	return (int)at;
}

int hearth_pci_msix_init(struct hearth_pci_func *f, unsigned nvec, unsigned bar, uint32_t table_off,
			 uint32_t pba_off)
{
	uint8_t body[10] = {0}, wmask[10] = {0};
	uint64_t tlen = (uint64_t)nvec * 16, plen = (nvec + 63) / 64 * 8;
	int at;

	if (f->msix)
		return hearth_err("MSI-X is set up already");
	if (nvec == 0 || nvec > HEARTH_PCI_MSIX_MAX)
		return hearth_err("MSI-X: %u vectors, 1..%d are possible", nvec,
				  HEARTH_PCI_MSIX_MAX);
	if (!valid_bar(f, bar) || f->bar[bar].kind == HEARTH_PCI_BAR_IO)
		return hearth_err("MSI-X: BAR%u is not a memory BAR of this function", bar);
	if ((table_off | pba_off) & 7)
		return hearth_err("MSI-X: table and PBA offsets must be 8-byte aligned");
	if (!in_range(table_off, 1, 0, f->bar[bar].size) || tlen > f->bar[bar].size - table_off ||
	    !in_range(pba_off, 1, 0, f->bar[bar].size) || plen > f->bar[bar].size - pba_off)
		return hearth_err("MSI-X: table or PBA outside BAR%u", bar);
	if (table_off < pba_off + plen && pba_off < table_off + tlen)
		return hearth_err("MSI-X: table and PBA overlap");
	put(body, 0, 2, nvec - 1);
	put(wmask, 0, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASK);
	put(body, 2, 4, table_off | bar);
	put(body, 6, 4, pba_off | bar);
	at = hearth_pci_add_cap(f, HEARTH_PCI_CAP_ID_MSIX, body, sizeof(body), wmask);
	if (at < 0)
		return -1;
	f->msix = msix_new(f->dev->vm, f->dev->id, nvec);
	if (!f->msix)
		return hearth_err("MSI-X: out of memory");
	f->msix_cap = (unsigned)at;
	f->msix_bar = bar;
	f->msix_table_off = table_off;
	f->msix_pba_off = pba_off;
	return at;
}

void hearth_pci_set_config_ops(struct hearth_pci_func *f, const struct hearth_pci_config_ops *ops,
			       void *opaque)
{
	f->cops = ops;
	f->copaque = opaque;
}

int hearth_pci_bar_ioeventfd(struct hearth_pci_func *f, unsigned bar, uint64_t offset, unsigned len,
			     int fd)
{
	struct pci_ioeventfd *n;

	if (!valid_bar(f, bar))
		return hearth_err("ioeventfd: BAR%u does not exist", bar);
	if ((len != 1 && len != 2 && len != 4 && len != 8) ||
	    !in_range(offset, len, 0, f->bar[bar].size))
		return hearth_err("ioeventfd: %u bytes at %#" PRIx64 " do not fit BAR%u", len,
				  offset, bar);
	n = realloc(f->iofds, (f->niofd + 1) * sizeof(*n));
	if (!n)
		return hearth_err("ioeventfd: out of memory");
	f->iofds = n;
	f->iofds[f->niofd++] =
		(struct pci_ioeventfd){.bar = bar, .offset = offset, .len = len, .fd = fd};
	ioeventfds_update(f, &f->bar[bar]);
	return 0;
}

/* Assign BAR addresses as firmware would: each naturally aligned, from the windows. */
static int assign_bars(struct hearth_pci_func *f)
{
	for (unsigned i = 0; i < HEARTH_PCI_NUM_BARS; i++) {
		struct pci_bar_state *b = &f->bar[i];
		uint64_t at;
		if (!b->present)
			continue;
		if (pci_bus_alloc(f->bus, b->kind == HEARTH_PCI_BAR_IO, b->size, &at) < 0)
			return hearth_err_prefix("BAR%u (%#" PRIx64 " bytes)", i, b->size);
		b->assigned = at;
	}
	return 0;
}

/* The state plug gives, and reset returns to. */
static void power_on_state(struct hearth_pci_func *f)
{
	uint16_t cmd = 0;

	for (unsigned i = 0; i < HEARTH_PCI_NUM_BARS; i++) {
		struct pci_bar_state *b = &f->bar[i];
		uint32_t reg = REG_BAR0 + 4 * i;
		if (!b->present)
			continue;
		uint32_t flags = get(f->cfg, reg, 4) & (b->kind == HEARTH_PCI_BAR_IO ? 0x3 : 0xF);
		put(f->cfg, reg, 4, (uint32_t)b->assigned | flags);
		if (b->kind == HEARTH_PCI_BAR_MEM64)
			put(f->cfg, reg + 4, 4, (uint32_t)(b->assigned >> 32));
		cmd |= b->kind == HEARTH_PCI_BAR_IO ? HEARTH_PCI_CMD_IO : HEARTH_PCI_CMD_MEM;
	}
	put(f->cfg, HEARTH_PCI_COMMAND, 2, cmd | HEARTH_PCI_CMD_MASTER);
	f->cfg[REG_CACHE_LINE] = 0;
	/* what a BIOS leaves there: the IOAPIC input the pin is wired to */
	f->cfg[REG_INT_LINE] = f->intx_gsi >= 0 ? (uint8_t)f->intx_gsi : 0xFF;
	if (f->msix) {
		put(f->cfg, f->msix_cap + 2, 2, msix_nvec(f->msix) - 1);
		msix_reset(f->msix);
	}
	f->intx_req = false;
	intx_update(f);
	bars_update(f);
}

int hearth_pci_plug(struct hearth_pci_func *f, struct hearth_cfg *cfg)
{
	struct pci_bus *bus;
	uint64_t slot = 0;

	if (f->plugged)
		return hearth_err("the PCI function is plugged already");
	if (hearth_cfg_has(cfg, "addr") &&
	    hearth_cfg_u64(cfg, "addr", 0, 1, HEARTH_PCI_SLOTS - 1, &slot) < 0)
		return -1;
	bus = pci_bus_of(f->dev->vm, true);
	if (!bus)
		return -1;
	hearth_dev_lock(bus->host);
	int r = pci_bus_attach(bus, f, slot ? (int)slot : -1);
	if (r == 0) {
		if (f->id.intx_pin)
			f->intx_gsi = (int)(HEARTH_PCI_INTX_GSI_BASE +
					    (f->slot + f->id.intx_pin - 1) % HEARTH_PCI_INTX_GSIS);
		r = assign_bars(f);
		if (r == 0) {
			f->plugged = true;
			power_on_state(f);
		} else {
			pci_bus_remove(bus, f);
		}
	}
	hearth_dev_unlock(bus->host);
	return r;
}

void pci_func_detach(struct hearth_pci_func *f)
{
	for (unsigned i = 0; i < HEARTH_PCI_NUM_BARS; i++)
		if (f->bar[i].present)
			bar_unmap(f, &f->bar[i]);
	if (f->intx_out)
		pci_bus_intx(f->bus, f->dev->vm, f->intx_gsi, false);
	f->intx_out = false;
	f->bus = NULL;
	f->plugged = false;
}

void hearth_pci_func_free(struct hearth_pci_func *f)
{
	if (!f)
		return;
	if (f->bus) {
		struct pci_bus *bus = f->bus;
		hearth_dev_lock(bus->host);
		pci_bus_remove(bus, f);
		hearth_dev_unlock(bus->host);
	}
	/* unplugging unmapped every BAR, which took its ioeventfds off the platform */
	free(f->iofds);
	msix_free(f->msix);
	free(f);
}

/* After a checkpoint put back cfg, the MSI-X table and intx_req: map the BARs, route the
 * vectors and drive the line as the registers now say (pci_ckpt.c). */
void pci_func_refresh(struct hearth_pci_func *f)
{
	if (f->msix) {
		uint16_t ctrl = (uint16_t)get(f->cfg, f->msix_cap + 2, 2);
		msix_control(f->msix, ctrl & MSIX_CTRL_ENABLE, ctrl & MSIX_CTRL_MASK);
	}
	bars_update(f);
	intx_update(f);
}

void hearth_pci_func_reset(struct hearth_pci_func *f)
{
	if (f->plugged && f->bus)
		power_on_state(f);
}

/* ---- queries ---- */

int hearth_pci_msix_notify(struct hearth_pci_func *f, unsigned vector)
{
	return msix_notify(f->msix, vector);
}

bool hearth_pci_msix_enabled(const struct hearth_pci_func *f)
{
	return msix_is_enabled(f->msix);
}

unsigned hearth_pci_msix_count(const struct hearth_pci_func *f)
{
	return msix_nvec(f->msix);
}

unsigned hearth_pci_slot(const struct hearth_pci_func *f)
{
	return f->slot;
}

uint64_t hearth_pci_bar_addr(const struct hearth_pci_func *f, unsigned idx)
{
	return valid_bar(f, idx) && f->bar[idx].mapped ? f->bar[idx].base : 0;
}

int hearth_pci_intx_gsi(const struct hearth_pci_func *f)
{
	return f->intx_gsi;
}

void hearth_pci_describe(const struct hearth_pci_func *f, char *buf, size_t len)
{
	static const char *const kind[] = {"io", "mem32", "mem64"};
	size_t n = 0;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (n < len)                                                                       \
			n += (size_t)snprintf(buf + n, len - n, __VA_ARGS__);                      \
	} while (0)
	ADD("pci 00:%02x.0 %04x:%04x class %06x", f->slot, f->id.vendor, f->id.device,
	    f->id.class_code);
	for (unsigned i = 0; i < HEARTH_PCI_NUM_BARS; i++) {
		const struct pci_bar_state *b = &f->bar[i];
		if (!b->present)
			continue;
		ADD(", bar%u %s%s %#" PRIx64 "+%#" PRIx64, i, kind[b->kind],
		    b->prefetchable ? " pref" : "", b->mapped ? b->base : b->assigned, b->size);
		if (!b->mapped)
			ADD(" (off)");
	}
	if (f->intx_gsi >= 0)
		ADD(", INT%c gsi %d", 'A' + f->id.intx_pin - 1, f->intx_gsi);
	if (f->msix)
		ADD(", msi-x %u", msix_nvec(f->msix));
#undef ADD
}
