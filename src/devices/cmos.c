/* The PC's CMOS: an MC146818-style real-time clock plus 128 bytes of NVRAM behind an index
 * port (0x70) and a data port (0x71).
 *
 * The clock is not a counter: it is host time plus an offset the guest sets by writing the
 * time registers, so it never drifts from the host and costs nothing while nobody reads it.
 * No periodic, alarm or update interrupts are generated (IRQ 8 is never asserted). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hearth/le.h"
#include "hearth/checkpoint.h"
#include "hearth/device.h"

#define CMOS_PORT 0x70
#define CMOS_SIZE 128

enum {
	REG_SEC = 0x00,
	REG_MIN = 0x02,
	REG_HOUR = 0x04,
	REG_WDAY = 0x06,
	REG_MDAY = 0x07,
	REG_MON = 0x08,
	REG_YEAR = 0x09,
	REG_A = 0x0a,
	REG_B = 0x0b,
	REG_C = 0x0c,
	REG_D = 0x0d,
	REG_CHECKSUM = 0x2e, /* big-endian sum of 0x10..0x2d */
	REG_CENTURY = 0x32,
};

#define A_UIP 0x80
#define B_SET 0x80
#define B_IRQ_ENABLES 0x70 /* PIE, AIE, UIE */
#define B_UIE 0x10
#define B_BINARY 0x04
#define B_24H 0x02
#define D_VRT 0x80
#define HOUR_PM 0x80

#define KiB 1024ull
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define LOW_RAM_MAX (3 * GiB) /* RAM above this goes above 4 GiB */

struct cmos {
	struct hearth_dev *dev;
	uint8_t index;
	uint8_t mem[CMOS_SIZE]; /* NVRAM; the time registers are computed, not stored */
	bool localtime;
	int64_t offset;	  /* guest time minus host time, in seconds */
	struct tm frozen; /* the time while reg B's SET bit holds updates */
	int bad_time_logged;
};

/* Host time in the zone the guest clock runs in, as seconds since the epoch. */
static int64_t host_now(const struct cmos *s)
{
	time_t now = time(NULL);
	struct tm tm;

	if (s->localtime && localtime_r(&now, &tm))
		return (int64_t)now + tm.tm_gmtoff;
	return (int64_t)now;
}

static void guest_time(struct cmos *s, struct tm *tm)
{
	if (s->mem[REG_B] & B_SET) {
		*tm = s->frozen;
		return;
	}
	time_t t = (time_t)(host_now(s) + s->offset);
	if (!gmtime_r(&t, tm))
		memset(tm, 0, sizeof(*tm));
}

/* The guest set a new date/time: remember it as an offset from host time. */
static void commit_time(struct cmos *s, struct tm *tm)
{
	tm->tm_isdst = 0;
	time_t t = timegm(tm);
	s->offset = (int64_t)t - host_now(s);
}

static bool binary_mode(const struct cmos *s)
{
	return s->mem[REG_B] & B_BINARY;
}

static uint8_t encode(const struct cmos *s, unsigned v)
{
	v %= 100;
	return binary_mode(s) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | v % 10);
}

/* -1 when the byte is not a valid number in the current mode (a BCD nibble above 9). */
static int decode(const struct cmos *s, uint8_t v)
{
	if (binary_mode(s))
		return v;
	if ((v >> 4) > 9 || (v & 0xf) > 9)
		return -1;
	return (v >> 4) * 10 + (v & 0xf);
}

static uint8_t encode_hour(const struct cmos *s, int hour)
{
	if (s->mem[REG_B] & B_24H)
		return encode(s, (unsigned)hour);
	unsigned h12 = hour % 12 ? (unsigned)hour % 12 : 12;
	return encode(s, h12) | (hour >= 12 ? HOUR_PM : 0);
}

static int decode_hour(const struct cmos *s, uint8_t v)
{
	if (s->mem[REG_B] & B_24H) {
		int h = decode(s, v);
		return h <= 23 ? h : -1;
	}
	int h12 = decode(s, v & ~HOUR_PM);
	if (h12 < 1 || h12 > 12)
		return -1;
	return h12 % 12 + (v & HOUR_PM ? 12 : 0);
}

static uint8_t read_time(struct cmos *s, uint8_t reg)
{
	struct tm tm;
	long year;

	guest_time(s, &tm);
	year = (long)tm.tm_year + 1900;
	switch (reg) {
	case REG_SEC:
		return encode(s, (unsigned)tm.tm_sec);
	case REG_MIN:
		return encode(s, (unsigned)tm.tm_min);
	case REG_HOUR:
		return encode_hour(s, tm.tm_hour);
	case REG_WDAY:
		return encode(s, (unsigned)tm.tm_wday + 1);
	case REG_MDAY:
		return encode(s, (unsigned)tm.tm_mday);
	case REG_MON:
		return encode(s, (unsigned)tm.tm_mon + 1);
	case REG_YEAR:
		return encode(s, (unsigned)(year < 0 ? 0 : year % 100));
	default: /* REG_CENTURY */
		return encode(s, (unsigned)(year < 0 ? 0 : year / 100 % 100));
	}
}

