/* The PC's small devices (cmos, i8042, debug-exit, port80) and the test device, driven
 * through the buses as a guest would, including every value at every port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fakevm.h"

#define KiB 1024ull
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)

static struct fakevm *f;

static int setup(void **state)
{
	(void)state;
	f = fakevm_new(64 * KiB);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fakevm_free(f);
	return 0;
}

static struct hearth_dev *make(const char *cls, const char *id, const char *json)
{
	struct hearth_dev *d = fakevm_dev(f, cls, id, json);
	if (!d)
		fail_msg("%s '%s': %s", cls, id, hearth_err_msg());
	return d;
}

static void make_fails(const char *cls, const char *json, const char *a, const char *b)
{
	hearth_err_clear();
	if (fakevm_dev(f, cls, "bad", json))
		fail_msg("%s %s was accepted", cls, json ? json : "");
	const char *m = hearth_err_msg();
	if (!strstr(m, a) || (b && !strstr(m, b)))
		fail_msg("error '%s' lacks '%s' / '%s'", m, a, b ? b : "");
	assert_null(hearth_dev_find(&f->vm, "bad"));
}

static uint64_t inb(uint16_t port)
{
	return iobus_read(&f->vm.pio, port, 1);
}

static void outb(uint16_t port, uint8_t v)
{
	iobus_write(&f->vm.pio, port, v, 1);
}

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* ================= cmos ================= */

static uint8_t cmos_get(uint8_t reg)
{
	outb(0x70, reg);
	return (uint8_t)inb(0x71);
}

static void cmos_set(uint8_t reg, uint8_t v)
{
	outb(0x70, reg);
	outb(0x71, v);
}

static unsigned bcd(unsigned v)
{
	return (v / 10) << 4 | v % 10;
}

static unsigned from_bcd(unsigned v)
{
	return (v >> 4) * 10 + (v & 0xf);
}

struct clock {
	unsigned sec, min, hour, wday, mday, mon, year, century;
};

static void read_clock(struct clock *c)
{
	c->sec = cmos_get(0x00);
	c->min = cmos_get(0x02);
	c->hour = cmos_get(0x04);
	c->wday = cmos_get(0x06);
	c->mday = cmos_get(0x07);
	c->mon = cmos_get(0x08);
	c->year = cmos_get(0x09);
	c->century = cmos_get(0x32);
}

/* What the registers should say for time t (already in the guest's zone), with the
 * encoding of reg B. */
static void expect_clock(time_t t, uint8_t regb, struct clock *c)
{
	struct tm tm;
	unsigned (*enc)(unsigned) = regb & 0x04 ? NULL : bcd;
	gmtime_r(&t, &tm);
	unsigned hour = (unsigned)tm.tm_hour;
	unsigned pm = 0;
	if (!(regb & 0x02)) {
		pm = hour >= 12 ? 0x80 : 0;
		hour = hour % 12 ? hour % 12 : 12;
	}
#define E(v) (enc ? enc(v) : (v))
	c->sec = E((unsigned)tm.tm_sec);
	c->min = E((unsigned)tm.tm_min);
	c->hour = E(hour) | pm;
	c->wday = E((unsigned)tm.tm_wday + 1);
	c->mday = E((unsigned)tm.tm_mday);
	c->mon = E((unsigned)tm.tm_mon + 1);
	c->year = E((unsigned)(tm.tm_year + 1900) % 100);
	c->century = E((unsigned)(tm.tm_year + 1900) / 100);
#undef E
}

/* Compare the clock with host time plus delta, retrying across a second boundary. */
static void check_clock(long delta)
{
	uint8_t regb = cmos_get(0x0b);

	for (int tries = 0; tries < 5; tries++) {
		struct clock got, want;
		time_t before = time(NULL);
		read_clock(&got);
		if (time(NULL) != before)
			continue;
		expect_clock(before + delta, regb, &want);
		assert_memory_equal(&got, &want, sizeof(got));
		return;
	}
	fail_msg("the clock never held still for a second");
}

static void cmos_reads_host_time(void **state)
{
	(void)state;
	make("cmos", "rtc", NULL);
	assert_int_equal(cmos_get(0x0b), 0x02); /* 24-hour, BCD */
	check_clock(0);
	cmos_set(0x0b, 0x06); /* binary */
	check_clock(0);
	cmos_set(0x0b, 0x00); /* 12-hour BCD */
	check_clock(0);
	cmos_set(0x0b, 0x04); /* 12-hour binary */
	check_clock(0);
}

static void cmos_localtime_base(void **state)
{
	const char *old = getenv("TZ");
	char *saved = old ? strdup(old) : NULL;

	(void)state;
	setenv("TZ", "XXX-5", 1); /* five hours east of UTC, no daylight saving */
	tzset();
	make("cmos", "rtc", "{\"base\": \"localtime\"}");
	check_clock(5 * 3600);
	if (saved) {
		setenv("TZ", saved, 1);
		free(saved);
	} else {
		unsetenv("TZ");
	}
	tzset();
}

