/*
 * virtio-blk driver (virtio 1.2, section 5.2) and the "virtio-blk" guest test.
 * A request is a chain: 16-byte header (device-readable), data, 1-byte status
 * (device-writable).  Headers and statuses live in one DMA array indexed by a
 * caller-chosen slot, so many requests can be in flight at once.
 *
 * Test command-line words: disk=pattern (the runner wrote blk_pattern() into
 * the image), blkwrite=1 (the guest may write; the runner checks the file
 * afterwards), blkro=1 (the disk is read-only), blkid=STRING (GET_ID result).
 */
#include "testos.h"

#define F_SIZE_MAX (1ull << 1)
#define F_SEG_MAX (1ull << 2)
#define F_RO (1ull << 5)
#define F_BLK_SIZE (1ull << 6)
#define F_FLUSH (1ull << 9)
#define F_DISCARD (1ull << 13)
#define F_MQ (1ull << 12)
#define F_WRITE_ZEROES (1ull << 14)

#define CFG_CAPACITY 0
#define CFG_SIZE_MAX 8
#define CFG_SEG_MAX 12
#define CFG_BLK_SIZE 20
#define CFG_NUM_QUEUES 34
#define CFG_MAX_DISCARD_SECTORS 36
#define CFG_MAX_WZ_SECTORS 48

#define MAX_SEGS 64

/* DISCARD and WRITE_ZEROES payload */
struct vblk_range {
	uint64_t sector;
	uint32_t num, flags;
};

/* Regions the write test touches (sectors); tests/run-virtio.sh knows them. */
#define WRITE_AT 2048
#define WRITE_LEN 256
#define ZERO_AT 4096
#define ZERO_LEN 64
#define DISCARD_AT 6144
#define DISCARD_LEN 64

static const uint64_t wanted = F_SIZE_MAX | F_SEG_MAX | F_RO | F_BLK_SIZE | F_FLUSH | F_MQ |
			       F_DISCARD | F_WRITE_ZEROES | VIRTIO_F_EVENT_IDX |
			       VIRTIO_F_INDIRECT_DESC;

bool vblk_open(struct vblk *b, enum virtio_irq irq, uint8_t vector_base, uint64_t drop_features)
{
	const struct pci_func *f = pci_find(VIRTIO_VENDOR, VIRTIO_PCI_DEVICE(2), 0);
	/* ring and request memory is kept across re-opens */
	void *mem[VBLK_MAX_QUEUES];
	size_t mem_len[VBLK_MAX_QUEUES];
	for (unsigned i = 0; i < VBLK_MAX_QUEUES; i++) {
		struct virtq *q = i ? &b->xq[i - 1] : &b->q;
		mem[i] = q->mem;
		mem_len[i] = q->mem_len;
	}
	struct vblk_req *req = b->req;
	struct vq_desc *ind = b->ind;
	unsigned nreq = b->nreq;
	memset(b, 0, sizeof(*b));
	for (unsigned i = 0; i < VBLK_MAX_QUEUES; i++) {
		struct virtq *q = i ? &b->xq[i - 1] : &b->q;
		q->mem = mem[i];
		q->mem_len = mem_len[i];
	}
	if (!virtio_open(&b->vd, f)) {
		if (!f)
			b->vd.error = "no virtio-blk function (1af4:1042)";
		return false;
	}
	if (!virtio_start(&b->vd, wanted & ~drop_features, irq, vector_base))
		return false;
	uint64_t feat = b->vd.features;
	b->capacity = virtio_cfg_read(&b->vd, CFG_CAPACITY, 8);
	b->size_max = feat & F_SIZE_MAX ? (uint32_t)virtio_cfg_read(&b->vd, CFG_SIZE_MAX, 4) : 0;
	b->seg_max = feat & F_SEG_MAX ? (uint32_t)virtio_cfg_read(&b->vd, CFG_SEG_MAX, 4) : 0;
	b->blk_size = feat & F_BLK_SIZE ? (uint32_t)virtio_cfg_read(&b->vd, CFG_BLK_SIZE, 4) : 512;
	b->nq = feat & F_MQ ? (unsigned)virtio_cfg_read(&b->vd, CFG_NUM_QUEUES, 2) : 1;
	if (!b->nq || b->nq > VBLK_MAX_QUEUES)
		b->nq = b->nq ? VBLK_MAX_QUEUES : 1;
	for (unsigned i = 0; i < b->nq; i++)
		if (!virtq_setup(&b->vd, i ? &b->xq[i - 1] : &b->q, (uint16_t)i, VQ_MAX))
			return false;
	if (!req || nreq < b->q.size) {
		req = page_alloc(sizeof(*req) * b->q.size);
		ind = page_alloc(sizeof(*ind) * VBLK_IND_MAX * b->q.size);
		nreq = b->q.size;
	}
	b->req = req;
	b->ind = ind;
	b->nreq = nreq;
	if (!req || !ind) {
		b->vd.error = "out of memory for request headers";
		return false;
	}
	return virtio_driver_ok(&b->vd);
}

