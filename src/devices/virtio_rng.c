/* virtio-rng (virtio 1.2 section 5.4): one queue of device-writable buffers, each filled from
 * the host's getrandom(). No configuration space and no feature bits of its own. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hearth/checkpoint.h"
#include "hearth/device.h"
#include "virtio/virtio_dev.h"

#define QUEUE_SIZE 64
#define MAX_SEGS 64
#define FILL_MAX (64 * 1024) /* bytes given per request: a driver asking for more gets less */

struct vrng {
	struct virtio_device vd;
	struct virtq vq;
	struct iovec segs[MAX_SEGS];
	int broken_logged, entropy_logged;
};

/* Fill the chain's writable part, up to FILL_MAX; returns the bytes written or -1 when the
 * host has no entropy to give right now. */
static long fill(struct vrng *r, const struct virtq_chain *c)
{
	uint8_t buf[4096];
	uint64_t want = c->write_len < FILL_MAX ? c->write_len : FILL_MAX, done = 0;

	while (done < want) {
		size_t n = want - done < sizeof(buf) ? (size_t)(want - done) : sizeof(buf);
		ssize_t got = getrandom(buf, n, GRND_NONBLOCK);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			hearth_log_once(r->entropy_logged, "virtio-rng '%s': getrandom: %s",
					hearth_dev_id(r->vd.dev), strerror(errno));
			return done ? (long)done : -1;
		}
		done += virtq_chain_write(c, done, buf, (size_t)got);
	}
	return (long)done;
}

static void rng_notify(struct virtio_device *vd, unsigned q)
{
	struct vrng *r = vd->opaque;
	bool pushed = false;

	(void)q;
	/* at most a ring's worth per kick: whatever the driver adds meanwhile kicks again */
	for (unsigned i = 0; i < r->vq.size; i++) {
		struct virtq_chain c = {.cap = MAX_SEGS, .segs = r->segs};
		int got = virtq_pop(&r->vq, &c);
		if (got < 0) {
			hearth_log_once(r->broken_logged, "virtio-rng '%s': %s; device needs reset",
					hearth_dev_id(vd->dev), r->vq.why);
			virtio_device_broken(vd);
			break;
		}
		if (got == 0)
			break;
		long n = fill(r, &c);
		if (n < 0) {
			virtq_unpop(&r->vq); /* no entropy yet: the next kick tries again */
			break;
		}
		virtq_push(&r->vq, c.head, (uint32_t)n);
		pushed = true;
	}
	if (pushed && virtq_should_notify(&r->vq) && vd->tops)
		vd->tops->interrupt(vd, 0);
}

static const struct virtio_device_ops rng_ops = {
	.notify = rng_notify,
};

static int rng_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	struct vrng *r = calloc(1, sizeof(*r));

	if (!r)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, r);
	virtq_init(&r->vq, hearth_dev_vm(dev), QUEUE_SIZE);
	r->vd = (struct virtio_device){
		.dev = dev,
		.ops = &rng_ops,
		.opaque = r,
		.device_id = VIRTIO_ID_ENTROPY,
		.offered = VIRTIO_BIT(VIRTIO_F_VERSION_1),
		.num_queues = 1,
		.vqs = &r->vq,
	};
	return virtio_transport_attach(&r->vd, cfg);
}

static void rng_free(struct hearth_dev *dev)
{
	struct vrng *r = hearth_dev_priv(dev);

	if (!r)
		return;
	if (r->vd.transport)
		virtio_transport_detach(&r->vd);
	free(r);
}

static void rng_reset(struct hearth_dev *dev)
{
	virtio_transport_reset(&((struct vrng *)hearth_dev_priv(dev))->vd);
}

/* ---- checkpoints: the transport's state is all there is ---- */

#define RNG_CKPT_VERSION 1

static int rng_quiesce(struct hearth_dev *dev)
{
	struct vrng *r = hearth_dev_priv(dev);

	/* requests are served inline: holding notifications back is enough */
	hearth_dev_lock(dev);
	virtio_transport_freeze(&r->vd);
	hearth_dev_unlock(dev);
	return 0;
}

static void rng_unquiesce(struct hearth_dev *dev)
{
	struct vrng *r = hearth_dev_priv(dev);

	hearth_dev_lock(dev);
	virtio_transport_thaw(&r->vd);
	hearth_dev_unlock(dev);
}

static int rng_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct vrng *r = hearth_dev_priv(dev);

	if (hearth_ckpt_set_version(ck, RNG_CKPT_VERSION) < 0)
		return -1;
	return virtio_transport_save(&r->vd, ck);
}

static int rng_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct vrng *r = hearth_dev_priv(dev);

	if (hearth_ckpt_accept_versions(ck, 1, RNG_CKPT_VERSION) < 0)
		return -1;
	if (virtio_transport_load(&r->vd, ck) < 0)
		return -1;
	/* nothing is popped and left unused: every chain is filled as it is taken */
	if (r->vq.enabled && !r->vq.broken && r->vq.last_avail != r->vq.used_idx)
		return hearth_err("checkpoint context '%s': key 'vq.last_avail': %u chains taken "
				  "and not used; virtio-rng holds none",
				  hearth_ckpt_name(ck),
				  (uint16_t)(r->vq.last_avail - r->vq.used_idx));
	return 0;
}

static void rng_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	virtio_transport_describe(&((struct vrng *)hearth_dev_priv(dev))->vd, buf, len);
}

HEARTH_DEVICE_CLASS(virtio_rng_class, .name = "virtio-rng",
		    .summary = "virtio entropy device on PCI, fed by the host's getrandom (addr=)",
		    .init = rng_init, .free = rng_free, .reset = rng_reset, .save = rng_save,
		    .load = rng_load, .quiesce = rng_quiesce, .unquiesce = rng_unquiesce,
		    .describe = rng_describe);
