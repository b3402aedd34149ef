/* What the PCI core (pci.c), the host bridge (pci_host.c) and MSI-X (msix.c) share. Device
 * authors use hearth/pci.h only. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hearth/pci.h"

struct hearth_vm;
struct mptable;
struct msix;

#define PCI_CFG_SIZE 256 /* conventional space; 256..4095 (ECAM only) reads as zero */
#define PCI_CFG_EXT_SIZE 4096
#define PCI_CAP_START 0x40

struct pci_bar_state {
	struct hearth_pci_func *f;
	unsigned idx;
	bool present;
	enum hearth_pci_bar_kind kind;
	bool prefetchable;
	uint64_t size;
	const struct hearth_io_ops *ops;
	void *opaque;
	uint64_t assigned; /* the address plug gave it, restored on reset */
	bool mapped;	   /* hooked on its bus at base */
	uint64_t base;
	int conflict_logged;
};

struct pci_ioeventfd {
	unsigned bar;
	uint64_t offset;
	unsigned len;
	int fd;
	bool assigned; /* registered with the platform at `at` */
	bool pio;
	uint64_t at;
};

struct hearth_pci_func {
	struct hearth_dev *dev;
	struct pci_bus *bus; /* NULL until plugged, and after the host bridge went away */
	struct hearth_pci_id id;
	uint8_t slot;
	bool plugged;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];
	unsigned cap_end;  /* next free byte for a capability */
	unsigned cap_last; /* offset of the last capability, 0 when none */
	struct pci_bar_state bar[HEARTH_PCI_NUM_BARS];
	struct msix *msix;
	unsigned msix_cap, msix_bar;
	uint32_t msix_table_off, msix_pba_off;
	const struct hearth_pci_config_ops *cops;
	void *copaque;
	struct pci_ioeventfd *iofds;
	unsigned niofd;
	int intx_gsi;  /* -1 without an INTx pin */
	bool intx_req; /* what the device asks for */
	bool intx_out; /* what the function drives onto its line */
	int ioeventfd_logged;
};

/* The VM's bus 0, owned by the pci-host device. The function table is changed with the
 * host's device lock held, which config accesses hold too; the INTx counts have their own
 * lock because functions drive their lines holding only their own device lock. */
struct pci_bus {
	struct hearth_dev *host;
	struct hearth_pci_func *fn[HEARTH_PCI_SLOTS];
	uint64_t io_next, mmio_next; /* BAR allocation cursors */
	pthread_mutex_t intx_lock;
	unsigned intx_count[HEARTH_PCI_INTX_GSIS];
};

/* Configuration access to one function at any offset below 4096 and size 1..4 (the host
 * splits wider ones); the caller holds the function's device lock. */
uint32_t pci_cfg_read(struct hearth_pci_func *f, uint32_t off, unsigned size);
void pci_cfg_write(struct hearth_pci_func *f, uint32_t off, uint32_t value, unsigned size);
/* Map BARs, route MSI-X and drive INTx as the restored registers say (checkpoint load). */
void pci_func_refresh(struct hearth_pci_func *f);
/* The host bridge is going away: forget the bus (the function's own hooks stay its own). */
void pci_func_detach(struct hearth_pci_func *f);

/* Host bridge (pci_host.c). */
struct pci_bus *pci_bus_of(struct hearth_vm *vm, bool create);
int pci_bus_alloc(struct pci_bus *bus, bool io, uint64_t size, uint64_t *out);
int pci_bus_attach(struct pci_bus *bus, struct hearth_pci_func *f, int slot);
void pci_bus_remove(struct pci_bus *bus, struct hearth_pci_func *f);
/* Drive a shared INTx GSI up or down by one function. */
void pci_bus_intx(struct pci_bus *bus, struct hearth_vm *vm, int gsi, bool up);
/* Publish bus 0 and each function's INTx routing in an MP table under construction. */
int pci_mptable(struct hearth_vm *vm, struct mptable *t);

/* MSI-X state of one function (msix.c); every call under the function's device lock. */
struct msix *msix_new(struct hearth_vm *vm, const char *who, unsigned nvec);
void msix_free(struct msix *m);
void msix_reset(struct msix *m);
uint64_t msix_table_read(struct msix *m, uint64_t off, unsigned size);
void msix_table_write(struct msix *m, uint64_t off, uint64_t value, unsigned size);
uint64_t msix_pba_read(struct msix *m, uint64_t off, unsigned size);
/* The capability's enable and function-mask bits changed. */
void msix_control(struct msix *m, bool enabled, bool masked);
int msix_notify(struct msix *m, unsigned vector);
bool msix_is_enabled(const struct msix *m);
/* Checkpoints: nvec entries of 16 bytes and nvec pending flags (0 or 1). Setting keeps the
 * read-only bits and leaves routing to msix_control. */
#define MSIX_ENTRY_SIZE 16
void msix_get_table(const struct msix *m, uint8_t *table, uint8_t *pending);
void msix_set_table(struct msix *m, const uint8_t *table, const uint8_t *pending);
unsigned msix_nvec(const struct msix *m);
