/* blk-ram and blk-file against a recording blk frontend: configuration errors, every request
 * type with the bytes checked on the disk (the image file read back with pread), read-only
 * refusals, the image lock, O_DIRECT with unaligned buffers and through the huge-page bounce
 * pool, many requests in flight and teardown with requests outstanding. blk-file's request
 * tests run twice: with its I/O thread (completions arrive on that thread) and with iothread
 * off (completions on the event loop, which the test runs). The I/O thread also waits on the
 * frontend's notification eventfds and polls the frontend. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakevm.h"
#include "hearth/blk.h"

/* ---- a frontend that records what the backend tells it ---- */

#define MAXREQ 2048

/* What the frontend's attach hands the backend's watch (when nwatch is set). */
static int watch_fds[4];
static unsigned nwatch;

/* Counters the backend's I/O thread writes and the test reads: atomic. */
static unsigned get(const unsigned *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void inc(unsigned *p)
{
	__atomic_add_fetch(p, 1, __ATOMIC_RELEASE);
}

struct fe {
	struct hearth_blk_info info;
	const struct hearth_blk_backend_ops *ops;
	void *be;
	bool attached, detached;
	int watch_result;
	int results[MAXREQ];
	bool completed[MAXREQ];
	unsigned ncomplete, batches;
	struct hearth_blk_req reqs[MAXREQ];
	struct iovec iov[MAXREQ];
	/* kicked(i) and poll(on) calls; poll(false) answers true while false_yes > 0 */
	unsigned kicked[4], kicked_bad, poll_on, poll_off, false_yes;
};

static int fe_attach(void *opaque, const struct hearth_blk_info *info,
		     const struct hearth_blk_backend_ops *ops, void *be)
{
	struct fe *fe = opaque;

	fe->info = *info;
	fe->ops = ops;
	fe->be = be;
	fe->attached = true;
	fe->watch_result = nwatch ? (ops->watch ? ops->watch(be, watch_fds, nwatch) : -2) : 0;
	return 0;
}

static void fe_detach(void *opaque)
{
	struct fe *fe = opaque;

	/* every request completed before the backend left */
	for (unsigned i = 0; i < MAXREQ; i++)
		if (fe->reqs[i].len && !fe->completed[i])
			fail_msg("request %u still outstanding at detach", i);
	fe->detached = true;
}

static void fe_complete(void *opaque, struct hearth_blk_req *req, int result)
{
	struct fe *fe = opaque;
	unsigned i = (unsigned)(req - fe->reqs);

	/* may run on the backend's I/O thread: a failed assertion there would longjmp across
	 * threads, so a bad report is recorded as a result the test thread checks */
	if (i >= MAXREQ || fe->completed[i]) {
		inc(&fe->kicked_bad);
		return;
	}
	fe->completed[i] = true;
	fe->results[i] = result;
	inc(&fe->ncomplete);
}

static void fe_done(void *opaque)
{
	inc(&((struct fe *)opaque)->batches);
}

static void fe_kicked(void *opaque, unsigned i)
{
	struct fe *fe = opaque;

	inc(i < 4 ? &fe->kicked[i] : &fe->kicked_bad);
}

static bool fe_poll(void *opaque, bool on)
{
	struct fe *fe = opaque;

	inc(on ? &fe->poll_on : &fe->poll_off);
	if (on || !get(&fe->false_yes))
		return false;
	__atomic_sub_fetch(&fe->false_yes, 1, __ATOMIC_RELEASE);
	return true;
}

static const struct hearth_blk_frontend_ops fe_ops = {
	.attach = fe_attach,
	.detach = fe_detach,
	.complete = fe_complete,
	.complete_done = fe_done,
	.kicked = fe_kicked,
	.poll = fe_poll,
};

static int fe_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	(void)cfg;
	struct fe *fe = calloc(1, sizeof(*fe));
	hearth_dev_set_priv(dev, fe);
	return hearth_frontend_register(dev, HEARTH_FE_BLK, &fe_ops, fe);
}

static void fe_free(struct hearth_dev *dev)
{
	free(hearth_dev_priv(dev));
}

HEARTH_DEVICE_CLASS(fe_test_class, .name = "fe-test", .init = fe_init, .free = fe_free);

