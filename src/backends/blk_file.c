/* blk-file: a raw image (regular file or block device) served through io_uring. The image is
 * locked with an OFD lock (write lock, or read lock when read-only) so two VMs never write one
 * image. With direct=on the page cache is bypassed; guest buffers that O_DIRECT cannot take go
 * through an aligned bounce buffer.
 *
 * iothread=on (the default): the disk has a thread of its own that owns the ring and sleeps in
 * io_uring_enter. The frontend's notification eventfds are polled by the ring too, so one
 * system call submits what is queued and waits for either a completion or a guest kick; under
 * PVM every sleep and wake-up of a thread costs tens of microseconds, so after each event the
 * thread keeps looking (at the completion ring and, through the frontend, at the guest's
 * rings, with the guest's notifications off) for poll-us microseconds before it sleeps again.
 * With several requests in flight a poll sleeps between completions instead of spinning. The
 * thread submits each request as the frontend hands it over (see bf_submit for why).
 * iothread=off: requests are started in one io_uring_enter per batch (kick) on whichever
 * thread submits, and completions come back on the event-loop thread through the ring's
 * eventfd. */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "dev/machine.h"
#include "hearth/blk.h"
#include "hearth/checkpoint.h"
#include "hearth/device.h"
#include "hearth/loop.h"

#define RING_ENTRIES 256u
#define CQ_ENTRIES 1024u /* also the cap on SQEs in flight: the CQ never overflows */
#define REAP_BATCH 64u
#define POLL_US_DEFAULT 500
#define POLL_US_MAX 10000
#define POLL_MIN_NS 2000u      /* a window shrunk below this is no window */
#define CROWD_CHECK_NS 100000u /* how often a poll looks at the host's run queues */
#define DOZE_MIN 4u	       /* requests in flight from which a poll sleeps ... */
#define DOZE_NS 50000u	       /* ... until a quarter of them complete or this passes */
/* The huge-page bounce pool: 32 MiB in 256 KiB slots, a request takes consecutive ones. */
#define POOL_SLOT (256u << 10)
#define POOL_SLOTS 128u
#define POOL_BYTES ((size_t)POOL_SLOT * POOL_SLOTS)
#define HUGE_PAGE (2u << 20)
#define BOUNCE_MIN_DEFAULT (64u << 10)

/* user_data of the ring's own entries (requests are bf_req pointers, so bit 0 is clear):
 * (watch index << 1) | 1. Watch 0 is the thread's wake-up eventfd. */
#define UD_WATCH 1ull

struct bf_req {
	struct hearth_blk_req *req;
	void *bounce; /* aligned copy of the data, or NULL */
	bool pooled;  /* bounce is slots of the huge-page pool */
	struct iovec biov;
	struct bf_req *next;
};

/* An eventfd the I/O thread waits on through a multishot poll in its ring. */
struct bf_watch {
	int fd;
	bool armed; /* its poll is in the ring */
	bool fired; /* signalled since the thread last looked */
};

struct blk_file {
	struct hearth_dev *dev;
	struct hearth_vm *vm;
	char *path;
	int fd, efd;
	int retry_fd; /* timerfd: another io_uring_submit after one left entries behind */
	bool direct, readonly, watching, ring_ok;
	bool iothread;	      /* the thread below, not the event loop, serves the ring */
	uint64_t poll_max_ns; /* poll-us */
	uint64_t bounce_min;  /* READ/WRITE this long or longer go through the pool; 0: never */
	uint8_t *pool;	      /* POOL_BYTES on huge pages, NULL until first used */
	void *pool_map;
	size_t pool_map_len;
	uint64_t pool_used[POOL_SLOTS / 64]; /* lock, as pool and pool_failed */
	bool pool_failed;
	pthread_t thread;
	bool thread_running;
	int loadavg_fd;	    /* /proc/loadavg, -1 without */
	unsigned ncpu;	    /* CPUs this process may run on */
	uint32_t mem_align; /* O_DIRECT buffer alignment */
	uint64_t size;
	struct io_uring ring;

	/* guards the submission queue, the pending list and inflight; never held while
	 * calling the frontend */
	pthread_mutex_t lock;
	unsigned inflight;			/* SQEs prepared and not yet reaped */
	struct bf_req *pending, **pending_tail; /* waiting for room in the CQ */
	bool stop;				/* the thread drains and ends */
	struct bf_watch *watch;			/* [0]: wakes the thread; then the frontend's */
	unsigned nwatch;
	int logged_submit, logged_poll;

	const struct hearth_blk_frontend_ops *fe_ops;
	void *fe;
};

/* The disk whose I/O thread this is, if any. */
static _Thread_local struct blk_file *io_thread_of;

/* ---- request preparation ---- */

/* Why a pool: with direct=on the host's block layer and the device below it pay for every
 * physically separate piece of a buffer, and guest RAM (a memfd) comes in 4 KiB pages unless the
 * host gives shared memory huge pages; a 1 MiB request is then 256 pieces. Measured on the
 * development host (a VM on a virtio disk), 1 MiB O_DIRECT reads at queue depth 4 ran at
 * 1.0-1.1 GB/s from scattered 4 KiB pages and at 2.9-3.2 GB/s from huge pages (writes 3.3-4.1
 * against 7-8 GB/s), while copying 1 MiB costs 20-30 us. */
