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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hearth/le.h"
#include "dev/machine.h"
#include "hearth/checkpoint.h"
#include "hearth/guestmem.h"
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
	bool held;    /* a notification came while frozen: thaw replays it */
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

static void tr_reset_done(struct virtio_device *vd);
static int tr_take_notify(struct virtio_device *vd, unsigned q);
static void tr_give_notify(struct virtio_device *vd, unsigned q);
static void tr_notified(struct virtio_device *vd, unsigned q);

static const struct virtio_transport_ops tops = {
	.interrupt = tr_interrupt,
	.config_changed = tr_config_changed,
	.needs_reset = tr_needs_reset,
	.reset_done = tr_reset_done,
	.take_notify = tr_take_notify,
	.give_notify = tr_give_notify,
	.notified = tr_notified,
};

static void broken(struct vpci *t, const char *why, unsigned q)
{
	hearth_log_once(t->needs_reset_logged,
			"device '%s': %s (queue %u): DEVICE_NEEDS_RESET (logged once)", t->dev->id,
			why, q);
	tr_needs_reset(t->vd);
}

/* ---- status and reset ---- */

/* The second half of a reset: what the driver sees as "device_status reads 0". */
static void finish_reset(struct vpci *t)
{
	struct virtio_device *vd = t->vd;

	for (unsigned i = 0; i < vd->num_queues; i++) {
		virtq_reset(&vd->vqs[i]);
		t->q[i].vector = VIRTIO_PCI_NO_VECTOR;
		t->q[i].held = false;
	}
	vd->resetting = false;
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

/* The device forgets the driver at once; the rest waits while its old requests may still
 * move data (virtio_dev.h). */
static void device_reset(struct vpci *t)
{
	struct virtio_device *vd = t->vd;

	if (vd->ops->reset)
		vd->ops->reset(vd);
	if (vd->ops->in_flight && vd->ops->in_flight(vd)) {
		vd->resetting = true;
		return;
	}
	finish_reset(t);
}

static void tr_reset_done(struct virtio_device *vd)
{
	struct vpci *t = vd->transport;

	if (t && vd->resetting)
		finish_reset(t);
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
	le_put32(b + CC_DFSELECT, t->dfselect);
	if (t->dfselect < 2)
		le_put32(b + CC_DF, (uint32_t)(vd->offered >> (32 * t->dfselect)));
	le_put32(b + CC_GFSELECT, t->gfselect);
	if (t->gfselect < 2)
		le_put32(b + CC_GF, (uint32_t)(t->driver_features >> (32 * t->gfselect)));
	le_put16(b + CC_MSIX, t->config_vector);
	le_put16(b + CC_NUMQ, (uint16_t)vd->num_queues);
	b[CC_STATUS] = t->status;
	b[CC_CFGGEN] = t->generation;
	le_put16(b + CC_Q_SELECT, t->queue_select);
	if (!vq) {
		/* an unavailable queue reads as size 0 and NO_VECTOR */
		le_put16(b + CC_Q_MSIX, VIRTIO_PCI_NO_VECTOR);
		return;
	}
	le_put16(b + CC_Q_SIZE, vq->size);
	le_put16(b + CC_Q_MSIX, t->q[t->queue_select].vector);
	le_put16(b + CC_Q_ENABLE, vq->enabled);
	le_put16(b + CC_Q_NOFF, t->queue_select);
	le_put32(b + CC_Q_DESCLO, (uint32_t)vq->desc_gpa);
	le_put32(b + CC_Q_DESCHI, (uint32_t)(vq->desc_gpa >> 32));
	le_put32(b + CC_Q_AVAILLO, (uint32_t)vq->avail_gpa);
	le_put32(b + CC_Q_AVAILHI, (uint32_t)(vq->avail_gpa >> 32));
	le_put32(b + CC_Q_USEDLO, (uint32_t)vq->used_gpa);
	le_put32(b + CC_Q_USEDHI, (uint32_t)(vq->used_gpa >> 32));
}

static uint64_t common_read(struct vpci *t, uint64_t off, unsigned size)
{
	uint8_t b[CC_LEN];

	if (off >= CC_LEN || size > CC_LEN - off)
		return 0;
	common_snapshot(t, b);
	return le_get(b + off, size);
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

	/* the driver must wait for device_status 0 before it touches anything again */
	if (t->vd->resetting)
		return;

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
		return le_get(buf, size);
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
		if (!t->vd->ops->config_write || t->vd->resetting || !device_access_ok(t, o, size))
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

/* Lock held. */
static void deliver(struct vpci *t, unsigned q)
{
	struct virtio_device *vd = t->vd;
	struct virtq *vq = &vd->vqs[q];

	if ((t->status & (STATUS_DRIVER_OK | STATUS_NEEDS_RESET)) == STATUS_DRIVER_OK &&
	    !vd->resetting && vq->enabled && !vq->broken && vd->ops->notify)
		vd->ops->notify(vd, q);
}

/* Lock held. */
static void notified(struct vpci *t, unsigned q)
{
	if (t->vd->frozen)
		t->q[q].held = true;
	else
		deliver(t, q);
}

static void on_kick(void *opaque, uint32_t events)
{
	struct vq_slot *s = opaque;
	struct vpci *t = s->t;
	uint64_t n;

	(void)events;
	if (read(s->efd, &n, sizeof(n)) != sizeof(n))
		return;
	hearth_dev_lock(t->dev);
	notified(t, s->idx);
	hearth_dev_unlock(t->dev);
}

static void tr_notified(struct virtio_device *vd, unsigned q)
{
	struct vpci *t = vd->transport;

	if (t && q < vd->num_queues)
		notified(t, q);
}

static int tr_take_notify(struct virtio_device *vd, unsigned q)
{
	struct vpci *t = vd->transport;

	if (!t || q >= vd->num_queues)
		return -1;
	if (t->q[q].watched) {
		hearth_loop_del(t->dev->vm, t->q[q].efd);
		t->q[q].watched = false;
	}
	return t->q[q].efd;
}

static void tr_give_notify(struct virtio_device *vd, unsigned q)
{
	struct vpci *t = vd->transport;

	/* a kick the device's thread left unread is still counted: the loop sees it at once */
	if (t && q < vd->num_queues && !t->q[q].watched && vd->dev->vm->loop &&
	    hearth_loop_add(t->dev->vm, t->q[q].efd, EPOLLIN, on_kick, &t->q[q]) == 0)
		t->q[q].watched = true;
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
	le_put32(body + 6, off);
	le_put32(body + 10, len);
	if (nextra)
		memcpy(body + 14, extra, nextra);
	if (extra_wmask)
		memcpy(wmask + 14, extra_wmask, nextra);
	if (type == CAP_PCI_CFG) {
		wmask[2] = 0xFF;	    /* bar */
		memset(wmask + 6, 0xFF, 8); /* offset, length */
		le_put32(body + 6, 0);
		le_put32(body + 10, 0);
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
	le_put32(mult, NOTIFY_MULT);
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
		t->q[i] = (struct vq_slot){
			.t = t, .idx = i, .efd = -1, .vector = VIRTIO_PCI_NO_VECTOR};
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

/* ---- checkpoints ---- */

#define STATUS_KNOWN                                                                               \
	(STATUS_ACK | STATUS_DRIVER | STATUS_DRIVER_OK | STATUS_FEATURES_OK | STATUS_NEEDS_RESET | \
	 STATUS_FAILED)

/* vq.flags */
#define VQF_ENABLED 1u
#define VQF_BROKEN 2u
#define VQF_SIGNALLED 4u /* signalled_used means something */
#define VQF_NOTIFY_OFF 8u
#define VQF_KNOWN 15u

void virtio_transport_freeze(struct virtio_device *vd)
{
	vd->frozen = true;
}

void virtio_transport_thaw(struct virtio_device *vd)
{
	struct vpci *t = vd->transport;

	vd->frozen = false;
	for (unsigned i = 0; t && i < vd->num_queues; i++) {
		if (!t->q[i].held)
			continue;
		t->q[i].held = false;
		deliver(t, i);
	}
}

uint8_t virtio_transport_status(const struct virtio_device *vd)
{
	const struct vpci *t = vd->transport;

	return t ? t->status : 0;
}

/* The per-queue arrays, one allocation. */
enum { A_SIZE, A_FLAGS, A_LAST_AVAIL, A_USED_IDX, A_SIGNALLED, A_VECTOR, A_U32 };
enum { A_DESC, A_AVAIL, A_USED, A_U64 };
static const char *const u32_keys[A_U32] = {"vq.size",	   "vq.flags",		"vq.last_avail",
					    "vq.used_idx", "vq.signalled_used", "vq.vector"};
static const char *const u64_keys[A_U64] = {"vq.desc", "vq.avail", "vq.used"};

struct vq_arrays {
	uint32_t *u[A_U32];
	uint64_t *g[A_U64];
	void *mem;
};

static int arrays_new(struct vq_arrays *a, unsigned n)
{
	uint64_t *g = calloc((size_t)n * (A_U64 + (A_U32 + 1) / 2), sizeof(uint64_t));

	if (!g)
		return hearth_err("out of memory");
	a->mem = g;
	for (unsigned k = 0; k < A_U64; k++)
		a->g[k] = g + (size_t)k * n;
	for (unsigned k = 0; k < A_U32; k++)
		a->u[k] = (uint32_t *)(g + (size_t)A_U64 * n) + (size_t)k * n;
	return 0;
}

int virtio_transport_save(struct virtio_device *vd, struct hearth_ckpt *ck)
{
	struct vpci *t = vd->transport;
	unsigned n = vd->num_queues;
	struct vq_arrays a;
	int ret = -1;

	if (!t)
		return hearth_err("virtio device without a transport");
	if (vd->resetting)
		return hearth_err("a device reset still waits for requests in flight");
	if (arrays_new(&a, n) < 0)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		const struct virtq *vq = &vd->vqs[i];
		a.u[A_SIZE][i] = vq->size;
		a.u[A_FLAGS][i] = (vq->enabled ? VQF_ENABLED : 0) | (vq->broken ? VQF_BROKEN : 0) |
				  (vq->signalled_valid ? VQF_SIGNALLED : 0) |
				  (vq->notify_off ? VQF_NOTIFY_OFF : 0);
		a.u[A_LAST_AVAIL][i] = vq->last_avail;
		a.u[A_USED_IDX][i] = vq->used_idx;
		a.u[A_SIGNALLED][i] = vq->signalled_used;
		a.u[A_VECTOR][i] = t->q[i].vector;
		a.g[A_DESC][i] = vq->desc_gpa;
		a.g[A_AVAIL][i] = vq->avail_gpa;
		a.g[A_USED][i] = vq->used_gpa;
	}
	if (hearth_pci_func_save(t->f, ck) < 0 ||
	    hearth_ckpt_put_u8(ck, "virtio.status", t->status) < 0 ||
	    hearth_ckpt_put_u8(ck, "virtio.generation", t->generation) < 0 ||
	    hearth_ckpt_put_u8(ck, "virtio.isr", t->isr) < 0 ||
	    hearth_ckpt_put_u64(ck, "virtio.features", vd->features) < 0 ||
	    hearth_ckpt_put_u64(ck, "virtio.driver_features", t->driver_features) < 0 ||
	    hearth_ckpt_put_bool(ck, "virtio.driver_features_high", t->driver_features_high) < 0 ||
	    hearth_ckpt_put_u32(ck, "virtio.dfselect", t->dfselect) < 0 ||
	    hearth_ckpt_put_u32(ck, "virtio.gfselect", t->gfselect) < 0 ||
	    hearth_ckpt_put_u16(ck, "virtio.queue_select", t->queue_select) < 0 ||
	    hearth_ckpt_put_u16(ck, "virtio.config_vector", t->config_vector) < 0)
		goto out;
	for (unsigned k = 0; k < A_U32; k++)
		if (hearth_ckpt_put_u32_array(ck, u32_keys[k], a.u[k], n) < 0)
			goto out;
	for (unsigned k = 0; k < A_U64; k++)
		if (hearth_ckpt_put_u64_array(ck, u64_keys[k], a.g[k], n) < 0)
			goto out;
	ret = 0;
out:
	free(a.mem);
	return ret;
}

static int refuse(struct hearth_ckpt *ck, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(struct hearth_ckpt *ck, const char *key, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return hearth_err("checkpoint context '%s': key '%s': %s", hearth_ckpt_name(ck), key, why);
}

static bool vector_ok(const struct vpci *t, uint32_t v)
{
	return v < t->nvec || v == VIRTIO_PCI_NO_VECTOR;
}

/* Everything a driver could not have set is refused before anything changes. */
static int check_queue(struct vpci *t, struct hearth_ckpt *ck, const struct vq_arrays *a,
		       unsigned i, uint8_t status, uint64_t features)
{
	const struct virtq *vq = &t->vd->vqs[i];
	uint32_t size = a->u[A_SIZE][i], flags = a->u[A_FLAGS][i];

	if (size == 0 || size > vq->size_max || (size & (size - 1)))
		return refuse(ck, "vq.size",
			      "queue %u: size %u is not a power of two within the maximum %u", i,
			      size, vq->size_max);
	if (flags & ~VQF_KNOWN)
		return refuse(ck, "vq.flags", "queue %u: unknown flags %#x", i, flags & ~VQF_KNOWN);
	if ((flags & VQF_ENABLED) && !(status & STATUS_FEATURES_OK))
		return refuse(ck, "vq.flags", "queue %u is enabled without FEATURES_OK", i);
	if (!vector_ok(t, a->u[A_VECTOR][i]))
		return refuse(ck, "vq.vector", "queue %u: vector %u, the function has %u", i,
			      a->u[A_VECTOR][i], t->nvec);
	for (unsigned k = A_LAST_AVAIL; k <= A_SIGNALLED; k++)
		if (a->u[k][i] > 0xFFFF)
			return refuse(ck, u32_keys[k], "queue %u: %u is not a 16-bit index", i,
				      a->u[k][i]);
	if (!(flags & VQF_ENABLED))
		return 0;
	uint16_t outstanding = (uint16_t)(a->u[A_LAST_AVAIL][i] - a->u[A_USED_IDX][i]);
	if (outstanding > size)
		return refuse(ck, "vq.last_avail",
			      "queue %u: %u chains taken and not used, more than its size %u", i,
			      outstanding, size);
	/* what virtq_enable checks, here so that the message names the ring */
	uint64_t ev = features & VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) ? 2 : 0;
	const struct {
		unsigned k;
		uint64_t align, len;
	} ring[3] = {{A_DESC, 16, 16ull * size},
		     {A_AVAIL, 2, 4 + 2ull * size + ev},
		     {A_USED, 4, 4 + 8ull * size + ev}};
	for (unsigned r = 0; r < 3; r++) {
		uint64_t gpa = a->g[ring[r].k][i];
		if (gpa % ring[r].align)
			return refuse(ck, u64_keys[ring[r].k],
				      "queue %u: ring at %#" PRIx64 " is misaligned", i, gpa);
		if (!hearth_gpa_ptr(vq->vm, gpa, ring[r].len))
			return refuse(ck, u64_keys[ring[r].k],
				      "queue %u: ring at %#" PRIx64 " lies outside guest RAM", i,
				      gpa);
	}
	return 0;
}

static int check_transport(struct vpci *t, struct hearth_ckpt *ck, uint8_t status, uint8_t isr,
			   uint64_t features, uint64_t driver_features, bool high, uint16_t cvec)
{
	struct virtio_device *vd = t->vd;

	if (status & ~STATUS_KNOWN)
		return refuse(ck, "virtio.status", "unknown bits %#x", status & ~STATUS_KNOWN);
	if ((status & STATUS_DRIVER_OK) && !(status & STATUS_FEATURES_OK))
		return refuse(ck, "virtio.status", "DRIVER_OK without FEATURES_OK");
	if (status & STATUS_FEATURES_OK) {
		if ((features & ~vd->offered) || !(features & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
			return refuse(ck, "virtio.features",
				      "%#" PRIx64 " was not offered (the device offers %#" PRIx64
				      ") or lacks VIRTIO_F_VERSION_1",
				      features, vd->offered);
		if (features != driver_features || high)
			return refuse(ck, "virtio.driver_features",
				      "%#" PRIx64 "%s is not what was negotiated (%#" PRIx64 ")",
				      driver_features, high ? " and bits above 63" : "", features);
	} else if (features) {
		return refuse(ck, "virtio.features", "features %#" PRIx64 " without FEATURES_OK",
			      features);
	}
	if (isr & ~(ISR_QUEUE | ISR_CONFIG))
		return refuse(ck, "virtio.isr", "unknown bits %#x",
			      isr & ~(ISR_QUEUE | ISR_CONFIG));
	if (!vector_ok(t, cvec))
		return refuse(ck, "virtio.config_vector", "vector %u, the function has %u", cvec,
			      t->nvec);
	return 0;
}

int virtio_transport_load(struct virtio_device *vd, struct hearth_ckpt *ck)
{
	struct vpci *t = vd->transport;
	unsigned n = vd->num_queues;
	uint8_t status, generation, isr;
	uint64_t features, driver_features;
	uint32_t dfselect, gfselect;
	uint16_t qsel, cvec;
	struct vq_arrays a;
	bool high;
	int ret = -1;

	if (!t)
		return hearth_err("virtio device without a transport");
	if (hearth_ckpt_get_u8(ck, "virtio.status", &status) < 0 ||
	    hearth_ckpt_get_u8(ck, "virtio.generation", &generation) < 0 ||
	    hearth_ckpt_get_u8(ck, "virtio.isr", &isr) < 0 ||
	    hearth_ckpt_get_u64(ck, "virtio.features", &features) < 0 ||
	    hearth_ckpt_get_u64(ck, "virtio.driver_features", &driver_features) < 0 ||
	    hearth_ckpt_get_bool(ck, "virtio.driver_features_high", &high) < 0 ||
	    hearth_ckpt_get_u32(ck, "virtio.dfselect", &dfselect) < 0 ||
	    hearth_ckpt_get_u32(ck, "virtio.gfselect", &gfselect) < 0 ||
	    hearth_ckpt_get_u16(ck, "virtio.queue_select", &qsel) < 0 ||
	    hearth_ckpt_get_u16(ck, "virtio.config_vector", &cvec) < 0 ||
	    check_transport(t, ck, status, isr, features, driver_features, high, cvec) < 0)
		return -1;
	if (arrays_new(&a, n) < 0)
		return -1;
	for (unsigned k = 0; k < A_U32; k++)
		if (hearth_ckpt_get_u32_array(ck, u32_keys[k], a.u[k], n, NULL) < 0)
			goto out;
	for (unsigned k = 0; k < A_U64; k++)
		if (hearth_ckpt_get_u64_array(ck, u64_keys[k], a.g[k], n, NULL) < 0)
			goto out;
	for (unsigned i = 0; i < n; i++)
		if (check_queue(t, ck, &a, i, status, features) < 0)
			goto out;
	if (hearth_pci_func_load(t->f, ck) < 0)
		goto out;

	vd->resetting = vd->frozen = false;
	vd->features = features;
	t->status = status;
	t->generation = generation;
	t->isr = isr;
	t->driver_features = driver_features;
	t->driver_features_high = high;
	t->dfselect = dfselect;
	t->gfselect = gfselect;
	t->queue_select = qsel;
	t->config_vector = cvec;
	for (unsigned i = 0; i < n; i++) {
		struct virtq *vq = &vd->vqs[i];
		uint32_t flags = a.u[A_FLAGS][i];
		virtq_reset(vq);
		vq->size = (uint16_t)a.u[A_SIZE][i];
		vq->desc_gpa = a.g[A_DESC][i];
		vq->avail_gpa = a.g[A_AVAIL][i];
		vq->used_gpa = a.g[A_USED][i];
		t->q[i].vector = (uint16_t)a.u[A_VECTOR][i];
		t->q[i].held = false;
		if (flags & VQF_ENABLED) {
			/* the same checks as the driver's enable: rings aligned and inside RAM */
			if (virtq_enable(vq, features) < 0) {
				refuse(ck, "vq.desc", "queue %u: %s", i, vq->why);
				goto out;
			}
			vq->last_avail = (uint16_t)a.u[A_LAST_AVAIL][i];
			vq->used_idx = (uint16_t)a.u[A_USED_IDX][i];
			vq->signalled_used = (uint16_t)a.u[A_SIGNALLED][i];
			vq->signalled_valid = flags & VQF_SIGNALLED;
			vq->notify_off = flags & VQF_NOTIFY_OFF;
		}
		if (flags & VQF_BROKEN)
			virtq_break(vq, "broken when the checkpoint was taken");
	}
	if ((status & STATUS_FEATURES_OK) && vd->ops->features_ok &&
	    !vd->ops->features_ok(vd, features)) {
		refuse(ck, "virtio.features", "the device refuses %#" PRIx64, features);
		goto out;
	}
	/* a notification held at the snapshot (or one the driver will not repeat) must not
	 * be lost: every live queue is looked at once the event loop runs */
	if (status & STATUS_DRIVER_OK)
		for (unsigned i = 0; i < n; i++)
			if (vd->vqs[i].enabled)
				kick(t, i);
	ret = 0;
out:
	free(a.mem);
	return ret;
}
