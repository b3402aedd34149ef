/* Split virtqueue, driven as a guest driver would: rings in fake guest RAM, chains posted
 * through the avail ring. Every rule a hostile driver can break is tried and must leave the
 * queue broken (never a crash, a hang or a pointer outside RAM). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakevm.h"
#include "hearth/virtqueue.h"
#include "vqdrv.h"

#define RAM (1u << 20)
#define RING 0x1000
#define BUF 0x10000
#define QSIZE 8

#define F_INDIRECT (1ull << VIRTIO_F_INDIRECT_DESC)
#define F_EVENT (1ull << VIRTIO_F_RING_EVENT_IDX)

struct t {
	struct fakevm *f;
	struct virtq vq;
	struct vqdrv d;
	struct iovec segs[16];
	struct virtq_chain c;
};

static struct t *mk(uint64_t ram, uint64_t features)
{
	struct t *t = calloc(1, sizeof(*t));

	t->f = fakevm_new(ram);
	virtq_init(&t->vq, &t->f->vm, QSIZE);
	vqdrv_init(&t->d, t->f, &t->vq, QSIZE, RING);
	assert_int_equal(virtq_enable(&t->vq, features), 0);
	t->c = (struct virtq_chain){.cap = 16, .segs = t->segs};
	return t;
}

static int setup(void **state)
{
	*state = mk(RAM, F_INDIRECT);
	return 0;
}

static int setup_event(void **state)
{
	*state = mk(RAM, F_INDIRECT | F_EVENT);
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	fakevm_free(t->f);
	free(t);
	return 0;
}

static void assert_broken(struct t *t, const char *why_part)
{
	assert_int_equal(virtq_pop(&t->vq, &t->c), -1);
	assert_true(t->vq.broken);
	assert_non_null(t->vq.why);
	if (why_part && !strstr(t->vq.why, why_part))
		fail_msg("why '%s' lacks '%s'", t->vq.why, why_part);
	/* stays broken, pushes nothing */
	uint16_t used = vqdrv_used_idx(&t->d);
	virtq_push(&t->vq, 0, 1);
	assert_int_equal(vqdrv_used_idx(&t->d), used);
	assert_false(virtq_should_notify(&t->vq));
	assert_int_equal(virtq_pop(&t->vq, &t->c), -1);
}

/* ---- enabling ---- */

static void enable_checks_size_alignment_and_ram(void **state)
{
	struct t *t = *state;
	struct virtq *vq = &t->vq;

	struct {
		uint16_t size;
		uint64_t desc, avail, used;
	} bad[] = {
		{0, RING, RING + 0x100, RING + 0x200},		  /* size 0 */
		{6, RING, RING + 0x100, RING + 0x200},		  /* not a power of two */
		{16, RING, RING + 0x100, RING + 0x200},		  /* above size_max */
		{8, RING + 8, RING + 0x100, RING + 0x200},	  /* desc misaligned */
		{8, RING, RING + 0x101, RING + 0x200},		  /* avail misaligned */
		{8, RING, RING + 0x100, RING + 0x202},		  /* used misaligned */
		{8, RAM - 64, RING + 0x100, RING + 0x200},	  /* desc past the end */
		{8, RING, RAM - 4, RING + 0x200},		  /* avail past the end */
		{8, RING, RING + 0x100, RAM - 16},		  /* used past the end */
		{8, UINT64_MAX - 15, RING + 0x100, RING + 0x200}, /* wraps */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		virtq_reset(vq);
		vq->size = bad[i].size;
		vq->desc_gpa = bad[i].desc;
		vq->avail_gpa = bad[i].avail;
		vq->used_gpa = bad[i].used;
		assert_int_equal(virtq_enable(vq, 0), -1);
		assert_true(vq->broken);
		assert_false(vq->enabled);
		assert_int_equal(virtq_pop(vq, &t->c), -1);
	}
	/* rings that end exactly at the end of RAM are fine without EVENT_IDX, but the event
	 * fields would lie outside with it */
	virtq_reset(vq);
	vq->size = 8;
	vq->desc_gpa = RING;
	vq->avail_gpa = RAM - (4 + 2 * 8);
	vq->used_gpa = RING + 0x200;
	assert_int_equal(virtq_enable(vq, 0), 0);
	virtq_reset(vq);
	vq->size = 8;
	vq->desc_gpa = RING;
	vq->avail_gpa = RAM - (4 + 2 * 8);
	vq->used_gpa = RING + 0x200;
	assert_int_equal(virtq_enable(vq, F_EVENT), -1);
	/* reset clears broken and returns the size to the maximum */
	virtq_reset(vq);
	assert_false(vq->broken);
	assert_false(vq->enabled);
	assert_int_equal(vq->size, QSIZE);
}