static uint8_t *pool_map(struct blk_file *bf)
{
	size_t len = POOL_BYTES + HUGE_PAGE;
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	uint8_t *p = (uint8_t *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	/* without transparent huge pages the pool still works, it just gains nothing */
	madvise(p, POOL_BYTES, MADV_HUGEPAGE);
	bf->pool_map = m;
	bf->pool_map_len = len;
	return p;
}

static bool slot_used(const struct blk_file *bf, unsigned i)
{
	return bf->pool_used[i / 64] >> (i % 64) & 1;
}

static void mark_slots(struct blk_file *bf, unsigned first, unsigned n, bool used)
{
	for (unsigned i = first; i < first + n; i++)
		if (used)
			bf->pool_used[i / 64] |= 1ull << (i % 64);
		else
			bf->pool_used[i / 64] &= ~(1ull << (i % 64));
}

/* Lock held. len bytes of consecutive slots, or NULL (the pool is busy: go without). */
static void *pool_get(struct blk_file *bf, uint64_t len)
{
	unsigned n = (unsigned)((len + POOL_SLOT - 1) / POOL_SLOT), run = 0;

	if (len > POOL_BYTES || bf->pool_failed)
		return NULL;
	if (!bf->pool && !(bf->pool = pool_map(bf))) {
		bf->pool_failed = true; /* no memory for it: stop trying */
		return NULL;
	}
	for (unsigned i = 0; i < POOL_SLOTS; i++) {
		run = slot_used(bf, i) ? 0 : run + 1;
		if (run == n) {
			mark_slots(bf, i + 1 - n, n, true);
			return bf->pool + (size_t)(i + 1 - n) * POOL_SLOT;
		}
	}
	return NULL;
}

static void release_bounce(struct blk_file *bf, struct bf_req *r)
{
	if (!r->pooled) {
		free(r->bounce);
		return;
	}
	unsigned first = (unsigned)(((uint8_t *)r->bounce - bf->pool) / POOL_SLOT);
	unsigned n = (unsigned)((r->biov.iov_len + POOL_SLOT - 1) / POOL_SLOT);
	pthread_mutex_lock(&bf->lock);
	mark_slots(bf, first, n, false);
	pthread_mutex_unlock(&bf->lock);
}

static bool needs_bounce(const struct blk_file *bf, const struct hearth_blk_req *req)
{
	if (!bf->direct)
		return false;
	for (unsigned i = 0; i < req->niov; i++)
		if ((uintptr_t)req->iov[i].iov_base % bf->mem_align ||
		    req->iov[i].iov_len % bf->mem_align)
			return true;
	return false;
}

static void copy_out(const struct hearth_blk_req *req, const uint8_t *src, uint64_t len)
{
	for (unsigned i = 0; i < req->niov && len; i++) {
		size_t n = req->iov[i].iov_len < len ? req->iov[i].iov_len : len;
		memcpy(req->iov[i].iov_base, src, n);
		src += n;
		len -= n;
	}
}

static void copy_in(const struct hearth_blk_req *req, uint8_t *dst)
{
	for (unsigned i = 0; i < req->niov; i++) {
		memcpy(dst, req->iov[i].iov_base, req->iov[i].iov_len);
		dst += req->iov[i].iov_len;
	}
}

static void prep_sqe(struct blk_file *bf, struct io_uring_sqe *sqe, struct bf_req *r)
{
	struct hearth_blk_req *req = r->req;
	const struct iovec *iov = r->bounce ? &r->biov : req->iov;
	unsigned niov = r->bounce ? 1 : req->niov;
	int mode;

	switch (req->op) {
	case HEARTH_BLK_READ:
		io_uring_prep_readv(sqe, bf->fd, iov, niov, req->offset);
		break;
	case HEARTH_BLK_WRITE:
		io_uring_prep_writev(sqe, bf->fd, iov, niov, req->offset);
		if (req->flags & HEARTH_BLK_F_FUA)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case HEARTH_BLK_FLUSH:
		io_uring_prep_fsync(sqe, bf->fd, IORING_FSYNC_DATASYNC);
		break;
	case HEARTH_BLK_DISCARD:
	case HEARTH_BLK_WRITE_ZEROES:
		mode = req->op == HEARTH_BLK_DISCARD || (req->flags & HEARTH_BLK_F_UNMAP)
			       ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
			       : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		io_uring_prep_fallocate(sqe, bf->fd, mode, req->offset, req->len);
		break;
	}
	io_uring_sqe_set_data(sqe, r);
}

/* Lock held. Move pending requests into the SQ while the CQ has room. */
static void fill_ring(struct blk_file *bf)
{
	while (bf->pending && bf->inflight < CQ_ENTRIES) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&bf->ring);
		if (!sqe) {
			/* SQ full of prepared entries: hand them over and retry once */
			io_uring_submit(&bf->ring);
			sqe = io_uring_get_sqe(&bf->ring);
			if (!sqe)
				return;
		}
		struct bf_req *r = bf->pending;
		bf->pending = r->next;
		if (!bf->pending)
			bf->pending_tail = &bf->pending;
		prep_sqe(bf, sqe, r);
		bf->inflight++;
	}
}

/* Lock held. */
static void submit_ring(struct blk_file *bf)
{
	if (!io_uring_sq_ready(&bf->ring))
		return;
	int n = io_uring_submit(&bf->ring);
	if (n >= 0 && !io_uring_sq_ready(&bf->ring))
		return;
	/* -EAGAIN/-EBUSY or a partial submit: the entries stay in the SQ, and when nothing is
	 * in flight no completion would come to push them: try again in a millisecond */
	hearth_log_once(bf->logged_submit, "blk-file '%s': io_uring submit: %s; retrying", bf->path,
			n < 0 ? strerror(-n) : "partial");
	struct itimerspec t = {.it_value = {.tv_nsec = 1000000}};
	if (bf->retry_fd >= 0)
		timerfd_settime(bf->retry_fd, 0, &t, NULL);
}

