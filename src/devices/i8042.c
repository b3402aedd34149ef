/* The PC keyboard controller, reduced to what a guest without a keyboard needs: the
 * controller commands a kernel probes with, and the reset line. Pulsing the reset line ends
 * hearth with status 0. No keyboard or mouse is attached: bytes sent to them are dropped and
 * IRQ 1 / IRQ 12 are never raised. */
#include <stdbool.h>
#include <stdlib.h>

#include "hearth/checkpoint.h"
#include "hearth/device.h"

#define PORT_DATA 0x60
#define PORT_CMD 0x64

#define ST_OBF 0x01    /* output buffer full */
#define ST_SYS 0x04    /* system flag, copied from the command byte */
#define ST_CMD 0x08    /* the last byte written went to the command port */
#define ST_UNLOCK 0x10 /* keyboard not inhibited */

#define CB_SYS 0x04
#define CB_KBD_OFF 0x10
#define CB_AUX_OFF 0x20

#define OUT_RESET 0x01 /* output-port bit 0: 0 holds the CPU in reset */
#define OUT_A20 0x02

#define CB_DEFAULT 0x45 /* keyboard interrupt on, system flag set (self-test passed), XLAT */
#define OUT_DEFAULT (OUT_RESET | OUT_A20)

enum pending_write { NEXT_NONE, NEXT_CMD_BYTE, NEXT_OUT_PORT };

struct i8042 {
	struct hearth_vm *vm;
	uint8_t cmd_byte, out_port;
	uint8_t obuf;
	bool obuf_full;
	bool last_was_cmd;
	enum pending_write next;
};

static void respond(struct i8042 *s, uint8_t v)
{
	s->obuf = v;
	s->obuf_full = true;
}

static void guest_reset(struct i8042 *s)
{
	hearth_vm_request_stop(s->vm, 0);
}

static void command(struct i8042 *s, uint8_t cmd)
{
	s->next = NEXT_NONE;
	switch (cmd) {
	case 0x20:
		respond(s, s->cmd_byte);
		break;
	case 0x60:
		s->next = NEXT_CMD_BYTE;
		break;
	case 0xa7:
		s->cmd_byte |= CB_AUX_OFF;
		break;
	case 0xa8:
		s->cmd_byte &= ~CB_AUX_OFF;
		break;
	case 0xaa:
		respond(s, 0x55); /* self-test passed */
		break;
	case 0xab:
		respond(s, 0x00); /* keyboard interface test passed */
		break;
	case 0xad:
		s->cmd_byte |= CB_KBD_OFF;
		break;
	case 0xae:
		s->cmd_byte &= ~CB_KBD_OFF;
		break;
	case 0xd0:
		respond(s, s->out_port);
		break;
	case 0xd1:
		s->next = NEXT_OUT_PORT;
		break;
	default:
		/* 0xf0-0xff pulse output-port bits 0-3 low where the command bit is 0;
		 * bit 0 is the reset line (0xfe is the usual reboot command). */
		if ((cmd & 0xf0) == 0xf0 && !(cmd & OUT_RESET))
			guest_reset(s);
		break; /* anything else is ignored */
	}
}

static void data(struct i8042 *s, uint8_t v)
{
	enum pending_write next = s->next;

	s->next = NEXT_NONE;
	switch (next) {
	case NEXT_CMD_BYTE:
		s->cmd_byte = v;
		break;
	case NEXT_OUT_PORT:
		s->out_port = v;
		if (!(v & OUT_RESET))
			guest_reset(s);
		break;
	case NEXT_NONE:
		break; /* a byte for the keyboard, and there is none */
	}
}

/* Each port is its own one-port range, so offsets are always 0 and sizes are always 1. */
static uint64_t data_read(void *opaque, uint64_t offset, unsigned size)
{
	struct i8042 *s = opaque;
	uint8_t v = s->obuf_full ? s->obuf : 0;

	(void)offset, (void)size;
	s->obuf_full = false;
	return v;
}

static void data_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	struct i8042 *s = opaque;

	(void)offset, (void)size;
	s->last_was_cmd = false;
	data(s, (uint8_t)value);
}

