/* The event loop: registrations, callbacks on loop_run_once and on the loop thread, and the
 * promise of hearth_loop_del (the callback is finished and will not run again). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakevm.h"

static struct fakevm *f;

static int setup(void **state)
{
	(void)state;
	f = fakevm_new(4096);
	return f->vm.loop ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	fakevm_free(f);
	return 0;
}

static int efd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void kick(int fd)
{
	uint64_t one = 1;
	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static void drain(int fd)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

struct counter {
	int fd;
	atomic_int calls;
	atomic_uint last_events;
	bool drain;
};

static void count_cb(void *opaque, uint32_t events)
{
	struct counter *c = opaque;

	atomic_fetch_add(&c->calls, 1);
	c->last_events = events;
	if (c->drain)
		drain(c->fd);
}

static void add_mod_del(void **state)
{
	struct counter c = {.fd = efd(), .drain = true};

	(void)state;
	assert_int_equal(hearth_loop_add(&f->vm, c.fd, EPOLLIN, count_cb, &c), 0);
	assert_int_equal(loop_run_once(f->vm.loop, 0), 0);
	assert_int_equal(c.calls, 0); /* nothing ready */
	kick(c.fd);
	assert_int_equal(loop_run_once(f->vm.loop, 1000), 0);
	assert_int_equal(c.calls, 1);
	assert_true(c.last_events & EPOLLIN);
	assert_int_equal(loop_run_once(f->vm.loop, 0), 0);
	assert_int_equal(c.calls, 1); /* drained: not ready again */

	/* an eventfd is always writable */
	assert_int_equal(hearth_loop_mod(&f->vm, c.fd, EPOLLOUT), 0);
	assert_int_equal(loop_run_once(f->vm.loop, 1000), 0);
	assert_int_equal(c.calls, 2);
	assert_true(c.last_events & EPOLLOUT);
	assert_false(c.last_events & EPOLLIN);
	assert_int_equal(hearth_loop_mod(&f->vm, c.fd, EPOLLIN), 0);
	assert_int_equal(loop_run_once(f->vm.loop, 0), 0);
	assert_int_equal(c.calls, 2);

	hearth_loop_del(&f->vm, c.fd);
	kick(c.fd);
	assert_int_equal(loop_run_once(f->vm.loop, 20), 0);
	assert_int_equal(c.calls, 2);
	hearth_loop_del(&f->vm, c.fd); /* twice: nothing happens */
	/* and the fd can be watched again */
	assert_int_equal(hearth_loop_add(&f->vm, c.fd, EPOLLIN, count_cb, &c), 0);
	assert_int_equal(loop_run_once(f->vm.loop, 1000), 0);
	assert_int_equal(c.calls, 3);
	hearth_loop_del(&f->vm, c.fd);
	close(c.fd);
}

static void registration_errors(void **state)
{
	struct counter c = {.fd = efd()};

	(void)state;
	assert_int_equal(hearth_loop_add(&f->vm, c.fd, EPOLLIN, count_cb, &c), 0);
	hearth_err_clear();
	assert_int_equal(hearth_loop_add(&f->vm, c.fd, EPOLLIN, count_cb, &c), -1);
	assert_non_null(strstr(hearth_err_msg(), "fd"));
	hearth_err_clear();
	assert_int_equal(hearth_loop_add(&f->vm, -1, EPOLLIN, count_cb, &c), -1);
	assert_non_null(strstr(hearth_err_msg(), "fd -1"));
	hearth_err_clear();
	assert_int_equal(hearth_loop_mod(&f->vm, 12345, EPOLLIN), -1);
	assert_non_null(strstr(hearth_err_msg(), "fd 12345 is not watched"));
	hearth_loop_del(&f->vm, 12345); /* unknown: ignored */
	/* the failed add left the first registration working */
	kick(c.fd);
	assert_int_equal(loop_run_once(f->vm.loop, 1000), 0);
	assert_int_equal(c.calls, 1);
	hearth_loop_del(&f->vm, c.fd);
	close(c.fd);
}

/* Two ready fds whose callbacks each remove the other: exactly one runs in the batch. */
struct pair {
	int fd[2];
	int calls[2];
	int deleted_self;
};

static struct pair *the_pair;

static void pair_cb(void *opaque, uint32_t events)
{
	int i = (int)(intptr_t)opaque;

	(void)events;
	the_pair->calls[i]++;
	hearth_loop_del(&f->vm, the_pair->fd[1 - i]);
	hearth_loop_del(&f->vm, the_pair->fd[i]); /* and itself, from inside its own callback */
	the_pair->deleted_self++;
}

static void del_inside_callback(void **state)
{
	struct pair p = {{efd(), efd()}, {0, 0}, 0};

	(void)state;
	the_pair = &p;
	for (int i = 0; i < 2; i++)
		assert_int_equal(
			hearth_loop_add(&f->vm, p.fd[i], EPOLLIN, pair_cb, (void *)(intptr_t)i), 0);
	kick(p.fd[0]);
	kick(p.fd[1]);
	assert_int_equal(loop_run_once(f->vm.loop, 1000), 0);
	assert_int_equal(p.calls[0] + p.calls[1], 1);
	assert_int_equal(p.deleted_self, 1);
	assert_int_equal(loop_run_once(f->vm.loop, 20), 0);
	assert_int_equal(p.calls[0] + p.calls[1], 1);
	close(p.fd[0]);
	close(p.fd[1]);
}

