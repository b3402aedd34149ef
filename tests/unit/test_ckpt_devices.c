/* Save/load round trips of every device class with a checkpoint: a device is driven into a
 * state, its VM saved with the device walk, and a fresh VM of the same devices loaded from the
 * file must then behave the same, register by register. Also every load op's refusals. */
#include <dirent.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/char_common.h"
#include "fakevm.h"
#include "snapshot/devices.h"
#include "snapshot/store.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/hearth-ckdev-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rm_tree(dir);
	return 0;
}

static const char *in_dir(const char *name)
{
	static char buf[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

/* Save every device of a into dir/ck, load them into b: both walks must succeed. */
static void round_trip(struct fakevm *a, struct fakevm *b)
{
	struct hearth_ckpt_writer *w;
	struct hearth_ckpt_reader *r;
	const char *ck = in_dir("ck");

	assert_int_equal(hearth_ckpt_writer_new(ck, &w), 0);
	assert_int_equal(ckpt_save_devices(&a->vm, w), 0);
	assert_int_equal(hearth_ckpt_writer_finish(w), 0);
	hearth_ckpt_writer_free(w);
	assert_int_equal(hearth_ckpt_reader_open(ck, &r), 0);
	assert_int_equal(ckpt_load_devices(&b->vm, r), 0);
	assert_int_equal(hearth_ckpt_reader_check_all_consumed(r), 0);
	hearth_ckpt_reader_free(r);
	rm_tree(ck);
}

/* A hand-made device context for id (class cls) with version 1, filled by fill; loading it
 * into vm must fail with a message containing want. */
static void load_refused_with(struct fakevm *base, struct fakevm *vm, const char *id,
			      const char *cls, void (*fill)(struct hearth_ckpt *ck),
			      const char *want)
{
	struct hearth_ckpt_writer *w;
	struct hearth_ckpt_reader *r;
	struct hearth_ckpt *ck;
	char name[128];
	const char *path = in_dir("bad");

	snprintf(name, sizeof(name), "devices/%s", id);
	assert_int_equal(hearth_ckpt_writer_new(path, &w), 0);
	if (base) /* the other devices' contexts, as saved */
		assert_int_equal(ckpt_save_devices(&base->vm, w), 0);
	assert_int_equal(hearth_ckpt_open_ctx(w, name, 1, 0, &ck), 0);
	assert_int_equal(hearth_ckpt_put_str(ck, "_class", cls), 0);
	fill(ck);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	assert_int_equal(hearth_ckpt_writer_finish(w), 0);
	hearth_ckpt_writer_free(w);
	assert_int_equal(hearth_ckpt_reader_open(path, &r), 0);
	assert_int_equal(ckpt_load_devices(&vm->vm, r), -1);
	if (!strstr(hearth_err_msg(), want))
		fail_msg("'%s' does not mention '%s'", hearth_err_msg(), want);
	hearth_ckpt_reader_free(r);
	rm_tree(path);
}

static void load_refused(struct fakevm *vm, const char *id, const char *cls,
			 void (*fill)(struct hearth_ckpt *ck), const char *want)
{
	load_refused_with(NULL, vm, id, cls, fill, want);
}

static uint8_t inb(struct fakevm *f, uint16_t port)
{
	return (uint8_t)iobus_read(&f->vm.pio, port, 1);
}

static void outb(struct fakevm *f, uint16_t port, uint8_t v)
{
	iobus_write(&f->vm.pio, port, v, 1);
}

/* ---- uart8250 ---- */

#define COM 0x3f8

static void uart_registers_and_fifos(void **state)
{
	struct fakevm *a = fakevm_new(1 << 20), *b = fakevm_new(1 << 20);

	(void)state;
	assert_non_null(fakevm_dev(a, "uart8250", "com1", NULL));
	assert_non_null(fakevm_dev(b, "uart8250", "com1", NULL));
	outb(a, COM + 3, 0x83); /* DLAB */
	outb(a, COM + 0, 0x01);
	outb(a, COM + 1, 0x02);
	outb(a, COM + 3, 0x1b);
	outb(a, COM + 2, 0x81); /* FIFOs on, trigger 8 */
	outb(a, COM + 7, 0x5a);
	outb(a, COM + 4, 0x1b); /* loopback with OUT2, RTS, DTR */
	for (uint8_t c = 'a'; c < 'a' + 5; c++)
		outb(a, COM, c); /* to the RX FIFO through the loop */
	outb(a, COM + 1, 0x0f);	 /* every interrupt */
	round_trip(a, b);
	/* the same answers, register by register, including the side effects of reading */
	for (unsigned reg = 1; reg < 8; reg++)
		assert_int_equal(inb(b, COM + reg), inb(a, COM + reg));
	for (int i = 0; i < 6; i++) {
		assert_int_equal(inb(b, COM + 5), inb(a, COM + 5));
		assert_int_equal(inb(b, COM + 2), inb(a, COM + 2));
		assert_int_equal(inb(b, COM), inb(a, COM));
	}
	outb(a, COM + 3, 0x9b);
	outb(b, COM + 3, 0x9b);
	assert_int_equal(inb(b, COM), 0x01);
	assert_int_equal(inb(b, COM + 1), 0x02);
	/* the IRQ line level the interrupt controllers saw is kept, not driven again */
	assert_int_equal(b->irq_raises[4], 0);
	fakevm_free(a);
	fakevm_free(b);
}

static void put_uart_fields(struct hearth_ckpt *ck, size_t rx, uint8_t fcr)
{
	const uint8_t regs[9] = {0, fcr, 0, 0, 0x61, 0xb0, 0, 0x0c, 0}, fifo[17] = {0};

	assert_int_equal(hearth_ckpt_put_bytes(ck, "regs", regs, sizeof(regs)), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "rx", fifo, rx), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "tx", fifo, 0), 0);
	assert_int_equal(hearth_ckpt_put_bool(ck, "thre_pending", false), 0);
	assert_int_equal(hearth_ckpt_put_bool(ck, "irq_line", false), 0);
}