static void disabled_queue_pops_nothing(void **state)
{
	struct t *t = *state;

	virtq_reset(&t->vq);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 0);
	virtq_push(&t->vq, 0, 0);
	assert_int_equal(vqdrv_used_idx(&t->d), 0);
}

/* ---- good chains ---- */

static void pop_simple_chain_and_push(void **state)
{
	struct t *t = *state;
	uint32_t id, len;

	assert_int_equal(virtq_pop(&t->vq, &t->c), 0);
	memset(t->f->ram + BUF, 0xab, 16);
	vqdrv_desc(&t->d, 3, BUF, 16, VIRTQ_DESC_F_NEXT, 5);
	vqdrv_desc(&t->d, 5, BUF + 0x100, 100, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	vqdrv_desc(&t->d, 1, BUF + 0x200, 1, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&t->d, 3);

	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(t->c.head, 3);
	assert_int_equal(t->c.nseg, 3);
	assert_int_equal(t->c.nread, 1);
	assert_int_equal(t->c.read_len, 16);
	assert_int_equal(t->c.write_len, 101);
	assert_ptr_equal(t->segs[0].iov_base, t->f->ram + BUF);
	assert_int_equal(t->segs[0].iov_len, 16);
	assert_ptr_equal(t->segs[1].iov_base, t->f->ram + BUF + 0x100);
	assert_int_equal(t->segs[1].iov_len, 100);
	assert_ptr_equal(t->segs[2].iov_base, t->f->ram + BUF + 0x200);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 0);

	virtq_push(&t->vq, 3, 42);
	assert_int_equal(vqdrv_used_idx(&t->d), 1);
	assert_int_equal(vqdrv_get_used(&t->d, &id, &len), 1);
	assert_int_equal(id, 3);
	assert_int_equal(len, 42);
	assert_false(t->vq.broken);
}

static void zero_length_descriptors_are_skipped(void **state)
{
	struct t *t = *state;

	/* a zero-length buffer touches no memory: even an address outside RAM is harmless */
	vqdrv_desc(&t->d, 0, UINT64_MAX, 0, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(&t->d, 1, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(t->c.nseg, 1);
	assert_int_equal(t->c.nread, 0);
	assert_int_equal(t->c.write_len, 8);
}

static void unpop_returns_the_chain(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 2, BUF, 8, 0, 0);
	vqdrv_desc(&t->d, 4, BUF, 8, 0, 0);
	vqdrv_post(&t->d, 2);
	vqdrv_post(&t->d, 4);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(t->c.head, 2);
	virtq_unpop(&t->vq);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(t->c.head, 2);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(t->c.head, 4);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 0);
}

static void full_ring_of_size_entries_is_fine(void **state)
{
	struct t *t = *state;

	for (unsigned i = 0; i < QSIZE; i++) {
		vqdrv_desc(&t->d, i, BUF + 16 * i, 16, 0, 0);
		vqdrv_post(&t->d, (uint16_t)i);
	}
	for (unsigned i = 0; i < QSIZE; i++) {
		assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
		assert_int_equal(t->c.head, i);
	}
	assert_int_equal(virtq_pop(&t->vq, &t->c), 0);
}