/* ---- with the loop thread running ---- */

struct slow {
	int fd;
	atomic_int started, finished;
};

static void slow_cb(void *opaque, uint32_t events)
{
	struct slow *s = opaque;

	(void)events;
	atomic_fetch_add(&s->started, 1);
	drain(s->fd);
	sleep_ms(50);
	atomic_fetch_add(&s->finished, 1);
}

static void del_from_other_thread_waits(void **state)
{
	struct slow s = {.fd = efd()};

	(void)state;
	assert_int_equal(hearth_loop_add(&f->vm, s.fd, EPOLLIN, slow_cb, &s), 0);
	assert_int_equal(loop_start(f->vm.loop), 0);
	kick(s.fd);
	for (int i = 0; i < 2000 && !atomic_load(&s.started); i++)
		sleep_ms(1);
	assert_int_equal(atomic_load(&s.started), 1);
	/* the callback is mid-flight: del must wait for it to finish */
	hearth_loop_del(&f->vm, s.fd);
	assert_int_equal(atomic_load(&s.finished), 1);
	/* and it never runs again */
	kick(s.fd);
	sleep_ms(50);
	assert_int_equal(atomic_load(&s.started), 1);
	loop_stop(f->vm.loop);
	close(s.fd);
}

/* Many fds made ready and removed at once while the loop thread dispatches: a removed
 * registration is never touched after del returns (ASan checks the memory side). */
static void del_race_stress(void **state)
{
	enum { N = 16, ROUNDS = 300 };
	struct counter c[N];

	(void)state;
	assert_int_equal(loop_start(f->vm.loop), 0);
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < N; i++) {
			c[i] = (struct counter){.fd = efd(), .drain = true};
			assert_int_equal(hearth_loop_add(&f->vm, c[i].fd, EPOLLIN, count_cb, &c[i]),
					 0);
		}
		for (int i = 0; i < N; i++)
			kick(c[i].fd);
		for (int i = 0; i < N; i++) {
			hearth_loop_del(&f->vm, c[i].fd);
			int seen = atomic_load(&c[i].calls);
			/* after del the count is final */
			close(c[i].fd);
			assert_true(seen <= 1);
			assert_int_equal(atomic_load(&c[i].calls), seen);
		}
	}
	loop_stop(f->vm.loop);
}

static void stop_joins_and_restarts(void **state)
{
	struct counter c = {.fd = efd(), .drain = true};

	(void)state;
	loop_stop(f->vm.loop); /* never started: nothing to do */
	assert_int_equal(hearth_loop_add(&f->vm, c.fd, EPOLLIN, count_cb, &c), 0);
	assert_int_equal(loop_start(f->vm.loop), 0);
	kick(c.fd);
	for (int i = 0; i < 2000 && !atomic_load(&c.calls); i++)
		sleep_ms(1);
	assert_int_equal(atomic_load(&c.calls), 1);
	loop_stop(f->vm.loop);
	/* the thread is gone: nothing runs the callback */
	kick(c.fd);
	sleep_ms(50);
	assert_int_equal(atomic_load(&c.calls), 1);
	loop_stop(f->vm.loop); /* twice is fine */
	/* restarting serves what was pending, and keeps running */
	assert_int_equal(loop_start(f->vm.loop), 0);
	for (int i = 0; i < 2000 && atomic_load(&c.calls) < 2; i++)
		sleep_ms(1);
	assert_int_equal(atomic_load(&c.calls), 2);
	kick(c.fd);
	for (int i = 0; i < 2000 && atomic_load(&c.calls) < 3; i++)
		sleep_ms(1);
	assert_int_equal(atomic_load(&c.calls), 3);
	loop_stop(f->vm.loop);
	/* after a stop the loop can still be driven by hand */
	kick(c.fd);
	assert_int_equal(loop_run_once(f->vm.loop, 1000), 0);
	assert_int_equal(atomic_load(&c.calls), 4);
	hearth_loop_del(&f->vm, c.fd);
	close(c.fd);
}

/* Registrations still present when the loop is freed are released with it. */
static void free_with_registrations(void **state)
{
	struct hearth_loop *l = loop_new();
	struct hearth_loop *saved = f->vm.loop;
	struct counter c = {.fd = efd()}, d = {.fd = efd()};

	(void)state;
	assert_non_null(l);
	f->vm.loop = l;
	assert_int_equal(hearth_loop_add(&f->vm, c.fd, EPOLLIN, count_cb, &c), 0);
	assert_int_equal(hearth_loop_add(&f->vm, d.fd, EPOLLIN, count_cb, &d), 0);
	hearth_loop_del(&f->vm, d.fd); /* waits in the graveyard until a batch or the free */
	assert_int_equal(loop_start(l), 0);
	loop_free(l); /* stops the thread too */
	f->vm.loop = saved;
	close(c.fd);
	close(d.fd);
	loop_free(NULL);
	loop_stop(NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(add_mod_del),
		T(registration_errors),
		T(del_inside_callback),
		T(del_from_other_thread_waits),
		T(del_race_stress),
		T(stop_joins_and_restarts),
		T(free_with_registrations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
