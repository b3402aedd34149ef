/*
 * AP start-up from ring 3: copy the real-mode trampoline below 1 MiB, give
 * the AP its own TSS (own RSP0, shared I/O bitmap) and stacks, then
 * INIT-SIPI-SIPI through the LAPIC.  APs are started one at a time because
 * they share the ap_boot parameter block.  Once in ring 3 an AP records its
 * APIC id and spins on pause (hlt is ring 0 only).
 */
#include "testos.h"

struct cpu_state cpus[MAX_CPUS];
unsigned nr_cpu_slots = 1;
static volatile uint32_t aps_online;

static uint8_t ap_kstacks[MAX_CPUS][KSTACK_SIZE] __attribute__((aligned(16)));
static uint8_t ap_ustacks[MAX_CPUS][AP_USTACK_SIZE] __attribute__((aligned(16)));

NORETURN void ap_main(unsigned idx)
{
	cpus[idx].apic_id = lapic_id();
	cpus[idx].tsc_online = rdtsc();
	__atomic_store_n(&cpus[idx].online, 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&aps_online, 1, __ATOMIC_RELAXED);
	for (;;)
		cpu_relax();
}

struct page_check {
	uint64_t start, end;
	bool usable;
};

static void page_in_ram(uint64_t addr, uint64_t len, uint32_t type, void *arg)
{
	struct page_check *c = arg;
	if (type == 1 && addr <= c->start && addr + len >= c->end)
		c->usable = true;
}

/* A free page below 1 MiB: not holding loader data, MP table or EBDA. */
static uint32_t tramp_page(const struct mp_info *mp)
{
	uint32_t ebda = (uint32_t) * (const uint16_t *)phys(0x40E) << 4;
	for (uint32_t i = 0; i < 0x9F; i++) {
		uint32_t a = ((8 + i) % 0x9F) << 12; /* 0x8000 first */
		if (!a)
			continue;
		struct page_check c = {a, a + 4096, !(mbi->flags & MB_INFO_MMAP)};
		mb_mmap_walk(page_in_ram, &c);
		if (!c.usable || mb_range_reserved(a, a + 4096))
			continue;
		if (ebda && a + 4096 > ebda)
			continue;
		if (mp->found &&
		    ((mp->fp_addr >> 12) == a >> 12 || (mp->cfg_addr >> 12) == a >> 12))
			continue;
		return a;
	}
	return 0;
}

static void setup_cpu(unsigned idx)
{
	uint8_t *tss = tss_array + idx * TSS_STRIDE;
	uint64_t rsp0 = (uintptr_t)(ap_kstacks[idx] + KSTACK_SIZE);
	uint16_t iomap = (uint16_t)(iobitmap - tss);
	uint64_t base = (uintptr_t)tss, limit = iomap + IOBITMAP_SIZE;

	memset(tss, 0, TSS_STRIDE);
	memcpy(tss + TSS_RSP0, &rsp0, 8);
	memcpy(tss + TSS_IOMAP, &iomap, 2);
	/* Rewritten on every start: a restarted AP's old descriptor is busy. */
	gdt[GDT_FIXED + 2 * idx] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) |
				   (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
	gdt[GDT_FIXED + 2 * idx + 1] = base >> 32;
	ap_boot[0] = rsp0;
	ap_boot[1] = (uintptr_t)(ap_ustacks[idx] + AP_USTACK_SIZE) - 8;
	ap_boot[2] = SEL_TSS0 + 16 * idx;
	ap_boot[3] = idx;
}

static bool start_one(unsigned idx, uint8_t apic_id, uint32_t page)
{
	struct cpu_state *c = &cpus[idx];
	c->online = 0;
	c->apic_id = 0xFFFFFFFF;
	c->expected_apic = apic_id;
	setup_cpu(idx);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	c->tsc_start = rdtsc();
	c->ipi_ok = lapic_ipi(apic_id, 0x4500); /* INIT, level assert */
	delay_us(100);
	c->ipi_ok &= lapic_ipi(apic_id, 0x4600 | (page >> 12)); /* SIPI */
	uint64_t end = deadline_ms(1);
	while (!c->online && !expired(end))
		cpu_relax();
	if (!c->online)
		c->ipi_ok &= lapic_ipi(apic_id, 0x4600 | (page >> 12));
	end = deadline_ms(1000);
	while (!__atomic_load_n(&c->online, __ATOMIC_ACQUIRE) && !expired(end))
		cpu_relax();
	return c->online;
}

