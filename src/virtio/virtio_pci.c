/* The virtio 1.2 PCI transport, modern interface only (section 4.1). One 32-bit memory BAR
 * holds every structure, each on its own page:
 *
 *	0x0000  common configuration      (cap type 1)
 *	0x1000  ISR status                (cap type 3)
 *	0x2000  device configuration      (cap type 4, when the device has any)
 *	  ...   notifications, 4 bytes per queue (cap type 2, notify_off_multiplier 4)
 *	  ...   MSI-X table, then PBA     (one vector per queue plus one for configuration)
 *
 * plus the PCI configuration access capability (type 5). Queue notifications are eventfds:
 * KVM signals them from an ioeventfd on the queue's notify address without a vCPU exit, and
 * a notify write that KVM did not catch (another width) signals the same eventfd. Either way
 * the device sees the kick on the event-loop thread, never on a vCPU.
 *
 * Everything the driver writes is checked: a feature set that was not offered leaves
 * FEATURES_OK clear, queue registers of an unknown or live queue are ignored, and input no
 * driver may give (a queue size that is not a power of two, enabling a queue whose rings lie
 * outside RAM) sets DEVICE_NEEDS_RESET, logged once per device (a driver that resets and
 * repeats cannot flood the log). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dev/machine.h"
#include "hearth/loop.h"
#include "hearth/pci.h"
#include "virtio/virtio_dev.h"
#include "virtio/virtio_pci.h"

#define BAR 0
#define PAGE 0x1000u

#define STATUS_ACK 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define STATUS_NEEDS_RESET 64
#define STATUS_FAILED 128

#define ISR_QUEUE 1
#define ISR_CONFIG 2

#define NOTIFY_MULT 4
#define MAX_QUEUES 1024 /* an eventfd each */

/* Common configuration (4.1.4.3) */
enum {
	CC_DFSELECT = 0x00,
	CC_DF = 0x04,
	CC_GFSELECT = 0x08,
	CC_GF = 0x0C,
	CC_MSIX = 0x10,
	CC_NUMQ = 0x12,
	CC_STATUS = 0x14,
	CC_CFGGEN = 0x15,
	CC_Q_SELECT = 0x16,
	CC_Q_SIZE = 0x18,
	CC_Q_MSIX = 0x1A,
	CC_Q_ENABLE = 0x1C,
	CC_Q_NOFF = 0x1E,
	CC_Q_DESCLO = 0x20,
	CC_Q_DESCHI = 0x24,
	CC_Q_AVAILLO = 0x28,
	CC_Q_AVAILHI = 0x2C,
	CC_Q_USEDLO = 0x30,
	CC_Q_USEDHI = 0x34,
	CC_LEN = 0x38,
};

/* The fields a driver writes, by offset and width; a write must cover a field whole. */
static const struct {
	uint8_t off, size;
} cc_writable[] = {
	{CC_DFSELECT, 4}, {CC_GFSELECT, 4},  {CC_GF, 4},	{CC_MSIX, 2},	  {CC_STATUS, 1},
	{CC_Q_SELECT, 2}, {CC_Q_SIZE, 2},    {CC_Q_MSIX, 2},	{CC_Q_ENABLE, 2}, {CC_Q_DESCLO, 4},
	{CC_Q_DESCHI, 4}, {CC_Q_AVAILLO, 4}, {CC_Q_AVAILHI, 4}, {CC_Q_USEDLO, 4}, {CC_Q_USEDHI, 4},
};

/* virtio_pci_cap.cfg_type */
enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4, CAP_PCI_CFG = 5 };

struct vq_slot {
	struct vpci *t;
	unsigned idx;
	int efd;
	bool watched; /* on the event loop */
	uint16_t vector;
};

