/*
 * The checkpoint workload: count in ring 3 forever, printing "count N" on COM1
 * every COUNT_STEP increments, so a snapshot/restore test can check that the
 * output continues exactly where it stopped.  "touch=MB" first writes one word
 * to every page of that many MiB above the image (the benchmarks' "mostly
 * touched RAM" guest) and says "touched N MiB" before counting.
 *
 * "disk=1" also keeps the virtio disk busy, so that snapshots find requests in
 * flight: count N is written to sector N % S (S = "sectors=", default 256) as a
 * 512-byte record (disk_word below), and each step also reads back the sector
 * written S/2 counts earlier and checks it holds that count (zeroes before any
 * was written).  DISK_QD steps (a write and a read each) are in flight at once
 * and the queue is notified once per DISK_BATCH steps; "bulk=N" adds to each step
 * a read of N sectors past the records (a slower request, so that a snapshot more
 * likely finds some in flight on the host).  A step's slot is reused
 * only when both its requests completed, so every write of count <= M - DISK_QD
 * completed before count M was submitted: tests/snapshot_tool.py disk checks the
 * image against that after the run.  A wrong record, a failed request or one that
 * never completes prints "disk FAIL: ..." and stops the count.
 */
#include "testos.h"

#define COUNT_STEP 1000
#define PAGE 4096ull
#define IDENTITY_MAP_END 0xC0000000ull /* low RAM ends at 3 GiB; above is device space */

#define DISK_QD 8
#define DISK_BATCH 4
#define DISK_WAIT_MS 10000
#define SECTOR 512

/* In memory, not only in a register: a restored guest must find it there too. */
static volatile uint64_t counter;

static struct vblk disk;
static uint64_t disk_sectors, bulk;
static uint8_t *wbuf, *rbuf, *bbuf; /* DISK_QD sectors each; bulk: DISK_QD x bulk sectors */
static struct {
	uint64_t count;
	unsigned pending; /* requests not yet used */
	bool used;
} slots[DISK_QD];

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

/* Word i of count c's record; tests/snapshot_tool.py has the same formula. */
static uint64_t disk_word(uint64_t c, unsigned i)
{
	return i ? (c + 1) * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull : c;
}

static NORETURN PRINTF(1, 2) void disk_fail(const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	kprintf("disk FAIL: %s\n", why);
	for (;;)
		cpu_relax();
}

static bool disk_open(void)
{
	if (!cmdline_u64("sectors", &disk_sectors))
		disk_sectors = 256;
	cmdline_u64("bulk", &bulk);
	if (disk_sectors < 4 * DISK_QD || disk_sectors % 2) {
		kprintf("disk FAIL: sectors=%lu: at least %u and even\n", disk_sectors,
			4 * DISK_QD);
		return false;
	}
	if (!vblk_open(&disk, VIRTIO_IRQ_NONE, 0, 0)) {
		kprintf("disk FAIL: virtio-blk: %s\n", disk.vd.error);
		return false;
	}
	if (disk.capacity < disk_sectors + bulk || bulk > 8192) {
		kprintf("disk FAIL: the disk has %lu sectors, sectors=%lu bulk=%lu (at most "
			"8192)\n",
			disk.capacity, disk_sectors, bulk);
		return false;
	}
	wbuf = page_alloc(DISK_QD * SECTOR);
	rbuf = page_alloc(DISK_QD * SECTOR);
	bbuf = bulk ? page_alloc(DISK_QD * bulk * SECTOR) : rbuf;
	if (!wbuf || !rbuf || !bbuf) {
		kprintf("disk FAIL: out of memory\n");
		return false;
	}
	virtq_quiet(&disk.q); /* polled: no interrupts */
	kprintf("disk: %lu sectors, %u steps in flight\n", disk_sectors, DISK_QD);
	return true;
}

/* Take what the device used; the slot index is the request's tag / 3. */
static void disk_reap(void)
{
	void *cookie;
	uint32_t len;

	while (virtq_get(&disk.q, &cookie, &len)) {
		struct vblk_req *r = cookie;
		if (!r)
			disk_fail("the used ring names no request");
		if (r->status != VIRTIO_BLK_S_OK)
			disk_fail("request %lu ended with status %u", r->tag, r->status);
		unsigned s = (unsigned)(r->tag / 3);
		if (s >= DISK_QD || !slots[s].pending)
			disk_fail("completion for slot %u, which has nothing in flight", s);
		slots[s].pending--;
	}
}

/* The read of slot s's step must show the count written disk_sectors/2 before it. */
static void disk_check(unsigned s)
{
	uint64_t c = slots[s].count, half = disk_sectors / 2;
	const uint64_t *w = (const uint64_t *)(rbuf + s * SECTOR);
	bool never = c <= half; /* count 0 is never written */
	uint64_t want = never ? 0 : c - half;

	for (unsigned i = 0; i < SECTOR / 8; i++)
		if (w[i] != (never ? 0 : disk_word(want, i)))
			disk_fail("sector %lu does not hold count %lu (its first word is %lu)",
				  (c + half) % disk_sectors, want, w[0]);
}

static void disk_step(uint64_t c)
{
	unsigned s = (unsigned)(c % DISK_QD);
	uint64_t end = deadline_ms(DISK_WAIT_MS);

	while (slots[s].pending) {
		virtq_kick(&disk.q); /* whatever this batch has posted so far */
		disk_reap();
		if (slots[s].pending && expired(end))
			disk_fail("count %lu: no completion in %u ms", slots[s].count,
				  DISK_WAIT_MS);
	}
	if (slots[s].used)
		disk_check(s);
	uint64_t *w = (uint64_t *)(wbuf + s * SECTOR);
	for (unsigned i = 0; i < SECTOR / 8; i++)
		w[i] = disk_word(c, i);
	slots[s].count = c;
	slots[s].used = true;
	slots[s].pending = bulk ? 3 : 2;
	if (vblk_submit(&disk, 3 * s, VIRTIO_BLK_T_OUT, c % disk_sectors, w, SECTOR) < 0 ||
	    vblk_submit(&disk, 3 * s + 1, VIRTIO_BLK_T_IN, (c + disk_sectors / 2) % disk_sectors,
			rbuf + s * SECTOR, SECTOR) < 0 ||
	    (bulk && vblk_submit(&disk, 3 * s + 2, VIRTIO_BLK_T_IN, disk_sectors,
				 bbuf + s * bulk * SECTOR, (uint32_t)(bulk * SECTOR)) < 0))
		disk_fail("count %lu: the ring is full", c);
	if (c % DISK_BATCH == 0)
		virtq_kick(&disk.q);
}

NORETURN void count_main(void)
{
	uint64_t mib, use_disk = 0;

	if (cmdline_u64("touch", &mib))
		kprintf("touched %lu MiB\n", touch(mib));
	cmdline_u64("disk", &use_disk);
	if (use_disk && !disk_open())
		for (;;)
			cpu_relax();
	for (;;) {
		for (unsigned i = 0; i < COUNT_STEP; i++)
			counter++;
		if (use_disk)
			disk_step(counter / COUNT_STEP);
		kprintf("count %lu\n", counter / COUNT_STEP);
	}
}
