/* virtio-blk request engine, driven as the guest's virtio-blk driver would drive it: requests
 * built in fake guest RAM, posted on a queue, the device notified, the used ring, status byte
 * and data checked. Backends: blk-ram, blk-file, and a scriptable test backend (async
 * completion, injected errors). No transport: the test plays it (features, interrupts). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakevm.h"
#include "hearth/blk.h"
#include "virtio/virtio_blk.h"
#include "virtio/virtio_dev.h"
#include "vpcidrv.h"
#include "vqdrv.h"

#define RAM (4u << 20)
#define RING0 0x1000
#define RING1 0x8000
#define HDR 0x10000   /* request headers */
#define DATA 0x100000 /* data buffers */
#define STATUS 0x20000
#define QSIZE 16
#define DISK (1u << 20)

/* ---- the transport, played by the test ---- */

static int interrupts[4], needs_reset, config_changes;
/* Queue notification eventfds a backend's thread may take (take_fail: refuse that queue). */
static int notify_efd[2] = {-1, -1};
static unsigned taken, given, notified_calls, take_fail = 99;

static void t_interrupt(struct virtio_device *vd, unsigned q)
{
	(void)vd;
	if (q < 4)
		__atomic_add_fetch(&interrupts[q], 1,
				   __ATOMIC_RELAXED); /* maybe on an I/O thread */
}

static void t_config_changed(struct virtio_device *vd)
{
	(void)vd;
	config_changes++;
}

static void t_needs_reset(struct virtio_device *vd)
{
	(void)vd;
	needs_reset++;
}

static int t_take_notify(struct virtio_device *vd, unsigned q)
{
	(void)vd;
	if (q >= 2 || q == take_fail)
		return -1;
	taken++;
	return notify_efd[q];
}

static void t_give_notify(struct virtio_device *vd, unsigned q)
{
	(void)vd;
	(void)q;
	given++;
}

/* Always live: a kick goes straight to the device. */
static void t_notified(struct virtio_device *vd, unsigned q)
{
	notified_calls++;
	vd->ops->notify(vd, q);
}

static const struct virtio_transport_ops tops = {
	.interrupt = t_interrupt,
	.config_changed = t_config_changed,
	.needs_reset = t_needs_reset,
	.take_notify = t_take_notify,
	.give_notify = t_give_notify,
	.notified = t_notified,
};

static int vblk_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	if (virtio_blk_setup(dev, cfg) < 0)
		return -1;
	virtio_blk_vdev(dev)->tops = &tops;
	return 0;
}

HEARTH_DEVICE_CLASS(test_vblk_class, .name = "test-vblk", .init = vblk_init,
		    .free = virtio_blk_free);

/* ---- a scriptable backend ---- */

enum tb_mode { TB_SYNC, TB_FAIL, TB_HOLD };

struct tb {
	enum tb_mode mode;
	uint8_t disk[64 * 1024];
	struct hearth_blk_req *held[64];
	unsigned nheld, submits, kicks;
	struct hearth_blk_req last;
	const struct hearth_blk_frontend_ops *fe_ops;
	void *fe;
	int watched[2];
	unsigned nwatched;
};
static struct tb *tb;
static int tb_watch_result; /* what the backend's watch answers */

static int tb_submit(void *be, struct hearth_blk_req *req)
{
	struct tb *b = be;

	b->submits++;
	b->last = *req;
	if (b->mode == TB_FAIL)
		return -EIO;
	if (b->mode == TB_HOLD) {
		b->held[b->nheld++] = req;
		return HEARTH_BLK_ASYNC;
	}
	if (req->op == HEARTH_BLK_READ || req->op == HEARTH_BLK_WRITE) {
		uint64_t off = req->offset;
		for (unsigned i = 0; i < req->niov; i++) {
			if (req->op == HEARTH_BLK_READ)
				memcpy(req->iov[i].iov_base, b->disk + off, req->iov[i].iov_len);
			else
				memcpy(b->disk + off, req->iov[i].iov_base, req->iov[i].iov_len);
			off += req->iov[i].iov_len;
		}
	}
	return HEARTH_BLK_DONE;
}

static void tb_kick(void *be)
{
	((struct tb *)be)->kicks++;
}

static int tb_watch(void *be, const int *fds, unsigned n)
{
	struct tb *b = be;

	b->nwatched = n;
	for (unsigned i = 0; i < n && i < 2; i++)
		b->watched[i] = fds[i];
	return tb_watch_result;
}

static const struct hearth_blk_backend_ops tb_ops = {
	.submit = tb_submit, .kick = tb_kick, .watch = tb_watch};

/* Complete the held requests (oldest first) with result, then end the batch. */
static void tb_complete_all(int result)
{
	for (unsigned i = 0; i < tb->nheld; i++)
		tb->fe_ops->complete(tb->fe, tb->held[i], result);
	tb->nheld = 0;
	tb->fe_ops->complete_done(tb->fe);
}

static int tb_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	bool ro;
	uint64_t block;

	if (hearth_cfg_bool(cfg, "readonly", false, &ro) < 0 ||
	    hearth_cfg_u64(cfg, "block", 512, 0, 65536, &block) < 0)
		return -1;
	tb = calloc(1, sizeof(*tb));
	hearth_dev_set_priv(dev, tb);
	struct hearth_blk_info info = {
		.size = sizeof(tb->disk),
		.block_size = (uint32_t)block,
		.readonly = ro,
		.discard = true,
		.write_zeroes = true,
		.name = "test",
	};
	return hearth_blk_backend_attach(dev, cfg, &info, &tb_ops, tb, &tb->fe_ops, &tb->fe);
}

static void tb_free(struct hearth_dev *dev)
{
	struct tb *b = hearth_dev_priv(dev);

	if (b && b->fe_ops)
		b->fe_ops->detach(b->fe);
	free(b);
	tb = NULL;
}

HEARTH_DEVICE_CLASS(test_blk_class, .name = "blk-test", .init = tb_init, .free = tb_free);

/* ---- fixture ---- */

struct t {
	struct fakevm *f;
	struct hearth_dev *dev;
	struct virtio_device *vd;
	struct vqdrv d[2];
	char tmp[64];
};

static uint64_t features_all(struct virtio_device *vd)
{
	return vd->offered;
}

static void start_queue(struct t *t, unsigned q, uint64_t base)
{
	vqdrv_init(&t->d[q], t->f, &t->vd->vqs[q], QSIZE, base);
	assert_int_equal(virtq_enable(&t->vd->vqs[q], t->vd->features), 0);
}

/* Build a device with the given frontend and backend configs; negotiate features. */
static struct t *mk(const char *fe_json, const char *be_class, const char *be_json,
		    uint64_t drop_features)
{
	struct t *t = calloc(1, sizeof(*t));

	memset(interrupts, 0, sizeof(interrupts));
	needs_reset = config_changes = 0;
	taken = given = notified_calls = 0;
	for (unsigned q = 0; q < 2; q++)
		notify_efd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->f = fakevm_new(RAM);
	t->dev = fakevm_dev(t->f, "test-vblk", "vda", fe_json);
	if (!t->dev)
		fail_msg("%s", hearth_err_msg());
	t->vd = virtio_blk_vdev(t->dev);
	if (be_class && !fakevm_dev(t->f, be_class, "disk0", be_json))
		fail_msg("%s", hearth_err_msg());
	uint64_t f = features_all(t->vd) & ~drop_features;
	assert_true(t->vd->ops->features_ok(t->vd, f));
	t->vd->features = f;
	start_queue(t, 0, RING0);
	if (t->vd->num_queues > 1)
		start_queue(t, 1, RING1);
	return t;
}