/* ---- fixture ---- */

struct t {
	struct fakevm *f;
	struct fe *fe;
	struct hearth_dev *be;
	char path[64];
	int fd; /* the image, for checking bytes behind the backend's back */
};

static struct t *mk_vm(void)
{
	struct t *t = calloc(1, sizeof(*t));

	t->fd = -1;
	t->f = fakevm_new(4096);
	struct hearth_dev *d = fakevm_dev(t->f, "fe-test", "fe", NULL);
	assert_non_null(d);
	t->fe = hearth_dev_priv(d);
	return t;
}

static void make_image(struct t *t, uint64_t size)
{
	snprintf(t->path, sizeof(t->path), "/tmp/hearth-blk-XXXXXX");
	t->fd = mkstemp(t->path);
	assert_true(t->fd >= 0);
	assert_int_equal(ftruncate(t->fd, (off_t)size), 0);
}

/* The request tests run in both modes: this is added to every blk-file configuration. */
static const char *file_mode = "";

static int loop_mode(void **state)
{
	(void)state;
	file_mode = ", \"iothread\": false";
	return 0;
}

static int thread_mode(void **state)
{
	(void)state;
	file_mode = "";
	return 0;
}

static struct hearth_dev *file_backend(struct t *t, const char *id, const char *extra)
{
	char json[320];

	snprintf(json, sizeof(json), "{\"frontend\": \"fe\", \"path\": \"%s\"%s%s}", t->path,
		 extra ? extra : "", file_mode);
	return fakevm_dev(t->f, "blk-file", id, json);
}

static void done(struct t *t)
{
	fakevm_free(t->f);
	if (t->fd >= 0)
		close(t->fd);
	if (t->path[0])
		unlink(t->path);
	free(t);
}

/* Submit request slot i; synchronous results are recorded like completions. */
static void submit(struct t *t, unsigned i, enum hearth_blk_op op, uint64_t off, void *buf,
		   uint64_t len, uint32_t flags)
{
	struct fe *fe = t->fe;
	struct hearth_blk_req *r = &fe->reqs[i];

	fe->iov[i] = (struct iovec){buf, len};
	*r = (struct hearth_blk_req){.op = op, .flags = flags, .offset = off, .len = len};
	if (op == HEARTH_BLK_READ || op == HEARTH_BLK_WRITE) {
		r->iov = &fe->iov[i];
		r->niov = 1;
	}
	if (op == HEARTH_BLK_FLUSH)
		r->len = 1; /* marks the slot used for the detach check */
	fe->completed[i] = false;
	int res = fe->ops->submit(fe->be, r);
	if (res != HEARTH_BLK_ASYNC) {
		fe->completed[i] = true;
		fe->results[i] = res == HEARTH_BLK_DONE ? 0 : res;
		inc(&fe->ncomplete);
	}
}

static void kick(struct t *t)
{
	if (t->fe->ops->kick)
		t->fe->ops->kick(t->fe->be);
}

/* Completions come on the event loop (run here) or on the backend's thread. */
static void wait_for(struct t *t, unsigned n)
{
	for (int i = 0; i < 2000 && get(&t->fe->ncomplete) < n; i++)
		loop_run_once(t->f->vm.loop, 5);
	assert_int_equal(get(&t->fe->ncomplete), n);
	assert_int_equal(get(&t->fe->kicked_bad), 0);
}

/* Submit one, run it to completion, return its result. */
static int run1(struct t *t, enum hearth_blk_op op, uint64_t off, void *buf, uint64_t len,
		uint32_t flags)
{
	unsigned n = get(&t->fe->ncomplete);

	submit(t, 0, op, off, buf, len, flags);
	kick(t);
	wait_for(t, n + 1);
	int r = t->fe->results[0];
	t->fe->reqs[0].len = 0;
	return r;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed ^ (i * 13));
}

static void expect_err(struct hearth_dev *d, const char *part)
{
	assert_null(d);
	if (!strstr(hearth_err_msg(), part))
		fail_msg("error '%s' lacks '%s'", hearth_err_msg(), part);
	/* one line */
	assert_null(strchr(hearth_err_msg(), '\n'));
}

