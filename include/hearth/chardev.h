/* Char frontends (UART, virtio-console) and char backends (stdio, file, socket, pty).
 * Output is never dropped by the backend: write() takes what fits in its bounded buffer and
 * the frontend keeps the rest, telling the guest its FIFO is full until tx_ready(). */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct hearth_char_backend_ops {
	/* Accept up to len bytes; returns how many were taken (0 when full). Any thread. */
	size_t (*write)(void *be, const uint8_t *buf, size_t len);
	/* The frontend has room again after refusing input; resume reading. */
	void (*rx_ready)(void *be);
};

struct hearth_char_frontend_ops {
	/* Called by the backend when it attaches (loop thread or init). */
	void (*attach)(void *fe, const struct hearth_char_backend_ops *ops, void *be);
	/* Offer input; returns bytes taken. When less than len, the backend waits for
	 * rx_ready before offering more. */
	size_t (*receive)(void *fe, const uint8_t *buf, size_t len);
	/* The backend drained its buffer; the frontend may push held output now. */
	void (*tx_ready)(void *fe);
};

/* Shared by char backends: connect to the frontend named by the backend's "frontend" key. */
struct hearth_dev;
struct hearth_cfg;
int hearth_char_backend_attach(struct hearth_dev *be, struct hearth_cfg *cfg,
			       const struct hearth_char_backend_ops *ops, void *opaque,
			       const struct hearth_char_frontend_ops **fe_ops, void **fe);
