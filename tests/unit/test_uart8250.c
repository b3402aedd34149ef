/* uart8250 driven through its ports as a guest driver would, against a fake char backend
 * whose appetite the test controls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakevm.h"
#include "hearth/chardev.h"

#define BASE 0x3f8
#define THR 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

/* ---- a char backend that takes at most `limit` bytes in total ---- */

static struct fake_be {
	const struct hearth_char_frontend_ops *fe_ops;
	void *fe;
	uint8_t out[8192];
	size_t nout, limit;
	int rx_ready_calls, writes;
} be;

static size_t fbe_write(void *opaque, const uint8_t *buf, size_t len)
{
	assert_ptr_equal(opaque, &be);
	size_t room = be.limit > be.nout ? be.limit - be.nout : 0;
	if (len > room)
		len = room;
	memcpy(be.out + be.nout, buf, len);
	be.nout += len;
	be.writes++;
	return len;
}

static void fbe_rx_ready(void *opaque)
{
	assert_ptr_equal(opaque, &be);
	be.rx_ready_calls++;
}

static const struct hearth_char_backend_ops fbe_ops = {.write = fbe_write,
						       .rx_ready = fbe_rx_ready};

static int fbe_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	return hearth_char_backend_attach(dev, cfg, &fbe_ops, &be, &be.fe_ops, &be.fe);
}

static void fbe_free(struct hearth_dev *dev)
{
	(void)dev;
	if (be.fe_ops)
		be.fe_ops->attach(be.fe, NULL, NULL);
	be.fe_ops = NULL;
}

HEARTH_DEVICE_CLASS(test_fbe_class, .name = "test-charbe", .init = fbe_init, .free = fbe_free);

/* ---- helpers ---- */

static struct fakevm *vm;

static uint8_t inb(unsigned off)
{
	return (uint8_t)iobus_read(&vm->vm.pio, BASE + off, 1);
}

static void outb(unsigned off, uint8_t v)
{
	iobus_write(&vm->vm.pio, BASE + off, v, 1);
}

static int line(void)
{
	return vm->irq_level[4];
}

static size_t rx(const char *s)
{
	return be.fe_ops->receive(be.fe, (const uint8_t *)s, strlen(s));
}

