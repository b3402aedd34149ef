/* A port that ends the VM with a status the guest chooses, the same way QEMU's
 * isa-debug-exit does, so a test OS behaves alike under both: writing V exits with
 * (V << 1) | 1, of which the process status keeps the low 8 bits. An odd status therefore
 * always means "the guest asked to exit"; 0 stays free for a clean shutdown. */
#include <stdbool.h>
#include <stdlib.h>

#include "hearth/checkpoint.h"
#include "hearth/device.h"

struct debug_exit {
	struct hearth_vm *vm;
	bool exited; /* QEMU exits at the first write; later writes must not change the status */
};

static uint64_t debug_exit_read(void *opaque, uint64_t offset, unsigned size)
{
	(void)opaque, (void)offset, (void)size;
	return 0;
}

static void debug_exit_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	struct debug_exit *s = opaque;

	(void)offset, (void)size;
	if (s->exited)
		return;
	s->exited = true;
	hearth_vm_request_stop(s->vm, (int)(((value << 1) | 1) & 0xff));
}

static const struct hearth_io_ops debug_exit_ops = {.read = debug_exit_read,
						    .write = debug_exit_write};

static int debug_exit_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	uint64_t port, size;
	struct debug_exit *s;

	if (hearth_cfg_u64(cfg, "port", 0xf4, 0, 0xffff, &port) < 0 ||
	    hearth_cfg_u64(cfg, "size", 4, 1, 4, &size) < 0)
		return -1;
	if (size == 3)
		return hearth_err("key 'size': 3 is not 1, 2 or 4");
	s = calloc(1, sizeof(*s));
	if (!s)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, s);
	s->vm = hearth_dev_vm(dev);
	return hearth_hook_pio(dev, (uint16_t)port, (uint32_t)size, &debug_exit_ops, s);
}

static void debug_exit_free(struct hearth_dev *dev)
{
	free(hearth_dev_priv(dev));
}

static void debug_exit_reset(struct hearth_dev *dev)
{
	struct debug_exit *s = hearth_dev_priv(dev);

	s->exited = false;
}

static int debug_exit_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct debug_exit *s = hearth_dev_priv(dev);

	return hearth_ckpt_set_version(ck, 1) < 0 ? -1
						  : hearth_ckpt_put_bool(ck, "exited", s->exited);
}

static int debug_exit_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct debug_exit *s = hearth_dev_priv(dev);

	if (hearth_ckpt_accept_versions(ck, 1, 1) < 0)
		return -1;
	return hearth_ckpt_get_bool(ck, "exited", &s->exited);
}

HEARTH_DEVICE_CLASS(debug_exit_class, .name = "debug-exit",
		    .summary = "QEMU isa-debug-exit compatible port: a write ends hearth with "
			       "status (value << 1) | 1",
		    .init = debug_exit_init, .free = debug_exit_free, .reset = debug_exit_reset,
		    .save = debug_exit_save, .load = debug_exit_load);