/* Returns the number of APs that came up, or -1 without a trampoline page. */
int smp_start_aps(const struct mp_info *mp)
{
	uint8_t self = lapic_id();
	uint32_t page = tramp_page(mp);
	int up = 0;
	if (!page)
		return -1;
	memcpy((void *)(uintptr_t)page, ap_tramp, (size_t)(ap_tramp_end - ap_tramp));
	lapic_enable();
	cpus[0].online = 1;
	cpus[0].apic_id = self;
	cpus[0].expected_apic = self;
	nr_cpu_slots = 1;
	for (unsigned i = 0; i < mp->nr_cpus && i < MAX_CPUS; i++) {
		if (!(mp->cpus[i].flags & MP_CPU_EN) || mp->cpus[i].apic_id == self)
			continue;
		if (nr_cpu_slots == MAX_CPUS)
			break;
		up += start_one(nr_cpu_slots++, mp->cpus[i].apic_id, page);
	}
	return up;
}

void test_smp(void)
{
	const struct mp_info *mp = mp_get();
	uint64_t want;
	if (!tap_check(mp->found, "MP table: %s", mp->error ? mp->error : "not found"))
		return;
	tap_check(!mp->error, "MP table: %s", mp->error);
	tap_note("MP table at 0x%x (config 0x%x, %u bytes, OEM \"%s\" product \"%s\")", mp->fp_addr,
		 mp->cfg_addr, mp->cfg_len, mp->oem, mp->product);
	tap_check(mp->nr_cpus <= MAX_CPUS, "%u processor entries; test OS supports %u", mp->nr_cpus,
		  MAX_CPUS);
	if (cmdline_u64("cpus", &want))
		tap_check(mp->nr_enabled == want,
			  "MP table lists %u enabled CPUs, cmdline cpus=%lu", mp->nr_enabled, want);
	tap_check(mp->nr_ioapics == 1 && mp->ioapic_addr == IOAPIC_DEFAULT,
		  "expected one IOAPIC at 0x%x, table has %u (first at 0x%x)", IOAPIC_DEFAULT,
		  mp->nr_ioapics, mp->ioapic_addr);

	uint8_t self = lapic_id();
	unsigned bsps = 0;
	for (unsigned i = 0; i < mp->nr_cpus && i < MAX_CPUS; i++) {
		if (mp->cpus[i].flags & MP_CPU_BP) {
			bsps++;
			tap_check(mp->cpus[i].apic_id == self,
				  "MP table BSP has APIC id %u, running BSP has %u",
				  mp->cpus[i].apic_id, self);
		}
	}
	tap_check(bsps == 1, "%u processor entries flagged as BSP", bsps);

	int up = smp_start_aps(mp);
	if (!tap_check(up >= 0, "no free page below 1 MiB for the AP trampoline"))
		return;
	for (unsigned i = 1; i < nr_cpu_slots; i++) {
		struct cpu_state *c = &cpus[i];
		if (!tap_check(c->online, "AP apic %u did not report in within 1 s%s",
			       c->expected_apic, c->ipi_ok ? "" : " (ICR stayed busy)"))
			continue;
		tap_check(c->apic_id == c->expected_apic,
			  "AP started as apic %u reports apic id %u", c->expected_apic, c->apic_id);
		tap_note("AP apic %u online after %lu us", c->apic_id,
			 cycles_to_us(c->tsc_online - c->tsc_start));
	}
	tap_check(aps_online >= (uint32_t)up, "online counter %u < %d", aps_online, up);
	tap_note("%u CPUs in MP table (%u enabled), %d APs started", mp->nr_cpus, mp->nr_enabled,
		 up);
}
