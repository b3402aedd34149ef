/*
 * COM1 console.  Every port access is a VM exit (~25 us under PVM), so the
 * driver polls LSR only when its count of free FIFO slots runs out, and then
 * writes a whole FIFO's worth (16 bytes) per poll.
 */
#include "testos.h"

#define THR 0
#define IER 1
#define FCR 2
#define IIR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define LSR_THRE 0x20

static unsigned tx_room, fifo_size = 16;

/* Only what is needed before the first byte: FIFO on and cleared. */
void serial_early_init(void)
{
	outb(COM1 + FCR, 0x07);
	tx_room = 16;
}

/* Called after the banner, so start-up latency does not pay for it. */
void serial_init(void)
{
	outb(COM1 + LCR, 0x03);
	outb(COM1 + IER, 0x00);
	outb(COM1 + MCR, 0x03);
	fifo_size = (inb(COM1 + IIR) & 0xC0) == 0xC0 ? 16 : 1;
	if (tx_room > fifo_size)
		tx_room = fifo_size;
}

static void wait_thre(void)
{
	/* Bounded: a UART that never drains must not hang the test OS. */
	uint64_t end = rdtsc() + 200000000ull;
	while (!(inb(COM1 + LSR) & LSR_THRE) && rdtsc() < end)
		cpu_relax();
	tx_room = fifo_size;
}

void serial_write(const char *s, size_t n)
{
	while (n--) {
		if (!tx_room)
			wait_thre();
		outb(COM1 + THR, (uint8_t)*s++);
		tx_room--;
	}
}

void kprintf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	serial_write(buf, (size_t)n);
}