static void write_time(struct cmos *s, uint8_t reg, uint8_t v)
{
	struct tm tm;
	int x = reg == REG_HOUR ? decode_hour(s, v) : decode(s, v);
	int year;

	guest_time(s, &tm);
	year = tm.tm_year + 1900;
	switch (reg) {
	case REG_SEC:
		tm.tm_sec = x;
		x = x <= 59 ? x : -1;
		break;
	case REG_MIN:
		tm.tm_min = x;
		x = x <= 59 ? x : -1;
		break;
	case REG_HOUR:
		tm.tm_hour = x;
		break;
	case REG_WDAY:
		tm.tm_wday = x - 1;
		x = x >= 1 && x <= 7 ? x : -1;
		break;
	case REG_MDAY:
		tm.tm_mday = x;
		x = x >= 1 && x <= 31 ? x : -1;
		break;
	case REG_MON:
		tm.tm_mon = x - 1;
		x = x >= 1 && x <= 12 ? x : -1;
		break;
	case REG_YEAR:
		tm.tm_year = (year < 0 ? 0 : year / 100) * 100 + x - 1900;
		x = x <= 99 ? x : -1;
		break;
	default: /* REG_CENTURY */
		tm.tm_year = x * 100 + (year < 0 ? 0 : year % 100) - 1900;
		x = x <= 99 ? x : -1;
		break;
	}
	if (x < 0) {
		hearth_log_once(s->bad_time_logged,
				"device '%s': guest wrote %#x to clock register %#x, which is not "
				"a valid value in the current mode; ignored",
				hearth_dev_id(s->dev), v, reg);
		return;
	}
	if (s->mem[REG_B] & B_SET) {
		s->frozen = tm;
		return;
	}
	/* The day of the week follows from the date while the clock runs. */
	if (reg != REG_WDAY)
		commit_time(s, &tm);
}

static bool is_time_reg(uint8_t reg)
{
	return reg == REG_SEC || reg == REG_MIN || reg == REG_HOUR || reg == REG_WDAY ||
	       reg == REG_MDAY || reg == REG_MON || reg == REG_YEAR || reg == REG_CENTURY;
}

static uint8_t reg_read(struct cmos *s, uint8_t reg)
{
	if (is_time_reg(reg))
		return read_time(s, reg);
	switch (reg) {
	case REG_A:
		return s->mem[REG_A] & ~A_UIP; /* never inside an update: see docs/devices.md */
	case REG_C: {
		uint8_t v = s->mem[REG_C];
		s->mem[REG_C] = 0;
		return v;
	}
	case REG_D:
		return D_VRT;
	default:
		return s->mem[reg];
	}
}

static void reg_write(struct cmos *s, uint8_t reg, uint8_t v)
{
	if (is_time_reg(reg)) {
		write_time(s, reg, v);
		return;
	}
	switch (reg) {
	case REG_A:
		s->mem[REG_A] = v & ~A_UIP;
		break;
	case REG_B: {
		uint8_t old = s->mem[REG_B];
		if (!(old & B_SET) && (v & B_SET))
			guest_time(s, &s->frozen);
		if (v & B_SET)
			v &= ~B_UIE; /* the datasheet clears UIE while SET is on */
		s->mem[REG_B] = v;
		if ((old & B_SET) && !(v & B_SET))
			commit_time(s, &s->frozen);
		break;
	}
	case REG_C:
	case REG_D:
		break; /* read-only */
	default:
		s->mem[reg] = v;
	}
}

static uint64_t cmos_read(void *opaque, uint64_t offset, unsigned size)
{
	struct cmos *s = opaque;
	uint64_t v = 0;

	/* A wide access is the same as byte accesses to consecutive ports. */
	for (unsigned i = 0; i < size; i++) {
		uint8_t b = offset + i == 0 ? s->index : reg_read(s, s->index);
		v |= (uint64_t)b << (8 * i);
	}
	return v;
}

static void cmos_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	struct cmos *s = opaque;

	for (unsigned i = 0; i < size; i++) {
		uint8_t b = (uint8_t)(value >> (8 * i));
		if (offset + i == 0)
			s->index = b & 0x7f; /* bit 7 is the NMI mask, not part of the index */
		else
			reg_write(s, s->index, b);
	}
}

static const struct hearth_io_ops cmos_ops = {.read = cmos_read, .write = cmos_write};

static uint64_t cap(uint64_t v, uint64_t max)
{
	return v < max ? v : max;
}

