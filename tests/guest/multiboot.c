/*
 * Multiboot v1 information: accessors for the rest of the OS and the
 * "multiboot" test, which checks what the loader (hearth or QEMU) handed over.
 */
#include "testos.h"

const char *mb_cmdline(void)
{
	if (!mbi || !(mbi->flags & MB_INFO_CMDLINE) || !mbi->cmdline)
		return "";
	return (const char *)(uintptr_t)mbi->cmdline;
}

const char *mb_loader_name(void)
{
	if (!mbi || !(mbi->flags & MB_INFO_LOADER) || !mbi->boot_loader_name)
		return NULL;
	return (const char *)(uintptr_t)mbi->boot_loader_name;
}

/*
 * A few checks hold only on hearth's platform (QEMU's firmware and chipset
 * differ); hearth names itself as the boot loader.
 */
bool on_hearth(void)
{
	const char *name = mb_loader_name();
	return name && !strcmp(name, "hearth");
}

const char *mb_mmap_type(uint32_t type)
{
	static const char *const names[] = {"?", "usable", "reserved", "ACPI", "NVS", "bad"};
	return type < ARRAY_SIZE(names) ? names[type] : "?";
}

/* Returns the number of entries, or -1 if the map is malformed. */
int mb_mmap_walk(mb_mmap_fn fn, void *arg)
{
	if (!mbi || !(mbi->flags & MB_INFO_MMAP))
		return 0;
	uintptr_t p = mbi->mmap_addr, end = p + mbi->mmap_length;
	int n = 0;
	while (p < end) {
		uint32_t size = *(const uint32_t *)p;
		if (size < 20 || p + 4 + size > end)
			return -1;
		uint64_t addr = *(const uint64_t *)(p + 4), len = *(const uint64_t *)(p + 12);
		uint32_t type = *(const uint32_t *)(p + 20);
		if (fn)
			fn(addr, len, type, arg);
		n++;
		p += 4 + size;
	}
	return n;
}

const struct mb_module *mb_module(uint32_t i)
{
	if (!mbi || !(mbi->flags & MB_INFO_MODS) || i >= mbi->mods_count)
		return NULL;
	return (const struct mb_module *)(uintptr_t)mbi->mods_addr + i;
}

static bool overlaps(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return s1 < e2 && s2 < e1;
}

static bool overlaps_str(uint64_t s, uint64_t e, uint32_t str)
{
	return str && overlaps(s, e, str, str + strlen((const char *)(uintptr_t)str) + 1);
}

/* Does [start, end) hold anything the loader gave us? */
bool mb_range_reserved(uint64_t start, uint64_t end)
{
	if (overlaps(start, end, (uintptr_t)image_start, (uintptr_t)image_end))
		return true;
	if (!mbi)
		return false;
	if (overlaps(start, end, (uintptr_t)mbi, (uintptr_t)(mbi + 1)))
		return true;
	if ((mbi->flags & MB_INFO_CMDLINE) && overlaps_str(start, end, mbi->cmdline))
		return true;
	if ((mbi->flags & MB_INFO_LOADER) && overlaps_str(start, end, mbi->boot_loader_name))
		return true;
	if ((mbi->flags & MB_INFO_MMAP) &&
	    overlaps(start, end, mbi->mmap_addr, (uint64_t)mbi->mmap_addr + mbi->mmap_length))
		return true;
	if (mbi->flags & MB_INFO_MODS) {
		if (overlaps(start, end, mbi->mods_addr, mbi->mods_addr + 16ull * mbi->mods_count))
			return true;
		for (uint32_t i = 0; i < mbi->mods_count; i++) {
			const struct mb_module *m = mb_module(i);
			if (overlaps(start, end, m->start, m->end) ||
			    overlaps_str(start, end, m->string))
				return true;
		}
	}
	return false;
}

struct mmap_check {
	uint64_t img_start, img_end;
	bool img_in_ram, low_ram;
	uint64_t upper_end; /* end of the usable region holding 1 MiB */
	uint64_t usable;
};

