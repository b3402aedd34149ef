/* virtio-blk request engine: each chain is parsed (header, data, status byte), checked against
 * the disk and handed to the blk backend; completions write the status, push the chain to the
 * used ring and notify the guest once per batch. Malformed chains (no header, no status
 * byte) break the queue; a request the disk cannot serve only fails with a status. */
#include "hearth/le.h"
#include "virtio/virtio_blk.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hearth/blk.h"
#include "hearth/device.h"
#include "hearth/error.h"
#include "virtio/virtio_dev.h"

#define SECTOR 512u
#define HDR_BYTES 16u
#define DWZ_BYTES 16u /* one discard / write-zeroes segment */

struct blk_hdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};

struct blk_dwz {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

struct vblk_req {
	struct hearth_blk_req br;
	uint16_t q, head;
	uint32_t gen;	  /* device generation it was popped in: stale ones are dropped */
	uint8_t *status;  /* last byte of the chain's writable part */
	uint32_t written; /* data bytes for the guest on success (IN, GET_ID) */
	struct vblk_req *next_free;
	struct iovec segs[VIRTIO_BLK_CHAIN_MAX];
};

struct vblk_queue {
	struct vblk_req *pool; /* queue-size requests: never more in flight */
	struct vblk_req *free;
	bool stalled; /* stopped popping for want of a free request */
	bool pushed;  /* used entries since the last notification decision */
};

struct virtio_blk {
	struct virtio_device vd;
	struct hearth_dev *dev;
	struct virtq *vqs;
	struct vblk_queue *qs;
	uint32_t gen;
	bool writeback;	 /* FLUSH negotiated: otherwise every write is write-through */
	bool broken;	 /* a queue saw impossible input: every queue stops until reset */
	bool watched;	 /* the backend's thread waits on the queues' notifications */
	bool polling;	 /* ... and looks at the rings unasked: the guest need not notify */
	uint64_t popped; /* chains taken so far: tells poll whether it found any */
	int logged_broken, logged_nobackend;
	char serial[VIRTIO_BLK_ID_BYTES];

	const struct hearth_blk_backend_ops *be_ops; /* NULL: no backend, requests fail */
	void *be;
	struct hearth_blk_info info;
	char be_name[128];

	/* Requests the backend accepted and has not completed (stale ones included). Guarded by
	 * idle_lock, not the device lock, so that quiesce can wait for it to reach 0 without
	 * the device lock while completions (which hold the device lock) bring it down. Lock
	 * order: device lock, then idle_lock; idle_lock is never held while taking another. */
	pthread_mutex_t idle_lock;
	pthread_cond_t idle; /* broadcast when inflight reaches 0 */
	unsigned inflight;
};

static struct virtio_blk *of_vd(struct virtio_device *vd)
{
	return vd->opaque;
}

static uint64_t capacity_sectors(const struct virtio_blk *blk)
{
	return blk->be_ops ? blk->info.size / SECTOR : 0;
}

static uint64_t offered_features(const struct virtio_blk *blk)
{
	uint64_t f = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
		     VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
		     VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);

	if (blk->vd.num_queues > 1)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_MQ);
	if (blk->be_ops && blk->info.readonly)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	if (blk->be_ops && blk->info.discard && !blk->info.readonly)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);
	if (blk->be_ops && blk->info.write_zeroes && !blk->info.readonly)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	return f;
}

/* ---- requests in flight ---- */

static void inflight_inc(struct virtio_blk *blk)
{
	pthread_mutex_lock(&blk->idle_lock);
	blk->inflight++;
	pthread_mutex_unlock(&blk->idle_lock);
}

/* Returns what is left. */
static unsigned inflight_dec(struct virtio_blk *blk)
{
	pthread_mutex_lock(&blk->idle_lock);
	unsigned left = --blk->inflight;
	if (left == 0)
		pthread_cond_broadcast(&blk->idle);
	pthread_mutex_unlock(&blk->idle_lock);
	return left;
}