/* The memory-size bytes firmware and old kernels read, from the VM's RAM size. */
static void set_memory_size(struct cmos *s, uint64_t ram)
{
	uint64_t low = cap(ram, LOW_RAM_MAX);
	uint64_t ext_kib = low > MiB ? (low - MiB) / KiB : 0;
	uint64_t above16 = low > 16 * MiB ? (low - 16 * MiB) >> 16 : 0;
	uint64_t high = ram > LOW_RAM_MAX ? (ram - LOW_RAM_MAX) >> 16 : 0;
	unsigned sum = 0;

	le_put16(&s->mem[0x15], 640);
	le_put16(&s->mem[0x17], cap(ext_kib, 0xffff));
	le_put16(&s->mem[0x30], cap(ext_kib, 0xffff));
	le_put16(&s->mem[0x34], cap(above16, 0xffff));
	high = cap(high, 0xffffff);
	s->mem[0x5b] = (uint8_t)high;
	s->mem[0x5c] = (uint8_t)(high >> 8);
	s->mem[0x5d] = (uint8_t)(high >> 16);

	for (unsigned i = 0x10; i < REG_CHECKSUM; i++)
		sum += s->mem[i];
	s->mem[REG_CHECKSUM] = (uint8_t)(sum >> 8);
	s->mem[REG_CHECKSUM + 1] = (uint8_t)sum;
}

static int cmos_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	const char *base;
	struct cmos *s;

	if (hearth_cfg_str(cfg, "base", "utc", &base) < 0)
		return -1;
	if (strcmp(base, "utc") != 0 && strcmp(base, "localtime") != 0)
		return hearth_err("key 'base': '%s' is not \"utc\" or \"localtime\"", base);
	s = calloc(1, sizeof(*s));
	if (!s)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, s);
	s->dev = dev;
	s->localtime = strcmp(base, "localtime") == 0;
	s->mem[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
	s->mem[REG_B] = B_24H;
	set_memory_size(s, hearth_vm_ram_size(hearth_dev_vm(dev)));
	return hearth_hook_pio(dev, CMOS_PORT, 2, &cmos_ops, s);
}

static void cmos_free(struct hearth_dev *dev)
{
	free(hearth_dev_priv(dev));
}

/* ---- checkpoint ---- */

#define CMOS_CKPT_VERSION 1

/* The clock is saved as its offset from host time, so a restored guest's clock keeps
 * following real time (as a battery-backed RTC does while the machine is off). */
static int cmos_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct cmos *s = hearth_dev_priv(dev);
	const struct tm *f = &s->frozen;
	const uint32_t frozen[7] = {(uint32_t)f->tm_sec,  (uint32_t)f->tm_min, (uint32_t)f->tm_hour,
				    (uint32_t)f->tm_mday, (uint32_t)f->tm_mon, (uint32_t)f->tm_year,
				    (uint32_t)f->tm_wday};

	if (hearth_ckpt_set_version(ck, CMOS_CKPT_VERSION) < 0 ||
	    hearth_ckpt_put_u8(ck, "index", s->index) < 0 ||
	    hearth_ckpt_put_bytes(ck, "nvram", s->mem, sizeof(s->mem)) < 0 ||
	    hearth_ckpt_put_u64(ck, "clock_offset", (uint64_t)s->offset) < 0 ||
	    hearth_ckpt_put_u32_array(ck, "frozen_time", frozen, 7) < 0)
		return -1;
	return 0;
}

static int cmos_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct cmos *s = hearth_dev_priv(dev);
	uint32_t frozen[7];
	uint64_t offset;
	uint8_t index;

	if (hearth_ckpt_accept_versions(ck, 1, CMOS_CKPT_VERSION) < 0 ||
	    hearth_ckpt_get_u8(ck, "index", &index) < 0 ||
	    hearth_ckpt_get_bytes(ck, "nvram", s->mem, sizeof(s->mem), NULL) < 0 ||
	    hearth_ckpt_get_u64(ck, "clock_offset", &offset) < 0 ||
	    hearth_ckpt_get_u32_array(ck, "frozen_time", frozen, 7, NULL) < 0)
		return -1;
	/* a tm the guest could never have produced would only confuse read_time */
	if (frozen[0] > 60 || frozen[1] > 59 || frozen[2] > 23 || frozen[3] > 31 ||
	    frozen[4] > 11 || frozen[5] > 100000 || frozen[6] > 6)
		return hearth_err("checkpoint context '%s': key 'frozen_time' is not a time",
				  hearth_ckpt_name(ck));
	s->index = index & 0x7f;
	s->offset = (int64_t)offset;
	memset(&s->frozen, 0, sizeof(s->frozen));
	s->frozen.tm_sec = (int)frozen[0];
	s->frozen.tm_min = (int)frozen[1];
	s->frozen.tm_hour = (int)frozen[2];
	s->frozen.tm_mday = (int)frozen[3];
	s->frozen.tm_mon = (int)frozen[4];
	s->frozen.tm_year = (int)frozen[5];
	s->frozen.tm_wday = (int)frozen[6];
	return 0;
}

/* The clock and NVRAM are battery-backed; a reset only silences the interrupt logic. */
static void cmos_reset(struct hearth_dev *dev)
{
	struct cmos *s = hearth_dev_priv(dev);

	s->mem[REG_B] &= ~B_IRQ_ENABLES;
	s->mem[REG_C] = 0;
}

HEARTH_DEVICE_CLASS(cmos_class, .name = "cmos",
		    .summary = "PC CMOS real-time clock and NVRAM (ports 0x70-0x71)",
		    .init = cmos_init, .free = cmos_free, .reset = cmos_reset, .save = cmos_save,
		    .load = cmos_load);