static int bf_submit(void *be, struct hearth_blk_req *req)
{
	struct blk_file *bf = be;

	if (req->op != HEARTH_BLK_FLUSH &&
	    (req->offset > bf->size || req->len > bf->size - req->offset))
		return -EIO;
	if (bf->readonly && req->op != HEARTH_BLK_READ && req->op != HEARTH_BLK_FLUSH)
		return -EROFS;
	struct bf_req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->req = req;
	bool rw = req->op == HEARTH_BLK_READ || req->op == HEARTH_BLK_WRITE;
	if (rw && bf->bounce_min && req->len >= bf->bounce_min && req->niov > 0) {
		pthread_mutex_lock(&bf->lock);
		r->bounce = pool_get(bf, req->len);
		pthread_mutex_unlock(&bf->lock);
		r->pooled = r->bounce != NULL;
	}
	if (!r->bounce && rw && needs_bounce(bf, req)) {
		size_t align = bf->mem_align > 4096 ? bf->mem_align : 4096;
		if (posix_memalign(&r->bounce, align, req->len)) {
			free(r);
			return -ENOMEM;
		}
	}
	if (r->bounce) {
		if (req->op == HEARTH_BLK_WRITE)
			copy_in(req, r->bounce);
		r->biov = (struct iovec){r->bounce, req->len};
	}
	pthread_mutex_lock(&bf->lock);
	*bf->pending_tail = r;
	bf->pending_tail = &r->next;
	/* with an I/O thread only that thread touches the ring (IORING_SETUP_SINGLE_ISSUER) */
	if (!bf->iothread) {
		fill_ring(bf);
	} else if (io_thread_of == bf) {
		/* Each request starts at once, one io_uring_enter each, not with the others the
		 * frontend pops after it: a disk sees them as they come. Batches were slower on
		 * this host's virtio disk: 4 KiB reads at queue depth 32 (guest polling) 58-62k
		 * IOPS submitted together, 68-71k one by one; host fio alone 77k submitting one by
		 * one, 65k in batches of 16. A copied request no longer waits for the copies after
		 * it (1 MiB writes at queue depth 4: 4.1-4.5 -> 4.6-5.5 GB/s). */
		fill_ring(bf);
		io_uring_submit(&bf->ring);
	}
	pthread_mutex_unlock(&bf->lock);
	return HEARTH_BLK_ASYNC;
}

static void wake_thread(struct blk_file *bf)
{
	uint64_t one = 1;

	if (write(bf->watch[0].fd, &one, sizeof(one)) < 0)
		hearth_log("blk-file '%s': cannot wake the I/O thread: %s", bf->path,
			   strerror(errno));
}

static void bf_kick(void *be)
{
	struct blk_file *bf = be;

	if (bf->iothread) {
		/* on the thread itself bf_submit has already submitted each request */
		if (io_thread_of != bf)
			wake_thread(bf);
		return;
	}
	pthread_mutex_lock(&bf->lock);
	submit_ring(bf);
	pthread_mutex_unlock(&bf->lock);
}

static int bf_watch(void *be, const int *fds, unsigned n)
{
	struct blk_file *bf = be;

	if (!bf->iothread || bf->nwatch > 1)
		return -1;
	struct bf_watch *w = realloc(bf->watch, (1 + n) * sizeof(*w));
	if (!w)
		return -1;
	for (unsigned i = 0; i < n; i++)
		w[1 + i] = (struct bf_watch){.fd = fds[i]};
	/* the thread starts after the attach this is called in: nothing races with us */
	bf->watch = w;
	bf->nwatch = 1 + n;
	return 0;
}

static const struct hearth_blk_backend_ops bf_ops = {
	.submit = bf_submit, .kick = bf_kick, .watch = bf_watch};

/* ---- completion ---- */

