/*
 * Modern virtio over PCI (virtio 1.2, section 4.1) and split virtqueues
 * (section 2.7), in ring 3.  Register accesses are VM exits, the rings are
 * plain memory: the driver touches the common configuration only while
 * setting up, publishes requests in batches and notifies the device once per
 * batch (and not at all when VIRTIO_F_RING_EVENT_IDX says the device is still
 * looking).  Completions are found by polling the used ring; interrupts, when
 * enabled, are only counted by the ring-0 stubs.
 */
#include "testos.h"

/* common configuration structure */
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0C
#define C_MSIX 0x10
#define C_NUMQ 0x12
#define C_STATUS 0x14
#define C_CFGGEN 0x15
#define C_QSELECT 0x16
#define C_QSIZE 0x18
#define C_QMSIX 0x1A
#define C_QENABLE 0x1C
#define C_QNOFF 0x1E
#define C_QDESC 0x20
#define C_QDRIVER 0x28
#define C_QDEVICE 0x30

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 64
#define S_FAILED 128

#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4

#define D_NEXT 1
#define D_WRITE 2
#define D_INDIRECT 4
#define AVAIL_NO_INTERRUPT 1
#define USED_NO_NOTIFY 1

#define MSIX_ENABLE 0x8000
#define MSIX_FMASK 0x4000

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

/* Orders our avail-index store before the load of the device's avail_event. */
static inline void mb(void)
{
	__asm__ volatile("mfence" ::: "memory");
}

static void fail(struct virtio_dev *vd, const char *why)
{
	if (!vd->error)
		vd->error = why;
}

bool virtio_open(struct virtio_dev *vd, const struct pci_func *f)
{
	memset(vd, 0, sizeof(*vd));
	vd->pci = f;
	vd->ioapic_pin = -1;
	if (!f) {
		fail(vd, "no such PCI function");
		return false;
	}
	for (unsigned p = pci_cap_next(f, 0, PCI_CAP_VENDOR); p;
	     p = pci_cap_next(f, p, PCI_CAP_VENDOR)) {
		uint32_t w0 = pci_cfg_read(f, p, 4);
		unsigned type = w0 >> 24, bar = pci_cfg_read(f, p + 4, 1);
		uint32_t off = pci_cfg_read(f, p + 8, 4), len = pci_cfg_read(f, p + 12, 4);
		if (type < CAP_COMMON || type > CAP_DEVICE || bar > 5)
			continue;
		const struct pci_bar *b = &f->bar[bar];
		if (b->io || !b->size || (uint64_t)off + len > b->size)
			continue; /* only memory BARs are supported; keep looking */
		uintptr_t at = b->base + off;
		if (type == CAP_COMMON && !vd->common)
			vd->common = at;
		else if (type == CAP_NOTIFY && !vd->notify_base) {
			vd->notify_base = at;
			vd->notify_mul = pci_cfg_read(f, p + 16, 4);
		} else if (type == CAP_ISR && !vd->isr)
			vd->isr = at;
		else if (type == CAP_DEVICE && !vd->devcfg) {
			vd->devcfg = at;
			vd->devcfg_len = len;
		}
	}
	unsigned m = pci_cap_next(f, 0, PCI_CAP_MSIX);
	if (m) {
		uint32_t ctrl = pci_cfg_read(f, m + 2, 2), t = pci_cfg_read(f, m + 4, 4),
			 pba = pci_cfg_read(f, m + 8, 4);
		const struct pci_bar *tb = &f->bar[t & 7], *pb = &f->bar[pba & 7];
		if ((t & 7) < 6 && (pba & 7) < 6 && tb->size && !tb->io && pb->size && !pb->io) {
			vd->msix_cap = m;
			vd->msix_n = (ctrl & 0x7FF) + 1;
			vd->msix_table = tb->base + (t & ~7u);
			vd->msix_pba = pb->base + (pba & ~7u);
		}
	}
	if (!vd->common || !vd->notify_base || !vd->isr) {
		fail(vd, "virtio capabilities missing (common, notify or ISR)");
		return false;
	}
	pci_enable(f, PCI_CMD_MEM | PCI_CMD_MASTER);
	return true;
}

uint8_t virtio_status(const struct virtio_dev *vd)
{
	return mmio_read8(vd->common + C_STATUS);
}

