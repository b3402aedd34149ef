/* MP table: found the way a guest finds it (scan of 0xF0000-0xFFFFF), checksums, entry counts
 * and contents for 1, 2, 8 and the maximum CPUs, the builder, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fakevm.h"
#include "hearth/error.h"
#include "hearth/le.h"
#include "x86/mptable.h"

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* As a guest does: 16-byte steps through the BIOS area for "_MP_" with a good checksum. */
static const uint8_t *scan(struct fakevm *f)
{
	const uint8_t *hit = NULL;

	for (uint32_t a = 0xF0000; a < 0x100000; a += 16) {
		const uint8_t *p = f->ram + a;

		if (memcmp(p, "_MP_", 4) || p[8] != 1 || sum(p, 16))
			continue;
		assert_null(hit); /* exactly one */
		hit = p;
	}
	return hit;
}

struct parsed {
	unsigned cpus, buses, ioapics, ioints, lints;
	uint8_t isa_pin[16]; /* 0xFF: no entry */
	unsigned extint_lint0, nmi_lint1;
	uint8_t ioapic_id;
	const uint8_t *cfg;
};

static struct parsed parse(struct fakevm *f, unsigned ncpus)
{
	struct parsed r;
	const uint8_t *fp = scan(f), *cfg, *e, *end;
	unsigned last_type = 0, count;

	memset(&r, 0, sizeof(r));
	memset(r.isa_pin, 0xFF, sizeof(r.isa_pin));
	assert_non_null(fp);
	assert_int_equal(fp[9], 4);  /* spec revision 1.4 */
	assert_int_equal(fp[11], 0); /* a configuration table follows: no default config */
	assert_int_equal(fp[12], 0); /* virtual wire mode, no IMCR */
	assert_true(le_get32(fp + 4) + 44 <= 0x100000);
	cfg = f->ram + le_get32(fp + 4);
	r.cfg = cfg;
	assert_memory_equal(cfg, "PCMP", 4);
	assert_int_equal(cfg[6], 4);
	assert_int_equal(sum(cfg, le_get16(cfg + 4)), 0);
	assert_memory_equal(cfg + 8, "HEARTH  ", 8);
	assert_memory_equal(cfg + 16, "hearth      ", 12);
	assert_int_equal(le_get32(cfg + 36), 0xFEE00000);
	assert_int_equal(le_get16(cfg + 40), 0); /* no extended table */
	count = le_get16(cfg + 34);
	e = cfg + 44;
	end = cfg + le_get16(cfg + 4);
	for (unsigned i = 0; i < count; i++) {
		assert_true(e < end);
		assert_true(e[0] >= last_type); /* entries sorted by type */
		last_type = e[0];
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], r.cpus); /* APIC ids 0..n-1 */
			assert_int_equal(e[2], 0x14);
			assert_int_equal(e[3], r.cpus == 0 ? 3 : 1); /* enabled, BSP on 0 */
			r.cpus++;
			e += 20;
			continue;
		case 1:
			r.buses++;
			break;
		case 2:
			r.ioapics++;
			r.ioapic_id = e[1];
			assert_int_equal(e[2], 0x11);
			assert_int_equal(e[3], 1);
			assert_int_equal(le_get32(e + 4), 0xFEC00000);
			break;
		case 3:
			r.ioints++;
			assert_int_equal(e[6], r.ioapic_id);
			if (e[4] == MPTABLE_ISA_BUS && e[5] < 16 && e[1] == 0) {
				assert_int_equal(r.isa_pin[e[5]], 0xFF);
				r.isa_pin[e[5]] = e[7];
			}
			break;
		case 4:
			r.lints++;
			assert_int_equal(e[6], 0xFF); /* all local APICs */
			if (e[1] == 3 && e[7] == 0)
				r.extint_lint0++;
			if (e[1] == 1 && e[7] == 1)
				r.nmi_lint1++;
			break;
		default:
			fail_msg("entry type %u", e[0]);
		}
		e += 8;
	}
	assert_ptr_equal(e, end); /* length matches the entries */
	assert_int_equal(r.cpus, ncpus);
	return r;
}

