/* The host bridge: PCI bus 0 and the two ways to reach its configuration space, mechanism
 * #1 (an address register at 0xCF8, data at 0xCFC-0xCFF) and an ECAM window. It also owns
 * what firmware would decide: BAR addresses from its windows, and the INTx wiring published
 * in the MP table. 0xCF9 is the PC's reset control register.
 *
 * Lock order: host before function. A config access arrives with the host's lock held and
 * takes the target function's lock; functions never take the host's lock while holding
 * their own (INTx lines have their own small lock). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/pci_internal.h"
#include "config/cfg.h"
#include "dev/machine.h"
#include "hearth/checkpoint.h"
#include "x86/mptable.h"

#define CF8_PORT 0xCF8
#define CF8_ENABLE 0x80000000u
#define CF8_WRITABLE 0x80FFFFFCu
#define RCR_OFFSET 1	/* 0xCF9 */
#define RCR_RST_CPU 0x4 /* a 0 -> 1 transition resets the machine */
#define RCR_KEPT 0xA	/* hard/full reset selects read back */

/* Host bridge identity: Red Hat's id for a generic PCIe host bridge, which guests bind no
 * driver or quirk to. */
#define HOST_VENDOR 0x1b36
#define HOST_DEVICE 0x0008
#define HOST_CLASS 0x060000

#define MP_PCI_BUS 0 /* Linux matches MP interrupt entries by bus id == PCI bus number */

struct pci_host {
	struct pci_bus bus;
	struct hearth_dev *dev;
	struct hearth_pci_func *self; /* 00.0 */
	uint32_t cf8;
	uint8_t rcr;
};

static uint64_t ones(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

static struct hearth_pci_func *lookup(struct pci_host *h, unsigned bus, unsigned devfn)
{
	/* one function per device */
	if (bus != 0 || (devfn & 7) != 0)
		return NULL;
	return h->bus.fn[devfn >> 3];
}

/* size 1..8, reg + size <= 4096 */
static uint64_t config_read(struct pci_host *h, unsigned bus, unsigned devfn, uint32_t reg,
			    unsigned size)
{
	struct hearth_pci_func *f = lookup(h, bus, devfn);
	uint64_t v;

	if (!f)
		return ones(size);
	if (f->dev != h->dev)
		hearth_dev_lock(f->dev);
	if (size == 8)
		v = pci_cfg_read(f, reg, 4) | (uint64_t)pci_cfg_read(f, reg + 4, 4) << 32;
	else
		v = pci_cfg_read(f, reg, size);
	if (f->dev != h->dev)
		hearth_dev_unlock(f->dev);
	return v & ones(size);
}

static void config_write(struct pci_host *h, unsigned bus, unsigned devfn, uint32_t reg, uint64_t v,
			 unsigned size)
{
	struct hearth_pci_func *f = lookup(h, bus, devfn);

	if (!f)
		return;
	if (f->dev != h->dev)
		hearth_dev_lock(f->dev);
	if (size == 8) {
		pci_cfg_write(f, reg, (uint32_t)v, 4);
		pci_cfg_write(f, reg + 4, (uint32_t)(v >> 32), 4);
	} else {
		pci_cfg_write(f, reg, (uint32_t)v, size);
	}
	if (f->dev != h->dev)
		hearth_dev_unlock(f->dev);
}

/* ---- mechanism #1: ports 0xCF8-0xCFF ---- */

static uint64_t port_read(void *opaque, uint64_t off, unsigned size)
{
	struct pci_host *h = opaque;

	if (off == 0 && size == 4)
		return h->cf8;
	if (off == RCR_OFFSET && size == 1)
		return h->rcr;
	if (off < 4 || !(h->cf8 & CF8_ENABLE))
		return ones(size);
	return config_read(h, (h->cf8 >> 16) & 0xFF, (h->cf8 >> 8) & 0xFF,
			   (h->cf8 & 0xFC) + (uint32_t)(off - 4), size);
}

static void port_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct pci_host *h = opaque;

	if (off == 0 && size == 4) {
		h->cf8 = (uint32_t)v & CF8_WRITABLE;
	} else if (off == RCR_OFFSET && size == 1) {
		if ((v & RCR_RST_CPU) && !(h->rcr & RCR_RST_CPU))
			hearth_vm_request_stop(h->dev->vm, 0);
		h->rcr = (uint8_t)(v & RCR_KEPT);
	} else if (off >= 4 && (h->cf8 & CF8_ENABLE)) {
		config_write(h, (h->cf8 >> 16) & 0xFF, (h->cf8 >> 8) & 0xFF,
			     (h->cf8 & 0xFC) + (uint32_t)(off - 4), v, size);
	}
}

