/* The control API over HTTP/1.1 on a UNIX socket, with libmicrohttpd, bound to a struct vm.
 *
 * MHD runs its own threads (an accept thread and one per connection) rather than joining
 * the VM's event loop: a snapshot drains in-flight I/O through that very loop, so a request
 * that waits for the snapshot must not be running on it; a slow or stuck client must never
 * delay guest I/O either. A thread per connection lets a long snapshot block only its own
 * client while GET /vm, and the 409 for a second snapshot, are answered on the others;
 * connections are few (a local, owner-only socket), so the threads are cheap. */
#include "api/api.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/control.h"
#include "dev/inventory.h"
#include "hearth/error.h"
#include "snapshot/vmsnap.h"
#include "util/lazylib.h"
#include "vm/vm.h"

/* libmicrohttpd, opened when the first API starts (util/lazylib.h says why) */
#define MHD_FUNCS(X)                                                                               \
	X(MHD_add_response_header)                                                                 \
	X(MHD_create_response_from_buffer)                                                         \
	X(MHD_destroy_response)                                                                    \
	X(MHD_queue_response)                                                                      \
	X(MHD_quiesce_daemon)                                                                      \
	X(MHD_set_connection_option)                                                               \
	X(MHD_start_daemon)                                                                        \
	X(MHD_stop_daemon)
static struct {
	MHD_FUNCS(LAZYLIB_MEMBER)
} mhd;
static const char *const mhd_names[] = {MHD_FUNCS(LAZYLIB_NAME)};

#define API_CONNECTIONS 16u
#define API_IDLE_TIMEOUT 60u /* seconds a connection may sit idle */

struct api_server {
	struct api_ctl ctl;
	struct MHD_Daemon *mhd;
	/* requests from their handler's start until MHD is done sending the answer, and those
	 * of them still in their handler: api_stop lets them finish */
	pthread_mutex_t lock;
	pthread_cond_t done;
	unsigned inflight, handling;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	/* the socket file we made: only that one is removed at the end */
	dev_t dev;
	ino_t ino;
};

/* ---- the VM as control.c sees it ---- */

static void op_pause(void *vm)
{
	vm_pause(vm);
}

static void op_resume(void *vm)
{
	vm_resume(vm);
}

static int op_snapshot(void *vm, const char *dir)
{
	return vm_snapshot(vm, dir);
}

static void op_shutdown(void *vm)
{
	vm_stop(vm, EXIT_GUEST_OK);
}

static bool op_stopping(void *vm)
{
	return atomic_load(&((struct vm *)vm)->stopping);
}

static unsigned op_cpus(void *vm)
{
	return ((struct vm *)vm)->ncpus;
}

static uint64_t op_memory(void *vm)
{
	return ((struct vm *)vm)->cfg->memory;
}

static struct json_object *op_devices(void *vm)
{
	struct json_object *j = machine_json(&((struct vm *)vm)->m);

	if (!j)
		hearth_err("out of memory");
	return j;
}

static const struct api_vm_ops vm_ops = {
	.pause = op_pause,
	.resume = op_resume,
	.snapshot = op_snapshot,
	.shutdown = op_shutdown,
	.stopping = op_stopping,
	.cpus = op_cpus,
	.memory = op_memory,
	.devices = op_devices,
};

/* ---- HTTP ---- */