static void check_cpus(unsigned ncpus)
{
	struct fakevm *f = fakevm_new(64 << 20);
	struct parsed r;

	assert_int_equal(mptable_build(&f->vm, ncpus), 0);
	r = parse(f, ncpus);
	assert_int_equal(le_get16(r.cfg + 34), ncpus + 19);
	assert_int_equal(r.buses, 1);
	assert_int_equal(r.ioapics, 1);
	assert_int_equal(r.ioapic_id, ncpus);
	assert_int_equal(r.ioints, 15);
	assert_int_equal(r.lints, 2);
	assert_int_equal(r.extint_lint0, 1);
	assert_int_equal(r.nmi_lint1, 1);
	/* the ISA bus entry */
	assert_memory_equal(r.cfg + 44 + 20 * ncpus, "\x01\x01ISA   ", 8);
	/* IRQ 0 -> pin 2, IRQ 2 absent, the rest identity */
	assert_int_equal(r.isa_pin[0], 2);
	assert_int_equal(r.isa_pin[2], 0xFF);
	for (unsigned irq = 1; irq < 16; irq++)
		if (irq != 2)
			assert_int_equal(r.isa_pin[irq], irq);
	/* nothing written outside the BIOS area */
	for (uint32_t a = 0; a < 0xF0000; a += 4096)
		assert_int_equal(f->ram[a], 0);
	fakevm_free(f);
}

static void test_one_cpu(void **state)
{
	(void)state;
	check_cpus(1);
}

static void test_two_cpus(void **state)
{
	(void)state;
	check_cpus(2);
}

static void test_eight_cpus(void **state)
{
	(void)state;
	check_cpus(8);
}

static void test_max_cpus(void **state)
{
	(void)state;
	check_cpus(MPTABLE_MAX_CPUS);
}

static void test_ncpus_refused(void **state)
{
	struct fakevm *f = fakevm_new(64 << 20);
	(void)state;

	hearth_err_clear();
	assert_int_equal(mptable_build(&f->vm, 0), -1);
	assert_non_null(strstr(hearth_err_msg(), "0 CPUs"));
	assert_int_equal(mptable_build(&f->vm, 255), -1);
	assert_non_null(strstr(hearth_err_msg(), "255 CPUs"));
	assert_null(scan(f)); /* nothing written */
	fakevm_free(f);
}

static void test_no_ram(void **state)
{
	struct fakevm *f = fakevm_new(512 << 10);
	(void)state;

	hearth_err_clear();
	assert_int_equal(mptable_build(&f->vm, 1), -1);
	assert_non_null(strstr(hearth_err_msg(), "no guest RAM"));
	fakevm_free(f);
}

static void test_isa_pin(void **state)
{
	(void)state;
	assert_int_equal(mptable_isa_irq_pin(0), 2);
	assert_int_equal(mptable_isa_irq_pin(1), 1);
	assert_int_equal(mptable_isa_irq_pin(2), -1);
	assert_int_equal(mptable_isa_irq_pin(4), 4);
	assert_int_equal(mptable_isa_irq_pin(15), 15);
	assert_int_equal(mptable_isa_irq_pin(16), -1);
}

