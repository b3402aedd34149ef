/*
 * First ring-3 code: boot.S irets here with IF=1.  The banner goes out before
 * anything else because hearth's start-up benchmark measures the time to the
 * first serial byte.
 */
#include "testos.h"

#define MB_BOOT_MAGIC 0x2BADB002

uint32_t boot_magic;
const struct mb_info *mbi;
NORETURN void count_main(void); /* count.c: the checkpoint workload ("count", "touch=MB") */

NORETURN void debug_exit(uint8_t code)
{
	outb(PORT_DEBUG_EXIT, code);
	/* Only reached without an exit device (or while it is taking effect). */
	delay_us(100000);
	outb(PORT_I8042_CMD, 0xFE);
	for (;;)
		cpu_relax();
}

NORETURN void i8042_reset(void)
{
	outb(PORT_I8042_CMD, 0xFE);
	delay_us(100000);
	debug_exit(0);
}

static const char *const exc_names[NR_EXCEPTIONS] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#09", "#TS",
	"#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

/* boot.S irets here (IF=0, own stack) after saving the exception frame. */
NORETURN void fault_report(void)
{
	const volatile uint64_t *f = fault_info;
	const char *name = f[0] < NR_EXCEPTIONS && exc_names[f[0]] ? exc_names[f[0]] : "?";

	/* The fault may have hit in the middle of the UART test. */
	outb(COM1 + 3, 0x03);
	outb(COM1 + 4, 0x03);
	serial_early_init();
	kprintf("\nBail out! exception %s (vector %lu) err 0x%lx rip 0x%lx cs 0x%lx (ring %lu) "
		"rsp 0x%lx cr2 0x%lx on apic %u\n",
		name, f[0], f[1], f[2], f[3], f[3] & 3, f[5], f[6], lapic_id());
	debug_exit(0x7f);
}

/* Deliberate faults, to test the exception path and the VMM's handling of it. */
NORETURN static void crash(const char *how)
{
	if (!strcmp(how, "pf"))
		*(volatile uint32_t *)(uintptr_t)0x100000000000ull = 1;
	else if (!strcmp(how, "gp"))
		__asm__ volatile("cli");
	else if (!strcmp(how, "ud"))
		__asm__ volatile("ud2");
	else if (!strcmp(how, "de"))
		__asm__ volatile("divl %0" : : "r"(0), "a"(1), "d"(0));
	else if (!strcmp(how, "triple"))
		__asm__ volatile("ud2" : : "D"(UD_TRIPLE));
	else if (!strcmp(how, "emulation"))
		__asm__ volatile("ud2" : : "D"(UD_EMUFAIL), "a"(0) : "memory");
	kprintf("# crash=%s: unknown or did not fault (want pf, gp, ud, de, triple, emulation)\n",
		how);
	debug_exit(1);
}

NORETURN void user_main(uint32_t mbi_addr, uint32_t magic)
{
	iobitmap[IOBITMAP_SIZE] = 0xFF; /* bitmap terminator; .bss starts zeroed */
	boot_magic = magic;
	if (magic == MB_BOOT_MAGIC)
		mbi = (const struct mb_info *)(uintptr_t)mbi_addr;
	cmdline_init(mb_cmdline());
	serial_early_init();

	const char *bench = cmdline_get("bench");
	const char *test = cmdline_get("test");
	const char *crash_how = cmdline_get("crash");
	if (bench && !strcmp(bench, "boot")) {
		serial_write("hearth-testos ready\n", 20);
		debug_exit(0);
	}
	if (bench)
		kprintf("# hearth-testos bench %s\n", bench);
	else if (crash_how)
		kprintf("# hearth-testos crash=%s\n", crash_how);
	else if (test)
		kprintf("TAP version 13\n");
	else
		kprintf("hearth-testos demo\n");
	serial_init();
	if (cmdline_get("count"))
		count_main();

	if (magic != MB_BOOT_MAGIC) {
		kprintf("Bail out! not started by a multiboot loader (eax 0x%x)\n", magic);
		debug_exit(1);
	}
	if (bench)
		bench_main(bench);
	if (crash_how)
		crash(crash_how);
	if (test) {
		kprintf("# hearth-testos cmdline: %s\n", cmdline_raw());
		debug_exit(tap_run(*test ? test : NULL) ? 1 : 0);
	}
	demo_main();
}