static unsigned inflight_get(struct virtio_blk *blk)
{
	pthread_mutex_lock(&blk->idle_lock);
	unsigned n = blk->inflight;
	pthread_mutex_unlock(&blk->idle_lock);
	return n;
}

/* ---- completing ---- */

static void release(struct vblk_queue *bq, struct vblk_req *req)
{
	req->next_free = bq->free;
	bq->free = req;
}

static void finish(struct virtio_blk *blk, struct vblk_req *req, uint8_t status)
{
	struct vblk_queue *bq = &blk->qs[req->q];

	*req->status = status;
	virtq_push(&blk->vqs[req->q], req->head,
		   (status == VIRTIO_BLK_S_OK ? req->written : 0) + 1);
	bq->pushed = true;
	release(bq, req);
}

static void notify_guest(struct virtio_blk *blk, unsigned q)
{
	blk->qs[q].pushed = false;
	if (virtq_should_notify(&blk->vqs[q]) && blk->vd.tops && blk->vd.tops->interrupt)
		blk->vd.tops->interrupt(&blk->vd, q);
}

static void queue_broken(struct virtio_blk *blk, unsigned q)
{
	hearth_log_once(blk->logged_broken, "virtio-blk '%s': queue %u: %s; device needs reset",
			hearth_dev_id(blk->dev), q, blk->vqs[q].why);
	if (!blk->broken) {
		blk->broken = true;
		virtio_device_broken(&blk->vd);
	}
}

/* ---- parsing and dispatch ---- */

/* Bytes [0, n) of the readable segments are the header: drop them so that segs[first..nread)
 * is the OUT payload. */
static unsigned skip_read_bytes(struct vblk_req *req, unsigned nread, uint64_t n)
{
	unsigned i = 0;

	while (i < nread && n >= req->segs[i].iov_len) {
		n -= req->segs[i].iov_len;
		i++;
	}
	if (i < nread && n) {
		req->segs[i].iov_base = (uint8_t *)req->segs[i].iov_base + n;
		req->segs[i].iov_len -= n;
	}
	return i;
}

static bool in_range(const struct virtio_blk *blk, uint64_t sector, uint64_t nsectors)
{
	uint64_t cap = capacity_sectors(blk);

	return sector <= cap && nsectors <= cap - sector;
}

/* Hand br to the backend; returns the status when it finished now, or -1 when in flight. */
static int submit(struct virtio_blk *blk, struct vblk_req *req)
{
	if (!blk->be_ops) {
		hearth_log_once(blk->logged_nobackend,
				"virtio-blk '%s': no backend connected; requests fail",
				hearth_dev_id(blk->dev));
		return VIRTIO_BLK_S_IOERR;
	}
	/* counted before the backend sees it: its completion can only come later (blk.h) */
	inflight_inc(blk);
	int r = blk->be_ops->submit(blk->be, &req->br);
	if (r == HEARTH_BLK_ASYNC)
		return -1;
	inflight_dec(blk);
	return r == HEARTH_BLK_DONE ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
}

static int rw(struct virtio_blk *blk, struct vblk_req *req, const struct virtq_chain *c,
	      const struct blk_hdr *h, bool write)
{
	unsigned first, n;
	uint64_t len;

	if (write) {
		if (blk->info.readonly)
			return VIRTIO_BLK_S_IOERR;
		first = skip_read_bytes(req, c->nread, HDR_BYTES);
		n = c->nread - first;
		len = c->read_len - HDR_BYTES;
	} else {
		first = c->nread;
		n = c->nseg - c->nread;
		len = c->write_len; /* the status byte is already split off */
	}
	uint32_t align = blk->be_ops ? blk->info.block_size : SECTOR;
	/* in range first: then sector * 512 cannot overflow */
	if (len % align || !in_range(blk, h->sector, len / SECTOR) || (h->sector * SECTOR) % align)
		return VIRTIO_BLK_S_IOERR;
	if (len == 0)
		return VIRTIO_BLK_S_OK;
	req->br = (struct hearth_blk_req){
		.op = write ? HEARTH_BLK_WRITE : HEARTH_BLK_READ,
		.flags = write && !blk->writeback ? HEARTH_BLK_F_FUA : 0,
		.offset = h->sector * SECTOR,
		.len = len,
		.iov = &req->segs[first],
		.niov = n,
	};
	if (!write)
		req->written = (uint32_t)len;
	return submit(blk, req);
}

