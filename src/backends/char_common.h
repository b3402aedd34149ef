/* What the char backends share: a bounded output ring drained by the event loop, input
 * offered to the frontend with flow control, and the frontend connection. A backend owns
 * its file descriptors and tells the core which fd is its input and which its output. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hearth/chardev.h"
#include "hearth/device.h"

#define CHAR_OUT_CAP (64 * 1024)
#define CHAR_IN_CHUNK 4096

struct char_ring {
	uint8_t *buf;
	size_t cap, head, len;
};

int char_ring_init(struct char_ring *r, size_t cap);
void char_ring_free(struct char_ring *r);
/* Take what fits; returns how many bytes were taken. */
size_t char_ring_put(struct char_ring *r, const uint8_t *buf, size_t len);
/* The oldest stored bytes, as one contiguous run (may be shorter than len). */
size_t char_ring_peek(const struct char_ring *r, const uint8_t **p);
void char_ring_consume(struct char_ring *r, size_t n);
static inline size_t char_ring_space(const struct char_ring *r)
{
	return r->cap - r->len;
}

enum char_in_state {
	CHAR_IN_NONE,	/* no input (none configured, EOF, or no client) */
	CHAR_IN_ACTIVE, /* reading */
	CHAR_IN_PAUSED, /* the frontend refused input; waiting for rx_ready */
};

/* The result of a backend's read: bytes, or the end of input, or nothing right now. */
enum char_read {
	CHAR_READ_DATA,
	CHAR_READ_AGAIN,
	CHAR_READ_END, /* EOF, or an error that ends this input */
};

struct char_be;

struct char_be_io {
	/* Read input into buf (at most cap bytes; stdio filters its escape here). *n is set
	 * for CHAR_READ_DATA and may be 0 when everything read was consumed by a filter. */
	enum char_read (*read)(struct char_be *c, int fd, uint8_t *buf, size_t cap, size_t *n);
	/* The input ended or the output failed (EOF, EPIPE, EIO, hangup). Called on the loop
	 * thread without the core lock; the backend normally replaces its fds with
	 * char_be_set_fds and closes the old ones. output tells which side failed. */
	void (*hangup)(struct char_be *c, bool output);
};

struct char_watch {
	struct char_be *c;
	int fd;
	uint32_t events;
	bool registered;
};

struct char_be {
	struct hearth_dev *dev;
	struct hearth_vm *vm;
	const struct char_be_io *io;
	const struct hearth_char_frontend_ops *fe_ops;
	void *fe;

	pthread_mutex_t lock; /* everything below but the input buffer */
	struct char_ring out;
	bool hold;    /* output with no consumer waits in the ring (else it is discarded) */
	bool tx_owed; /* the frontend was refused bytes: it gets tx_ready when room frees */
	bool closing;
	int out_fd;    /* -1: no consumer */
	bool out_sync; /* blocking writes on the caller's thread (regular files) */
	int in_fd;     /* -1: no input */
	bool in_poll;  /* in_fd is watched by the loop; else it is read on kicks */
	enum char_in_state in_state;
	struct char_watch win, wout; /* win serves both when in_fd == out_fd */
	bool out_err_logged;
	int out_errno; /* why the output last failed */

	int kick_fd; /* eventfd: rx_ready and self-pacing reads of unpollable input */
	bool kick_registered;

	/* loop thread only */
	uint8_t in_buf[2 * CHAR_IN_CHUNK];
	size_t in_off, in_len;
};

/* Set up the ring and the kick eventfd. hold: see struct char_be. */
int char_be_init(struct char_be *c, struct hearth_dev *dev, const struct char_be_io *io, bool hold);
/* Connect to the frontend named by cfg's "frontend" key and start serving. Call last in
 * init, after char_be_set_fds. */
int char_be_attach(struct char_be *c, struct hearth_cfg *cfg);
/* Detach from the frontend and stop every watch. Before the backend closes its fds. */
void char_be_stop(struct char_be *c);
/* Release the ring and the eventfd (after char_be_stop). */
void char_be_destroy(struct char_be *c);

/* Replace the input and output fds (-1 for none; the same fd for a connection). The old
 * watches are removed; the caller closes old fds afterwards. in_poll: the input can be
 * watched by epoll (else it is read whenever the frontend has room). out_sync: write
 * with blocking calls instead of through the loop. Call on the loop thread, or from init
 * before char_be_attach. Output left in the ring with no new consumer is kept when hold is
 * set, else discarded. */
void char_be_set_fds(struct char_be *c, int in_fd, bool in_poll, int out_fd, bool out_sync);

/* Output as if the frontend wrote it (checkpoint restore): returns the bytes taken. */
size_t char_be_output(struct char_be *c, const uint8_t *buf, size_t len);

/* Wake the loop to offer pending input (any thread). */
void char_be_kick(struct char_be *c);

/* For describe ops and messages. */
const char *char_be_id(const struct char_be *c);

/* Helpers for backends. */
int char_set_nonblock(int fd, bool on);
/* Whether epoll accepts this fd (pipes, sockets, ttys: yes; regular files, /dev/null: no). */
bool char_fd_pollable(int fd);
