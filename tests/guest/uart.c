/*
 * 16550A register behaviour and interrupt delivery on COM1.  The console is
 * the same UART, so the tests save nothing to the screen while they run (the
 * TAP harness prints afterwards) and leave the UART as serial_init() wants it.
 */
#include "testos.h"

#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define LSR_DR 0x01

#define UART_VECTOR 0x24

static uint8_t rd(unsigned reg)
{
	return inb(COM1 + reg);
}

static void wr(unsigned reg, uint8_t v)
{
	outb(COM1 + reg, v);
}

static void drain_rx(void)
{
	for (int i = 0; i < 64 && (rd(LSR) & LSR_DR); i++)
		rd(RBR);
}

static bool wait_dr(void)
{
	uint64_t end = deadline_ms(50);
	while (!(rd(LSR) & LSR_DR))
		if (expired(end))
			return false;
	return true;
}

static void restore(void)
{
	wr(IER, 0);
	wr(MCR, MCR_DTR | MCR_RTS);
	wr(LCR, 0x03);
	drain_rx();
	serial_early_init();
	serial_init();
}

const char *uart_type(void)
{
	wr(FCR, 0x01); /* enable without clearing: the console may have bytes queued */
	switch (rd(IIR) >> 6) {
	case 3:
		return "16550A";
	case 2:
		return "16550 (unusable FIFO)";
	case 0:
		break;
	default:
		return "unknown";
	}
	wr(SCR, 0x5A);
	return rd(SCR) == 0x5A ? "16450" : "8250";
}

static void check_rw(unsigned reg, uint8_t v, const char *what)
{
	wr(reg, v);
	uint8_t got = rd(reg);
	tap_check(got == v, "%s: wrote 0x%02x, read 0x%02x", what, v, got);
}

static void test_divisor(void)
{
	wr(IER, 0);
	wr(LCR, 0x83);
	wr(DLL, 0x0C);
	wr(DLM, 0x5A);
	uint8_t dll = rd(DLL), dlm = rd(DLM);
	tap_check(dll == 0x0C && dlm == 0x5A, "divisor latch: wrote 0x5A0C, read 0x%02x%02x", dlm,
		  dll);
	wr(DLL, 0x01);
	wr(DLM, 0x00);
	wr(LCR, 0x03);
	uint8_t ier = rd(IER);
	tap_check(ier == 0, "IER 0x%02x after DLM writes with DLAB set (should be untouched 0)",
		  ier);
	uint8_t lcr = rd(LCR);
	tap_check(lcr == 0x03, "LCR: wrote 0x03, read 0x%02x", lcr);
	check_rw(LCR, 0x1B, "LCR (8E1)");
	wr(LCR, 0x03);
}

static void test_fifo(void)
{
	wr(FCR, 0x00);
	uint8_t off = rd(IIR);
	wr(FCR, 0x07);
	uint8_t on = rd(IIR);
	tap_check((off & 0xC0) == 0, "IIR 0x%02x with FIFOs disabled: bits 7:6 should be 00", off);
	tap_check((on & 0xC0) == 0xC0, "IIR 0x%02x with FIFOs enabled: bits 7:6 should be 11", on);
}

