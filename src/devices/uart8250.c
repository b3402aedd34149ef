/* 16550A UART on eight I/O ports, a char frontend. Register behaviour follows the
 * PC16550D datasheet; where an emulated line differs from a wire (no baud-rate timing, a
 * backend that can push back) the choices are in docs/devices.md. */
#include <stdlib.h>
#include <string.h>

#include "hearth/chardev.h"
#include "hearth/checkpoint.h"
#include "hearth/device.h"

#define FIFO_SIZE 16

/* register offsets */
#define R_DATA 0 /* RBR / THR, DLL with DLAB */
#define R_IER 1	 /* DLM with DLAB */
#define R_IIR 2	 /* FCR on write */
#define R_LCR 3
#define R_MCR 4
#define R_LSR 5
#define R_MSR 6
#define R_SCR 7

#define IER_RDA 0x01
#define IER_THRE 0x02
#define IER_RLS 0x04
#define IER_MS 0x08

#define IIR_NONE 0x01
#define IIR_MS 0x00
#define IIR_THRE 0x02
#define IIR_RDA 0x04
#define IIR_RLS 0x06
#define IIR_TIMEOUT 0x0c
#define IIR_FIFO 0xc0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define FCR_KEEP 0xc9 /* enable, DMA mode and trigger bits are remembered */

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_PE 0x04
#define LSR_FE 0x08
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
/* Outside loopback the line looks like a terminal that is present and ready. */
#define MSR_LINE (MSR_CTS | MSR_DSR | MSR_DCD)

struct fifo {
	uint8_t b[FIFO_SIZE];
	unsigned head, count;
};

struct uart {
	struct hearth_dev *dev;
	struct hearth_vm *vm;
	unsigned irq;

	uint8_t ier, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	struct fifo rx, tx;
	bool thre_pending; /* THRE interrupt latched until IIR read or THR write */
	bool rx_owed;	   /* input was refused: the backend gets rx_ready when room frees */
	int line;	   /* level we last drove on the IRQ line */

	const struct hearth_char_backend_ops *be_ops;
	void *be;
};

static unsigned fifo_cap(const struct uart *u)
{
	/* with FIFOs off the 16550 is a 16450: one holding register each way */
	return (u->fcr & FCR_ENABLE) ? FIFO_SIZE : 1;
}

static bool fifo_push(struct fifo *f, unsigned cap, uint8_t v)
{
	if (f->count >= cap)
		return false;
	f->b[(f->head + f->count) % FIFO_SIZE] = v;
	f->count++;
	return true;
}

static uint8_t fifo_pop(struct fifo *f)
{
	uint8_t v = f->b[f->head];

	f->head = (f->head + 1) % FIFO_SIZE;
	f->count--;
	return v;
}

static void fifo_clear(struct fifo *f)
{
	f->head = f->count = 0;
}

static unsigned rx_trigger(const struct uart *u)
{
	static const unsigned levels[4] = {1, 4, 8, 14};

	return (u->fcr & FCR_ENABLE) ? levels[u->fcr >> 6] : 1;
}

/* The highest-priority pending interrupt, as IIR bits 3:0. */
static uint8_t pending(const struct uart *u)
{
	if ((u->ier & IER_RLS) && (u->lsr & LSR_ERRORS))
		return IIR_RLS;
	if ((u->ier & IER_RDA) && u->rx.count) {
		/* No bytes are in flight on an emulated line, so data below the trigger level
		 * has already waited its four character times: report the timeout at once. */
		return u->rx.count >= rx_trigger(u) ? IIR_RDA : IIR_TIMEOUT;
	}
	if ((u->ier & IER_THRE) && u->thre_pending)
		return IIR_THRE;
	if ((u->ier & IER_MS) && (u->msr & 0x0f))
		return IIR_MS;
	return IIR_NONE;
}

/* On a PC the UART's interrupt output reaches the PIC only through a buffer enabled by
 * OUT2. In loopback the real pin is forced inactive, which would make loopback useless for
 * testing interrupt delivery; like QEMU, the MCR's OUT2 bit gates the line in both modes,
 * so drivers' loopback self-tests see their interrupts. */
static void update_irq(struct uart *u)
{
	int level = pending(u) != IIR_NONE && (u->mcr & MCR_OUT2);

	if (level != u->line) {
		u->line = level;
		hearth_irq_line(u->vm, u->irq, level);
	}
}

/* Modem-status inputs: the MCR outputs in loopback, a ready terminal otherwise. Changes
 * latch the delta bits (TERI on the trailing edge of RI). */