static void uart_fill_ok(struct hearth_ckpt *ck)
{
	put_uart_fields(ck, 3, 0x01);
}

static void uart_fill_fifo_off(struct hearth_ckpt *ck)
{
	put_uart_fields(ck, 3, 0x00);
}

static void uart_fill_overfull(struct hearth_ckpt *ck)
{
	put_uart_fields(ck, 17, 0x01);
}

static void uart_fill_version(struct hearth_ckpt *ck)
{
	put_uart_fields(ck, 0, 0x01);
	assert_int_equal(hearth_ckpt_set_version(ck, 9), 0);
}

static void uart_fill_missing(struct hearth_ckpt *ck)
{
	(void)ck;
}

static void uart_load_refusals(void **state)
{
	struct fakevm *f = fakevm_new(1 << 20);
	struct hearth_ckpt_writer *w;
	struct hearth_ckpt_reader *r;
	struct hearth_ckpt *ck;

	(void)state;
	assert_non_null(fakevm_dev(f, "uart8250", "com1", NULL));
	load_refused(f, "com1", "uart8250", uart_fill_overfull, "'rx'");
	load_refused(f, "com1", "uart8250", uart_fill_version, "version 9");
	load_refused(f, "com1", "uart8250", uart_fill_missing, "'regs'");
	/* three bytes need FIFOs: a 16450 has a one-byte holding register */
	load_refused(f, "com1", "uart8250", uart_fill_fifo_off, "'rx'");
	const char *path = in_dir("ok");
	assert_int_equal(hearth_ckpt_writer_new(path, &w), 0);
	assert_int_equal(hearth_ckpt_open_ctx(w, "devices/com1", 1, 0, &ck), 0);
	assert_int_equal(hearth_ckpt_put_str(ck, "_class", "uart8250"), 0);
	uart_fill_ok(ck);
	assert_int_equal(hearth_ckpt_close_ctx(ck), 0);
	assert_int_equal(hearth_ckpt_writer_finish(w), 0);
	hearth_ckpt_writer_free(w);
	assert_int_equal(hearth_ckpt_reader_open(path, &r), 0);
	assert_int_equal(ckpt_load_devices(&f->vm, r), 0);
	hearth_ckpt_reader_free(r);
	rm_tree(path);
	assert_int_equal(inb(f, COM + 2) & 0xc0, 0xc0); /* FIFOs on, as saved */
	assert_int_equal(inb(f, COM + 5), 0x61);
	for (int i = 0; i < 3; i++)
		assert_int_equal(inb(f, COM + 5) & 0x01, 0x01); /* three bytes to read */
	fakevm_free(f);
}

/* ---- the UART with a char backend: held output crosses the checkpoint exactly once ---- */

