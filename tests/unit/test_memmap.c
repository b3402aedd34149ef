/* Guest physical layout: RAM slots and the e820-style map for the sizes that matter (below,
 * at and above the 3 GiB hole), the firmware window carve-out, and the size rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dev/machine.h"
#include "hearth/error.h"
#include "x86/memmap.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void assert_slot(const struct memmap_slot *s, uint64_t gpa, uint64_t size, uint64_t off)
{
	assert_int_equal(s->gpa, gpa);
	assert_int_equal(s->size, size);
	assert_int_equal(s->offset, off);
}

static void assert_entry(const struct memmap_entry *e, uint64_t addr, uint64_t size, uint32_t type)
{
	assert_int_equal(e->addr, addr);
	assert_int_equal(e->size, size);
	assert_int_equal(e->type, type);
}

/* The entries every size shares, up to and including the LAPIC page. */
static void assert_common(const struct memmap_entry *e, uint64_t low_top)
{
	assert_entry(&e[0], 0, 0x9FC00, MEMMAP_USABLE);
	assert_entry(&e[1], 0x9FC00, 0x400, MEMMAP_RESERVED);
	assert_entry(&e[2], 0xF0000, 0x10000, MEMMAP_RESERVED);
	assert_entry(&e[3], 0x100000, low_top - 0x100000, MEMMAP_USABLE);
	assert_entry(&e[4], 0xFEC00000, 0x1000, MEMMAP_RESERVED);
	assert_entry(&e[5], 0xFEE00000, 0x1000, MEMMAP_RESERVED);
}

/* Entries are sorted and never overlap. */
static void assert_sorted(const struct memmap_entry *e, int n)
{
	for (int i = 1; i < n; i++)
		assert_true(e[i - 1].addr + e[i - 1].size <= e[i].addr);
}

static void test_256m(void **state)
{
	struct memmap_slot s[MEMMAP_MAX_SLOTS];
	struct memmap_entry e[MEMMAP_MAX_ENTRIES];
	(void)state;

	assert_int_equal(memmap_ram_slots(256 * MiB, 0, s), 1);
	assert_slot(&s[0], 0, 256 * MiB, 0);
	assert_int_equal(memmap_entries(256 * MiB, e), 6);
	assert_common(e, 256 * MiB);
	assert_sorted(e, 6);
	assert_int_equal(memmap_low_top(256 * MiB), 256 * MiB);
}

static void test_3g(void **state)
{
	struct memmap_slot s[MEMMAP_MAX_SLOTS];
	struct memmap_entry e[MEMMAP_MAX_ENTRIES];
	(void)state;

	assert_int_equal(memmap_ram_slots(3 * GiB, 0, s), 1);
	assert_slot(&s[0], 0, 3 * GiB, 0);
	assert_int_equal(memmap_entries(3 * GiB, e), 6);
	assert_common(e, 3 * GiB);
}

static void test_4g(void **state)
{
	struct memmap_slot s[MEMMAP_MAX_SLOTS];
	struct memmap_entry e[MEMMAP_MAX_ENTRIES];
	(void)state;

	assert_int_equal(memmap_ram_slots(4 * GiB, 0, s), 2);
	assert_slot(&s[0], 0, 3 * GiB, 0);
	assert_slot(&s[1], 4 * GiB, 1 * GiB, 3 * GiB);
	assert_int_equal(memmap_entries(4 * GiB, e), 7);
	assert_common(e, 3 * GiB);
	assert_entry(&e[6], 4 * GiB, 1 * GiB, MEMMAP_USABLE);
	assert_sorted(e, 7);
}

static void test_5g(void **state)
{
	struct memmap_slot s[MEMMAP_MAX_SLOTS];
	struct memmap_entry e[MEMMAP_MAX_ENTRIES];
	(void)state;

	assert_int_equal(memmap_ram_slots(5 * GiB, 0, s), 2);
	assert_slot(&s[0], 0, 3 * GiB, 0);
	assert_slot(&s[1], 4 * GiB, 2 * GiB, 3 * GiB);
	assert_int_equal(memmap_entries(5 * GiB, e), 7);
	assert_common(e, 3 * GiB);
	assert_entry(&e[6], 4 * GiB, 2 * GiB, MEMMAP_USABLE);
}

static void test_usable_ram_equals_size_less_legacy(void **state)
{
	const uint64_t sizes[] = {2 * MiB, 256 * MiB, 3 * GiB, 4 * GiB, 5 * GiB, 1024 * GiB};
	(void)state;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct memmap_entry e[MEMMAP_MAX_ENTRIES];
		int n = memmap_entries(sizes[i], e);
		uint64_t usable = 0;

		assert_true(n > 0);
		for (int j = 0; j < n; j++)
			if (e[j].type == MEMMAP_USABLE)
				usable += e[j].size;
		/* only 0x9FC00..1 MiB of RAM is withheld */
		assert_int_equal(usable, sizes[i] - (0x100000 - 0x9FC00));
	}
}