static void test_builder_pci_and_cpuid(void **state)
{
	struct fakevm *f = fakevm_new(64 << 20);
	static struct mptable t;
	struct parsed r;
	/* PCI device 3, INTA -> pin 16, level, active low */
	struct mptable_irq pci = {MP_INT, MP_IRQ_PCI, 0, 3 << 2, 16};
	const uint8_t *e;
	(void)state;

	assert_int_equal(mptable_init(&t, 2, 0x000806EC, 0x178BFBFF), 0);
	assert_int_equal(mptable_add_bus(&t, 0, "PCI"), 0);
	assert_int_equal(mptable_add_irq(&t, &pci), 0);
	assert_int_equal(mptable_config_size(&t), 44 + 2 * 20 + (2 + 1 + 16 + 2) * 8);
	assert_int_equal(mptable_write(&f->vm, &t), 0);
	r = parse(f, 2);
	assert_int_equal(r.buses, 2);
	assert_int_equal(r.ioints, 16);
	assert_int_equal(le_get16(r.cfg + 4), mptable_config_size(&t));
	/* CPUID signature and features on every processor entry */
	assert_int_equal(le_get32(r.cfg + 44 + 4), 0x000806EC);
	assert_int_equal(le_get32(r.cfg + 44 + 20 + 8), 0x178BFBFF);
	/* bus entries in the order added, then the IOAPIC, then the ISA interrupts, then PCI */
	e = r.cfg + 44 + 40;
	assert_memory_equal(e + 8, "\x01\x00PCI   ", 8);
	e += 16 + 8 + 15 * 8;
	assert_memory_equal(e, "\x03\x00\x0F\x00\x00\x0C\x02\x10", 8);
	fakevm_free(f);
}

static void test_builder_refusals(void **state)
{
	static struct mptable t;
	struct mptable_irq irq = {MP_INT, 0, 7, 0, 5};
	(void)state;

	assert_int_equal(mptable_init(&t, 1, 0, 0), 0);
	hearth_err_clear();
	assert_int_equal(mptable_add_bus(&t, 1, ""), -1);
	assert_int_equal(mptable_add_bus(&t, 1, "TOOLONG"), -1);
	assert_non_null(strstr(hearth_err_msg(), "TOOLONG"));
	assert_int_equal(mptable_add_bus(&t, MPTABLE_ISA_BUS, "PCI"), -1);
	assert_non_null(strstr(hearth_err_msg(), "already used"));
	assert_int_equal(mptable_add_irq(&t, &irq), -1);
	assert_non_null(strstr(hearth_err_msg(), "bus 7"));
	irq.bus = MPTABLE_ISA_BUS;
	irq.pin = 24;
	assert_int_equal(mptable_add_irq(&t, &irq), -1);
	assert_non_null(strstr(hearth_err_msg(), "pin 24"));
	irq.pin = 5;
	irq.type = 4;
	assert_int_equal(mptable_add_irq(&t, &irq), -1);
	irq.type = MP_INT;
	irq.flags = 0x10;
	assert_int_equal(mptable_add_irq(&t, &irq), -1);
	irq.flags = 0;
	for (unsigned i = t.nirq; i < MPTABLE_MAX_IRQS; i++)
		assert_int_equal(mptable_add_irq(&t, &irq), 0);
	assert_int_equal(mptable_add_irq(&t, &irq), -1);
	assert_non_null(strstr(hearth_err_msg(), "more than"));
	for (unsigned i = t.nbus; i < MPTABLE_MAX_BUSES; i++)
		assert_int_equal(mptable_add_bus(&t, (uint8_t)(10 + i), "PCI"), 0);
	assert_int_equal(mptable_add_bus(&t, 200, "PCI"), -1);
	/* a full table still fits the BIOS area */
	struct fakevm *f = fakevm_new(64 << 20);
	assert_int_equal(mptable_write(&f->vm, &t), 0);
	fakevm_free(f);
	/* an uninitialised table is refused */
	memset(&t, 0, sizeof(t));
	f = fakevm_new(64 << 20);
	assert_int_equal(mptable_write(&f->vm, &t), -1);
	fakevm_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_cpu),
		cmocka_unit_test(test_two_cpus),
		cmocka_unit_test(test_eight_cpus),
		cmocka_unit_test(test_max_cpus),
		cmocka_unit_test(test_ncpus_refused),
		cmocka_unit_test(test_no_ram),
		cmocka_unit_test(test_isa_pin),
		cmocka_unit_test(test_builder_pci_and_cpuid),
		cmocka_unit_test(test_builder_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