static int setup_plain(void **state)
{
	(void)state;
	memset(&be, 0, sizeof(be));
	be.limit = sizeof(be.out);
	vm = fakevm_new(4096);
	if (!fakevm_dev(vm, "uart8250", "com1", NULL)) {
		fprintf(stderr, "%s\n", hearth_err_msg());
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	if (setup_plain(state) < 0)
		return -1;
	if (!fakevm_dev(vm, "test-charbe", "be0", NULL)) {
		fprintf(stderr, "%s\n", hearth_err_msg());
		return -1;
	}
	assert_non_null(be.fe_ops);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fakevm_free(vm);
	vm = NULL;
	return 0;
}

/* ---- registers ---- */

static void power_on_values(void **state)
{
	(void)state;
	assert_int_equal(inb(IER), 0);
	assert_int_equal(inb(IIR), 0x01);
	assert_int_equal(inb(LCR), 0);
	assert_int_equal(inb(MCR), 0);
	assert_int_equal(inb(LSR), 0x60);
	assert_int_equal(inb(MSR), 0xb0);
	assert_int_equal(inb(SCR), 0);
	assert_int_equal(inb(THR), 0); /* empty RBR */
	assert_int_equal(line(), 0);
}

static void plain_registers(void **state)
{
	(void)state;
	outb(SCR, 0x5a);
	assert_int_equal(inb(SCR), 0x5a);
	outb(LCR, 0x1b);
	assert_int_equal(inb(LCR), 0x1b);
	outb(IER, 0xff);
	assert_int_equal(inb(IER), 0x0f); /* only the low four bits exist */
	outb(IER, 0);
	outb(MCR, 0xff);
	assert_int_equal(inb(MCR), 0x1f);
	outb(MCR, 0);
	inb(MSR); /* clear the deltas of that loopback round trip */
	/* LSR and MSR ignore writes */
	outb(LSR, 0x00);
	assert_int_equal(inb(LSR), 0x60);
	outb(MSR, 0x00);
	assert_int_equal(inb(MSR), 0xb0);
}

static void divisor_latch(void **state)
{
	(void)state;
	outb(LCR, 0x83);
	assert_int_equal(inb(THR), 0x0c); /* power-on divisor: 9600 baud */
	outb(THR, 0x01);
	outb(IER, 0x02);
	assert_int_equal(inb(THR), 0x01);
	assert_int_equal(inb(IER), 0x02);
	assert_int_equal(be.nout, 0); /* DLL writes are not data */
	outb(LCR, 0x03);
	assert_int_equal(inb(IER), 0); /* IER untouched by the DLM write */
	outb(THR, 'A');
	assert_int_equal(be.nout, 1);
	assert_int_equal(be.out[0], 'A');
	outb(LCR, 0x83);
	assert_int_equal(inb(THR), 0x01);
	assert_int_equal(inb(IER), 0x02);
}

static void wide_access_reaches_consecutive_registers(void **state)
{
	(void)state;
	iobus_write(&vm->vm.pio, BASE + LCR, 0x80, 1);
	iobus_write(&vm->vm.pio, BASE, 0x1234, 2);
	assert_int_equal(inb(THR), 0x34);
	assert_int_equal(inb(IER), 0x12);
	assert_int_equal(iobus_read(&vm->vm.pio, BASE, 2), 0x1234);
	/* 32-bit read at LCR: LCR, MCR, LSR, MSR */
	assert_int_equal(iobus_read(&vm->vm.pio, BASE + LCR, 4), 0xb0600080u);
}

static void fifo_enable_and_iir_bits(void **state)
{
	(void)state;
	assert_int_equal(inb(IIR) & 0xc0, 0);
	outb(FCR, 0x01);
	assert_int_equal(inb(IIR), 0xc1);
	outb(FCR, 0x00);
	assert_int_equal(inb(IIR), 0x01);
	/* trigger bits without the enable bit do nothing */
	outb(FCR, 0xc0);
	assert_int_equal(inb(IIR), 0x01);
}

static void non_fifo_mode_holds_one_byte(void **state)
{
	(void)state;
	assert_int_equal(rx("abc"), 1);
	assert_int_equal(inb(LSR) & 0x01, 1);
	assert_int_equal(inb(THR), 'a');
	assert_int_equal(inb(LSR) & 0x01, 0);
	assert_int_equal(be.rx_ready_calls, 1);
}

static void rx_trigger_levels(void **state)
{
	static const struct {
		uint8_t fcr;
		unsigned level;
	} t[] = {{0x01, 1}, {0x41, 4}, {0x81, 8}, {0xc1, 14}};

	(void)state;
	outb(IER, 0x01);
	for (unsigned i = 0; i < 4; i++) {
		outb(FCR, t[i].fcr | 0x02); /* enable and clear RX */
		assert_int_equal(inb(LSR) & 0x01, 0);
		for (unsigned n = 1; n <= 16; n++) {
			assert_int_equal(rx("x"), 1);
			/* below the trigger: character timeout; at or above: data available */
			uint8_t want = n >= t[i].level ? 0xc4 : 0xcc;
			assert_int_equal(inb(IIR), want);
		}
		assert_int_equal(rx("x"), 0);
	}
}

static void fcr_clears_fifos(void **state)
{
	(void)state;
	outb(FCR, 0x01);
	assert_int_equal(rx("hello"), 5);
	outb(FCR, 0x03);
	assert_int_equal(inb(LSR) & 0x01, 0);
	assert_int_equal(inb(THR), 0);
	/* TX clear: held output is dropped and the transmitter is empty again */
	be.limit = 0;
	outb(THR, 'a');
	outb(THR, 'b');
	assert_int_equal(inb(LSR) & 0x60, 0);
	outb(FCR, 0x05);
	assert_int_equal(inb(LSR) & 0x60, 0x60);
	be.limit = sizeof(be.out);
	be.fe_ops->tx_ready(be.fe);
	assert_int_equal(be.nout, 0);
	/* toggling the enable bit also empties the FIFOs */
	assert_int_equal(rx("zz"), 2);
	outb(FCR, 0x00);
	assert_int_equal(inb(LSR) & 0x01, 0);
}

static void loopback_round_trip_and_overrun(void **state)
{
	(void)state;
	outb(FCR, 0x01);
	outb(MCR, 0x10);
	for (int i = 0; i < 16; i++)
		outb(THR, (uint8_t)('a' + i));
	assert_int_equal(be.nout, 0); /* nothing reaches the backend in loopback */
	assert_int_equal(inb(LSR), 0x61);
	outb(THR, 'Z'); /* the 17th: overrun */
	assert_int_equal(inb(LSR), 0x63);
	assert_int_equal(inb(LSR), 0x61); /* reading LSR cleared OE */
	for (int i = 0; i < 16; i++)
		assert_int_equal(inb(THR), 'a' + i);
	assert_int_equal(inb(LSR), 0x60);
	assert_int_equal(inb(THR), 0);
	assert_int_equal(be.nout, 0);
}

static void loopback_msr_follows_mcr(void **state)
{
	(void)state;
	outb(MCR, 0x10);
	/* CTS, DSR and DCD fell: three deltas */
	assert_int_equal(inb(MSR), 0x0b);
	assert_int_equal(inb(MSR), 0x00);
	outb(MCR, 0x1f);
	assert_int_equal(inb(MSR), 0xfb);
	outb(MCR, 0x10 | 0x01);			 /* DTR only: RI fell, so TERI */
	assert_int_equal(inb(MSR), 0x20 | 0x0d); /* CTS and DCD fell too; DSR stayed */
	outb(MCR, 0x10 | 0x02 | 0x08);		 /* RTS, OUT2 */
	assert_int_equal(inb(MSR) & 0xf0, 0x90);
	outb(MCR, 0x00); /* leaving loopback: a ready terminal again */
	assert_int_equal(inb(MSR) & 0xf0, 0xb0);
}

static void modem_status_interrupt(void **state)
{
	(void)state;
	outb(IER, 0x08);
	assert_int_equal(inb(IIR), 0x01);
	outb(MCR, 0x10);
	assert_int_equal(inb(IIR), 0x00);
	inb(MSR);
	assert_int_equal(inb(IIR), 0x01);
}

static void rda_interrupt_line(void **state)
{
	(void)state;
	outb(MCR, 0x08); /* OUT2 */
	outb(IER, 0x01);
	assert_int_equal(line(), 0);
	assert_int_equal(rx("k"), 1);
	assert_int_equal(line(), 1);
	assert_int_equal(inb(IIR), 0x04);
	assert_int_equal(line(), 1); /* reading IIR does not clear data available */
	assert_int_equal(inb(THR), 'k');
	assert_int_equal(line(), 0);
	assert_int_equal(inb(IIR), 0x01);
	assert_int_equal(vm->irq_raises[4], 1);
}

static void thre_interrupt_line(void **state)
{
	(void)state;
	outb(MCR, 0x08);
	outb(IER, 0x02); /* enabling it with the transmitter empty raises it */
	assert_int_equal(line(), 1);
	assert_int_equal(inb(IIR), 0x02);
	assert_int_equal(line(), 0); /* the IIR read that reports THRE clears it */
	assert_int_equal(inb(IIR), 0x01);
	/* rewriting the same IER does not re-raise it */
	outb(IER, 0x02);
	assert_int_equal(line(), 0);
	/* a byte sent and drained: THRE again */
	outb(THR, 'q');
	assert_int_equal(be.nout, 1);
	assert_int_equal(line(), 1);
	/* a THR write clears a pending THRE before the IIR read */
	be.limit = be.nout; /* hold the next byte */
	outb(THR, 'r');
	assert_int_equal(line(), 0);
	assert_int_equal(inb(IIR), 0x01);
	/* turning the enable off and on re-raises only when the transmitter is empty */
	outb(IER, 0);
	outb(IER, 0x02);
	assert_int_equal(line(), 0);
	be.limit = sizeof(be.out);
	be.fe_ops->tx_ready(be.fe);
	assert_int_equal(line(), 1);
	outb(IER, 0);
	assert_int_equal(line(), 0);
	outb(IER, 0x02);
	assert_int_equal(line(), 1);
}

static void interrupt_priority(void **state)
{
	(void)state;
	outb(FCR, 0x01);
	outb(MCR, 0x10);
	for (int i = 0; i < 17; i++)
		outb(THR, 'x');		  /* 16 in the FIFO and an overrun */
	outb(IER, 0x0f);		  /* THRE also latches: the transmitter is empty */
	assert_int_equal(inb(IIR), 0xc6); /* line status */
	assert_int_equal(inb(LSR) & 0x02, 0x02);
	assert_int_equal(inb(IIR), 0xc4); /* data, 16 >= trigger 1 */
	for (int i = 0; i < 16; i++)
		inb(THR);
	assert_int_equal(inb(IIR), 0xc2); /* THRE, cleared by this read */
	assert_int_equal(inb(IIR), 0xc0); /* modem status: loopback changed the inputs */
	inb(MSR);
	assert_int_equal(inb(IIR), 0xc1);
}

static void line_status_interrupt_line(void **state)
{
	(void)state;
	outb(MCR, 0x10 | 0x08);
	outb(THR, '1');
	outb(THR, '2'); /* non-FIFO mode: one holding register, so an overrun */
	outb(IER, 0x04);
	assert_int_equal(inb(IIR), 0x06);
	assert_int_equal(line(), 1); /* loopback: the MCR's OUT2 bit still gates the line */
	outb(MCR, 0x10);
	assert_int_equal(line(), 0);
	outb(MCR, 0x08);
	assert_int_equal(line(), 1);
	assert_int_equal(inb(LSR), 0x63);
	assert_int_equal(line(), 0);
	assert_int_equal(inb(THR), '1');
}

static void out2_gates_the_line(void **state)
{
	(void)state;
	outb(IER, 0x01);
	assert_int_equal(rx("a"), 1);
	assert_int_equal(inb(IIR), 0x04);
	assert_int_equal(line(), 0);
	outb(MCR, 0x08);
	assert_int_equal(line(), 1);
	outb(MCR, 0x00);
	assert_int_equal(line(), 0);
	outb(MCR, 0x08);
	assert_int_equal(line(), 1);
	outb(MCR, 0x18); /* loopback keeps OUT2's gating, so self-tests see interrupts */
	assert_int_equal(line(), 1);
	outb(MCR, 0x10);
	assert_int_equal(line(), 0);
	outb(MCR, 0x08);
	assert_int_equal(line(), 1);
	assert_int_equal(vm->irq_raises[4], 3);
}

static void tx_backpressure(void **state)
{
	(void)state;
	outb(FCR, 0x07);
	outb(MCR, 0x08);
	be.limit = 5;
	/* a driver that saw THRE writes a FIFO's worth */
	assert_int_equal(inb(LSR) & 0x20, 0x20);
	for (int i = 0; i < 16; i++)
		outb(THR, (uint8_t)('A' + i));
	assert_int_equal(be.nout, 5);
	assert_int_equal(inb(LSR) & 0x60, 0); /* the guest must wait */
	outb(IER, 0x02);
	assert_int_equal(line(), 0); /* no THRE interrupt while bytes remain */
	be.fe_ops->tx_ready(be.fe);  /* still full: nothing moves */
	assert_int_equal(be.nout, 5);
	be.limit = 12;
	be.fe_ops->tx_ready(be.fe);
	assert_int_equal(be.nout, 12);
	assert_int_equal(inb(LSR) & 0x60, 0);
	assert_int_equal(line(), 0);
	be.limit = sizeof(be.out);
	be.fe_ops->tx_ready(be.fe);
	assert_int_equal(be.nout, 16);
	assert_memory_equal(be.out, "ABCDEFGHIJKLMNOP", 16);
	assert_int_equal(inb(LSR) & 0x60, 0x60);
	assert_int_equal(line(), 1);
	assert_int_equal(inb(IIR), 0xc2);
	assert_int_equal(line(), 0);
}

static void tx_backpressure_wraps_the_fifo(void **state)
{
	char want[64];
	size_t sent = 0;

	(void)state;
	outb(FCR, 0x01);
	/* a polling driver: wait for THRE, write up to 16, repeat; the backend takes 3 at a
	 * time. Every byte arrives, in order. */
	be.limit = 0;
	for (int round = 0; round < 40 && sent < sizeof(want); round++) {
		if (inb(LSR) & 0x20) {
			for (int i = 0; i < 16 && sent < sizeof(want); i++) {
				want[sent] = (char)(' ' + sent);
				outb(THR, (uint8_t)want[sent++]);
			}
		}
		be.limit += 3;
		be.fe_ops->tx_ready(be.fe);
	}
	be.limit = sizeof(be.out);
	be.fe_ops->tx_ready(be.fe);
	assert_int_equal(sent, sizeof(want));
	assert_int_equal(be.nout, sizeof(want));
	assert_memory_equal(be.out, want, sizeof(want));
}

static void rx_flow_control(void **state)
{
	(void)state;
	outb(FCR, 0x01);
	assert_int_equal(rx("0123456789abcdefXYZ"), 16);
	assert_int_equal(rx("XYZ"), 0);
	assert_int_equal(be.rx_ready_calls, 0);
	assert_int_equal(inb(THR), '0');
	assert_int_equal(be.rx_ready_calls, 1);
	assert_int_equal(inb(THR), '1');
	assert_int_equal(be.rx_ready_calls, 1); /* once per refusal */
	assert_int_equal(rx("XYZ"), 2);
	assert_int_equal(be.rx_ready_calls, 1);
	assert_int_equal(inb(THR), '2');
	assert_int_equal(be.rx_ready_calls, 2);
}

static void loopback_holds_line_input(void **state)
{
	(void)state;
	outb(MCR, 0x10);
	assert_int_equal(rx("in"), 0);
	assert_int_equal(inb(LSR) & 0x01, 0);
	assert_int_equal(be.rx_ready_calls, 0);
	outb(MCR, 0x00);
	assert_int_equal(be.rx_ready_calls, 1);
	assert_int_equal(rx("in"), 1);
}

static void loopback_holds_pending_output(void **state)
{
	(void)state;
	be.limit = 0;
	outb(THR, 'p');
	outb(MCR, 0x10);
	be.limit = sizeof(be.out);
	be.fe_ops->tx_ready(be.fe);
	assert_int_equal(be.nout, 0);
	outb(MCR, 0x00);
	assert_int_equal(be.nout, 1);
	assert_int_equal(be.out[0], 'p');
}

static void no_backend_drains_into_nothing(void **state)
{
	(void)state;
	outb(MCR, 0x08);
	outb(IER, 0x02);
	inb(IIR);
	assert_int_equal(line(), 0);
	outb(THR, 'x');
	assert_int_equal(inb(LSR) & 0x60, 0x60);
	assert_int_equal(line(), 1);
}

static void backend_removal_detaches(void **state)
{
	(void)state;
	struct hearth_dev *b = hearth_dev_find(&vm->vm, "be0");
	be.limit = 0;
	outb(THR, 'x');
	assert_int_equal(inb(LSR) & 0x60, 0);
	assert_int_equal(hearth_dev_remove(b), 0);
	/* held output is discarded with the line gone; the transmitter drains */
	assert_int_equal(inb(LSR) & 0x60, 0x60);
	outb(THR, 'y');
	assert_int_equal(be.writes, 1);
	/* and a new backend can join */
	assert_non_null(fakevm_dev(vm, "test-charbe", "be1", NULL));
	be.limit = sizeof(be.out);
	outb(THR, 'z');
	assert_int_equal(be.nout, 1);
	assert_int_equal(be.out[0], 'z');
}

static void reset_restores_power_on(void **state)
{
	(void)state;
	outb(FCR, 0xc1);
	outb(LCR, 0x80);
	outb(THR, 0x55);
	outb(LCR, 0x1b);
	outb(MCR, 0x0b);
	outb(IER, 0x0f);
	outb(SCR, 0x99);
	assert_int_equal(rx("0123456789abcdefgh"), 16);
	assert_int_equal(line(), 1);
	hearth_devs_reset(&vm->vm);
	assert_int_equal(line(), 0);
	assert_int_equal(be.rx_ready_calls, 1); /* the emptied FIFO has room */
	assert_int_equal(inb(IER), 0);
	assert_int_equal(inb(IIR), 0x01);
	assert_int_equal(inb(LCR), 0);
	assert_int_equal(inb(MCR), 0);
	assert_int_equal(inb(LSR), 0x60);
	assert_int_equal(inb(MSR), 0xb0);
	assert_int_equal(inb(SCR), 0);
	outb(LCR, 0x80);
	assert_int_equal(inb(THR), 0x0c);
	assert_int_equal(inb(IER), 0);
}

static void hostile_accesses(void **state)
{
	static const unsigned sizes[] = {1, 2, 4};
	uint32_t x = 0x12345678;

	(void)state;
	be.limit = 100;
	for (unsigned s = 0; s < 3; s++) {
		for (unsigned off = 0; off < 8; off++) {
			for (unsigned v = 0; v < 256; v++) {
				x = x * 1103515245u + 12345u;
				uint64_t val = sizes[s] == 1 ? v : x;
				iobus_write(&vm->vm.pio, BASE + off, val, sizes[s]);
				iobus_read(&vm->vm.pio, BASE + ((x >> 8) & 7), sizes[s]);
				if ((x & 0x1f) == 0)
					rx("hostile");
				if ((x & 0x3f) == 1)
					be.fe_ops->tx_ready(be.fe);
			}
		}
	}
	/* accesses past the eighth port are not the UART's */
	assert_int_equal(iobus_read(&vm->vm.pio, BASE + 7, 2), 0xffff);
	/* whatever happened, a reset brings back a working UART */
	hearth_devs_reset(&vm->vm);
	be.nout = 0;
	be.limit = sizeof(be.out);
	assert_int_equal(inb(LSR), 0x60);
	outb(THR, 'k');
	assert_int_equal(be.nout, 1);
	assert_int_equal(be.out[0], 'k');
}

/* ---- configuration ---- */

static void config_port_and_irq(void **state)
{
	(void)state;
	struct hearth_dev *d = fakevm_dev(vm, "uart8250", "com2", "{\"port\": 760, \"irq\": 3}");
	assert_non_null(d);
	iobus_write(&vm->vm.pio, 0x2f8 + MCR, 0x08, 1);
	iobus_write(&vm->vm.pio, 0x2f8 + IER, 0x02, 1);
	assert_int_equal(vm->irq_level[3], 1);
	assert_int_equal(line(), 0);
	assert_int_equal(iobus_read(&vm->vm.pio, 0x2f8 + LSR, 1), 0x60);
}

static void config_errors(void **state)
{
	(void)state;
	assert_null(fakevm_dev(vm, "uart8250", "u1", "{\"irq\": 24}"));
	assert_non_null(strstr(hearth_err_msg(), "irq"));
	assert_null(fakevm_dev(vm, "uart8250", "u2", "{\"port\": 65529}"));
	assert_non_null(strstr(hearth_err_msg(), "port"));
	assert_null(fakevm_dev(vm, "uart8250", "u3", "{\"port\": \"0x3fc\"}"));
	assert_non_null(strstr(hearth_err_msg(), "com1")); /* overlaps com1's ports */
	assert_null(fakevm_dev(vm, "uart8250", "u4", "{\"port\": 744, \"baud\": 9600}"));
	assert_non_null(strstr(hearth_err_msg(), "baud"));
	/* nothing half-added */
	assert_null(hearth_dev_find(&vm->vm, "u3"));
	assert_int_equal(iobus_read(&vm->vm.pio, 0x3f8 + LSR, 1), 0x60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(power_on_values, setup, teardown),
		cmocka_unit_test_setup_teardown(plain_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(divisor_latch, setup, teardown),
		cmocka_unit_test_setup_teardown(wide_access_reaches_consecutive_registers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(fifo_enable_and_iir_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(non_fifo_mode_holds_one_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(rx_trigger_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(fcr_clears_fifos, setup, teardown),
		cmocka_unit_test_setup_teardown(loopback_round_trip_and_overrun, setup, teardown),
		cmocka_unit_test_setup_teardown(loopback_msr_follows_mcr, setup, teardown),
		cmocka_unit_test_setup_teardown(modem_status_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(rda_interrupt_line, setup, teardown),
		cmocka_unit_test_setup_teardown(thre_interrupt_line, setup, teardown),
		cmocka_unit_test_setup_teardown(interrupt_priority, setup, teardown),
		cmocka_unit_test_setup_teardown(line_status_interrupt_line, setup, teardown),
		cmocka_unit_test_setup_teardown(out2_gates_the_line, setup, teardown),
		cmocka_unit_test_setup_teardown(tx_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(tx_backpressure_wraps_the_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(rx_flow_control, setup, teardown),
		cmocka_unit_test_setup_teardown(loopback_holds_line_input, setup, teardown),
		cmocka_unit_test_setup_teardown(loopback_holds_pending_output, setup, teardown),
		cmocka_unit_test_setup_teardown(no_backend_drains_into_nothing, setup_plain,
						teardown),
		cmocka_unit_test_setup_teardown(backend_removal_detaches, setup, teardown),
		cmocka_unit_test_setup_teardown(reset_restores_power_on, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(config_port_and_irq, setup, teardown),
		cmocka_unit_test_setup_teardown(config_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