/* ---- blk-ram ---- */

static void ram_config_errors(void **state)
{
	(void)state;
	struct t *t = mk_vm();

	expect_err(fakevm_dev(t->f, "blk-ram", "r", "{\"frontend\": \"fe\"}"), "size");
	expect_err(fakevm_dev(t->f, "blk-ram", "r", "{\"frontend\": \"fe\", \"size\": 1000}"),
		   "multiple of 512");
	expect_err(fakevm_dev(t->f, "blk-ram", "r", "{\"frontend\": \"fe\", \"size\": \"2T\"}"),
		   "size");
	expect_err(fakevm_dev(t->f, "blk-ram", "r", "{\"size\": \"1M\"}"), "frontend");
	expect_err(fakevm_dev(t->f, "blk-ram", "r", "{\"frontend\": \"zz\", \"size\": \"1M\"}"),
		   "zz");
	assert_false(t->fe->attached);
	done(t);
}

static void ram_round_trip(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	static uint8_t a[3 * 4096], b[3 * 4096];

	assert_non_null(
		fakevm_dev(t->f, "blk-ram", "r", "{\"frontend\": \"fe\", \"size\": \"1M\"}"));
	assert_true(t->fe->attached);
	assert_int_equal(t->fe->info.size, 1 << 20);
	assert_int_equal(t->fe->info.block_size, 512);
	assert_false(t->fe->info.readonly);
	assert_true(t->fe->info.discard);

	fill(a, sizeof(a), 3);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, 1024, a, sizeof(a), 0), 0);
	assert_int_equal(run1(t, HEARTH_BLK_READ, 1024, b, sizeof(b), 0), 0);
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(run1(t, HEARTH_BLK_FLUSH, 0, NULL, 0, 0), 0);

	/* zeroes over a range that covers a whole page plus ragged edges */
	assert_int_equal(run1(t, HEARTH_BLK_WRITE_ZEROES, 1536, NULL, 8192, HEARTH_BLK_F_UNMAP), 0);
	assert_int_equal(run1(t, HEARTH_BLK_READ, 1024, b, sizeof(b), 0), 0);
	assert_memory_equal(b, a, 512);
	for (size_t i = 512; i < 512 + 8192; i++)
		assert_int_equal(b[i], 0);
	assert_memory_equal(b + 512 + 8192, a + 512 + 8192, sizeof(b) - 512 - 8192);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, 0, a, 4096, 0), 0);
	assert_int_equal(run1(t, HEARTH_BLK_DISCARD, 0, NULL, 4096, 0), 0);
	assert_int_equal(run1(t, HEARTH_BLK_READ, 0, b, 4096, 0), 0);
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(b[i], 0);

	/* the backend checks bounds itself too */
	assert_int_equal(run1(t, HEARTH_BLK_READ, (1 << 20) - 512, b, 1024, 0), -EIO);
	assert_int_equal(run1(t, HEARTH_BLK_READ, UINT64_MAX - 100, b, 512, 0), -EIO);
	done(t);
}

static void ram_readonly(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	uint8_t a[512] = {1};

	assert_non_null(
		fakevm_dev(t->f, "blk-ram", "r",
			   "{\"frontend\": \"fe\", \"size\": \"64K\", \"readonly\": true}"));
	assert_true(t->fe->info.readonly);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, 0, a, 512, 0), -EROFS);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE_ZEROES, 0, NULL, 512, 0), -EROFS);
	assert_int_equal(run1(t, HEARTH_BLK_READ, 0, a, 512, 0), 0);
	assert_int_equal(a[0], 0);
	done(t);
}

/* ---- blk-file: opening ---- */

static void file_missing_and_unusable(void **state)
{
	(void)state;
	struct t *t = mk_vm();

	snprintf(t->path, sizeof(t->path), "/nonexistent/hearth-disk.img");
	expect_err(file_backend(t, "d", NULL), "'/nonexistent/hearth-disk.img'");
	assert_non_null(strstr(hearth_err_msg(), "No such file"));

	/* a directory is not an image */
	snprintf(t->path, sizeof(t->path), "/tmp");
	expect_err(file_backend(t, "d", ", \"readonly\": true"), "'/tmp'");
	assert_non_null(strstr(hearth_err_msg(), "not a regular file"));

	expect_err(fakevm_dev(t->f, "blk-file", "d", "{\"frontend\": \"fe\"}"), "path");
	t->path[0] = 0;
	done(t);
}

