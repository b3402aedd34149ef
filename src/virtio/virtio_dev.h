/* The line between a virtio device model (virtio-blk, virtio-console, virtio-rng: what the
 * requests mean) and the transport that shows it to the guest (virtio-pci: registers,
 * feature negotiation, status, notifications, interrupts). A device fills a struct
 * virtio_device and hands it to the transport; each side then calls the other only through
 * the two ops tables below.
 *
 * Locking: the device's hearth_dev lock (vd->dev) guards the whole struct, its queues and
 * the device's own state. The transport holds it around every virtio_device_ops call
 * (register writes arrive with it held; a queue notification from an ioeventfd is taken on
 * the event-loop thread, which locks it first). The device calls virtio_transport_ops with
 * the lock held too; the transport must not take another device's lock inside them.
 *
 * Reset with requests in flight (virtio 1.2 section 4.1.4.3.2: after writing 0 to
 * device_status the driver waits until it reads back 0). A device whose backend may still be
 * moving data for old requests says so with in_flight; the transport then keeps reporting the
 * old device_status and ignores the driver's register writes and notifications until the
 * device calls tops->reset_done (lock held) as its last old request completes. Only then are
 * the queues reset and the features cleared, so no old request touches guest memory after
 * the driver saw the reset done. The old requests' results are discarded, never pushed.
 *
 * Checkpoints: virtio_transport_freeze/thaw bracket a snapshot. While frozen, notifications
 * are held (replayed by thaw) and the device must start no I/O of its own (completions of
 * requests already in flight are still delivered). virtio_transport_save/load carry the PCI
 * function and the transport's state, queues included; load validates every value. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/virtqueue.h"

struct hearth_dev;
struct hearth_cfg;
struct virtio_device;

/* Device types (virtio 1.2 section 5). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_ENTROPY 4

/* device_status bits a device may need (virtio 1.2 section 2.1). */
#define VIRTIO_STATUS_DRIVER_OK 4

/* Transport-level feature bits (VIRTIO_F_INDIRECT_DESC, _RING_EVENT_IDX, _VERSION_1 are in
 * hearth/virtqueue.h). */
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED 34
#define VIRTIO_BIT(n) (1ull << (n))

struct virtio_device_ops {
	/* Device-specific configuration space. The transport has checked that
	 * [offset, offset+len) lies inside config_len and that len is 1, 2, 4 or 8 (an 8-byte
	 * field may also be read as two 4-byte halves). Little-endian bytes. */
	void (*config_read)(struct virtio_device *vd, uint32_t offset, void *buf, uint32_t len);
	/* NULL when the whole space is read-only (writes are then ignored). */
	void (*config_write)(struct virtio_device *vd, uint32_t offset, const void *buf,
			     uint32_t len);
	/* The driver set FEATURES_OK with these features (already a subset of vd->offered and
	 * including VIRTIO_F_VERSION_1: the transport checks both). Return false to refuse:
	 * FEATURES_OK then stays clear. May be NULL (accept). vd->features is set on true. */
	bool (*features_ok)(struct virtio_device *vd, uint64_t features);
	/* The driver set DRIVER_OK: enabled queues are live. May be NULL. */
	void (*driver_ok)(struct virtio_device *vd);
	/* The driver notified queue q (q < num_queues, the queue enabled). Called on the
	 * event-loop thread for ioeventfd kicks; also allowed from a vCPU thread when the
	 * transport has no ioeventfd for that queue. */
	void (*notify)(struct virtio_device *vd, unsigned q);
	/* Device reset (status 0 written, or machine reset): forget the driver's state, start
	 * nothing new and discard the results of requests in flight (their late completions are
	 * not pushed). The transport then calls virtq_reset on every queue and clears
	 * vd->features: at once, or after reset_done when in_flight said so (see the top). */
	void (*reset)(struct virtio_device *vd);
	/* Whether requests handed to a backend are still unfinished (their data may still
	 * move). May be NULL: never. */
	bool (*in_flight)(struct virtio_device *vd);
};