static void uart_and_socket_pending_output(void **state)
{
	enum { N = CHAR_OUT_CAP + 12 }; /* the backend holds CHAR_OUT_CAP, the UART the rest */
	static uint8_t got[N + 64];
	struct fakevm *a = fakevm_new(1 << 20), *b = fakevm_new(1 << 20);
	char json[256];
	size_t recvd = 0;

	(void)state;
	assert_non_null(fakevm_dev(a, "uart8250", "com1", NULL));
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"com1\", \"wait\": true}",
		 in_dir("s1"));
	assert_non_null(fakevm_dev(a, "char-socket", "serial0", json));
	outb(a, COM + 2, 0x01); /* FIFOs on */
	/* no client: the backend holds what it can, the UART's FIFO the rest (THRE clear) */
	for (unsigned i = 0; i < N; i++)
		outb(a, COM, (uint8_t)(i * 7));
	assert_int_equal(inb(a, COM + 5) & 0x20, 0);

	assert_non_null(fakevm_dev(b, "uart8250", "com1", NULL));
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"com1\", \"wait\": true}",
		 in_dir("s2"));
	assert_non_null(fakevm_dev(b, "char-socket", "serial0", json));
	round_trip(a, b);
	assert_int_equal(inb(b, COM + 5) & 0x20, 0); /* still held */

	int c = unix_connect(in_dir("s2"));
	for (int i = 0; i < 3000 && recvd < N; i++) {
		loop_run_once(b->vm.loop, 1);
		struct pollfd p = {.fd = c, .events = POLLIN};
		if (poll(&p, 1, 0) > 0) {
			ssize_t r = read(c, got + recvd, sizeof(got) - recvd);
			if (r > 0)
				recvd += (size_t)r;
		}
	}
	assert_int_equal(recvd, N);
	for (unsigned i = 0; i < N; i++)
		if (got[i] != (uint8_t)(i * 7))
			fail_msg("byte %u is %#x, expected %#x", i, got[i], (uint8_t)(i * 7));
	/* everything went: the transmitter is empty again and nothing more comes */
	loop_run_once(b->vm.loop, 10);
	assert_int_equal(inb(b, COM + 5) & 0x60, 0x60);
	struct pollfd p = {.fd = c, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 20), 0);
	close(c);
	fakevm_free(a);
	fakevm_free(b);
}

static void char_file_round_trip(void **state)
{
	struct fakevm *a = fakevm_new(1 << 20), *b = fakevm_new(1 << 20);
	char json[256], buf[16] = {0};
	FILE *fp;

	(void)state;
	assert_non_null(fakevm_dev(a, "uart8250", "com1", NULL));
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"com1\"}", in_dir("f"));
	assert_non_null(fakevm_dev(a, "char-file", "serial0", json));
	outb(a, COM, 'x');
	assert_non_null(fakevm_dev(b, "uart8250", "com1", NULL));
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"com1\", \"append\": true}",
		 in_dir("f"));
	assert_non_null(fakevm_dev(b, "char-file", "serial0", json));
	round_trip(a, b);
	outb(b, COM, 'y');
	fp = fopen(in_dir("f"), "r");
	assert_non_null(fp);
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	assert_string_equal(buf, "xy"); /* a file takes everything at once: nothing pending */
	fakevm_free(a);
	fakevm_free(b);
	unlink(in_dir("f"));
}

static void pending_too_long(struct hearth_ckpt *ck)
{
	static uint8_t big[CHAR_OUT_CAP + 1];

	assert_int_equal(hearth_ckpt_put_bytes(ck, "pending_out", big, sizeof(big)), 0);
}

static void char_backend_refusals(void **state)
{
	struct fakevm *f = fakevm_new(1 << 20);
	char json[256];

	(void)state;
	assert_non_null(fakevm_dev(f, "uart8250", "com1", NULL));
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"com1\"}", in_dir("f2"));
	assert_non_null(fakevm_dev(f, "char-file", "serial0", json));
	/* com1 has no context here, so the walk names it before any load op runs */
	load_refused(f, "serial0", "char-file", pending_too_long, "com1");
	struct fakevm *base = fakevm_new(1 << 20);
	assert_non_null(fakevm_dev(base, "uart8250", "com1", NULL));
	load_refused_with(base, f, "serial0", "char-file", pending_too_long, "'pending_out'");
	load_refused_with(base, f, "serial0", "char-socket", pending_too_long,
			  "is a char-file in this VM");
	fakevm_free(base);
	fakevm_free(f);
	unlink(in_dir("f2"));
}