static void file_unreadable(void **state)
{
	(void)state;
	struct t *t = mk_vm();

	/* root opens anything it has permission bits for, so make open itself fail: a FIFO
	 * would block, a socket cannot be opened; /proc/self/mem refuses O_DIRECT... use a file
	 * whose open fails for everyone: a dangling symlink */
	snprintf(t->path, sizeof(t->path), "/tmp/hearth-blk-dangling-%d", (int)getpid());
	unlink(t->path);
	assert_int_equal(symlink("/nonexistent/target", t->path), 0);
	expect_err(file_backend(t, "d", NULL), t->path);
	assert_non_null(strstr(hearth_err_msg(), "cannot open"));
	done(t);
}

static void file_bad_sizes(void **state)
{
	(void)state;
	struct t *t = mk_vm();

	make_image(t, 0);
	expect_err(file_backend(t, "d", NULL), "multiple of 512");
	assert_int_equal(ftruncate(t->fd, 1000), 0);
	expect_err(file_backend(t, "d", NULL), t->path);
	assert_false(t->fe->attached);
	done(t);
}

static void file_lock_refuses_second_writer(void **state)
{
	(void)state;
	struct t *a = mk_vm(), *b = mk_vm();

	make_image(a, 1 << 20);
	snprintf(b->path, sizeof(b->path), "%s", a->path);
	assert_non_null(file_backend(a, "d", NULL));
	/* another VM (same process here: OFD locks belong to the open file) */
	expect_err(file_backend(b, "d", NULL), a->path);
	assert_non_null(strstr(hearth_err_msg(), "locked"));
	expect_err(file_backend(b, "d", ", \"readonly\": true"), "locked");
	b->path[0] = 0;
	done(b);
	done(a);
}

static void file_readers_share_writers_wait(void **state)
{
	(void)state;
	struct t *a = mk_vm(), *b = mk_vm(), *c = mk_vm();

	make_image(a, 1 << 20);
	snprintf(b->path, sizeof(b->path), "%s", a->path);
	snprintf(c->path, sizeof(c->path), "%s", a->path);
	assert_non_null(file_backend(a, "d", ", \"readonly\": true"));
	assert_non_null(file_backend(b, "d", ", \"readonly\": true"));
	expect_err(file_backend(c, "d", NULL), "locked");
	/* once the readers are gone, a writer gets it */
	b->path[0] = 0;
	done(b);
	int fd = a->fd;
	a->fd = -1;
	a->path[0] = 0;
	done(a);
	assert_non_null(file_backend(c, "d", NULL));
	c->fd = fd;
	done(c);
}

/* ---- blk-file: requests ---- */

static void file_round_trip_bytes_on_disk(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	static uint8_t a[16384], b[16384];

	make_image(t, 1 << 20);
	assert_non_null(file_backend(t, "d", NULL));
	assert_int_equal(t->fe->info.size, 1 << 20);
	assert_int_equal(t->fe->info.block_size, 512);
	assert_string_equal(t->fe->info.name, t->path);

	fill(a, sizeof(a), 7);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, 4096, a, sizeof(a), 0), 0);
	assert_int_equal(run1(t, HEARTH_BLK_FLUSH, 0, NULL, 0, 0), 0);
	assert_int_equal(pread(t->fd, b, sizeof(b), 4096), (ssize_t)sizeof(b));
	assert_memory_equal(a, b, sizeof(a));
	memset(b, 0, sizeof(b));
	assert_int_equal(run1(t, HEARTH_BLK_READ, 4096, b, sizeof(b), 0), 0);
	assert_memory_equal(a, b, sizeof(a));
	/* write-through writes */
	fill(a, 512, 99);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, 0, a, 512, HEARTH_BLK_F_FUA), 0);
	assert_int_equal(pread(t->fd, b, 512, 0), 512);
	assert_memory_equal(a, b, 512);
	done(t);
}

