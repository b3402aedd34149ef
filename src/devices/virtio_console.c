/* virtio-console (virtio 1.2 section 5.3), one port: receiveq 0 carries host input to the
 * guest, transmitq 1 guest output to the host. It is a console frontend: a char backend
 * (stdio, file, socket, pty) names it and speaks the same ops as to a UART.
 *
 * Output is never dropped while a backend is attached: a chain the backend cannot take
 * whole stays popped until tx_ready, and the driver sees it used only when all of it went.
 * Input the guest has no buffers for stays with the backend until the driver adds some.
 * Without a backend, output is discarded as a disconnected line would. */
#include <stdlib.h>
#include <string.h>

#include "hearth/chardev.h"
#include "hearth/checkpoint.h"
#include "hearth/device.h"
#include "virtio/virtio_dev.h"

#define RXQ 0
#define TXQ 1
#define QUEUE_SIZE 128
#define MAX_SEGS 64

#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

/* struct virtio_console_config: cols, rows (le16), max_nr_ports, emerg_wr (le32) */
#define CFG_EMERG_WR 8
#define CFG_LEN 12

struct vcon {
	struct virtio_device vd;
	struct virtq vqs[2];
	struct iovec rx_segs[MAX_SEGS];
	/* the output chain being written, while the backend had no room for all of it */
	struct iovec tx_segs[MAX_SEGS];
	struct virtq_chain tx;
	bool tx_held;
	uint64_t tx_off;
	bool tx_blocked; /* until the backend's tx_ready */
	bool live;	 /* DRIVER_OK since the last reset */
	bool rx_owed;	 /* input was refused: the backend waits for rx_ready */
	const struct hearth_char_backend_ops *be_ops;
	void *be;
	int broken_logged;
};

static void queue_broken(struct vcon *s, unsigned q)
{
	hearth_log_once(s->broken_logged, "virtio-console '%s': queue %u: %s; device needs reset",
			hearth_dev_id(s->vd.dev), q, s->vqs[q].why);
	virtio_device_broken(&s->vd);
}

static void signal_used(struct vcon *s, unsigned q)
{
	if (virtq_should_notify(&s->vqs[q]) && s->vd.tops)
		s->vd.tops->interrupt(&s->vd, q);
}

/* ---- guest output ---- */

/* Hand the held chain's bytes from tx_off on to the backend; true when all of it went. */
static bool tx_flush(struct vcon *s)
{
	uint8_t buf[4096];

	if (!s->be_ops) {
		s->tx_off = s->tx.read_len; /* nobody listens */
		return true;
	}
	while (s->tx_off < s->tx.read_len) {
		uint64_t left = s->tx.read_len - s->tx_off;
		size_t n = virtq_chain_read(&s->tx, s->tx_off, buf,
					    left < sizeof(buf) ? (size_t)left : sizeof(buf));
		if (n == 0)
			break;
		size_t took = s->be_ops->write(s->be, buf, n);
		s->tx_off += took < n ? took : n;
		if (took < n)
			return false;
	}
	return true;
}

static void tx_run(struct vcon *s)
{
	struct virtq *vq = &s->vqs[TXQ];
	bool pushed = false;

	/* a ring's worth per call: chains added meanwhile come with a kick of their own */
	/* frozen for a checkpoint: the held chain stays held; thaw runs us again */
	for (unsigned i = 0; i <= vq->size && s->live && !s->tx_blocked && !s->vd.frozen; i++) {
		if (!s->tx_held) {
			s->tx = (struct virtq_chain){.cap = MAX_SEGS, .segs = s->tx_segs};
			int got = virtq_pop(vq, &s->tx);
			if (got < 0)
				queue_broken(s, TXQ);
			if (got <= 0)
				break;
			s->tx_held = true;
			s->tx_off = 0;
		}
		if (!tx_flush(s)) {
			s->tx_blocked = true;
			break;
		}
		virtq_push(vq, s->tx.head, 0);
		s->tx_held = false;
		pushed = true;
	}
	if (pushed)
		signal_used(s, TXQ);
}

/* ---- frontend ops, called by the backend ---- */

static void fe_attach(void *fe, const struct hearth_char_backend_ops *ops, void *be)
{
	struct vcon *s = fe;

	hearth_dev_lock(s->vd.dev);
	s->be_ops = ops;
	s->be = be;
	s->tx_blocked = false;
	hearth_dev_unlock(s->vd.dev);
}