static void done(struct t *t)
{
	fakevm_free(t->f);
	for (unsigned q = 0; q < 2; q++)
		close(notify_efd[q]);
	if (t->tmp[0])
		unlink(t->tmp);
	free(t);
}

static void kick(struct t *t, unsigned q)
{
	hearth_dev_lock(t->dev);
	t->vd->ops->notify(t->vd, q);
	hearth_dev_unlock(t->dev);
}

static void put_hdr(struct t *t, uint64_t gpa, uint32_t type, uint64_t sector)
{
	memcpy(t->f->ram + gpa, &type, 4);
	memset(t->f->ram + gpa + 4, 0, 4);
	memcpy(t->f->ram + gpa + 8, &sector, 8);
}

/* A three-descriptor request at descriptor slot base: header, data (len bytes; writable for
 * reads), status. Posts it. */
static void post_req(struct t *t, unsigned q, unsigned slot, uint32_t type, uint64_t sector,
		     uint64_t data, uint32_t len, bool data_writable)
{
	struct vqdrv *d = &t->d[q];
	uint64_t hdr = HDR + 16 * slot, st = STATUS + slot;

	put_hdr(t, hdr, type, sector);
	t->f->ram[st] = 0xee;
	unsigned i = slot * 3;
	if (len) {
		vqdrv_desc(d, i, hdr, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
		vqdrv_desc(d, i + 1, data, len,
			   VIRTQ_DESC_F_NEXT | (data_writable ? VIRTQ_DESC_F_WRITE : 0),
			   (uint16_t)(i + 2));
	} else {
		vqdrv_desc(d, i, hdr, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 2));
	}
	vqdrv_desc(d, i + 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(d, (uint16_t)i);
}

static uint8_t status_of(struct t *t, unsigned slot)
{
	return t->f->ram[STATUS + slot];
}

static void expect_used(struct t *t, unsigned q, uint32_t head, uint32_t len)
{
	uint32_t id, l;

	if (!vqdrv_get_used(&t->d[q], &id, &l))
		fail_msg("no used entry on queue %u", q);
	assert_int_equal(id, head);
	assert_int_equal(l, len);
}

static void expect_no_used(struct t *t, unsigned q)
{
	uint32_t id, l;

	assert_int_equal(vqdrv_get_used(&t->d[q], &id, &l), 0);
}

/* One request on queue 0, slot 0, run synchronously: returns the status. */
static uint8_t do_req(struct t *t, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
		      bool writable)
{
	post_req(t, 0, 0, type, sector, data, len, writable);
	kick(t, 0);
	uint32_t id, l;
	if (!vqdrv_get_used(&t->d[0], &id, &l))
		fail_msg("request type %u not completed", type);
	assert_int_equal(id, 0);
	return status_of(t, 0);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static void read_le(struct virtio_device *vd, uint32_t off, void *v, uint32_t n)
{
	vd->ops->config_read(vd, off, v, n);
}

/* ---- features and config ---- */

static void features_and_config_space(void **state)
{
	(void)state;
	struct t *t =
		mk("{\"queues\": 2}", "blk-ram", "{\"frontend\": \"vda\", \"size\": \"1M\"}", 0);
	struct virtio_device *vd = t->vd;
	uint64_t cap = 0;
	uint32_t v32 = 0;
	uint16_t v16 = 0;
	uint8_t v8 = 0xff;

	assert_int_equal(vd->device_id, VIRTIO_ID_BLOCK);
	assert_int_equal(vd->num_queues, 2);
	assert_int_equal(vd->config_len, VIRTIO_BLK_CFG_LEN);
	uint64_t want = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
			VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
			VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
			VIRTIO_BIT(VIRTIO_BLK_F_MQ) | VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
			VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	assert_int_equal(vd->offered, want);

	read_le(vd, VIRTIO_BLK_CFG_CAPACITY, &cap, 8);
	assert_int_equal(cap, (1u << 20) / 512);
	/* an 8-byte field read as two halves */
	read_le(vd, VIRTIO_BLK_CFG_CAPACITY, &v32, 4);
	assert_int_equal(v32, 2048);
	read_le(vd, VIRTIO_BLK_CFG_CAPACITY + 4, &v32, 4);
	assert_int_equal(v32, 0);
	read_le(vd, VIRTIO_BLK_CFG_SEG_MAX, &v32, 4);
	assert_int_equal(v32, VIRTIO_BLK_SEG_MAX);
	read_le(vd, VIRTIO_BLK_CFG_BLK_SIZE, &v32, 4);
	assert_int_equal(v32, 512);
	read_le(vd, VIRTIO_BLK_CFG_NUM_QUEUES, &v16, 2);
	assert_int_equal(v16, 2);
	read_le(vd, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, &v32, 4);
	assert_int_equal(v32, VIRTIO_BLK_DISCARD_SECTORS_MAX);
	read_le(vd, VIRTIO_BLK_CFG_MAX_DISCARD_SEG, &v32, 4);
	assert_int_equal(v32, 1);
	read_le(vd, VIRTIO_BLK_CFG_MAX_WZ_SEG, &v32, 4);
	assert_int_equal(v32, 1);
	read_le(vd, VIRTIO_BLK_CFG_WZ_MAY_UNMAP, &v8, 1);
	assert_int_equal(v8, 1);
	read_le(vd, VIRTIO_BLK_CFG_WRITEBACK, &v8, 1);
	assert_int_equal(v8, 1); /* FLUSH negotiated */
	/* out-of-range reads give zeroes rather than bytes beyond the structure */
	v32 = 0xffffffff;
	read_le(vd, VIRTIO_BLK_CFG_LEN - 2, &v32, 4);
	assert_int_equal(v32, 0);
	done(t);
}

static void readonly_offers_ro_and_no_discard(void **state)
{
	(void)state;
	struct t *t = mk(NULL, "blk-test", "{\"frontend\": \"vda\", \"readonly\": true}", 0);

	assert_true(t->vd->offered & VIRTIO_BIT(VIRTIO_BLK_F_RO));
	assert_false(t->vd->offered & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
	assert_false(t->vd->offered & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
	assert_false(t->vd->offered & VIRTIO_BIT(VIRTIO_BLK_F_MQ));
	done(t);
}

static void bad_keys_refused(void **state)
{
	(void)state;
	struct fakevm *f = fakevm_new(RAM);

	assert_null(fakevm_dev(f, "test-vblk", "a", "{\"queues\": 0}"));
	assert_null(fakevm_dev(f, "test-vblk", "b", "{\"queues\": 65}"));
	assert_null(fakevm_dev(f, "test-vblk", "c", "{\"queue-size\": 100}"));
	assert_non_null(strstr(hearth_err_msg(), "power of two"));
	assert_null(fakevm_dev(f, "test-vblk", "d", "{\"serial\": \"123456789012345678901\"}"));
	assert_non_null(strstr(hearth_err_msg(), "serial"));
	assert_null(fakevm_dev(f, "test-vblk", "e", "{\"colour\": \"red\"}"));
	/* a backend needs a frontend that exists and is a disk */
	assert_non_null(fakevm_dev(f, "test-vblk", "vdz", NULL));
	assert_null(fakevm_dev(f, "blk-ram", "r1", "{\"size\": \"1M\"}"));
	assert_non_null(strstr(hearth_err_msg(), "frontend"));
	assert_null(fakevm_dev(f, "blk-ram", "r2", "{\"frontend\": \"nope\", \"size\": \"1M\"}"));
	assert_non_null(strstr(hearth_err_msg(), "nope"));
	assert_non_null(
		fakevm_dev(f, "blk-ram", "r3", "{\"frontend\": \"vdz\", \"size\": \"1M\"}"));
	assert_null(fakevm_dev(f, "blk-ram", "r4", "{\"frontend\": \"vdz\", \"size\": \"1M\"}"));
	assert_non_null(strstr(hearth_err_msg(), "already connected"));
	fakevm_free(f);
}

/* ---- request paths on blk-ram ---- */

static struct t *ram_disk(void)
{
	return mk(NULL, "blk-ram", "{\"frontend\": \"vda\", \"size\": \"1M\"}", 0);
}

static void write_then_read_round_trip(void **state)
{
	(void)state;
	struct t *t = ram_disk();
	uint8_t *ram = t->f->ram;

	fill(ram + DATA, 4096, 1);
	post_req(t, 0, 0, VIRTIO_BLK_T_OUT, 8, DATA, 4096, false);
	kick(t, 0);
	expect_used(t, 0, 0, 1);
	assert_int_equal(status_of(t, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(interrupts[0], 1);
	/* as a driver with EVENT_IDX does: interrupt me for anything after what I saw */
	vqdrv_set_used_event(&t->d[0], t->d[0].last_used);

	memset(ram + DATA + 0x10000, 0, 4096);
	post_req(t, 0, 1, VIRTIO_BLK_T_IN, 8, DATA + 0x10000, 4096, true);
	kick(t, 0);
	expect_used(t, 0, 3, 4096 + 1);
	assert_int_equal(status_of(t, 1), VIRTIO_BLK_S_OK);
	assert_memory_equal(ram + DATA + 0x10000, ram + DATA, 4096);
	assert_int_equal(interrupts[0], 2);
	assert_int_equal(needs_reset, 0);
	done(t);
}

static void scattered_buffers_and_shared_status_descriptor(void **state)
{
	(void)state;
	struct t *t = ram_disk();
	uint8_t *ram = t->f->ram;
	struct vqdrv *d = &t->d[0];

	/* OUT: header and first 100 data bytes in one descriptor, the rest in two more */
	put_hdr(t, DATA, VIRTIO_BLK_T_OUT, 1);
	fill(ram + DATA + 16, 100, 9);
	fill(ram + DATA + 0x1000, 300, 10);
	fill(ram + DATA + 0x2000, 112, 11);
	vqdrv_desc(d, 0, DATA, 116, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(d, 1, DATA + 0x1000, 300, VIRTQ_DESC_F_NEXT, 2);
	vqdrv_desc(d, 2, DATA + 0x2000, 112, VIRTQ_DESC_F_NEXT, 3);
	vqdrv_desc(d, 3, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(d, 0);
	kick(t, 0);
	expect_used(t, 0, 0, 1);
	assert_int_equal(ram[STATUS], VIRTIO_BLK_S_OK);

	/* IN: data split over two writable descriptors, the status the last byte of the
	 * second */
	put_hdr(t, HDR, VIRTIO_BLK_T_IN, 1);
	memset(ram + DATA + 0x4000, 0xcc, 0x1000);
	vqdrv_desc(d, 4, HDR, 16, VIRTQ_DESC_F_NEXT, 5);
	vqdrv_desc(d, 5, DATA + 0x4000, 200, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 6);
	vqdrv_desc(d, 6, DATA + 0x5000, 313, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(d, 4);
	kick(t, 0);
	expect_used(t, 0, 4, 513);
	assert_int_equal(ram[DATA + 0x5000 + 312], VIRTIO_BLK_S_OK);
	assert_memory_equal(ram + DATA + 0x4000, ram + DATA + 16, 100);
	assert_memory_equal(ram + DATA + 0x4000 + 100, ram + DATA + 0x1000, 100);
	assert_memory_equal(ram + DATA + 0x5000, ram + DATA + 0x1000 + 100, 200);
	assert_memory_equal(ram + DATA + 0x5000 + 200, ram + DATA + 0x2000, 112);
	done(t);
}

static void indirect_request(void **state)
{
	(void)state;
	struct t *t = ram_disk();
	uint8_t *ram = t->f->ram;
	const uint64_t itab = 0x30000;

	fill(ram + DATA, 1024, 3);
	put_hdr(t, HDR, VIRTIO_BLK_T_OUT, 100);
	vqdrv_desc_at(ram, itab, 0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc_at(ram, itab, 1, DATA, 1024, VIRTQ_DESC_F_NEXT, 2);
	vqdrv_desc_at(ram, itab, 2, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_desc(&t->d[0], 0, itab, 48, VIRTQ_DESC_F_INDIRECT, 0);
	vqdrv_post(&t->d[0], 0);
	kick(t, 0);
	expect_used(t, 0, 0, 1);
	assert_int_equal(ram[STATUS], VIRTIO_BLK_S_OK);
	memset(ram + DATA + 0x8000, 0, 1024);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 100, DATA + 0x8000, 1024, true),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(ram + DATA + 0x8000, ram + DATA, 1024);
	done(t);
}

static void flush_and_get_id(void **state)
{
	(void)state;
	struct t *t = mk("{\"serial\": \"disk-serial-1\"}", "blk-ram",
			 "{\"frontend\": \"vda\", \"size\": \"1M\"}", 0);
	uint8_t *ram = t->f->ram;
	char want[20] = "disk-serial-1";

	post_req(t, 0, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	kick(t, 0);
	expect_used(t, 0, 0, 1);
	assert_int_equal(status_of(t, 0), VIRTIO_BLK_S_OK);

	memset(ram + DATA, 0xff, 32);
	post_req(t, 0, 1, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true);
	kick(t, 0);
	expect_used(t, 0, 3, 21);
	assert_int_equal(status_of(t, 1), VIRTIO_BLK_S_OK);
	assert_memory_equal(ram + DATA, want, 20);
	assert_int_equal(ram[DATA + 20], 0xff);

	/* a short buffer gets what fits */
	memset(ram + DATA, 0xff, 32);
	post_req(t, 0, 2, VIRTIO_BLK_T_GET_ID, 0, DATA, 4, true);
	kick(t, 0);
	expect_used(t, 0, 6, 5);
	assert_memory_equal(ram + DATA, "disk", 4);
	assert_int_equal(ram[DATA + 4], 0xff);
	done(t);
}

static void get_id_defaults_to_device_id(void **state)
{
	(void)state;
	struct t *t = ram_disk();

	memset(t->f->ram + DATA, 0xff, 20);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true), VIRTIO_BLK_S_OK);
	assert_memory_equal(t->f->ram + DATA, "vda\0\0", 5);
	done(t);
}

static void put_dwz(struct t *t, uint64_t gpa, uint64_t sector, uint32_t n, uint32_t flags)
{
	memcpy(t->f->ram + gpa, &sector, 8);
	memcpy(t->f->ram + gpa + 8, &n, 4);
	memcpy(t->f->ram + gpa + 12, &flags, 4);
}

static void discard_and_write_zeroes(void **state)
{
	(void)state;
	struct t *t = ram_disk();
	uint8_t *ram = t->f->ram;
	const uint64_t seg = 0x40000, buf = DATA + 0x40000;

	fill(ram + DATA, 8192, 5);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_OUT, 0, DATA, 8192, false), VIRTIO_BLK_S_OK);

	/* write zeroes with unmap over sectors 2..5 */
	put_dwz(t, seg, 2, 4, VIRTIO_BLK_WZ_F_UNMAP);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false), VIRTIO_BLK_S_OK);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 0, buf, 8192, true), VIRTIO_BLK_S_OK);
	assert_memory_equal(ram + buf, ram + DATA, 1024);
	for (int i = 1024; i < 3072; i++)
		assert_int_equal(ram[buf + i], 0);
	assert_memory_equal(ram + buf + 3072, ram + DATA + 3072, 8192 - 3072);

	/* write zeroes without unmap, and a discard */
	put_dwz(t, seg, 14, 2, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false), VIRTIO_BLK_S_OK);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 14, buf, 1024, true), VIRTIO_BLK_S_OK);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(ram[buf + i], 0);
	put_dwz(t, seg, 0, 1, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false), VIRTIO_BLK_S_OK);
	/* zero sectors is a no-op that succeeds */
	put_dwz(t, seg, 5, 0, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false), VIRTIO_BLK_S_OK);
	done(t);
}

