/*
 * virtio-blk benchmarks (bench/blk.sh runs them under hearth and QEMU on the
 * same image):
 *
 *   bench=blk-randread:QD   4 KiB reads at random 4 KiB-aligned offsets
 *   bench=blk-seqread[:QD]  1 MiB reads from sector 0 on, wrapping at the end
 *   bench=blk-seqwrite[:QD] 1 MiB writes the same way
 *
 * options: ops=N (requests; default: run for secs=T, default 5), bs=BYTES
 * (sequential request size, default 1 MiB), wait=irq.  QD requests stay in
 * flight: each poll of the used ring resubmits what completed and notifies
 * once.  By default the device is asked for no interrupts and the vCPU spins
 * in ring 3; wait=irq gives the queue an MSI-X vector and sleeps in ring 0
 * (hlt) whenever nothing has completed, as a real guest would.
 *
 * Result lines, parsed by bench/blk.sh:
 *   # bench blk-randread qd=QD ops=N bytes=B tsc=CYCLES tsc_khz=K notifies=M errors=E
 *     wait=poll|irq irqs=I
 */
#include "testos.h"

static struct vblk b;

/* Where the next request goes, in requests of bs from the start: a xorshift64 step for random
 * reads (the same sequence in every VMM), else the one after the last, wrapping at span. */
static uint64_t next_at(bool rnd, uint64_t *x, uint64_t *next, uint64_t span)
{
	if (!rnd)
		return (*next)++ % span;
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x % span;
}

NORETURN void blk_bench_main(const char *spec)
{
	const char *kind = spec;
	size_t klen = 0;
	while (kind[klen] && kind[klen] != ':')
		klen++;
	bool rnd = klen == 12 && !strncmp(kind, "blk-randread", 12);
	bool sread = klen == 11 && !strncmp(kind, "blk-seqread", 11);
	bool swrite = klen == 12 && !strncmp(kind, "blk-seqwrite", 12);
	uint64_t qd = rnd ? 1 : 4, ops = 0, secs = 5, bs = rnd ? 4096 : 1 << 20;
	if (kind[klen] == ':' && !parse_u64(kind + klen + 1, kind + strlen(kind), &qd))
		qd = 0;
	cmdline_u64("ops", &ops);
	cmdline_u64("secs", &secs);
	if (!rnd)
		cmdline_u64("bs", &bs);
	if ((!rnd && !sread && !swrite) || !qd || !bs || bs % 512 || bs > (16u << 20)) {
		kprintf("# bench: bad spec \"%s\" (want blk-randread:QD, blk-seqread[:QD] or "
			"blk-seqwrite[:QD]; bs a multiple of 512 up to 16 MiB)\n",
			spec);
		debug_exit(1);
	}
	bool irq = cmdline_get("wait") && !strcmp(cmdline_get("wait"), "irq");
	if (!vblk_open(&b, irq ? VIRTIO_IRQ_MSIX : VIRTIO_IRQ_NONE, 0x40, 0)) {
		kprintf("# bench: virtio-blk: %s\n", b.vd.error);
		debug_exit(1);
	}
	unsigned segs = b.size_max ? (unsigned)((bs + b.size_max - 1) / b.size_max) : 1;
	if (qd * (segs + 2) > b.q.size) {
		kprintf("# bench: qd %lu needs %lu descriptors, the queue has %u\n", qd,
			qd * (segs + 2), b.q.size);
		debug_exit(1);
	}
	uint64_t span = b.capacity * 512 / bs; /* requests that fit the disk */
	if (!span) {
		kprintf("# bench: disk of %lu sectors is smaller than one request\n", b.capacity);
		debug_exit(1);
	}
	uint8_t *buf = page_alloc(qd * bs);
	if (!buf) {
		kprintf("# bench: no memory for %lu x %lu bytes\n", qd, bs);
		debug_exit(1);
	}
	for (uint64_t i = 0; i < qd * bs / 8; i++)
		((uint64_t *)buf)[i] = blk_pattern(8 * i);
	if (!irq)
		virtq_quiet(&b.q);
	uint32_t type = swrite ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	uint64_t x = 0x9E3779B97F4A7C15ull, next = 0, issued = 0, done = 0, errors = 0;
	uint64_t per_ms = tsc_per_ms(); /* calibrated before the clock starts */
	uint64_t irqs0 = irq_count[0x40 + (b.q.vector & 0xFF)];
	uint64_t t0 = rdtsc(), end = t0 + secs * 1000 * per_ms;
	bool stop = false;

	for (unsigned s = 0; s < qd; s++) {
		uint64_t at = next_at(rnd, &x, &next, span);
		if (ops && issued >= ops)
			break;
		vblk_submit(&b, s, type, at * (bs / 512), buf + s * bs, (uint32_t)bs);
		issued++;
	}
	virtq_kick(&b.q);
	while (done < issued) {
		void *cookie;
		uint32_t len;
		bool any = false;
		while (virtq_get(&b.q, &cookie, &len)) {
			any = true;
			done++;
			struct vblk_req *r = cookie;
			if (!r) {
				kprintf("# bench: %s\n", b.vd.error);
				debug_exit(1);
			}
			errors += r->status != VIRTIO_BLK_S_OK;
			if (!stop)
				stop = ops ? issued >= ops : expired(end);
			if (stop)
				continue;
			unsigned s = (unsigned)r->tag;
			uint64_t at = next_at(rnd, &x, &next, span);
			vblk_submit(&b, s, type, at * (bs / 512), buf + s * bs, (uint32_t)bs);
			issued++;
		}
		if (any)
			virtq_kick(&b.q);
		else if (irq)
			virtq_idle(&b.q);
		else
			cpu_relax();
	}
	uint64_t t1 = rdtsc();
	unsigned vec = 0x40 + b.q.vector;
	kprintf("# bench %.*s qd=%lu ops=%lu bytes=%lu tsc=%lu tsc_khz=%lu notifies=%lu "
		"errors=%lu wait=%s irqs=%lu\n",
		(int)klen, kind, qd, done, done * bs, t1 - t0, per_ms, b.q.notifies, errors,
		irq ? "irq" : "poll", irq ? irq_count[vec] - irqs0 : 0);
	virtio_reset(&b.vd);
	debug_exit(errors ? 1 : 0);
}