struct request {
	char *body;
	size_t len;
	bool too_big, oom;
	bool counted; /* in s->inflight */
};

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct api_reply *r)
{
	const char *json =
		r->body ? json_object_to_json_string_ext(
				  r->body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
			: NULL;
	unsigned status = json ? r->status : MHD_HTTP_INTERNAL_SERVER_ERROR;
	char *text = NULL;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	/* a newline so that curl's output ends its line */
	if (!json || asprintf(&text, "%s\n", json) < 0)
		text = NULL;
	if (text)
		resp = mhd.MHD_create_response_from_buffer(strlen(text), text,
							   MHD_RESPMEM_MUST_FREE);
	else
		resp = mhd.MHD_create_response_from_buffer(
			strlen("{\"error\":\"out of memory\"}\n"),
			(void *)"{\"error\":\"out of memory\"}\n", MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	if (!text)
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	mhd.MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (r->allow)
		mhd.MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	ret = mhd.MHD_queue_response(conn, status, resp);
	mhd.MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **ctx)
{
	struct api_server *s = cls;
	struct request *q = *ctx;
	struct api_reply r;
	enum MHD_Result ret;

	(void)version;
	if (!q) {
		/* first call: headers only */
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		*ctx = q;
		return MHD_YES;
	}
	if (*size) {
		/* a body over the limit is read and dropped, so the 413 reaches the client */
		if (!q->too_big && !q->oom && *size <= API_BODY_MAX - q->len) {
			char *b = realloc(q->body, q->len + *size);
			if (b) {
				memcpy(b + q->len, data, *size);
				q->body = b;
				q->len += *size;
			} else {
				q->oom = true;
			}
		} else {
			q->too_big = true;
		}
		*size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&s->lock);
	s->inflight++;
	s->handling++;
	pthread_mutex_unlock(&s->lock);
	q->counted = true;
	if (q->oom) {
		pthread_mutex_lock(&s->lock);
		s->handling--;
		pthread_mutex_unlock(&s->lock);
		r = (struct api_reply){.status = MHD_HTTP_INTERNAL_SERVER_ERROR};
		return send_reply(conn, &r);
	}
	/* a pause or a snapshot may take longer than an idle connection may last; setting a
	 * timeout again after no timeout restarts its clock */
	mhd.MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
	api_handle(&s->ctl, method, url, q->body, q->too_big ? API_BODY_MAX + 1 : q->len, &r);
	mhd.MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, API_IDLE_TIMEOUT);
	pthread_mutex_lock(&s->lock);
	s->handling--;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
	ret = send_reply(conn, &r);
	json_object_put(r.body);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
			 enum MHD_RequestTerminationCode why)
{
	struct api_server *s = cls;
	struct request *q = *ctx;

	(void)conn;
	(void)why;
	if (q) {
		if (q->counted) {
			pthread_mutex_lock(&s->lock);
			s->inflight--;
			pthread_cond_broadcast(&s->done);
			pthread_mutex_unlock(&s->lock);
		}
		free(q->body);
		free(q);
	}
	*ctx = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[HEARTH_ERR_MAX];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	hearth_log("api: %s", line);
}

/* ---- the socket ---- */

/* Only a socket nobody answers on is stale: anything else at the path is someone's. */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r, err;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return hearth_err("--api %s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return hearth_err("--api %s: exists and is not a socket; not replacing it", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return hearth_err("--api %s: socket: %s", path, strerror(errno));
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	err = errno;
	close(fd);
	if (r == 0)
		return hearth_err("--api %s: another process is serving on this socket", path);
	if (err != ECONNREFUSED)
		return hearth_err("--api %s: cannot tell whether the socket is in use: %s", path,
				  strerror(err));
	if (unlink(path) < 0 && errno != ENOENT)
		return hearth_err("--api %s: cannot remove the stale socket: %s", path,
				  strerror(errno));
	return 0;
}

/* The listening socket, or -1 with hearth_err and *status set. */
static int listen_unix(struct api_server *s, const char *path, int *status)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	struct stat st;
	mode_t old;
	int fd, r;

	*status = EXIT_CONFIG;
	/* the kernel would cut a longer path short: never serve somewhere else than asked */
	if (!len || len >= sizeof(sa.sun_path))
		return hearth_err("--api %s: %zu bytes; a UNIX socket path holds 1 to %zu", path,
				  len, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, len + 1);
	memcpy(s->path, path, len + 1);
	if (clear_stale(path, &sa) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*status = EXIT_HOST;
		return hearth_err("--api %s: socket: %s", path, strerror(errno));
	}
	/* the socket is born 0600: whoever may connect may pause or stop the VM. (umask is
	 * process-wide, but no other thread creates files this early.) */
	old = umask(0177);
	r = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		hearth_err("--api %s: bind: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (stat(path, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	if (listen(fd, API_CONNECTIONS) < 0) {
		*status = EXIT_HOST;
		hearth_err("--api %s: listen: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

static void remove_socket(struct api_server *s)
{
	struct stat st;

	/* someone may have put another file there meanwhile: leave that one alone */
	if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == s->dev &&
	    st.st_ino == s->ino)
		unlink(s->path);
}

static void free_server(struct api_server *s)
{
	api_ctl_destroy(&s->ctl);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->done);
	free(s);
}

/* Until every request has been answered: no time limit while a handler runs (a snapshot
 * ends when it ends), then a little for the last answers to reach slow readers. */
static void wait_requests(struct api_server *s)
{
	struct timespec now, deadline = {0};

	pthread_mutex_lock(&s->lock);
	while (s->inflight) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (s->handling)
			deadline.tv_sec = 0;
		else if (!deadline.tv_sec)
			deadline = (struct timespec){now.tv_sec + 2, now.tv_nsec};
		else if (now.tv_sec > deadline.tv_sec ||
			 (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
			break;
		struct timespec step = {now.tv_sec, now.tv_nsec + 50 * 1000 * 1000};
		if (step.tv_nsec >= 1000000000) {
			step.tv_sec++;
			step.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->done, &s->lock, &step);
	}
	pthread_mutex_unlock(&s->lock);
}

int api_start(struct api_server **out, struct vm *vm, const char *path)
{
	struct api_server *s = calloc(1, sizeof(*s));
	sigset_t all, old;
	int fd, status;

	*out = NULL;
	if (!s) {
		hearth_err("--api: out of memory");
		return EXIT_HOST;
	}
	if (!mhd.MHD_start_daemon && lazylib_open("libmicrohttpd.so.12", mhd_names, (void **)&mhd,
						  sizeof(mhd_names) / sizeof(mhd_names[0])) < 0) {
		hearth_err_prefix("--api");
		free(s);
		return EXIT_HOST;
	}
	fd = listen_unix(s, path, &status);
	if (fd < 0) {
		free(s);
		return status;
	}
	api_ctl_init(&s->ctl, &vm_ops, vm);
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->done, &ca);
	pthread_condattr_destroy(&ca);
	/* MHD's threads inherit this mask: process signals (SIGTERM...) must reach vm_run's
	 * signalfd, never end the process from an API thread */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	s->mhd = mhd.MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
			MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
		MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, API_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, API_IDLE_TIMEOUT, MHD_OPTION_NOTIFY_COMPLETED,
		on_completed, s, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!s->mhd) {
		hearth_err("--api %s: cannot start the HTTP server", path);
		close(fd);
		remove_socket(s);
		free_server(s);
		return EXIT_HOST;
	}
	*out = s;
	return 0;
}

void api_stop(struct api_server *s)
{
	if (!s)
		return;
	/* no new clients (the path goes first, so they are told at once); the answers to
	 * requests in progress, such as the shutdown that got us here, still go out */
	MHD_socket fd = mhd.MHD_quiesce_daemon(s->mhd);
	remove_socket(s);
	wait_requests(s);
	/* closes the connections left (idle ones) and joins every thread */
	mhd.MHD_stop_daemon(s->mhd);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	free_server(s);
}