/* ---- cmos ---- */

static uint8_t cmos_read(struct fakevm *f, uint8_t reg)
{
	outb(f, 0x70, reg);
	return inb(f, 0x71);
}

static void cmos_write(struct fakevm *f, uint8_t reg, uint8_t v)
{
	outb(f, 0x70, reg);
	outb(f, 0x71, v);
}

static void cmos_nvram_clock_index(void **state)
{
	struct fakevm *a = fakevm_new(64 << 20), *b = fakevm_new(64 << 20);

	(void)state;
	assert_non_null(fakevm_dev(a, "cmos", "cmos", NULL));
	assert_non_null(fakevm_dev(b, "cmos", "cmos", NULL));
	cmos_write(a, 0x40, 0x5a);
	cmos_write(a, 0x7f, 0xa5);
	cmos_write(a, 0x0b, 0x86); /* SET, binary, 24 h */
	cmos_write(a, 0x09, 77);   /* year 77 while the clock is held */
	cmos_write(a, 0x08, 3);
	outb(a, 0x70, 0x41); /* an index left selected */
	round_trip(a, b);
	assert_int_equal(inb(b, 0x71), inb(a, 0x71));
	assert_int_equal(cmos_read(b, 0x40), 0x5a);
	assert_int_equal(cmos_read(b, 0x7f), 0xa5);
	/* the held time, then the clock run from it: the offset went across */
	assert_int_equal(cmos_read(b, 0x09), 77);
	assert_int_equal(cmos_read(b, 0x08), 3);
	cmos_write(a, 0x0b, 0x06);
	cmos_write(b, 0x0b, 0x06);
	assert_int_equal(cmos_read(b, 0x09), cmos_read(a, 0x09));
	assert_int_equal(cmos_read(b, 0x08), cmos_read(a, 0x08));
	for (uint8_t reg = 0x10; reg < 0x40; reg++)
		assert_int_equal(cmos_read(b, reg), cmos_read(a, reg));
	fakevm_free(a);
	fakevm_free(b);
}

static void cmos_fill_bad_time(struct hearth_ckpt *ck)
{
	uint8_t nv[128] = {0};
	const uint32_t t[7] = {0, 0, 25, 1, 0, 100, 0}; /* hour 25 */

	assert_int_equal(hearth_ckpt_put_u8(ck, "index", 0), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "nvram", nv, sizeof(nv)), 0);
	assert_int_equal(hearth_ckpt_put_u64(ck, "clock_offset", 0), 0);
	assert_int_equal(hearth_ckpt_put_u32_array(ck, "frozen_time", t, 7), 0);
}

static void cmos_fill_short_nvram(struct hearth_ckpt *ck)
{
	uint8_t nv[100] = {0};

	assert_int_equal(hearth_ckpt_put_u8(ck, "index", 0), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "nvram", nv, sizeof(nv)), 0);
}

static void cmos_load_refusals(void **state)
{
	struct fakevm *f = fakevm_new(64 << 20);

	(void)state;
	assert_non_null(fakevm_dev(f, "cmos", "cmos", NULL));
	load_refused(f, "cmos", "cmos", cmos_fill_bad_time, "'frozen_time'");
	load_refused(f, "cmos", "cmos", cmos_fill_short_nvram, "'nvram'");
	fakevm_free(f);
}

/* ---- i8042, debug-exit, port80 ---- */

static void i8042_pending_command(void **state)
{
	struct fakevm *a = fakevm_new(1 << 20), *b = fakevm_new(1 << 20);

	(void)state;
	assert_non_null(fakevm_dev(a, "i8042", "i8042", NULL));
	assert_non_null(fakevm_dev(b, "i8042", "i8042", NULL));
	outb(a, 0x64, 0xaa); /* self-test: 0x55 waits in the output buffer */
	outb(a, 0x64, 0x60); /* the next data byte is the command byte */
	round_trip(a, b);
	assert_int_equal(inb(b, 0x64), inb(a, 0x64));
	assert_int_equal(inb(b, 0x60), 0x55);
	outb(b, 0x60, 0x31);
	outb(b, 0x64, 0x20);
	assert_int_equal(inb(b, 0x60), 0x31);
	assert_int_equal(b->stop_requested, 0);
	fakevm_free(a);
	fakevm_free(b);
}