static void cmos_bad_base(void **state)
{
	(void)state;
	make_fails("cmos", "{\"base\": \"mars\"}", "key 'base'", "'mars'");
	make_fails("cmos", "{\"base\": 1}", "'base'", "expected a string");
	make_fails("cmos", "{\"bogus\": 1}", "unknown key 'bogus'", NULL);
}

/* The guest sets the clock with SET held, as Linux does; it then runs from there. */
static void cmos_guest_sets_clock(void **state)
{
	struct clock c;

	(void)state;
	make("cmos", "rtc", NULL);
	cmos_set(0x0b, 0x82); /* SET, 24h, BCD */
	cmos_set(0x00, 0x00);
	cmos_set(0x02, 0x30);
	cmos_set(0x04, 0x12);
	cmos_set(0x07, 0x15);
	cmos_set(0x08, 0x06);
	cmos_set(0x09, 0x99);
	cmos_set(0x32, 0x20);
	/* frozen: reads give what was written */
	read_clock(&c);
	assert_int_equal(c.sec, 0x00);
	assert_int_equal(c.min, 0x30);
	assert_int_equal(c.hour, 0x12);
	assert_int_equal(c.mday, 0x15);
	assert_int_equal(c.mon, 0x06);
	assert_int_equal(c.year, 0x99);
	assert_int_equal(c.century, 0x20);
	cmos_set(0x0b, 0x02); /* release */
	read_clock(&c);
	assert_int_equal(c.century, 0x20);
	assert_int_equal(c.year, 0x99);
	assert_int_equal(c.mon, 0x06);
	assert_int_equal(c.mday, 0x15);
	assert_int_equal(c.wday, 0x02); /* 2099-06-15 is a Monday */
	assert_int_equal(c.hour, 0x12);
	assert_int_equal(c.min, 0x30);
	assert_true(from_bcd(c.sec) <= 5);

	/* one field while running: the others stay */
	cmos_set(0x09, 0x42);
	read_clock(&c);
	assert_int_equal(c.year, 0x42);
	assert_int_equal(c.century, 0x20);
	assert_int_equal(c.mon, 0x06);
	assert_int_equal(c.min, 0x30);
	cmos_set(0x32, 0x19);
	assert_int_equal(cmos_get(0x09), 0x42);
	assert_int_equal(cmos_get(0x32), 0x19);
	/* the day of the week follows the date while running */
	cmos_set(0x06, 0x07);
	assert_int_equal(cmos_get(0x06), 0x02); /* 1942-06-15 was a Monday too */
}

static void cmos_frozen_clock_holds(void **state)
{
	struct clock a, b;

	(void)state;
	make("cmos", "rtc", NULL);
	cmos_set(0x0b, 0x82);
	read_clock(&a);
	struct timespec ts = {1, 100000000};
	nanosleep(&ts, NULL);
	read_clock(&b);
	assert_memory_equal(&a, &b, sizeof(a));
	/* the day of the week can be written while frozen */
	cmos_set(0x06, 0x05);
	assert_int_equal(cmos_get(0x06), 0x05);
	/* and release resumes from the frozen time, not from host time */
	cmos_set(0x09, bcd((from_bcd(a.year) + 50) % 100));
	cmos_set(0x0b, 0x02);
	assert_int_equal(cmos_get(0x09), bcd((from_bcd(a.year) + 50) % 100));
}

static void cmos_12h_and_binary_writes(void **state)
{
	(void)state;
	make("cmos", "rtc", NULL);
	cmos_set(0x0b, 0x84);	   /* SET, binary, 12-hour */
	cmos_set(0x04, 0x80 | 11); /* 11 PM */
	cmos_set(0x0b, 0x86);	   /* 24-hour view of the same */
	assert_int_equal(cmos_get(0x04), 23);
	cmos_set(0x0b, 0x84);
	cmos_set(0x04, 12); /* 12 AM is midnight */
	cmos_set(0x0b, 0x86);
	assert_int_equal(cmos_get(0x04), 0);
	cmos_set(0x0b, 0x84);
	cmos_set(0x04, 0x80 | 12); /* 12 PM is noon */
	assert_int_equal(cmos_get(0x04), 0x80 | 12);
	cmos_set(0x0b, 0x80); /* BCD 12-hour */
	assert_int_equal(cmos_get(0x04), 0x80 | 0x12);
	cmos_set(0x0b, 0x82);
	assert_int_equal(cmos_get(0x04), 0x12);
	cmos_set(0x04, 0x00);
	assert_int_equal(cmos_get(0x04), 0x00);
	cmos_set(0x0b, 0x80);
	assert_int_equal(cmos_get(0x04), 0x12); /* midnight in 12-hour form, AM */
}

