/*
 * The hooks that are not bus ranges: testdev's MSR (through KVM's user-space MSR exits),
 * its CPUID leaf (applied to each vCPU's table) and its hypercall (a port write; see
 * docs/hypercalls.md). Only hearth has them; elsewhere the test skips with a reason.
 */
#include "testos.h"

#define TESTDEV_MSR 0x4b564e00u
#define TESTDEV_LEAF 0x40000100u
#define TESTDEV_HYPERCALL 0x48525448u
#define HYPERCALL_PORT 0x0cf4

static uint64_t rdmsr_user(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("ud2" : "=a"(lo), "=d"(hi) : "c"(msr), "D"(UD_RDMSR) : "memory");
	return (uint64_t)hi << 32 | lo;
}

static void wrmsr_user(uint32_t msr, uint64_t v)
{
	__asm__ volatile("ud2"
			 :
			 : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)), "D"(UD_WRMSR)
			 : "memory");
}

static uint64_t hypercall(uint32_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
	uint64_t ret = nr;
	__asm__ volatile("outl %%eax, %%dx"
			 : "+a"(ret)
			 : "d"(HYPERCALL_PORT), "b"(a0), "c"(a1), "S"(a3)
			 : "memory");
	(void)a2;
	return ret;
}

void test_hooks(void)
{
	if (!testdev_present() && !cmdline_list_has("require", "testdev")) {
		tap_skip("no testdev");
		return;
	}
	/* boot.S read the leaf at entry: under PVM a cpuid in long mode gets the host's */
	const uint32_t *r = early_cpuid;
	tap_check(r[0] == TESTDEV_ID && r[1] == 0 && r[2] == TESTDEV_LEAF && r[3] == 0,
		  "CPUID 0x%x: %08x %08x %08x %08x, want ID, vCPU 0, the leaf, subleaf 0",
		  TESTDEV_LEAF, r[0], r[1], r[2], r[3]);

	tap_check(rdmsr_user(TESTDEV_MSR) == 0, "MSR 0x%x does not start at 0", TESTDEV_MSR);
	wrmsr_user(TESTDEV_MSR, 0x0123456789abcdefull);
	uint64_t v = rdmsr_user(TESTDEV_MSR);
	tap_check(v == 0x0123456789abcdefull, "MSR 0x%x reads 0x%llx after a write", TESTDEV_MSR,
		  (unsigned long long)v);

	/* rdx carries the port, so argument 2 is the port number; the device weighs each
	 * argument differently, so a lost or swapped one shows */
	uint64_t got = hypercall(TESTDEV_HYPERCALL, 1, 10, 0, 1000);
	uint64_t want = (1 + 2 * 10 + 3 * HYPERCALL_PORT + 4 * 1000) ^ TESTDEV_ID;
	tap_check(got == want, "hypercall: 0x%llx, want 0x%llx", (unsigned long long)got,
		  (unsigned long long)want);
	got = hypercall(0x1234, 1, 2, 0, 3);
	tap_check(got == ~0ull, "unhooked hypercall: 0x%llx, want all ones",
		  (unsigned long long)got);
}
