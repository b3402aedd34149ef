/*
 * hearth's test device (port window 0x700-0x70F, MMIO page 0xD0000000; the
 * register contract is in docs/devices.md) and the all-ones behaviour of
 * unclaimed ports and MMIO.  Under QEMU there is no testdev, and the checks
 * that only hearth's platform can pass are skipped with a reason.
 */
#include "testos.h"

#define REG_SCRATCH 0x0
#define REG_COUNT 0x4
#define REG_ID 0x8
#define UNHOOKED_MMIO 0xD1000000u

struct window {
	const char *name;
	uint8_t (*rd8)(uint32_t off);
	uint16_t (*rd16)(uint32_t off);
	uint32_t (*rd32)(uint32_t off);
	void (*wr8)(uint32_t off, uint8_t v);
	void (*wr16)(uint32_t off, uint16_t v);
	void (*wr32)(uint32_t off, uint32_t v);
};

static uint8_t p_rd8(uint32_t off)
{
	return inb(TESTDEV_PORT + off);
}

static uint16_t p_rd16(uint32_t off)
{
	return inw(TESTDEV_PORT + off);
}

static uint32_t p_rd32(uint32_t off)
{
	return inl(TESTDEV_PORT + off);
}

static void p_wr8(uint32_t off, uint8_t v)
{
	outb(TESTDEV_PORT + off, v);
}

static void p_wr16(uint32_t off, uint16_t v)
{
	outw(TESTDEV_PORT + off, v);
}

static void p_wr32(uint32_t off, uint32_t v)
{
	outl(TESTDEV_PORT + off, v);
}

static uint8_t m_rd8(uint32_t off)
{
	return mmio_read8(TESTDEV_MMIO + off);
}

static uint16_t m_rd16(uint32_t off)
{
	return mmio_read16(TESTDEV_MMIO + off);
}

static uint32_t m_rd32(uint32_t off)
{
	return mmio_read32(TESTDEV_MMIO + off);
}

static void m_wr8(uint32_t off, uint8_t v)
{
	mmio_write8(TESTDEV_MMIO + off, v);
}

static void m_wr16(uint32_t off, uint16_t v)
{
	mmio_write16(TESTDEV_MMIO + off, v);
}

static void m_wr32(uint32_t off, uint32_t v)
{
	mmio_write32(TESTDEV_MMIO + off, v);
}

static const struct window port_win = {"port", p_rd8, p_rd16, p_rd32, p_wr8, p_wr16, p_wr32};
static const struct window mmio_win = {"mmio", m_rd8, m_rd16, m_rd32, m_wr8, m_wr16, m_wr32};

bool testdev_present(void)
{
	return inl(TESTDEV_PORT + REG_ID) == TESTDEV_ID;
}

static uint32_t pattern(uint32_t off)
{
	return (off * 0x01010101u) ^ 0xA5A5A5A5u;
}

static void check_window(const struct window *w, const struct window *other)
{
	const char *n = w->name;
	uint32_t v;

	v = w->rd32(REG_ID);
	tap_check(v == TESTDEV_ID, "%s: ID 0x%08x", n, v);
	v = w->rd16(REG_ID);
	tap_check(v == (TESTDEV_ID & 0xFFFF), "%s: 16-bit ID read 0x%04x", n, v);
	v = w->rd8(REG_ID);
	tap_check(v == (TESTDEV_ID & 0xFF), "%s: 8-bit ID read 0x%02x", n, v);

	uint32_t c0 = w->rd32(REG_COUNT), oc0 = other->rd32(REG_COUNT);
	w->wr32(REG_SCRATCH, 0x12345678);
	v = w->rd32(REG_SCRATCH);
	tap_check(v == 0x12345678, "%s: scratch 32-bit wrote 0x12345678 read 0x%08x", n, v);
	w->wr16(REG_SCRATCH, 0xBEEF);
	v = w->rd16(REG_SCRATCH);
	tap_check(v == 0xBEEF, "%s: scratch 16-bit wrote 0xbeef read 0x%04x", n, v);
	w->wr8(REG_SCRATCH, 0x5A);
	v = w->rd8(REG_SCRATCH);
	tap_check(v == 0x5A, "%s: scratch 8-bit wrote 0x5a read 0x%02x", n, v);
	w->wr32(REG_ID, 0);
	v = w->rd32(REG_ID);
	tap_check(v == TESTDEV_ID, "%s: ID changed to 0x%08x by a write", n, v);
	w->wr32(REG_COUNT, 0xFFFFFFFF);
	uint32_t c1 = w->rd32(REG_COUNT);
	tap_check(c1 - c0 == 5, "%s: write counter went %u -> %u after 5 writes", n, c0, c1);
	uint32_t oc1 = other->rd32(REG_COUNT);
	tap_check(oc1 == oc0, "%s: the %s window's counter moved %u -> %u", n, other->name, oc0,
		  oc1);
	w->wr32(REG_SCRATCH, 0);
}