static void file_discard_and_zeroes_keep_size(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	static uint8_t a[65536], b[65536];
	struct stat st;

	make_image(t, 1 << 20);
	assert_non_null(file_backend(t, "d", NULL));
	fill(a, sizeof(a), 1);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, 0, a, sizeof(a), 0), 0);

	assert_int_equal(run1(t, HEARTH_BLK_WRITE_ZEROES, 4096, NULL, 8192, HEARTH_BLK_F_UNMAP), 0);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE_ZEROES, 20480, NULL, 1024, 0), 0);
	assert_int_equal(run1(t, HEARTH_BLK_DISCARD, 32768, NULL, 32768, 0), 0);
	assert_int_equal(pread(t->fd, b, 32768, 0), 32768);
	assert_memory_equal(b, a, 4096);
	for (int i = 4096; i < 12288; i++)
		assert_int_equal(b[i], 0);
	assert_memory_equal(b + 12288, a + 12288, 20480 - 12288);
	for (int i = 20480; i < 21504; i++)
		assert_int_equal(b[i], 0);
	assert_memory_equal(b + 21504, a + 21504, 32768 - 21504);
	/* the punched hole reads as zeroes on ext4/xfs/tmpfs */
	assert_int_equal(pread(t->fd, b, 32768, 32768), 32768);
	for (int i = 0; i < 32768; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(fstat(t->fd, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
	done(t);
}

static void file_zeroes_without_zero_range(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	static uint8_t a[16384], b[16384];

	/* tmpfs has no FALLOC_FL_ZERO_RANGE: the backend writes the zeroes itself */
	snprintf(t->path, sizeof(t->path), "/dev/shm/hearth-blk-XXXXXX");
	t->fd = mkstemp(t->path);
	assert_true(t->fd >= 0);
	assert_int_equal(ftruncate(t->fd, 1 << 20), 0);
	assert_non_null(file_backend(t, "d", NULL));
	fill(a, sizeof(a), 9);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, 0, a, sizeof(a), 0), 0);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE_ZEROES, 1024, NULL, 8192, 0), 0);
	assert_int_equal(pread(t->fd, b, sizeof(b), 0), (ssize_t)sizeof(b));
	assert_memory_equal(b, a, 1024);
	for (int i = 1024; i < 1024 + 8192; i++)
		assert_int_equal(b[i], 0);
	assert_memory_equal(b + 9216, a + 9216, sizeof(a) - 9216);
	done(t);
}

static void file_readonly(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	uint8_t a[512] = {0};

	make_image(t, 65536);
	assert_int_equal(pwrite(t->fd, "\x42", 1, 0), 1);
	assert_int_equal(chmod(t->path, 0444), 0);
	assert_non_null(file_backend(t, "d", ", \"readonly\": true"));
	assert_true(t->fe->info.readonly);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, 0, a, 512, 0), -EROFS);
	assert_int_equal(run1(t, HEARTH_BLK_DISCARD, 0, NULL, 512, 0), -EROFS);
	assert_int_equal(run1(t, HEARTH_BLK_READ, 0, a, 512, 0), 0);
	assert_int_equal(a[0], 0x42);
	assert_int_equal(run1(t, HEARTH_BLK_FLUSH, 0, NULL, 0, 0), 0);
	done(t);
}

static void file_bounds_checked(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	uint8_t a[1024];

	make_image(t, 65536);
	assert_non_null(file_backend(t, "d", NULL));
	assert_int_equal(run1(t, HEARTH_BLK_READ, 65536 - 512, a, 1024, 0), -EIO);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, UINT64_MAX - 511, a, 512, 0), -EIO);
	assert_int_equal(run1(t, HEARTH_BLK_DISCARD, 65536, NULL, 512, 0), -EIO);
	done(t);
}

