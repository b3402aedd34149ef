/*
 * CMOS RTC and NVRAM.  Two port accesses per register, so the test reads
 * each register it needs once per pass and no more.
 */
#include "testos.h"

#define RTC_B_BINARY 0x04
#define RTC_B_24H 0x02

uint8_t cmos_read(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static const uint8_t time_regs[7] = {0, 2, 4, 6, 7, 8, 9};

static void read_raw(uint8_t raw[7])
{
	for (int i = 0; i < 7; i++)
		raw[i] = cmos_read(time_regs[i]);
}

static bool bcd_ok(uint8_t v)
{
	return (v & 0x0F) <= 9 && (v >> 4) <= 9;
}

static unsigned conv(uint8_t v, bool binary)
{
	return binary ? v : (v >> 4) * 10 + (v & 0x0F);
}

/* false if the fields are not valid BCD (in BCD mode) or out of range. */
bool rtc_read(struct rtc_time *t)
{
	uint8_t a[7], b[7];
	uint64_t end = deadline_ms(20);
	while ((cmos_read(0x0A) & 0x80) && !expired(end))
		cpu_relax();
	/* An update may still land between registers: read until two agree. */
	read_raw(a);
	for (int tries = 0; tries < 5; tries++) {
		read_raw(b);
		if (!memcmp(a, b, sizeof(a)))
			break;
		memcpy(a, b, sizeof(a));
	}
	t->reg_b = cmos_read(0x0B);
	bool bin = t->reg_b & RTC_B_BINARY;
	uint8_t hour = a[2];
	bool pm = !(t->reg_b & RTC_B_24H) && (hour & 0x80);
	hour &= (t->reg_b & RTC_B_24H) ? 0xFF : 0x7F;
	bool ok = true;
	if (!bin)
		for (int i = 0; i < 7; i++)
			ok &= bcd_ok(i == 2 ? hour : a[i]);
	t->sec = conv(a[0], bin);
	t->min = conv(a[1], bin);
	t->hour = conv(hour, bin);
	if (!(t->reg_b & RTC_B_24H))
		t->hour = t->hour % 12 + (pm ? 12 : 0);
	t->wday = conv(a[3], bin);
	t->mday = conv(a[4], bin);
	t->mon = conv(a[5], bin);
	t->year = 2000 + conv(a[6], bin);
	return ok && t->sec < 60 && t->min < 60 && t->hour < 24 && t->mday >= 1 && t->mday <= 31 &&
	       t->mon >= 1 && t->mon <= 12 && t->year < 2100;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

uint64_t rtc_to_unix(const struct rtc_time *t)
{
	return (uint64_t)days_from_civil(t->year, t->mon, t->mday) * 86400 + t->hour * 3600 +
	       t->min * 60 + t->sec;
}

static void sum_high(uint64_t addr, uint64_t len, uint32_t type, void *arg)
{
	if (type == 1 && addr + len > (1ull << 32))
		*(uint64_t *)arg += addr + len - (addr > (1ull << 32) ? addr : (1ull << 32));
}

/* CMOS value vs. the one derived from mem_upper (KiB above 1 MiB). */
static void check_size(const char *what, uint32_t cmos, uint32_t upper, uint32_t unit_kib,
		       uint32_t skip_kib, uint32_t slack_kib)
{
	uint32_t lo = upper > skip_kib ? (upper - skip_kib) / unit_kib : 0;
	uint32_t hi = upper + slack_kib > skip_kib ? (upper + slack_kib - skip_kib) / unit_kib : 0;
	lo = lo > 0xFFFF ? 0xFFFF : lo;
	hi = hi > 0xFFFF ? 0xFFFF : hi;
	if (lo == hi)
		tap_check(cmos == lo, "CMOS %s = %u, mem_upper %u KiB gives %u", what, cmos, upper,
			  lo);
	else if (tap_check(cmos >= lo && cmos <= hi, "CMOS %s = %u, mem_upper %u KiB gives %u-%u",
			   what, cmos, upper, lo, hi) &&
		 cmos != lo)
		tap_note("CMOS %s = %u exceeds %u from mem_upper: accepted as firmware-reserved "
			 "RAM (loader is not hearth)",
			 what, cmos, lo);
}

static void check_memory(void)
{
	unsigned base = cmos_read(0x15) | cmos_read(0x16) << 8;
	unsigned ext1 = cmos_read(0x17) | cmos_read(0x18) << 8;
	unsigned ext2 = cmos_read(0x30) | cmos_read(0x31) << 8;
	unsigned above16 = cmos_read(0x34) | cmos_read(0x35) << 8;
	uint32_t above4g = cmos_read(0x5B) | cmos_read(0x5C) << 8 | (uint32_t)cmos_read(0x5D) << 16;

	tap_check(base == 640, "CMOS 0x15/0x16 base memory %u KiB, want 640", base);
	if (!tap_check(mbi->flags & MB_INFO_MEM, "no multiboot mem_upper to compare with"))
		return;
	/*
	 * hearth loads the kernel itself, so mem_upper and CMOS describe the same
	 * RAM.  Firmware (SeaBIOS under QEMU) keeps the top of RAM for its tables
	 * and reports mem_upper without it, while CMOS still counts it; allow up
	 * to 1 MiB of that, but not on hearth.
	 */
	uint32_t slack = on_hearth() ? 0 : 1024;
	uint32_t upper = mbi->mem_upper;
	check_size("0x17/0x18 extended memory (KiB)", ext1, upper, 1, 0, slack);
	check_size("0x30/0x31 extended memory (KiB)", ext2, upper, 1, 0, slack);
	check_size("0x34/0x35 memory above 16 MiB (64 KiB)", above16, upper, 64, 15 * 1024, slack);

	if (mbi->flags & MB_INFO_MMAP) {
		uint64_t high = 0;
		mb_mmap_walk(sum_high, &high);
		tap_check(above4g == high >> 16,
			  "CMOS 0x5B-0x5D above 4 GiB %u x 64 KiB, memory map gives %lu", above4g,
			  high >> 16);
	}
	tap_note("memory: base %u KiB, extended %u KiB, above 16 MiB %u x 64 KiB, above 4 GiB %u x "
		 "64 KiB",
		 base, ext1, above16, above4g);
}

void test_cmos(void)
{
	struct rtc_time t;
	uint8_t raw[7];
	bool valid = rtc_read(&t);
	read_raw(raw);
	tap_note("rtc %04u-%02u-%02u %02u:%02u:%02u wday %u, reg B 0x%02x (%s, %s)", t.year, t.mon,
		 t.mday, t.hour, t.min, t.sec, t.wday, t.reg_b,
		 t.reg_b & RTC_B_BINARY ? "binary" : "BCD", t.reg_b & RTC_B_24H ? "24h" : "12h");
	tap_check(valid,
		  "RTC fields invalid: raw sec %02x min %02x hour %02x wday %02x day %02x "
		  "mon %02x year %02x",
		  raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6]);
	tap_check(t.wday >= 1 && t.wday <= 7, "weekday %u out of range 1-7", t.wday);
	uint8_t d = cmos_read(0x0D);
	tap_check(d & 0x80, "register D 0x%02x: valid-RAM-and-time bit clear", d);

	uint64_t now;
	if (cmdline_u64("now", &now)) {
		int64_t diff = (int64_t)(rtc_to_unix(&t) - now);
		tap_check(diff >= -120 && diff <= 120, "RTC is %ld s off cmdline now=%lu (%lu)",
			  diff, now, rtc_to_unix(&t));
	} else {
		tap_check(t.year >= 2024, "RTC year %u < 2024", t.year);
	}
	check_memory();
}