static void discard_and_write_zeroes_refusals(void **state)
{
	(void)state;
	struct t *t = ram_disk();
	const uint64_t seg = 0x40000;
	const uint64_t cap = DISK / 512;

	/* unknown flags, unmap on a discard: unsupported */
	put_dwz(t, seg, 0, 1, 2);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false),
			 VIRTIO_BLK_S_UNSUPP);
	put_dwz(t, seg, 0, 1, VIRTIO_BLK_WZ_F_UNMAP);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false), VIRTIO_BLK_S_UNSUPP);
	/* beyond the disk, overflowing, too long */
	put_dwz(t, seg, cap - 1, 2, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false), VIRTIO_BLK_S_IOERR);
	put_dwz(t, seg, cap, 1, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false),
			 VIRTIO_BLK_S_IOERR);
	put_dwz(t, seg, UINT64_MAX - 1, 4, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false), VIRTIO_BLK_S_IOERR);
	put_dwz(t, seg, 0, VIRTIO_BLK_DISCARD_SECTORS_MAX + 1, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false), VIRTIO_BLK_S_IOERR);
	/* segment lists: two segments (max 1), a partial one, none */
	put_dwz(t, seg, 0, 1, 0);
	put_dwz(t, seg + 16, 1, 1, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_DISCARD, 0, seg, 32, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_DISCARD, 0, seg, 12, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, 0, 0, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(needs_reset, 0);
	done(t);

	/* not negotiated: unsupported */
	t = mk(NULL, "blk-ram", "{\"frontend\": \"vda\", \"size\": \"1M\"}",
	       VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
	put_dwz(t, seg, 0, 1, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false),
			 VIRTIO_BLK_S_UNSUPP);
	done(t);
}