static void indexes_wrap_at_65536(void **state)
{
	struct t *t = *state;
	uint32_t id, len;

	vqdrv_desc(&t->d, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	for (unsigned i = 0; i < 70000; i++) {
		vqdrv_post(&t->d, 0);
		assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
		virtq_push(&t->vq, 0, i);
		assert_int_equal(vqdrv_get_used(&t->d, &id, &len), 1);
		assert_int_equal(len, i);
	}
	assert_int_equal(vqdrv_used_idx(&t->d), (uint16_t)70000);
	assert_false(t->vq.broken);
}

static void chain_copy_helpers_cross_segments(void **state)
{
	struct t *t = *state;
	uint8_t out[10], in[7] = {1, 2, 3, 4, 5, 6, 7};

	for (int i = 0; i < 12; i++)
		t->f->ram[BUF + i] = (uint8_t)(0x10 + i);
	vqdrv_desc(&t->d, 0, BUF, 4, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(&t->d, 1, BUF + 4, 8, VIRTQ_DESC_F_NEXT, 2);
	vqdrv_desc(&t->d, 2, BUF + 0x100, 3, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
	vqdrv_desc(&t->d, 3, BUF + 0x200, 3, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);

	assert_int_equal(virtq_chain_read(&t->c, 2, out, 10), 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(out[i], 0x12 + i);
	assert_int_equal(virtq_chain_read(&t->c, 10, out, 10), 2); /* short at the end */
	assert_int_equal(virtq_chain_read(&t->c, 50, out, 10), 0);

	assert_int_equal(virtq_chain_write(&t->c, 1, in, 7), 5); /* 6 writable bytes */
	assert_memory_equal(t->f->ram + BUF + 0x101, in, 2);
	assert_memory_equal(t->f->ram + BUF + 0x200, in + 2, 3);
}

/* ---- hostile chains ---- */

static void looping_chain_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, BUF, 8, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(&t->d, 1, BUF, 8, VIRTQ_DESC_F_NEXT, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "loops");
}

static void self_loop_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 4, BUF, 0, VIRTQ_DESC_F_NEXT, 4); /* zero length: still counted */
	vqdrv_post(&t->d, 4);
	assert_broken(t, "loops");
}

static void avail_jump_beyond_size_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_set_avail_idx(&t->d, QSIZE + 1);
	assert_broken(t, "avail index");
}

static void avail_going_backwards_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_set_avail_idx(&t->d, 0xffff); /* 65535 entries "pending" */
	assert_broken(t, "avail index");
}

static void head_beyond_size_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_post(&t->d, QSIZE);
	assert_broken(t, "beyond the queue size");
}

static void next_beyond_size_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, BUF, 8, VIRTQ_DESC_F_NEXT, QSIZE);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "next");
}

static void buffer_outside_ram_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, RAM - 4, 8, 0, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "outside guest RAM");
}

static void buffer_wrapping_address_space_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, UINT64_MAX - 3, 16, 0, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "outside guest RAM");
}

static void max_length_buffer_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, BUF, UINT32_MAX, 0, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "outside guest RAM");
}

static void readable_after_writable_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, BUF, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(&t->d, 1, BUF, 8, 0, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "readable descriptor after a writable");
}

