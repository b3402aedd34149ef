/* The event loop: one epoll thread. A dispatch lock held while a batch of callbacks runs
 * lets hearth_loop_del promise that the callback is finished and will not run again. */
#include "vm/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dev/machine.h"
#include "hearth/error.h"

struct loop_entry {
	int fd;
	hearth_fd_fn fn;
	void *opaque;
	bool dead;
	struct loop_entry *next;
};

struct hearth_loop {
	int epfd, stopfd;
	pthread_t thread;
	bool started;
	pthread_mutex_t dispatch; /* held while callbacks run */
	pthread_mutex_t lock;	  /* guards the entry list */
	struct loop_entry *entries;
	/* Removed entries, freed after the next batch: a batch may hold their pointers from
	 * epoll_wait even when they were removed before it took the dispatch lock. */
	struct loop_entry *graveyard;
};

/* The loop whose batch this thread is running, if any. */
static _Thread_local struct hearth_loop *batch_loop;

struct hearth_loop *loop_new(void)
{
	struct hearth_loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd < 0 || l->stopfd < 0) {
		hearth_err("event loop: %s", strerror(errno));
		loop_free(l);
		return NULL;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stopfd, &ev);
	pthread_mutex_init(&l->dispatch, NULL);
	pthread_mutex_init(&l->lock, NULL);
	return l;
}

static bool on_loop_thread(struct hearth_loop *l)
{
	return batch_loop == l;
}

int loop_run_once(struct hearth_loop *l, int timeout_ms)
{
	struct epoll_event evs[32];
	int stop = 0;

	int n = epoll_wait(l->epfd, evs, 32, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	pthread_mutex_lock(&l->dispatch);
	batch_loop = l;
	for (int i = 0; i < n; i++) {
		struct loop_entry *e = evs[i].data.ptr;
		if (!e) {
			stop = 1;
			continue;
		}
		if (!e->dead)
			e->fn(e->opaque, evs[i].events);
	}
	batch_loop = NULL;
	pthread_mutex_lock(&l->lock);
	struct loop_entry *g = l->graveyard;
	l->graveyard = NULL;
	pthread_mutex_unlock(&l->lock);
	pthread_mutex_unlock(&l->dispatch);
	while (g) {
		struct loop_entry *next = g->next;
		free(g);
		g = next;
	}
	return stop;
}

static void *loop_thread(void *arg)
{
	struct hearth_loop *l = arg;

	while (loop_run_once(l, -1) == 0)
		;
	return NULL;
}

int loop_start(struct hearth_loop *l)
{
	int err = pthread_create(&l->thread, NULL, loop_thread, l);

	if (err)
		return hearth_err("event loop thread: %s", strerror(err));
	l->started = true;
	return 0;
}

void loop_stop(struct hearth_loop *l)
{
	uint64_t one = 1;

	if (!l || !l->started)
		return;
	if (write(l->stopfd, &one, sizeof(one)) != sizeof(one))
		hearth_log("event loop: cannot wake the loop thread: %s", strerror(errno));
	pthread_join(l->thread, NULL);
	l->started = false;
	/* drain the wake-up, or a restarted loop (or loop_run_once) would stop at once */
	ssize_t drained = read(l->stopfd, &one, sizeof(one));
	(void)drained;
}

void loop_free(struct hearth_loop *l)
{
	if (!l)
		return;
	loop_stop(l);
	while (l->entries) {
		struct loop_entry *e = l->entries;
		l->entries = e->next;
		free(e);
	}
	while (l->graveyard) {
		struct loop_entry *e = l->graveyard;
		l->graveyard = e->next;
		free(e);
	}
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->stopfd >= 0)
		close(l->stopfd);
	pthread_mutex_destroy(&l->dispatch);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

int hearth_loop_add(struct hearth_vm *vm, int fd, uint32_t events, hearth_fd_fn fn, void *opaque)
{
	struct hearth_loop *l = vm->loop;
	struct loop_entry *e = calloc(1, sizeof(*e));

	if (!e)
		return hearth_err("event loop: out of memory");
	*e = (struct loop_entry){.fd = fd, .fn = fn, .opaque = opaque};
	struct epoll_event ev = {.events = events, .data.ptr = e};
	pthread_mutex_lock(&l->lock);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = errno;
		pthread_mutex_unlock(&l->lock);
		free(e);
		return hearth_err("event loop: cannot watch fd %d: %s", fd, strerror(err));
	}
	e->next = l->entries;
	l->entries = e;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static struct loop_entry *find_locked(struct hearth_loop *l, int fd, struct loop_entry ***link)
{
	for (struct loop_entry **p = &l->entries; *p; p = &(*p)->next) {
		if ((*p)->fd == fd) {
			if (link)
				*link = p;
			return *p;
		}
	}
	return NULL;
}

int hearth_loop_mod(struct hearth_vm *vm, int fd, uint32_t events)
{
	struct hearth_loop *l = vm->loop;
	int ret = -1;

	pthread_mutex_lock(&l->lock);
	struct loop_entry *e = find_locked(l, fd, NULL);
	struct epoll_event ev = {.events = events, .data.ptr = e};
	if (!e)
		hearth_err("event loop: fd %d is not watched", fd);
	else if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		hearth_err("event loop: fd %d: %s", fd, strerror(errno));
	else
		ret = 0;
	pthread_mutex_unlock(&l->lock);
	return ret;
}

void hearth_loop_del(struct hearth_vm *vm, int fd)
{
	struct hearth_loop *l = vm->loop;
	struct loop_entry **link;
	bool self = on_loop_thread(l);

	/* From another thread, wait for a running batch so the callback is not mid-flight. */
	if (!self)
		pthread_mutex_lock(&l->dispatch);
	pthread_mutex_lock(&l->lock);
	struct loop_entry *e = find_locked(l, fd, &link);
	if (e) {
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		*link = e->next;
		e->dead = true;
		e->next = l->graveyard;
		l->graveyard = e;
	}
	pthread_mutex_unlock(&l->lock);
	if (!self)
		pthread_mutex_unlock(&l->dispatch);
}