static void file_direct_aligned_and_unaligned(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	uint8_t *mem, *b;

	make_image(t, 1 << 20);
	struct hearth_dev *d = file_backend(t, "d", ", \"direct\": true");
	if (!d)
		fail_msg("%s", hearth_err_msg());
	uint32_t bs = t->fe->info.block_size;
	assert_true(bs >= 512 && (bs & (bs - 1)) == 0);
	assert_int_equal(posix_memalign((void **)&mem, 4096, 3 * 65536), 0);
	b = mem + 2 * 65536;

	/* aligned: straight into the buffer */
	fill(mem, 8192, 5);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, 0, mem, 8192, 0), 0);
	assert_int_equal(pread(t->fd, b, 8192, 0), 8192);
	assert_memory_equal(b, mem, 8192);

	/* guest buffers at odd addresses: through the bounce buffer both ways */
	uint8_t *odd = mem + 65536 + 3;
	fill(odd, 8192, 77);
	assert_int_equal(run1(t, HEARTH_BLK_WRITE, 8192, odd, 8192, 0), 0);
	assert_int_equal(pread(t->fd, b, 8192, 8192), 8192);
	assert_memory_equal(b, odd, 8192);
	uint8_t *odd2 = mem + 1;
	memset(odd2, 0, 8192);
	assert_int_equal(run1(t, HEARTH_BLK_READ, 8192, odd2, 8192, 0), 0);
	assert_memory_equal(odd2, b, 8192);

	/* several unaligned segments in one request */
	struct fe *fe = t->fe;
	struct iovec iov[3] = {{mem + 7, 100}, {mem + 1000, 412}, {mem + 3001, bs * 2 - 512}};
	fill(mem + 7, 100, 1);
	fill(mem + 1000, 412, 2);
	fill(mem + 3001, bs * 2 - 512, 3);
	fe->reqs[1] = (struct hearth_blk_req){
		.op = HEARTH_BLK_WRITE, .offset = bs * 4, .len = bs * 2, .iov = iov, .niov = 3};
	unsigned n = get(&fe->ncomplete);
	assert_int_equal(fe->ops->submit(fe->be, &fe->reqs[1]), HEARTH_BLK_ASYNC);
	kick(t);
	wait_for(t, n + 1);
	assert_int_equal(fe->results[1], 0);
	fe->reqs[1].len = 0;
	assert_int_equal(pread(t->fd, b, 512, bs * 4), 512);
	assert_memory_equal(b, mem + 7, 100);
	assert_memory_equal(b + 100, mem + 1000, 412);
	assert_int_equal(pread(t->fd, b, bs * 2 - 512, bs * 4 + 512), bs * 2 - 512);
	assert_memory_equal(b, mem + 3001, bs * 2 - 512);
	free(mem);
	done(t);
}

static void file_many_in_flight(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	const unsigned n = 1500; /* more than the ring's completion queue */
	uint8_t *buf = malloc(n * 512), *back = malloc(n * 512);

	make_image(t, n * 512);
	assert_non_null(file_backend(t, "d", NULL));
	fill(buf, n * 512, 11);
	for (unsigned i = 0; i < n; i++) {
		submit(t, i, HEARTH_BLK_WRITE, (uint64_t)i * 512, buf + i * 512, 512, 0);
		if (i % 100 == 99)
			kick(t);
	}
	kick(t);
	wait_for(t, n);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(t->fe->results[i], 0);
	assert_true(get(&t->fe->batches) >= 1);
	assert_int_equal(pread(t->fd, back, n * 512, 0), (ssize_t)(n * 512));
	assert_memory_equal(buf, back, n * 512);
	memset(t->fe->reqs, 0, sizeof(t->fe->reqs));
	free(buf);
	free(back);
	done(t);
}

static void file_teardown_completes_outstanding(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	static uint8_t a[64][4096];

	make_image(t, 1 << 20);
	struct hearth_dev *d = file_backend(t, "d", NULL);
	assert_non_null(d);
	for (unsigned i = 0; i < 64; i++)
		submit(t, i, HEARTH_BLK_READ, i * 4096ull, a[i], 4096, 0);
	kick(t);
	/* remove the backend without running the loop: it must finish them first (the
	 * frontend's detach fails the test otherwise) */
	assert_int_equal(hearth_dev_remove(d), 0);
	assert_true(t->fe->detached);
	assert_int_equal(get(&t->fe->ncomplete), 64);
	memset(t->fe->reqs, 0, sizeof(t->fe->reqs));
	done(t);
}