static void set_status(struct virtio_dev *vd, uint8_t bits)
{
	mmio_write8(vd->common + C_STATUS, virtio_status(vd) | bits);
}

uint8_t virtio_isr(const struct virtio_dev *vd)
{
	return mmio_read8(vd->isr);
}

uint16_t virtio_num_queues(const struct virtio_dev *vd)
{
	return mmio_read16(vd->common + C_NUMQ);
}

bool virtio_reset(struct virtio_dev *vd)
{
	mmio_write8(vd->common + C_STATUS, 0);
	uint64_t end = deadline_ms(1000);
	while (virtio_status(vd))
		if (expired(end)) {
			fail(vd, "device status does not read 0 after reset");
			return false;
		}
	return true;
}

/* Device configuration, read until config_generation is stable (4.1.4.3). */
uint64_t virtio_cfg_read(const struct virtio_dev *vd, unsigned off, unsigned size)
{
	if (!vd->devcfg || off + size > vd->devcfg_len)
		return 0;
	uint64_t v;
	uint8_t gen;
	do {
		gen = mmio_read8(vd->common + C_CFGGEN);
		if (size == 1)
			v = mmio_read8(vd->devcfg + off);
		else if (size == 2)
			v = mmio_read16(vd->devcfg + off);
		else if (size == 4)
			v = mmio_read32(vd->devcfg + off);
		else
			v = mmio_read32(vd->devcfg + off) |
			    (uint64_t)mmio_read32(vd->devcfg + off + 4) << 32;
	} while (gen != mmio_read8(vd->common + C_CFGGEN));
	return v;
}

/* ---- interrupts ---- */

static void msix_set(struct virtio_dev *vd, bool on)
{
	uint16_t ctrl = (uint16_t)pci_cfg_read(vd->pci, vd->msix_cap + 2, 2);
	uint16_t want = on ? (ctrl | MSIX_ENABLE) & ~MSIX_FMASK : ctrl & ~MSIX_ENABLE;
	if (want != ctrl)
		pci_cfg_write(vd->pci, vd->msix_cap + 2, 2, want);
}

void virtio_msix_mask(const struct virtio_dev *vd, unsigned entry, bool masked)
{
	mmio_write32(vd->msix_table + 16 * entry + 12, masked ? 1 : 0);
}

bool virtio_msix_pending(const struct virtio_dev *vd, unsigned entry)
{
	return mmio_read32(vd->msix_pba + 4 * (entry / 32)) & (1u << (entry % 32));
}

/* Entry i of the table raises vector_base + i on this CPU (fixed delivery,
 * physical destination, edge). */
static bool setup_msix(struct virtio_dev *vd)
{
	if (!vd->msix_cap) {
		fail(vd, "no MSI-X capability");
		return false;
	}
	uint32_t dest = lapic_id();
	for (unsigned i = 0; i < vd->msix_n && vd->vector_base + i < 0xF0; i++) {
		uintptr_t e = vd->msix_table + 16 * i;
		mmio_write32(e + 0, LAPIC_BASE | dest << 12);
		mmio_write32(e + 4, 0);
		mmio_write32(e + 8, vd->vector_base + i);
		mmio_write32(e + 12, 0);
	}
	msix_set(vd, true);
	return true;
}

/* INTx: the pin the MP table gives for this device (else the interrupt line
 * firmware wrote), routed edge-triggered.  The line stays up until ring 3 reads
 * the ISR, and a level-triggered entry would re-interrupt ring 3 out of
 * existence before it got there; with edge triggering each assertion counts
 * once. */
static bool setup_intx(struct virtio_dev *vd)
{
	const struct pci_func *f = vd->pci;
	const struct mp_info *mp = mp_get();
	uint32_t ioapic = mp->found && mp->nr_ioapics ? mp->ioapic_addr : IOAPIC_DEFAULT;
	if (vd->msix_cap)
		msix_set(vd, false);
	if (!f->irq_pin) {
		fail(vd, "function has no INTx pin");
		return false;
	}
	vd->ioapic_pin = mp_pci_pin(0, f->dev, f->irq_pin, NULL);
	if (vd->ioapic_pin < 0 && f->irq_line && f->irq_line != 0xFF)
		vd->ioapic_pin = f->irq_line;
	unsigned pins = ((ioapic_read(ioapic, 1) >> 16) & 0xFF) + 1;
	if (vd->ioapic_pin < 0 || (unsigned)vd->ioapic_pin >= pins) {
		fail(vd, "no IOAPIC pin for the function's INTx line");
		return false;
	}
	uint16_t cmd = (uint16_t)pci_cfg_read(f, 4, 2);
	if (cmd & PCI_CMD_INTX_DISABLE)
		pci_cfg_write(f, 4, 2, cmd & ~PCI_CMD_INTX_DISABLE);
	ioapic_route(ioapic, (unsigned)vd->ioapic_pin, vd->vector_base, lapic_id(), false);
	return true;
}