struct virtio_transport_ops {
	/* Used-buffer notification for queue q: the device calls it only after
	 * virtq_should_notify returned true. MSI-X vector or INTx + ISR bit 0 is the
	 * transport's business. */
	void (*interrupt)(struct virtio_device *vd, unsigned q);
	/* The device changed its configuration space: bump config_generation, raise the
	 * configuration-change interrupt (ISR bit 1 / config MSI-X vector). */
	void (*config_changed)(struct virtio_device *vd);
	/* The device saw impossible input (a broken queue): set DEVICE_NEEDS_RESET in
	 * device_status and raise the configuration-change interrupt. The device logs once. */
	void (*needs_reset)(struct virtio_device *vd);
	/* The reset the transport kept pending (vd->resetting) may finish: the device's last
	 * request in flight completed. May be NULL in transports that never defer a reset. */
	void (*reset_done)(struct virtio_device *vd);
	/* Queue q's notifications move to a thread of the device's own (a disk backend's I/O
	 * thread): the transport stops watching q's eventfd on the event loop and returns it
	 * (-1: none, notifications keep coming through ops->notify). The device then waits on
	 * it itself and calls notified() for each wake-up; give_notify hands it back to the
	 * event loop. Both without the device lock (the loop may be running a kick that waits
	 * for it). May be NULL: the transport keeps its notifications. */
	int (*take_notify)(struct virtio_device *vd, unsigned q);
	void (*give_notify)(struct virtio_device *vd, unsigned q);
	/* Lock held: what the transport does with a notification of q (the device's own thread
	 * saw its eventfd, or the device looks at q unasked while it polls): held while frozen,
	 * ignored unless the device is live (DRIVER_OK, no reset pending, q enabled and not
	 * broken), else ops->notify. */
	void (*notified)(struct virtio_device *vd, unsigned q);
};

struct virtio_device {
	/* ---- filled by the device before it attaches a transport ---- */
	struct hearth_dev *dev; /* owner: its lock guards everything here */
	const struct virtio_device_ops *ops;
	void *opaque;	     /* the device's own state */
	uint16_t device_id;  /* VIRTIO_ID_* */
	uint64_t offered;    /* device feature bits, VIRTIO_F_VERSION_1 included */
	uint32_t config_len; /* bytes of device-specific config space */
	unsigned num_queues; /* 1..65535 */
	struct virtq *vqs;   /* num_queues queues, each virtq_init'ed with its size_max */

	/* ---- owned by the transport ---- */
	uint64_t features; /* negotiated; 0 until FEATURES_OK */
	bool resetting;	   /* a reset waits for requests in flight: start nothing new */
	bool frozen;	   /* between freeze and thaw: start no I/O, notifications are held */
	const struct virtio_transport_ops *tops;
	void *transport; /* the transport's state */
};

/* Implemented by the transport (src/virtio/virtio_pci.c): present vd to the guest as a PCI
 * function, reading the transport's keys from cfg (e.g. "addr"). virtio_transport_attach
 * fills vd->tops/transport, hooks the function and wires notifications; on failure returns
 * -1 with hearth_err set and leaves nothing hooked. Called from the device class's init with
 * the device's config node; detach from its free (hooks are already gone then). */
int virtio_transport_attach(struct virtio_device *vd, struct hearth_cfg *cfg);
void virtio_transport_detach(struct virtio_device *vd);
/* Machine reset (the device class's reset op, lock held): the transport returns to its
 * power-on state and does what a driver's status-0 write does (ops->reset, virtq_reset). */
void virtio_transport_reset(struct virtio_device *vd);
/* One line for `hearth devices` (a class's describe op): where the transport put the device. */
void virtio_transport_describe(struct virtio_device *vd, char *buf, size_t len);

/* Checkpoints (device lock held). freeze: hold queue notifications until thaw, which replays
 * them; the device checks vd->frozen wherever it starts I/O by itself (a completion resuming a
 * stalled queue, input from a backend). save/load: the PCI function (hearth_pci_func_save)
 * and the transport's fields "virtio.*" and "vq.*" in the device's context. load refuses any
 * value a driver could not have produced (a queue size that is not a power of two within the
 * maximum, rings outside RAM, indexes further apart than the queue size, features never
 * offered, ...) naming the key, asks ops->features_ok to accept the saved features again, and
 * has every live queue looked at once the event loop runs (a notification held at the
 * snapshot is not lost). Saving while a reset is pending is refused. */
void virtio_transport_freeze(struct virtio_device *vd);
void virtio_transport_thaw(struct virtio_device *vd);
struct hearth_ckpt;
int virtio_transport_save(struct virtio_device *vd, struct hearth_ckpt *ck);
int virtio_transport_load(struct virtio_device *vd, struct hearth_ckpt *ck);
/* device_status as the driver last set it (DRIVER_OK, ...), 0 without a transport. */
uint8_t virtio_transport_status(const struct virtio_device *vd);

/* Convenience for devices: mark the device as needing a reset (calls tops->needs_reset once
 * per broken episode; safe before a transport is attached). */
static inline void virtio_device_broken(struct virtio_device *vd)
{
	if (vd->tops && vd->tops->needs_reset)
		vd->tops->needs_reset(vd);
}