static void i8042_fill_bad_next(struct hearth_ckpt *ck)
{
	assert_int_equal(hearth_ckpt_put_u8(ck, "cmd_byte", 0x45), 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "out_port", 3), 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "obuf", 0), 0);
	assert_int_equal(hearth_ckpt_put_bool(ck, "obuf_full", false), 0);
	assert_int_equal(hearth_ckpt_put_bool(ck, "last_was_cmd", false), 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "next", 7), 0);
}

static void i8042_load_refusals(void **state)
{
	struct fakevm *f = fakevm_new(1 << 20);

	(void)state;
	assert_non_null(fakevm_dev(f, "i8042", "i8042", NULL));
	load_refused(f, "i8042", "i8042", i8042_fill_bad_next, "'next'");
	fakevm_free(f);
}

static void debug_exit_and_port80(void **state)
{
	struct fakevm *a = fakevm_new(1 << 20), *b = fakevm_new(1 << 20);

	(void)state;
	assert_non_null(fakevm_dev(a, "debug-exit", "dx", NULL));
	assert_non_null(fakevm_dev(a, "port80", "port80", NULL));
	assert_non_null(fakevm_dev(b, "debug-exit", "dx", NULL));
	assert_non_null(fakevm_dev(b, "port80", "port80", NULL));
	outb(a, 0xf4, 3);
	assert_int_equal(a->stop_status, 7);
	outb(a, 0x80, 0x42);
	round_trip(a, b);
	assert_int_equal(inb(b, 0x80), 0x42);
	/* the first exit already happened: a later write does not change the status */
	outb(b, 0xf4, 1);
	assert_int_equal(b->stop_requested, 0);
	fakevm_free(a);
	fakevm_free(b);
}

static void wrong_type(struct hearth_ckpt *ck)
{
	assert_int_equal(hearth_ckpt_put_u32(ck, "last", 1), 0);
	assert_int_equal(hearth_ckpt_put_u32(ck, "exited", 1), 0);
}

static void extra_field(struct hearth_ckpt *ck)
{
	assert_int_equal(hearth_ckpt_put_u8(ck, "last", 1), 0);
	assert_int_equal(hearth_ckpt_put_bool(ck, "exited", true), 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "colour", 1), 0);
}

static void small_device_refusals(void **state)
{
	struct fakevm *f = fakevm_new(1 << 20);

	(void)state;
	assert_non_null(fakevm_dev(f, "port80", "port80", NULL));
	load_refused(f, "port80", "port80", wrong_type, "'last'");
	load_refused(f, "port80", "port80", extra_field, "unknown required field 'colour'");
	fakevm_free(f);
	f = fakevm_new(1 << 20);
	assert_non_null(fakevm_dev(f, "debug-exit", "dx", NULL));
	load_refused(f, "dx", "debug-exit", wrong_type, "'exited'");
	load_refused(f, "dx", "debug-exit", extra_field, "unknown required field 'colour'");
	fakevm_free(f);
}

/* ---- pci-host (and the PCI function core every PCI device saves through) ---- */

static uint32_t cfg_read32(struct fakevm *f, unsigned reg)
{
	iobus_write(&f->vm.pio, 0xcf8, 0x80000000u | reg, 4);
	return (uint32_t)iobus_read(&f->vm.pio, 0xcfc, 4);
}

static void pci_host_config_space(void **state)
{
	struct fakevm *a = fakevm_new(1 << 20), *b = fakevm_new(1 << 20);

	(void)state;
	assert_non_null(fakevm_dev(a, "pci-host", "pci0", NULL));
	assert_non_null(fakevm_dev(b, "pci-host", "pci0", NULL));
	iobus_write(&a->vm.pio, 0xcf8, 0x80000004u, 4);
	iobus_write(&a->vm.pio, 0xcfc, 0x0146, 2); /* command */
	iobus_write(&a->vm.pio, 0xcf8, 0x8000003cu, 4);
	iobus_write(&a->vm.pio, 0xcfc, 0x0b, 1);	/* interrupt line */
	iobus_write(&a->vm.pio, 0xcf8, 0x80000008u, 4); /* left selected */
	round_trip(a, b);
	assert_int_equal(iobus_read(&b->vm.pio, 0xcf8, 4), 0x80000008u);
	for (unsigned reg = 0; reg < 256; reg += 4)
		assert_int_equal(cfg_read32(b, reg), cfg_read32(a, reg));
	assert_int_equal(cfg_read32(b, 4) & 0xffff, cfg_read32(a, 4) & 0xffff);
	assert_int_not_equal(cfg_read32(b, 4) & 0xffff, 0);
	fakevm_free(a);
	fakevm_free(b);
}