static void update_msr(struct uart *u)
{
	uint8_t in = MSR_LINE;

	if (u->mcr & MCR_LOOP) {
		in = 0;
		if (u->mcr & MCR_RTS)
			in |= MSR_CTS;
		if (u->mcr & MCR_DTR)
			in |= MSR_DSR;
		if (u->mcr & MCR_OUT1)
			in |= MSR_RI;
		if (u->mcr & MCR_OUT2)
			in |= MSR_DCD;
	}
	uint8_t old = u->msr & 0xf0, changed = old ^ in;
	uint8_t delta = u->msr & 0x0f;
	if (changed & MSR_CTS)
		delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		delta |= MSR_DDSR;
	if ((old & MSR_RI) && !(in & MSR_RI))
		delta |= MSR_TERI;
	if (changed & MSR_DCD)
		delta |= MSR_DDCD;
	u->msr = in | delta;
}

static void set_tx_empty(struct uart *u)
{
	if (!(u->lsr & LSR_THRE))
		u->thre_pending = true;
	u->lsr |= LSR_THRE | LSR_TEMT;
}

/* Hand the TX FIFO to the backend; what it refuses stays, and THRE stays clear, until
 * tx_ready. Without a backend the line drains into nothing. */
static void tx_push(struct uart *u)
{
	if (!u->be_ops)
		fifo_clear(&u->tx);
	while (u->tx.count) {
		unsigned run = FIFO_SIZE - u->tx.head;
		if (run > u->tx.count)
			run = u->tx.count;
		size_t n = u->be_ops->write(u->be, u->tx.b + u->tx.head, run);
		if (n > run)
			n = run;
		u->tx.head = (u->tx.head + n) % FIFO_SIZE;
		u->tx.count -= n;
		if (n < run)
			break;
	}
	if (u->tx.count == 0) {
		u->tx.head = 0;
		set_tx_empty(u);
	} else {
		u->lsr &= ~(LSR_THRE | LSR_TEMT);
	}
}

/* Room appeared in the RX FIFO: let a backend that was refused offer again. Its rx_ready
 * only schedules work on the loop thread, so calling it under our lock is safe. */
static void rx_room(struct uart *u)
{
	if (u->rx_owed && u->rx.count < fifo_cap(u) && !(u->mcr & MCR_LOOP)) {
		u->rx_owed = false;
		if (u->be_ops && u->be_ops->rx_ready)
			u->be_ops->rx_ready(u->be);
	}
}

static void rx_put(struct uart *u, uint8_t v)
{
	if (fifo_push(&u->rx, fifo_cap(u), v))
		u->lsr |= LSR_DR;
	else
		u->lsr |= LSR_OE; /* the FIFO keeps its bytes; the new one is lost */
}

static void write_thr(struct uart *u, uint8_t v)
{
	u->thre_pending = false;
	if (u->mcr & MCR_LOOP) {
		/* straight through the shift register: empty again at once */
		u->lsr &= ~(LSR_THRE | LSR_TEMT);
		rx_put(u, v);
		set_tx_empty(u);
		return;
	}
	/* a guest that ignores THRE overruns the FIFO like on hardware: the byte is dropped */
	if (fifo_push(&u->tx, fifo_cap(u), v))
		u->lsr &= ~(LSR_THRE | LSR_TEMT);
	tx_push(u);
}

static void write_fcr(struct uart *u, uint8_t v)
{
	uint8_t old = u->fcr;

	/* the other bits only take effect with FIFOs enabled in the same write */
	if (!(v & FCR_ENABLE)) {
		u->fcr = 0;
	} else {
		u->fcr = v & FCR_KEEP;
	}
	if (((old ^ u->fcr) & FCR_ENABLE) || ((v & FCR_ENABLE) && (v & FCR_CLEAR_RX))) {
		fifo_clear(&u->rx);
		u->lsr &= ~LSR_DR;
	}
	if (((old ^ u->fcr) & FCR_ENABLE) || ((v & FCR_ENABLE) && (v & FCR_CLEAR_TX))) {
		fifo_clear(&u->tx);
		set_tx_empty(u);
	}
	rx_room(u);
}

static void write_mcr(struct uart *u, uint8_t v)
{
	uint8_t old = u->mcr;

	u->mcr = v & MCR_MASK;
	update_msr(u);
	if ((old & MCR_LOOP) && !(u->mcr & MCR_LOOP)) {
		/* back on the line: held output and refused input can flow again */
		tx_push(u);
		rx_room(u);
	}
}

static void reg_write(struct uart *u, unsigned off, uint8_t v)
{
	bool dlab = u->lcr & LCR_DLAB;

	switch (off) {
	case R_DATA:
		if (dlab)
			u->dll = v;
		else
			write_thr(u, v);
		break;
	case R_IER:
		if (dlab) {
			u->dlm = v;
			break;
		}
		/* enabling the THRE interrupt while the transmitter is empty raises it */
		if ((v & IER_THRE) && !(u->ier & IER_THRE) && (u->lsr & LSR_THRE))
			u->thre_pending = true;
		u->ier = v & 0x0f;
		break;
	case R_IIR:
		write_fcr(u, v);
		break;
	case R_LCR:
		u->lcr = v;
		break;
	case R_MCR:
		write_mcr(u, v);
		break;
	case R_LSR:
	case R_MSR:
		break; /* factory-test writes: ignored */
	case R_SCR:
		u->scr = v;
		break;
	}
}