static bool data_in(uint32_t type)
{
	return type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
}

int vblk_submit_segs(struct vblk *b, struct virtq *q, unsigned slot, uint32_t type, uint64_t sector,
		     const struct vq_seg *data, unsigned ndata, bool indirect)
{
	struct vq_seg segs[MAX_SEGS + 2];
	struct vblk_req *r = &b->req[slot];
	if (ndata > MAX_SEGS || (b->seg_max && ndata > b->seg_max) ||
	    (indirect && ndata + 2 > VBLK_IND_MAX))
		return -1;
	r->type = type;
	r->reserved = 0;
	r->sector = sector;
	r->status = VBLK_TIMEOUT;
	r->tag = slot;
	segs[0] = (struct vq_seg){r, 16};
	for (unsigned i = 0; i < ndata; i++)
		segs[1 + i] = data[i];
	segs[1 + ndata] = (struct vq_seg){(const void *)&r->status, 1};
	unsigned n = ndata + 2, nout = data_in(type) ? 1 : n - 1;
	if (indirect)
		return virtq_add_indirect(q, segs, nout, n - nout, r,
					  b->ind + (size_t)slot * VBLK_IND_MAX);
	return virtq_add(q, segs, nout, n - nout, r);
}

/* -1 when the ring is full or the buffer needs more segments than allowed. */
int vblk_submit(struct vblk *b, unsigned slot, uint32_t type, uint64_t sector, void *buf,
		uint32_t len)
{
	struct vq_seg data[MAX_SEGS];
	unsigned n = 0;
	uint32_t chunk = b->size_max ? b->size_max : len;
	for (uint32_t off = 0; off < len; off += chunk) {
		if (n == MAX_SEGS)
			return -1;
		data[n++] = (struct vq_seg){(uint8_t *)buf + off,
					    len - off < chunk ? len - off : chunk};
	}
	return vblk_submit_segs(b, &b->q, slot, type, sector, data, n, false);
}

/* One request, polled to completion: the device status, or VBLK_TIMEOUT. */
uint8_t vblk_sync(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	if (vblk_submit(b, 0, type, sector, buf, len) < 0)
		return VBLK_TIMEOUT;
	virtq_kick(&b->q);
	void *cookie;
	uint32_t used;
	if (!virtq_wait(&b->q, &cookie, &used, 5000))
		return VBLK_TIMEOUT;
	return ((struct vblk_req *)cookie)->status;
}

uint64_t blk_pattern(uint64_t byte_offset)
{
	return (byte_offset / 8 + 1) * 0x9E3779B97F4A7C15ull;
}

/* Byte offset of the first word that differs from the pattern (inverted for
 * what the guest writes), or -1. */
static int64_t pattern_diff(const void *buf, uint64_t sector, uint32_t len, bool inverted)
{
	const uint64_t *w = buf;
	for (uint32_t i = 0; i < len / 8; i++) {
		uint64_t want = blk_pattern(sector * 512 + 8ull * i);
		if (w[i] != (inverted ? ~want : want))
			return 8 * (int64_t)i;
	}
	return -1;
}

static void fill_pattern(void *buf, uint64_t sector, uint32_t len, bool inverted)
{
	uint64_t *w = buf;
	for (uint32_t i = 0; i < len / 8; i++) {
		uint64_t v = blk_pattern(sector * 512 + 8ull * i);
		w[i] = inverted ? ~v : v;
	}
}

