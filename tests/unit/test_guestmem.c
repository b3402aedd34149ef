/* Guest-memory helpers: a range is handed out only when every byte is RAM of one slot, with
 * no sum that can wrap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakevm.h"
#include "hearth/guestmem.h"

#define SLOT 0x10000

static struct fakevm *f;
static uint8_t *low, *high;

static int setup(void **state)
{
	(void)state;
	f = fakevm_new(0);
	low = calloc(1, SLOT);
	high = calloc(1, SLOT);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fakevm_free(f);
	free(low);
	free(high);
	return 0;
}

static void slot(unsigned i, uint64_t gpa, uint64_t size, uint8_t *hva)
{
	f->vm.ram[i] = (struct hearth_ram_slot){gpa, size, hva};
	if (f->vm.nram <= i)
		f->vm.nram = i + 1;
}

static void no_ram(void **state)
{
	uint8_t b = 0x5a;

	(void)state;
	assert_null(hearth_gpa_ptr(&f->vm, 0, 1));
	assert_null(hearth_gpa_ptr(&f->vm, 0, 0));
	assert_int_equal(hearth_gpa_read(&f->vm, 0, &b, 1), -1);
	assert_int_equal(hearth_gpa_write(&f->vm, 0, &b, 1), -1);
	assert_int_equal(b, 0x5a);
}

static void one_slot_edges(void **state)
{
	const uint64_t base = 0x100000;

	(void)state;
	slot(0, base, SLOT, low);
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, base, 1), low);
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, base, SLOT), low);
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, base + SLOT - 1, 1), low + SLOT - 1);
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, base + SLOT - 4, 4), low + SLOT - 4);
	assert_null(hearth_gpa_ptr(&f->vm, base + SLOT - 1, 2)); /* one past the end */
	assert_null(hearth_gpa_ptr(&f->vm, base, SLOT + 1));
	assert_null(hearth_gpa_ptr(&f->vm, base - 1, 1)); /* one before */
	assert_null(hearth_gpa_ptr(&f->vm, base - 1, 2)); /* starts before, ends inside */
	assert_null(hearth_gpa_ptr(&f->vm, base + SLOT, 1));
	assert_null(hearth_gpa_ptr(&f->vm, 0, 1));
	assert_null(hearth_gpa_ptr(&f->vm, base + 8, UINT64_MAX));
	assert_null(hearth_gpa_ptr(&f->vm, base + 8, UINT64_MAX - base));
	assert_null(hearth_gpa_ptr(&f->vm, UINT64_MAX, 1));
}

static void zero_length(void **state)
{
	uint8_t b = 0x77;

	(void)state;
	slot(0, 0x1000, SLOT, low);
	/* inside RAM an empty range is fine; outside it is not */
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, 0x1000, 0), low);
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, 0x1000 + SLOT - 1, 0), low + SLOT - 1);
	assert_null(hearth_gpa_ptr(&f->vm, 0x1000 + SLOT, 0));
	assert_null(hearth_gpa_ptr(&f->vm, 0, 0));
	assert_int_equal(hearth_gpa_read(&f->vm, 0x1000, &b, 0), 0);
	assert_int_equal(hearth_gpa_write(&f->vm, 0x1000, &b, 0), 0);
	assert_int_equal(hearth_gpa_read(&f->vm, 0, &b, 0), -1);
	assert_int_equal(b, 0x77);
}

static void wrap_around_refused(void **state)
{
	(void)state;
	/* a slot that ends exactly at the top of the address space */
	slot(0, UINT64_MAX - SLOT + 1, SLOT, high);
	slot(1, 0, SLOT, low);
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, UINT64_MAX, 1), high + SLOT - 1);
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, UINT64_MAX - SLOT + 1, SLOT), high);
	assert_null(hearth_gpa_ptr(&f->vm, UINT64_MAX, 2));	 /* would wrap to 0 */
	assert_null(hearth_gpa_ptr(&f->vm, UINT64_MAX - 1, 16)); /* into the slot at 0 */
	assert_null(hearth_gpa_ptr(&f->vm, UINT64_MAX - SLOT + 1, SLOT + 1));
	assert_null(hearth_gpa_ptr(&f->vm, UINT64_MAX, UINT64_MAX));
	assert_null(hearth_gpa_ptr(&f->vm, 1, UINT64_MAX));
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, 0, SLOT), low);
}

static void two_slots(void **state)
{
	uint8_t buf[8] = {1, 2, 3, 4, 5, 6, 7, 8}, back[8];

	(void)state;
	/* adjacent in guest space, separate on the host: a range may not cross */
	slot(0, 0, SLOT, low);
	slot(1, SLOT, SLOT, high);
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, SLOT - 1, 1), low + SLOT - 1);
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, SLOT, 1), high);
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, 2 * SLOT - 8, 8), high + SLOT - 8);
	assert_null(hearth_gpa_ptr(&f->vm, SLOT - 4, 8));
	assert_null(hearth_gpa_ptr(&f->vm, 0, 2 * SLOT));
	assert_null(hearth_gpa_ptr(&f->vm, 2 * SLOT, 1));

	assert_int_equal(hearth_gpa_write(&f->vm, SLOT + 16, buf, 8), 0);
	assert_memory_equal(high + 16, buf, 8);
	assert_int_equal(hearth_gpa_read(&f->vm, SLOT + 16, back, 8), 0);
	assert_memory_equal(back, buf, 8);
	/* a failed copy copies nothing */
	memset(back, 0xee, sizeof(back));
	assert_int_equal(hearth_gpa_read(&f->vm, SLOT - 4, back, 8), -1);
	for (int i = 0; i < 8; i++)
		assert_int_equal(back[i], 0xee);
	assert_int_equal(hearth_gpa_write(&f->vm, SLOT - 4, buf, 8), -1);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(low[SLOT - 4 + i], 0);
		assert_int_equal(high[i], 0);
	}
	/* with a hole between them */
	slot(1, 4 * SLOT, SLOT, high);
	assert_null(hearth_gpa_ptr(&f->vm, 2 * SLOT, 1));
	assert_ptr_equal(hearth_gpa_ptr(&f->vm, 4 * SLOT, 1), high);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(no_ram), T(one_slot_edges), T(zero_length), T(wrap_around_refused), T(two_slots),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
