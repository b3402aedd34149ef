/* Split virtqueue, device side (virtio 1.2 section 2.7). The driver may rewrite any ring
 * byte at any moment, so every descriptor is copied out once and only the copy is checked
 * and used. Shared indexes are read with acquire and published with release ordering; the
 * notification decisions need a full fence between our store and the driver's field. */
#include "hearth/virtqueue.h"

#include <string.h>

#include "hearth/guestmem.h"

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vused_elem {
	uint32_t id;
	uint32_t len;
};

/* Ring field offsets (all little-endian; hearth runs x86 guests on x86 hosts). */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING 4
#define USED_FLAGS 0
#define USED_IDX 2
#define USED_RING 4

static uint16_t *avail_field(const struct virtq *vq, uint32_t off)
{
	return (uint16_t *)((uint8_t *)vq->avail + off);
}

static uint16_t *used_field(const struct virtq *vq, uint32_t off)
{
	return (uint16_t *)((uint8_t *)vq->used + off);
}

/* used_event lives after the avail ring, avail_event after the used ring. */
static uint16_t *used_event(const struct virtq *vq)
{
	return avail_field(vq, AVAIL_RING + 2u * vq->size);
}

static uint16_t *avail_event(const struct virtq *vq)
{
	return used_field(vq, USED_RING + 8u * vq->size);
}

static uint16_t load16(const uint16_t *p, int order)
{
	return __atomic_load_n(p, order);
}

static void store16(uint16_t *p, uint16_t v, int order)
{
	__atomic_store_n(p, v, order);
}

static int broken(struct virtq *vq, const char *why)
{
	if (!vq->broken) {
		vq->broken = true;
		vq->why = why;
	}
	return -1;
}

void virtq_break(struct virtq *vq, const char *why)
{
	broken(vq, why);
}

void virtq_init(struct virtq *vq, struct hearth_vm *vm, uint16_t size_max)
{
	memset(vq, 0, sizeof(*vq));
	vq->vm = vm;
	vq->size_max = size_max;
	vq->size = size_max;
}

void virtq_reset(struct virtq *vq)
{
	virtq_init(vq, vq->vm, vq->size_max);
}

int virtq_enable(struct virtq *vq, uint64_t features)
{
	uint32_t n = vq->size;
	bool ev = features & (1ull << VIRTIO_F_RING_EVENT_IDX);

	vq->enabled = false;
	if (n == 0 || n > vq->size_max || (n & (n - 1)))
		return broken(vq, "queue size is not a power of two within the maximum");
	if (vq->desc_gpa % 16 || vq->avail_gpa % 2 || vq->used_gpa % 4)
		return broken(vq, "ring address misaligned");
	/* the event fields exist (and are read) only with EVENT_IDX */
	vq->desc = hearth_gpa_ptr(vq->vm, vq->desc_gpa, 16ull * n);
	vq->avail = hearth_gpa_ptr(vq->vm, vq->avail_gpa, 4ull + 2ull * n + (ev ? 2 : 0));
	vq->used = hearth_gpa_ptr(vq->vm, vq->used_gpa, 4ull + 8ull * n + (ev ? 2 : 0));
	if (!vq->desc || !vq->avail || !vq->used)
		return broken(vq, "ring outside guest RAM");
	vq->indirect = features & (1ull << VIRTIO_F_INDIRECT_DESC);
	vq->event_idx = ev;
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->signalled_valid = false;
	vq->notify_off = false;
	vq->enabled = true;
	return 0;
}

static int add_seg(struct virtq *vq, struct virtq_chain *c, const struct vdesc *d, bool *seen_write)
{
	bool w = d->flags & VIRTQ_DESC_F_WRITE;
	uint64_t *total = w ? &c->write_len : &c->read_len;

	if (w)
		*seen_write = true;
	else if (*seen_write)
		return broken(vq, "device-readable descriptor after a writable one");
	if (d->len == 0)
		return 0; /* touches no memory: nothing to translate or keep */
	if (d->len > VIRTQ_CHAIN_BYTES_MAX - *total)
		return broken(vq, "chain longer than 4 GiB");
	if (c->nseg >= c->cap)
		return broken(vq, "chain has more segments than the device accepts");
	void *p = hearth_gpa_ptr(vq->vm, d->addr, d->len);
	if (!p)
		return broken(vq, "buffer outside guest RAM");
	*total += d->len;
	c->segs[c->nseg].iov_base = p;
	c->segs[c->nseg].iov_len = d->len;
	c->nseg++;
	if (!w)
		c->nread++;
	return 0;
}

/* Follow the chain at head through the descriptor table and at most one indirect table. */
static int walk(struct virtq *vq, uint16_t head, struct virtq_chain *c)
{
	const uint8_t *table = vq->desc; /* an indirect table need not be aligned */
	uint32_t table_len = vq->size;
	uint32_t budget = vq->size; /* descriptors left before the chain must have ended */
	bool in_indirect = false, seen_write = false;
	uint32_t i = head;
	struct vdesc d;

	c->head = head;
	c->nseg = c->nread = 0;
	c->read_len = c->write_len = 0;
	for (;;) {
		if (budget-- == 0)
			return broken(vq, in_indirect ? "indirect table chain loops"
						      : "descriptor chain loops or is longer than "
							"the queue");
		memcpy(&d, table + 16u * i, sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!vq->indirect)
				return broken(vq, "indirect descriptor without INDIRECT_DESC");
			if (in_indirect)
				return broken(vq, "indirect descriptor inside an indirect table");
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return broken(vq, "indirect descriptor with NEXT set");
			if (d.len == 0 || d.len % 16 || d.len / 16 > VIRTQ_SIZE_MAX)
				return broken(vq, "indirect table length is not 16..512K in "
						  "steps of 16");
			table = hearth_gpa_ptr(vq->vm, d.addr, d.len);
			if (!table)
				return broken(vq, "indirect table outside guest RAM");
			table_len = budget = d.len / 16;
			in_indirect = true;
			i = 0;
			continue;
		}
		if (add_seg(vq, c, &d, &seen_write) < 0)
			return -1;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= table_len)
			return broken(vq, "next descriptor index beyond the table");
		i = d.next;
	}
}