static bool setup_irq(struct virtio_dev *vd)
{
	if (vd->irq != VIRTIO_IRQ_NONE)
		lapic_enable();
	if (vd->irq == VIRTIO_IRQ_MSIX)
		return setup_msix(vd);
	if (vd->irq == VIRTIO_IRQ_INTX)
		return setup_intx(vd);
	if (vd->msix_cap)
		msix_set(vd, false);
	pci_enable(vd->pci, PCI_CMD_INTX_DISABLE);
	return true;
}

/* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (3.1.1); queues come next,
 * then virtio_driver_ok(). */
bool virtio_start(struct virtio_dev *vd, uint64_t wanted, enum virtio_irq irq, uint8_t vector_base)
{
	vd->error = NULL;
	vd->irq = irq;
	vd->vector_base = vector_base;
	if (!virtio_reset(vd))
		return false;
	set_status(vd, S_ACK);
	set_status(vd, S_DRIVER);
	mmio_write32(vd->common + C_DFSELECT, 0);
	uint64_t lo = mmio_read32(vd->common + C_DF);
	mmio_write32(vd->common + C_DFSELECT, 1);
	vd->offered = lo | (uint64_t)mmio_read32(vd->common + C_DF) << 32;
	if (!(vd->offered & VIRTIO_F_VERSION_1)) {
		fail(vd, "device does not offer VIRTIO_F_VERSION_1");
		set_status(vd, S_FAILED);
		return false;
	}
	vd->features = vd->offered & (wanted | VIRTIO_F_VERSION_1);
	mmio_write32(vd->common + C_GFSELECT, 0);
	mmio_write32(vd->common + C_GF, (uint32_t)vd->features);
	mmio_write32(vd->common + C_GFSELECT, 1);
	mmio_write32(vd->common + C_GF, (uint32_t)(vd->features >> 32));
	set_status(vd, S_FEATURES_OK);
	if (!(virtio_status(vd) & S_FEATURES_OK)) {
		fail(vd, "device refused our features (FEATURES_OK cleared)");
		set_status(vd, S_FAILED);
		return false;
	}
	if (!setup_irq(vd)) {
		set_status(vd, S_FAILED);
		return false;
	}
	if (irq == VIRTIO_IRQ_MSIX) {
		mmio_write16(vd->common + C_MSIX, 0);
		if (mmio_read16(vd->common + C_MSIX) != 0) {
			fail(vd, "config_msix_vector did not take entry 0");
			set_status(vd, S_FAILED);
			return false;
		}
	}
	return true;
}

/* After a reset: does the device accept exactly these features?  Leaves the
 * device needing a reset. */
bool virtio_try_features(struct virtio_dev *vd, uint64_t features)
{
	if (!virtio_reset(vd))
		return false;
	set_status(vd, S_ACK);
	set_status(vd, S_DRIVER);
	mmio_write32(vd->common + C_GFSELECT, 0);
	mmio_write32(vd->common + C_GF, (uint32_t)features);
	mmio_write32(vd->common + C_GFSELECT, 1);
	mmio_write32(vd->common + C_GF, (uint32_t)(features >> 32));
	set_status(vd, S_FEATURES_OK);
	return virtio_status(vd) & S_FEATURES_OK;
}

bool virtio_driver_ok(struct virtio_dev *vd)
{
	set_status(vd, S_DRIVER_OK);
	uint8_t s = virtio_status(vd);
	if ((s & (S_NEEDS_RESET | S_DRIVER_OK)) != S_DRIVER_OK) {
		fail(vd, "DRIVER_OK not accepted or DEVICE_NEEDS_RESET set");
		return false;
	}
	return true;
}