static void out_of_range_and_misaligned_io(void **state)
{
	(void)state;
	struct t *t = ram_disk();
	const uint64_t cap = DISK / 512;

	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, cap - 1, DATA, 512, true), VIRTIO_BLK_S_OK);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, cap, DATA, 512, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, cap - 1, DATA, 1024, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_OUT, cap, DATA, 512, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, UINT64_MAX, DATA, 512, true),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, UINT64_MAX / 512 + 1, DATA, 512, true),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 0, DATA, 100, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_OUT, 0, DATA, 513, false), VIRTIO_BLK_S_IOERR);
	/* used length on error: the status byte only */
	post_req(t, 0, 0, VIRTIO_BLK_T_IN, cap, DATA, 512, true);
	kick(t, 0);
	expect_used(t, 0, 0, 1);
	/* a zero-length read at the end is fine */
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, cap, 0, 0, true), VIRTIO_BLK_S_OK);
	assert_int_equal(needs_reset, 0);
	done(t);
}

static void unsupported_type(void **state)
{
	(void)state;
	struct t *t = ram_disk();

	assert_int_equal(do_req(t, 99, 0, DATA, 512, true), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(do_req(t, 2, 0, DATA, 512, true), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(do_req(t, 0xffffffff, 0, 0, 0, true), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(needs_reset, 0);
	done(t);
}

static void readonly_refuses_writes(void **state)
{
	(void)state;
	struct t *t = mk(NULL, "blk-ram",
			 "{\"frontend\": \"vda\", \"size\": \"1M\", \"readonly\": true}", 0);
	uint8_t *ram = t->f->ram;

	fill(ram + DATA, 512, 1);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_OUT, 0, DATA, 512, false), VIRTIO_BLK_S_IOERR);
	put_dwz(t, 0x40000, 0, 1, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_DISCARD, 0, 0x40000, 16, false),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, 0x40000, 16, false),
			 VIRTIO_BLK_S_IOERR);
	/* nothing was written; reads and flushes still work */
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 0, DATA, 512, true), VIRTIO_BLK_S_OK);
	for (int i = 0; i < 512; i++)
		assert_int_equal(ram[DATA + i], 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	done(t);
}

static void no_backend_fails_requests(void **state)
{
	(void)state;
	struct t *t = mk(NULL, NULL, NULL, 0);
	uint64_t cap = 1;

	t->vd->ops->config_read(t->vd, VIRTIO_BLK_CFG_CAPACITY, &cap, 8);
	assert_int_equal(cap, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 0, DATA, 512, true), VIRTIO_BLK_S_IOERR);
	done(t);
}

static void second_queue_works(void **state)
{
	(void)state;
	struct t *t =
		mk("{\"queues\": 2}", "blk-ram", "{\"frontend\": \"vda\", \"size\": \"1M\"}", 0);

	fill(t->f->ram + DATA, 512, 7);
	post_req(t, 1, 0, VIRTIO_BLK_T_OUT, 3, DATA, 512, false);
	kick(t, 1);
	expect_used(t, 1, 0, 1);
	expect_no_used(t, 0);
	assert_int_equal(interrupts[1], 1);
	assert_int_equal(interrupts[0], 0);
	post_req(t, 0, 1, VIRTIO_BLK_T_IN, 3, DATA + 0x1000, 512, true);
	kick(t, 0);
	expect_used(t, 0, 3, 513);
	assert_memory_equal(t->f->ram + DATA + 0x1000, t->f->ram + DATA, 512);
	/* a notification for a queue that does not exist is ignored */
	kick(t, 7);
	done(t);
}

/* ---- hostile chains break the device ---- */