struct vpci {
	struct virtio_device *vd;
	struct hearth_dev *dev;
	struct hearth_pci_func *f;
	uint32_t dfselect, gfselect;
	uint64_t driver_features;
	bool driver_features_high; /* the driver set bits above 63: never offered */
	uint16_t config_vector;
	uint16_t queue_select;
	uint8_t status, generation, isr;
	unsigned nvec;
	uint32_t isr_off, device_off, notify_off, table_off, pba_off;
	uint64_t bar_size;
	int cfgcap; /* offset of the PCI configuration access capability */
	struct vq_slot *q;
	int needs_reset_logged, width_logged;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static struct virtq *selected(struct vpci *t)
{
	return t->queue_select < t->vd->num_queues ? &t->vd->vqs[t->queue_select] : NULL;
}

/* ---- interrupts ---- */

static void signal_driver(struct vpci *t, uint16_t vector, uint8_t isr_bit)
{
	if (hearth_pci_msix_enabled(t->f)) {
		if (vector != VIRTIO_PCI_NO_VECTOR)
			hearth_pci_msix_notify(t->f, vector);
		return;
	}
	t->isr |= isr_bit;
	hearth_pci_intx(t->f, 1);
}

static void tr_interrupt(struct virtio_device *vd, unsigned q)
{
	struct vpci *t = vd->transport;

	/* no used-buffer notifications before DRIVER_OK (2.3) */
	if (q < vd->num_queues && (t->status & STATUS_DRIVER_OK))
		signal_driver(t, t->q[q].vector, ISR_QUEUE);
}

static void tr_config_changed(struct virtio_device *vd)
{
	struct vpci *t = vd->transport;

	t->generation++;
	if (t->status & STATUS_DRIVER_OK)
		signal_driver(t, t->config_vector, ISR_CONFIG);
}

static void tr_needs_reset(struct virtio_device *vd)
{
	struct vpci *t = vd->transport;

	if (t->status & STATUS_NEEDS_RESET)
		return;
	t->status |= STATUS_NEEDS_RESET;
	if (t->status & STATUS_DRIVER_OK)
		signal_driver(t, t->config_vector, ISR_CONFIG);
}

static const struct virtio_transport_ops tops = {
	.interrupt = tr_interrupt,
	.config_changed = tr_config_changed,
	.needs_reset = tr_needs_reset,
};

static void broken(struct vpci *t, const char *why, unsigned q)
{
	hearth_log_once(t->needs_reset_logged,
			"device '%s': %s (queue %u): DEVICE_NEEDS_RESET (logged once)", t->dev->id,
			why, q);
	tr_needs_reset(t->vd);
}

/* ---- status and reset ---- */

static void device_reset(struct vpci *t)
{
	struct virtio_device *vd = t->vd;

	if (vd->ops->reset)
		vd->ops->reset(vd);
	for (unsigned i = 0; i < vd->num_queues; i++) {
		virtq_reset(&vd->vqs[i]);
		t->q[i].vector = VIRTIO_PCI_NO_VECTOR;
	}
	vd->features = 0;
	t->driver_features = 0;
	t->driver_features_high = false;
	t->dfselect = t->gfselect = 0;
	t->queue_select = 0;
	t->config_vector = VIRTIO_PCI_NO_VECTOR;
	t->status = 0;
	t->isr = 0;
	hearth_pci_intx(t->f, 0);
}

static bool negotiate(struct vpci *t)
{
	struct virtio_device *vd = t->vd;
	uint64_t want = t->driver_features;

	if (t->driver_features_high || (want & ~vd->offered) ||
	    !(want & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return false;
	if (vd->ops->features_ok && !vd->ops->features_ok(vd, want))
		return false;
	vd->features = want;
	return true;
}

static void status_write(struct vpci *t, uint8_t v)
{
	uint8_t add = v & ~t->status;

	if (v == 0) {
		device_reset(t);
		return;
	}
	/* bits are only ever added (clearing takes a reset); NEEDS_RESET is the device's */
	t->status |= add & (STATUS_ACK | STATUS_DRIVER | STATUS_FAILED);
	if ((add & STATUS_FEATURES_OK) && !(t->status & STATUS_DRIVER_OK) && negotiate(t))
		t->status |= STATUS_FEATURES_OK;
	if ((add & STATUS_DRIVER_OK) && (t->status & STATUS_FEATURES_OK)) {
		t->status |= STATUS_DRIVER_OK;
		if (t->vd->ops->driver_ok)
			t->vd->ops->driver_ok(t->vd);
	}
}

/* ---- common configuration ---- */

static void common_snapshot(struct vpci *t, uint8_t b[CC_LEN])
{
	struct virtio_device *vd = t->vd;
	struct virtq *vq = selected(t);

	memset(b, 0, CC_LEN);
	put32(b + CC_DFSELECT, t->dfselect);
	if (t->dfselect < 2)
		put32(b + CC_DF, (uint32_t)(vd->offered >> (32 * t->dfselect)));
	put32(b + CC_GFSELECT, t->gfselect);
	if (t->gfselect < 2)
		put32(b + CC_GF, (uint32_t)(t->driver_features >> (32 * t->gfselect)));
	put16(b + CC_MSIX, t->config_vector);
	put16(b + CC_NUMQ, (uint16_t)vd->num_queues);
	b[CC_STATUS] = t->status;
	b[CC_CFGGEN] = t->generation;
	put16(b + CC_Q_SELECT, t->queue_select);
	if (!vq) {
		/* an unavailable queue reads as size 0 and NO_VECTOR */
		put16(b + CC_Q_MSIX, VIRTIO_PCI_NO_VECTOR);
		return;
	}
	put16(b + CC_Q_SIZE, vq->size);
	put16(b + CC_Q_MSIX, t->q[t->queue_select].vector);
	put16(b + CC_Q_ENABLE, vq->enabled);
	put16(b + CC_Q_NOFF, t->queue_select);
	put32(b + CC_Q_DESCLO, (uint32_t)vq->desc_gpa);
	put32(b + CC_Q_DESCHI, (uint32_t)(vq->desc_gpa >> 32));
	put32(b + CC_Q_AVAILLO, (uint32_t)vq->avail_gpa);
	put32(b + CC_Q_AVAILHI, (uint32_t)(vq->avail_gpa >> 32));
	put32(b + CC_Q_USEDLO, (uint32_t)vq->used_gpa);
	put32(b + CC_Q_USEDHI, (uint32_t)(vq->used_gpa >> 32));
}

static uint64_t common_read(struct vpci *t, uint64_t off, unsigned size)
{
	uint8_t b[CC_LEN];

	if (off >= CC_LEN || size > CC_LEN - off)
		return 0;
	common_snapshot(t, b);
	return get_le(b + off, size);
}

static uint16_t vector_or_none(struct vpci *t, uint64_t v)
{
	return v < t->nvec ? (uint16_t)v : VIRTIO_PCI_NO_VECTOR;
}

static void set_half(uint64_t *x, bool high, uint32_t v)
{
	*x = high ? (*x & 0xFFFFFFFFull) | (uint64_t)v << 32 : (*x & ~0xFFFFFFFFull) | v;
}

static void common_field(struct vpci *t, unsigned off, uint32_t v)
{
	struct virtio_device *vd = t->vd;
	struct virtq *vq = selected(t);
	unsigned q = t->queue_select;

	switch (off) {
	case CC_DFSELECT:
		t->dfselect = v;
		return;
	case CC_GFSELECT:
		t->gfselect = v;
		return;
	case CC_GF:
		if (t->status & STATUS_FEATURES_OK)
			return; /* negotiation is over until a reset */
		if (t->gfselect < 2)
			set_half(&t->driver_features, t->gfselect == 1, v);
		else if (v)
			t->driver_features_high = true;
		return;
	case CC_MSIX:
		t->config_vector = vector_or_none(t, v);
		return;
	case CC_STATUS:
		status_write(t, (uint8_t)v);
		return;
	case CC_Q_SELECT:
		t->queue_select = (uint16_t)v;
		return;
	}
	if (!vq)
		return; /* no such queue: nothing to configure */
	if (off == CC_Q_MSIX) {
		t->q[q].vector = vector_or_none(t, v);
		return;
	}
	if (vq->enabled)
		return; /* a live queue's layout is fixed until reset */
	switch (off) {
	case CC_Q_SIZE:
		if (v == 0 || v > vq->size_max || (v & (v - 1)))
			broken(t, "queue size is not a power of two within the maximum", q);
		else
			vq->size = (uint16_t)v;
		return;
	case CC_Q_ENABLE:
		if (!v)
			return; /* writing 0 is not how queues stop (that is a reset) */
		if (!(t->status & STATUS_FEATURES_OK)) {
			broken(t, "queue enabled before FEATURES_OK", q);
			return;
		}
		if (virtq_enable(vq, vd->features) < 0)
			broken(t, vq->why ? vq->why : "queue cannot be enabled", q);
		return;
	case CC_Q_DESCLO:
	case CC_Q_DESCHI:
		set_half(&vq->desc_gpa, off == CC_Q_DESCHI, v);
		return;
	case CC_Q_AVAILLO:
	case CC_Q_AVAILHI:
		set_half(&vq->avail_gpa, off == CC_Q_AVAILHI, v);
		return;
	case CC_Q_USEDLO:
	case CC_Q_USEDHI:
		set_half(&vq->used_gpa, off == CC_Q_USEDHI, v);
		return;
	}
}

static void common_write(struct vpci *t, uint64_t off, uint64_t value, unsigned size)
{
	bool any = false;

	/* drivers use naturally aligned accesses (4.1.3.1); a wider one may set several
	 * fields at once, a misaligned one sets none */
	for (unsigned i = 0; i < sizeof(cc_writable) / sizeof(cc_writable[0]) && off % size == 0;
	     i++) {
		unsigned fo = cc_writable[i].off, fs = cc_writable[i].size;
		if (fo < off || fo + fs > off + size)
			continue;
		uint64_t v = value >> (8 * (fo - off));
		common_field(t, fo, (uint32_t)(fs == 4 ? v : v & ((1u << (8 * fs)) - 1)));
		any = true;
	}
	if (!any)
		hearth_log_once(t->width_logged,
				"device '%s': ignored a %u-byte write at common configuration "
				"offset %#" PRIx64 " (no whole field)",
				t->dev->id, size, off);
}

/* ---- the BAR ---- */

static bool device_access_ok(struct vpci *t, uint64_t off, unsigned size)
{
	return (size == 1 || size == 2 || size == 4 || size == 8) && off % size == 0 &&
	       off < t->vd->config_len && size <= t->vd->config_len - off;
}

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
	struct vpci *t = opaque;

	if (off < PAGE)
		return common_read(t, off, size);
	if (off == t->isr_off) {
		/* reading is acknowledging */
		uint8_t v = t->isr;
		t->isr = 0;
		hearth_pci_intx(t->f, 0);
		return v;
	}
	if (t->vd->config_len && off >= t->device_off && off < t->notify_off) {
		uint64_t o = off - t->device_off;
		uint8_t buf[8] = {0};
		if (!device_access_ok(t, o, size))
			return 0;
		t->vd->ops->config_read(t->vd, (uint32_t)o, buf, size);
		return get_le(buf, size);
	}
	return 0;
}

static void kick(struct vpci *t, unsigned q)
{
	uint64_t one = 1;

	if (q < t->vd->num_queues && write(t->q[q].efd, &one, sizeof(one)) < 0)
		hearth_log("device '%s': queue %u kick: %s", t->dev->id, q, strerror(errno));
}

static void bar_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
	struct vpci *t = opaque;

	if (off < PAGE) {
		common_write(t, off, value, size);
	} else if (off >= t->notify_off && off < t->notify_off + NOTIFY_MULT * t->vd->num_queues) {
		/* a width KVM's ioeventfd does not match: same eventfd, same loop thread */
		kick(t, (unsigned)((off - t->notify_off) / NOTIFY_MULT));
	} else if (t->vd->config_len && off >= t->device_off && off < t->notify_off) {
		uint64_t o = off - t->device_off;
		uint8_t buf[8];
		if (!t->vd->ops->config_write || !device_access_ok(t, o, size))
			return;
		for (unsigned i = 0; i < size; i++)
			buf[i] = (uint8_t)(value >> (8 * i));
		t->vd->ops->config_write(t->vd, (uint32_t)o, buf, size);
	}
}

static const struct hearth_io_ops bar_ops = {.read = bar_read, .write = bar_write};

/* ---- PCI configuration access capability: a window into the BAR ---- */

#define CFGCAP_BAR 4
#define CFGCAP_OFFSET 8
#define CFGCAP_LENGTH 12
#define CFGCAP_DATA 16

static bool window(struct vpci *t, uint64_t *off, unsigned *len)
{
	unsigned bar = hearth_pci_cfg_get(t->f, t->cfgcap + CFGCAP_BAR, 1);
	*off = hearth_pci_cfg_get(t->f, t->cfgcap + CFGCAP_OFFSET, 4);
	*len = hearth_pci_cfg_get(t->f, t->cfgcap + CFGCAP_LENGTH, 4);
	return bar == BAR && (*len == 1 || *len == 2 || *len == 4) && *off % *len == 0 &&
	       *off + *len <= t->bar_size;
}

static bool touches_data(struct vpci *t, uint32_t off, unsigned size)
{
	uint32_t d = (uint32_t)t->cfgcap + CFGCAP_DATA;
	return off < d + 4 && d < off + size;
}

static void cfgcap_read(void *opaque, uint32_t off, unsigned size, uint32_t *value)
{
	struct vpci *t = opaque;
	uint64_t at;
	unsigned len;

	if (!touches_data(t, off, size) || !window(t, &at, &len))
		return;
	hearth_pci_cfg_set(t->f, t->cfgcap + CFGCAP_DATA, len,
			   (uint32_t)hearth_pci_bar_read(t->f, BAR, at, len));
	*value = hearth_pci_cfg_get(t->f, off, size);
}

static void cfgcap_write(void *opaque, uint32_t off, uint32_t value, unsigned size)
{
	struct vpci *t = opaque;
	uint64_t at;
	unsigned len;

	(void)value;
	if (!touches_data(t, off, size) || !window(t, &at, &len))
		return;
	hearth_pci_bar_write(t->f, BAR, at, hearth_pci_cfg_get(t->f, t->cfgcap + CFGCAP_DATA, len),
			     len);
}

static const struct hearth_pci_config_ops cfgcap_ops = {.read = cfgcap_read, .write = cfgcap_write};

/* ---- notifications on the event loop ---- */

static void on_kick(void *opaque, uint32_t events)
{
	struct vq_slot *s = opaque;
	struct vpci *t = s->t;
	uint64_t n;

	(void)events;
	if (read(s->efd, &n, sizeof(n)) != sizeof(n))
		return;
	hearth_dev_lock(t->dev);
	struct virtq *vq = &t->vd->vqs[s->idx];
	if ((t->status & (STATUS_DRIVER_OK | STATUS_NEEDS_RESET)) == STATUS_DRIVER_OK &&
	    vq->enabled && !vq->broken && t->vd->ops->notify)
		t->vd->ops->notify(t->vd, s->idx);
	hearth_dev_unlock(t->dev);
}

/* ---- attach / detach ---- */

static uint32_t class_of(uint16_t id)
{
	switch (id) {
	case VIRTIO_ID_NET:
		return 0x020000; /* Ethernet controller */
	case VIRTIO_ID_BLOCK:
		return 0x010000; /* mass storage: SCSI-class storage controller */
	case VIRTIO_ID_CONSOLE:
		return 0x078000; /* communication controller: other */
	default:
		return 0xff0000; /* unassigned class */
	}
}

static int add_vcap(struct vpci *t, uint8_t type, uint32_t off, uint32_t len, const uint8_t *extra,
		    unsigned nextra, const uint8_t *extra_wmask)
{
	/* virtio_pci_cap after the id and next bytes: cap_len, cfg_type, bar, id, pad[2],
	 * offset, length, then type-specific bytes */
	uint8_t body[18] = {0}, wmask[18] = {0};

	body[0] = (uint8_t)(16 + nextra);
	body[1] = type;
	body[2] = BAR;
	put32(body + 6, off);
	put32(body + 10, len);
	if (nextra)
		memcpy(body + 14, extra, nextra);
	if (extra_wmask)
		memcpy(wmask + 14, extra_wmask, nextra);
	if (type == CAP_PCI_CFG) {
		wmask[2] = 0xFF;	    /* bar */
		memset(wmask + 6, 0xFF, 8); /* offset, length */
		put32(body + 6, 0);
		put32(body + 10, 0);
	}
	return hearth_pci_add_cap(t->f, HEARTH_PCI_CAP_ID_VENDOR, body, 14 + nextra, wmask);
}

static void release(struct vpci *t)
{
	if (!t)
		return;
	for (unsigned i = 0; t->q && i < t->vd->num_queues; i++) {
		if (t->q[i].watched)
			hearth_loop_del(t->dev->vm, t->q[i].efd);
	}
	hearth_pci_func_free(t->f);
	for (unsigned i = 0; t->q && i < t->vd->num_queues; i++)
		if (t->q[i].efd >= 0)
			close(t->q[i].efd);
	free(t->q);
	free(t);
}

static int build(struct vpci *t, struct hearth_cfg *cfg)
{
	struct virtio_device *vd = t->vd;
	static const uint8_t cfg_data_wmask[4] = {0xFF, 0xFF, 0xFF, 0xFF};
	uint8_t mult[4], data[4] = {0};
	struct hearth_pci_id id = {
		.vendor = VIRTIO_PCI_VENDOR,
		.device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + vd->device_id),
		.subsys_vendor = VIRTIO_PCI_VENDOR,
		.subsys = (uint16_t)(0x40 + vd->device_id),
		.class_code = class_of(vd->device_id),
		.revision = 1, /* modern only */
		.intx_pin = 1,
	};
	uint64_t end;

