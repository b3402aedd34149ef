/*
 * The "virtio-irq" guest test: interrupts from the virtio-blk function.
 * Default: MSI-X, including per-vector and function masking with the pending
 * bit.  intx=1: INTx through the IOAPIC pin the MP table names, with the ISR
 * read deasserting the line and the command register's INTx disable bit.
 * The ring-0 stubs only count; everything is observed through irq_count[].
 */
#include "testos.h"

#define MSIX_BASE 0x40 /* entry 0: configuration, entry 1: queue 0 */
#define INTX_VECTOR 0x48
#define PCI_STATUS_INTX 0x8

/*
 * A read of sector 0, waited for without consuming it: with
 * VIRTIO_F_RING_EVENT_IDX a driver that consumed the entry (and moved
 * used_event past it) before the device looked would rightly get no
 * interrupt.  finish() consumes it afterwards.
 */
static bool start_read(struct vblk *b, void *buf)
{
	if (!tap_check(vblk_submit(b, 0, VIRTIO_BLK_T_IN, 0, buf, 512) >= 0, "could not queue"))
		return false;
	virtq_kick(&b->q);
	uint64_t end = deadline_ms(5000);
	while (!virtq_ready(&b->q))
		if (expired(end))
			return tap_check(false, "read: no completion in 5 s");
	return true;
}

static void finish(struct vblk *b)
{
	void *cookie;
	uint32_t len;
	if (tap_check(virtq_get(&b->q, &cookie, &len) && cookie, "read: lost completion"))
		tap_check(((struct vblk_req *)cookie)->status == VIRTIO_BLK_S_OK,
			  "read: status 0x%x", ((struct vblk_req *)cookie)->status);
}

/* Waits up to ms for irq_count[vec] to reach want; returns the count. */
static uint64_t wait_count(unsigned vec, uint64_t want, uint64_t ms)
{
	uint64_t end = deadline_ms(ms);
	while (irq_count[vec] < want && !expired(end))
		cpu_relax();
	return irq_count[vec];
}

static void msix_tests(struct vblk *b, void *buf)
{
	const unsigned qv = MSIX_BASE + 1;
	struct virtio_dev *vd = &b->vd;
	tap_note("MSI-X: %u vectors, queue 0 on entry %u -> vector 0x%x", vd->msix_n, b->q.vector,
		 MSIX_BASE + b->q.vector);
	if (!tap_check(b->q.vector == 1, "queue 0 did not get MSI-X entry 1"))
		return;
	uint64_t cfg0 = irq_count[MSIX_BASE], c0 = irq_count[qv];
	if (!start_read(b, buf))
		return;
	wait_count(qv, c0 + 1, 1000);
	delay_us(20000);
	tap_check(irq_count[qv] == c0 + 1, "one request: %lu interrupts on vector 0x%x, want 1",
		  irq_count[qv] - c0, qv);
	finish(b);

	/* A masked vector holds the message in the PBA until unmasked. */
	virtio_msix_mask(vd, 1, true);
	c0 = irq_count[qv];
	if (!start_read(b, buf))
		return;
	delay_us(20000);
	tap_check(irq_count[qv] == c0, "masked vector delivered %lu interrupts",
		  irq_count[qv] - c0);
	tap_check(virtio_msix_pending(vd, 1), "masked vector: pending bit not set");
	virtio_msix_mask(vd, 1, false);
	uint64_t c = wait_count(qv, c0 + 1, 1000);
	tap_check(c == c0 + 1, "unmasking a pending vector delivered %lu interrupts, want 1",
		  c - c0);
	tap_check(!virtio_msix_pending(vd, 1), "pending bit still set after delivery");
	finish(b);

	/* The function mask works the same way for every vector. */
	unsigned cap = vd->msix_cap;
	uint16_t ctrl = (uint16_t)pci_cfg_read(vd->pci, cap + 2, 2);
	pci_cfg_write(vd->pci, cap + 2, 2, ctrl | 0x4000);
	c0 = irq_count[qv];
	if (!start_read(b, buf))
		return;
	delay_us(20000);
	tap_check(irq_count[qv] == c0, "function mask: %lu interrupts delivered",
		  irq_count[qv] - c0);
	tap_check(virtio_msix_pending(vd, 1), "function mask: pending bit not set");
	pci_cfg_write(vd->pci, cap + 2, 2, ctrl & ~0x4000);
	c = wait_count(qv, c0 + 1, 1000);
	tap_check(c == c0 + 1, "clearing the function mask delivered %lu interrupts, want 1",
		  c - c0);
	finish(b);
	tap_check(irq_count[MSIX_BASE] == cfg0, "%lu configuration interrupts",
		  irq_count[MSIX_BASE] - cfg0);
	tap_note("%lu interrupts on vector 0x%x", irq_count[qv], qv);
}

