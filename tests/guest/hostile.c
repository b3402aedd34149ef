/*
 * A hostile guest: thousands of random port and MMIO accesses, of every size, at the
 * devices hearth emulates in user space. The test passes when hearth is still there to
 * hear about it. Left alone: what would end the VM by design (debug-exit, the i8042 and
 * 0xCF9 reset paths), COM1 (it carries the TAP output), and KVM's in-kernel devices (PIC,
 * PIT, IOAPIC, LAPIC), whose random programming would only aim interrupts at this test OS.
 * The seed is printed so a failure can be replayed with hostile-seed=N.
 */
#include "testos.h"

static uint64_t rng_state;

static uint64_t next(void)
{
	/* xorshift64: enough to spread values over ports, offsets and data */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static bool port_spared(uint16_t p)
{
	return (p >= 0x20 && p <= 0x21) || (p >= 0xa0 && p <= 0xa1) || /* PICs */
	       (p >= 0x40 && p <= 0x43) || p == 0x61 ||		       /* PIT, speaker */
	       (p >= 0x4d0 && p <= 0x4d1) ||			       /* ELCR */
	       p == 0x60 || p == 0x64 ||			       /* i8042: reset paths */
	       (p >= 0xf4 && p <= 0xf7) ||			       /* debug-exit */
	       (p >= 0x3f8 && p <= 0x3ff) ||			       /* COM1: the TAP output */
	       p == 0xcf9;					       /* PCI reset register */
}

/* The MMIO that hearth (not KVM) serves: PCI BARs, testdev, ECAM; a little beyond each. */
static uintptr_t mmio_target(uint64_t r)
{
	static const uintptr_t bases[] = {0xc0000000u, 0xc0010000u, 0xd0000000u,
					  0xd1000000u, 0xe0000000u, 0xe0008000u};
	uintptr_t base = bases[r % (sizeof(bases) / sizeof(bases[0]))];
	return base + ((r >> 8) & 0xfffc);
}

void test_hostile(void)
{
	uint64_t seed, n = 4000, ports = 0, mmios = 0;

	if (!cmdline_u64("hostile-seed", &seed))
		seed = rdtsc() | 1;
	cmdline_u64("hostile-n", &n);
	rng_state = seed;
	tap_note("seed %llu (replay with hostile-seed=%llu)", (unsigned long long)seed,
		 (unsigned long long)seed);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t r = next(), v = next();
		unsigned size = 1u << (r & 3) % 3; /* 1, 2 or 4 */
		if ((r >> 2) & 1) {
			uint16_t p = (uint16_t)(r >> 16);
			/* the TSS bitmap ends at port 0xffff: a wider access past it is #GP */
			if (p > 0x10000 - size || port_spared(p) ||
			    port_spared((uint16_t)(p + size - 1)))
				continue;
			ports++;
			if ((r >> 3) & 1) {
				if (size == 1)
					outb(p, (uint8_t)v);
				else if (size == 2)
					outw(p, (uint16_t)v);
				else
					outl(p, (uint32_t)v);
			} else {
				(void)(size == 1 ? inb(p) : size == 2 ? inw(p) : inl(p));
			}
		} else {
			uintptr_t a = mmio_target(r >> 16) & ~(uintptr_t)(size - 1);
			mmios++;
			if ((r >> 3) & 1) {
				if (size == 1)
					mmio_write8(a, (uint8_t)v);
				else if (size == 2)
					mmio_write16(a, (uint16_t)v);
				else
					mmio_write32(a, (uint32_t)v);
			} else {
				(void)(size == 1   ? mmio_read8(a)
				       : size == 2 ? mmio_read16(a)
						   : mmio_read32(a));
			}
		}
	}
	tap_note("%llu port and %llu MMIO accesses", (unsigned long long)ports,
		 (unsigned long long)mmios);
	/* still here, and the platform still answers */
	tap_check(inb(0x3fd) != 0xff, "COM1 no longer answers");
}