	t->nvec =
		vd->num_queues + 1 > HEARTH_PCI_MSIX_MAX ? HEARTH_PCI_MSIX_MAX : vd->num_queues + 1;
	t->isr_off = PAGE;
	t->device_off = 2 * PAGE;
	t->notify_off = t->device_off + (uint32_t)round_up(vd->config_len, PAGE);
	t->table_off = t->notify_off + (uint32_t)round_up(NOTIFY_MULT * vd->num_queues, PAGE);
	t->pba_off = t->table_off + (uint32_t)round_up(16 * t->nvec, PAGE);
	end = t->pba_off + round_up((t->nvec + 63) / 64 * 8, PAGE);
	for (t->bar_size = PAGE; t->bar_size < end; t->bar_size *= 2)
		;

	t->f = hearth_pci_func_new(t->dev, &id);
	if (!t->f)
		return -1;
	struct hearth_pci_bar bar = {HEARTH_PCI_BAR_MEM32, false, t->bar_size, &bar_ops, t};
	put32(mult, NOTIFY_MULT);
	if (hearth_pci_bar(t->f, BAR, &bar) < 0 ||
	    add_vcap(t, CAP_COMMON, 0, CC_LEN, NULL, 0, NULL) < 0 ||
	    add_vcap(t, CAP_NOTIFY, t->notify_off, NOTIFY_MULT * vd->num_queues, mult, 4, NULL) <
		    0 ||
	    add_vcap(t, CAP_ISR, t->isr_off, 1, NULL, 0, NULL) < 0 ||
	    (vd->config_len &&
	     add_vcap(t, CAP_DEVICE, t->device_off, vd->config_len, NULL, 0, NULL) < 0))
		return -1;
	t->cfgcap = add_vcap(t, CAP_PCI_CFG, 0, 0, data, 4, cfg_data_wmask);
	if (t->cfgcap < 0 || hearth_pci_msix_init(t->f, t->nvec, BAR, t->table_off, t->pba_off) < 0)
		return -1;
	hearth_pci_set_config_ops(t->f, &cfgcap_ops, t);
	for (unsigned i = 0; i < vd->num_queues; i++)
		if (hearth_pci_bar_ioeventfd(t->f, BAR, t->notify_off + NOTIFY_MULT * i, 2,
					     t->q[i].efd) < 0)
			return -1;
	if (hearth_pci_plug(t->f, cfg) < 0)
		return -1;
	/* `hearth devices` builds machines without a loop: nothing will kick them */
	for (unsigned i = 0; vd->dev->vm->loop && i < vd->num_queues; i++) {
		if (hearth_loop_add(t->dev->vm, t->q[i].efd, EPOLLIN, on_kick, &t->q[i]) < 0)
			return -1;
		t->q[i].watched = true;
	}
	return 0;
}

