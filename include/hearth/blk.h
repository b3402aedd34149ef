/* Block frontends (virtio-blk) and block backends (blk-file, blk-ram). The frontend owns the
 * guest protocol and checks every request against the backend's capabilities (bounds,
 * alignment, read-only, discard) before submitting it; the backend moves bytes, usually
 * asynchronously, and reports each request's result exactly once.
 *
 * Threads and locks: submit and kick are called with the frontend's device lock held, on any
 * thread. complete() is called on the event-loop thread or the backend's own I/O thread (or
 * from the backend's free), never inside submit, and never with a backend lock held: the
 * frontend takes its own lock there, as in kicked() and poll(). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

enum hearth_blk_op {
	HEARTH_BLK_READ,
	HEARTH_BLK_WRITE,
	HEARTH_BLK_FLUSH,	 /* make completed writes durable (fdatasync) */
	HEARTH_BLK_DISCARD,	 /* the range may read back as anything afterwards */
	HEARTH_BLK_WRITE_ZEROES, /* the range reads back as zeroes afterwards */
};

/* Request flags. */
#define HEARTH_BLK_F_UNMAP 1u /* WRITE_ZEROES may deallocate (punch a hole) */
#define HEARTH_BLK_F_FUA 2u   /* WRITE is durable when it completes (write-through) */

struct hearth_blk_req {
	enum hearth_blk_op op;
	uint32_t flags;
	/* Byte range: for READ/WRITE len is the sum of the iov lengths. Checked by the
	 * frontend: inside the disk, multiples of 512 (block_size for READ/WRITE). */
	uint64_t offset, len;
	struct iovec *iov; /* READ/WRITE data, host memory valid until completion */
	unsigned niov;
	void *be_priv; /* the backend's, untouched by the frontend */
};

struct hearth_blk_info {
	uint64_t size;	     /* bytes, a multiple of 512 */
	uint32_t block_size; /* logical block: a power of two >= 512 */
	bool readonly;
	bool discard;	   /* DISCARD (and WRITE_ZEROES with UNMAP) deallocate */
	bool write_zeroes; /* WRITE_ZEROES supported */
	const char *name;  /* for messages: the image path or the backend id */
};

/* submit's results besides -errno (failed now; no completion follows). */
#define HEARTH_BLK_ASYNC 0 /* accepted: complete() will report it later */
#define HEARTH_BLK_DONE 1  /* finished successfully inside submit */

struct hearth_blk_backend_ops {
	int (*submit)(void *be, struct hearth_blk_req *req);
	/* Start what submit queued since the last kick (one system call per batch). May be
	 * NULL. The frontend kicks after each batch of submits. */
	void (*kick)(void *be);
	/* Optional, for a backend with an I/O thread of its own: wait on the frontend's
	 * notification eventfds there too (the guest's kicks reach the thread that submits
	 * without a hop through the event loop) and call the frontend's kicked(i) when fds[i]
	 * is signalled; the backend consumes the counts. Called inside the frontend's attach.
	 * 0, or -1 when the backend cannot (the frontend keeps its notifications). The fds are
	 * no longer watched when detach is called. */
	int (*watch)(void *be, const int *fds, unsigned n);
};

struct hearth_blk_frontend_ops {
	/* A backend joins (during its init): return -1 with hearth_err set to refuse. */
	int (*attach)(void *fe, const struct hearth_blk_info *info,
		      const struct hearth_blk_backend_ops *ops, void *be);
	/* The backend is going away; every request it accepted has completed. */
	void (*detach)(void *fe);
	/* result: 0 or -errno. */
	void (*complete)(void *fe, struct hearth_blk_req *req, int result);
	/* The backend delivered a batch of completions: the frontend notifies the guest once
	 * per batch instead of once per request. Called after every batch of complete(). */
	void (*complete_done)(void *fe);
	/* For backends with watch, on their I/O thread, without backend locks. kicked:
	 * notification i arrived. poll(on): the thread is busy and will call again soon: the
	 * frontend may ask the guest not to notify, and starts what the guest queued; true when
	 * it started anything. poll(!on): the thread is about to sleep: the frontend asks for
	 * notifications again and looks once more (no request may slip between the two); true
	 * when it started anything, and the thread then polls on. May be NULL. */
	void (*kicked)(void *fe, unsigned i);
	bool (*poll)(void *fe, bool on);
};

/* Shared by blk backends: connect `be` to the blk frontend named by the backend's "frontend"
 * key and attach with info. On failure returns -1 with hearth_err set. */
struct hearth_dev;
struct hearth_cfg;
int hearth_blk_backend_attach(struct hearth_dev *be, struct hearth_cfg *cfg,
			      const struct hearth_blk_info *info,
			      const struct hearth_blk_backend_ops *ops, void *opaque,
			      const struct hearth_blk_frontend_ops **fe_ops, void **fe);