static void test_firmware_window_splits_low_ram(void **state)
{
	struct memmap_slot s[MEMMAP_MAX_SLOTS];
	(void)state;

	assert_int_equal(memmap_ram_slots(256 * MiB, 0x20000, s), 2);
	assert_slot(&s[0], 0, 0xE0000, 0);
	assert_slot(&s[1], 0x100000, 255 * MiB, 0x100000);

	assert_int_equal(memmap_ram_slots(5 * GiB, 0x10000, s), 3);
	assert_slot(&s[0], 0, 0xF0000, 0);
	assert_slot(&s[1], 0x100000, 3 * GiB - 0x100000, 0x100000);
	assert_slot(&s[2], 4 * GiB, 2 * GiB, 3 * GiB);

	hearth_err_clear();
	assert_int_equal(memmap_ram_slots(256 * MiB, 0x800, s), -1);
	assert_non_null(strstr(hearth_err_msg(), "firmware window"));
	assert_int_equal(memmap_ram_slots(256 * MiB, 0x70000, s), -1);
}

static void test_bad_sizes(void **state)
{
	struct memmap_slot s[MEMMAP_MAX_SLOTS];
	struct memmap_entry e[MEMMAP_MAX_ENTRIES];
	(void)state;

	hearth_err_clear();
	assert_int_equal(memmap_check_size(256 * MiB + 1), -1);
	assert_non_null(strstr(hearth_err_msg(), "multiple of 4 KiB"));
	assert_int_equal(memmap_check_size(1 * MiB), -1);
	assert_non_null(strstr(hearth_err_msg(), "minimum"));
	assert_int_equal(memmap_check_size(0), -1);
	assert_int_equal(memmap_check_size(1025 * GiB), -1);
	assert_non_null(strstr(hearth_err_msg(), "maximum"));
	assert_int_equal(memmap_check_size(2 * MiB), 0);
	assert_int_equal(memmap_ram_slots(1 * MiB, 0, s), -1);
	assert_int_equal(memmap_entries(12345, e), -1);
	assert_int_equal(memmap_reserved(0, e), -1);
}

static void test_reserved(void **state)
{
	struct memmap_entry r[MEMMAP_MAX_RESERVED];
	(void)state;

	assert_int_equal(memmap_reserved(256 * MiB, r), 2);
	assert_entry(&r[0], 0x9FC00, 0x100000 - 0x9FC00, MEMMAP_RESERVED);
	assert_entry(&r[1], 3 * GiB, 1 * GiB, MEMMAP_RESERVED);
}

static void test_is_usable(void **state)
{
	(void)state;

	assert_true(memmap_is_usable(256 * MiB, 0, 0x9FC00));
	assert_false(memmap_is_usable(256 * MiB, 0, 0x9FC01));
	assert_false(memmap_is_usable(256 * MiB, 0xF0000, 16));
	assert_false(memmap_is_usable(256 * MiB, 0xFFFFF, 2)); /* straddles 1 MiB */
	assert_true(memmap_is_usable(256 * MiB, 0x100000, 255 * MiB));
	assert_false(memmap_is_usable(256 * MiB, 0x100000, 255 * MiB + 1));
	assert_false(memmap_is_usable(256 * MiB, 0x100000, UINT64_MAX)); /* no wrap */
	assert_false(memmap_is_usable(256 * MiB, UINT64_MAX, 2));
	assert_true(memmap_is_usable(5 * GiB, 4 * GiB, 2 * GiB));
	assert_false(memmap_is_usable(5 * GiB, 3 * GiB - 4096, 8192)); /* into the hole */
	assert_false(memmap_is_usable(12345, 0, 1));		       /* bad size */
}

static void test_setup_vm(void **state)
{
	static uint8_t buf[4 * MiB];
	struct hearth_vm vm;
	(void)state;

	memset(&vm, 0, sizeof(vm));
	assert_int_equal(memmap_setup_vm(&vm, buf, sizeof(buf), 0x20000), 0);
	assert_int_equal(vm.nram, 2);
	assert_int_equal(vm.ram_size, sizeof(buf));
	assert_ptr_equal(vm.ram[0].hva, buf);
	assert_int_equal(vm.ram[0].size, 0xE0000);
	assert_ptr_equal(vm.ram[1].hva, buf + 0x100000);
	assert_int_equal(vm.ram[1].gpa, 0x100000);
	assert_int_equal(vm.ram[1].size, 3 * MiB);
	assert_int_equal(memmap_setup_vm(&vm, buf, 4097, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_256m),
		cmocka_unit_test(test_3g),
		cmocka_unit_test(test_4g),
		cmocka_unit_test(test_5g),
		cmocka_unit_test(test_usable_ram_equals_size_less_legacy),
		cmocka_unit_test(test_firmware_window_splits_low_ram),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_reserved),
		cmocka_unit_test(test_is_usable),
		cmocka_unit_test(test_setup_vm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