static void test_msr_loopback(void)
{
	static const struct {
		uint8_t mcr, msr;
	} map[] = {
		{MCR_LOOP, 0x00},
		{MCR_LOOP | MCR_DTR, 0x20},
		{MCR_LOOP | MCR_RTS, 0x10},
		{MCR_LOOP | MCR_OUT1, 0x40},
		{MCR_LOOP | MCR_OUT2, 0x80},
		{MCR_LOOP | 0x0F, 0xF0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		wr(MCR, map[i].mcr);
		uint8_t msr = rd(MSR) & 0xF0;
		tap_check(msr == map[i].msr, "loopback MCR 0x%02x: MSR status 0x%02x, want 0x%02x",
			  map[i].mcr, msr, map[i].msr);
	}
}

static void test_data_loopback(void)
{
	wr(MCR, MCR_LOOP | MCR_DTR | MCR_RTS);
	drain_rx();
	tap_check(!(rd(LSR) & LSR_DR), "LSR.DR still set after draining");
	wr(THR, 0x55);
	if (tap_check(wait_dr(), "loopback: byte never arrived (LSR.DR clear)")) {
		uint8_t v = rd(RBR);
		tap_check(v == 0x55, "loopback: sent 0x55, received 0x%02x", v);
		tap_check(!(rd(LSR) & LSR_DR), "LSR.DR still set after reading the only byte");
	}

	for (int i = 0; i < 16; i++)
		wr(THR, (uint8_t)(0xA0 + i));
	int got = 0;
	for (; got < 16 && wait_dr(); got++) {
		uint8_t v = rd(RBR);
		if (!tap_check(v == 0xA0 + got, "burst byte %d: got 0x%02x, want 0x%02x", got, v,
			       0xA0 + got))
			break;
	}
	tap_check(got == 16, "burst: %d of 16 bytes came back", got);
	tap_check(!(rd(LSR) & LSR_DR), "LSR.DR set after the 16-byte burst was read");
}

void test_uart(void)
{
	check_rw(SCR, 0x5A, "SCR");
	check_rw(SCR, 0xA5, "SCR");
	test_divisor();
	wr(IER, 0xFF);
	uint8_t ier = rd(IER);
	wr(IER, 0);
	tap_check(ier == 0x0F, "IER: wrote 0xFF, read 0x%02x (want 0x0F)", ier);
	test_fifo();
	test_msr_loopback();
	test_data_loopback();
	restore();
}

/* Wait until irq_count[UART_VECTOR] exceeds base; false on timeout. */
static bool wait_irq(uint64_t base)
{
	uint64_t end = deadline_ms(500);
	while (irq_count[UART_VECTOR] <= base)
		if (expired(end))
			return false;
	return true;
}

void test_uart_irq(void)
{
	const struct mp_info *mp = mp_get();
	uint32_t ioapic = mp->found && mp->nr_ioapics ? mp->ioapic_addr : IOAPIC_DEFAULT;
	int pin = mp_isa_pin(4);
	uint8_t self = lapic_id();
	uint32_t ver = ioapic_read(ioapic, 1);
	unsigned pins = ((ver >> 16) & 0xFF) + 1;
	tap_note(
		"IOAPIC 0x%x version 0x%x (%u pins), ISA IRQ 4 -> pin %d%s, vector 0x%x -> apic %u",
		ioapic, ver & 0xFF, pins, pin, mp->isa_irq_pin[4] < 0 ? " (default)" : "",
		UART_VECTOR, self);
	if (!tap_check(ver != 0xFFFFFFFF && (unsigned)pin < pins, "no usable IOAPIC pin"))
		return;

	lapic_enable();
	wr(IER, 0);
	wr(MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
	rd(IIR);
	ioapic_route(ioapic, pin, UART_VECTOR, self, false);
	uint64_t start = irq_count[UART_VECTOR];
	unsigned expect = 0;

	/* THRE: THR is empty, so enabling ETBEI raises the line once. */
	for (int round = 0; round < 3; round++) {
		wr(IER, 0);
		wr(IER, 0x02);
		bool got = wait_irq(start + expect);
		expect++;
		if (!tap_check(got, "THRE round %d: no interrupt within 500 ms", round))
			break;
		uint8_t iir = rd(IIR);
		uint8_t iir2 = rd(IIR);
		tap_check((iir & 0x0F) == 0x02, "THRE round %d: IIR 0x%02x, want source 0x2", round,
			  iir);
		tap_check((iir2 & 0x0F) == 0x01,
			  "THRE round %d: IIR 0x%02x after reading it once, "
			  "want 0x1 (none pending)",
			  round, iir2);
	}

	/* Received data, in loopback so nothing reaches the console. */
	wr(IER, 0);
	wr(MCR, MCR_LOOP | MCR_OUT2 | MCR_DTR | MCR_RTS);
	drain_rx();
	wr(IER, 0x01);
	wr(THR, 0x42);
	bool got = wait_irq(start + expect);
	expect++;
	if (tap_check(got, "RDA (loopback): no interrupt within 500 ms")) {
		uint8_t iir = rd(IIR);
		tap_check((iir & 0x0F) == 0x04, "RDA: IIR 0x%02x, want source 0x4", iir);
		uint8_t v = rd(RBR);
		tap_check(v == 0x42, "RDA: read 0x%02x, want 0x42", v);
		iir = rd(IIR);
		tap_check((iir & 0x0F) == 0x01, "RDA: IIR 0x%02x after reading RBR, want 0x1", iir);
	}

	/* Sources disabled: nothing may arrive. */
	wr(IER, 0);
	wr(THR, 0x43);
	delay_us(10000);
	drain_rx();
	delay_us(10000);
	uint64_t total = irq_count[UART_VECTOR] - start;
	tap_check(total == expect, "%lu interrupts counted, want exactly %u (edge-triggered)",
		  total, expect);
	ioapic_route(ioapic, pin, UART_VECTOR, self, true);
	restore();
	tap_note("%lu interrupts on vector 0x%x", total, UART_VECTOR);
}