static const struct hearth_io_ops port_ops = {.read = port_read, .write = port_write};

/* ---- ECAM: offset = devfn << 12 | register ---- */

static uint64_t ecam_read(void *opaque, uint64_t off, unsigned size)
{
	uint32_t reg = off & 0xFFF;

	if (reg + size > PCI_CFG_EXT_SIZE)
		return ones(size);
	return config_read(opaque, 0, (unsigned)(off >> 12), reg, size);
}

static void ecam_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	uint32_t reg = off & 0xFFF;

	if (reg + size <= PCI_CFG_EXT_SIZE)
		config_write(opaque, 0, (unsigned)(off >> 12), reg, v, size);
}

static const struct hearth_io_ops ecam_ops = {.read = ecam_read, .write = ecam_write};

/* ---- the bus ---- */

struct pci_bus *pci_bus_of(struct hearth_vm *vm, bool create)
{
	if (vm->pci || !create)
		return vm->pci;
	struct hearth_cfg *cfg = cfg_new(NULL, "device 'pci0'");
	if (!cfg) {
		hearth_err("out of memory");
		return NULL;
	}
	struct hearth_dev *d = hearth_dev_create(vm, "pci-host", "pci0", cfg);
	cfg_free(cfg);
	if (!d)
		hearth_err_prefix("cannot add the PCI host bridge");
	return d ? vm->pci : NULL;
}

int pci_bus_alloc(struct pci_bus *bus, bool io, uint64_t size, uint64_t *out)
{
	/* memory BARs get whole pages, so a guest can map each one on its own */
	uint64_t align = io ? size : (size < 4096 ? 4096 : size);
	uint64_t *next = io ? &bus->io_next : &bus->mmio_next;
	uint64_t end = io ? HEARTH_PCI_IO_END : HEARTH_PCI_MMIO_END;
	uint64_t at = (*next + align - 1) & ~(align - 1);

	if (at < *next || at > end || size > end - at)
		return io ? hearth_err("the PCI I/O window %#x-%#x is full", HEARTH_PCI_IO_BASE,
				       HEARTH_PCI_IO_END - 1)
			  : hearth_err("the PCI memory window %#llx-%#llx is full",
				       HEARTH_PCI_MMIO_BASE, HEARTH_PCI_MMIO_END - 1);
	*out = at;
	*next = at + size;
	return 0;
}

int pci_bus_attach(struct pci_bus *bus, struct hearth_pci_func *f, int slot)
{
	if (slot < 0) {
		for (slot = 1; slot < HEARTH_PCI_SLOTS && bus->fn[slot]; slot++)
			;
		if (slot == HEARTH_PCI_SLOTS)
			return hearth_err("PCI bus 0 is full (%d slots)", HEARTH_PCI_SLOTS - 1);
	}
	if (slot >= HEARTH_PCI_SLOTS)
		return hearth_err("PCI slot %d does not exist", slot);
	if (bus->fn[slot])
		return hearth_err("key 'addr': PCI slot %d is taken by '%s'", slot,
				  bus->fn[slot]->dev->id);
	bus->fn[slot] = f;
	f->bus = bus;
	f->slot = (uint8_t)slot;
	return 0;
}

void pci_bus_remove(struct pci_bus *bus, struct hearth_pci_func *f)
{
	if (f->bus != bus)
		return;
	pci_func_detach(f);
	if (bus->fn[f->slot] == f)
		bus->fn[f->slot] = NULL;
}

void pci_bus_intx(struct pci_bus *bus, struct hearth_vm *vm, int gsi, bool up)
{
	unsigned i = (unsigned)gsi - HEARTH_PCI_INTX_GSI_BASE;

	if (!bus || gsi < 0 || i >= HEARTH_PCI_INTX_GSIS)
		return;
	pthread_mutex_lock(&bus->intx_lock);
	if (up && bus->intx_count[i]++ == 0)
		hearth_irq_line(vm, (unsigned)gsi, 1);
	else if (!up && bus->intx_count[i] && --bus->intx_count[i] == 0)
		hearth_irq_line(vm, (unsigned)gsi, 0);
	pthread_mutex_unlock(&bus->intx_lock);
}

int pci_mptable(struct hearth_vm *vm, struct mptable *t)
{
	struct pci_bus *bus = vm->pci;

	if (!bus)
		return 0;
	if (mptable_add_bus(t, MP_PCI_BUS, "PCI") < 0)
		return -1;
	for (unsigned s = 0; s < HEARTH_PCI_SLOTS; s++) {
		struct hearth_pci_func *f = bus->fn[s];
		if (!f || f->intx_gsi < 0)
			continue;
		struct mptable_irq e = {.type = MP_INT,
					.flags = MP_IRQ_PCI,
					.bus = MP_PCI_BUS,
					.bus_irq = (uint8_t)(s << 2 | (f->id.intx_pin - 1)),
					.pin = (uint8_t)f->intx_gsi};
		if (mptable_add_irq(t, &e) < 0)
			return -1;
	}
	return 0;
}