static int discard_or_zero(struct virtio_blk *blk, struct vblk_req *req,
			   const struct virtq_chain *c, bool zero)
{
	unsigned feature = zero ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD;
	uint64_t data = c->read_len - HDR_BYTES;
	struct blk_dwz seg;

	if (blk->info.readonly)
		return VIRTIO_BLK_S_IOERR;
	if (!(blk->vd.features & VIRTIO_BIT(feature)) ||
	    !(offered_features(blk) & VIRTIO_BIT(feature)))
		return VIRTIO_BLK_S_UNSUPP;
	/* one segment per request (max_*_seg = 1); a payload that is not whole segments is
	 * as wrong as too many of them */
	if (data != DWZ_BYTES)
		return VIRTIO_BLK_S_IOERR;
	virtq_chain_read(c, HDR_BYTES, &seg, sizeof(seg));
	if (seg.flags & ~VIRTIO_BLK_WZ_F_UNMAP)
		return VIRTIO_BLK_S_UNSUPP;
	if (!zero && (seg.flags & VIRTIO_BLK_WZ_F_UNMAP))
		return VIRTIO_BLK_S_UNSUPP;
	if (seg.num_sectors > VIRTIO_BLK_DISCARD_SECTORS_MAX ||
	    !in_range(blk, seg.sector, seg.num_sectors))
		return VIRTIO_BLK_S_IOERR;
	if (seg.num_sectors == 0)
		return VIRTIO_BLK_S_OK;
	req->br = (struct hearth_blk_req){
		.op = zero ? HEARTH_BLK_WRITE_ZEROES : HEARTH_BLK_DISCARD,
		.flags = zero && (seg.flags & VIRTIO_BLK_WZ_F_UNMAP) && blk->info.discard
				 ? HEARTH_BLK_F_UNMAP
				 : 0,
		.offset = seg.sector * SECTOR,
		.len = (uint64_t)seg.num_sectors * SECTOR,
	};
	return submit(blk, req);
}