static void too_many_segments_breaks(void **state)
{
	struct t *t = *state;

	t->c.cap = 2;
	vqdrv_desc(&t->d, 0, BUF, 8, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(&t->d, 1, BUF, 8, VIRTQ_DESC_F_NEXT, 2);
	vqdrv_desc(&t->d, 2, BUF, 8, 0, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "segments");
}

static void chain_over_4gib_breaks(void **state)
{
	(void)state;
	/* 1 GiB of (lazily zeroed) fake RAM: four 1 GiB buffers are exactly the limit */
	struct t *t = mk((1ull << 30) + RAM, 0);
	const uint32_t gib = 1u << 30;

	for (unsigned i = 0; i < 4; i++)
		vqdrv_desc(&t->d, i, RAM, gib, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
	vqdrv_desc(&t->d, 4, BUF, 0, 0, 0);
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(t->c.read_len, 4ull << 30);

	vqdrv_desc(&t->d, 4, BUF, 1, 0, 0); /* one byte more */
	vqdrv_post(&t->d, 0);
	assert_broken(t, "4 GiB");
	teardown((void **)&t);
}

/* ---- indirect tables ---- */

#define ITAB 0x20000

static void indirect_table_is_followed(void **state)
{
	struct t *t = *state;

	vqdrv_desc_at(t->f->ram, ITAB, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	vqdrv_desc_at(t->f->ram, ITAB, 2, BUF + 0x100, 32, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
		      1);
	vqdrv_desc_at(t->f->ram, ITAB, 1, BUF + 0x200, 1, VIRTQ_DESC_F_WRITE, 0);
	/* a direct descriptor before the indirect one is allowed too */
	vqdrv_desc(&t->d, 6, BUF + 0x300, 4, VIRTQ_DESC_F_NEXT, 7);
	vqdrv_desc(&t->d, 7, ITAB, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 6);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(t->c.head, 6);
	assert_int_equal(t->c.nseg, 4);
	assert_int_equal(t->c.nread, 2);
	assert_int_equal(t->c.read_len, 20);
	assert_int_equal(t->c.write_len, 33);
	assert_ptr_equal(t->segs[1].iov_base, t->f->ram + BUF);
	assert_ptr_equal(t->segs[3].iov_base, t->f->ram + BUF + 0x200);
}

static void indirect_table_may_be_unaligned(void **state)
{
	struct t *t = *state;

	vqdrv_desc_at(t->f->ram, ITAB + 3, 0, BUF, 16, 0, 0);
	vqdrv_desc(&t->d, 0, ITAB + 3, 16, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(t->c.read_len, 16);
}

static void indirect_table_may_exceed_queue_size(void **state)
{
	struct t *t = *state;

	/* 12 entries in an 8-entry queue: the indirect table bounds itself */
	for (unsigned i = 0; i < 12; i++)
		vqdrv_desc_at(t->f->ram, ITAB, i, BUF + i, 1, i < 11 ? VIRTQ_DESC_F_NEXT : 0,
			      (uint16_t)(i + 1));
	vqdrv_desc(&t->d, 0, ITAB, 12 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(t->c.nseg, 12);
}

static void indirect_without_feature_breaks(void **state)
{
	struct t *t = mk(RAM, 0);

	vqdrv_desc_at(t->f->ram, ITAB, 0, BUF, 16, 0, 0);
	vqdrv_desc(&t->d, 0, ITAB, 16, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "INDIRECT_DESC");
	(void)state;
	teardown((void **)&t);
}

static void indirect_in_indirect_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc_at(t->f->ram, ITAB, 0, ITAB + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_desc_at(t->f->ram, ITAB + 0x100, 0, BUF, 16, 0, 0);
	vqdrv_desc(&t->d, 0, ITAB, 16, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "inside an indirect");
}

static void indirect_with_next_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc_at(t->f->ram, ITAB, 0, BUF, 16, 0, 0);
	vqdrv_desc(&t->d, 0, ITAB, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(&t->d, 1, BUF, 16, 0, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "NEXT");
}

static void indirect_zero_length_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, ITAB, 0, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "indirect table length");
}

static void indirect_misaligned_length_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc_at(t->f->ram, ITAB, 0, BUF, 16, 0, 0);
	vqdrv_desc(&t->d, 0, ITAB, 24, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "indirect table length");
}

static void indirect_huge_length_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, 0, 16 * (VIRTQ_SIZE_MAX + 1), VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "indirect table length");
}

static void indirect_table_outside_ram_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "indirect table outside");
}

