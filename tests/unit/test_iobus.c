/* The sorted I/O bus: bisection against a brute-force reference, the edges of ranges and
 * of the address space, and dispatch under the owner's lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakevm.h"
#include "testutil.h"

static struct hearth_dev *new_owner(const char *id)
{
	struct hearth_dev *d = calloc(1, sizeof(*d));

	strcpy(d->id, id);
	pthread_mutex_init(&d->lock, NULL);
	return d;
}

static void free_owner(struct hearth_dev *d)
{
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Reads report which range answered and at what offset. */
struct tagged {
	unsigned index;
	struct hearth_dev *owner;
	unsigned reads, writes;
	uint64_t last_offset, last_value;
	unsigned last_size;
	bool lock_held;
};

static uint64_t tag_read(void *opaque, uint64_t offset, unsigned size)
{
	struct tagged *t = opaque;

	t->reads++;
	t->last_offset = offset;
	t->last_size = size;
	t->lock_held = dev_locked(t->owner);
	return (uint64_t)t->index << 32 | offset;
}

static void tag_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	struct tagged *t = opaque;

	t->writes++;
	t->last_offset = offset;
	t->last_value = value;
	t->last_size = size;
	t->lock_held = dev_locked(t->owner);
}

static const struct hearth_io_ops tag_ops = {.read = tag_read, .write = tag_write};

static void add_ok(struct hearth_iobus *bus, uint64_t base, uint64_t len, struct tagged *t)
{
	struct hearth_io_range r = {base, len, &tag_ops, t, t->owner};
	assert_int_equal(iobus_add(bus, &r), 0);
}

static const unsigned sizes[] = {1, 2, 4, 8};

