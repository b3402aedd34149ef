/* The `virtio-blk` device class: the request engine (src/virtio/virtio_blk.c) presented to the
 * guest by the virtio-pci transport. Kept apart so the engine builds (and is fuzzed) without
 * PCI. */
#include <stdio.h>

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
		    .init = vblk_init, .free = vblk_free, .reset = vblk_reset,
		    .describe = vblk_describe);
