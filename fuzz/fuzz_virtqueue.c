/* libFuzzer target: a hostile guest driving a virtio-blk queue. The input is a small header
 * (queue size, features, ring addresses, backend behaviour) followed by the initial guest RAM
 * image and then a list of RAM patches applied between kicks, so the rings and requests change
 * while the device runs. Guest RAM is an exact-size heap buffer: any device access outside it
 * is an ASan report. Requests go to a backend that finishes some inline, fails some, and holds
 * others for later completion (sometimes across a device reset). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/blk.h"
#include "tests/unit/fakevm.h"
#include "virtio/virtio_blk.h"
#include "virtio/virtio_dev.h"

#define RAM_SIZE 65536u
#define HELD_MAX 64

/* ---- a backend whose behaviour the input chooses ---- */

struct fb {
	uint8_t disk[8192];
	uint8_t mode; /* per request: bits of this byte, rotated */
	struct hearth_blk_req *held[HELD_MAX];
	unsigned nheld;
	const struct hearth_blk_frontend_ops *fe_ops;
	void *fe;
};
static struct fb *fb;

static int fb_submit(void *be, struct hearth_blk_req *req)
{
	struct fb *b = be;
	unsigned m = b->mode & 3;

	b->mode = (uint8_t)((b->mode >> 2) | (b->mode << 6));
	/* the frontend promised: inside the disk, iovecs summing to len */
	if (req->offset > sizeof(b->disk) || req->len > sizeof(b->disk) - req->offset)
		abort();
	if (req->op == HEARTH_BLK_READ || req->op == HEARTH_BLK_WRITE) {
		uint64_t total = 0;
		for (unsigned i = 0; i < req->niov; i++)
			total += req->iov[i].iov_len;
		if (total != req->len)
			abort();
	}
	if (m == 1)
		return -EIO;
	if (m == 2 && b->nheld < HELD_MAX) {
		b->held[b->nheld++] = req;
		return HEARTH_BLK_ASYNC;
	}
	uint64_t off = req->offset;
	for (unsigned i = 0; req->iov && i < req->niov; i++) {
		if (req->op == HEARTH_BLK_READ)
			memcpy(req->iov[i].iov_base, b->disk + off, req->iov[i].iov_len);
		else if (req->op == HEARTH_BLK_WRITE)
			memcpy(b->disk + off, req->iov[i].iov_base, req->iov[i].iov_len);
		off += req->iov[i].iov_len;
	}
	return HEARTH_BLK_DONE;
}

static const struct hearth_blk_backend_ops fb_ops = {.submit = fb_submit};

static void fb_complete_held(int result)
{
	unsigned n = fb->nheld;

	fb->nheld = 0;
	for (unsigned i = 0; i < n; i++)
		fb->fe_ops->complete(fb->fe, fb->held[i], result);
	if (n)
		fb->fe_ops->complete_done(fb->fe);
}

static int fb_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	bool ro;

	if (hearth_cfg_bool(cfg, "readonly", false, &ro) < 0)
		return -1;
	fb = calloc(1, sizeof(*fb));
	hearth_dev_set_priv(dev, fb);
	struct hearth_blk_info info = {
		.size = sizeof(fb->disk),
		.block_size = 512,
		.readonly = ro,
		.discard = true,
		.write_zeroes = true,
		.name = "fuzz",
	};
	return hearth_blk_backend_attach(dev, cfg, &info, &fb_ops, fb, &fb->fe_ops, &fb->fe);
}

static void fb_free(struct hearth_dev *dev)
{
	struct fb *b = hearth_dev_priv(dev);

	if (b) {
		fb_complete_held(-ECANCELED);
		if (b->fe_ops)
			b->fe_ops->detach(b->fe);
	}
	free(b);
	fb = NULL;
}

HEARTH_DEVICE_CLASS(fuzz_blk_class, .name = "blk-fuzz", .init = fb_init, .free = fb_free);

static int vblk_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	return virtio_blk_setup(dev, cfg);
}

HEARTH_DEVICE_CLASS(fuzz_vblk_class, .name = "vblk-fuzz", .init = vblk_init,
		    .free = virtio_blk_free);