static void pci_bad_vendor(struct hearth_ckpt *ck)
{
	uint8_t cfg[256] = {0x86, 0x80}; /* another vendor's function */

	assert_int_equal(hearth_ckpt_put_u32(ck, "cf8", 0), 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "rcr", 0), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "pci.cfg", cfg, sizeof(cfg)), 0);
	assert_int_equal(hearth_ckpt_put_bool(ck, "pci.intx", false), 0);
}

static void pci_short_cfg(struct hearth_ckpt *ck)
{
	uint8_t cfg[64] = {0};

	assert_int_equal(hearth_ckpt_put_u32(ck, "cf8", 0), 0);
	assert_int_equal(hearth_ckpt_put_u8(ck, "rcr", 0), 0);
	assert_int_equal(hearth_ckpt_put_bytes(ck, "pci.cfg", cfg, sizeof(cfg)), 0);
	assert_int_equal(hearth_ckpt_put_bool(ck, "pci.intx", false), 0);
}

static void pci_host_load_refusals(void **state)
{
	struct fakevm *f = fakevm_new(1 << 20);

	(void)state;
	assert_non_null(fakevm_dev(f, "pci-host", "pci0", NULL));
	load_refused(f, "pci0", "pci-host", pci_bad_vendor, "read-only byte 0");
	load_refused(f, "pci0", "pci-host", pci_short_cfg, "'pci.cfg'");
	fakevm_free(f);
}

/* ---- testdev ---- */

static void testdev_windows_and_msr(void **state)
{
	struct fakevm *a = fakevm_new(1 << 20), *b = fakevm_new(1 << 20);
	uint64_t v = 0;

	(void)state;
	assert_non_null(fakevm_dev(a, "testdev", "t", NULL));
	assert_non_null(fakevm_dev(b, "testdev", "t", NULL));
	iobus_write(&a->vm.pio, 0x700, 0x12345678, 4);
	iobus_write(&a->vm.mmio, 0xd0000000, 0xabcd, 2);
	iobus_write(&a->vm.mmio, 0xd0000000, 0xef, 1);
	assert_int_equal(hearth_msr_write(&a->vm, 0x4b564e00u, 0x1122334455667788ull), 1);
	round_trip(a, b);
	assert_int_equal(iobus_read(&b->vm.pio, 0x700, 4), 0x12345678);
	assert_int_equal(iobus_read(&b->vm.pio, 0x704, 4), 1);
	assert_int_equal(iobus_read(&b->vm.mmio, 0xd0000000, 4), 0xabef);
	assert_int_equal(iobus_read(&b->vm.mmio, 0xd0000004, 4), 2);
	assert_int_equal(hearth_msr_read(&b->vm, 0x4b564e00u, &v), 1);
	assert_int_equal(v, 0x1122334455667788ull);
	fakevm_free(a);
	fakevm_free(b);
}

static void testdev_short_windows(struct hearth_ckpt *ck)
{
	const uint32_t regs[3] = {0};

	assert_int_equal(hearth_ckpt_put_u32_array(ck, "windows", regs, 3), 0);
	assert_int_equal(hearth_ckpt_put_u64(ck, "msr", 0), 0);
}

static void testdev_load_refusals(void **state)
{
	struct fakevm *f = fakevm_new(1 << 20);

	(void)state;
	assert_non_null(fakevm_dev(f, "testdev", "t", NULL));
	load_refused(f, "t", "testdev", testdev_short_windows, "'windows'");
	fakevm_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(uart_registers_and_fifos, setup, teardown),
		cmocka_unit_test_setup_teardown(uart_load_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(uart_and_socket_pending_output, setup, teardown),
		cmocka_unit_test_setup_teardown(char_file_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(char_backend_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(cmos_nvram_clock_index, setup, teardown),
		cmocka_unit_test_setup_teardown(cmos_load_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(i8042_pending_command, setup, teardown),
		cmocka_unit_test_setup_teardown(i8042_load_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(debug_exit_and_port80, setup, teardown),
		cmocka_unit_test_setup_teardown(small_device_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(pci_host_config_space, setup, teardown),
		cmocka_unit_test_setup_teardown(pci_host_load_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(testdev_windows_and_msr, setup, teardown),
		cmocka_unit_test_setup_teardown(testdev_load_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