static void indirect_loop_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc_at(t->f->ram, ITAB, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc_at(t->f->ram, ITAB, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	vqdrv_desc(&t->d, 0, ITAB, 32, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "indirect table chain loops");
}

static void indirect_next_beyond_table_breaks(void **state)
{
	struct t *t = *state;

	vqdrv_desc_at(t->f->ram, ITAB, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	vqdrv_desc_at(t->f->ram, ITAB, 1, BUF, 16, 0, 0);
	vqdrv_desc_at(t->f->ram, ITAB, 2, BUF, 16, 0, 0); /* exists in RAM, not in the table */
	vqdrv_desc(&t->d, 0, ITAB, 32, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d, 0);
	assert_broken(t, "next");
}

/* ---- notifications ---- */

static void notify_without_event_idx_follows_no_interrupt(void **state)
{
	struct t *t = *state;

	assert_false(virtq_should_notify(&t->vq)); /* nothing pushed yet: first call counts */
	vqdrv_desc(&t->d, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	virtq_push(&t->vq, 0, 8);
	assert_true(virtq_should_notify(&t->vq));
	assert_false(virtq_should_notify(&t->vq)); /* nothing new */

	vqdrv_set_avail_flags(&t->d, VIRTQ_AVAIL_F_NO_INTERRUPT);
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	virtq_push(&t->vq, 0, 8);
	assert_false(virtq_should_notify(&t->vq));

	vqdrv_set_avail_flags(&t->d, 0);
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	virtq_push(&t->vq, 0, 8);
	assert_true(virtq_should_notify(&t->vq));
}

static void push_one(struct t *t)
{
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	virtq_push(&t->vq, 0, 8);
}

static void notify_with_event_idx_follows_used_event(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	/* the first notification decision always notifies */
	push_one(t);
	assert_true(virtq_should_notify(&t->vq)); /* used 1 */

	/* driver wants a notification when used idx passes 3 (i.e. entry 3 is used) */
	vqdrv_set_used_event(&t->d, 3);
	push_one(t);
	assert_false(virtq_should_notify(&t->vq)); /* used 2 */
	push_one(t);
	assert_false(virtq_should_notify(&t->vq)); /* used 3 */
	push_one(t);
	assert_true(virtq_should_notify(&t->vq)); /* used 4: crossed 3 */
	push_one(t);
	assert_false(virtq_should_notify(&t->vq));

	/* batches: two pushes crossing the event in one decision */
	vqdrv_set_used_event(&t->d, 5);
	push_one(t);
	push_one(t);
	assert_true(virtq_should_notify(&t->vq)); /* used 5 -> 7 covers 5 */

	/* NO_INTERRUPT is ignored with EVENT_IDX */
	vqdrv_set_avail_flags(&t->d, VIRTQ_AVAIL_F_NO_INTERRUPT);
	vqdrv_set_used_event(&t->d, 7);
	push_one(t);
	assert_true(virtq_should_notify(&t->vq));
}

static void need_event_rule(void **state)
{
	(void)state;
	assert_true(virtq_need_event(0, 1, 0));
	assert_false(virtq_need_event(1, 1, 0));
	assert_true(virtq_need_event(1, 2, 0));
	assert_false(virtq_need_event(5, 5, 3));
	assert_true(virtq_need_event(4, 5, 3));
	assert_true(virtq_need_event(0xffff, 1, 0xfffe)); /* across the wrap */
	assert_false(virtq_need_event(2, 1, 0xfffe));
}

static void driver_notification_suppression(void **state)
{
	struct t *t = *state;

	/* without EVENT_IDX: the used ring's NO_NOTIFY flag */
	virtq_disable_notify(&t->vq);
	assert_int_equal(vqdrv_used_flags(&t->d), VIRTQ_USED_F_NO_NOTIFY);
	assert_false(virtq_enable_notify(&t->vq));
	assert_int_equal(vqdrv_used_flags(&t->d), 0);
	virtq_disable_notify(&t->vq);
	vqdrv_desc(&t->d, 0, BUF, 8, 0, 0);
	vqdrv_post(&t->d, 0);
	assert_true(virtq_enable_notify(&t->vq)); /* arrived while disabled: pop again */
}

static void event_idx_publishes_avail_event(void **state)
{
	struct t *t = *state;

	vqdrv_desc(&t->d, 0, BUF, 8, 0, 0);
	vqdrv_post(&t->d, 0);
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	/* the ring ran empty: ask for a kick at the next new entry */
	assert_int_equal(virtq_pop(&t->vq, &t->c), 0);
	assert_int_equal(vqdrv_avail_event(&t->d), 2);
	assert_int_equal(vqdrv_used_flags(&t->d), 0); /* flags are not used with EVENT_IDX */

	/* disabled: even the next entry, which would have crossed avail_event = 2, does not
	 * ask for a kick */
	virtq_disable_notify(&t->vq);
	assert_int_equal(vqdrv_avail_event(&t->d), 1);
	assert_false(virtq_need_event(vqdrv_avail_event(&t->d), 3, 2));
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 0);
	assert_int_equal(vqdrv_avail_event(&t->d), 1); /* left behind while disabled */
	assert_false(virtq_need_event(vqdrv_avail_event(&t->d), 4, 3));
	vqdrv_post(&t->d, 0);
	assert_true(virtq_enable_notify(&t->vq));
	assert_int_equal(vqdrv_avail_event(&t->d), 3);
}

static void reset_after_broken_recovers(void **state)
{
	struct t *t = *state;

	vqdrv_post(&t->d, QSIZE + 3);
	assert_int_equal(virtq_pop(&t->vq, &t->c), -1);
	virtq_reset(&t->vq);
	vqdrv_init(&t->d, t->f, &t->vq, QSIZE, RING);
	assert_int_equal(virtq_enable(&t->vq, 0), 0);
	vqdrv_desc(&t->d, 0, BUF, 8, 0, 0);
	vqdrv_post(&t->d, 0);
	assert_int_equal(virtq_pop(&t->vq, &t->c), 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TE(fn) cmocka_unit_test_setup_teardown(fn, setup_event, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(enable_checks_size_alignment_and_ram),
		T(disabled_queue_pops_nothing),
		T(pop_simple_chain_and_push),
		T(zero_length_descriptors_are_skipped),
		T(unpop_returns_the_chain),
		T(full_ring_of_size_entries_is_fine),
		T(indexes_wrap_at_65536),
		T(chain_copy_helpers_cross_segments),
		T(looping_chain_breaks),
		T(self_loop_breaks),
		T(avail_jump_beyond_size_breaks),
		T(avail_going_backwards_breaks),
		T(head_beyond_size_breaks),
		T(next_beyond_size_breaks),
		T(buffer_outside_ram_breaks),
		T(buffer_wrapping_address_space_breaks),
		T(max_length_buffer_breaks),
		T(readable_after_writable_breaks),
		T(too_many_segments_breaks),
		cmocka_unit_test(chain_over_4gib_breaks),
		T(indirect_table_is_followed),
		T(indirect_table_may_be_unaligned),
		T(indirect_table_may_exceed_queue_size),
		cmocka_unit_test(indirect_without_feature_breaks),
		T(indirect_in_indirect_breaks),
		T(indirect_with_next_breaks),
		T(indirect_zero_length_breaks),
		T(indirect_misaligned_length_breaks),
		T(indirect_huge_length_breaks),
		T(indirect_table_outside_ram_breaks),
		T(indirect_loop_breaks),
		T(indirect_next_beyond_table_breaks),
		T(notify_without_event_idx_follows_no_interrupt),
		TE(notify_with_event_idx_follows_used_event),
		T(need_event_rule),
		T(driver_notification_suppression),
		TE(event_idx_publishes_avail_event),
		T(reset_after_broken_recovers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
