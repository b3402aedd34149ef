/*
 * Human-readable tour of what the platform offers.  Ends with the i8042
 * reset command, which hearth treats as a clean power-off (exit status 0).
 */
#include "testos.h"

static void print_mmap_entry(uint64_t addr, uint64_t len, uint32_t type, void *arg)
{
	(void)arg;
	kprintf("  0x%016lx-0x%016lx %s\n", addr, addr + len - 1, mb_mmap_type(type));
}

static void show_multiboot(void)
{
	const char *loader = mb_loader_name();
	kprintf("cmdline: %s\n", cmdline_raw());
	kprintf("loader: %s, info flags 0x%x\n", loader ? loader : "(unnamed)", mbi->flags);
	if (mbi->flags & MB_INFO_MEM)
		kprintf("memory: lower %u KiB, upper %u KiB\n", mbi->mem_lower, mbi->mem_upper);
	if (mbi->flags & MB_INFO_MMAP) {
		kprintf("memory map:\n");
		if (mb_mmap_walk(print_mmap_entry, NULL) < 0)
			kprintf("  (malformed)\n");
	}
	uint32_t mods = (mbi->flags & MB_INFO_MODS) ? mbi->mods_count : 0;
	kprintf("modules: %u\n", mods);
	for (uint32_t i = 0; i < mods; i++) {
		const struct mb_module *m = mb_module(i);
		kprintf("  [%u] 0x%x-0x%x %u bytes \"%s\"\n", i, m->start, m->end,
			m->end - m->start, m->string ? (const char *)(uintptr_t)m->string : "");
	}
}

static void show_cpus(void)
{
	const struct mp_info *mp = mp_get();
	if (!mp->found) {
		kprintf("MP table: %s\n", mp->error ? mp->error : "not found");
		return;
	}
	kprintf("MP table at 0x%x, OEM \"%s\" product \"%s\"%s%s\n", mp->fp_addr, mp->oem,
		mp->product, mp->error ? ", problem: " : "", mp->error ? mp->error : "");
	kprintf("cpus: %u listed, %u enabled:", mp->nr_cpus, mp->nr_enabled);
	for (unsigned i = 0; i < mp->nr_cpus && i < MAX_CPUS; i++)
		kprintf(" apic %u%s%s", mp->cpus[i].apic_id,
			mp->cpus[i].flags & MP_CPU_BP ? " (BSP)" : "",
			mp->cpus[i].flags & MP_CPU_EN ? "" : " (disabled)");
	kprintf("\nioapic: %u, first id %u at 0x%x; ISA IRQ 4 -> pin %d\n", mp->nr_ioapics,
		mp->ioapic_id, mp->ioapic_addr, mp_isa_pin(4));
	int up = smp_start_aps(mp);
	if (up < 0) {
		kprintf("APs: no free page below 1 MiB for the trampoline\n");
		return;
	}
	kprintf("APs started: %d of %u\n", up, nr_cpu_slots - 1);
	for (unsigned i = 1; i < nr_cpu_slots; i++) {
		const struct cpu_state *c = &cpus[i];
		if (c->online)
			kprintf("  apic %u reported in after %lu us\n", c->apic_id,
				cycles_to_us(c->tsc_online - c->tsc_start));
		else
			kprintf("  apic %u did not report in\n", c->expected_apic);
	}
}

static void show_rtc(void)
{
	struct rtc_time t;
	bool ok = rtc_read(&t);
	kprintf("rtc: %04u-%02u-%02u %02u:%02u:%02u (%s, %s)%s\n", t.year, t.mon, t.mday, t.hour,
		t.min, t.sec, t.reg_b & 0x04 ? "binary" : "BCD", t.reg_b & 0x02 ? "24h" : "12h",
		ok ? "" : " INVALID");
}

void demo_main(void)
{
	show_multiboot();
	show_cpus();
	show_rtc();
	kprintf("uart: %s at 0x%x\n", uart_type(), COM1);
	kprintf("tsc: %lu kHz (%s)\n", tsc_per_ms(), tsc_freq_source());
	kprintf("testdev: %s\n", testdev_present() ? "present (id HRTH)" : "absent");
	kprintf("demo done, resetting via i8042\n");
	i8042_reset();
}