static uint64_t status_read(void *opaque, uint64_t offset, unsigned size)
{
	struct i8042 *s = opaque;

	(void)offset, (void)size;
	return (s->obuf_full ? ST_OBF : 0) | (s->cmd_byte & CB_SYS ? ST_SYS : 0) |
	       (s->last_was_cmd ? ST_CMD : 0) | ST_UNLOCK;
}

static void command_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	struct i8042 *s = opaque;

	(void)offset, (void)size;
	s->last_was_cmd = true;
	command(s, (uint8_t)value);
}

static const struct hearth_io_ops data_ops = {.read = data_read, .write = data_write};
static const struct hearth_io_ops cmd_ops = {.read = status_read, .write = command_write};

static void i8042_reset(struct hearth_dev *dev)
{
	struct i8042 *s = hearth_dev_priv(dev);

	s->cmd_byte = CB_DEFAULT;
	s->out_port = OUT_DEFAULT;
	s->obuf_full = false;
	s->last_was_cmd = false;
	s->next = NEXT_NONE;
}

static int i8042_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	struct i8042 *s = calloc(1, sizeof(*s));

	(void)cfg;
	if (!s)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, s);
	s->vm = hearth_dev_vm(dev);
	i8042_reset(dev);
	/* Two one-port ranges: 0x61 (port B) and 0x62-0x63 are not the controller's. */
	if (hearth_hook_pio(dev, PORT_DATA, 1, &data_ops, s) < 0 ||
	    hearth_hook_pio(dev, PORT_CMD, 1, &cmd_ops, s) < 0)
		return -1;
	return 0;
}

#define I8042_CKPT_VERSION 1

static int i8042_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct i8042 *s = hearth_dev_priv(dev);

	if (hearth_ckpt_set_version(ck, I8042_CKPT_VERSION) < 0 ||
	    hearth_ckpt_put_u8(ck, "cmd_byte", s->cmd_byte) < 0 ||
	    hearth_ckpt_put_u8(ck, "out_port", s->out_port) < 0 ||
	    hearth_ckpt_put_u8(ck, "obuf", s->obuf) < 0 ||
	    hearth_ckpt_put_bool(ck, "obuf_full", s->obuf_full) < 0 ||
	    hearth_ckpt_put_bool(ck, "last_was_cmd", s->last_was_cmd) < 0 ||
	    hearth_ckpt_put_u8(ck, "next", (uint8_t)s->next) < 0)
		return -1;
	return 0;
}

static int i8042_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct i8042 *s = hearth_dev_priv(dev);
	uint8_t next;

	if (hearth_ckpt_accept_versions(ck, 1, I8042_CKPT_VERSION) < 0 ||
	    hearth_ckpt_get_u8(ck, "cmd_byte", &s->cmd_byte) < 0 ||
	    hearth_ckpt_get_u8(ck, "out_port", &s->out_port) < 0 ||
	    hearth_ckpt_get_u8(ck, "obuf", &s->obuf) < 0 ||
	    hearth_ckpt_get_bool(ck, "obuf_full", &s->obuf_full) < 0 ||
	    hearth_ckpt_get_bool(ck, "last_was_cmd", &s->last_was_cmd) < 0 ||
	    hearth_ckpt_get_u8(ck, "next", &next) < 0)
		return -1;
	if (next > NEXT_OUT_PORT)
		return hearth_err("checkpoint context '%s': key 'next': %u is not a pending write",
				  hearth_ckpt_name(ck), next);
	s->next = (enum pending_write)next;
	return 0;
}

static void i8042_free(struct hearth_dev *dev)
{
	free(hearth_dev_priv(dev));
}

HEARTH_DEVICE_CLASS(i8042_class, .name = "i8042",
		    .summary = "PC keyboard controller: reset line only, no keyboard (ports 0x60, "
			       "0x64)",
		    .init = i8042_init, .free = i8042_free, .reset = i8042_reset,
		    .save = i8042_save, .load = i8042_load);