static size_t fe_receive(void *fe, const uint8_t *buf, size_t len)
{
	struct vcon *s = fe;
	struct virtq *vq = &s->vqs[RXQ];
	size_t taken = 0;
	bool pushed = false;

	hearth_dev_lock(s->vd.dev);
	for (unsigned i = 0; i < vq->size && taken < len && s->live && !s->vd.frozen; i++) {
		struct virtq_chain c = {.cap = MAX_SEGS, .segs = s->rx_segs};
		int got = virtq_pop(vq, &c);
		if (got < 0)
			queue_broken(s, RXQ);
		if (got <= 0)
			break;
		size_t n = virtq_chain_write(&c, 0, buf + taken, len - taken);
		virtq_push(vq, c.head, (uint32_t)n);
		taken += n;
		pushed = true;
	}
	if (taken < len)
		s->rx_owed = true;
	if (pushed)
		signal_used(s, RXQ);
	hearth_dev_unlock(s->vd.dev);
	return taken;
}

static void fe_tx_ready(void *fe)
{
	struct vcon *s = fe;

	hearth_dev_lock(s->vd.dev);
	s->tx_blocked = false;
	tx_run(s);
	hearth_dev_unlock(s->vd.dev);
}

static const struct hearth_char_frontend_ops fe_ops = {
	.attach = fe_attach,
	.receive = fe_receive,
	.tx_ready = fe_tx_ready,
};

/* The driver has buffers for input again: let a waiting backend offer it (rx_ready only
 * wakes the backend's loop work, so calling it under our lock is safe). */
static void rx_resume(struct vcon *s)
{
	if (s->rx_owed && s->be_ops && s->be_ops->rx_ready) {
		s->rx_owed = false;
		s->be_ops->rx_ready(s->be);
	}
}

/* ---- virtio device ops (device lock held) ---- */

static void con_config_read(struct virtio_device *vd, uint32_t offset, void *buf, uint32_t len)
{
	uint8_t cfg[CFG_LEN] = {0}; /* no size, one port, emerg_wr reads 0 */

	(void)vd;
	memcpy(buf, cfg + offset, len);
}

static void con_config_write(struct virtio_device *vd, uint32_t offset, const void *buf,
			     uint32_t len)
{
	struct vcon *s = vd->opaque;

	/* an emergency write goes out at once, or not at all */
	if (offset == CFG_EMERG_WR && len == 4 && s->be_ops)
		s->be_ops->write(s->be, buf, 1);
}

static void con_driver_ok(struct virtio_device *vd)
{
	struct vcon *s = vd->opaque;

	s->live = true;
	rx_resume(s);
	tx_run(s);
}

static void con_notify(struct virtio_device *vd, unsigned q)
{
	struct vcon *s = vd->opaque;

	if (q == TXQ)
		tx_run(s);
	else
		rx_resume(s);
}

static void con_reset(struct virtio_device *vd)
{
	struct vcon *s = vd->opaque;

	s->live = false;
	s->tx_held = false; /* a half-written chain belongs to the old driver */
	s->tx_blocked = false;
}

static const struct virtio_device_ops con_ops = {
	.config_read = con_config_read,
	.config_write = con_config_write,
	.driver_ok = con_driver_ok,
	.notify = con_notify,
	.reset = con_reset,
};

/* ---- the class ---- */

static int con_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	struct vcon *s = calloc(1, sizeof(*s));

	if (!s)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, s);
	for (unsigned q = 0; q < 2; q++)
		virtq_init(&s->vqs[q], hearth_dev_vm(dev), QUEUE_SIZE);
	s->vd = (struct virtio_device){
		.dev = dev,
		.ops = &con_ops,
		.opaque = s,
		.device_id = VIRTIO_ID_CONSOLE,
		.offered =
			VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_CONSOLE_F_EMERG_WRITE),
		.config_len = CFG_LEN,
		.num_queues = 2,
		.vqs = s->vqs,
	};
	if (virtio_transport_attach(&s->vd, cfg) < 0)
		return -1;
	return hearth_frontend_register(dev, HEARTH_FE_CONSOLE, &fe_ops, s);
}

static void con_free(struct hearth_dev *dev)
{
	struct vcon *s = hearth_dev_priv(dev);

	if (!s)
		return;
	if (s->vd.transport)
		virtio_transport_detach(&s->vd);
	free(s);
}

/* ---- checkpoints ----
 * The transport's state, plus the output chain being written when the backend had no room for
 * all of it: its head and how much of it went. The chain itself is in guest memory and is
 * walked again (with every check) on load. Input owed to the backend is not kept: the
 * restored backend starts afresh and offers what it reads. */

#define CON_CKPT_VERSION 1

