/* The `virtio-blk` device class: the request engine (src/virtio/virtio_blk.c) presented to the
 * guest by the virtio-pci transport. Kept apart so the engine builds (and is fuzzed) without
 * PCI. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "hearth/checkpoint.h"
#include "hearth/device.h"
#include "virtio/virtio_blk.h"
#include "virtio/virtio_dev.h"

static int vblk_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	if (virtio_blk_setup(dev, cfg) < 0)
		return -1;
	return virtio_transport_attach(virtio_blk_vdev(dev), cfg);
}

static void vblk_free(struct hearth_dev *dev)
{
	struct virtio_device *vd = virtio_blk_vdev(dev);

	if (vd && vd->transport)
		virtio_transport_detach(vd);
	virtio_blk_free(dev);
}

static void vblk_reset(struct hearth_dev *dev)
{
	virtio_transport_reset(virtio_blk_vdev(dev));
}

/* ---- checkpoints ---- */

#define VBLK_CKPT_VERSION 1
/* A backend that has not finished a request after this long is stuck: the checkpoint fails
 * rather than waiting forever (the VM then resumes). */
#define QUIESCE_TIMEOUT_MS 30000

static int vblk_quiesce(struct hearth_dev *dev)
{
	struct virtio_device *vd = virtio_blk_vdev(dev);

	hearth_dev_lock(dev);
	virtio_transport_freeze(vd);
	hearth_dev_unlock(dev);
	/* without the lock: the completions we wait for take it on the event-loop thread */
	struct timespec t0, t1;
	unsigned waited;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int ret = virtio_blk_wait_idle(dev, QUIESCE_TIMEOUT_MS, &waited);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret == 0 && getenv("HEARTH_SNAPSHOT_VERBOSE"))
		hearth_log("virtio-blk '%s': waited %.3f ms for %u request%s in flight",
			   hearth_dev_id(dev),
			   (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
				   (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
			   waited, waited == 1 ? "" : "s");
	return ret;
}

static void vblk_unquiesce(struct hearth_dev *dev)
{
	hearth_dev_lock(dev);
	virtio_transport_thaw(virtio_blk_vdev(dev));
	virtio_blk_resume(dev);
	hearth_dev_unlock(dev);
}

static int vblk_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	unsigned n = virtio_blk_in_flight(dev);

	/* quiesce ran: a request in flight here would be lost with the checkpoint */
	if (n)
		return hearth_err("%u request%s in flight (the device was not quiesced)", n,
				  n == 1 ? "" : "s");
	if (hearth_ckpt_set_version(ck, VBLK_CKPT_VERSION) < 0 ||
	    virtio_transport_save(virtio_blk_vdev(dev), ck) < 0 ||
	    hearth_ckpt_put_bool(ck, "blk.broken", virtio_blk_broken(dev)) < 0)
		return -1;
	return 0;
}

static int vblk_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct virtio_device *vd = virtio_blk_vdev(dev);
	bool broken;

	if (hearth_ckpt_accept_versions(ck, 1, VBLK_CKPT_VERSION) < 0 ||
	    virtio_transport_load(vd, ck) < 0 ||
	    hearth_ckpt_get_bool(ck, "blk.broken", &broken) < 0)
		return -1;
	/* every chain taken before the save was used (quiesce waited for them) */
	for (unsigned q = 0; q < vd->num_queues; q++) {
		const struct virtq *vq = &vd->vqs[q];
		uint16_t taken = (uint16_t)(vq->last_avail - vq->used_idx);
		if (vq->enabled && !vq->broken && taken)
			return hearth_err(
				"checkpoint context '%s': key 'vq.last_avail': queue %u has "
				"%u requests taken and not completed; a virtio-blk "
				"checkpoint holds none",
				hearth_ckpt_name(ck), q, taken);
	}
	virtio_blk_restored(dev, broken);
	return 0;
}

static void vblk_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	char where[160], what[192];

	virtio_transport_describe(virtio_blk_vdev(dev), where, sizeof(where));
	virtio_blk_describe(dev, what, sizeof(what));
	snprintf(buf, len, "%s%s%s", where, where[0] ? ", " : "", what);
}

HEARTH_DEVICE_CLASS(virtio_blk_class, .name = "virtio-blk",
		    .summary = "virtio block device on PCI (queues=, queue-size=, serial=); a "
			       "blk-file or blk-ram backend names it as its frontend",
		    .init = vblk_init, .free = vblk_free, .reset = vblk_reset, .save = vblk_save,
		    .load = vblk_load, .quiesce = vblk_quiesce, .unquiesce = vblk_unquiesce,
		    .describe = vblk_describe);