static void cmos_invalid_time_ignored(void **state)
{
	struct clock before, after;
	/* {register, reg B, value}: impossible in that mode */
	static const uint8_t bad[][3] = {
		{0x00, 0x82, 0x60}, {0x00, 0x82, 0x5a}, {0x00, 0x86, 60},   {0x02, 0x82, 0x6f},
		{0x04, 0x82, 0x24}, {0x04, 0x86, 24},	{0x04, 0x80, 0x13}, {0x04, 0x80, 0x00},
		{0x04, 0x80, 0x80}, {0x04, 0x84, 13},	{0x07, 0x82, 0x00}, {0x07, 0x82, 0x32},
		{0x08, 0x82, 0x00}, {0x08, 0x82, 0x13}, {0x08, 0x86, 13},   {0x09, 0x82, 0xa0},
		{0x09, 0x86, 100},  {0x32, 0x82, 0xff}, {0x06, 0x82, 0x08}, {0x06, 0x82, 0x00},
	};

	(void)state;
	make("cmos", "rtc", NULL);
	cmos_set(0x0b, 0x82);
	read_clock(&before);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cmos_set(0x0b, bad[i][1]);
		cmos_set(bad[i][0], bad[i][2]);
	}
	cmos_set(0x0b, 0x82);
	read_clock(&after);
	assert_memory_equal(&before, &after, sizeof(before));
}

static void cmos_control_registers(void **state)
{
	(void)state;
	make("cmos", "rtc", NULL);
	assert_int_equal(cmos_get(0x0a), 0x26);
	cmos_set(0x0a, 0xff);
	assert_int_equal(cmos_get(0x0a), 0x7f); /* UIP is read-only and never set */
	cmos_set(0x0a, 0x20);
	assert_int_equal(cmos_get(0x0a), 0x20);
	assert_int_equal(cmos_get(0x0d), 0x80);
	cmos_set(0x0d, 0x00);
	assert_int_equal(cmos_get(0x0d), 0x80);
	assert_int_equal(cmos_get(0x0c), 0x00);
	cmos_set(0x0c, 0xff);
	assert_int_equal(cmos_get(0x0c), 0x00);
	/* SET clears UIE; other bits stick */
	cmos_set(0x0b, 0x7e);
	assert_int_equal(cmos_get(0x0b), 0x7e);
	cmos_set(0x0b, 0xfe);
	assert_int_equal(cmos_get(0x0b), 0xee);
	/* a reset silences interrupts, keeps the mode */
	cmos_set(0x0b, 0x76);
	hearth_devs_reset(&f->vm);
	assert_int_equal(cmos_get(0x0b), 0x06);
	assert_int_equal(f->irq_raises[8], 0);
}

static void cmos_index_and_nvram(void **state)
{
	(void)state;
	make("cmos", "rtc", NULL);
	outb(0x70, 0x80 | 0x40); /* NMI off, index 0x40 */
	assert_int_equal(inb(0x70), 0x40);
	outb(0x71, 0xa5);
	outb(0x70, 0x40);
	assert_int_equal(inb(0x71), 0xa5);
	outb(0x70, 0xff); /* index 0x7f */
	assert_int_equal(inb(0x70), 0x7f);
	outb(0x71, 0x3c);
	outb(0x70, 0x7f);
	assert_int_equal(inb(0x71), 0x3c);
	for (unsigned i = 0x0e; i < 0x80; i++) {
		if (i == 0x32)
			continue;
		cmos_set((uint8_t)i, (uint8_t)(i ^ 0x5a));
	}
	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != 0x32)
			assert_int_equal(cmos_get((uint8_t)(i | 0x80)), i ^ 0x5a);
	/* a 16-bit access is the index byte then the data byte */
	iobus_write(&f->vm.pio, 0x70, 0x7740, 2);
	assert_int_equal(cmos_get(0x40), 0x77);
	outb(0x70, 0x41);
	assert_int_equal(iobus_read(&f->vm.pio, 0x70, 2), 0x41 | (uint64_t)(0x41 ^ 0x5a) << 8);
	/* wider than the two ports: unhooked */
	assert_int_equal(iobus_read(&f->vm.pio, 0x70, 4), 0xffffffff);
	assert_int_equal(iobus_read(&f->vm.pio, 0x71, 2), 0xffff);
}

static unsigned get16(uint8_t reg)
{
	return cmos_get(reg) | cmos_get((uint8_t)(reg + 1)) << 8;
}

