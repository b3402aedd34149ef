/*
 * Exit-cost micro-benchmarks: N writes from ring 3 to a hooked port or MMIO
 * register, timed with rdtsc.  The result line is parsed by bench/ scripts,
 * so its format is fixed: "# bench <kind> n=<N> tsc=<cycles>".
 */
#include "testos.h"

NORETURN void bench_main(const char *spec)
{
	if (!strncmp(spec, "blk-", 4))
		blk_bench_main(spec);
	const char *colon = spec;
	while (*colon && *colon != ':')
		colon++;
	uint64_t n = 0;
	bool pio = !strncmp(spec, "pio:", 4), mmio = !strncmp(spec, "mmio:", 5);
	if ((!pio && !mmio) || !parse_u64(colon + 1, colon + 1 + strlen(colon + 1), &n)) {
		kprintf("# bench: unknown spec \"%s\" (want boot, pio:N, mmio:N or blk-...)\n",
			spec);
		debug_exit(1);
	}
	uint64_t t0 = rdtsc();
	if (pio)
		for (uint64_t i = 0; i < n; i++)
			outl(TESTDEV_PORT + 4, (uint32_t)i);
	else
		for (uint64_t i = 0; i < n; i++)
			mmio_write32(TESTDEV_MMIO + 4, (uint32_t)i);
	uint64_t t1 = rdtsc();
	kprintf("# bench %s n=%lu tsc=%lu\n", pio ? "pio" : "mmio", n, t1 - t0);
	debug_exit(0);
}