/* ---- the transport, as far as the device sees it ---- */

static unsigned interrupts, resets_asked;

static void t_interrupt(struct virtio_device *vd, unsigned q)
{
	(void)vd, (void)q;
	interrupts++;
}

static void t_needs_reset(struct virtio_device *vd)
{
	(void)vd;
	resets_asked++;
}

static const struct virtio_transport_ops tops = {.interrupt = t_interrupt,
						 .needs_reset = t_needs_reset};

/* ---- input ---- */

struct hdr {
	uint8_t qsize_log2; /* queue size 1 << (x % 6): 1..32 */
	uint8_t features;   /* bit 0 INDIRECT, 1 EVENT_IDX, 2 FLUSH, 3 DISCARD, 4 WZ, 5 RO */
	uint8_t kicks;
	uint8_t mode;		    /* backend behaviour bits */
	uint16_t desc, avail, used; /* ring addresses in units of 4 bytes */
};

static void run(const uint8_t *data, size_t size)
{
	struct hdr h;

	if (size < sizeof(h))
		return;
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);

	struct fakevm *f = fakevm_new(RAM_SIZE);
	uint16_t ram_len = 0;
	if (size >= 2) {
		memcpy(&ram_len, data, 2);
		data += 2;
		size -= 2;
	}
	if (ram_len > size)
		ram_len = (uint16_t)size;
	memcpy(f->ram, data, ram_len);
	data += ram_len;
	size -= ram_len;

	struct hearth_dev *dev = fakevm_dev(f, "vblk-fuzz", "vda", "{\"queue-size\": 32}");
	if (!dev)
		abort();
	const char *be = (h.features & 32) ? "{\"frontend\": \"vda\", \"readonly\": true}"
					   : "{\"frontend\": \"vda\"}";
	if (!fakevm_dev(f, "blk-fuzz", "disk", be))
		abort();
	fb->mode = h.mode;
	struct virtio_device *vd = virtio_blk_vdev(dev);
	vd->tops = &tops;

	uint64_t feat = VIRTIO_BIT(VIRTIO_F_VERSION_1);
	if (h.features & 1)
		feat |= VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
	if (h.features & 2)
		feat |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	if (h.features & 4)
		feat |= VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
	if (h.features & 8)
		feat |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);
	if (h.features & 16)
		feat |= VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	feat &= vd->offered;
	hearth_dev_lock(dev);
	vd->ops->features_ok(vd, feat);
	vd->features = feat;
	struct virtq *vq = &vd->vqs[0];
	vq->size = (uint16_t)(1u << (h.qsize_log2 % 6));
	vq->desc_gpa = 4ull * h.desc;
	vq->avail_gpa = 4ull * h.avail;
	vq->used_gpa = 4ull * h.used;
	int enabled = virtq_enable(vq, feat) == 0;
	hearth_dev_unlock(dev);

	for (unsigned k = 0; enabled && k < 1u + h.kicks % 8; k++) {
		hearth_dev_lock(dev);
		vd->ops->notify(vd, 0);
		/* what a broken device's transport does: the driver must reset it */
		if (vq->broken) {
			vd->ops->reset(vd);
			virtq_reset(vq);
			enabled = 0;
		}
		hearth_dev_unlock(dev);
		/* a patch of guest RAM: offset, length, bytes */
		if (size >= 3) {
			uint16_t off;
			memcpy(&off, data, 2);
			size_t n = data[2];
			data += 3;
			size -= 3;
			if (n > size)
				n = size;
			if ((size_t)off + n > RAM_SIZE)
				n = RAM_SIZE - off;
			memcpy(f->ram + off, data, n);
			data += n;
			size -= n;
		}
		/* odd kicks complete what the backend held */
		if (k & 1)
			fb_complete_held(k & 2 ? -EIO : 0);
	}
	fb_complete_held(0);
	/* a device-config sweep costs nothing and covers the config reader */
	for (uint32_t off = 0; off < vd->config_len; off += 4) {
		uint32_t v;
		vd->ops->config_read(vd, off, &v, 4);
	}
	fakevm_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size);
	return 0;
}