static void check_memory_bytes(uint64_t ram, unsigned ext, unsigned above16, unsigned high)
{
	f->vm.ram_size = ram; /* what the device reads at init */
	struct hearth_dev *d = make("cmos", "rtc", NULL);
	assert_int_equal(get16(0x15), 640);
	assert_int_equal(get16(0x17), ext);
	assert_int_equal(get16(0x30), ext);
	assert_int_equal(get16(0x34), above16);
	assert_int_equal(cmos_get(0x5b) | cmos_get(0x5c) << 8 | cmos_get(0x5d) << 16, high);
	unsigned sum = 0;
	for (uint8_t i = 0x10; i < 0x2e; i++)
		sum += cmos_get(i);
	assert_int_equal(cmos_get(0x2e) << 8 | cmos_get(0x2f), sum);
	assert_int_equal(hearth_dev_remove(d), 0);
}

static void cmos_memory_size(void **state)
{
	(void)state;
	check_memory_bytes(512 * KiB, 0, 0, 0);
	check_memory_bytes(1 * MiB, 0, 0, 0);
	check_memory_bytes(8 * MiB, 7 * 1024, 0, 0);
	check_memory_bytes(16 * MiB, 15 * 1024, 0, 0);
	check_memory_bytes(64 * MiB, 63 * 1024, 48 * 16, 0);
	check_memory_bytes(65 * MiB, 0xffff, 49 * 16, 0);
	check_memory_bytes(128 * MiB, 0xffff, 112 * 16, 0);
	check_memory_bytes(3 * GiB, 0xffff, (3 * 1024 - 16) * 16, 0);
	check_memory_bytes(5 * GiB, 0xffff, (3 * 1024 - 16) * 16, 2 * 1024 * 16);
	check_memory_bytes(3 * GiB + 64 * KiB, 0xffff, (3 * 1024 - 16) * 16, 1);
	check_memory_bytes(3 * GiB + 1024 * GiB, 0xffff, (3 * 1024 - 16) * 16, 0xffffff);
}

static void cmos_hostile(void **state)
{
	(void)state;
	make("cmos", "rtc", NULL);
	for (unsigned idx = 0; idx < 256; idx++) {
		for (unsigned v = 0; v < 256; v++) {
			outb(0x70, (uint8_t)idx);
			outb(0x71, (uint8_t)v);
			(void)inb(0x71);
		}
	}
	for (int i = 0; i < 20000; i++) {
		static const unsigned sz[] = {1, 2, 4, 8};
		uint16_t port = (uint16_t)(0x6e + rnd() % 6);
		unsigned s = sz[rnd() % 4];
		if (rnd() & 1)
			iobus_write(&f->vm.pio, port, rnd(), s);
		else
			(void)iobus_read(&f->vm.pio, port, s);
	}
	/* still a working device */
	assert_int_equal(cmos_get(0x0d), 0x80);
	cmos_set(0x0b, 0x02);
	cmos_set(0x50, 0x12);
	assert_int_equal(cmos_get(0x50), 0x12);
	hearth_devs_reset(&f->vm);
	assert_int_equal(f->irq_raises[8], 0);
}

/* ================= i8042 ================= */

static uint8_t kbc_status(void)
{
	return (uint8_t)inb(0x64);
}

static void kbc_cmd(uint8_t c)
{
	outb(0x64, c);
}

static void i8042_status_and_commands(void **state)
{
	(void)state;
	make("i8042", "kbc", NULL);
	uint8_t st = kbc_status();
	assert_int_equal(st & 0x01, 0);	   /* output buffer empty */
	assert_int_equal(st & 0x02, 0);	   /* input buffer empty */
	assert_int_equal(st & 0x04, 0x04); /* system flag */
	assert_int_equal(inb(0x60), 0);	   /* nothing pending */

	kbc_cmd(0xaa);
	assert_int_equal(kbc_status() & 0x09, 0x09); /* OBF, last write was a command */
	assert_int_equal(inb(0x60), 0x55);
	assert_int_equal(kbc_status() & 0x01, 0);
	assert_int_equal(inb(0x60), 0);

	kbc_cmd(0xab);
	assert_int_equal(kbc_status() & 0x01, 1);
	assert_int_equal(inb(0x60), 0x00);

	kbc_cmd(0x20);
	assert_int_equal(inb(0x60), 0x45);
	kbc_cmd(0x60);
	outb(0x60, 0x20);			  /* system flag off, interrupts off */
	assert_int_equal(kbc_status() & 0x08, 0); /* last write was data */
	kbc_cmd(0x20);
	assert_int_equal(inb(0x60), 0x20);
	assert_int_equal(kbc_status() & 0x04, 0);

	kbc_cmd(0xad);
	kbc_cmd(0x20);
	assert_int_equal(inb(0x60), 0x30);
	kbc_cmd(0xae);
	kbc_cmd(0x20);
	assert_int_equal(inb(0x60), 0x20);
	kbc_cmd(0xa8); /* aux port on: bit 5 clear */
	kbc_cmd(0x20);
	assert_int_equal(inb(0x60), 0x00);
	kbc_cmd(0xa7);
	kbc_cmd(0x20);
	assert_int_equal(inb(0x60), 0x20);

	kbc_cmd(0xd0);
	assert_int_equal(inb(0x60), 0x03);
	/* a byte for the keyboard: there is none, nothing comes back */
	outb(0x60, 0xff);
	assert_int_equal(kbc_status() & 0x01, 0);
	assert_int_equal(f->stop_requested, 0);

	/* reset restores the command byte */
	hearth_devs_reset(&f->vm);
	kbc_cmd(0x20);
	assert_int_equal(inb(0x60), 0x45);
	/* 0x61..0x63 are not the controller's, nor wide accesses */
	assert_int_equal(inb(0x61), 0xff);
	assert_int_equal(iobus_read(&f->vm.pio, 0x60, 2), 0xffff);
	assert_int_equal(iobus_read(&f->vm.pio, 0x64, 4), 0xffffffff);
}

