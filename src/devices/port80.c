/* Port 0x80, where firmware and kernels write POST codes and Linux writes as an I/O delay.
 * Hooking it keeps those writes off the unhooked-port path; the last code stays readable,
 * as on a POST card. */
#include <stdlib.h>

#include "hearth/checkpoint.h"
#include "hearth/device.h"

#define POST_PORT 0x80

static uint64_t port80_read(void *opaque, uint64_t offset, unsigned size)
{
	(void)offset, (void)size;
	return *(uint8_t *)opaque;
}

static void port80_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	(void)offset, (void)size;
	*(uint8_t *)opaque = (uint8_t)value;
}

static const struct hearth_io_ops port80_ops = {.read = port80_read, .write = port80_write};

static int port80_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	uint8_t *last = malloc(1);

	(void)cfg;
	if (!last)
		return hearth_err("out of memory");
	*last = 0xff; /* nothing written yet: an idle bus */
	hearth_dev_set_priv(dev, last);
	return hearth_hook_pio(dev, POST_PORT, 1, &port80_ops, last);
}

static void port80_free(struct hearth_dev *dev)
{
	free(hearth_dev_priv(dev));
}

static int port80_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	uint8_t *last = hearth_dev_priv(dev);

	return hearth_ckpt_set_version(ck, 1) < 0 ? -1 : hearth_ckpt_put_u8(ck, "last", *last);
}

static int port80_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	uint8_t *last = hearth_dev_priv(dev);

	if (hearth_ckpt_accept_versions(ck, 1, 1) < 0)
		return -1;
	return hearth_ckpt_get_u8(ck, "last", last);
}

HEARTH_DEVICE_CLASS(port80_class, .name = "port80",
		    .summary = "POST diagnostic port 0x80: keeps the last byte written",
		    .init = port80_init, .free = port80_free, .save = port80_save,
		    .load = port80_load);
