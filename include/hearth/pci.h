/* PCI functions on bus 0, for device authors. A device builds its function during init:
 *
 *	f = hearth_pci_func_new(dev, &id);          -- ids, class, INTx pin
 *	hearth_pci_bar(f, 0, &bar);                 -- BARs: size, kind, io ops
 *	hearth_pci_add_cap(f, ...);                 -- capabilities (vendor-specific, ...)
 *	hearth_pci_msix_init(f, nvec, bar, ...);    -- MSI-X table and PBA inside a BAR
 *	hearth_pci_plug(f, cfg);                    -- slot ("addr" key), BAR addresses, visible
 *
 * and calls hearth_pci_func_free(f) from its free op. The first function plugged creates the
 * host bridge (class pci-host, id "pci0") unless the configuration has one.
 *
 * Firmware-less boot: hearth assigns every BAR an address and turns decoding on at plug
 * time, as a BIOS would (docs/pci.md); the guest may move BARs and toggle decoding freely.
 *
 * Locking: everything about a function belongs to its device and is guarded by its device
 * lock, which the framework holds around BAR and config callbacks. Call the functions below
 * (notify, intx, ...) with the device lock held. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/device.h"

/* Where the platform puts PCI (docs/pci.md). */
#define HEARTH_PCI_ECAM_BASE 0xE0000000ull /* memory-mapped config space, bus 0 only */
#define HEARTH_PCI_ECAM_SIZE 0x100000ull   /* 32 devices x 8 functions x 4 KiB */
#define HEARTH_PCI_IO_BASE 0xC000u	   /* I/O BARs are assigned from here ... */
#define HEARTH_PCI_IO_END 0x10000u	   /* ... up to 0xFFFF */
#define HEARTH_PCI_MMIO_BASE 0xC0000000ull /* memory BARs: the 256 MiB below the test device */
#define HEARTH_PCI_MMIO_END 0xD0000000ull
/* INTx lines of bus 0 reach IOAPIC pins (= GSIs) 16..23: slot s, pin p (1 = INTA) uses
 * 16 + (s + p - 1) % 8. The MP table publishes the same routing. */
#define HEARTH_PCI_INTX_GSI_BASE 16u
#define HEARTH_PCI_INTX_GSIS 8u

#define HEARTH_PCI_SLOTS 32
#define HEARTH_PCI_NUM_BARS 6
#define HEARTH_PCI_MSIX_MAX 2048

/* Configuration space registers and bits device authors may need. */
#define HEARTH_PCI_COMMAND 0x04
#define HEARTH_PCI_CMD_IO 0x1
#define HEARTH_PCI_CMD_MEM 0x2
#define HEARTH_PCI_CMD_MASTER 0x4
#define HEARTH_PCI_CMD_INTX_DISABLE 0x400
#define HEARTH_PCI_STATUS 0x06
#define HEARTH_PCI_STATUS_INTX 0x8
#define HEARTH_PCI_STATUS_CAPS 0x10
#define HEARTH_PCI_CAP_ID_VENDOR 0x09
#define HEARTH_PCI_CAP_ID_MSIX 0x11

struct hearth_pci_func;

struct hearth_pci_id {
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys;
	uint32_t class_code; /* base class << 16 | subclass << 8 | programming interface */
	uint8_t revision;
	uint8_t intx_pin; /* 0: no INTx, 1..4: INTA..INTD */
};

enum hearth_pci_bar_kind {
	HEARTH_PCI_BAR_IO,
	HEARTH_PCI_BAR_MEM32,
	HEARTH_PCI_BAR_MEM64, /* takes two BAR registers: idx and idx + 1 */
};

struct hearth_pci_bar {
	enum hearth_pci_bar_kind kind;
	bool prefetchable;
	/* a power of two; I/O: 4..256 bytes, memory: at least 16 bytes (4 KiB or more keeps
	 * BARs on their own pages) */
	uint64_t size;
	/* Accesses inside the BAR (offsets relative to it); MSI-X table and PBA ranges are
	 * served by the PCI layer and never reach these. NULL read: zeros. */
	const struct hearth_io_ops *ops;
	void *opaque;
};

/* Optional hooks on configuration space, for registers with behaviour (a capability that
 * is a window into a BAR, ...). offset/size describe the guest's access (size 1, 2 or 4). */
struct hearth_pci_config_ops {
	/* after the stored bytes were read: may replace *value */
	void (*read)(void *opaque, uint32_t offset, unsigned size, uint32_t *value);
	/* after the writable bits of the access were stored */
	void (*write)(void *opaque, uint32_t offset, uint32_t value, unsigned size);
};

/* NULL with hearth_err set on bad ids (vendor 0xFFFF or 0, pin above 4) or no memory. */
struct hearth_pci_func *hearth_pci_func_new(struct hearth_dev *dev, const struct hearth_pci_id *id);
/* Unplugs (BARs unmapped, INTx released) and frees. NULL is ignored. */
void hearth_pci_func_free(struct hearth_pci_func *f);

