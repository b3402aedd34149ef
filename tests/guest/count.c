/*
 * The checkpoint workload: count in ring 3 forever, printing "count N" on COM1
 * every COUNT_STEP increments, so a snapshot/restore test can check that the
 * output continues exactly where it stopped.  "touch=MB" first writes one word
 * to every page of that many MiB above the image (the benchmarks' "mostly
 * touched RAM" guest) and says "touched N MiB" before counting.
 */
#include "testos.h"

#define COUNT_STEP 1000
#define PAGE 4096ull
#define IDENTITY_MAP_END 0xC0000000ull /* low RAM ends at 3 GiB; above is device space */

/* In memory, not only in a register: a restored guest must find it there too. */
static volatile uint64_t counter;

static uint64_t touch(uint64_t mib)
{
	uint64_t start = ((uintptr_t)image_end + 0x1FFFFF) & ~0x1FFFFFull;
	uint64_t end = start + mib * 0x100000ull;
	uint64_t limit = IDENTITY_MAP_END;

	if (mbi && (mbi->flags & MB_INFO_MEM) && 0x100000ull + mbi->mem_upper * 1024ull < limit)
		limit = 0x100000ull + mbi->mem_upper * 1024ull;
	if (end > limit)
		end = limit;
	for (uint64_t a = start; a < end; a += PAGE)
		*(volatile uint64_t *)(uintptr_t)a = a ^ 0x5A5A5A5A5A5A5A5Aull;
	return end > start ? (end - start) >> 20 : 0;
}

NORETURN void count_main(void)
{
	uint64_t mib;

	if (cmdline_u64("touch", &mib))
		kprintf("touched %lu MiB\n", touch(mib));
	for (;;) {
		for (unsigned i = 0; i < COUNT_STEP; i++)
			counter++;
		kprintf("count %lu\n", counter / COUNT_STEP);
	}
}