static void mmap_check_entry(uint64_t addr, uint64_t len, uint32_t type, void *arg)
{
	struct mmap_check *c = arg;
	if (type != 1)
		return;
	c->usable += len;
	if (addr <= c->img_start && addr + len >= c->img_end)
		c->img_in_ram = true;
	if (addr == 0 && len >= 0x80000)
		c->low_ram = true;
	if (addr <= 0x100000 && addr + len > 0x100000)
		c->upper_end = addr + len;
}

static bool last_word_is(const char *s, const char *word)
{
	size_t n = strlen(s), w = strlen(word);
	return n >= w && !strcmp(s + n - w, word) && (n == w || s[n - w - 1] == ' ');
}

static void check_module(uint32_t i)
{
	const struct mb_module *m = mb_module(i);
	const char *str = m->string ? (const char *)(uintptr_t)m->string : "";
	tap_check(m->start <= m->end, "module %u: start 0x%x > end 0x%x", i, m->start, m->end);
	tap_check(*str, "module %u: empty string", i);
	tap_check(!overlaps(m->start, m->end, (uintptr_t)image_start, (uintptr_t)image_end),
		  "module %u [0x%x, 0x%x) overlaps the kernel image", i, m->start, m->end);
	uint32_t sum = 0;
	for (uint32_t a = m->start; a < m->end; a++)
		sum += *(const volatile uint8_t *)(uintptr_t)a;
	tap_note("module %u: [0x%x, 0x%x) %u bytes, byte sum 0x%x, \"%s\"", i, m->start, m->end,
		 m->end - m->start, sum, str);
	if (last_word_is(str, "hello")) {
		static const char want[] = "hello module";
		tap_check(
			m->end - m->start >= sizeof(want) - 1 &&
				!memcmp((const void *)(uintptr_t)m->start, want, sizeof(want) - 1),
			"module %u: content does not begin with \"%s\"", i, want);
	}
}

void test_multiboot(void)
{
	tap_check(boot_magic == 0x2BADB002, "eax at entry 0x%x", boot_magic);
	tap_note("flags 0x%x, loader \"%s\"", mbi->flags,
		 mb_loader_name() ? mb_loader_name() : "(none)");

	tap_check(mbi->flags & MB_INFO_CMDLINE, "no command line (flag bit 2 clear)");
	tap_check(*mb_cmdline(), "empty command line");

	if (tap_check(mbi->flags & MB_INFO_MEM, "no mem_lower/mem_upper (flag bit 0 clear)")) {
		tap_check(mbi->mem_lower > 0 && mbi->mem_lower <= 640, "mem_lower %u KiB",
			  mbi->mem_lower);
		tap_check(mbi->mem_upper >= 1024, "mem_upper %u KiB", mbi->mem_upper);
	}

	struct mmap_check c = {.img_start = (uintptr_t)image_start,
			       .img_end = (uintptr_t)image_end};
	if (tap_check(mbi->flags & MB_INFO_MMAP, "no memory map (flag bit 6 clear)")) {
		int n = mb_mmap_walk(mmap_check_entry, &c);
		tap_check(n > 0, "memory map malformed or empty (%d entries)", n);
		tap_check(c.img_in_ram, "image [0x%lx, 0x%lx) not inside one usable region",
			  c.img_start, c.img_end);
		tap_check(c.low_ram, "no usable region at 0 covering 512 KiB");
		if (mbi->flags & MB_INFO_MEM)
			tap_check(
				c.upper_end >= 0x100000 + (uint64_t)mbi->mem_upper * 1024,
				"mem_upper %u KiB exceeds the usable region at 1 MiB (ends 0x%lx)",
				mbi->mem_upper, c.upper_end);
		tap_note("memory map: %d entries, %lu KiB usable", n, c.usable >> 10);
	}

	uint32_t count = (mbi->flags & MB_INFO_MODS) ? mbi->mods_count : 0;
	uint64_t want;
	if (cmdline_u64("modules", &want))
		tap_check(count == want, "modules: %u loaded, cmdline says %lu", count, want);
	for (uint32_t i = 0; i < count; i++)
		check_module(i);
}