static uint8_t reg_read(struct uart *u, unsigned off)
{
	bool dlab = u->lcr & LCR_DLAB;
	uint8_t v = 0;

	switch (off) {
	case R_DATA:
		if (dlab)
			return u->dll;
		if (u->rx.count) {
			v = fifo_pop(&u->rx);
			if (!u->rx.count)
				u->lsr &= ~LSR_DR;
			rx_room(u);
		}
		return v;
	case R_IER:
		return dlab ? u->dlm : u->ier;
	case R_IIR:
		v = pending(u);
		if (v == IIR_THRE)
			u->thre_pending = false;
		return v | ((u->fcr & FCR_ENABLE) ? IIR_FIFO : 0);
	case R_LCR:
		return u->lcr;
	case R_MCR:
		return u->mcr;
	case R_LSR:
		v = u->lsr;
		u->lsr &= ~LSR_ERRORS;
		return v;
	case R_MSR:
		v = u->msr;
		u->msr &= 0xf0;
		return v;
	case R_SCR:
		return u->scr;
	}
	return 0xff;
}

/* Wider accesses reach consecutive registers, as on an 8-bit bus; the bus guarantees
 * offset + size <= 8. */
static uint64_t uart_pio_read(void *opaque, uint64_t offset, unsigned size)
{
	struct uart *u = opaque;
	uint64_t v = 0;

	for (unsigned i = 0; i < size && offset + i < 8; i++)
		v |= (uint64_t)reg_read(u, (unsigned)offset + i) << (8 * i);
	update_irq(u);
	return v;
}

static void uart_pio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	struct uart *u = opaque;

	for (unsigned i = 0; i < size && offset + i < 8; i++)
		reg_write(u, (unsigned)offset + i, (uint8_t)(value >> (8 * i)));
	update_irq(u);
}

static const struct hearth_io_ops uart_io = {
	.read = uart_pio_read,
	.write = uart_pio_write,
};

/* ---- char frontend: called by the backend, from init or the loop thread ---- */

static void fe_attach(void *fe, const struct hearth_char_backend_ops *ops, void *be)
{
	struct uart *u = fe;

	hearth_dev_lock(u->dev);
	u->be_ops = ops;
	u->be = ops ? be : NULL;
	if (!ops)
		u->rx_owed = false;
	if (!(u->mcr & MCR_LOOP))
		tx_push(u);
	update_irq(u);
	hearth_dev_unlock(u->dev);
}

static size_t fe_receive(void *fe, const uint8_t *buf, size_t len)
{
	struct uart *u = fe;
	size_t n = 0;

	hearth_dev_lock(u->dev);
	/* in loopback the receiver hears only the transmitter: hold the line's input */
	if (!(u->mcr & MCR_LOOP)) {
		while (n < len && fifo_push(&u->rx, fifo_cap(u), buf[n]))
			n++;
		if (u->rx.count)
			u->lsr |= LSR_DR;
	}
	if (n < len)
		u->rx_owed = true;
	update_irq(u);
	hearth_dev_unlock(u->dev);
	return n;
}

static void fe_tx_ready(void *fe)
{
	struct uart *u = fe;

	hearth_dev_lock(u->dev);
	if (!(u->mcr & MCR_LOOP))
		tx_push(u);
	update_irq(u);
	hearth_dev_unlock(u->dev);
}

static const struct hearth_char_frontend_ops uart_fe_ops = {
	.attach = fe_attach,
	.receive = fe_receive,
	.tx_ready = fe_tx_ready,
};

/* ---- lifecycle ---- */

static void power_on(struct uart *u)
{
	u->ier = u->fcr = u->lcr = u->mcr = u->scr = 0;
	u->dll = 0x0c; /* 9600 baud from the PC's 1.8432 MHz clock */
	u->dlm = 0;
	u->lsr = LSR_THRE | LSR_TEMT;
	u->msr = MSR_LINE;
	fifo_clear(&u->rx);
	fifo_clear(&u->tx);
	u->thre_pending = false;
}

static void uart_reset(struct hearth_dev *dev)
{
	struct uart *u = hearth_dev_priv(dev);

	/* output the guest already handed over is still delivered if the backend takes it */
	if (u->be_ops && u->tx.count && !(u->mcr & MCR_LOOP))
		tx_push(u);
	power_on(u);
	update_irq(u);
	if (u->rx_owed) {
		u->rx_owed = false;
		if (u->be_ops && u->be_ops->rx_ready)
			u->be_ops->rx_ready(u->be);
	}
}