static int con_quiesce(struct hearth_dev *dev)
{
	struct vcon *s = hearth_dev_priv(dev);

	/* everything is served inline: holding notifications and backend input back is enough */
	hearth_dev_lock(dev);
	virtio_transport_freeze(&s->vd);
	hearth_dev_unlock(dev);
	return 0;
}

static void con_unquiesce(struct hearth_dev *dev)
{
	struct vcon *s = hearth_dev_priv(dev);

	hearth_dev_lock(dev);
	virtio_transport_thaw(&s->vd);
	rx_resume(s);
	tx_run(s);
	hearth_dev_unlock(dev);
}

static int con_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct vcon *s = hearth_dev_priv(dev);

	if (hearth_ckpt_set_version(ck, CON_CKPT_VERSION) < 0 ||
	    virtio_transport_save(&s->vd, ck) < 0 ||
	    hearth_ckpt_put_bool(ck, "con.tx_held", s->tx_held) < 0 ||
	    hearth_ckpt_put_u16(ck, "con.tx_head", s->tx_held ? s->tx.head : 0) < 0 ||
	    hearth_ckpt_put_u64(ck, "con.tx_off", s->tx_held ? s->tx_off : 0) < 0)
		return -1;
	return 0;
}

static int con_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct vcon *s = hearth_dev_priv(dev);
	struct virtq *tx = &s->vqs[TXQ], *rx = &s->vqs[RXQ];
	bool held;
	uint16_t head;
	uint64_t off;

	if (hearth_ckpt_accept_versions(ck, 1, CON_CKPT_VERSION) < 0 ||
	    virtio_transport_load(&s->vd, ck) < 0 ||
	    hearth_ckpt_get_bool(ck, "con.tx_held", &held) < 0 ||
	    hearth_ckpt_get_u16(ck, "con.tx_head", &head) < 0 ||
	    hearth_ckpt_get_u64(ck, "con.tx_off", &off) < 0)
		return -1;
	/* live is "DRIVER_OK since the last reset", which is what the status says */
	s->live = virtio_transport_status(&s->vd) & VIRTIO_STATUS_DRIVER_OK;
	s->tx_held = s->tx_blocked = s->rx_owed = false;
	/* input chains are filled as they are taken; an output chain only while held */
	if (rx->enabled && !rx->broken && rx->last_avail != rx->used_idx)
		return hearth_err("checkpoint context '%s': key 'vq.last_avail': receive queue has "
				  "%u chains taken and not used; virtio-console holds none",
				  hearth_ckpt_name(ck), (uint16_t)(rx->last_avail - rx->used_idx));
	uint16_t taken = tx->enabled && !tx->broken ? (uint16_t)(tx->last_avail - tx->used_idx) : 0;
	if (taken != (held && s->live && !tx->broken ? 1 : 0))
		return hearth_err(
			"checkpoint context '%s': key 'con.tx_held': %s, but the transmit "
			"queue has %u chains taken and not used",
			hearth_ckpt_name(ck), held ? "a chain is held" : "no chain held", taken);
	if (!held || !taken)
		return 0;
	s->tx = (struct virtq_chain){.cap = MAX_SEGS, .segs = s->tx_segs};
	if (virtq_chain_at(tx, head, &s->tx) < 0)
		return hearth_err("checkpoint context '%s': key 'con.tx_head': the held chain %u: "
				  "%s",
				  hearth_ckpt_name(ck), head, tx->why);
	if (off > s->tx.read_len)
		return hearth_err("checkpoint context '%s': key 'con.tx_off': %llu bytes sent of a "
				  "chain of %llu",
				  hearth_ckpt_name(ck), (unsigned long long)off,
				  (unsigned long long)s->tx.read_len);
	s->tx_held = true;
	s->tx_off = off;
	return 0;
}

static void con_reset_dev(struct hearth_dev *dev)
{
	virtio_transport_reset(&((struct vcon *)hearth_dev_priv(dev))->vd);
}

static void con_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	virtio_transport_describe(&((struct vcon *)hearth_dev_priv(dev))->vd, buf, len);
}

HEARTH_DEVICE_CLASS(virtio_console_class, .name = "virtio-console",
		    .summary = "virtio console on PCI, one port; a char backend (char-stdio, "
			       "char-file, char-socket, char-pty) names it as its frontend (addr=)",
		    .init = con_init, .free = con_free, .reset = con_reset_dev, .save = con_save,
		    .load = con_load, .quiesce = con_quiesce, .unquiesce = con_unquiesce,
		    .describe = con_describe);
