#include "backends/char_ckpt.h"

#include <stdlib.h>
#include <time.h>

#include "backends/char_common.h"

#define CHAR_CKPT_VERSION 1
#define QUIESCE_MS 1000

static struct char_be *be_of(struct hearth_dev *dev)
{
	return hearth_dev_priv(dev); /* struct char_be is every backend's first member */
}

int char_be_save_op(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct char_be *c = be_of(dev);
	uint8_t *buf;
	size_t n = 0;
	int ret;

	pthread_mutex_lock(&c->lock);
	buf = malloc(c->out.len ? c->out.len : 1);
	if (buf) {
		/* the ring's bytes oldest first: at most two runs */
		for (size_t i = 0; i < c->out.len; i++)
			buf[n++] = c->out.buf[(c->out.head + i) % c->out.cap];
	}
	pthread_mutex_unlock(&c->lock);
	if (!buf)
		return hearth_err("out of memory");
	ret = hearth_ckpt_set_version(ck, CHAR_CKPT_VERSION) < 0 ||
			      hearth_ckpt_put_bytes(ck, "pending_out", buf, n) < 0
		      ? -1
		      : 0;
	free(buf);
	return ret;
}

int char_be_load_op(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct char_be *c = be_of(dev);
	const void *data;
	size_t len;

	if (hearth_ckpt_accept_versions(ck, 1, CHAR_CKPT_VERSION) < 0 ||
	    hearth_ckpt_get_blob(ck, "pending_out", &data, &len) < 0)
		return -1;
	if (len > c->out.cap)
		return hearth_err("checkpoint context '%s': key 'pending_out': %zu bytes, more "
				  "than the %zu the backend holds",
				  hearth_ckpt_name(ck), len, c->out.cap);
	/* Before anything the frontend still holds: its load left its FIFO alone, and
	 * tx_ready lets it send that now, in order. Nothing else runs during a restore, so
	 * calling into the frontend under our device lock cannot deadlock. */
	if (len)
		char_be_output(c, data, len);
	if (c->fe_ops && c->fe_ops->tx_ready)
		c->fe_ops->tx_ready(c->fe);
	return 0;
}

int char_be_quiesce_op(struct hearth_dev *dev)
{
	struct char_be *c = be_of(dev);
	struct timespec nap = {0, 1000000};

	for (int ms = 0; ms < QUIESCE_MS; ms++) {
		pthread_mutex_lock(&c->lock);
		bool waiting = c->out.len && c->out_fd >= 0 && !c->out_sync;
		pthread_mutex_unlock(&c->lock);
		if (!waiting)
			break;
		nanosleep(&nap, NULL);
	}
	return 0;
}