static void i8042_reset_line(void **state)
{
	(void)state;
	make("i8042", "kbc", NULL);
	kbc_cmd(0xfe);
	assert_int_equal(f->stop_requested, 1);
	assert_int_equal(f->stop_status, 0);
	kbc_cmd(0xff); /* pulses nothing */
	kbc_cmd(0xfd); /* pulses bit 1 only */
	assert_int_equal(f->stop_requested, 1);
	kbc_cmd(0xf0); /* pulses all four, reset included */
	assert_int_equal(f->stop_requested, 2);
	/* output port written with bit 0 clear holds the CPU in reset */
	kbc_cmd(0xd1);
	outb(0x60, 0x03);
	assert_int_equal(f->stop_requested, 2);
	kbc_cmd(0xd0);
	assert_int_equal(inb(0x60), 0x03);
	kbc_cmd(0xd1);
	outb(0x60, 0x02);
	assert_int_equal(f->stop_requested, 3);
	assert_int_equal(f->stop_status, 0);
	/* the pending write is consumed: the next data byte is for the keyboard */
	outb(0x60, 0x00);
	assert_int_equal(f->stop_requested, 3);
}

static void i8042_hostile(void **state)
{
	int resets = 0;

	(void)state;
	make("i8042", "kbc", NULL);
	for (unsigned c = 0; c < 256; c++) {
		for (unsigned v = 0; v < 256; v++) {
			kbc_cmd((uint8_t)c);
			outb(0x60, (uint8_t)v);
			(void)inb(0x60);
			(void)kbc_status();
			if (((c & 0xf0) == 0xf0 && !(c & 1)) || (c == 0xd1 && !(v & 1)))
				resets++;
		}
	}
	assert_int_equal(f->stop_requested, resets);
	assert_int_equal(f->stop_status, 0);
	assert_int_equal(f->irq_raises[1], 0);
	assert_int_equal(f->irq_raises[12], 0);
	hearth_devs_reset(&f->vm);
	kbc_cmd(0xaa);
	assert_int_equal(inb(0x60), 0x55);
}

/* ================= debug-exit ================= */

static void debug_exit_statuses(void **state)
{
	static const struct {
		uint64_t value;
		unsigned size;
		int status;
	} cases[] = {
		{0x00, 1, 0x01},   {0x01, 1, 0x03},	  {0x10, 1, 0x21},
		{0x7f, 1, 0xff},   {0x80, 1, 0x01},	  {0xff, 1, 0xff},
		{0x1234, 2, 0x69}, {0x12345678, 4, 0xf1}, {0xfffffffe, 4, 0xfd},
	};

	(void)state;
	struct hearth_dev *d = make("debug-exit", "exit", NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hearth_devs_reset(&f->vm); /* only the first write after a reset counts */
		f->stop_requested = 0;
		iobus_write(&f->vm.pio, 0xf4, cases[i].value, cases[i].size);
		assert_int_equal(f->stop_requested, 1);
		assert_int_equal(f->stop_status, cases[i].status);
		iobus_write(&f->vm.pio, 0xf4, 0x42, 1);
		assert_int_equal(f->stop_requested, 1);
		assert_int_equal(f->stop_status, cases[i].status);
	}
	/* reads give 0 at every size; the window is four ports */
	assert_int_equal(iobus_read(&f->vm.pio, 0xf4, 1), 0);
	assert_int_equal(iobus_read(&f->vm.pio, 0xf4, 4), 0);
	assert_int_equal(iobus_read(&f->vm.pio, 0xf7, 1), 0);
	assert_int_equal(inb(0xf8), 0xff);
	assert_int_equal(inb(0xf3), 0xff);
	hearth_devs_reset(&f->vm);
	f->stop_requested = 0;
	outb(0xf7, 3); /* any port of the window */
	assert_int_equal(f->stop_requested, 1);
	assert_int_equal(f->stop_status, 7);
	assert_int_equal(hearth_dev_remove(d), 0);
}