static const char *status_name(uint8_t s)
{
	switch (s) {
	case VIRTIO_BLK_S_OK:
		return "OK";
	case VIRTIO_BLK_S_IOERR:
		return "IOERR";
	case VIRTIO_BLK_S_UNSUPP:
		return "UNSUPP";
	case VBLK_TIMEOUT:
		return "no completion in 5 s";
	}
	return "bad status";
}

static bool check_read(struct vblk *b, uint8_t *buf, uint64_t sector, uint32_t len, bool pattern)
{
	uint8_t s = vblk_sync(b, VIRTIO_BLK_T_IN, sector, buf, len);
	if (!tap_check(s == VIRTIO_BLK_S_OK, "read sector %lu len %u: %s", sector, len,
		       status_name(s)))
		return false;
	int64_t d = pattern ? pattern_diff(buf, sector, len, false) : -1;
	return tap_check(d < 0, "read sector %lu len %u: wrong data at byte %ld", sector, len, d);
}

/* Several reads in flight at once, one notification, completions in any order. */
static void batch_reads(struct vblk *b, uint8_t *buf, bool pattern)
{
	enum { N = 16 };
	uint64_t sectors[N];
	uint64_t x = 0x243F6A8885A308D3ull;
	unsigned done = 0;
	for (unsigned i = 0; i < N; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		sectors[i] = x % (b->capacity - 8);
		if (!tap_check(vblk_submit(b, i, VIRTIO_BLK_T_IN, sectors[i], buf + 4096 * i,
					   4096) >= 0,
			       "batch: could not queue request %u", i))
			return;
	}
	virtq_kick(&b->q);
	uint64_t end = deadline_ms(5000);
	while (done < N && !expired(end)) {
		void *cookie;
		uint32_t len;
		if (!virtq_get(&b->q, &cookie, &len)) {
			cpu_relax();
			continue;
		}
		done++;
		if (!tap_check(cookie, "batch: %s", b->vd.error ? b->vd.error : "bad completion"))
			continue;
		struct vblk_req *r = cookie;
		unsigned i = (unsigned)r->tag;
		tap_check(r->status == VIRTIO_BLK_S_OK, "batch read %u (sector %lu): %s", i,
			  sectors[i], status_name(r->status));
		tap_check(len >= 4097, "batch read %u: used length %u, want >= 4097", i, len);
		int64_t d = pattern ? pattern_diff(buf + 4096 * i, sectors[i], 4096, false) : -1;
		tap_check(d < 0, "batch read %u (sector %lu): wrong data at byte %ld", i,
			  sectors[i], d);
	}
	tap_check(done == N, "batch: %u of %u completions in 5 s", done, N);
	tap_note("batch of %u reads: %lu notifications for %lu kicks so far", N, b->q.notifies,
		 b->q.kicks);
}