static uint64_t mask(unsigned size)
{
	return size == 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

/* ---- bisection against a linear scan ---- */

#define NR 400

struct ref_range {
	uint64_t base, len;
	bool present;
};

static int ref_find(const struct ref_range *ref, unsigned n, uint64_t addr, unsigned size)
{
	for (unsigned i = 0; i < n; i++)
		if (ref[i].present && addr >= ref[i].base &&
		    addr + size <= ref[i].base + ref[i].len)
			return (int)i;
	return -1;
}

/* The reference for the port space: a flat map from each address to the range holding it. */
static void check_against_reference(struct hearth_iobus *bus, const struct ref_range *ref,
				    unsigned n)
{
	static int at[0x10000];
	struct hearth_io_range out;

	for (unsigned a = 0; a < 0x10000; a++)
		at[a] = -1;
	for (unsigned i = 0; i < n; i++)
		for (uint64_t a = ref[i].base; ref[i].present && a < ref[i].base + ref[i].len; a++)
			at[a] = (int)i;
	for (uint64_t a = 0; a < 0x10000; a++) {
		for (size_t s = 0; s < 4; s++) {
			uint64_t last = a + sizes[s] - 1;
			int want = last < 0x10000 && at[a] == at[last] ? at[a] : -1;
			bool got = iobus_find(bus, a, sizes[s], &out);
			assert_int_equal(got, want >= 0);
			if (got) {
				assert_int_equal(out.base, ref[want].base);
				assert_int_equal(out.len, ref[want].len);
				uint64_t v = iobus_read(bus, a, sizes[s]);
				uint64_t expect = ((uint64_t)want << 32 | (a - ref[want].base));
				assert_int_equal(v, expect & mask(sizes[s]));
			} else {
				assert_int_equal(iobus_read(bus, a, sizes[s]), mask(sizes[s]));
			}
		}
	}
}

static void bisection_matches_linear_scan(void **state)
{
	struct hearth_iobus bus;
	struct ref_range ref[NR];
	struct tagged tags[NR];
	unsigned order[NR];
	struct hearth_dev *owner = new_owner("many");

	(void)state;
	iobus_init(&bus, "port", 0x10000);
	/* disjoint ranges with random gaps (some zero) and lengths, covering most of the space */
	uint64_t at = rnd() % 4;
	for (unsigned i = 0; i < NR; i++) {
		ref[i].base = at;
		ref[i].len = 1 + rnd() % 120;
		ref[i].present = true;
		at += ref[i].len + (rnd() % 3 == 0 ? 0 : rnd() % 20);
		tags[i] = (struct tagged){.index = i, .owner = owner};
		order[i] = i;
	}
	assert_true(at <= 0x10000);
	for (unsigned i = NR - 1; i > 0; i--) {
		unsigned j = (unsigned)(rnd() % (i + 1)), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned i = 0; i < NR; i++)
		add_ok(&bus, ref[order[i]].base, ref[order[i]].len, &tags[order[i]]);
	assert_int_equal(bus.n, NR);
	for (unsigned i = 1; i < bus.n; i++)
		assert_true(bus.r[i - 1].base + bus.r[i - 1].len <= bus.r[i].base);
	check_against_reference(&bus, ref, NR);

	/* every existing range refuses a one-byte overlap at either end */
	for (unsigned i = 0; i < NR; i++) {
		struct hearth_io_range r = {ref[i].base + ref[i].len - 1, 1, &tag_ops, &tags[i],
					    owner};
		assert_int_equal(iobus_add(&bus, &r), -1);
		r.base = ref[i].base;
		assert_int_equal(iobus_add(&bus, &r), -1);
	}

	/* remove a random half, check again */
	for (unsigned i = 0; i < NR; i++) {
		if (rnd() & 1) {
			assert_int_equal(iobus_remove(&bus, owner, ref[i].base), 0);
			ref[i].present = false;
		}
	}
	check_against_reference(&bus, ref, NR);
	iobus_destroy(&bus);
	free_owner(owner);
}

/* The same over 64-bit MMIO addresses, checked at random points and at every range edge. */
static void bisection_mmio_sparse(void **state)
{
	struct hearth_iobus bus;
	struct ref_range ref[NR];
	struct tagged tags[NR];
	struct hearth_dev *owner = new_owner("mmio");
	struct hearth_io_range out;
	unsigned n = 0;

	(void)state;
	iobus_init(&bus, "mmio", UINT64_MAX);
	while (n < NR) {
		uint64_t base = rnd() & ~0xfffull, len = 1 + rnd() % 0x3000;
		if (base > UINT64_MAX - len)
			continue;
		if (ref_find(ref, n, base, 1) >= 0 || ref_find(ref, n, base + len - 1, 1) >= 0)
			continue;
		bool covers = false;
		for (unsigned i = 0; i < n; i++)
			covers |= ref[i].base >= base && ref[i].base < base + len;
		if (covers)
			continue;
		ref[n] = (struct ref_range){base, len, true};
		tags[n] = (struct tagged){.index = n, .owner = owner};
		add_ok(&bus, base, len, &tags[n]);
		n++;
	}
	for (unsigned i = 0; i < NR; i++) {
		uint64_t pts[] = {ref[i].base - 1,
				  ref[i].base,
				  ref[i].base + 1,
				  ref[i].base + ref[i].len - 1,
				  ref[i].base + ref[i].len,
				  ref[i].base + ref[i].len - 8,
				  rnd()};
		for (size_t p = 0; p < sizeof(pts) / sizeof(pts[0]); p++) {
			for (size_t s = 0; s < 4; s++) {
				if (pts[p] > UINT64_MAX - 8)
					continue;
				int want = ref_find(ref, NR, pts[p], sizes[s]);
				bool got = iobus_find(&bus, pts[p], sizes[s], &out);
				assert_int_equal(got, want >= 0);
				if (got)
					assert_int_equal(out.base, ref[want].base);
			}
		}
	}
	iobus_destroy(&bus);
	free_owner(owner);
}

/* ---- edges ---- */

static void straddling_is_unhooked(void **state)
{
	struct hearth_iobus bus;
	struct hearth_dev *o = new_owner("dev");
	struct tagged t = {.index = 1, .owner = o};

	(void)state;
	iobus_init(&bus, "mmio", UINT64_MAX);
	add_ok(&bus, 0x1000, 4, &t);
	/* wholly inside: dispatched, with the offset */
	assert_int_equal(iobus_read(&bus, 0x1003, 1), 3);
	assert_int_equal(iobus_read(&bus, 0x1002, 2), 2);
	assert_int_equal(iobus_read(&bus, 0x1000, 4), 0);
	assert_int_equal(t.reads, 3);
	/* crossing the end at each size: all ones, the device never sees it */
	assert_int_equal(iobus_read(&bus, 0x1003, 2), 0xffff);
	assert_int_equal(iobus_read(&bus, 0x1001, 4), 0xffffffff);
	assert_int_equal(iobus_read(&bus, 0x1000, 8), UINT64_MAX);
	assert_int_equal(iobus_read(&bus, 0x0fff, 2), 0xffff); /* crossing the start */
	assert_int_equal(iobus_read(&bus, 0x0ffe, 4), 0xffffffff);
	assert_int_equal(t.reads, 3);
	iobus_write(&bus, 0x1003, 0x1234, 2);
	iobus_write(&bus, 0x1001, 1, 4);
	iobus_write(&bus, 0x0fff, 1, 2);
	iobus_write(&bus, 0x1000, 1, 8);
	assert_int_equal(t.writes, 0);
	/* and an address range that would wrap at the top of the space */
	assert_int_equal(iobus_read(&bus, UINT64_MAX, 4), 0xffffffff);
	iobus_destroy(&bus);
	free_owner(o);
}

static void values_masked_to_size(void **state)
{
	struct hearth_iobus bus;
	struct hearth_dev *o = new_owner("dev");
	struct tagged t = {.index = 0x11223344, .owner = o};

	(void)state;
	iobus_init(&bus, "port", 0x10000);
	add_ok(&bus, 0x10, 16, &t);
	/* the device returns index << 32 | offset; the bus keeps the low bytes only */
	for (size_t s = 0; s < 4; s++) {
		uint64_t want = (0x11223344ull << 32 | 8) & mask(sizes[s]);
		assert_int_equal(iobus_read(&bus, 0x18, sizes[s]), want);
		assert_int_equal(t.last_size, sizes[s]);
		assert_int_equal(t.last_offset, 8);
		assert_true(t.lock_held);
		t.lock_held = false;
		iobus_write(&bus, 0x18, 0x8877665544332211ull, sizes[s]);
		assert_int_equal(t.last_value, 0x8877665544332211ull & mask(sizes[s]));
		assert_int_equal(t.last_size, sizes[s]);
		assert_true(t.lock_held);
	}
	assert_false(dev_locked(o)); /* released after each call */
	iobus_destroy(&bus);
	free_owner(o);
}

static void top_of_port_space(void **state)
{
	struct hearth_iobus bus;
	struct hearth_dev *o = new_owner("top");
	struct tagged t = {.index = 2, .owner = o};
	struct hearth_io_range r = {0xffff, 2, &tag_ops, &t, o};

	(void)state;
	iobus_init(&bus, "port", 0x10000);
	hearth_err_clear();
	assert_int_equal(iobus_add(&bus, &r), -1);
	assert_non_null(strstr(hearth_err_msg(), "'top'"));
	assert_non_null(strstr(hearth_err_msg(), "0xffff"));
	r.base = 0x10000;
	r.len = 1;
	assert_int_equal(iobus_add(&bus, &r), -1);
	add_ok(&bus, 0xffff, 1, &t);
	add_ok(&bus, 0xfff0, 0xf, &t);
	assert_int_equal(iobus_read(&bus, 0xffff, 1), (2ull << 32) & 0xff);
	assert_int_equal(t.reads, 1);
	assert_int_equal(iobus_read(&bus, 0xffff, 2), 0xffff);
	assert_int_equal(iobus_read(&bus, 0xffff, 4), 0xffffffff);
	assert_int_equal(iobus_read(&bus, 0xfffe, 2), 0xffff); /* two ranges: not one */
	assert_int_equal(t.reads, 1);
	assert_int_equal(iobus_read(&bus, 0xfffc, 2), 0xc);
	/* the whole space as one range, on an empty bus */
	struct hearth_iobus all;
	iobus_init(&all, "port", 0x10000);
	add_ok(&all, 0, 0x10000, &t);
	assert_int_equal(iobus_read(&all, 0xfffc, 4), 0xfffc);
	assert_int_equal(iobus_read(&all, 0, 1), 0);
	iobus_destroy(&all);
	iobus_destroy(&bus);
	free_owner(o);
}

static void refused_ranges(void **state)
{
	struct hearth_iobus bus;
	struct hearth_dev *o = new_owner("dev");
	struct tagged t = {.owner = o};
	struct hearth_io_range r = {0x100, 0, &tag_ops, &t, o};

	(void)state;
	iobus_init(&bus, "mmio", UINT64_MAX);
	hearth_err_clear();
	assert_int_equal(iobus_add(&bus, &r), -1); /* len 0 */
	assert_non_null(strstr(hearth_err_msg(), "mmio"));
	assert_non_null(strstr(hearth_err_msg(), "'dev'"));
	r = (struct hearth_io_range){UINT64_MAX - 0xf, 0x20, &tag_ops, &t, o}; /* wraps */
	assert_int_equal(iobus_add(&bus, &r), -1);
	r = (struct hearth_io_range){UINT64_MAX, 1, &tag_ops, &t, o}; /* the limit is exclusive */
	assert_int_equal(iobus_add(&bus, &r), -1);
	r = (struct hearth_io_range){0, UINT64_MAX, &tag_ops, &t, o};
	assert_int_equal(iobus_add(&bus, &r), 0);
	assert_int_equal(bus.n, 1);
	assert_int_equal(iobus_read(&bus, UINT64_MAX - 8, 8), UINT64_MAX - 8);
	iobus_destroy(&bus);
	free_owner(o);
}

static void remove_and_remove_owner(void **state)
{
	struct hearth_iobus bus;
	struct hearth_dev *a = new_owner("a"), *b = new_owner("b");
	struct tagged ta = {.index = 1, .owner = a}, tb = {.index = 2, .owner = b};
	struct hearth_io_range out;

	(void)state;
	iobus_init(&bus, "port", 0x10000);
	for (uint64_t p = 0; p < 20; p++)
		add_ok(&bus, p * 16, 8, p % 2 ? &tb : &ta);
	assert_int_equal(bus.n, 20);
	hearth_err_clear();
	assert_int_equal(iobus_remove(&bus, b, 0), -1); /* a's */
	assert_non_null(strstr(hearth_err_msg(), "'b'"));
	assert_int_equal(iobus_remove(&bus, a, 1), -1);	  /* not a base */
	assert_int_equal(iobus_remove(&bus, a, 8), -1);	  /* a gap */
	assert_int_equal(iobus_remove(&bus, a, 999), -1); /* past everything */
	assert_int_equal(bus.n, 20);
	assert_int_equal(iobus_remove(&bus, b, 16), 0);
	assert_false(iobus_find(&bus, 16, 1, &out));
	assert_int_equal(bus.n, 19);
	assert_int_equal(iobus_remove_owner(&bus, a), 10);
	assert_int_equal(bus.n, 9);
	for (unsigned i = 0; i < bus.n; i++)
		assert_ptr_equal(bus.r[i].owner, b);
	for (uint64_t p = 0; p < 20; p++) {
		bool want = p % 2 && p != 1;
		assert_int_equal(iobus_find(&bus, p * 16 + 7, 1, &out), want);
	}
	assert_int_equal(iobus_remove_owner(&bus, a), 0);
	assert_int_equal(iobus_remove_owner(&bus, b), 9);
	assert_int_equal(bus.n, 0);
	assert_false(iobus_find(&bus, 48, 1, &out));
	iobus_destroy(&bus);
	free_owner(a);
	free_owner(b);
}

static void missing_ops(void **state)
{
	static const struct hearth_io_ops none = {0};
	struct hearth_iobus bus;
	struct hearth_dev *o = new_owner("dev");
	struct hearth_io_range r = {0x20, 4, &none, NULL, o};

	(void)state;
	iobus_init(&bus, "port", 0x10000);
	assert_int_equal(iobus_add(&bus, &r), 0);
	assert_int_equal(iobus_read(&bus, 0x20, 2), 0xffff);
	iobus_write(&bus, 0x20, 1, 1); /* dropped, no crash */
	iobus_destroy(&bus);
	free_owner(o);
}

/* A callback may hook and unhook ranges on its own bus (a BAR moving). */
struct mover {
	struct hearth_iobus *bus;
	struct hearth_dev *owner;
	uint64_t at;
};

static uint64_t mover_read(void *opaque, uint64_t offset, unsigned size)
{
	(void)opaque, (void)size;
	return offset;
}

static void mover_write(void *opaque, uint64_t offset, uint64_t value, unsigned size);
static const struct hearth_io_ops mover_ops = {.read = mover_read, .write = mover_write};

static void mover_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	struct mover *m = opaque;
	struct hearth_io_range r = {value, 4, &mover_ops, m, m->owner};

	(void)offset, (void)size;
	if (m->at)
		iobus_remove(m->bus, m->owner, m->at);
	if (iobus_add(m->bus, &r) == 0)
		m->at = value;
}