static void debug_exit_keys(void **state)
{
	(void)state;
	make("debug-exit", "exit", "{\"port\": \"0x501\", \"size\": 2}");
	assert_int_equal(iobus_read(&f->vm.pio, 0x501, 2), 0);
	assert_int_equal(inb(0x503), 0xff);
	iobus_write(&f->vm.pio, 0x501, 5, 4); /* wider than the window: unhooked */
	assert_int_equal(f->stop_requested, 0);
	outb(0x502, 5);
	assert_int_equal(f->stop_status, 11);
	make("debug-exit", "exit1", "{\"port\": 1, \"size\": 1}");
	assert_int_equal(inb(2), 0xff);
	make("debug-exit", "exit2", "{\"port\": 65535, \"size\": 1}");
	make_fails("debug-exit", "{\"port\": 65535, \"size\": 2}", "port", "0xffff");
	make_fails("debug-exit", "{\"size\": 3}", "key 'size'", "3");
	make_fails("debug-exit", "{\"size\": 0}", "key 'size'", "outside 1..4");
	make_fails("debug-exit", "{\"size\": 8}", "key 'size'", "outside 1..4");
	make_fails("debug-exit", "{\"port\": 65536}", "key 'port'", "outside");
	make_fails("debug-exit", "{\"port\": \"f4\"}", "key 'port'", NULL);
	make_fails("debug-exit", "{\"iobase\": 244}", "unknown key 'iobase'", NULL);
	/* a port someone owns */
	make_fails("debug-exit", "{\"port\": 1281}", "'exit'", "'bad'");
}

static void debug_exit_hostile(void **state)
{
	(void)state;
	make("debug-exit", "exit", NULL);
	for (unsigned p = 0xf0; p < 0xfc; p++) {
		for (unsigned s = 1; s <= 8; s *= 2) {
			for (unsigned v = 0; v < 512; v++) {
				hearth_devs_reset(&f->vm);
				iobus_write(&f->vm.pio, (uint16_t)p, v * 0x01010101ull, s);
				(void)iobus_read(&f->vm.pio, (uint16_t)p, s);
				bool inside = p >= 0xf4 && p + s <= 0xf8;
				if (inside)
					assert_int_equal(
						f->stop_status,
						(int)(((v * 0x01010101ull) << 1 | 1) & 0xff));
			}
		}
	}
	assert_true(f->stop_status & 1);
}

/* ================= port80 ================= */

static void port80_keeps_last(void **state)
{
	(void)state;
	make_fails("port80", "{\"port\": 128}", "unknown key 'port'", NULL);
	make("port80", "post", NULL);
	assert_int_equal(inb(0x80), 0xff);
	for (unsigned v = 0; v < 256; v++) {
		outb(0x80, (uint8_t)v);
		assert_int_equal(inb(0x80), v);
	}
	outb(0x80, 0x42);
	iobus_write(&f->vm.pio, 0x80, 0x1111, 2); /* wider: not ours */
	assert_int_equal(inb(0x80), 0x42);
	assert_int_equal(iobus_read(&f->vm.pio, 0x80, 2), 0xffff);
	assert_int_equal(inb(0x81), 0xff);
	/* only one: the port is taken */
	make_fails("port80", NULL, "'post'", "'bad'");
	make_fails("debug-exit", "{\"port\": 128, \"size\": 1}", "'post'", "'bad'");
}

/* ================= testdev ================= */

#define TPORT 0x700
#define TMMIO 0xd0000000ull

static uint64_t t_read(bool mmio, uint64_t off, unsigned size)
{
	return mmio ? iobus_read(&f->vm.mmio, TMMIO + off, size)
		    : iobus_read(&f->vm.pio, TPORT + off, size);
}

static void t_write(bool mmio, uint64_t off, uint64_t v, unsigned size)
{
	if (mmio)
		iobus_write(&f->vm.mmio, TMMIO + off, v, size);
	else
		iobus_write(&f->vm.pio, TPORT + off, v, size);
}

static uint64_t pattern(uint64_t off, unsigned size)
{
	uint64_t v = (uint32_t)(off * 0x01010101u) ^ 0xa5a5a5a5u;
	return size >= 8 ? v : v & ((1ull << (8 * size)) - 1);
}