static void write_tests(struct vblk *b, uint8_t *buf)
{
	uint32_t len = WRITE_LEN * 512;
	fill_pattern(buf, WRITE_AT, len, true);
	/* two requests in one batch */
	bool queued = vblk_submit(b, 0, VIRTIO_BLK_T_OUT, WRITE_AT, buf, len / 2) >= 0 &&
		      vblk_submit(b, 1, VIRTIO_BLK_T_OUT, WRITE_AT + WRITE_LEN / 2, buf + len / 2,
				  len / 2) >= 0;
	if (!tap_check(queued, "could not queue the writes"))
		return;
	virtq_kick(&b->q);
	for (int i = 0; i < 2; i++) {
		void *cookie;
		uint32_t used;
		if (!tap_check(virtq_wait(&b->q, &cookie, &used, 5000) && cookie,
			       "write %d: no completion", i))
			return;
		struct vblk_req *r = cookie;
		tap_check(r->status == VIRTIO_BLK_S_OK, "write at sector %lu: %s", r->sector,
			  status_name(r->status));
	}
	if (b->vd.features & F_FLUSH) {
		uint8_t s = vblk_sync(b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
		tap_check(s == VIRTIO_BLK_S_OK, "flush: %s", status_name(s));
	} else {
		tap_note("VIRTIO_BLK_F_FLUSH not offered");
	}
	memset(buf, 0, len);
	uint8_t s = vblk_sync(b, VIRTIO_BLK_T_IN, WRITE_AT, buf, len);
	int64_t d = pattern_diff(buf, WRITE_AT, len, true);
	tap_check(s == VIRTIO_BLK_S_OK && d < 0, "read back of written sectors: %s, diff at %ld",
		  status_name(s), d);
	tap_note("wrote sectors %u-%u", WRITE_AT, WRITE_AT + WRITE_LEN - 1);

	struct vblk_range *seg = (void *)(buf + len);
	if (b->vd.features & F_WRITE_ZEROES) {
		uint32_t max = (uint32_t)virtio_cfg_read(&b->vd, CFG_MAX_WZ_SECTORS, 4);
		*seg = (struct vblk_range){ZERO_AT, ZERO_LEN, 0};
		tap_check(max >= ZERO_LEN, "max_write_zeroes_sectors %u < %u", max, ZERO_LEN);
		s = vblk_sync(b, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, sizeof(*seg));
		tap_check(s == VIRTIO_BLK_S_OK, "write zeroes: %s", status_name(s));
		memset(buf, 0xAA, ZERO_LEN * 512);
		s = vblk_sync(b, VIRTIO_BLK_T_IN, ZERO_AT, buf, ZERO_LEN * 512);
		bool zero = true;
		for (uint32_t i = 0; i < ZERO_LEN * 512; i++)
			zero &= !buf[i];
		tap_check(s == VIRTIO_BLK_S_OK && zero, "zeroed sectors do not read as zero (%s)",
			  status_name(s));
		tap_note("write-zeroes sectors %u-%u", ZERO_AT, ZERO_AT + ZERO_LEN - 1);
	} else {
		tap_note("VIRTIO_BLK_F_WRITE_ZEROES not offered");
	}
	if (b->vd.features & F_DISCARD) {
		uint32_t max = (uint32_t)virtio_cfg_read(&b->vd, CFG_MAX_DISCARD_SECTORS, 4);
		*seg = (struct vblk_range){DISCARD_AT, DISCARD_LEN, 0};
		tap_check(max >= DISCARD_LEN, "max_discard_sectors %u < %u", max, DISCARD_LEN);
		s = vblk_sync(b, VIRTIO_BLK_T_DISCARD, 0, seg, sizeof(*seg));
		tap_check(s == VIRTIO_BLK_S_OK, "discard: %s", status_name(s));
		tap_note("discard sectors %u-%u", DISCARD_AT, DISCARD_AT + DISCARD_LEN - 1);
	} else {
		tap_note("VIRTIO_BLK_F_DISCARD not offered");
	}
	if (b->vd.features & F_FLUSH) {
		s = vblk_sync(b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
		tap_check(s == VIRTIO_BLK_S_OK, "final flush: %s", status_name(s));
	}
}

static void readonly_tests(struct vblk *b, uint8_t *buf, bool pattern)
{
	tap_check(b->vd.offered & F_RO, "blkro=1 but VIRTIO_BLK_F_RO not offered");
	fill_pattern(buf, 10, 4096, true);
	uint8_t s = vblk_sync(b, VIRTIO_BLK_T_OUT, 10, buf, 4096);
	tap_check(s == VIRTIO_BLK_S_IOERR, "write to a read-only disk: %s, want IOERR",
		  status_name(s));
	check_read(b, buf, 10, 4096, pattern);
}

static void get_id(struct vblk *b, uint8_t *buf)
{
	memset(buf, 0xEE, 20);
	uint8_t s = vblk_sync(b, VIRTIO_BLK_T_GET_ID, 0, buf, 20);
	if (!tap_check(s == VIRTIO_BLK_S_OK, "GET_ID: %s", status_name(s)))
		return;
	char id[21];
	memcpy(id, buf, 20);
	id[20] = 0;
	size_t n = strlen(id);
	bool printable = true;
	for (size_t i = 0; i < n; i++)
		printable &= id[i] >= 0x20 && id[i] < 0x7F;
	tap_check(printable, "GET_ID: not printable");
	tap_note("GET_ID \"%s\"", id);
	const char *want = cmdline_get("blkid");
	if (want)
		tap_check(!strcmp(id, want), "GET_ID \"%s\", want \"%s\"", id, want);
}

/* Waits for `count` completions on q; checks status and, for reads of 4 KiB
 * pieces laid out by scatter(), the data. */
static unsigned collect(struct vblk *b, struct virtq *q, unsigned count, const char *what)
{
	unsigned done = 0;
	uint64_t end = deadline_ms(5000);
	while (done < count && !expired(end)) {
		void *cookie;
		uint32_t len;
		if (!virtq_get(q, &cookie, &len)) {
			cpu_relax();
			continue;
		}
		done++;
		struct vblk_req *r = cookie;
		if (tap_check(r, "%s: %s", what, b->vd.error ? b->vd.error : "bad completion"))
			tap_check(r->status == VIRTIO_BLK_S_OK, "%s (sector %lu): %s", what,
				  r->sector, status_name(r->status));
	}
	tap_check(done == count, "%s: %u of %u completions in 5 s", what, done, count);
	return done;
}

/* A 16 KiB read whose four 4 KiB pieces land in reverse order in buf. */
static void scatter(uint8_t *buf, struct vq_seg seg[4])
{
	for (unsigned i = 0; i < 4; i++)
		seg[i] = (struct vq_seg){buf + 4096 * (3 - i), 4096};
}

static bool scattered_ok(const uint8_t *buf, uint64_t sector)
{
	for (unsigned i = 0; i < 4; i++)
		if (pattern_diff(buf + 4096 * (3 - i), sector + 8 * i, 4096, false) >= 0)
			return false;
	return true;
}

/* Scatter-gather reads through indirect tables, several in one batch. */
static void indirect_tests(struct vblk *b, uint8_t *buf, bool pattern)
{
	if (!(b->vd.features & VIRTIO_F_INDIRECT_DESC)) {
		tap_note("VIRTIO_F_RING_INDIRECT_DESC not offered");
		return;
	}
	enum { N = 8 };
	unsigned free0 = b->q.nfree;
	for (unsigned i = 0; i < N; i++) {
		struct vq_seg seg[4];
		scatter(buf + 16384 * i, seg);
		if (!tap_check(vblk_submit_segs(b, &b->q, i, VIRTIO_BLK_T_IN, 1000 + 40 * i, seg, 4,
						true) >= 0,
			       "indirect: could not queue request %u", i))
			return;
	}
	tap_check(b->q.nfree == free0 - N, "indirect: %u ring descriptors for %u requests",
		  free0 - b->q.nfree, N);
	virtq_kick(&b->q);
	collect(b, &b->q, N, "indirect read");
	for (unsigned i = 0; i < N && pattern; i++)
		tap_check(scattered_ok(buf + 16384 * i, 1000 + 40 * i),
			  "indirect read %u: wrong data", i);
	tap_note("%u scatter-gather reads (4 x 4 KiB each) through indirect tables", N);
}

/* With VIRTIO_BLK_F_MQ every queue serves requests, all kicked at once. */
static void mq_tests(struct vblk *b, uint8_t *buf, bool pattern)
{
	if (b->nq < 2) {
		tap_note("one queue (VIRTIO_BLK_F_MQ %s)",
			 b->vd.offered & F_MQ ? "offered with num_queues 1" : "not offered");
		return;
	}
	for (unsigned i = 0; i < b->nq; i++) {
		struct virtq *q = i ? &b->xq[i - 1] : &b->q;
		struct vq_seg seg[4];
		scatter(buf + 16384 * i, seg);
		if (!tap_check(vblk_submit_segs(b, q, i, VIRTIO_BLK_T_IN, 3000 + 64 * i, seg, 4,
						false) >= 0,
			       "queue %u: could not queue", i))
			return;
	}
	for (unsigned i = 0; i < b->nq; i++)
		virtq_kick(i ? &b->xq[i - 1] : &b->q);
	for (unsigned i = 0; i < b->nq; i++) {
		collect(b, i ? &b->xq[i - 1] : &b->q, 1, "multi-queue read");
		tap_check(!pattern || scattered_ok(buf + 16384 * i, 3000 + 64 * i),
			  "queue %u: wrong data", i);
	}
	tap_note("%u queues each served a read", b->nq);
}

/* Waits up to 1 s for DEVICE_NEEDS_RESET, which must come with a configuration
 * interrupt (MSI-X entry 0).  QEMU does not flag every case (it bounces a
 * buffer outside RAM, for one), so there a miss is only a note. */
static void needs_reset(struct vblk *b, const char *what, uint64_t cfg_irqs)
{
	uint64_t end = deadline_ms(1000);
	bool strict = on_hearth();
	while (!(virtio_status(&b->vd) & VIRTIO_S_NEEDS_RESET))
		if (expired(end)) {
			if (strict)
				tap_check(false, "%s: no DEVICE_NEEDS_RESET in 1 s (status 0x%x)",
					  what, virtio_status(&b->vd));
			else
				tap_note("%s: no DEVICE_NEEDS_RESET (not on hearth: not checked)",
					 what);
			return;
		}
	end = deadline_ms(100);
	while (irq_count[0x40] == cfg_irqs && !expired(end))
		cpu_relax();
	tap_check(irq_count[0x40] > cfg_irqs, "%s: no configuration interrupt", what);
}

static bool reopen(struct vblk *b, uint8_t *buf, const char *after)
{
	if (!tap_check(vblk_open(b, VIRTIO_IRQ_MSIX, 0x40, 0), "re-initialisation after %s: %s",
		       after, b->vd.error))
		return false;
	uint8_t s = vblk_sync(b, VIRTIO_BLK_T_IN, 0, buf, 4096);
	return tap_check(s == VIRTIO_BLK_S_OK, "read after %s: %s", after, status_name(s));
}

/*
 * What no driver may do: the device must stop the queue, set
 * DEVICE_NEEDS_RESET and raise a configuration interrupt, and a reset must
 * bring it back.  Each case builds a valid request and then breaks it.
 */
static void bad_driver_tests(struct vblk *b, uint8_t *buf)
{
	volatile struct vq_desc *d = b->q.desc;

	/* a data buffer far outside guest RAM */
	uint64_t cfg = irq_count[0x40];
	int head = vblk_submit(b, 0, VIRTIO_BLK_T_IN, 0, buf, 4096);
	if (!tap_check(head >= 0, "could not queue"))
		return;
	d[d[head].next].addr = 1ull << 46;
	virtq_kick(&b->q);
	needs_reset(b, "buffer outside RAM", cfg);
	if (!reopen(b, buf, "a buffer outside RAM"))
		return;

	/* a chain that loops back to its head */
	cfg = irq_count[0x40];
	head = vblk_submit(b, 0, VIRTIO_BLK_T_IN, 0, buf, 4096);
	uint16_t last = d[d[head].next].next;
	d[last].flags |= 1; /* VIRTQ_DESC_F_NEXT */
	d[last].next = (uint16_t)head;
	virtq_kick(&b->q);
	needs_reset(b, "looped chain", cfg);
	if (!reopen(b, buf, "a looped chain"))
		return;

	/* the available index moved by more than the queue size */
	cfg = irq_count[0x40];
	vblk_submit(b, 0, VIRTIO_BLK_T_IN, 0, buf, 4096);
	b->q.avail_idx += b->q.size;
	virtq_kick(&b->q);
	mmio_write16(b->q.notify, b->q.index); /* even if EVENT_IDX said not to */
	needs_reset(b, "avail index jump", cfg);
	if (!reopen(b, buf, "an avail index jump"))
		return;

	/* an indirect descriptor inside an indirect table */
	if (b->vd.features & VIRTIO_F_INDIRECT_DESC) {
		cfg = irq_count[0x40];
		struct vq_seg seg = {buf, 4096};
		head = vblk_submit_segs(b, &b->q, 0, VIRTIO_BLK_T_IN, 0, &seg, 1, true);
		b->ind[1].flags |= 4; /* VIRTQ_DESC_F_INDIRECT on the data descriptor */
		virtq_kick(&b->q);
		needs_reset(b, "nested indirect table", cfg);
		if (!reopen(b, buf, "a nested indirect table"))
			return;
	}

	/* features the device did not offer (hearth refuses them; QEMU drops them) */
	if (on_hearth()) {
		uint64_t bad = 0;
		for (int bit = 63; bit >= 0 && !bad; bit--)
			if (!(b->vd.offered & (1ull << bit)))
				bad = 1ull << bit;
		tap_check(!virtio_try_features(&b->vd, b->vd.offered | bad),
			  "FEATURES_OK kept with feature 0x%lx that was not offered", bad);
		tap_check(!virtio_try_features(&b->vd, b->vd.offered & ~VIRTIO_F_VERSION_1),
			  "FEATURES_OK kept without VIRTIO_F_VERSION_1");
		reopen(b, buf, "refused features");
	}
	tap_note("bad driver: buffer outside RAM, looped chain, avail index jump, nested "
		 "indirect table, each followed by a reset and re-initialisation");
}

/* Reset with requests possibly in flight, then a full re-initialisation. */
static void reset_tests(struct vblk *b, uint8_t *buf, bool pattern)
{
	for (unsigned i = 0; i < 8; i++)
		vblk_submit(b, i, VIRTIO_BLK_T_IN, 8 * i, buf + 4096 * i, 4096);
	virtq_kick(&b->q);
	tap_check(virtio_reset(&b->vd), "reset: %s", b->vd.error);
	if (!tap_check(vblk_open(b, VIRTIO_IRQ_MSIX, 0x40, 0), "re-initialisation: %s",
		       b->vd.error))
		return;
	check_read(b, buf, 0, 4096, pattern);
	check_read(b, buf, b->capacity - 8, 4096, pattern);
	tap_note("reset and re-initialised; reads work");
}

void test_virtio_blk(void)
{
	static struct vblk b;
	static uint8_t *buf;
	bool pattern = cmdline_get("disk") && !strcmp(cmdline_get("disk"), "pattern");
	if (!buf)
		buf = page_alloc(256 * 1024);
	if (!tap_check(buf, "out of memory"))
		return;
	if (!tap_check(vblk_open(&b, VIRTIO_IRQ_MSIX, 0x40, 0), "%s", b.vd.error))
		return;
	tap_note("00:%02x.%u offered 0x%lx negotiated 0x%lx; %lu sectors, blk_size %u, "
		 "seg_max %u, size_max %u, queue size %u, %u of %u queues, MSI-X %u vectors",
		 b.vd.pci->dev, b.vd.pci->fn, b.vd.offered, b.vd.features, b.capacity, b.blk_size,
		 b.seg_max, b.size_max, b.q.size, b.nq, virtio_num_queues(&b.vd), b.vd.msix_n);
	if (!tap_check(b.capacity >= 8192, "capacity %lu sectors, the test needs 8192", b.capacity))
		return;
	check_read(&b, buf, 0, 512, pattern);
	check_read(&b, buf, 1, 4096, pattern);
	check_read(&b, buf, 333, 65536, pattern);
	check_read(&b, buf, b.capacity - 1, 512, pattern);
	batch_reads(&b, buf, pattern);
	indirect_tests(&b, buf, pattern);
	mq_tests(&b, buf, pattern);

	uint8_t s = vblk_sync(&b, VIRTIO_BLK_T_IN, b.capacity, buf, 512);
	tap_check(s == VIRTIO_BLK_S_IOERR, "read past the end: %s, want IOERR", status_name(s));
	s = vblk_sync(&b, VIRTIO_BLK_T_IN, b.capacity - 1, buf, 1024);
	tap_check(s == VIRTIO_BLK_S_IOERR, "read across the end: %s, want IOERR", status_name(s));
	s = vblk_sync(&b, 0x7777, 0, buf, 512);
	tap_check(s == VIRTIO_BLK_S_UNSUPP, "unknown request type: %s, want UNSUPP",
		  status_name(s));

	get_id(&b, buf);
	if (cmdline_get("blkro"))
		readonly_tests(&b, buf, pattern);
	else
		tap_check(!(b.vd.offered & F_RO), "VIRTIO_BLK_F_RO offered on a writable disk");
	if (cmdline_get("blkwrite") && !cmdline_get("blkro"))
		write_tests(&b, buf);
	bad_driver_tests(&b, buf);
	reset_tests(&b, buf, pattern);
	tap_check(!b.vd.error, "%s", b.vd.error);
	virtio_reset(&b.vd);
}
