/* char-pty: a pseudo-terminal whose slave side (/dev/pts/N) is the guest's line.
 * Whether anyone has the slave open is only visible as POLLHUP on the master, which epoll
 * would report without pause; while nobody does, a timer looks every POLL_MS instead. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include "backends/char_ckpt.h"
#include "backends/char_common.h"
#include "hearth/loop.h"

#define POLL_MS 100

struct pty_be {
	struct char_be c;
	int master, timer;
	bool timer_watched;
	char path[64];
};

static bool slave_open(int master)
{
	struct pollfd p = {.fd = master, .events = POLLIN};

	return poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP);
}

static void timer_arm(struct pty_be *p, bool on)
{
	long ns = on ? POLL_MS * 1000000L : 0;
	struct itimerspec its = {.it_interval = {0, ns}, .it_value = {0, ns}};

	timerfd_settime(p->timer, 0, &its, NULL);
}

/* Loop thread (or init): connect the line when a slave is open, else keep looking. */
static void check_slave(struct pty_be *p)
{
	if (slave_open(p->master)) {
		timer_arm(p, false);
		char_be_set_fds(&p->c, p->master, true, p->master, false);
	} else {
		timer_arm(p, true);
	}
}

static void timer_event(void *opaque, uint32_t events)
{
	struct pty_be *p = opaque;
	uint64_t ticks;

	(void)events;
	if (read(p->timer, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&p->c.lock);
	bool idle = p->c.in_fd < 0 && !p->c.closing;
	pthread_mutex_unlock(&p->c.lock);
	if (idle)
		check_slave(p);
}

static enum char_read pty_read(struct char_be *c, int fd, uint8_t *buf, size_t cap, size_t *n)
{
	ssize_t r;

	(void)c;
	do
		r = read(fd, buf, cap);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return CHAR_READ_AGAIN;
	if (r <= 0)
		return CHAR_READ_END; /* EIO: the last slave fd was closed */
	*n = (size_t)r;
	return CHAR_READ_DATA;
}

static void pty_hangup(struct char_be *c, bool output)
{
	struct pty_be *p = (struct pty_be *)c;

	(void)output;
	char_be_set_fds(c, -1, false, -1, false);
	timer_arm(p, true);
}

static const struct char_be_io pty_io = {
	.read = pty_read,
	.hangup = pty_hangup,
};

static void pty_free(struct hearth_dev *dev)
{
	struct pty_be *p = hearth_dev_priv(dev);

	if (!p)
		return;
	char_be_stop(&p->c);
	if (p->timer_watched)
		hearth_loop_del(p->c.vm, p->timer);
	if (p->timer >= 0)
		close(p->timer);
	if (p->master >= 0)
		close(p->master);
	char_be_destroy(&p->c);
	free(p);
}

static int pty_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	struct pty_be *p;
	struct termios t;
	bool wait;

	if (hearth_cfg_bool(cfg, "wait", false, &wait) < 0)
		return -1;
	p = calloc(1, sizeof(*p));
	if (!p)
		return hearth_err("out of memory");
	p->master = p->timer = -1;
	hearth_dev_set_priv(dev, p);
	if (char_be_init(&p->c, dev, &pty_io, wait) < 0)
		return -1;
	p->master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (p->master < 0)
		return hearth_err("cannot open a pseudo-terminal: %s", strerror(errno));
	if (grantpt(p->master) < 0 || unlockpt(p->master) < 0 ||
	    ptsname_r(p->master, p->path, sizeof(p->path)) != 0)
		return hearth_err("cannot set up the pseudo-terminal: %s", strerror(errno));
	/* a raw line: the guest does its own echo and line editing */
	if (tcgetattr(p->master, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(p->master, TCSANOW, &t);
	}
	/* Until a slave is first opened the master shows no hangup; open and close it once so
	 * "nobody is connected" looks the same from the start. */
	int s = open(p->path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		return hearth_err("cannot open '%s': %s", p->path, strerror(errno));
	close(s);
	p->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (p->timer < 0)
		return hearth_err("timerfd: %s", strerror(errno));
	if (char_be_attach(&p->c, cfg) < 0)
		return -1;
	if (hearth_loop_add(p->c.vm, p->timer, EPOLLIN, timer_event, p) < 0)
		return -1;
	p->timer_watched = true;
	check_slave(p);
	hearth_log("char-pty '%s': %s", hearth_dev_id(dev), p->path);
	return 0;
}

static void pty_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	struct pty_be *p = hearth_dev_priv(dev);

	snprintf(buf, len, "%s", p ? p->path : "");
}

HEARTH_DEVICE_CLASS(char_pty_class, .name = "char-pty",
		    .summary = "char backend on a new pseudo-terminal (wait=on holds output "
			       "while nobody has it open)",
		    .init = pty_init, .free = pty_free, .describe = pty_describe,
		    .save = char_be_save_op, .load = char_be_load_op,
		    .quiesce = char_be_quiesce_op);
