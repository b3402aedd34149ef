/* Checkpoints of a PCI function, for the save and load ops of the device that owns it: the
 * configuration space, the INTx request and the MSI-X table with its pending bits. Only bits
 * the guest can write are taken from the checkpoint; the rest (IDs, BAR sizes, capabilities)
 * must already be what this hearth built from the saved configuration, or the load is
 * refused, so a checkpoint never reshapes a function. */
#include <stdlib.h>
#include <string.h>

#include "bus/pci_internal.h"
#include "dev/machine.h"
#include "hearth/checkpoint.h"

#define REG_STATUS 0x06 /* two bytes of state the device sets itself */

int hearth_pci_func_save(struct hearth_pci_func *f, struct hearth_ckpt *ck)
{
	if (hearth_ckpt_put_bytes(ck, "pci.cfg", f->cfg, sizeof(f->cfg)) < 0 ||
	    hearth_ckpt_put_bool(ck, "pci.intx", f->intx_req) < 0)
		return -1;
	if (!f->msix)
		return 0;
	unsigned n = msix_nvec(f->msix);
	uint8_t *table = malloc(n * MSIX_ENTRY_SIZE + n);
	if (!table)
		return hearth_err("out of memory");
	msix_get_table(f->msix, table, table + n * MSIX_ENTRY_SIZE);
	int ret = hearth_ckpt_put_bytes(ck, "pci.msix.table", table, n * MSIX_ENTRY_SIZE) < 0 ||
				  hearth_ckpt_put_bytes(ck, "pci.msix.pending",
							table + n * MSIX_ENTRY_SIZE, n) < 0
			  ? -1
			  : 0;
	free(table);
	return ret;
}

int hearth_pci_func_load(struct hearth_pci_func *f, struct hearth_ckpt *ck)
{
	uint8_t cfg[PCI_CFG_SIZE];
	bool intx;

	if (hearth_ckpt_get_bytes(ck, "pci.cfg", cfg, sizeof(cfg), NULL) < 0 ||
	    hearth_ckpt_get_bool(ck, "pci.intx", &intx) < 0)
		return -1;
	for (unsigned i = 0; i < PCI_CFG_SIZE; i++) {
		if (i == REG_STATUS || i == REG_STATUS + 1)
			continue;
		if ((cfg[i] ^ f->cfg[i]) & ~f->wmask[i])
			return hearth_err("checkpoint context '%s': key 'pci.cfg': read-only byte "
					  "%#x is %#x, this function has %#x (a device of another "
					  "kind or configuration)",
					  hearth_ckpt_name(ck), i, cfg[i], f->cfg[i]);
	}
	if (f->msix) {
		unsigned n = msix_nvec(f->msix);
		uint8_t *table = malloc(n * MSIX_ENTRY_SIZE + n);
		if (!table)
			return hearth_err("out of memory");
		if (hearth_ckpt_get_bytes(ck, "pci.msix.table", table, n * MSIX_ENTRY_SIZE, NULL) <
			    0 ||
		    hearth_ckpt_get_bytes(ck, "pci.msix.pending", table + n * MSIX_ENTRY_SIZE, n,
					  NULL) < 0) {
			free(table);
			return -1;
		}
		msix_set_table(f->msix, table, table + n * MSIX_ENTRY_SIZE);
		free(table);
	}
	for (unsigned i = 0; i < PCI_CFG_SIZE; i++)
		f->cfg[i] = (uint8_t)((f->cfg[i] & ~f->wmask[i]) | (cfg[i] & f->wmask[i]));
	f->cfg[REG_STATUS] = cfg[REG_STATUS];
	f->cfg[REG_STATUS + 1] = cfg[REG_STATUS + 1];
	f->intx_req = intx;
	pci_func_refresh(f);
	return 0;
}