static void check_pattern(void)
{
	static const struct {
		uint32_t off;
		uint8_t size;
	} reads[] = {
		{0x10, 4},  {0x14, 4}, {0x100, 4}, {0xFFC, 4}, {0x22, 2},
		{0x7FE, 2}, {0x33, 1}, {0x7F1, 1}, {0xFFF, 1},
	};
	for (size_t i = 0; i < ARRAY_SIZE(reads); i++) {
		uint32_t off = reads[i].off, want = pattern(off), got;
		switch (reads[i].size) {
		case 1:
			got = m_rd8(off);
			want &= 0xFF;
			break;
		case 2:
			got = m_rd16(off);
			want &= 0xFFFF;
			break;
		default:
			got = m_rd32(off);
		}
		tap_check(got == want, "mmio: %u-byte read at 0x%x gave 0x%x, want 0x%x",
			  reads[i].size, off, got, want);
	}
}

void test_testdev(void)
{
	uint32_t id = inl(TESTDEV_PORT + REG_ID);
	/* QEMU's firmware puts the PIIX4 SMBus at 0x700, which reads 0 here. */
	if (id != TESTDEV_ID && !cmdline_list_has("require", "testdev")) {
		tap_note("ID register 0x%x reads 0x%08x", TESTDEV_PORT + REG_ID, id);
		tap_skip("no testdev");
		return;
	}
	if (!tap_check(id == TESTDEV_ID, "port ID register 0x%08x, want 0x%08x", id, TESTDEV_ID))
		return;
	check_window(&port_win, &mmio_win);
	check_window(&mmio_win, &port_win);
	check_pattern();
	tap_note("port window 0x%x-0x%x: offsets >= 0x10 exist only in the MMIO window",
		 TESTDEV_PORT, TESTDEV_PORT + 0xF);
}

void test_unhooked(void)
{
	/* Nothing on a PC uses these (COM2 and COM4 exist only when configured). */
	static const uint16_t ports[] = {0x3E0, 0x3E4, 0x2F8, 0x2FC};
	/* Just outside the testdev window; under QEMU the firmware's SMBus
	 * controller lives there, so these are checked on hearth only. */
	static const uint16_t edges[] = {0x6FC, 0x710};
	bool hearth = on_hearth();

	for (size_t i = 0; i < ARRAY_SIZE(ports) + ARRAY_SIZE(edges); i++) {
		uint16_t p = i < ARRAY_SIZE(ports) ? ports[i] : edges[i - ARRAY_SIZE(ports)];
		if (i >= ARRAY_SIZE(ports) && !hearth)
			break;
		outb(p, 0x5A);
		outw(p, 0x1234);
		outl(p, 0x12345678);
		uint32_t b = inb(p), w = inw(p), l = inl(p);
		tap_check(b == 0xFF && w == 0xFFFF && l == 0xFFFFFFFF,
			  "port 0x%x reads 0x%02x/0x%04x/0x%08x, want all ones", p, b, w, l);
		b = inb(p + 3);
		w = inw(p + 2);
		tap_check(b == 0xFF && w == 0xFFFF, "port 0x%x reads 0x%02x, 0x%x reads 0x%04x",
			  p + 3, b, p + 2, w);
	}
	if (!hearth)
		tap_note("ports next to the testdev window not checked (loader is not hearth)");

	/* Unassigned MMIO reads as zero on QEMU's PC machine; all ones is what
	 * hearth promises, so the check is strict only on hearth. */
	mmio_write32(UNHOOKED_MMIO, 0x12345678);
	uint32_t m32 = mmio_read32(UNHOOKED_MMIO);
	uint32_t m16 = mmio_read16(UNHOOKED_MMIO + 0x102);
	uint32_t m8 = mmio_read8(UNHOOKED_MMIO + 0xFFF);
	bool ones = m32 == 0xFFFFFFFF && m16 == 0xFFFF && m8 == 0xFF;
	if (hearth || cmdline_list_has("require", "testdev"))
		tap_check(ones, "unhooked MMIO 0x%x reads 0x%08x/0x%04x/0x%02x, want all ones",
			  UNHOOKED_MMIO, m32, m16, m8);
	else if (!ones)
		tap_note("unhooked MMIO 0x%x reads 0x%08x/0x%04x/0x%02x; all-ones check "
			 "applies on hearth only",
			 UNHOOKED_MMIO, m32, m16, m8);
}