/* ---- split virtqueues ---- */

static volatile uint16_t *used_idx(const struct virtq *q)
{
	return (volatile uint16_t *)(q->used + 2);
}

static volatile uint16_t *avail_event(const struct virtq *q)
{
	return (volatile uint16_t *)(q->used + 4 + 8 * q->size);
}

bool virtq_setup(struct virtio_dev *vd, struct virtq *q, uint16_t index, uint16_t max_size)
{
	mmio_write16(vd->common + C_QSELECT, index);
	uint16_t dev_max = mmio_read16(vd->common + C_QSIZE);
	if (!dev_max) {
		fail(vd, "queue not available (size 0)");
		return false;
	}
	uint16_t n = 1;
	while (n * 2 <= dev_max && n * 2 <= max_size && n * 2 <= VQ_MAX)
		n *= 2;
	if (n != dev_max)
		mmio_write16(vd->common + C_QSIZE, n);

	size_t used_off = (16u * n + 6 + 2u * n + 4095) & ~4095u;
	size_t len = used_off + 6 + 8u * n;
	if (!q->mem || q->mem_len < len) {
		q->mem = page_alloc(len);
		q->mem_len = len;
	} else {
		memset(q->mem, 0, q->mem_len);
	}
	if (!q->mem) {
		fail(vd, "out of memory for a virtqueue");
		return false;
	}
	void *mem = q->mem;
	size_t mem_len = q->mem_len;
	memset(q, 0, sizeof(*q));
	q->mem = mem;
	q->mem_len = mem_len;
	q->vd = vd;
	q->index = index;
	q->size = n;
	q->nfree = n;
	q->desc = mem;
	q->avail = (volatile uint16_t *)((uint8_t *)mem + 16u * n);
	q->used = (volatile uint8_t *)mem + used_off;
	q->event_idx = vd->features & VIRTIO_F_EVENT_IDX;
	for (uint16_t i = 0; i < n; i++)
		q->desc[i].next = i + 1;

	uintptr_t c = vd->common;
	uint64_t d = (uintptr_t)q->desc, a = (uintptr_t)q->avail, u = (uintptr_t)q->used;
	mmio_write32(c + C_QDESC, (uint32_t)d);
	mmio_write32(c + C_QDESC + 4, (uint32_t)(d >> 32));
	mmio_write32(c + C_QDRIVER, (uint32_t)a);
	mmio_write32(c + C_QDRIVER + 4, (uint32_t)(a >> 32));
	mmio_write32(c + C_QDEVICE, (uint32_t)u);
	mmio_write32(c + C_QDEVICE + 4, (uint32_t)(u >> 32));
	q->vector = VIRTIO_NO_VECTOR;
	if (vd->irq == VIRTIO_IRQ_MSIX) {
		/* entry 0 is the configuration vector; queues share the last one
		 * when the table is short */
		q->vector = (uint16_t)(1u + index < vd->msix_n ? 1u + index : vd->msix_n - 1);
		mmio_write16(c + C_QMSIX, q->vector);
		if (mmio_read16(c + C_QMSIX) != q->vector) {
			fail(vd, "queue_msix_vector not accepted");
			return false;
		}
	}
	uint16_t noff = mmio_read16(c + C_QNOFF);
	q->notify = vd->notify_base + (uintptr_t)noff * vd->notify_mul;
	mmio_write16(c + C_QENABLE, 1);
	return true;
}

/* Chains nout device-readable then nin device-writable segments; the caller
 * publishes with virtq_kick().  Returns the head, or -1 when the ring is full. */
int virtq_add(struct virtq *q, const struct vq_seg *segs, unsigned nout, unsigned nin, void *cookie)
{
	unsigned total = nout + nin;
	if (!total || total > q->nfree)
		return -1;
	uint16_t head = q->free_head, i = head, last = head;
	for (unsigned k = 0; k < total; k++) {
		volatile struct vq_desc *d = &q->desc[i];
		d->addr = (uintptr_t)segs[k].addr;
		d->len = segs[k].len;
		d->flags = (k + 1 < total ? D_NEXT : 0) | (k >= nout ? D_WRITE : 0);
		last = i;
		i = d->next;
	}
	q->free_head = q->desc[last].next;
	q->nfree -= total;
	q->cookie[head] = cookie;
	q->chain_len[head] = total;
	q->avail[2 + q->avail_idx % q->size] = head;
	q->avail_idx++;
	return head;
}