static void file_thread_config_errors(void **state)
{
	(void)state;
	struct t *t = mk_vm();

	make_image(t, 65536);
	expect_err(file_backend(t, "d", ", \"poll-us\": 10001"), "poll-us");
	expect_err(file_backend(t, "d", ", \"iothread\": 3"), "iothread");
	expect_err(file_backend(t, "d", ", \"poll-always\": \"x\""), "poll-always");
	expect_err(file_backend(t, "d", ", \"bounce-min\": \"64M\""), "bounce-min");
	expect_err(file_backend(t, "d", ", \"bounce-min\": \"big\""), "bounce-min");
	assert_false(t->fe->attached);
	done(t);
}

/* Requests at least bounce-min long go through the huge-page pool (32 MiB): more than it holds
 * at once fall back to the guest's own buffers; every byte lands either way. */
static void file_bounce_pool(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	const unsigned n = 40, len = 1 << 20; /* 40 MiB in flight: the pool runs out */
	uint8_t *mem, *back = malloc(len);

	make_image(t, (uint64_t)n * len + 65536);
	struct hearth_dev *d = file_backend(t, "d", ", \"direct\": true, \"bounce-min\": 4096");
	if (!d)
		fail_msg("%s", hearth_err_msg());
	assert_int_equal(posix_memalign((void **)&mem, 4096, (size_t)n * len), 0);
	fill(mem, (size_t)n * len, 21);
	for (unsigned i = 0; i < n; i++)
		submit(t, i, HEARTH_BLK_WRITE, (uint64_t)i * len, mem + (size_t)i * len, len, 0);
	kick(t);
	wait_for(t, n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(t->fe->results[i], 0);
		assert_int_equal(pread(t->fd, back, len, (off_t)i * len), (ssize_t)len);
		assert_memory_equal(back, mem + (size_t)i * len, len);
	}
	/* and back: reads into a cleared buffer, one of them below bounce-min */
	memset(mem, 0, (size_t)n * len);
	for (unsigned i = 0; i < n; i++)
		submit(t, n + i, HEARTH_BLK_READ, (uint64_t)i * len, mem + (size_t)i * len,
		       i == 3 ? 2048 : len, 0);
	kick(t);
	wait_for(t, 2 * n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(t->fe->results[n + i], 0);
		assert_int_equal(pread(t->fd, back, len, (off_t)i * len), (ssize_t)len);
		assert_memory_equal(back, mem + (size_t)i * len, i == 3 ? 2048 : len);
	}
	memset(t->fe->reqs, 0, sizeof(t->fe->reqs));
	free(mem);
	free(back);
	done(t);
}

/* Spin until *p reaches at least v (the I/O thread runs meanwhile) or two seconds pass. */
static unsigned wait_count(const unsigned *p, unsigned v)
{
	for (int i = 0; i < 2000 && get(p) < v; i++)
		usleep(1000);
	return get(p);
}