static void callback_rehooks(void **state)
{
	struct hearth_iobus bus;
	struct hearth_dev *o = new_owner("bar");
	struct mover m = {&bus, o, 0};
	struct hearth_io_range ctl = {0x10, 4, &mover_ops, &m, o};

	(void)state;
	iobus_init(&bus, "mmio", UINT64_MAX);
	assert_int_equal(iobus_add(&bus, &ctl), 0);
	iobus_write(&bus, 0x10, 0x5000, 4);
	assert_int_equal(iobus_read(&bus, 0x5002, 1), 2);
	iobus_write(&bus, 0x10, 0x9000, 4);
	assert_int_equal(iobus_read(&bus, 0x5002, 1), 0xff);
	assert_int_equal(iobus_read(&bus, 0x9003, 1), 3);
	assert_int_equal(bus.n, 2);
	iobus_destroy(&bus);
	free_owner(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bisection_matches_linear_scan),
		cmocka_unit_test(bisection_mmio_sparse),
		cmocka_unit_test(straddling_is_unhooked),
		cmocka_unit_test(values_masked_to_size),
		cmocka_unit_test(top_of_port_space),
		cmocka_unit_test(refused_ranges),
		cmocka_unit_test(remove_and_remove_owner),
		cmocka_unit_test(missing_ops),
		cmocka_unit_test(callback_rehooks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