/* The same chain as an indirect table (2.7.5.3): one ring descriptor pointing
 * at table, which the caller keeps until the request completes. */
int virtq_add_indirect(struct virtq *q, const struct vq_seg *segs, unsigned nout, unsigned nin,
		       void *cookie, struct vq_desc *table)
{
	unsigned total = nout + nin;
	if (!total || !q->nfree)
		return -1;
	for (unsigned k = 0; k < total; k++) {
		table[k].addr = (uintptr_t)segs[k].addr;
		table[k].len = segs[k].len;
		table[k].flags = (k + 1 < total ? D_NEXT : 0) | (k >= nout ? D_WRITE : 0);
		table[k].next = (uint16_t)(k + 1);
	}
	struct vq_seg one = {table, 16 * total};
	int head = virtq_add(q, &one, 1, 0, cookie);
	if (head >= 0)
		q->desc[head].flags = D_INDIRECT;
	return head;
}

/* vring_need_event (2.7.10): did the device ask to hear about index event? */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

void virtq_kick(struct virtq *q)
{
	uint16_t old = q->avail[1];
	if (old == q->avail_idx)
		return;
	barrier(); /* descriptors and ring entries before the index (x86 keeps store order) */
	q->avail[1] = q->avail_idx;
	mb();
	q->kicks++;
	bool notify = q->event_idx ? need_event(*avail_event(q), q->avail_idx, old)
				   : !(*(volatile uint16_t *)q->used & USED_NO_NOTIFY);
	if (notify) {
		q->notifies++;
		mmio_write16(q->notify, q->index);
	}
}

static void update_used_event(struct virtq *q)
{
	if (q->event_idx)
		q->avail[2 + q->size] = q->quiet ? (uint16_t)(q->last_used + 0x8000) : q->last_used;
}

void virtq_quiet(struct virtq *q)
{
	q->quiet = true;
	q->avail[0] = AVAIL_NO_INTERRUPT;
	update_used_event(q);
}

bool virtq_ready(const struct virtq *q)
{
	return *used_idx(q) != q->last_used;
}

bool virtq_get(struct virtq *q, void **cookie, uint32_t *len)
{
	if (*used_idx(q) == q->last_used)
		return false;
	barrier(); /* the entry after the index (x86 keeps load order) */
	const volatile uint32_t *e =
		(const volatile uint32_t *)(q->used + 4 + 8 * (q->last_used % q->size));
	uint32_t id = e[0];
	q->last_used++;
	update_used_event(q);
	if (id >= q->size || !q->chain_len[id]) {
		fail(q->vd, "device returned a descriptor id that is not a chain head");
		*cookie = NULL;
		*len = 0;
		return true;
	}
	*cookie = q->cookie[id];
	*len = e[1];
	uint16_t last = (uint16_t)id;
	for (unsigned k = 1; k < q->chain_len[id]; k++)
		last = q->desc[last].next;
	q->desc[last].next = q->free_head;
	q->free_head = (uint16_t)id;
	q->nfree += q->chain_len[id];
	q->chain_len[id] = 0;
	return true;
}

/* Sleeps in ring 0 (ud2 UD_WAIT) until the queue's interrupt, unless a used
 * entry is already there.  The device only interrupts past used_event, which
 * virtq_get() wrote: the fence orders that store before the index load. */
void virtq_idle(struct virtq *q)
{
	const struct virtio_dev *vd = q->vd;
	unsigned vec = vd->irq == VIRTIO_IRQ_MSIX ? vd->vector_base + q->vector : vd->vector_base;
	uint64_t seen = irq_count[vec];
	mb();
	if (virtq_ready(q) || vd->irq == VIRTIO_IRQ_NONE)
		return;
	__asm__ volatile("ud2" : : "D"(UD_WAIT), "c"(&irq_count[vec]), "a"(seen) : "memory");
}

bool virtq_wait(struct virtq *q, void **cookie, uint32_t *len, uint64_t ms)
{
	uint64_t end = deadline_ms(ms);
	while (!virtq_get(q, cookie, len))
		if (expired(end))
			return false;
		else
			cpu_relax();
	return true;
}