static void testdev_registers(void **state)
{
	(void)state;
	make("testdev", "td", NULL);
	for (int m = 0; m < 2; m++) {
		bool mmio = m;
		assert_int_equal(t_read(mmio, 8, 4), 0x48525448);
		assert_int_equal(t_read(mmio, 8, 2), 0x5448);
		assert_int_equal(t_read(mmio, 8, 1), 0x48);
		assert_int_equal(t_read(mmio, 0, 4), 0);
		assert_int_equal(t_read(mmio, 4, 4), 0);

		t_write(mmio, 0, 0xdeadbeef, 4);
		assert_int_equal(t_read(mmio, 0, 4), 0xdeadbeef);
		assert_int_equal(t_read(mmio, 0, 2), 0xbeef);
		assert_int_equal(t_read(mmio, 0, 1), 0xef);
		t_write(mmio, 0, 0x11, 1);
		assert_int_equal(t_read(mmio, 0, 4), 0xdeadbe11);
		t_write(mmio, 0, 0x2233, 2);
		assert_int_equal(t_read(mmio, 0, 4), 0xdead2233);
		assert_int_equal(t_read(mmio, 4, 4), 3);

		/* every write counts, wherever it lands; reads never do */
		t_write(mmio, 4, 0, 4);
		t_write(mmio, 8, 0, 4);
		t_write(mmio, 0xc, 0, 1);
		t_write(mmio, 0xf, 0, 1);
		assert_int_equal(t_read(mmio, 4, 4), 7);
		assert_int_equal(t_read(mmio, 4, 2), 7);
		assert_int_equal(t_read(mmio, 8, 4), 0x48525448); /* ID is read-only */
		assert_int_equal(t_read(mmio, 0, 4), 0xdead2233);
		/* the bytes between registers */
		assert_int_equal(t_read(mmio, 1, 1), 0);
		assert_int_equal(t_read(mmio, 0xc, 4), 0);
	}
	/* each window has its own state */
	t_write(false, 0, 0x1234, 4);
	assert_int_equal(t_read(false, 0, 4), 0x1234);
	assert_int_equal(t_read(true, 0, 4), 0xdead2233);
	assert_int_equal(t_read(false, 4, 4), 8);
	assert_int_equal(t_read(true, 4, 4), 7);

	/* a 64-bit MMIO access sees the register zero-extended */
	assert_int_equal(t_read(true, 8, 8), 0x48525448);
	t_write(true, 0, 0xffffffff00000042ull, 8);
	assert_int_equal(t_read(true, 0, 4), 0x42);

	hearth_devs_reset(&f->vm);
	for (int m = 0; m < 2; m++) {
		assert_int_equal(t_read(m, 0, 4), 0);
		assert_int_equal(t_read(m, 4, 4), 0);
	}
}

static void testdev_pattern(void **state)
{
	static const unsigned sz[] = {1, 2, 4, 8};

	(void)state;
	make("testdev", "td", NULL);
	for (uint64_t off = 0x10; off < 0x1000; off++)
		for (int s = 0; s < 4; s++)
			if (off + sz[s] <= 0x1000)
				assert_int_equal(t_read(true, off, sz[s]), pattern(off, sz[s]));
	assert_int_equal(t_read(true, 0x10, 4), 0xb5b5b5b5);
	assert_int_equal(t_read(true, 0xfff, 1), 0x5a);
	/* the port window has 16 ports and no pattern */
	assert_int_equal(t_read(false, 0x10, 1), 0xff);
	/* straddling either window's end: unhooked and not counted */
	assert_int_equal(t_read(true, 0xffe, 4), 0xffffffff);
	t_write(true, 0xffe, 1, 4);
	t_write(false, 0xe, 1, 4);
	assert_int_equal(t_read(false, 0xe, 4), 0xffffffff);
	assert_int_equal(t_read(true, 4, 4), 0);
	assert_int_equal(t_read(false, 4, 4), 0);
	assert_int_equal(t_read(false, 0xc, 4), 0);
}