static uint16_t pci_status(const struct pci_func *f)
{
	return (uint16_t)pci_cfg_read(f, 6, 2);
}

static void intx_tests(struct vblk *b, void *buf)
{
	struct virtio_dev *vd = &b->vd;
	const struct pci_func *f = vd->pci;
	uint16_t flags = 0;
	int mp_pin = mp_pci_pin(0, f->dev, f->irq_pin, &flags);
	tap_note("INTx: pin INT%c, IOAPIC pin %d (%s, MP flags 0x%x), vector 0x%x",
		 'A' + f->irq_pin - 1, vd->ioapic_pin,
		 mp_pin >= 0 ? "MP table" : "interrupt line register", flags, INTX_VECTOR);
	tap_check(mp_pin >= 0, "the MP table has no entry for 00:%02x INT%c", f->dev,
		  'A' + f->irq_pin - 1);
	virtio_isr(vd);
	for (int round = 0; round < 2; round++) {
		uint64_t c0 = irq_count[INTX_VECTOR];
		if (!start_read(b, buf))
			return;
		uint64_t c = wait_count(INTX_VECTOR, c0 + 1, 1000);
		tap_check(c == c0 + 1, "round %d: %lu interrupts, want 1", round, c - c0);
		tap_check(pci_status(f) & PCI_STATUS_INTX,
			  "round %d: PCI status interrupt bit clear while asserted", round);
		uint8_t isr = virtio_isr(vd);
		tap_check(isr & 1, "round %d: ISR 0x%x, want the queue bit", round, isr);
		tap_check(!(pci_status(f) & PCI_STATUS_INTX),
			  "round %d: PCI status interrupt bit still set after the ISR read", round);
		isr = virtio_isr(vd);
		tap_check(!isr, "round %d: second ISR read 0x%x, want 0", round, isr);
		finish(b);
	}

	/* INTx disable holds the line down; clearing it lets the interrupt through. */
	uint16_t cmd = (uint16_t)pci_cfg_read(f, 4, 2);
	pci_cfg_write(f, 4, 2, cmd | PCI_CMD_INTX_DISABLE);
	uint64_t c0 = irq_count[INTX_VECTOR];
	if (!start_read(b, buf))
		return;
	delay_us(20000);
	tap_check(irq_count[INTX_VECTOR] == c0, "INTx disabled: %lu interrupts",
		  irq_count[INTX_VECTOR] - c0);
	tap_check(pci_status(f) & PCI_STATUS_INTX,
		  "INTx disabled: status interrupt bit clear with a pending interrupt");
	pci_cfg_write(f, 4, 2, cmd & ~PCI_CMD_INTX_DISABLE);
	uint64_t c = wait_count(INTX_VECTOR, c0 + 1, 1000);
	tap_check(c == c0 + 1, "INTx enabled again: %lu interrupts, want 1", c - c0);
	tap_check(virtio_isr(vd) & 1, "INTx enabled again: ISR queue bit clear");
	finish(b);
	const struct mp_info *mp = mp_get();
	ioapic_route(mp->found && mp->nr_ioapics ? mp->ioapic_addr : IOAPIC_DEFAULT,
		     (unsigned)vd->ioapic_pin, INTX_VECTOR, lapic_id(), true);
	tap_note("%lu interrupts on vector 0x%x", irq_count[INTX_VECTOR], INTX_VECTOR);
}

void test_virtio_irq(void)
{
	static struct vblk b;
	static void *buf;
	bool intx = cmdline_get("intx") != NULL;
	if (!buf)
		buf = page_alloc(4096);
	if (!tap_check(buf, "out of memory"))
		return;
	if (!tap_check(vblk_open(&b, intx ? VIRTIO_IRQ_INTX : VIRTIO_IRQ_MSIX,
				 intx ? INTX_VECTOR : MSIX_BASE, 0),
		       "%s", b.vd.error))
		return;
	if (intx)
		intx_tests(&b, buf);
	else
		msix_tests(&b, buf);
	virtio_reset(&b.vd);
}