/* Returns a status when the request finished now, -1 when it is in flight. */
static int dispatch(struct virtio_blk *blk, struct vblk_req *req, struct virtq_chain *c)
{
	struct blk_hdr h;

	virtq_chain_read(c, 0, &h, sizeof(h));
	switch (h.type) {
	case VIRTIO_BLK_T_IN:
		return rw(blk, req, c, &h, false);
	case VIRTIO_BLK_T_OUT:
		return rw(blk, req, c, &h, true);
	case VIRTIO_BLK_T_FLUSH:
		req->br = (struct hearth_blk_req){.op = HEARTH_BLK_FLUSH};
		return submit(blk, req);
	case VIRTIO_BLK_T_GET_ID:
		req->written = (uint32_t)virtq_chain_write(c, 0, blk->serial, sizeof(blk->serial));
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
		return discard_or_zero(blk, req, c, false);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return discard_or_zero(blk, req, c, true);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* Split off the status byte (the last byte of the writable part); false when the chain has no
 * header or no status byte, which no driver may send. */
static bool take_status(struct vblk_req *req, struct virtq_chain *c)
{
	if (c->read_len < HDR_BYTES || c->write_len < 1)
		return false;
	struct iovec *last = &c->segs[c->nseg - 1];
	req->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	if (--last->iov_len == 0)
		c->nseg--;
	c->write_len--;
	return true;
}

/* Pop and start requests until the ring is empty or every request slot is busy. */
static void run_queue(struct virtio_blk *blk, unsigned q)
{
	struct vblk_queue *bq = &blk->qs[q];
	struct virtq *vq = &blk->vqs[q];
	bool started = false;

	bq->stalled = false;
	/* a device being reset starts nothing; a frozen one (checkpoint) runs the queue when
	 * it thaws */
	if (blk->vd.frozen || blk->vd.resetting) {
		bq->stalled = blk->vd.frozen;
		return;
	}
	/* while the backend's thread polls, a kick would only cost the guest an exit; when it
	 * stopped (or a checkpoint was taken while it polled) the guest must kick again */
	if (blk->polling)
		virtq_disable_notify(vq);
	else if (vq->notify_off)
		virtq_enable_notify(vq);
	/* a broken device pops nothing more until the driver resets it */
	while (!blk->broken) {
		struct vblk_req *req = bq->free;
		if (!req) {
			bq->stalled = true; /* a completion resumes us */
			break;
		}
		struct virtq_chain c = {.cap = VIRTIO_BLK_CHAIN_MAX, .segs = req->segs};
		int r = virtq_pop(vq, &c);
		if (r == 0)
			break;
		if (r > 0 && !take_status(req, &c)) {
			virtq_break(vq, "request without header or status byte");
			r = -1;
		}
		if (r < 0) {
			queue_broken(blk, q);
			break;
		}
		bq->free = req->next_free;
		blk->popped++;
		req->q = (uint16_t)q;
		req->head = c.head;
		req->gen = blk->gen;
		req->written = 0;
		int status = dispatch(blk, req, &c);
		if (status >= 0)
			finish(blk, req, (uint8_t)status);
		else
			started = true;
	}
	if (started && blk->be_ops && blk->be_ops->kick)
		blk->be_ops->kick(blk->be);
	if (bq->pushed)
		notify_guest(blk, q);
}

/* ---- virtio device ops (device lock held by the transport) ---- */

static void vblk_config_read(struct virtio_device *vd, uint32_t offset, void *buf, uint32_t len)
{
	struct virtio_blk *blk = of_vd(vd);
	uint8_t cfg[VIRTIO_BLK_CFG_LEN] = {0};
	uint32_t bs = blk->be_ops ? blk->info.block_size : SECTOR;
	uint32_t align = bs / SECTOR;

	le_put(cfg + VIRTIO_BLK_CFG_CAPACITY, capacity_sectors(blk), 8);
	le_put(cfg + VIRTIO_BLK_CFG_SEG_MAX, VIRTIO_BLK_SEG_MAX, 4);
	le_put(cfg + VIRTIO_BLK_CFG_BLK_SIZE, bs, 4);
	le_put(cfg + VIRTIO_BLK_CFG_WRITEBACK, blk->writeback, 1);
	le_put(cfg + VIRTIO_BLK_CFG_NUM_QUEUES, vd->num_queues, 2);
	le_put(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, VIRTIO_BLK_DISCARD_SECTORS_MAX, 4);
	le_put(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 1, 4);
	le_put(cfg + VIRTIO_BLK_CFG_DISCARD_ALIGN, align, 4);
	le_put(cfg + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, VIRTIO_BLK_DISCARD_SECTORS_MAX, 4);
	le_put(cfg + VIRTIO_BLK_CFG_MAX_WZ_SEG, 1, 4);
	le_put(cfg + VIRTIO_BLK_CFG_WZ_MAY_UNMAP, blk->be_ops && blk->info.discard, 1);
	if (offset >= sizeof(cfg) || len > sizeof(cfg) - offset) {
		memset(buf, 0, len); /* the transport checks; stay safe regardless */
		return;
	}
	memcpy(buf, cfg + offset, len);
}

static bool vblk_features_ok(struct virtio_device *vd, uint64_t features)
{
	of_vd(vd)->writeback = features & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
	return true;
}

static void vblk_notify(struct virtio_device *vd, unsigned q)
{
	if (q < vd->num_queues)
		run_queue(of_vd(vd), q);
}

static void vblk_reset(struct virtio_device *vd)
{
	struct virtio_blk *blk = of_vd(vd);

	/* requests still in flight keep their slots until the backend reports them; their
	 * results are then dropped (the generation moved on) */
	blk->gen++;
	blk->writeback = false;
	blk->broken = false;
	for (unsigned q = 0; q < vd->num_queues; q++)
		blk->qs[q].stalled = blk->qs[q].pushed = false;
}

static bool vblk_in_flight(struct virtio_device *vd)
{
	return inflight_get(of_vd(vd)) > 0;
}

static const struct virtio_device_ops vblk_ops = {
	.config_read = vblk_config_read,
	.features_ok = vblk_features_ok,
	.notify = vblk_notify,
	.reset = vblk_reset,
	.in_flight = vblk_in_flight,
};

/* ---- blk frontend ops (backend side) ---- */

/* Without the device lock (the transport may wait for a kick running on the event loop). */
static void give_back_notify(struct virtio_blk *blk, unsigned n)
{
	for (unsigned q = 0; q < n; q++)
		blk->vd.tops->give_notify(&blk->vd, q);
}

/* A backend with an I/O thread waits on the queues' notifications itself. */
static void watch_notify(struct virtio_blk *blk, const struct hearth_blk_backend_ops *ops, void *be)
{
	const struct virtio_transport_ops *tops = blk->vd.tops;
	int fds[VIRTIO_BLK_QUEUES_MAX];
	unsigned n = blk->vd.num_queues;

	if (!ops->watch || !tops || !tops->take_notify || !tops->give_notify || !tops->notified)
		return;
	for (unsigned q = 0; q < n; q++) {
		fds[q] = tops->take_notify(&blk->vd, q);
		if (fds[q] < 0) {
			give_back_notify(blk, q);
			return;
		}
	}
	if (ops->watch(be, fds, n) < 0)
		give_back_notify(blk, n);
	else
		blk->watched = true;
}

static int fe_attach(void *fe, const struct hearth_blk_info *info,
		     const struct hearth_blk_backend_ops *ops, void *be)
{
	struct virtio_blk *blk = fe;

	if (info->size % SECTOR || info->block_size < SECTOR ||
	    (info->block_size & (info->block_size - 1)) || info->size % info->block_size)
		return hearth_err("disk size %llu is not a multiple of its block size %u",
				  (unsigned long long)info->size, info->block_size);
	hearth_dev_lock(blk->dev);
	blk->info = *info;
	snprintf(blk->be_name, sizeof(blk->be_name), "%s", info->name ? info->name : "");
	blk->info.name = blk->be_name;
	blk->be_ops = ops;
	blk->be = be;
	blk->vd.offered = offered_features(blk);
	hearth_dev_unlock(blk->dev);
	watch_notify(blk, ops, be);
	return 0;
}

static void fe_detach(void *fe)
{
	struct virtio_blk *blk = fe;

	/* the backend's thread is gone: the event loop takes the notifications back */
	if (blk->watched) {
		give_back_notify(blk, blk->vd.num_queues);
		blk->watched = false;
	}
	hearth_dev_lock(blk->dev);
	blk->polling = false;
	blk->be_ops = NULL;
	blk->be = NULL;
	blk->info = (struct hearth_blk_info){0};
	blk->vd.offered = offered_features(blk);
	hearth_dev_unlock(blk->dev);
}

static void fe_complete(void *fe, struct hearth_blk_req *br, int result)
{
	struct virtio_blk *blk = fe;
	struct vblk_req *req = (struct vblk_req *)((char *)br - offsetof(struct vblk_req, br));

	hearth_dev_lock(blk->dev);
	if (req->gen == blk->gen)
		finish(blk, req, result == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR);
	else
		release(&blk->qs[req->q], req);
	/* the last old request of a reset finished moving data: the reset may complete */
	if (inflight_dec(blk) == 0 && blk->vd.resetting && blk->vd.tops && blk->vd.tops->reset_done)
		blk->vd.tops->reset_done(&blk->vd);
	hearth_dev_unlock(blk->dev);
}

static void fe_complete_done(void *fe)
{
	struct virtio_blk *blk = fe;

	hearth_dev_lock(blk->dev);
	for (unsigned q = 0; q < blk->vd.num_queues; q++) {
		if (blk->qs[q].stalled)
			run_queue(blk, q); /* notifies as well */
		else if (blk->qs[q].pushed)
			notify_guest(blk, q);
	}
	hearth_dev_unlock(blk->dev);
}

static void fe_kicked(void *fe, unsigned i)
{
	struct virtio_blk *blk = fe;

	hearth_dev_lock(blk->dev);
	if (i < blk->vd.num_queues && blk->vd.tops && blk->vd.tops->notified)
		blk->vd.tops->notified(&blk->vd, i);
	hearth_dev_unlock(blk->dev);
}

static bool fe_poll(void *fe, bool on)
{
	struct virtio_blk *blk = fe;

	hearth_dev_lock(blk->dev);
	uint64_t before = blk->popped;
	blk->polling = on;
	for (unsigned q = 0; blk->vd.tops && blk->vd.tops->notified && q < blk->vd.num_queues;
	     q++) {
		/* stopping: notifications back on, and a last look for what came before that */
		if (!on && (!blk->vqs[q].notify_off || !virtq_enable_notify(&blk->vqs[q])))
			continue;
		/* through the transport: it knows whether the queue is live, or frozen */
		blk->vd.tops->notified(&blk->vd, q);
	}
	bool found = blk->popped != before;
	hearth_dev_unlock(blk->dev);
	return found;
}

static const struct hearth_blk_frontend_ops fe_ops = {
	.attach = fe_attach,
	.detach = fe_detach,
	.complete = fe_complete,
	.complete_done = fe_complete_done,
	.kicked = fe_kicked,
	.poll = fe_poll,
};

/* ---- construction ---- */

int virtio_blk_setup(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	uint64_t nq, qsize;
	const char *serial;

	if (hearth_cfg_u64(cfg, "queues", 1, 1, VIRTIO_BLK_QUEUES_MAX, &nq) < 0 ||
	    hearth_cfg_u64(cfg, "queue-size", VIRTIO_BLK_QUEUE_SIZE, 2, 1024, &qsize) < 0 ||
	    hearth_cfg_str(cfg, "serial", hearth_dev_id(dev), &serial) < 0)
		return -1;
	if (qsize & (qsize - 1))
		return hearth_err("key 'queue-size': %llu is not a power of two",
				  (unsigned long long)qsize);
	if (strlen(serial) > VIRTIO_BLK_ID_BYTES)
		return hearth_err("key 'serial': '%s' is longer than %d bytes", serial,
				  VIRTIO_BLK_ID_BYTES);

	struct virtio_blk *blk = calloc(1, sizeof(*blk));
	if (!blk)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, blk);
	blk->dev = dev;
	pthread_mutex_init(&blk->idle_lock, NULL);
	pthread_cond_init(&blk->idle, NULL);
	/* zero-padded; no NUL when all 20 bytes are used, as the spec allows */
	memcpy(blk->serial, serial, strlen(serial));
	blk->vqs = calloc(nq, sizeof(*blk->vqs));
	blk->qs = calloc(nq, sizeof(*blk->qs));
	if (!blk->vqs || !blk->qs)
		return hearth_err("out of memory");
	blk->vd = (struct virtio_device){
		.dev = dev,
		.ops = &vblk_ops,
		.opaque = blk,
		.device_id = VIRTIO_ID_BLOCK,
		.config_len = VIRTIO_BLK_CFG_LEN,
		.num_queues = (unsigned)nq,
		.vqs = blk->vqs,
	};
	for (unsigned q = 0; q < nq; q++) {
		struct vblk_queue *bq = &blk->qs[q];
		virtq_init(&blk->vqs[q], hearth_dev_vm(dev), (uint16_t)qsize);
		bq->pool = calloc(qsize, sizeof(*bq->pool));
		if (!bq->pool)
			return hearth_err("out of memory for %llu requests",
					  (unsigned long long)qsize);
		for (unsigned i = 0; i < qsize; i++)
			release(bq, &bq->pool[qsize - 1 - i]);
	}
	blk->vd.offered = offered_features(blk);
	return hearth_frontend_register(dev, HEARTH_FE_BLK, &fe_ops, blk);
}

struct virtio_device *virtio_blk_vdev(struct hearth_dev *dev)
{
	struct virtio_blk *blk = hearth_dev_priv(dev);

	return blk ? &blk->vd : NULL;
}

void virtio_blk_free(struct hearth_dev *dev)
{
	struct virtio_blk *blk = hearth_dev_priv(dev);

	if (!blk)
		return;
	if (blk->qs)
		for (unsigned q = 0; q < blk->vd.num_queues; q++)
			free(blk->qs[q].pool);
	free(blk->qs);
	free(blk->vqs);
	pthread_cond_destroy(&blk->idle);
	pthread_mutex_destroy(&blk->idle_lock);
	free(blk);
	hearth_dev_set_priv(dev, NULL);
}

void virtio_blk_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	struct virtio_blk *blk = hearth_dev_priv(dev);

	snprintf(buf, len, "%u queue%s, %s", blk->vd.num_queues, blk->vd.num_queues == 1 ? "" : "s",
		 blk->be_ops ? blk->be_name : "no backend");
}