static int uart_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	uint64_t port, irq;
	struct uart *u;

	if (hearth_cfg_u64(cfg, "port", 0x3f8, 0, 0x10000 - 8, &port) < 0 ||
	    hearth_cfg_u64(cfg, "irq", 4, 0, 23, &irq) < 0)
		return -1;
	u = calloc(1, sizeof(*u));
	if (!u)
		return hearth_err("out of memory");
	u->dev = dev;
	u->vm = hearth_dev_vm(dev);
	u->irq = (unsigned)irq;
	power_on(u);
	hearth_dev_set_priv(dev, u);
	if (hearth_hook_pio(dev, (uint16_t)port, 8, &uart_io, u) < 0)
		return -1;
	return hearth_frontend_register(dev, HEARTH_FE_CHAR, &uart_fe_ops, u);
}

/* ---- checkpoint ---- */

#define UART_CKPT_VERSION 1

static int fifo_save(struct hearth_ckpt *ck, const char *key, const struct fifo *f)
{
	uint8_t b[FIFO_SIZE];

	for (unsigned i = 0; i < f->count; i++)
		b[i] = f->b[(f->head + i) % FIFO_SIZE];
	return hearth_ckpt_put_bytes(ck, key, b, f->count);
}

static int fifo_load(struct hearth_ckpt *ck, const char *key, struct fifo *f)
{
	size_t n;

	fifo_clear(f);
	if (hearth_ckpt_get_bytes(ck, key, f->b, FIFO_SIZE, &n) < 0)
		return -1;
	f->count = (unsigned)n;
	return 0;
}

/* Bytes the backend refused stay in the TX FIFO: they are saved with it and handed over
 * once the restored backend has sent what it held itself (its load calls tx_ready). */
static int uart_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct uart *u = hearth_dev_priv(dev);
	const uint8_t regs[9] = {u->ier, u->fcr, u->lcr, u->mcr, u->lsr,
				 u->msr, u->scr, u->dll, u->dlm};

	if (hearth_ckpt_set_version(ck, UART_CKPT_VERSION) < 0 ||
	    hearth_ckpt_put_bytes(ck, "regs", regs, sizeof(regs)) < 0 ||
	    fifo_save(ck, "rx", &u->rx) < 0 || fifo_save(ck, "tx", &u->tx) < 0 ||
	    hearth_ckpt_put_bool(ck, "thre_pending", u->thre_pending) < 0 ||
	    hearth_ckpt_put_bool(ck, "irq_line", u->line != 0) < 0)
		return -1;
	return 0;
}

static int uart_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct uart *u = hearth_dev_priv(dev);
	uint8_t regs[9];
	bool line;

	if (hearth_ckpt_accept_versions(ck, 1, UART_CKPT_VERSION) < 0 ||
	    hearth_ckpt_get_bytes(ck, "regs", regs, sizeof(regs), NULL) < 0 ||
	    fifo_load(ck, "rx", &u->rx) < 0 || fifo_load(ck, "tx", &u->tx) < 0 ||
	    hearth_ckpt_get_bool(ck, "thre_pending", &u->thre_pending) < 0 ||
	    hearth_ckpt_get_bool(ck, "irq_line", &line) < 0)
		return -1;
	/* kept to what the registers can hold, so every later access behaves as on hardware */
	u->ier = regs[0] & 0x0f;
	u->fcr = regs[1] & FCR_KEEP;
	u->lcr = regs[2];
	u->mcr = regs[3] & MCR_MASK;
	u->lsr = regs[4];
	u->msr = regs[5];
	u->scr = regs[6];
	u->dll = regs[7];
	u->dlm = regs[8];
	if (u->rx.count > fifo_cap(u) || u->tx.count > fifo_cap(u))
		return hearth_err("checkpoint context '%s': keys 'rx'/'tx': %u/%u bytes in a "
				  "%u-byte FIFO",
				  hearth_ckpt_name(ck), u->rx.count, u->tx.count, fifo_cap(u));
	/* the interrupt controllers' state is restored with the VM: keep the level they saw */
	u->line = line;
	u->rx_owed = false; /* a restored backend offers input afresh */
	return 0;
}

static void uart_free(struct hearth_dev *dev)
{
	free(hearth_dev_priv(dev));
}

HEARTH_DEVICE_CLASS(uart8250_class, .name = "uart8250",
		    .summary = "16550A serial port (8 I/O ports, one IRQ); a char frontend",
		    .init = uart_init, .free = uart_free, .reset = uart_reset, .save = uart_save,
		    .load = uart_load);