/* With EVENT_IDX the device asks for a kick at the next new entry by publishing
 * avail_event = last_avail; the fence orders that store before re-reading avail->idx, pairing
 * with the driver's store of idx before its load of avail_event. */
static uint16_t publish_avail_event(struct virtq *vq)
{
	store16(avail_event(vq), vq->last_avail, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return load16(avail_field(vq, AVAIL_IDX), __ATOMIC_ACQUIRE);
}

int virtq_pop(struct virtq *vq, struct virtq_chain *c)
{
	if (vq->broken)
		return -1;
	if (!vq->enabled)
		return 0;
	uint16_t avail = load16(avail_field(vq, AVAIL_IDX), __ATOMIC_ACQUIRE);
	if (avail == vq->last_avail && vq->event_idx && !vq->notify_off)
		avail = publish_avail_event(vq);
	uint16_t pending = avail - vq->last_avail;
	if (pending > vq->size)
		return broken(vq, "avail index moved by more than the queue size");
	if (pending == 0)
		return 0;
	uint16_t head = load16(avail_field(vq, AVAIL_RING + 2u * (vq->last_avail & (vq->size - 1))),
			       __ATOMIC_RELAXED);
	if (head >= vq->size)
		return broken(vq, "avail ring names a descriptor beyond the queue size");
	if (walk(vq, head, c) < 0)
		return -1;
	vq->last_avail++;
	return 1;
}

int virtq_chain_at(struct virtq *vq, uint16_t head, struct virtq_chain *c)
{
	if (vq->broken)
		return -1;
	if (!vq->enabled)
		return broken(vq, "chain of a queue that is not enabled");
	if (head >= vq->size)
		return broken(vq, "chain head beyond the queue size");
	return walk(vq, head, c);
}

void virtq_unpop(struct virtq *vq)
{
	vq->last_avail--;
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	if (vq->broken || !vq->enabled)
		return;
	struct vused_elem *e = (struct vused_elem *)used_field(
		vq, USED_RING + 8u * (vq->used_idx & (vq->size - 1)));
	__atomic_store_n(&e->id, head, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, len, __ATOMIC_RELAXED);
	vq->used_idx++;
	/* the element is visible before the index that hands it over */
	store16(used_field(vq, USED_IDX), vq->used_idx, __ATOMIC_RELEASE);
}

bool virtq_should_notify(struct virtq *vq)
{
	if (vq->broken || !vq->enabled)
		return false;
	uint16_t old = vq->signalled_used, now = vq->used_idx;
	bool valid = vq->signalled_valid;

	/* nothing pushed since the last decision (callers decide at least once per batch,
	 * and a batch never holds 65536 entries, so equal means nothing new) */
	if (old == now)
		return false;
	/* our used->idx store before the driver's suppression field, as the driver orders its
	 * field store before reading used->idx */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->signalled_used = now;
	vq->signalled_valid = true;
	if (!vq->event_idx)
		return !(load16(avail_field(vq, AVAIL_FLAGS), __ATOMIC_RELAXED) &
			 VIRTQ_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	return virtq_need_event(load16(used_event(vq), __ATOMIC_RELAXED), now, old);
}

void virtq_disable_notify(struct virtq *vq)
{
	if (vq->broken || !vq->enabled || vq->notify_off)
		return;
	vq->notify_off = true;
	/* With EVENT_IDX the driver kicks when its index crosses avail_event. Where the ring
	 * last ran empty it equals the driver's index, so the very next entry would still kick;
	 * one behind everything we popped is crossed by no entry the driver can add (it is
	 * never more than the queue size ahead of us). */
	if (vq->event_idx)
		store16(avail_event(vq), (uint16_t)(vq->last_avail - 1), __ATOMIC_RELAXED);
	else
		store16(used_field(vq, USED_FLAGS), VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

bool virtq_enable_notify(struct virtq *vq)
{
	if (vq->broken || !vq->enabled)
		return false;
	vq->notify_off = false;
	uint16_t avail;
	if (vq->event_idx) {
		avail = publish_avail_event(vq);
	} else {
		store16(used_field(vq, USED_FLAGS), 0, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail = load16(avail_field(vq, AVAIL_IDX), __ATOMIC_ACQUIRE);
	}
	return avail != vq->last_avail;
}

size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < c->nread && done < len; i++) {
		const struct iovec *s = &c->segs[i];
		if (off >= s->iov_len) {
			off -= s->iov_len;
			continue;
		}
		size_t n = s->iov_len - off;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)buf + done, (uint8_t *)s->iov_base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = c->nread; i < c->nseg && done < len; i++) {
		const struct iovec *s = &c->segs[i];
		if (off >= s->iov_len) {
			off -= s->iov_len;
			continue;
		}
		size_t n = s->iov_len - off;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)s->iov_base + off, (const uint8_t *)buf + done, n);
		done += n;
		off = 0;
	}
	return done;
}
