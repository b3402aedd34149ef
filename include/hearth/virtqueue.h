/* The split virtqueue (virtio 1.2 section 2.7) as seen from a device. The rings live in guest
 * memory, which is hostile: every index, address, length, flag and chain read from it is
 * checked, and the first impossible value marks the queue broken (the transport then sets
 * DEVICE_NEEDS_RESET). A broken queue pops nothing and pushes nothing until it is reset.
 *
 * Threads: a queue has no lock of its own; its device's lock (hearth_dev_lock) guards it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct hearth_vm;

/* Largest queue size the split ring allows. */
#define VIRTQ_SIZE_MAX 32768u

/* Feature bits the queue itself cares about (virtio 1.2 section 6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* Descriptor flags, avail/used ring flags. */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

/* A chain never carries more than this many bytes in total (either direction). */
#define VIRTQ_CHAIN_BYTES_MAX (4ull << 30)

struct virtq {
	struct hearth_vm *vm;
	uint16_t size_max; /* what the device offers (power of two) */
	uint16_t size;	   /* what the driver chose; 0 when unset */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool enabled;
	bool broken;
	bool indirect;	 /* VIRTIO_F_INDIRECT_DESC negotiated */
	bool event_idx;	 /* VIRTIO_F_RING_EVENT_IDX negotiated */
	bool notify_off; /* the device asked the driver not to kick (virtq_disable_notify) */

	/* Host views of the rings, valid while enabled (RAM never moves under a running VM). */
	void *desc, *avail, *used;
	uint16_t last_avail;	 /* next avail entry to pop */
	uint16_t used_idx;	 /* our copy of used->idx */
	uint16_t signalled_used; /* used_idx at the last notification we sent */
	bool signalled_valid;	 /* signalled_used means something */

	/* Why the queue broke, for the one log line (static strings). */
	const char *why;
};

/* A popped chain: segs[0..nread) are device-readable, segs[nread..nseg) device-writable,
 * host pointers already checked to lie in guest RAM. The caller owns the array (cap). */
struct virtq_chain {
	uint16_t head;
	unsigned nseg, nread;
	uint64_t read_len, write_len;
	unsigned cap;
	struct iovec *segs;
};

/* Forget everything the driver set; size returns to size_max. */
void virtq_init(struct virtq *vq, struct hearth_vm *vm, uint16_t size_max);
void virtq_reset(struct virtq *vq);

/* The transport stores what the driver wrote (queue_size, queue_desc, ...); virtq_enable
 * checks it all (size a power of two <= size_max, alignment, every ring inside RAM) and
 * makes the queue live with the negotiated features. Returns 0, or -1 with vq->why set and
 * the queue broken. */
int virtq_enable(struct virtq *vq, uint64_t features);

/* Pop the next available chain into c. Returns 1 with a chain, 0 when the ring is empty,
 * -1 when the queue is (or just became) broken. */
int virtq_pop(struct virtq *vq, struct virtq_chain *c);
/* The device found the popped chain impossible for its protocol (e.g. a virtio-blk request
 * without a status byte): the queue is broken as if the ring itself were bad. why is a static
 * string. */
void virtq_break(struct virtq *vq, const char *why);
/* Walk chain `head` again, with every check virtq_pop makes, without moving last_avail: a
 * chain popped before a checkpoint and not yet used, rebuilt after the restore. 0, or -1 with
 * the queue broken (vq->why). */
int virtq_chain_at(struct virtq *vq, uint16_t head, struct virtq_chain *c);
/* Give back the last popped chain unconsumed (e.g. out of resources): it pops again next. */
void virtq_unpop(struct virtq *vq);

/* Return chain `head` to the driver with `len` bytes written into its writable part. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

/* Whether the driver wants a used-buffer notification for what was pushed since the last
 * call that returned true (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX). */
bool virtq_should_notify(struct virtq *vq);

/* Ask for (or stop asking for) driver notifications: VIRTQ_USED_F_NO_NOTIFY or avail_event.
 * virtq_enable_notify returns true when more chains arrived meanwhile (pop again). */
void virtq_disable_notify(struct virtq *vq);
bool virtq_enable_notify(struct virtq *vq);

/* The rule of virtio 1.2 section 2.7.10: notify when new_idx passed event_idx since old. */
static inline bool virtq_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

/* Copy helpers over a chain's segments, starting at byte `off` of the readable (or writable)
 * part. They return the bytes copied (short when the part ends). */
size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *buf, size_t len);
size_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *buf, size_t len);
