/* A guest driver's side of a split virtqueue in fake guest RAM, for the virtqueue and
 * virtio-blk tests: it lays out the rings, writes descriptors, posts heads and reads the used
 * ring exactly as the driver would, through the RAM bytes only. */
#pragma once

#include <stdint.h>
#include <string.h>

#include "fakevm.h"
#include "hearth/virtqueue.h"

struct vqdrv {
	uint8_t *ram;
	struct virtq *vq;
	uint16_t size;
	uint64_t desc, avail, used; /* guest physical */
	uint16_t avail_idx;	    /* driver's shadow of avail->idx */
	uint16_t last_used;
};

static inline void vqdrv_w16(struct vqdrv *d, uint64_t gpa, uint16_t v)
{
	memcpy(d->ram + gpa, &v, 2);
}

static inline uint16_t vqdrv_r16(struct vqdrv *d, uint64_t gpa)
{
	uint16_t v;
	memcpy(&v, d->ram + gpa, 2);
	return v;
}

static inline uint32_t vqdrv_r32(struct vqdrv *d, uint64_t gpa)
{
	uint32_t v;
	memcpy(&v, d->ram + gpa, 4);
	return v;
}

/* Rings at base: descriptors, then the avail ring, then the used ring (4-aligned), each with
 * room for the event fields. Sets the queue's addresses; does not enable it. */
static inline void vqdrv_init(struct vqdrv *d, struct fakevm *f, struct virtq *vq, uint16_t size,
			      uint64_t base)
{
	memset(d, 0, sizeof(*d));
	d->ram = f->ram;
	d->vq = vq;
	d->size = size;
	d->desc = base;
	d->avail = base + 16ull * size;
	d->used = (d->avail + 6 + 2ull * size + 3) & ~3ull;
	memset(d->ram + base, 0, d->used + 6 + 8ull * size - base);
	vq->size = size;
	vq->desc_gpa = d->desc;
	vq->avail_gpa = d->avail;
	vq->used_gpa = d->used;
}

static inline void vqdrv_desc_at(uint8_t *ram, uint64_t table, unsigned i, uint64_t addr,
				 uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *p = ram + table + 16ull * i;
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static inline void vqdrv_desc(struct vqdrv *d, unsigned i, uint64_t addr, uint32_t len,
			      uint16_t flags, uint16_t next)
{
	vqdrv_desc_at(d->ram, d->desc, i, addr, len, flags, next);
}

/* Put head in the next avail slot and publish the index. */
static inline void vqdrv_post(struct vqdrv *d, uint16_t head)
{
	vqdrv_w16(d, d->avail + 4 + 2ull * (d->avail_idx % d->size), head);
	d->avail_idx++;
	vqdrv_w16(d, d->avail + 2, d->avail_idx);
}

/* Publish an arbitrary avail index (hostile drivers). */
static inline void vqdrv_set_avail_idx(struct vqdrv *d, uint16_t idx)
{
	d->avail_idx = idx;
	vqdrv_w16(d, d->avail + 2, idx);
}

static inline uint16_t vqdrv_used_idx(struct vqdrv *d)
{
	return vqdrv_r16(d, d->used + 2);
}

/* Next used element: 1 with id/len, 0 when none. */
static inline int vqdrv_get_used(struct vqdrv *d, uint32_t *id, uint32_t *len)
{
	if (vqdrv_used_idx(d) == d->last_used)
		return 0;
	uint64_t e = d->used + 4 + 8ull * (d->last_used % d->size);
	*id = vqdrv_r32(d, e);
	*len = vqdrv_r32(d, e + 4);
	d->last_used++;
	return 1;
}

static inline void vqdrv_set_avail_flags(struct vqdrv *d, uint16_t flags)
{
	vqdrv_w16(d, d->avail, flags);
}

static inline void vqdrv_set_used_event(struct vqdrv *d, uint16_t v)
{
	vqdrv_w16(d, d->avail + 4 + 2ull * d->size, v);
}

static inline uint16_t vqdrv_avail_event(struct vqdrv *d)
{
	return vqdrv_r16(d, d->used + 4 + 8ull * d->size);
}

static inline uint16_t vqdrv_used_flags(struct vqdrv *d)
{
	return vqdrv_r16(d, d->used);
}
