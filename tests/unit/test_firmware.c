/* Firmware ROM: accepted and refused sizes and files, the window ending at 4 GiB and its alias
 * ending at 1 MiB, and that the image reaches the guest byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hearth/error.h"
#include "x86/firmware.h"
#include "x86/memmap.h"
#include "testutil.h"

static char dir[] = "/tmp/hearth-fw-XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rm_tree(dir);
}

/* A ROM whose bytes encode their own offset, so any misplaced window shows. */
static const char *write_rom(const char *name, size_t size)
{
	static char path[256];
	uint8_t *buf = malloc(size ? size : 1);
	FILE *f;

	for (size_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(i * 7 + (i >> 12));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, size, f), size);
	fclose(f);
	free(buf);
	return path;
}

static void check_loaded(size_t size)
{
	struct firmware fw;
	const char *path = write_rom("rom.bin", size);
	uint64_t alias = size < 0x20000 ? size : 0x20000;
	const uint8_t *r0, *r1;

	assert_int_equal(firmware_load(path, &fw), 0);
	assert_int_equal(fw.size, size);
	assert_int_equal(fw.nregions, 2);
	/* the whole ROM ends at 4 GiB; the reset vector (4 GiB - 16) is its 16th-last byte */
	assert_int_equal(fw.region[0].gpa, 0x100000000ULL - size);
	assert_int_equal(fw.region[0].size, size);
	assert_int_equal(fw.region[0].gpa + fw.region[0].size, 0x100000000ULL);
	/* the alias ends at 1 MiB and shows the ROM's last bytes */
	assert_int_equal(fw.region[1].gpa, 0x100000 - alias);
	assert_int_equal(fw.region[1].size, alias);
	assert_int_equal(firmware_alias_size(size), alias);
	r0 = fw.region[0].hva;
	r1 = fw.region[1].hva;
	assert_int_equal((uintptr_t)r0 % 4096, 0);
	assert_int_equal((uintptr_t)r1 % 4096, 0);
	for (size_t i = 0; i < size; i += 509)
		assert_int_equal(r0[i], (uint8_t)(i * 7 + (i >> 12)));
	assert_memory_equal(r1, r0 + size - alias, alias);
	/* the byte at the reset vector is the same through both windows */
	assert_int_equal(r0[0xFFFFFFF0ULL - fw.region[0].gpa], r1[0xFFFF0 - fw.region[1].gpa]);
	firmware_free(&fw);
	assert_null(fw.rom);
	assert_int_equal(fw.nregions, 0);
}

static void test_sizes_accepted(void **state)
{
	(void)state;
	check_loaded(4096);
	check_loaded(64 * 1024);
	check_loaded(128 * 1024);
	check_loaded(256 * 1024);
	check_loaded(16 * 1024 * 1024);
}

static void refused(const char *path, const char *what)
{
	struct firmware fw;

	hearth_err_clear();
	assert_int_equal(firmware_load(path, &fw), -1);
	assert_non_null(strstr(hearth_err_msg(), path));
	assert_non_null(strstr(hearth_err_msg(), what));
	assert_null(strchr(hearth_err_msg(), '\n'));
	assert_null(fw.rom);
	firmware_free(&fw); /* safe on an empty one */
}

static void test_sizes_refused(void **state)
{
	(void)state;
	refused(write_rom("empty.bin", 0), "empty");
	refused(write_rom("odd.bin", 4095), "multiple of 4 KiB");
	refused(write_rom("odd2.bin", 65536 + 512), "multiple of 4 KiB");
	refused(write_rom("big.bin", 16 * 1024 * 1024 + 4096), "larger than 16 MiB");
}

static void test_bad_files(void **state)
{
	char path[256];
	(void)state;

	snprintf(path, sizeof(path), "%s/missing.bin", dir);
	refused(path, "cannot open");
	refused(dir, "not a regular file");
}

static void test_layout_pure(void **state)
{
	struct firmware_region r[FIRMWARE_MAX_REGIONS];
	static uint8_t rom[8192] __attribute__((aligned(4096)));
	(void)state;

	assert_int_equal(firmware_layout(rom, sizeof(rom), r), 2);
	assert_int_equal(r[0].gpa, 0xFFFFE000ULL);
	assert_ptr_equal(r[0].hva, rom);
	assert_int_equal(r[1].gpa, 0xFE000);
	assert_int_equal(r[1].size, 8192);
	assert_int_equal(firmware_layout(rom, 100, r), -1);
	/* the alias always fits the RAM carve-out memmap allows */
	struct memmap_slot s[MEMMAP_MAX_SLOTS];
	assert_int_equal(memmap_ram_slots(64 << 20, firmware_alias_size(16 << 20), s), 2);
	assert_int_equal(s[0].gpa + s[0].size, 0xE0000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes_accepted),
		cmocka_unit_test(test_sizes_refused),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_layout_pure),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
