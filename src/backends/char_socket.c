/* char-socket: a UNIX stream socket server; one client at a time is the guest's line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backends/char_ckpt.h"
#include "backends/char_common.h"
#include "hearth/loop.h"

struct sock_be {
	struct char_be c;
	int lfd, cfd;
	bool listening; /* lfd is watched: no client now */
	bool bound;	/* we created the socket file */
	char *path;
};

static void listen_event(void *opaque, uint32_t events);

static void listen_watch(struct sock_be *s, bool on)
{
	if (on == s->listening)
		return;
	if (!on) {
		hearth_loop_del(s->c.vm, s->lfd);
	} else if (hearth_loop_add(s->c.vm, s->lfd, EPOLLIN, listen_event, s) < 0) {
		hearth_log("char-socket '%s': %s", char_be_id(&s->c), hearth_err_msg());
		return;
	}
	s->listening = on;
}

/* Clients beyond the first wait in the listen backlog until it leaves. */
static void listen_event(void *opaque, uint32_t events)
{
	struct sock_be *s = opaque;
	int fd;

	(void)events;
	fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			hearth_log("char-socket '%s': accept: %s", char_be_id(&s->c),
				   strerror(errno));
		return;
	}
	if (s->cfd >= 0) {
		close(fd);
		return;
	}
	s->cfd = fd;
	listen_watch(s, false);
	char_be_set_fds(&s->c, fd, true, fd, false);
}

static enum char_read sock_read(struct char_be *c, int fd, uint8_t *buf, size_t cap, size_t *n)
{
	ssize_t r;

	(void)c;
	do
		r = recv(fd, buf, cap, MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return CHAR_READ_AGAIN;
	if (r <= 0)
		return CHAR_READ_END;
	*n = (size_t)r;
	return CHAR_READ_DATA;
}

/* The client left (or shut its sending side): drop it and listen again. */
static void sock_hangup(struct char_be *c, bool output)
{
	struct sock_be *s = (struct sock_be *)c;
	int fd = s->cfd;

	(void)output;
	if (fd < 0)
		return;
	char_be_set_fds(c, -1, false, -1, false);
	close(fd);
	s->cfd = -1;
	pthread_mutex_lock(&c->lock);
	bool closing = c->closing;
	pthread_mutex_unlock(&c->lock);
	if (!closing)
		listen_watch(s, true);
}

static const struct char_be_io sock_io = {
	.read = sock_read,
	.hangup = sock_hangup,
};

/* A socket file left by a hearth that died is removed; one a live server answers on, or
 * anything that is not a socket, is an error. */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : hearth_err("'%s': %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return hearth_err("'%s' exists and is not a socket; not replacing it", path);
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return hearth_err("socket: %s", strerror(errno));
	int live = connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(probe);
	if (live)
		return hearth_err("'%s' is in use by a running server", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return hearth_err("cannot remove stale socket '%s': %s", path, strerror(errno));
	return 0;
}

static void sock_free(struct hearth_dev *dev)
{
	struct sock_be *s = hearth_dev_priv(dev);

	if (!s)
		return;
	char_be_stop(&s->c);
	if (s->lfd >= 0) {
		hearth_loop_del(s->c.vm, s->lfd);
		close(s->lfd);
	}
	if (s->cfd >= 0)
		close(s->cfd);
	if (s->bound)
		unlink(s->path);
	char_be_destroy(&s->c);
	free(s->path);
	free(s);
}

static int sock_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path;
	bool wait;
	struct sock_be *s;

	if (hearth_cfg_str(cfg, "path", NULL, &path) < 0 ||
	    hearth_cfg_bool(cfg, "wait", false, &wait) < 0)
		return -1;
	if (!path || !path[0])
		return hearth_err("key 'path' is required: where to create the UNIX socket");
	if (strlen(path) >= sizeof(sa.sun_path))
		return hearth_err("socket path '%s' is %zu bytes; a UNIX socket path holds at "
				  "most %zu",
				  path, strlen(path), sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);

	s = calloc(1, sizeof(*s));
	if (!s)
		return hearth_err("out of memory");
	s->lfd = s->cfd = -1;
	hearth_dev_set_priv(dev, s);
	if (char_be_init(&s->c, dev, &sock_io, wait) < 0)
		return -1;
	s->path = strdup(path);
	if (!s->path)
		return hearth_err("out of memory");
	if (clear_stale(path, &sa) < 0)
		return -1;
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0)
		return hearth_err("socket: %s", strerror(errno));
	if (bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return hearth_err("cannot create socket '%s': %s", path, strerror(errno));
	s->bound = true;
	if (listen(s->lfd, 4) < 0)
		return hearth_err("listen on '%s': %s", path, strerror(errno));
	if (char_be_attach(&s->c, cfg) < 0)
		return -1;
	listen_watch(s, true);
	return s->listening ? 0 : -1;
}

static void sock_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	struct sock_be *s = hearth_dev_priv(dev);

	snprintf(buf, len, "%s", s && s->path ? s->path : "");
}

HEARTH_DEVICE_CLASS(char_socket_class, .name = "char-socket",
		    .summary = "char backend serving a UNIX socket, one client at a time "
			       "(path=, wait=on holds output while no client)",
		    .init = sock_init, .free = sock_free, .describe = sock_describe,
		    .save = char_be_save_op, .load = char_be_load_op,
		    .quiesce = char_be_quiesce_op);