/* io_uring may transfer less than asked (rare for files); finish the rest synchronously. */
static int finish_short(struct blk_file *bf, struct bf_req *r, uint64_t done)
{
	struct hearth_blk_req *req = r->req;
	struct iovec one = r->biov, *iov = r->bounce ? &one : req->iov;
	unsigned niov = r->bounce ? 1 : req->niov;
	struct iovec local[IOV_MAX];

	if (niov > IOV_MAX)
		return -EIO;
	memcpy(local, iov, niov * sizeof(*iov));
	iov = local;
	while (done < req->len) {
		/* skip what is done */
		uint64_t skip = done;
		unsigned i = 0;
		while (i < niov && skip >= iov[i].iov_len)
			skip -= iov[i++].iov_len;
		struct iovec rest[IOV_MAX];
		unsigned n = 0;
		for (unsigned j = i; j < niov; j++)
			rest[n++] = iov[j];
		rest[0].iov_base = (uint8_t *)rest[0].iov_base + skip;
		rest[0].iov_len -= skip;
		ssize_t got = req->op == HEARTH_BLK_READ
				      ? preadv(bf->fd, rest, (int)n, (off_t)(req->offset + done))
				      : pwritev2(bf->fd, rest, (int)n, (off_t)(req->offset + done),
						 req->flags & HEARTH_BLK_F_FUA ? RWF_DSYNC : 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		done += (uint64_t)got;
	}
	return 0;
}

/* Turn a CQE result into the request's result and release our part of it. */
static int finish_req(struct blk_file *bf, struct bf_req *r, int res)
{
	struct hearth_blk_req *req = r->req;

	switch (req->op) {
	case HEARTH_BLK_READ:
	case HEARTH_BLK_WRITE:
		if (res >= 0 && (uint64_t)res < req->len)
			res = finish_short(bf, r, (uint64_t)res);
		else if (res > 0)
			res = 0;
		if (res == 0 && r->bounce && req->op == HEARTH_BLK_READ)
			copy_out(req, r->bounce, req->len);
		break;
	case HEARTH_BLK_DISCARD:
		/* discard is a hint: a file system that cannot punch holes just keeps data */
		if (res == -EOPNOTSUPP)
			res = 0;
		break;
	case HEARTH_BLK_WRITE_ZEROES:
		if (res == -EOPNOTSUPP) {
			/* no fallocate mode here: write the zeroes (aligned: the fd may be
			 * O_DIRECT) */
			static const uint8_t zeroes[65536] __attribute__((aligned(4096)));
			uint64_t off = req->offset, left = req->len;
			res = 0;
			while (left && res == 0) {
				size_t n = left < sizeof(zeroes) ? left : sizeof(zeroes);
				ssize_t w = pwrite(bf->fd, zeroes, n, (off_t)off);
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					res = w < 0 ? -errno : -EIO;
				else
					off += (uint64_t)w, left -= (uint64_t)w;
			}
		}
		break;
	case HEARTH_BLK_FLUSH:
		break;
	}
	release_bounce(bf, r);
	free(r);
	return res < 0 ? res : 0;
}

/* Reap every completion, deliver them without our lock, then tell the frontend once.
 * wait: block until at least one arrives (draining at free). Returns the number reaped. */
static unsigned reap(struct blk_file *bf, bool wait)
{
	unsigned total = 0;

	for (;;) {
		struct {
			struct bf_req *r;
			int res;
		} got[REAP_BATCH];
		unsigned n = 0;
		struct io_uring_cqe *cqe;

		pthread_mutex_lock(&bf->lock);
		/* one call that submits what is queued and waits: a wait alone would sleep
		 * forever on entries a failed submit left in the SQ */
		if (wait && bf->inflight && io_uring_cq_ready(&bf->ring) == 0)
			io_uring_submit_and_wait(&bf->ring, 1);
		while (n < REAP_BATCH && io_uring_peek_cqe(&bf->ring, &cqe) == 0) {
			got[n].r = io_uring_cqe_get_data(cqe);
			got[n].res = cqe->res;
			io_uring_cqe_seen(&bf->ring, cqe);
			n++;
		}
		bf->inflight -= n;
		fill_ring(bf);
		submit_ring(bf);
		pthread_mutex_unlock(&bf->lock);

		for (unsigned i = 0; i < n; i++) {
			struct hearth_blk_req *req = got[i].r->req;
			int res = finish_req(bf, got[i].r, got[i].res);
			bf->fe_ops->complete(bf->fe, req, res);
		}
		total += n;
		if (n < REAP_BATCH)
			break;
	}
	if (total)
		bf->fe_ops->complete_done(bf->fe);
	return total;
}

static void bf_event(void *opaque, uint32_t events)
{
	struct blk_file *bf = opaque;
	uint64_t v;

	(void)events;
	/* drain the counter first: completions posted after this read signal again */
	if (read(bf->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		hearth_log("blk-file '%s': eventfd: %s", bf->path, strerror(errno));
	reap(bf, false);
}

static void bf_retry(void *opaque, uint32_t events)
{
	struct blk_file *bf = opaque;
	uint64_t v;

	(void)events;
	if (read(bf->retry_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		hearth_log("blk-file '%s': timerfd: %s", bf->path, strerror(errno));
	reap(bf, false); /* submits what is queued, delivers what finished */
}

/* ---- the I/O thread (iothread=on) ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Lock held. A multishot poll in the ring for every watch that has none. */
static void arm_watches(struct blk_file *bf)
{
	for (unsigned i = 0; i < bf->nwatch; i++) {
		struct bf_watch *w = &bf->watch[i];
		if (w->armed)
			continue;
		struct io_uring_sqe *sqe = io_uring_get_sqe(&bf->ring);
		if (!sqe)
			return; /* the SQ is full: next turn */
		io_uring_prep_poll_multishot(sqe, w->fd, POLLIN);
		io_uring_sqe_set_data64(sqe, (uint64_t)i << 1 | UD_WATCH);
		w->armed = true;
	}
}

/* Submit what is queued. wait: and sleep until something completes, in the same system call
 * (entries a failed submit left in the SQ are tried again after a millisecond); otherwise only
 * let the kernel post the completions it holds for us (DEFER_TASKRUN posts them only when we
 * enter; the TASKRUN flag says when there are any). */
static void enter_ring(struct blk_file *bf, bool wait, bool *stuck)
{
	struct io_uring_cqe *cqe;
	int r;

	if (wait) {
		struct __kernel_timespec ms = {.tv_nsec = 1000000};
		r = io_uring_submit_and_wait_timeout(&bf->ring, &cqe, 1, *stuck ? &ms : NULL, NULL);
	} else if (io_uring_sq_ready(&bf->ring) || (IO_URING_READ_ONCE(*bf->ring.sq.kflags) &
						    (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))) {
		r = io_uring_submit_and_get_events(&bf->ring);
	} else {
		return;
	}
	*stuck = io_uring_sq_ready(&bf->ring) > 0;
	if (*stuck)
		hearth_log_once(bf->logged_submit, "blk-file '%s': io_uring submit: %s; retrying",
				bf->path, r < 0 ? strerror(-r) : "partial");
}

/* A poll with DOZE_MIN or more requests in flight and no CPU idle: their completions wake the
 * thread soon anyway, and a spinning thread takes the CPU the I/O itself needs (on a 2-CPU host
 * with the guest spinning on the other one: 4 KiB reads at queue depth 32 from an image on tmpfs,
 * which io_uring's workers read, 272-286k IOPS spinning, 310-336k dozing). The guest's
 * notifications stay off, so a request it adds meanwhile waits at most DOZE_NS. Waking for a
 * quarter of them rather than each keeps the guest's interrupts batched (on the virtio disk
 * here, guest sleeping: waking for each completion took queue depth 32 from 45-50k to 38-45k).
 * Not right after a turn that found something: the guest is often still adding requests. */
static void doze(struct blk_file *bf, unsigned inflight)
{
	struct __kernel_timespec ts = {.tv_nsec = DOZE_NS};
	struct io_uring_cqe *cqe;

	io_uring_submit_and_wait_timeout(&bf->ring, &cqe, inflight / DOZE_MIN, &ts, NULL);
}

static void watch_event(struct blk_file *bf, unsigned i, const struct io_uring_cqe *cqe)
{
	if (i >= bf->nwatch)
		return;
	struct bf_watch *w = &bf->watch[i];
	if (cqe->res > 0)
		w->fired = true;
	if (cqe->flags & IORING_CQE_F_MORE)
		return;
	/* the poll ended (the CQ overflowed, or it failed): put another in, unless it failed
	 * for good, which would only spin */
	if (cqe->res >= 0 || cqe->res == -ECANCELED || cqe->res == -ENOMEM)
		w->armed = false;
	else
		hearth_log_once(bf->logged_poll,
				"blk-file '%s': cannot wait for notifications: %s; the guest's "
				"requests are only seen when others complete",
				bf->path, strerror(-cqe->res));
}

/* Deliver every completion in the ring (one complete_done for them all), then the kicks.
 * Returns whether there was anything. */
static bool harvest(struct blk_file *bf)
{
	bool any = false, completed = false;

	for (;;) {
		struct bf_req *got[REAP_BATCH];
		int res[REAP_BATCH];
		unsigned n = 0, seen = 0, head;
		struct io_uring_cqe *cqe;

		io_uring_for_each_cqe(&bf->ring, head, cqe)
		{
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			seen++;
			if (ud & UD_WATCH) {
				watch_event(bf, (unsigned)(ud >> 1), cqe);
				continue;
			}
			got[n] = (struct bf_req *)(uintptr_t)ud;
			res[n++] = cqe->res;
			if (n == REAP_BATCH)
				break;
		}
		io_uring_cq_advance(&bf->ring, seen);
		if (!seen)
			break;
		any = true;
		if (!n)
			continue;
		pthread_mutex_lock(&bf->lock);
		bf->inflight -= n;
		pthread_mutex_unlock(&bf->lock);
		for (unsigned i = 0; i < n; i++) {
			struct hearth_blk_req *req = got[i]->req;
			bf->fe_ops->complete(bf->fe, req, finish_req(bf, got[i], res[i]));
		}
		completed = true;
	}
	if (completed)
		bf->fe_ops->complete_done(bf->fe);
	for (unsigned i = 0; i < bf->nwatch; i++) {
		struct bf_watch *w = &bf->watch[i];
		uint64_t v;
		if (!w->fired)
			continue;
		w->fired = false;
		/* the poll is edge-triggered: the count need not go, but a loop that takes the
		 * eventfd back later would see it as a kick */
		if (read(w->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			hearth_log("blk-file '%s': eventfd: %s", bf->path, strerror(errno));
		if (i > 0 && bf->fe_ops->kicked)
			bf->fe_ops->kicked(bf->fe, i - 1);
	}
	return any;
}

/* The thread's polling state. Between events the frontend keeps the guest's notifications off
 * and looks at its rings; the thread looks at the completion ring. After `window` without
 * anything it asks for notifications again (the frontend looks once more after that, so
 * nothing slips between) and sleeps. */
struct poller {
	bool on;
	unsigned crowded;     /* host_crowded answers in a row */
	uint64_t crowd_check; /* when the host's run queues were last looked at */
	uint64_t window;      /* how long a poll lasts after the last event */
	uint64_t deadline;    /* when this one ends unless something happens */
	uint64_t last_event;  /* when something last happened */
	bool busy;	      /* the last turn found something: the guest may be adding more */
	bool tight;	      /* no CPU was idle at the last look */
};

/* The window follows the gaps between events: an event that came within poll-us of the one
 * before, after the thread had gone to sleep, would have been caught by a window a little
 * longer than that gap, so the window grows to it; a gap longer than poll-us (the guest is
 * idle) halves the window. */
static uint64_t adapt_window(const struct blk_file *bf, uint64_t window, uint64_t gap)
{
	if (gap > bf->poll_max_ns)
		return window / 2 < POLL_MIN_NS ? 0 : window / 2;
	if (gap <= window)
		return window;
	uint64_t w = gap + gap / 4;
	return w > bf->poll_max_ns ? bf->poll_max_ns : w;
}

/* Spinning only pays with a CPU to spare: when more tasks are running or waiting to run than
 * there are CPUs (the fourth field of /proc/loadavg, "running/all", counts this thread), it
 * takes one from someone, on a small host often the guest's own vCPU. With a CPU hog beside a
 * guest that polls its used ring, polling anyway made 4 KiB reads at queue depth 32 fall from
 * ~50k to 25-46k IOPS. Returns that count (0: unknown). */
static unsigned host_running(const struct blk_file *bf)
{
	char buf[128];

	if (bf->loadavg_fd < 0)
		return 0;
	ssize_t n = pread(bf->loadavg_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *f = buf;
	for (int i = 0; i < 3 && f; i++)
		if ((f = strchr(f, ' ')))
			f++;
	return f ? (unsigned)strtoul(f, NULL, 10) : 0;
}

/* Something happened while the thread was not polling: poll from now on? */
static bool poll_start(struct blk_file *bf, struct poller *p)
{
	uint64_t now = now_ns();

	p->window = adapt_window(bf, p->window, now - p->last_event);
	p->last_event = now;
	unsigned running = host_running(bf);
	if (!p->window || running > bf->ncpu)
		return false;
	p->tight = running >= bf->ncpu;
	p->on = true;
	p->crowd_check = now;
	p->crowded = 0;
	p->deadline = now + p->window;
	return true;
}

static void poll_turn(struct blk_file *bf, struct poller *p, bool busy)
{
	if (bf->fe_ops->poll(bf->fe, true))
		busy = true;
	p->busy = busy;
	uint64_t now = now_ns();
	/* crowded twice in a row: the block layer's own workers come and go in microseconds, a
	 * task that wants the CPU stays */
	if (now - p->crowd_check > CROWD_CHECK_NS) {
		p->crowd_check = now;
		unsigned running = host_running(bf);
		p->crowded = running > bf->ncpu ? p->crowded + 1 : 0;
		p->tight = running >= bf->ncpu;
		if (p->crowded >= 2) {
			bf->fe_ops->poll(bf->fe,
					 false); /* what that starts, completes and wakes us */
			p->on = false;
			return;
		}
	}
	if (busy) {
		p->deadline = now + p->window;
		p->last_event = now;
		return;
	}
	if (now < p->deadline) {
		__builtin_ia32_pause();
		return;
	}
	if (bf->fe_ops->poll(bf->fe, false)) {
		p->deadline = now + p->window;
		p->last_event = now;
		return;
	}
	p->on = false;
}

static void *bf_thread(void *opaque)
{
	struct blk_file *bf = opaque;
	bool stuck = false;
	bool can_poll = bf->poll_max_ns && bf->fe_ops->poll && bf->nwatch > 1;
	struct poller p = {0};

	io_thread_of = bf;
	for (;;) {
		pthread_mutex_lock(&bf->lock);
		arm_watches(bf);
		fill_ring(bf);
		bool stop = bf->stop, idle = !bf->inflight && !bf->pending;
		unsigned inflight = bf->inflight;
		pthread_mutex_unlock(&bf->lock);
		if (stop && p.on) {
			/* the guest must notify again before the event loop takes its kicks back */
			bf->fe_ops->poll(bf->fe, false);
			p.on = false;
			continue;
		}
		if (stop && idle)
			break;
		if (p.on && p.tight && !p.busy && inflight >= DOZE_MIN)
			doze(bf, inflight);
		else
			enter_ring(bf, !p.on, &stuck);
		bool busy = harvest(bf);
		if (!can_poll || stop || (!p.on && (!busy || !poll_start(bf, &p))))
			continue;
		poll_turn(bf, &p, busy);
	}
	io_thread_of = NULL;
	return NULL;
}

/* The ring was created disabled: with IORING_SETUP_SINGLE_ISSUER the thread that enables it
 * is the only one that may enter it. */
struct bf_start {
	struct blk_file *bf;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int result; /* 1 until the thread has tried */
};

static void *bf_thread_start(void *opaque)
{
	struct bf_start *st = opaque;
	struct blk_file *bf = st->bf;
	/* (liburing 2.3 declares io_uring_enable_rings but does not export it) */
	int r = bf->ring.flags & IORING_SETUP_R_DISABLED
			? io_uring_register((unsigned)bf->ring.ring_fd,
					    IORING_REGISTER_ENABLE_RINGS, NULL, 0)
			: 0;

	pthread_mutex_lock(&st->lock);
	st->result = r;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return r < 0 ? NULL : bf_thread(bf);
}

static int start_thread(struct blk_file *bf)
{
	struct bf_start st = {.bf = bf, .result = 1};
	sigset_t all, old;

	pthread_mutex_init(&st.lock, NULL);
	pthread_cond_init(&st.cond, NULL);
	/* the process's signals are for the thread that waits for them, never this one */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int err = pthread_create(&bf->thread, NULL, bf_thread_start, &st);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!err) {
		pthread_mutex_lock(&st.lock);
		while (st.result == 1)
			pthread_cond_wait(&st.cond, &st.lock);
		pthread_mutex_unlock(&st.lock);
		if (st.result < 0)
			pthread_join(bf->thread, NULL);
		else
			bf->thread_running = true;
	}
	pthread_cond_destroy(&st.cond);
	pthread_mutex_destroy(&st.lock);
	if (err)
		return hearth_err("disk '%s': I/O thread: %s", bf->path, strerror(err));
	if (st.result < 0)
		return hearth_err("disk '%s': io_uring: %s", bf->path, strerror(-st.result));
	return 0;
}

static void stop_thread(struct blk_file *bf)
{
	pthread_mutex_lock(&bf->lock);
	bf->stop = true;
	pthread_mutex_unlock(&bf->lock);
	wake_thread(bf);
	pthread_join(bf->thread, NULL);
	bf->thread_running = false;
}

/* ---- open, lock, close ---- */

static void bf_free(struct hearth_dev *dev)
{
	struct blk_file *bf = hearth_dev_priv(dev);

	if (!bf)
		return;
	if (bf->watching) {
		hearth_loop_del(bf->vm, bf->efd);
		hearth_loop_del(bf->vm, bf->retry_fd);
	}
	/* the thread submits what is pending and waits for everything in flight */
	if (bf->thread_running)
		stop_thread(bf);
	if (bf->ring_ok && bf->fe_ops && !bf->iothread) {
		/* everything the frontend handed us completes before it hears we are gone */
		pthread_mutex_lock(&bf->lock);
		struct bf_req *p = bf->pending;
		bf->pending = NULL;
		bf->pending_tail = &bf->pending;
		pthread_mutex_unlock(&bf->lock);
		while (p) {
			struct bf_req *next = p->next;
			struct hearth_blk_req *req = p->req;
			release_bounce(bf, p);
			free(p);
			bf->fe_ops->complete(bf->fe, req, -ECANCELED);
			p = next;
		}
		while (bf->inflight)
			reap(bf, true);
	}
	if (bf->fe_ops)
		bf->fe_ops->detach(bf->fe);
	if (bf->ring_ok)
		io_uring_queue_exit(&bf->ring);
	if (bf->efd >= 0)
		close(bf->efd);
	if (bf->retry_fd >= 0)
		close(bf->retry_fd);
	if (bf->watch && bf->watch[0].fd >= 0)
		close(bf->watch[0].fd); /* the others are the frontend's */
	free(bf->watch);
	if (bf->pool_map)
		munmap(bf->pool_map, bf->pool_map_len);
	if (bf->loadavg_fd >= 0)
		close(bf->loadavg_fd);
	if (bf->fd >= 0)
		close(bf->fd); /* drops the OFD lock */
	pthread_mutex_destroy(&bf->lock);
	free(bf->path);
	free(bf);
}

static int image_size(struct blk_file *bf, const struct stat *st)
{
	if (S_ISREG(st->st_mode)) {
		bf->size = (uint64_t)st->st_size;
		return 0;
	}
	if (S_ISBLK(st->st_mode)) {
		if (ioctl(bf->fd, BLKGETSIZE64, &bf->size) < 0)
			return hearth_err("disk '%s': cannot read the device size: %s", bf->path,
					  strerror(errno));
		return 0;
	}
	return hearth_err("disk '%s': not a regular file or block device", bf->path);
}

/* The alignment O_DIRECT wants for offsets (the disk's logical block) and for memory. */
static uint32_t direct_alignment(struct blk_file *bf, const struct stat *st)
{
	struct statx sx;
	uint32_t off_align = 512;

	bf->mem_align = 512;
	if (statx(bf->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
		off_align = sx.stx_dio_offset_align;
		bf->mem_align = sx.stx_dio_mem_align ? sx.stx_dio_mem_align : off_align;
	} else if (S_ISBLK(st->st_mode)) {
		int lbs;
		if (ioctl(bf->fd, BLKSSZGET, &lbs) == 0 && lbs >= 512)
			off_align = bf->mem_align = (uint32_t)lbs;
	}
	if (off_align < 512)
		off_align = 512;
	return off_align;
}

static int lock_image(struct blk_file *bf)
{
	struct flock fl = {
		.l_type = bf->readonly ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,
	};

	if (fcntl(bf->fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return hearth_err("disk '%s' is locked: another VM (or process) is %s it", bf->path,
				  bf->readonly ? "writing" : "using");
	return hearth_err("disk '%s': cannot lock: %s", bf->path, strerror(errno));
}

static int attach_and_start(struct blk_file *bf, struct hearth_dev *dev, struct hearth_cfg *cfg,
			    uint32_t block)
{
	struct hearth_blk_info info = {
		.size = bf->size,
		.block_size = block,
		.readonly = bf->readonly,
		.discard = true,
		.write_zeroes = true,
		.name = bf->path,
	};
	if (hearth_blk_backend_attach(dev, cfg, &info, &bf_ops, bf, &bf->fe_ops, &bf->fe) < 0)
		return -1;
	/* after the attach: the thread may call the frontend at once */
	return bf->iothread ? start_thread(bf) : 0;
}

static int bf_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	const char *path;
	bool ro, direct, iothread, poll_always;
	uint64_t poll_us, bounce_min;
	struct stat st;

	if (hearth_cfg_str(cfg, "path", NULL, &path) < 0 ||
	    hearth_cfg_bool(cfg, "readonly", false, &ro) < 0 ||
	    hearth_cfg_bool(cfg, "direct", false, &direct) < 0 ||
	    hearth_cfg_bool(cfg, "iothread", true, &iothread) < 0 ||
	    hearth_cfg_u64(cfg, "poll-us", POLL_US_DEFAULT, 0, POLL_US_MAX, &poll_us) < 0 ||
	    hearth_cfg_bool(cfg, "poll-always", false, &poll_always) < 0 ||
	    hearth_cfg_size(cfg, "bounce-min", BOUNCE_MIN_DEFAULT, 0, POOL_BYTES, &bounce_min) < 0)
		return -1;
	if (!path || !path[0])
		return hearth_err("key 'path' is missing: name the image file");
	struct blk_file *bf = calloc(1, sizeof(*bf));
	if (!bf)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, bf);
	pthread_mutex_init(&bf->lock, NULL);
	bf->dev = dev;
	bf->vm = hearth_dev_vm(dev);
	bf->fd = bf->efd = bf->retry_fd = bf->loadavg_fd = -1;
	bf->pending_tail = &bf->pending;
	bf->readonly = ro;
	bf->direct = direct;
	/* `hearth devices` builds machines without a loop: no guest runs, no thread either */
	bf->iothread = iothread && bf->vm->loop;
	bf->poll_max_ns = poll_us * 1000;
	if (bf->iothread && poll_us && !poll_always) {
		cpu_set_t cpus;
		bf->ncpu = sched_getaffinity(0, sizeof(cpus), &cpus) == 0
				   ? (unsigned)CPU_COUNT(&cpus)
				   : 1;
		bf->loadavg_fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	}
	/* through the page cache the copy is the kernel's and already contiguous */
	bf->bounce_min = direct ? bounce_min : 0;
	bf->path = strdup(path);
	if (!bf->path)
		return hearth_err("out of memory");

	bf->fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (bf->fd < 0) {
		if (errno == EINVAL && direct)
			return hearth_err("disk '%s': the file system does not support direct=on",
					  path);
		return hearth_err("disk '%s': cannot open%s: %s", path, ro ? "" : " for writing",
				  strerror(errno));
	}
	if (fstat(bf->fd, &st) < 0)
		return hearth_err("disk '%s': %s", path, strerror(errno));
	if (image_size(bf, &st) < 0 || lock_image(bf) < 0)
		return -1;
	uint32_t block = direct ? direct_alignment(bf, &st) : 512;
	if (block & (block - 1))
		return hearth_err("disk '%s': direct I/O alignment %u is not a power of two", path,
				  block);
	if (bf->size == 0 || bf->size % block)
		return hearth_err("disk '%s': size %llu is not a positive multiple of %u bytes",
				  path, (unsigned long long)bf->size, block);

	/* one thread enters the ring: completions wait for it (no inter-processor interrupt
	 * while it runs) and are posted when it asks for them */
	struct io_uring_params p = {
		.flags = IORING_SETUP_CQSIZE |
			 (bf->iothread ? IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
						 IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED
				       : 0),
		.cq_entries = CQ_ENTRIES};
	int err = io_uring_queue_init_params(RING_ENTRIES, &bf->ring, &p);
	if (err == -EINVAL && bf->iothread) {
		/* a kernel before 6.1 */
		p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE,
					     .cq_entries = CQ_ENTRIES};
		err = io_uring_queue_init_params(RING_ENTRIES, &bf->ring, &p);
	}
	if (err < 0)
		return hearth_err("disk '%s': io_uring: %s", path, strerror(-err));
	bf->ring_ok = true;
	if (bf->iothread) {
		bf->watch = calloc(1, sizeof(*bf->watch));
		if (!bf->watch)
			return hearth_err("out of memory");
		bf->nwatch = 1;
		bf->watch[0].fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (bf->watch[0].fd < 0)
			return hearth_err("disk '%s': eventfd: %s", path, strerror(errno));
		return attach_and_start(bf, dev, cfg, block);
	}
	bf->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (bf->efd < 0)
		return hearth_err("disk '%s': eventfd: %s", path, strerror(errno));
	err = io_uring_register_eventfd(&bf->ring, bf->efd);
	if (err < 0)
		return hearth_err("disk '%s': io_uring eventfd: %s", path, strerror(-err));
	/* `hearth devices` builds machines without a loop: no guest runs, no I/O completes */
	bf->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (bf->retry_fd < 0)
		return hearth_err("disk '%s': timerfd: %s", path, strerror(errno));
	if (bf->vm->loop) {
		if (hearth_loop_add(bf->vm, bf->efd, EPOLLIN, bf_event, bf) < 0)
			return -1;
		if (hearth_loop_add(bf->vm, bf->retry_fd, EPOLLIN, bf_retry, bf) < 0) {
			hearth_loop_del(bf->vm, bf->efd);
			return -1;
		}
		bf->watching = true;
	}

	return attach_and_start(bf, dev, cfg, block);
}

/* ---- checkpoints ----
 * The image's data stays in the image: a checkpoint records which image it was taken with, and
 * the restore (which opened the image again by the saved configuration's path) checks it is
 * the same size and opened the same way. The virtio-blk frontend's quiesce has already waited
 * for every request, so nothing of ours is in flight. Keeping the image unchanged from the
 * snapshot to the restore is the user's business (docs/checkpoint-format.md). */

#define BF_CKPT_VERSION 1

static int bf_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct blk_file *bf = hearth_dev_priv(dev);

	if (hearth_ckpt_set_version(ck, BF_CKPT_VERSION) < 0 ||
	    hearth_ckpt_put_str(ck, "path", bf->path) < 0 ||
	    hearth_ckpt_put_u64(ck, "size", bf->size) < 0 ||
	    hearth_ckpt_put_bool(ck, "readonly", bf->readonly) < 0 ||
	    hearth_ckpt_put_bool(ck, "direct", bf->direct) < 0)
		return -1;
	return 0;
}

static int bf_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct blk_file *bf = hearth_dev_priv(dev);
	const char *name = hearth_ckpt_name(ck);
	char path[PATH_MAX];
	uint64_t size;
	bool ro, direct;

	if (hearth_ckpt_accept_versions(ck, 1, BF_CKPT_VERSION) < 0 ||
	    hearth_ckpt_get_str(ck, "path", path, sizeof(path)) < 0 ||
	    hearth_ckpt_get_u64(ck, "size", &size) < 0 ||
	    hearth_ckpt_get_bool(ck, "readonly", &ro) < 0 ||
	    hearth_ckpt_get_bool(ck, "direct", &direct) < 0)
		return -1;
	if (strcmp(path, bf->path) != 0)
		return hearth_err(
			"checkpoint context '%s': key 'path': the checkpoint was taken with "
			"disk '%s', this VM opened '%s'",
			name, path, bf->path);
	if (size != bf->size)
		return hearth_err("checkpoint context '%s': key 'size': disk '%s' has %llu bytes, "
				  "%llu when the checkpoint was taken",
				  name, bf->path, (unsigned long long)bf->size,
				  (unsigned long long)size);
	if (ro != bf->readonly)
		return hearth_err("checkpoint context '%s': key 'readonly': disk '%s' was %s, it "
				  "is %s now",
				  name, bf->path, ro ? "read-only" : "writable",
				  bf->readonly ? "read-only" : "writable");
	if (direct != bf->direct)
		return hearth_err(
			"checkpoint context '%s': key 'direct': disk '%s' was opened with "
			"direct=%s, now with direct=%s",
			name, bf->path, direct ? "on" : "off", bf->direct ? "on" : "off");
	return 0;
}

static void bf_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	struct blk_file *bf = hearth_dev_priv(dev);

	snprintf(buf, len, "%s, %llu bytes%s%s", bf->path, (unsigned long long)bf->size,
		 bf->readonly ? ", read-only" : "", bf->direct ? ", direct" : "");
}

HEARTH_DEVICE_CLASS(blk_file_class, .name = "blk-file",
		    .summary =
			    "block backend: a raw image through io_uring (path=, frontend=, "
			    "readonly=, direct=, iothread=, poll-us=, poll-always=, bounce-min=)",
		    .init = bf_init, .free = bf_free, .save = bf_save, .load = bf_load,
		    .describe = bf_describe);