/* ---- the device ---- */

static void host_free(struct hearth_dev *dev)
{
	struct pci_host *h = hearth_dev_priv(dev);

	if (!h)
		return;
	for (unsigned s = 0; s < HEARTH_PCI_SLOTS; s++)
		if (h->bus.fn[s] && h->bus.fn[s] != h->self)
			pci_bus_remove(&h->bus, h->bus.fn[s]);
	hearth_pci_func_free(h->self);
	if (dev->vm->pci == &h->bus)
		dev->vm->pci = NULL;
	pthread_mutex_destroy(&h->bus.intx_lock);
	free(h);
}

static int host_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	static const struct hearth_pci_id id = {
		.vendor = HOST_VENDOR,
		.device = HOST_DEVICE,
		.subsys_vendor = HOST_VENDOR,
		.subsys = HOST_DEVICE,
		.class_code = HOST_CLASS,
	};
	struct hearth_vm *vm = dev->vm;
	struct pci_host *h;

	(void)cfg;
	if (vm->pci)
		return hearth_err("this VM has a PCI host bridge already ('%s')",
				  vm->pci->host->id);
	h = calloc(1, sizeof(*h));
	if (!h)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, h);
	h->dev = dev;
	h->bus.host = dev;
	h->bus.io_next = HEARTH_PCI_IO_BASE;
	h->bus.mmio_next = HEARTH_PCI_MMIO_BASE;
	pthread_mutex_init(&h->bus.intx_lock, NULL);
	if (hearth_hook_pio(dev, CF8_PORT, 8, &port_ops, h) < 0 ||
	    hearth_hook_mmio(dev, HEARTH_PCI_ECAM_BASE, HEARTH_PCI_ECAM_SIZE, &ecam_ops, h) < 0)
		return -1;
	h->self = hearth_pci_func_new(dev, &id);
	if (!h->self || pci_bus_attach(&h->bus, h->self, 0) < 0)
		return -1;
	h->self->plugged = true;
	vm->pci = &h->bus;
	return 0;
}

static void host_reset(struct hearth_dev *dev)
{
	struct pci_host *h = hearth_dev_priv(dev);

	h->cf8 = 0;
	h->rcr = 0;
}

static int host_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct pci_host *h = hearth_dev_priv(dev);

	if (hearth_ckpt_set_version(ck, 1) < 0 || hearth_ckpt_put_u32(ck, "cf8", h->cf8) < 0 ||
	    hearth_ckpt_put_u8(ck, "rcr", h->rcr) < 0)
		return -1;
	return hearth_pci_func_save(h->self, ck);
}

static int host_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct pci_host *h = hearth_dev_priv(dev);
	uint32_t cf8;
	uint8_t rcr;

	if (hearth_ckpt_accept_versions(ck, 1, 1) < 0 || hearth_ckpt_get_u32(ck, "cf8", &cf8) < 0 ||
	    hearth_ckpt_get_u8(ck, "rcr", &rcr) < 0 || hearth_pci_func_load(h->self, ck) < 0)
		return -1;
	h->cf8 = cf8 & CF8_WRITABLE;
	h->rcr = rcr & RCR_KEPT;
	return 0;
}

static void host_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	snprintf(buf, len,
		 "pci 00:00.0 host bridge, config at ports 0xcf8-0xcff and ECAM %#llx-%#llx; "
		 "BAR windows io %#x-%#x, mmio %#llx-%#llx",
		 HEARTH_PCI_ECAM_BASE, HEARTH_PCI_ECAM_BASE + HEARTH_PCI_ECAM_SIZE - 1,
		 HEARTH_PCI_IO_BASE, HEARTH_PCI_IO_END - 1, HEARTH_PCI_MMIO_BASE,
		 HEARTH_PCI_MMIO_END - 1);
	(void)dev;
}

HEARTH_DEVICE_CLASS(pci_host_class, .name = "pci-host",
		    .summary =
			    "PCI host bridge: bus 0, config mechanism #1 (0xcf8/0xcfc) and ECAM, "
			    "BAR windows, INTx routing (added with the first PCI device)",
		    .init = host_init, .free = host_free, .reset = host_reset, .save = host_save,
		    .load = host_load, .describe = host_describe);
