/* The part every char backend shares: the frontend connection, a bounded output ring that
 * the event loop drains, and input offered to the frontend with flow control.
 *
 * Locks: the frontend calls write/rx_ready holding its own device lock, so the core lock
 * nests inside it and no frontend op is ever called with the core lock held. rx_ready
 * only kicks an eventfd; the loop thread does the offering. */
#include "backends/char_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dev/machine.h"
#include "hearth/loop.h"

int char_ring_init(struct char_ring *r, size_t cap)
{
	r->buf = malloc(cap);
	r->cap = r->buf ? cap : 0;
	r->head = r->len = 0;
	return r->buf ? 0 : -1;
}

void char_ring_free(struct char_ring *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = r->head = r->len = 0;
}

size_t char_ring_put(struct char_ring *r, const uint8_t *buf, size_t len)
{
	size_t n = len < char_ring_space(r) ? len : char_ring_space(r);
	size_t tail = (r->head + r->len) % (r->cap ? r->cap : 1);

	for (size_t done = 0; done < n;) {
		size_t run = r->cap - tail;
		if (run > n - done)
			run = n - done;
		memcpy(r->buf + tail, buf + done, run);
		done += run;
		tail = (tail + run) % r->cap;
	}
	r->len += n;
	return n;
}

size_t char_ring_peek(const struct char_ring *r, const uint8_t **p)
{
	size_t run = r->cap - r->head;

	*p = r->buf + r->head;
	return r->len < run ? r->len : run;
}

void char_ring_consume(struct char_ring *r, size_t n)
{
	if (n > r->len)
		n = r->len;
	r->len -= n;
	r->head = r->len ? (r->head + n) % r->cap : 0;
}

int char_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl);
}

bool char_fd_pollable(int fd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = 0};
	bool ok;

	if (ep < 0)
		return false;
	ok = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0;
	close(ep);
	return ok;
}

const char *char_be_id(const struct char_be *c)
{
	return hearth_dev_id(c->dev);
}

/* ---- watches: which events each fd needs right now ---- */

static bool is_shared(const struct char_be *c)
{
	return c->in_fd >= 0 && c->in_fd == c->out_fd;
}

static bool out_wanted(const struct char_be *c)
{
	return c->out_fd >= 0 && !c->out_sync && c->out.len > 0;
}

static bool in_wanted(const struct char_be *c)
{
	return c->in_fd >= 0 && c->in_poll && c->in_state == CHAR_IN_ACTIVE;
}

static void watch_event(void *opaque, uint32_t events);

/* A connection's fd stays watched even with no interest, so a hangup is noticed; a
 * separate input or output fd is watched only while it has work (a paused stdin whose
 * writer left would otherwise report EPOLLHUP forever). Called with the lock held. */
static void watch_sync(struct char_be *c, struct char_watch *w, bool keep, uint32_t events)
{
	bool want = !c->closing && w->fd >= 0 && (keep || events);

	if (want && !w->registered) {
		if (hearth_loop_add(c->vm, w->fd, events, watch_event, w) == 0) {
			w->registered = true;
			w->events = events;
		} else {
			hearth_log("char backend '%s': %s", char_be_id(c), hearth_err_msg());
		}
	} else if (want && w->events != events) {
		if (hearth_loop_mod(c->vm, w->fd, events) == 0)
			w->events = events;
	} else if (!want && w->registered) {
		hearth_loop_del(c->vm, w->fd);
		w->registered = false;
		w->events = 0;
	}
}

static void watches_sync(struct char_be *c)
{
	if (is_shared(c)) {
		uint32_t ev = (in_wanted(c) ? EPOLLIN : 0) | (out_wanted(c) ? EPOLLOUT : 0);
		watch_sync(c, &c->win, true, ev);
		return;
	}
	watch_sync(c, &c->win, false, in_wanted(c) ? EPOLLIN : 0);
	watch_sync(c, &c->wout, false, out_wanted(c) ? EPOLLOUT : 0);
}

/* ---- output ---- */