static void signal_fd(int fd)
{
	uint64_t one = 1;
	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

/* The I/O thread waits on the frontend's eventfds: each signal reaches kicked() with its index
 * and the count is consumed. After events it polls the frontend, then asks it to take
 * notifications back (poll(false)) and sleeps; a poll(false) that found work keeps it polling. */
static void file_thread_watches_and_polls(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	uint64_t v;

	for (unsigned i = 0; i < 2; i++)
		watch_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	nwatch = 2;
	make_image(t, 65536);
	/* poll-always: a test run beside others may find the host busy, which stops polling */
	struct hearth_dev *d = file_backend(t, "d", ", \"poll-us\": 10000, \"poll-always\": true");
	assert_non_null(d);
	struct fe *fe = t->fe;
	assert_int_equal(fe->watch_result, 0);

	signal_fd(watch_fds[1]);
	assert_int_equal(wait_count(&fe->kicked[1], 1), 1);
	assert_int_equal(get(&fe->kicked[0]), 0);
	assert_int_equal(read(watch_fds[1], &v, sizeof(v)), -1); /* consumed */
	/* kicks closer together than poll-us: the window grows and the thread polls. Signals
	 * that come while it is busy may reach the frontend as one kicked(); each is followed
	 * by at least one. */
	for (unsigned i = 0; i < 20; i++) {
		unsigned k = get(&fe->kicked[0]);
		usleep(1000);
		signal_fd(watch_fds[0]);
		assert_true(wait_count(&fe->kicked[0], k + 1) >= k + 1);
	}
	assert_true(get(&fe->kicked[0]) <= 20);
	assert_true(wait_count(&fe->poll_on, 1) >= 1);
	/* nothing more: it gives notifications back and sleeps */
	unsigned off = wait_count(&fe->poll_off, 1);
	assert_true(off >= 1);
	usleep(30000);
	unsigned on = get(&fe->poll_on);
	off = get(&fe->poll_off);
	usleep(30000);
	assert_int_equal(get(&fe->poll_on), on);
	assert_int_equal(get(&fe->poll_off), off);
	/* work found while taking them back: it goes on polling, then sleeps again */
	__atomic_store_n(&fe->false_yes, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < 3; i++) {
		usleep(1000);
		signal_fd(watch_fds[0]);
	}
	assert_true(wait_count(&fe->poll_off, off + 2) >= off + 2);
	assert_int_equal(get(&fe->false_yes), 0);
	/* requests still complete on the thread meanwhile */
	static uint8_t a[4096];
	assert_int_equal(run1(t, HEARTH_BLK_READ, 0, a, sizeof(a), 0), 0);
	assert_int_equal(get(&fe->kicked_bad), 0);
	done(t);
	nwatch = 0;
	for (unsigned i = 0; i < 2; i++)
		close(watch_fds[i]);
}

/* poll-us 0: kicks, never polls. iothread off: no thread to watch anything. */
static void file_thread_without_polling(void **state)
{
	(void)state;
	struct t *t = mk_vm(), *u = mk_vm();

	watch_fds[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	nwatch = 1;
	make_image(t, 65536);
	assert_non_null(file_backend(t, "d", ", \"poll-us\": 0"));
	assert_int_equal(t->fe->watch_result, 0);
	for (unsigned i = 0; i < 5; i++) {
		signal_fd(watch_fds[0]);
		assert_int_equal(wait_count(&t->fe->kicked[0], i + 1), i + 1);
	}
	usleep(20000);
	assert_int_equal(get(&t->fe->poll_on), 0);
	assert_int_equal(get(&t->fe->poll_off), 0);
	done(t);

	make_image(u, 65536);
	assert_non_null(file_backend(u, "d", ", \"iothread\": false"));
	assert_int_equal(u->fe->watch_result, -1);
	done(u);
	nwatch = 0;
	close(watch_fds[0]);
}

static void describe_names_the_image(void **state)
{
	(void)state;
	struct t *t = mk_vm();
	char buf[256];

	make_image(t, 65536);
	struct hearth_dev *d = file_backend(t, "d", ", \"readonly\": true");
	assert_non_null(d);
	hearth_dev_class(d)->describe(d, buf, sizeof(buf));
	assert_non_null(strstr(buf, t->path));
	assert_non_null(strstr(buf, "read-only"));
	done(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ram_config_errors),
		cmocka_unit_test(ram_round_trip),
		cmocka_unit_test(ram_readonly),
		cmocka_unit_test(file_missing_and_unusable),
		cmocka_unit_test(file_unreadable),
		cmocka_unit_test(file_bad_sizes),
		cmocka_unit_test(file_lock_refuses_second_writer),
		cmocka_unit_test(file_readers_share_writers_wait),
#define BOTH(f) cmocka_unit_test_setup(f, thread_mode), cmocka_unit_test_setup(f, loop_mode)
		BOTH(file_round_trip_bytes_on_disk),
		BOTH(file_discard_and_zeroes_keep_size),
		BOTH(file_zeroes_without_zero_range),
		BOTH(file_readonly),
		BOTH(file_bounds_checked),
		BOTH(file_direct_aligned_and_unaligned),
		BOTH(file_many_in_flight),
		BOTH(file_teardown_completes_outstanding),
		BOTH(file_bounce_pool),
		cmocka_unit_test_setup(file_thread_config_errors, thread_mode),
		cmocka_unit_test_setup(file_thread_watches_and_polls, thread_mode),
		cmocka_unit_test_setup(file_thread_without_polling, thread_mode),
		cmocka_unit_test(describe_names_the_image),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
