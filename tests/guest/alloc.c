/*
 * Memory for virtqueues and I/O buffers: a bump allocator over the usable RAM
 * region that holds the kernel image, starting just past the bss.  Nothing is
 * ever freed; drivers allocate once and reuse.  Pages that hold loader data
 * (modules, the information structure) are skipped, and the allocator stays
 * below 3 GiB, where the page tables map RAM cacheable.
 */
#include "testos.h"

#define PAGE 4096ull
#define RAM_MAPPED_END 0xC0000000ull

static uint64_t next, limit;
static bool ready;

static void find_region(uint64_t addr, uint64_t len, uint32_t type, void *arg)
{
	uint64_t img = *(const uint64_t *)arg;
	if (type == 1 && addr <= img && img < addr + len)
		limit = addr + len < RAM_MAPPED_END ? addr + len : RAM_MAPPED_END;
}

static void setup(void)
{
	uint64_t img = (uintptr_t)image_end;
	ready = true;
	next = (img + PAGE - 1) & ~(PAGE - 1);
	if (mb_mmap_walk(find_region, &img) <= 0 && mbi && (mbi->flags & MB_INFO_MEM))
		limit = 0x100000ull + (uint64_t)mbi->mem_upper * 1024;
}

void *page_alloc(size_t bytes)
{
	if (!ready)
		setup();
	uint64_t size = (bytes + PAGE - 1) & ~(PAGE - 1);
	while (next + size <= limit && mb_range_reserved(next, next + size))
		next += PAGE;
	if (!size || next + size > limit)
		return NULL;
	void *p = (void *)(uintptr_t)next;
	next += size;
	memset(p, 0, size);
	return p;
}