static void testdev_keys(void **state)
{
	(void)state;
	make("testdev", "td", "{\"port\": \"0x710\", \"mmio\": \"0xfe000000\"}");
	assert_int_equal(iobus_read(&f->vm.pio, 0x718, 4), 0x48525448);
	assert_int_equal(iobus_read(&f->vm.mmio, 0xfe000008, 4), 0x48525448);
	assert_int_equal(iobus_read(&f->vm.pio, 0x708, 4), 0xffffffff);
	make("testdev", "td2",
	     "{\"port\": 65520, \"mmio\": 0, \"msr\": 1, \"cpuid\": 2, \"hypercall\": 3}");
	assert_int_equal(iobus_read(&f->vm.pio, 0xfff8, 4), 0x48525448);
	make_fails("testdev", "{\"port\": 65521}", "key 'port'", "outside");
	make_fails("testdev", "{\"port\": 4096, \"mmio\": \"0xd0000800\"}", "key 'mmio'",
		   "aligned");
	make_fails("testdev", "{\"port\": 4096, \"mmio\": \"0xfffffffffffff000\"}", "key 'mmio'",
		   "outside");
	make_fails("testdev", "{\"port\": \"0x71f\", \"mmio\": 4096}", "'td'", "'bad'");
	make_fails("testdev", "{\"port\": 4096, \"mmio\": \"0xfe000000\"}", "'td'", "mmio");
	make_fails("testdev",
		   "{\"port\": 4096, \"mmio\": 4096, \"msr\": 9, \"cpuid\": 9, \"hypercall\": 9, "
		   "\"irq\": 5}",
		   "unknown key 'irq'", NULL);
	/* the default MSR, leaf and hypercall are td's */
	make_fails("testdev", "{\"port\": 4096, \"mmio\": 4096}", "MSR 0x4b564e00", "'td'");
	make_fails("testdev", "{\"port\": 4096, \"mmio\": 4096, \"msr\": 9}", "CPUID leaf", "'td'");
	make_fails("testdev", "{\"port\": 4096, \"mmio\": 4096, \"msr\": 9, \"cpuid\": 9}",
		   "hypercall", "'td'");
	/* nothing of the failed ones stayed behind */
	assert_int_equal(iobus_read(&f->vm.pio, 0x1008, 4), 0xffffffff);
	assert_int_equal(iobus_read(&f->vm.mmio, 0x1008, 4), 0xffffffff);
}

static void testdev_msr_cpuid_hypercall(void **state)
{
	(void)state;
	make("testdev", "td", NULL);
	uint64_t v = 1;
	assert_int_equal(hearth_msr_read(&f->vm, 0x4b564e00, &v), 1);
	assert_int_equal(v, 0);
	assert_int_equal(hearth_msr_write(&f->vm, 0x4b564e00, 0x1122334455667788ull), 1);
	assert_int_equal(hearth_msr_read(&f->vm, 0x4b564e00, &v), 1);
	assert_int_equal(v, 0x1122334455667788ull);
	assert_int_equal(hearth_msr_read(&f->vm, 0x4b564e01, &v), 0);

	struct hearth_cpuid_regs r = {0};
	hearth_cpuid_apply(&f->vm, 3, 0x40000100, 5, &r);
	assert_int_equal(r.eax, 0x48525448);
	assert_int_equal(r.ebx, 3);
	assert_int_equal(r.ecx, 0x40000100);
	assert_int_equal(r.edx, 5);

	uint64_t args[4] = {1, 2, 3, 4}, ret = 0;
	assert_true(hearth_hypercall(&f->vm, 0, 0x48525448, args, &ret));
	assert_int_equal(ret, (1 + 4 + 9 + 16) ^ 0x48525448);
	assert_false(hearth_hypercall(&f->vm, 0, 0x48525449, args, &ret));
}

static void testdev_hostile(void **state)
{
	static const unsigned sz[] = {1, 2, 4, 8};
	unsigned writes[2] = {0, 0};

	(void)state;
	make("testdev", "td", NULL);
	for (int i = 0; i < 200000; i++) {
		bool mmio = rnd() & 1;
		uint64_t off = mmio ? rnd() % 0x1010 : rnd() % 0x14;
		unsigned s = sz[rnd() % 4];
		uint64_t lim = mmio ? 0x1000 : 0x10;
		if (rnd() & 1) {
			t_write(mmio, off, rnd(), s);
			writes[mmio] += off + s <= lim;
		} else {
			uint64_t v = t_read(mmio, off, s);
			if (off + s > lim)
				assert_int_equal(v, s == 8 ? UINT64_MAX : (1ull << (8 * s)) - 1);
			else if (off >= 0x10)
				assert_int_equal(v, pattern(off, s));
		}
	}
	assert_int_equal(t_read(false, 4, 4), writes[0]);
	assert_int_equal(t_read(true, 4, 4), writes[1]);
	assert_int_equal(t_read(true, 8, 4), 0x48525448);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(cmos_reads_host_time),
		T(cmos_localtime_base),
		T(cmos_bad_base),
		T(cmos_guest_sets_clock),
		T(cmos_frozen_clock_holds),
		T(cmos_12h_and_binary_writes),
		T(cmos_invalid_time_ignored),
		T(cmos_control_registers),
		T(cmos_index_and_nvram),
		T(cmos_memory_size),
		T(cmos_hostile),
		T(i8042_status_and_commands),
		T(i8042_reset_line),
		T(i8042_hostile),
		T(debug_exit_statuses),
		T(debug_exit_keys),
		T(debug_exit_hostile),
		T(port80_keeps_last),
		T(testdev_registers),
		T(testdev_pattern),
		T(testdev_keys),
		T(testdev_msr_cpuid_hypercall),
		T(testdev_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