static ssize_t out_write(struct char_be *c, const uint8_t *p, size_t n)
{
	/* sockets: a vanished peer must give EPIPE, not kill the VMM with SIGPIPE */
	ssize_t r = send(c->out_fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (r < 0 && errno == ENOTSOCK)
		r = write(c->out_fd, p, n);
	return r;
}

/* Blocking writes for regular files: all of it, or an error that ends this output. */
static void out_write_sync(struct char_be *c, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t r = write(c->out_fd, buf, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			c->out_errno = r < 0 ? errno : EIO;
			hearth_log_once(c->out_err_logged,
					"char backend '%s': output failed (%s); "
					"discarding further output",
					char_be_id(c), r < 0 ? strerror(errno) : "short write");
			c->out_fd = -1;
			return;
		}
		buf += r;
		len -= (size_t)r;
	}
}

static size_t be_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct char_be *c = opaque;
	size_t taken = len;

	pthread_mutex_lock(&c->lock);
	if (c->out_fd >= 0 && c->out_sync) {
		out_write_sync(c, buf, len);
	} else if (c->out_fd >= 0 || c->hold) {
		/* Straight out when nothing is queued: an interactive console should not wait
		 * for a loop round trip per character. What does not go now is queued. */
		size_t direct = 0;
		if (c->out_fd >= 0 && c->out.len == 0) {
			ssize_t r = out_write(c, buf, len);
			direct = r > 0 ? (size_t)r : 0;
		}
		taken = direct + char_ring_put(&c->out, buf + direct, len - direct);
		if (taken < len)
			c->tx_owed = true;
		/* only ever adds interest here: removing a watch is the loop thread's job */
		if (c->out.len)
			watches_sync(c);
	}
	pthread_mutex_unlock(&c->lock);
	return taken;
}

size_t char_be_output(struct char_be *c, const uint8_t *buf, size_t len)
{
	return be_write(c, buf, len);
}

/* With the lock held: the frontend ops to call tx_ready on once the lock is dropped. */
static const struct hearth_char_frontend_ops *take_owed(struct char_be *c)
{
	if (!c->tx_owed || char_ring_space(&c->out) == 0 || !c->fe_ops || !c->fe_ops->tx_ready)
		return NULL;
	c->tx_owed = false;
	return c->fe_ops;
}