int virtio_transport_attach(struct virtio_device *vd, struct hearth_cfg *cfg)
{
	struct vpci *t;

	if (!vd->ops || (vd->config_len && !vd->ops->config_read) || !vd->vqs)
		return hearth_err("virtio device without ops or queues");
	if (vd->num_queues == 0 || vd->num_queues > MAX_QUEUES)
		return hearth_err("virtio-pci: %u queues, 1..%d are supported", vd->num_queues,
				  MAX_QUEUES);
	if (vd->config_len > PAGE)
		return hearth_err("virtio-pci: device configuration of %u bytes, at most %u",
				  vd->config_len, PAGE);
	if (!(vd->offered & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return hearth_err("virtio-pci: the device must offer VIRTIO_F_VERSION_1");
	t = calloc(1, sizeof(*t));
	if (!t)
		return hearth_err("out of memory");
	t->vd = vd;
	t->dev = vd->dev;
	t->q = calloc(vd->num_queues, sizeof(*t->q));
	if (!t->q) {
		free(t);
		return hearth_err("out of memory");
	}
	for (unsigned i = 0; i < vd->num_queues; i++) {
		t->q[i] = (struct vq_slot){t, i, -1, false, VIRTIO_PCI_NO_VECTOR};
		t->q[i].efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->q[i].efd < 0) {
			int err = errno;
			release(t);
			return hearth_err("virtio-pci: eventfd for queue %u: %s", i, strerror(err));
		}
	}
	t->config_vector = VIRTIO_PCI_NO_VECTOR;
	if (build(t, cfg) < 0) {
		release(t);
		return -1;
	}
	vd->features = 0;
	vd->tops = &tops;
	vd->transport = t;
	return 0;
}

void virtio_transport_detach(struct virtio_device *vd)
{
	release(vd->transport);
	vd->transport = NULL;
	vd->tops = NULL;
}

void virtio_transport_reset(struct virtio_device *vd)
{
	struct vpci *t = vd->transport;

	if (!t)
		return;
	device_reset(t);
	t->generation = 0;
	hearth_pci_func_reset(t->f);
}

void virtio_transport_describe(struct virtio_device *vd, char *buf, size_t len)
{
	struct vpci *t = vd->transport;

	if (t)
		hearth_pci_describe(t->f, buf, len);
	else if (len)
		buf[0] = 0;
}

struct hearth_pci_func *virtio_pci_func(struct virtio_device *vd)
{
	struct vpci *t = vd->transport;
	return t ? t->f : NULL;
}