static void short_header_breaks(void **state)
{
	(void)state;
	struct t *t = ram_disk();
	struct vqdrv *d = &t->d[0];

	vqdrv_desc(d, 0, HDR, 8, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(d, 1, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(d, 0);
	kick(t, 0);
	expect_no_used(t, 0);
	assert_int_equal(needs_reset, 1);
	assert_true(t->vd->vqs[0].broken);
	/* more kicks change nothing and report nothing new */
	kick(t, 0);
	assert_int_equal(needs_reset, 1);
	expect_no_used(t, 0);
	done(t);
}

static void missing_status_breaks(void **state)
{
	(void)state;
	struct t *t = ram_disk();
	struct vqdrv *d = &t->d[0];

	put_hdr(t, HDR, VIRTIO_BLK_T_OUT, 0);
	vqdrv_desc(d, 0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(d, 1, DATA, 512, 0, 0);
	vqdrv_post(d, 0);
	kick(t, 0);
	expect_no_used(t, 0);
	assert_int_equal(needs_reset, 1);
	done(t);
}

static void zero_length_status_breaks(void **state)
{
	(void)state;
	struct t *t = ram_disk();
	struct vqdrv *d = &t->d[0];

	put_hdr(t, HDR, VIRTIO_BLK_T_FLUSH, 0);
	vqdrv_desc(d, 0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(d, 1, STATUS, 0, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(d, 0);
	kick(t, 0);
	expect_no_used(t, 0);
	assert_int_equal(needs_reset, 1);
	done(t);
}

static void looping_chain_breaks_device(void **state)
{
	(void)state;
	struct t *t = ram_disk();
	struct vqdrv *d = &t->d[0];

	/* a good request first: it completes; the bad one after it breaks the queue */
	post_req(t, 0, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	vqdrv_desc(d, 9, HDR, 16, VIRTQ_DESC_F_NEXT, 10);
	vqdrv_desc(d, 10, STATUS, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 11);
	vqdrv_desc(d, 11, STATUS, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 10);
	vqdrv_post(d, 9);
	kick(t, 0);
	expect_used(t, 0, 0, 1);
	expect_no_used(t, 0);
	assert_int_equal(needs_reset, 1);
	assert_non_null(strstr(t->vd->vqs[0].why, "loops"));

	/* reset brings it back */
	hearth_dev_lock(t->dev);
	t->vd->ops->reset(t->vd);
	hearth_dev_unlock(t->dev);
	virtq_reset(&t->vd->vqs[0]);
	assert_true(t->vd->ops->features_ok(t->vd, t->vd->offered));
	start_queue(t, 0, RING0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	done(t);
}

static void broken_queue_stops_every_queue(void **state)
{
	(void)state;
	struct t *t =
		mk("{\"queues\": 2}", "blk-ram", "{\"frontend\": \"vda\", \"size\": \"1M\"}", 0);

	vqdrv_post(&t->d[0], QSIZE + 1); /* head beyond the queue */
	kick(t, 0);
	assert_int_equal(needs_reset, 1);
	post_req(t, 1, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	kick(t, 1);
	expect_no_used(t, 1);
	assert_int_equal(needs_reset, 1);
	/* after a reset both queues work */
	hearth_dev_lock(t->dev);
	t->vd->ops->reset(t->vd);
	hearth_dev_unlock(t->dev);
	virtq_reset(&t->vd->vqs[0]);
	virtq_reset(&t->vd->vqs[1]);
	start_queue(t, 0, RING0);
	start_queue(t, 1, RING1);
	post_req(t, 1, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	kick(t, 1);
	expect_used(t, 1, 0, 1);
	done(t);
}

/* ---- asynchronous backends, errors, reset in flight ---- */

static struct t *test_disk(const char *extra)
{
	char be[128];

	snprintf(be, sizeof(be), "{\"frontend\": \"vda\"%s}", extra ? extra : "");
	return mk(NULL, "blk-test", be, 0);
}

static void backend_error_is_ioerr_and_device_keeps_working(void **state)
{
	(void)state;
	struct t *t = test_disk(NULL);

	tb->mode = TB_FAIL;
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 0, DATA, 512, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_IOERR);
	tb->mode = TB_SYNC;
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 0, DATA, 512, true), VIRTIO_BLK_S_OK);

	/* asynchronous failure */
	tb->mode = TB_HOLD;
	post_req(t, 0, 0, VIRTIO_BLK_T_OUT, 0, DATA, 512, false);
	kick(t, 0);
	expect_no_used(t, 0);
	tb_complete_all(-EIO);
	expect_used(t, 0, 0, 1);
	assert_int_equal(status_of(t, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(needs_reset, 0);
	done(t);
}

static void async_completion_batches_notifications(void **state)
{
	(void)state;
	struct t *t = test_disk(NULL);

	tb->mode = TB_HOLD;
	for (unsigned i = 0; i < 4; i++)
		post_req(t, 0, i, VIRTIO_BLK_T_IN, i, DATA + 0x1000 * i, 512, true);
	kick(t, 0);
	assert_int_equal(tb->nheld, 4);
	assert_int_equal(tb->kicks, 1); /* one kick per batch */
	assert_int_equal(tb->last.op, HEARTH_BLK_READ);
	assert_int_equal(tb->last.offset, 3 * 512);
	assert_int_equal(tb->last.len, 512);
	assert_int_equal(interrupts[0], 0);
	expect_no_used(t, 0);
	tb_complete_all(0);
	for (unsigned i = 0; i < 4; i++) {
		expect_used(t, 0, 3 * i, 513);
		assert_int_equal(status_of(t, i), VIRTIO_BLK_S_OK);
	}
	assert_int_equal(interrupts[0], 1); /* one per batch */
	done(t);
}

static void event_idx_suppresses_interrupts(void **state)
{
	(void)state;
	struct t *t = test_disk(NULL);
	struct vqdrv *d = &t->d[0];

	tb->mode = TB_SYNC;
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(interrupts[0], 1);
	/* the driver asks to hear only after used index passes 3 */
	vqdrv_set_used_event(d, 3);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(interrupts[0], 1);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(interrupts[0], 2);
	/* and the device asked for the next kick: avail_event is where it stopped */
	assert_int_equal(vqdrv_avail_event(d), d->avail_idx);
	done(t);
}

static void no_interrupt_flag_without_event_idx(void **state)
{
	(void)state;
	struct t *t = mk(NULL, "blk-test", "{\"frontend\": \"vda\"}",
			 VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));

	tb->mode = TB_SYNC;
	vqdrv_set_avail_flags(&t->d[0], VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(interrupts[0], 0);
	vqdrv_set_avail_flags(&t->d[0], 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(interrupts[0], 1);
	done(t);
}

static void full_pool_stalls_then_resumes(void **state)
{
	(void)state;
	/* 2 request slots: a hostile driver reposting heads cannot make us allocate more */
	struct t *t = calloc(1, sizeof(*t));
	t->f = fakevm_new(RAM);
	t->dev = fakevm_dev(t->f, "test-vblk", "vda", "{\"queue-size\": 2}");
	assert_non_null(t->dev);
	t->vd = virtio_blk_vdev(t->dev);
	assert_non_null(fakevm_dev(t->f, "blk-test", "disk0", "{\"frontend\": \"vda\"}"));
	t->vd->features = t->vd->offered;
	vqdrv_init(&t->d[0], t->f, &t->vd->vqs[0], 2, RING0);
	assert_int_equal(virtq_enable(&t->vd->vqs[0], t->vd->features), 0);
	struct vqdrv *d = &t->d[0];

	tb->mode = TB_HOLD;
	put_hdr(t, HDR, VIRTIO_BLK_T_FLUSH, 0);
	vqdrv_desc(d, 0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(d, 1, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(d, 0);
	vqdrv_post(d, 0);
	kick(t, 0);
	assert_int_equal(tb->nheld, 2);
	vqdrv_post(d, 0);
	vqdrv_post(d, 0);
	kick(t, 0);
	assert_int_equal(tb->nheld, 2); /* no slot free: nothing popped */
	tb->nheld = 0;
	struct hearth_blk_req *a = tb->held[0], *b = tb->held[1];
	tb->fe_ops->complete(tb->fe, a, 0);
	tb->fe_ops->complete(tb->fe, b, 0);
	tb->fe_ops->complete_done(tb->fe); /* resumes the queue: two more in flight */
	assert_int_equal(tb->nheld, 2);
	tb_complete_all(0);
	uint32_t id, len;
	int n = 0;
	while (vqdrv_get_used(d, &id, &len))
		n++;
	assert_int_equal(n, 4);
	assert_int_equal(needs_reset, 0);
	done(t);
}

static void reset_drops_requests_in_flight(void **state)
{
	(void)state;
	struct t *t = test_disk(NULL);

	tb->mode = TB_HOLD;
	post_req(t, 0, 0, VIRTIO_BLK_T_IN, 0, DATA, 512, true);
	kick(t, 0);
	assert_int_equal(tb->nheld, 1);
	hearth_dev_lock(t->dev);
	t->vd->ops->reset(t->vd);
	hearth_dev_unlock(t->dev);
	virtq_reset(&t->vd->vqs[0]);
	t->f->ram[STATUS] = 0xee;
	tb_complete_all(0);
	assert_int_equal(vqdrv_used_idx(&t->d[0]), 0);
	assert_int_equal(t->f->ram[STATUS], 0xee); /* status not written after reset */
	assert_int_equal(interrupts[0], 0);

	/* the device works again after re-initialisation */
	t->vd->features = t->vd->offered;
	start_queue(t, 0, RING0);
	tb->mode = TB_SYNC;
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 0, DATA, 512, true), VIRTIO_BLK_S_OK);
	done(t);
}

static void write_through_without_flush_feature(void **state)
{
	(void)state;
	struct t *t = test_disk(NULL);

	tb->mode = TB_SYNC;
	assert_int_equal(do_req(t, VIRTIO_BLK_T_OUT, 0, DATA, 512, false), VIRTIO_BLK_S_OK);
	assert_int_equal(tb->last.flags & HEARTH_BLK_F_FUA, 0);
	done(t);

	t = mk(NULL, "blk-test", "{\"frontend\": \"vda\"}", VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
	tb->mode = TB_SYNC;
	uint8_t wb = 1;
	t->vd->ops->config_read(t->vd, VIRTIO_BLK_CFG_WRITEBACK, &wb, 1);
	assert_int_equal(wb, 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_OUT, 0, DATA, 512, false), VIRTIO_BLK_S_OK);
	assert_int_equal(tb->last.flags & HEARTH_BLK_F_FUA, HEARTH_BLK_F_FUA);
	done(t);
}

static void large_block_size_alignment(void **state)
{
	(void)state;
	struct t *t = test_disk(", \"block\": 4096");
	uint32_t bs = 0, align = 0;

	t->vd->ops->config_read(t->vd, VIRTIO_BLK_CFG_BLK_SIZE, &bs, 4);
	assert_int_equal(bs, 4096);
	t->vd->ops->config_read(t->vd, VIRTIO_BLK_CFG_DISCARD_ALIGN, &align, 4);
	assert_int_equal(align, 8);
	tb->mode = TB_SYNC;
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 8, DATA, 4096, true), VIRTIO_BLK_S_OK);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 1, DATA, 4096, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_IN, 8, DATA, 512, true), VIRTIO_BLK_S_IOERR);
	done(t);
}

static void backend_with_bad_geometry_refused(void **state)
{
	(void)state;
	struct fakevm *f = fakevm_new(RAM);

	assert_non_null(fakevm_dev(f, "test-vblk", "vda", NULL));
	assert_null(fakevm_dev(f, "blk-test", "b", "{\"frontend\": \"vda\", \"block\": 1000}"));
	assert_non_null(strstr(hearth_err_msg(), "block size"));
	fakevm_free(f);
}

/* ---- a backend's I/O thread: notifications and polling ---- */

static void notifications_move_to_backend_thread(void **state)
{
	(void)state;
	struct t *t = mk("{\"queues\": 2}", "blk-test", "{\"frontend\": \"vda\"}", 0);

	assert_int_equal(taken, 2);
	assert_int_equal(tb->nwatched, 2);
	assert_int_equal(tb->watched[0], notify_efd[0]);
	assert_int_equal(tb->watched[1], notify_efd[1]);
	assert_int_equal(given, 0);
	/* the backend leaves: the transport watches them again */
	assert_int_equal(hearth_dev_remove(hearth_dev_find(&t->f->vm, "disk0")), 0);
	assert_int_equal(given, 2);
	done(t);

	/* a backend that cannot watch them gives them straight back, and not twice */
	tb_watch_result = -1;
	t = mk("{\"queues\": 2}", "blk-test", "{\"frontend\": \"vda\"}", 0);
	tb_watch_result = 0;
	assert_int_equal(taken, 2);
	assert_int_equal(given, 2);
	assert_int_equal(hearth_dev_remove(hearth_dev_find(&t->f->vm, "disk0")), 0);
	assert_int_equal(given, 2);
	done(t);

	/* a queue the transport cannot hand over: the ones taken go back, no watch */
	take_fail = 1;
	t = mk("{\"queues\": 2}", "blk-test", "{\"frontend\": \"vda\"}", 0);
	take_fail = 99;
	assert_int_equal(taken, 1);
	assert_int_equal(given, 1);
	assert_int_equal(tb->nwatched, 0);
	done(t);
}

static void kicked_runs_that_queue(void **state)
{
	(void)state;
	struct t *t = mk("{\"queues\": 2}", "blk-test", "{\"frontend\": \"vda\"}", 0);

	tb->mode = TB_SYNC;
	post_req(t, 1, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	tb->fe_ops->kicked(tb->fe, 0);
	expect_no_used(t, 1);
	tb->fe_ops->kicked(tb->fe, 7); /* no such queue: nothing */
	expect_no_used(t, 1);
	tb->fe_ops->kicked(tb->fe, 1);
	expect_used(t, 1, 0, 1);
	assert_int_equal(interrupts[1], 1);
	done(t);
}

/* With EVENT_IDX: while the backend's thread polls, avail_event stays behind everything the
 * driver can post (no kick needed) and the requests are found anyway; poll(false) asks for
 * kicks again and finds what came in between. */
static void poll_keeps_guest_quiet_event_idx(void **state)
{
	(void)state;
	struct t *t = test_disk(NULL);
	struct vqdrv *d = &t->d[0];

	tb->mode = TB_SYNC;
	post_req(t, 0, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	assert_true(tb->fe_ops->poll(tb->fe, true));
	expect_used(t, 0, 0, 1);
	/* one behind where polling began; the driver's next post (1 -> 2) asks for no kick */
	assert_int_equal(vqdrv_avail_event(d), 0xffff);
	assert_false(virtq_need_event(vqdrv_avail_event(d), 2, 1));
	assert_false(tb->fe_ops->poll(tb->fe, true));
	post_req(t, 0, 1, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	assert_true(tb->fe_ops->poll(tb->fe, true));
	expect_used(t, 0, 3, 1);
	assert_false(virtq_need_event(vqdrv_avail_event(d), 3, 2));
	/* posted just before the thread gives up polling: found, not lost */
	post_req(t, 0, 2, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	assert_true(tb->fe_ops->poll(tb->fe, false));
	expect_used(t, 0, 6, 1);
	/* and kicks are wanted again from the very next post */
	assert_int_equal(vqdrv_avail_event(d), 3);
	assert_true(virtq_need_event(vqdrv_avail_event(d), 4, 3));
	assert_false(tb->fe_ops->poll(tb->fe, false));
	done(t);
}

static void poll_keeps_guest_quiet_flags(void **state)
{
	(void)state;
	struct t *t = mk(NULL, "blk-test", "{\"frontend\": \"vda\"}",
			 VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));

	tb->mode = TB_SYNC;
	assert_false(tb->fe_ops->poll(tb->fe, true));
	assert_int_equal(vqdrv_used_flags(&t->d[0]), VIRTQ_USED_F_NO_NOTIFY);
	post_req(t, 0, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	assert_true(tb->fe_ops->poll(tb->fe, true));
	expect_used(t, 0, 0, 1);
	assert_false(tb->fe_ops->poll(tb->fe, false));
	assert_int_equal(vqdrv_used_flags(&t->d[0]), 0);
	done(t);
}

/* Notifications left off (a checkpoint taken while the thread polled, restored where nothing
 * polls) come back on at the next look at the queue. */
static void stale_notify_off_is_undone(void **state)
{
	(void)state;
	struct t *t = test_disk(NULL);
	struct vqdrv *d = &t->d[0];

	tb->mode = TB_SYNC;
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	virtq_disable_notify(&t->vd->vqs[0]);
	assert_int_equal(vqdrv_avail_event(d), 0);
	assert_int_equal(do_req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	assert_false(t->vd->vqs[0].notify_off);
	assert_int_equal(vqdrv_avail_event(d), 2);
	done(t);
}

/* ---- the whole path on blk-file ---- */

static void file_round_trip_durable_after_flush(void **state)
{
	(void)state;
	char path[] = "/tmp/hearth-vblk-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DISK), 0);
	char be[160];
	snprintf(be, sizeof(be), "{\"frontend\": \"vda\", \"path\": \"%s\"}", path);
	struct t *t = mk(NULL, "blk-file", be, 0);
	snprintf(t->tmp, sizeof(t->tmp), "%s", path);
	uint8_t *ram = t->f->ram;

	fill(ram + DATA, 8192, 42);
	post_req(t, 0, 0, VIRTIO_BLK_T_OUT, 16, DATA, 8192, false);
	post_req(t, 0, 1, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	kick(t, 0);
	int n = 0;
	uint32_t id, len;
	for (int i = 0; i < 200 && n < 2; i++) {
		loop_run_once(t->f->vm.loop, 50);
		while (vqdrv_get_used(&t->d[0], &id, &len))
			n++;
	}
	assert_int_equal(n, 2);
	assert_int_equal(status_of(t, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(status_of(t, 1), VIRTIO_BLK_S_OK);
	assert_true(__atomic_load_n(&interrupts[0], __ATOMIC_RELAXED) >= 1);

	uint8_t back[8192];
	assert_int_equal(pread(fd, back, sizeof(back), 16 * 512), (ssize_t)sizeof(back));
	assert_memory_equal(back, ram + DATA, sizeof(back));

	memset(ram + DATA + 0x10000, 0, 8192);
	post_req(t, 0, 2, VIRTIO_BLK_T_IN, 16, DATA + 0x10000, 8192, true);
	kick(t, 0);
	for (int i = 0; i < 200 && !vqdrv_get_used(&t->d[0], &id, &len); i++)
		loop_run_once(t->f->vm.loop, 50);
	assert_int_equal(len, 8193);
	assert_int_equal(status_of(t, 2), VIRTIO_BLK_S_OK);
	assert_memory_equal(ram + DATA + 0x10000, ram + DATA, 8192);
	close(fd);
	done(t);
}

/* ---- the class `virtio-blk`: engine + virtio-pci transport + blk-file, end to end ---- */

struct pt {
	struct fakevm *f;
	struct hearth_dev *dev;
	struct vpcidrv d;
	struct vqdrv q;
	char path[64];
	int fd;
};

static struct pt *pci_disk(const char *fe_extra, const char *be_extra)
{
	struct pt *p = calloc(1, sizeof(*p));
	char json[256];

	p->f = fakevm_new(RAM);
	snprintf(p->path, sizeof(p->path), "/tmp/hearth-vblk-pci-XXXXXX");
	p->fd = mkstemp(p->path);
	assert_true(p->fd >= 0);
	assert_int_equal(ftruncate(p->fd, DISK), 0);
	snprintf(json, sizeof(json), "{\"serial\": \"pci-disk\"%s}", fe_extra ? fe_extra : "");
	p->dev = fakevm_dev(p->f, "virtio-blk", "vda", json);
	if (!p->dev)
		fail_msg("virtio-blk: %s", hearth_err_msg());
	snprintf(json, sizeof(json), "{\"frontend\": \"vda\", \"path\": \"%s\"%s}", p->path,
		 be_extra ? be_extra : "");
	if (!fakevm_dev(p->f, "blk-file", "vda-file", json))
		fail_msg("blk-file: %s", hearth_err_msg());
	assert_true(vpd_probe(&p->d, p->f, VIRTIO_ID_BLOCK));
	return p;
}

static void pci_done(struct pt *p)
{
	fakevm_free(p->f);
	close(p->fd);
	unlink(p->path);
	free(p);
}

static void pci_up(struct pt *p, uint64_t features)
{
	assert_true(vpd_negotiate(&p->d, features));
	vpd_queue(&p->d, 0, QSIZE, RING0, &p->q);
	vpd_driver_ok(&p->d);
	assert_int_equal(vpd_status(&p->d), 0x0F);
}

/* Post a three-descriptor request, kick, and run the loop until it is used. */
static uint8_t pci_req(struct pt *p, unsigned slot, uint32_t type, uint64_t sector, uint64_t data,
		       uint32_t len, bool writable)
{
	uint64_t hdr = HDR + 16 * slot, st = STATUS + slot;
	unsigned i = 3 * slot;
	uint32_t id, l;

	memcpy(p->f->ram + hdr, &type, 4);
	memset(p->f->ram + hdr + 4, 0, 4);
	memcpy(p->f->ram + hdr + 8, &sector, 8);
	p->f->ram[st] = 0xee;
	vqdrv_desc(&p->q, i, hdr, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
	vqdrv_desc(&p->q, i + 1, data, len, VIRTQ_DESC_F_NEXT | (writable ? VIRTQ_DESC_F_WRITE : 0),
		   (uint16_t)(i + 2));
	vqdrv_desc(&p->q, i + 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&p->q, (uint16_t)i);
	vpd_kick(&p->d, 0);
	for (int n = 0; n < 200 && !vqdrv_get_used(&p->q, &id, &l); n++)
		loop_run_once(p->f->vm.loop, 20);
	assert_int_equal(id, i);
	return p->f->ram[st];
}

#define F_BASE (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH))

static void pci_identity_config_and_describe(void **state)
{
	(void)state;
	struct pt *p = pci_disk(", \"queues\": 2", NULL);
	char buf[256];

	assert_int_equal(vpd_rd(&p->d, p->d.common + VPD_NUMQ, 2), 2);
	uint64_t off = vpd_offered(&p->d);
	assert_true(off & VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_true(off & VIRTIO_BIT(VIRTIO_BLK_F_MQ));
	assert_true(off & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
	assert_false(off & VIRTIO_BIT(VIRTIO_BLK_F_RO));
	assert_true(p->d.has_device_cap);
	assert_true(p->d.device_len >= VIRTIO_BLK_CFG_LEN);
	uint64_t cap = vpd_rd(&p->d, p->d.device + VIRTIO_BLK_CFG_CAPACITY, 4) |
		       vpd_rd(&p->d, p->d.device + VIRTIO_BLK_CFG_CAPACITY + 4, 4) << 32;
	assert_int_equal(cap, DISK / 512);
	assert_int_equal(vpd_rd(&p->d, p->d.device + VIRTIO_BLK_CFG_NUM_QUEUES, 2), 2);
	hearth_dev_class(p->dev)->describe(p->dev, buf, sizeof(buf));
	assert_non_null(strstr(buf, "1af4:1042"));
	assert_non_null(strstr(buf, p->path));
	pci_done(p);
}

static void pci_guest_write_is_on_disk_after_flush(void **state)
{
	(void)state;
	struct pt *p = pci_disk(NULL, NULL);
	uint8_t *ram = p->f->ram, back[4096];

	pci_up(p,
	       F_BASE | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	fill(ram + DATA, 4096, 0x5a);
	assert_int_equal(pci_req(p, 0, VIRTIO_BLK_T_OUT, 40, DATA, 4096, false), VIRTIO_BLK_S_OK);
	assert_int_equal(pci_req(p, 1, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(p->fd, back, sizeof(back), 40 * 512), (ssize_t)sizeof(back));
	assert_memory_equal(back, ram + DATA, sizeof(back));
	/* the host's bytes come back to the guest */
	fill(back, sizeof(back), 0x33);
	assert_int_equal(pwrite(p->fd, back, sizeof(back), 80 * 512), (ssize_t)sizeof(back));
	assert_int_equal(pci_req(p, 2, VIRTIO_BLK_T_IN, 80, DATA + 0x10000, 4096, true),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(ram + DATA + 0x10000, back, sizeof(back));
	/* INTx: the ISR shows a used-buffer notification */
	assert_int_equal(vpd_rd(&p->d, p->d.isr, 1) & 1, 1);
	assert_int_equal(pci_req(p, 3, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true), VIRTIO_BLK_S_OK);
	assert_memory_equal(ram + DATA, "pci-disk", 9);
	pci_done(p);
}

static void pci_readonly_disk_refuses_writes(void **state)
{
	(void)state;
	struct pt *p = pci_disk(NULL, ", \"readonly\": true");
	uint8_t back[512];

	assert_true(vpd_offered(&p->d) & VIRTIO_BIT(VIRTIO_BLK_F_RO));
	pci_up(p, F_BASE | VIRTIO_BIT(VIRTIO_BLK_F_RO));
	fill(p->f->ram + DATA, 512, 1);
	assert_int_equal(pci_req(p, 0, VIRTIO_BLK_T_OUT, 0, DATA, 512, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(pread(p->fd, back, 512, 0), 512);
	for (int i = 0; i < 512; i++)
		assert_int_equal(back[i], 0);
	pci_done(p);
}

static void pci_hostile_queue_needs_reset_then_recovers(void **state)
{
	(void)state;
	struct pt *p = pci_disk(NULL, NULL);

	pci_up(p, F_BASE);
	vqdrv_post(&p->q, QSIZE + 5);
	vpd_kick(&p->d, 0);
	/* the kick reaches the disk's I/O thread */
	for (int i = 0; i < 2000 && !(vpd_status(&p->d) & VPD_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(vpd_status(&p->d) & VPD_NEEDS_RESET);
	/* the driver resets and starts over; the device works again */
	pci_up(p, F_BASE);
	assert_false(vpd_status(&p->d) & VPD_NEEDS_RESET);
	assert_int_equal(pci_req(p, 0, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), VIRTIO_BLK_S_OK);
	/* machine reset returns the function to power-on state */
	hearth_devs_reset(&p->f->vm);
	assert_int_equal(vpd_status(&p->d), 0);
	pci_done(p);
}

/* The disk's I/O thread serves the kicks (the event loop no longer sees them); when the backend
 * goes, the loop takes them back and requests fail for want of a backend. */
static void pci_backend_thread_kicks_and_hand_back(void **state)
{
	(void)state;
	struct pt *p = pci_disk(NULL, NULL);

	pci_up(p, F_BASE);
	assert_int_equal(pci_req(p, 0, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(hearth_dev_remove(hearth_dev_find(&p->f->vm, "vda-file")), 0);
	assert_int_equal(pci_req(p, 1, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), VIRTIO_BLK_S_IOERR);
	pci_done(p);
}

/* Frozen for a checkpoint: the thread's kicks (and its polling) start nothing until thaw. */
static void pci_frozen_holds_thread_kicks(void **state)
{
	(void)state;
	struct pt *p = pci_disk(NULL, NULL);
	struct virtio_device *vd = virtio_blk_vdev(p->dev);
	uint32_t id, l;

	pci_up(p, F_BASE | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
	assert_int_equal(pci_req(p, 0, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), VIRTIO_BLK_S_OK);
	hearth_dev_lock(p->dev);
	virtio_transport_freeze(vd);
	hearth_dev_unlock(p->dev);
	memcpy(p->f->ram + HDR + 16, &(uint32_t){VIRTIO_BLK_T_FLUSH}, 4);
	p->f->ram[STATUS + 1] = 0xee;
	vqdrv_desc(&p->q, 3, HDR + 16, 16, VIRTQ_DESC_F_NEXT, 5);
	vqdrv_desc(&p->q, 5, STATUS + 1, 1, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&p->q, 3);
	vpd_kick(&p->d, 0);
	usleep(30000);
	assert_int_equal(vqdrv_get_used(&p->q, &id, &l), 0);
	hearth_dev_lock(p->dev);
	virtio_transport_thaw(vd);
	hearth_dev_unlock(p->dev);
	for (int n = 0; n < 2000 && !vqdrv_get_used(&p->q, &id, &l); n++)
		usleep(1000);
	assert_int_equal(id, 3);
	assert_int_equal(p->f->ram[STATUS + 1], VIRTIO_BLK_S_OK);
	pci_done(p);
}

/* A driver that kicks only when avail_event asks (EVENT_IDX): back-to-back requests are all
 * served, and while the thread polls most of them need no kick. */
static void pci_polling_spares_kicks(void **state)
{
	(void)state;
	struct pt *p = pci_disk(NULL, ", \"poll-us\": 10000, \"poll-always\": true");
	const unsigned n = 200;
	unsigned kicks = 0;
	uint32_t id, l;

	pci_up(p, F_BASE | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
	memcpy(p->f->ram + HDR, &(uint32_t){VIRTIO_BLK_T_FLUSH}, 4);
	vqdrv_desc(&p->q, 0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(&p->q, 1, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	for (unsigned i = 0; i < n; i++) {
		uint16_t old = p->q.avail_idx;
		p->f->ram[STATUS] = 0xee;
		vqdrv_post(&p->q, 0);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (virtq_need_event(vqdrv_avail_event(&p->q), p->q.avail_idx, old)) {
			fakevm_guest_write(p->f, false, p->d.notify, 0, 2);
			kicks++;
		}
		int w = 0;
		while (w++ < 2000 && !vqdrv_get_used(&p->q, &id, &l))
			usleep(50);
		assert_true(w <= 2000);
		assert_int_equal(p->f->ram[STATUS], VIRTIO_BLK_S_OK);
	}
	assert_true(kicks >= 1 && kicks < n);
	pci_done(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(features_and_config_space),
		cmocka_unit_test(readonly_offers_ro_and_no_discard),
		cmocka_unit_test(bad_keys_refused),
		cmocka_unit_test(write_then_read_round_trip),
		cmocka_unit_test(scattered_buffers_and_shared_status_descriptor),
		cmocka_unit_test(indirect_request),
		cmocka_unit_test(flush_and_get_id),
		cmocka_unit_test(get_id_defaults_to_device_id),
		cmocka_unit_test(discard_and_write_zeroes),
		cmocka_unit_test(discard_and_write_zeroes_refusals),
		cmocka_unit_test(out_of_range_and_misaligned_io),
		cmocka_unit_test(unsupported_type),
		cmocka_unit_test(readonly_refuses_writes),
		cmocka_unit_test(no_backend_fails_requests),
		cmocka_unit_test(second_queue_works),
		cmocka_unit_test(short_header_breaks),
		cmocka_unit_test(missing_status_breaks),
		cmocka_unit_test(zero_length_status_breaks),
		cmocka_unit_test(looping_chain_breaks_device),
		cmocka_unit_test(broken_queue_stops_every_queue),
		cmocka_unit_test(backend_error_is_ioerr_and_device_keeps_working),
		cmocka_unit_test(async_completion_batches_notifications),
		cmocka_unit_test(event_idx_suppresses_interrupts),
		cmocka_unit_test(no_interrupt_flag_without_event_idx),
		cmocka_unit_test(full_pool_stalls_then_resumes),
		cmocka_unit_test(reset_drops_requests_in_flight),
		cmocka_unit_test(write_through_without_flush_feature),
		cmocka_unit_test(large_block_size_alignment),
		cmocka_unit_test(backend_with_bad_geometry_refused),
		cmocka_unit_test(notifications_move_to_backend_thread),
		cmocka_unit_test(kicked_runs_that_queue),
		cmocka_unit_test(poll_keeps_guest_quiet_event_idx),
		cmocka_unit_test(poll_keeps_guest_quiet_flags),
		cmocka_unit_test(stale_notify_off_is_undone),
		cmocka_unit_test(file_round_trip_durable_after_flush),
		cmocka_unit_test(pci_identity_config_and_describe),
		cmocka_unit_test(pci_guest_write_is_on_disk_after_flush),
		cmocka_unit_test(pci_readonly_disk_refuses_writes),
		cmocka_unit_test(pci_hostile_queue_needs_reset_then_recovers),
		cmocka_unit_test(pci_backend_thread_kicks_and_hand_back),
		cmocka_unit_test(pci_frozen_holds_thread_kicks),
		cmocka_unit_test(pci_polling_spares_kicks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