/* Declare BAR idx before plugging. -1 with hearth_err on a bad index, size or kind. */
int hearth_pci_bar(struct hearth_pci_func *f, unsigned idx, const struct hearth_pci_bar *bar);

/* Append a capability: id, then len bytes that follow the two header bytes (id, next);
 * wmask (NULL: read-only) says which bits of those bytes the guest may write. Returns the
 * capability's offset in configuration space, or -1 when it does not fit. */
int hearth_pci_add_cap(struct hearth_pci_func *f, uint8_t cap_id, const void *body, size_t len,
		       const void *wmask);

/* MSI-X with nvec vectors (1..2048): table at table_off and PBA at pba_off inside BAR bar
 * (declared already, memory, both 8-byte aligned and inside it, not overlapping). Returns
 * the capability's offset or -1. All vectors start masked, MSI-X disabled. */
int hearth_pci_msix_init(struct hearth_pci_func *f, unsigned nvec, unsigned bar, uint32_t table_off,
			 uint32_t pba_off);

void hearth_pci_set_config_ops(struct hearth_pci_func *f, const struct hearth_pci_config_ops *ops,
			       void *opaque);
/* The stored configuration bytes (little-endian, size 1, 2 or 4, inside the first 256
 * bytes), for devices that keep state in a capability; set ignores the write mask. */
uint32_t hearth_pci_cfg_get(const struct hearth_pci_func *f, uint32_t offset, unsigned size);
void hearth_pci_cfg_set(struct hearth_pci_func *f, uint32_t offset, unsigned size, uint32_t value);
/* A guest-style access to BAR bar at offset, as if it came through the bus (MSI-X ranges
 * included), for configuration windows into a BAR. Reads of an absent BAR give all ones. */
uint64_t hearth_pci_bar_read(struct hearth_pci_func *f, unsigned bar, uint64_t offset,
			     unsigned size);
void hearth_pci_bar_write(struct hearth_pci_func *f, unsigned bar, uint64_t offset, uint64_t value,
			  unsigned size);

/* Make the function visible: slot from the "addr" key of cfg (1..31, default the first
 * free), BAR addresses assigned, decoding on. -1 with hearth_err (slot taken, windows full). */
int hearth_pci_plug(struct hearth_pci_func *f, struct hearth_cfg *cfg);

/* An eventfd the platform signals when the guest writes len bytes (1, 2, 4, 8) at offset
 * of memory or I/O BAR bar, without a vCPU exit (KVM ioeventfd). It follows the BAR: moved
 * with it, dropped while decoding is off. Writes the platform does not catch still reach the
 * BAR's ops. 0, or -1 with hearth_err. */
int hearth_pci_bar_ioeventfd(struct hearth_pci_func *f, unsigned bar, uint64_t offset, unsigned len,
			     int fd);

/* MSI-X: send vector (or set its pending bit while it or the function is masked). Returns
 * 0, or -1 when MSI-X is disabled (use INTx) or vector is out of range. */
int hearth_pci_msix_notify(struct hearth_pci_func *f, unsigned vector);
bool hearth_pci_msix_enabled(const struct hearth_pci_func *f);
unsigned hearth_pci_msix_count(const struct hearth_pci_func *f);

/* Level of the function's INTx pin. The line is driven only while INTx is not disabled in
 * the command register and MSI-X is off; lines shared by several functions are wired-OR. */
void hearth_pci_intx(struct hearth_pci_func *f, int level);

/* Back to the state after plug: BARs at their assigned addresses, decoding on, MSI-X off
 * and masked, no pending bits, INTx low (machine reset). */
void hearth_pci_func_reset(struct hearth_pci_func *f);

/* Checkpoints, from the owning device's save and load ops: configuration space, INTx request,
 * MSI-X table and pending bits as fields "pci.*" of its context. Load takes only the bits
 * the guest can write (refusing a function whose read-only bits differ), then maps BARs,
 * routes vectors and drives INTx as the registers say. */
struct hearth_ckpt;
int hearth_pci_func_save(struct hearth_pci_func *f, struct hearth_ckpt *ck);
int hearth_pci_func_load(struct hearth_pci_func *f, struct hearth_ckpt *ck);

/* Where things are, for devices and tests. */
unsigned hearth_pci_slot(const struct hearth_pci_func *f);
/* Current base of BAR idx while it is mapped, else 0. */
uint64_t hearth_pci_bar_addr(const struct hearth_pci_func *f, unsigned idx);
/* GSI of the INTx pin, or -1 without one. */
int hearth_pci_intx_gsi(const struct hearth_pci_func *f);
/* "00:03.0 1af4:1044 ..." for a class's describe op. */
void hearth_pci_describe(const struct hearth_pci_func *f, char *buf, size_t len);