/* Loop thread. Returns false when the output failed (the caller hangs up). */
static bool drain(struct char_be *c)
{
	const struct hearth_char_frontend_ops *owed = NULL;
	bool ok = true;

	pthread_mutex_lock(&c->lock);
	while (c->out.len && c->out_fd >= 0 && !c->out_sync) {
		const uint8_t *p;
		size_t n = char_ring_peek(&c->out, &p);
		ssize_t r = out_write(c, p, n);
		if (r > 0) {
			char_ring_consume(&c->out, (size_t)r);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		ok = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
		if (!ok)
			c->out_errno = r < 0 ? errno : EIO;
		break;
	}
	owed = take_owed(c);
	if (ok)
		watches_sync(c);
	pthread_mutex_unlock(&c->lock);
	if (owed)
		owed->tx_ready(c->fe);
	return ok;
}

/* ---- input ---- */

static void set_in_state(struct char_be *c, enum char_in_state st)
{
	pthread_mutex_lock(&c->lock);
	if (c->in_fd >= 0)
		c->in_state = st;
	watches_sync(c);
	pthread_mutex_unlock(&c->lock);
}

/* Loop thread: offer what is buffered, then read once more (bounded work per wake-up so
 * a fast producer cannot starve the loop). Bytes already read stay buffered across a
 * hangup and are offered before anything a later consumer sends. */
static void pump_in(struct char_be *c)
{
	pthread_mutex_lock(&c->lock);
	int fd = c->in_fd;
	bool poll = c->in_poll;
	bool readable = fd >= 0 && c->in_state != CHAR_IN_NONE;
	const struct hearth_char_frontend_ops *fe_ops = c->closing ? NULL : c->fe_ops;
	void *fe = c->fe;
	pthread_mutex_unlock(&c->lock);

	if (!fe_ops || !fe_ops->receive)
		return;
	for (int reads = 0;;) {
		if (c->in_len) {
			size_t n = fe_ops->receive(fe, c->in_buf + c->in_off, c->in_len);
			if (n > c->in_len)
				n = c->in_len;
			c->in_off += n;
			c->in_len -= n;
			if (c->in_len) {
				set_in_state(c, CHAR_IN_PAUSED);
				return;
			}
		}
		if (!readable)
			return;
		if (reads++) {
			/* Unpollable input (a regular file) paces itself: read on, one chunk
			 * per kick, as fast as the frontend takes it. */
			set_in_state(c, CHAR_IN_ACTIVE);
			if (!poll)
				char_be_kick(c);
			return;
		}
		size_t got = 0;
		c->in_off = 0;
		enum char_read r = c->io->read(c, fd, c->in_buf, CHAR_IN_CHUNK, &got);
		if (r == CHAR_READ_AGAIN) {
			set_in_state(c, CHAR_IN_ACTIVE);
			return;
		}
		if (r == CHAR_READ_END) {
			c->io->hangup(c, false);
			return;
		}
		c->in_len = got < sizeof(c->in_buf) ? got : sizeof(c->in_buf);
	}
}

static void watch_event(void *opaque, uint32_t events)
{
	struct char_watch *w = opaque;
	struct char_be *c = w->c;
	bool hup = events & (EPOLLHUP | EPOLLERR);

	pthread_mutex_lock(&c->lock);
	bool is_out = w->fd >= 0 && w->fd == c->out_fd;
	bool is_in = w->fd >= 0 && w->fd == c->in_fd;
	bool pending_out = c->out.len > 0;
	bool reading = c->in_state == CHAR_IN_ACTIVE;
	pthread_mutex_unlock(&c->lock);

	if (is_out && pending_out && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
		if (!drain(c)) {
			c->io->hangup(c, true);
			return;
		}
	}
	if (is_in && reading && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		pump_in(c); /* reads to the end of input, which hangs up */
		return;
	}
	/* A hangup while input is paused: the peer is gone and whatever it sent that was not
	 * read yet goes with it. Waiting for the guest to read first could stall the line
	 * (and a wait=off output) for good. */
	if (hup && (is_in || is_out))
		c->io->hangup(c, is_out && !is_in);
}

static void kick_event(void *opaque, uint32_t events)
{
	struct char_be *c = opaque;
	uint64_t v;

	(void)events;
	if (read(c->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		hearth_log("char backend '%s': eventfd: %s", char_be_id(c), strerror(errno));
	pump_in(c);
}

void char_be_kick(struct char_be *c)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: the wake-up is pending anyway */
	if (write(c->kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		hearth_log("char backend '%s': eventfd: %s", char_be_id(c), strerror(errno));
}

static void be_rx_ready(void *opaque)
{
	char_be_kick(opaque);
}

static const struct hearth_char_backend_ops char_be_ops = {
	.write = be_write,
	.rx_ready = be_rx_ready,
};

/* ---- set-up ---- */

int char_be_init(struct char_be *c, struct hearth_dev *dev, const struct char_be_io *io, bool hold)
{
	c->dev = dev;
	c->vm = hearth_dev_vm(dev);
	c->io = io;
	c->hold = hold;
	c->in_fd = c->out_fd = -1;
	c->win = (struct char_watch){.c = c, .fd = -1};
	c->wout = (struct char_watch){.c = c, .fd = -1};
	c->kick_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	if (char_ring_init(&c->out, CHAR_OUT_CAP) < 0)
		return hearth_err("out of memory for the output buffer");
	c->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->kick_fd < 0)
		return hearth_err("eventfd: %s", strerror(errno));
	return 0;
}

void char_be_set_fds(struct char_be *c, int in_fd, bool in_poll, int out_fd, bool out_sync)
{
	const struct hearth_char_frontend_ops *owed;

	pthread_mutex_lock(&c->lock);
	/* drop the old watches first: the new fds may reuse the old numbers */
	c->in_fd = c->out_fd = -1;
	watches_sync(c);

	c->in_fd = in_fd;
	c->in_poll = in_poll;
	c->in_state = in_fd >= 0 ? CHAR_IN_ACTIVE : CHAR_IN_NONE;
	c->out_fd = out_fd;
	c->out_sync = out_sync;
	c->win.fd = in_fd;
	c->wout.fd = in_fd >= 0 && in_fd == out_fd ? -1 : out_fd;
	if (out_fd < 0 && !c->hold)
		char_ring_consume(&c->out, c->out.len);
	if (out_fd >= 0 && out_sync && c->out.len) {
		const uint8_t *p;
		while (c->out.len && c->out_fd >= 0) {
			size_t n = char_ring_peek(&c->out, &p);
			out_write_sync(c, p, n);
			char_ring_consume(&c->out, n);
		}
	}
	owed = take_owed(c);
	watches_sync(c);
	pthread_mutex_unlock(&c->lock);
	if (in_fd >= 0 && !in_poll)
		char_be_kick(c);
	if (owed)
		owed->tx_ready(c->fe);
}

int hearth_char_backend_attach(struct hearth_dev *be, struct hearth_cfg *cfg,
			       const struct hearth_char_backend_ops *ops, void *opaque,
			       const struct hearth_char_frontend_ops **fe_ops, void **fe)
{
	const char *id;
	const void *o;
	void *f;

	if (hearth_cfg_str(cfg, "frontend", "com1", &id) < 0)
		return -1;
	/* UARTs are char frontends, virtio consoles console frontends: both speak these ops */
	enum hearth_fe_type type = HEARTH_FE_CHAR;
	for (const struct hearth_frontend *fr = be->vm->frontends; fr; fr = fr->next)
		if (strcmp(fr->dev->id, id) == 0 && fr->type == HEARTH_FE_CONSOLE)
			type = HEARTH_FE_CONSOLE;
	if (hearth_frontend_connect(be, id, type, &o, &f) < 0)
		return -1;
	*fe_ops = o;
	*fe = f;
	if (*fe_ops && (*fe_ops)->attach)
		(*fe_ops)->attach(f, ops, opaque);
	return 0;
}

int char_be_attach(struct char_be *c, struct hearth_cfg *cfg)
{
	const struct hearth_char_frontend_ops *ops;
	void *fe;

	if (hearth_char_backend_attach(c->dev, cfg, &char_be_ops, c, &ops, &fe) < 0)
		return -1;
	pthread_mutex_lock(&c->lock);
	c->fe_ops = ops;
	c->fe = fe;
	pthread_mutex_unlock(&c->lock);
	if (hearth_loop_add(c->vm, c->kick_fd, EPOLLIN, kick_event, c) < 0)
		return -1;
	c->kick_registered = true;
	/* unpollable input starts on its own; input that arrived before attach waits no more */
	char_be_kick(c);
	return 0;
}

void char_be_stop(struct char_be *c)
{
	/* the frontend stops calling us first, then no loop callback may start again */
	if (c->fe_ops && c->fe_ops->attach)
		c->fe_ops->attach(c->fe, NULL, NULL);
	pthread_mutex_lock(&c->lock);
	c->closing = true;
	int fds[2] = {c->win.registered ? c->win.fd : -1, c->wout.registered ? c->wout.fd : -1};
	c->win.registered = c->wout.registered = false;
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			hearth_loop_del(c->vm, fds[i]);
	if (c->kick_registered)
		hearth_loop_del(c->vm, c->kick_fd);
	c->kick_registered = false;
	pthread_mutex_lock(&c->lock);
	c->fe_ops = NULL;
	pthread_mutex_unlock(&c->lock);
}

void char_be_destroy(struct char_be *c)
{
	if (c->kick_fd >= 0)
		close(c->kick_fd);
	c->kick_fd = -1;
	char_ring_free(&c->out);
	pthread_mutex_destroy(&c->lock);
}