/* ---- checkpoints ---- */

int virtio_blk_wait_idle(struct hearth_dev *dev, unsigned timeout_ms, unsigned *waited)
{
	struct virtio_blk *blk = hearth_dev_priv(dev);
	struct timespec end;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_sec += timeout_ms / 1000;
	end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&blk->idle_lock);
	if (waited)
		*waited = blk->inflight;
	while (blk->inflight && err == 0)
		err = pthread_cond_timedwait(&blk->idle, &blk->idle_lock, &end);
	unsigned left = blk->inflight;
	pthread_mutex_unlock(&blk->idle_lock);
	if (left)
		return hearth_err("%u request%s still in flight after %u ms", left,
				  left == 1 ? "" : "s", timeout_ms);
	/* completions of the last batch may not have notified yet: do it now, so the guest
	 * is not left without the interrupt for what is already in its used rings */
	hearth_dev_lock(dev);
	for (unsigned q = 0; q < blk->vd.num_queues; q++)
		if (blk->qs[q].pushed)
			notify_guest(blk, q);
	hearth_dev_unlock(dev);
	return 0;
}

void virtio_blk_resume(struct hearth_dev *dev)
{
	struct virtio_blk *blk = hearth_dev_priv(dev);

	for (unsigned q = 0; q < blk->vd.num_queues; q++)
		if (blk->qs[q].stalled)
			run_queue(blk, q);
}

unsigned virtio_blk_in_flight(struct hearth_dev *dev)
{
	return inflight_get(hearth_dev_priv(dev));
}

bool virtio_blk_broken(struct hearth_dev *dev)
{
	return ((struct virtio_blk *)hearth_dev_priv(dev))->broken;
}

void virtio_blk_restored(struct hearth_dev *dev, bool broken)
{
	struct virtio_blk *blk = hearth_dev_priv(dev);

	blk->broken = broken;
	for (unsigned q = 0; q < blk->vd.num_queues; q++)
		blk->qs[q].stalled = blk->qs[q].pushed = false;
}
