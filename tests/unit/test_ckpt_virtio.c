/* Checkpoints of the virtio devices and the block backends, driven through the virtio-pci
 * transport as the guest's drivers drive them: a device is saved mid-use (queues live, requests
 * done), loaded into a fresh VM whose RAM is a copy of the first one's (the memory file's job),
 * and the driver carries on there: the next request completes with the next used index.
 * Also quiesce (waiting for requests in flight, holding notifications back), a reset while a
 * request is in flight (device_status stays non-zero until it completes, and nothing lands in
 * guest memory afterwards), and every refusal of a damaged checkpoint whose CRCs are valid. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakevm.h"
#include "hearth/blk.h"
#include "hearth/chardev.h"
#include "hearth/checkpoint.h"
#include "snapshot/devices.h"
#include "snapshot/store.h"
#include "virtio/virtio_blk.h"
#include "virtio/virtio_dev.h"
#include "vm/loop.h"
#include "vpcidrv.h"
#include "vqdrv.h"

#define RAM (4u << 20)
#define RING0 0x1000
#define RING1 0x8000
#define HDR 0x10000
#define STATUS 0x20000
#define DATA 0x100000
#define QSIZE 64
#define DISK (1u << 20)

#define F_BLK                                                                                      \
	(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |                         \
	 VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC))
#define F_V1 VIRTIO_BIT(VIRTIO_F_VERSION_1)

static char dir[64];

/* ---- a block backend whose completions the test releases by hand ----
 * The data moves when a request is released, as a real backend's transfer finishes just before
 * its completion: a read released after a reset would otherwise write guest memory late. */

struct hold {
	uint8_t disk[64 * 1024];
	bool hold; /* false: finish inside submit */
	struct hearth_blk_req *held[64];
	unsigned nheld;
	const struct hearth_blk_frontend_ops *fe_ops;
	void *fe;
};

static void hold_transfer(struct hold *h, struct hearth_blk_req *req)
{
	uint64_t off = req->offset;

	if (req->op != HEARTH_BLK_READ && req->op != HEARTH_BLK_WRITE)
		return;
	for (unsigned i = 0; i < req->niov; i++) {
		if (req->op == HEARTH_BLK_READ)
			memcpy(req->iov[i].iov_base, h->disk + off, req->iov[i].iov_len);
		else
			memcpy(h->disk + off, req->iov[i].iov_base, req->iov[i].iov_len);
		off += req->iov[i].iov_len;
	}
}

static int hold_submit(void *be, struct hearth_blk_req *req)
{
	struct hold *h = be;

	if (!h->hold) {
		hold_transfer(h, req);
		return HEARTH_BLK_DONE;
	}
	assert_true(h->nheld < 64);
	h->held[h->nheld++] = req;
	return HEARTH_BLK_ASYNC;
}

static const struct hearth_blk_backend_ops hold_ops = {.submit = hold_submit};

/* Finish every held request (oldest first), then end the batch; any thread. */
static void hold_release(struct hold *h)
{
	unsigned n = h->nheld;

	h->nheld = 0;
	for (unsigned i = 0; i < n; i++) {
		hold_transfer(h, h->held[i]);
		h->fe_ops->complete(h->fe, h->held[i], 0);
	}
	h->fe_ops->complete_done(h->fe);
}

static int hold_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	struct hold *h = calloc(1, sizeof(*h));
	struct hearth_blk_info info = {.size = sizeof(h->disk), .block_size = 512, .name = "hold"};

	hearth_dev_set_priv(dev, h);
	return hearth_blk_backend_attach(dev, cfg, &info, &hold_ops, h, &h->fe_ops, &h->fe);
}

static void hold_free(struct hearth_dev *dev)
{
	struct hold *h = hearth_dev_priv(dev);

	if (h && h->fe_ops)
		h->fe_ops->detach(h->fe);
	free(h);
}

static int hold_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct hold *h = hearth_dev_priv(dev);
	return hearth_ckpt_put_bytes(ck, "disk", h->disk, sizeof(h->disk));
}

static int hold_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct hold *h = hearth_dev_priv(dev);
	if (hearth_ckpt_accept_versions(ck, 1, 1) < 0)
		return -1;
	return hearth_ckpt_get_bytes(ck, "disk", h->disk, sizeof(h->disk), NULL);
}

HEARTH_DEVICE_CLASS(hold_class, .name = "blk-hold", .init = hold_init, .free = hold_free,
		    .save = hold_save, .load = hold_load);

/* ---- a char backend with a bounded appetite, for virtio-console ---- */

struct ctb {
	uint8_t out[4096];
	size_t nout, room; /* room: bytes it takes before refusing */
	const struct hearth_char_frontend_ops *fe_ops;
	void *fe;
};

static size_t ctb_write(void *be, const uint8_t *buf, size_t len)
{
	struct ctb *c = be;
	size_t n = len < c->room ? len : c->room;

	memcpy(c->out + c->nout, buf, n);
	c->nout += n;
	c->room -= n;
	return n;
}

static const struct hearth_char_backend_ops ctb_ops = {.write = ctb_write};

static int ctb_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	struct ctb *c = calloc(1, sizeof(*c));
	uint64_t room;

	hearth_dev_set_priv(dev, c);
	if (hearth_cfg_u64(cfg, "room", sizeof(c->out), 0, sizeof(c->out), &room) < 0)
		return -1;
	c->room = room;
	return hearth_char_backend_attach(dev, cfg, &ctb_ops, c, &c->fe_ops, &c->fe);
}

static void ctb_free(struct hearth_dev *dev)
{
	free(hearth_dev_priv(dev));
}

static int ctb_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	(void)dev;
	(void)ck;
	return 0;
}

static int ctb_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	(void)dev;
	return hearth_ckpt_accept_versions(ck, 1, 1);
}

HEARTH_DEVICE_CLASS(ctb_class, .name = "char-test", .init = ctb_init, .free = ctb_free,
		    .save = ctb_save, .load = ctb_load);

/* ---- checkpoint helpers ---- */

static void rm_dir(const char *path)
{
	char p[256];
	const char *names[] = {"state", "memory"};

	for (unsigned i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", path, names[i]);
		unlink(p);
	}
	rmdir(path);
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/hearth-ckvio-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char ck[128];
	snprintf(ck, sizeof(ck), "%s/ck", dir);
	rm_dir(ck);
	rmdir(dir);
	return 0;
}

static const char *ck_dir(void)
{
	static char buf[128];
	snprintf(buf, sizeof(buf), "%s/ck", dir);
	return buf;
}

/* What vm_snapshot does around the device walk. */
static void quiesce_all(struct fakevm *f)
{
	for (struct hearth_dev *d = f->vm.devs; d; d = d->next)
		if (d->cls->quiesce && d->cls->quiesce(d) < 0)
			fail_msg("quiesce '%s': %s", d->id, hearth_err_msg());
}

static void unquiesce_all(struct fakevm *f)
{
	for (struct hearth_dev *d = f->vm.devs; d; d = d->next)
		if (d->cls->unquiesce)
			d->cls->unquiesce(d);
}

static int save(struct fakevm *a)
{
	struct hearth_ckpt_writer *w;
	int ret;

	rm_dir(ck_dir());
	assert_int_equal(hearth_ckpt_writer_new(ck_dir(), &w), 0);
	ret = ckpt_save_devices(&a->vm, w);
	if (ret == 0)
		assert_int_equal(hearth_ckpt_writer_finish(w), 0);
	hearth_ckpt_writer_free(w);
	return ret;
}

/* Quiesce, save, unquiesce: must succeed. */
static void snapshot(struct fakevm *a)
{
	quiesce_all(a);
	if (save(a) < 0)
		fail_msg("save: %s", hearth_err_msg());
	unquiesce_all(a);
}

static int load(struct fakevm *b)
{
	struct hearth_ckpt_reader *r;
	int ret;

	assert_int_equal(hearth_ckpt_reader_open(ck_dir(), &r), 0);
	ret = ckpt_load_devices(&b->vm, r);
	if (ret == 0)
		ret = hearth_ckpt_reader_check_all_consumed(r);
	hearth_ckpt_reader_free(r);
	return ret;
}

static void load_ok(struct fakevm *b)
{
	if (load(b) < 0)
		fail_msg("load: %s", hearth_err_msg());
}

static void load_refused(struct fakevm *b, const char *want1, const char *want2)
{
	assert_int_equal(load(b), -1);
	if (!strstr(hearth_err_msg(), want1) || (want2 && !strstr(hearth_err_msg(), want2)))
		fail_msg("'%s' does not mention '%s' and '%s'", hearth_err_msg(), want1,
			 want2 ? want2 : "");
}

/* Rewrite one value of the saved state file in place (element idx of an array), then fix the
 * CRCs: a damaged checkpoint that only the device's checks can refuse. */
static void patch(const char *ctx, const char *key, unsigned idx, uint64_t v)
{
	char path[160];
	struct hearth_ckpt_reader *r;
	struct stat st;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/state", ck_dir());
	assert_int_equal(stat(path, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size);
	fp = fopen(path, "rb");
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, fp), (size_t)st.st_size);
	fclose(fp);
	assert_int_equal(statefile_parse(buf, (size_t)st.st_size, NULL, &r), 0);
	bool found = false;
	for (uint32_t i = 0; i < ckpt_reader_count(r) && !found; i++) {
		struct hearth_ckpt *c = ckpt_reader_at(r, i);
		if (strcmp(c->name, ctx) != 0)
			continue;
		for (uint32_t k = 0; k < c->nfields; k++) {
			struct ckpt_field *fl = &c->fields[k];
			if (fl->key_len != strlen(key) || memcmp(fl->key, key, fl->key_len))
				continue;
			unsigned w = fl->type == CKPT_T_U8 || fl->type == CKPT_T_BOOL	      ? 1
				     : fl->type == CKPT_T_U16				      ? 2
				     : fl->type == CKPT_T_U32 || fl->type == CKPT_T_U32_ARRAY ? 4
				     : fl->type == CKPT_T_STR || fl->type == CKPT_T_BYTES     ? 1
											      : 8;
			assert_true((idx + 1) * w <= fl->len);
			uint8_t *at = (uint8_t *)fl->val + idx * w;
			for (unsigned b = 0; b < w; b++)
				at[b] = (uint8_t)(v >> (8 * b));
			found = true;
			break;
		}
	}
	hearth_ckpt_reader_free(r);
	if (!found)
		fail_msg("no key '%s' in context '%s'", key, ctx);
	statefile_fixup(buf, (size_t)st.st_size);
	fp = fopen(path, "wb");
	assert_int_equal(fwrite(buf, 1, (size_t)st.st_size, fp), (size_t)st.st_size);
	fclose(fp);
	free(buf);
}

/* ---- the guest's side ---- */

static void run_loop(struct fakevm *f)
{
	while (loop_run_once(f->vm.loop, 0) > 0)
		;
	loop_run_once(f->vm.loop, 0);
}

static void notify(struct vpcidrv *d, unsigned q)
{
	fakevm_guest_write(d->f, false, d->notify + (uint64_t)q * d->mult, q, 2);
}

/* A three-descriptor virtio-blk request in slot (descriptors 3*slot..), posted, not kicked. */
static void post_blk(struct fakevm *f, struct vqdrv *q, unsigned slot, uint32_t type,
		     uint64_t sector, uint64_t data, uint32_t len, bool writable)
{
	uint64_t hdr = HDR + 16 * slot, st = STATUS + slot;
	unsigned i = 3 * slot;

	memcpy(f->ram + hdr, &type, 4);
	memset(f->ram + hdr + 4, 0, 4);
	memcpy(f->ram + hdr + 8, &sector, 8);
	f->ram[st] = 0xee;
	q->ram = f->ram;
	vqdrv_desc(q, i, hdr, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
	vqdrv_desc(q, i + 1, data, len, VIRTQ_DESC_F_NEXT | (writable ? VIRTQ_DESC_F_WRITE : 0),
		   (uint16_t)(i + 2));
	vqdrv_desc(q, i + 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(q, (uint16_t)i);
}

/* Run the loop (the test is the loop thread) until queue q's used index reaches n. */
static void wait_used(struct fakevm *f, struct vqdrv *q, uint16_t n)
{
	q->ram = f->ram;
	for (int i = 0; i < 500 && vqdrv_used_idx(q) != n; i++)
		loop_run_once(f->vm.loop, 10);
	assert_int_equal(vqdrv_used_idx(q), n);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 13);
}

/* ---- virtio-blk ---- */

struct blkvm {
	struct fakevm *f;
	struct hearth_dev *dev, *be;
	struct vpcidrv d;
	struct vqdrv q[2];
};

static void blk_build(struct blkvm *v, const char *fe_json, const char *be_cls, const char *be_json)
{
	memset(v, 0, sizeof(*v));
	v->f = fakevm_new(RAM);
	v->dev = fakevm_dev(v->f, "virtio-blk", "vda", fe_json);
	if (!v->dev)
		fail_msg("virtio-blk: %s", hearth_err_msg());
	v->be = fakevm_dev(v->f, be_cls, "disk0", be_json);
	if (!v->be)
		fail_msg("%s: %s", be_cls, hearth_err_msg());
	assert_true(vpd_probe(&v->d, v->f, VIRTIO_ID_BLOCK));
}

static void blk_up(struct blkvm *v, unsigned nq, uint64_t features)
{
	assert_true(vpd_negotiate(&v->d, features));
	vpd_queue(&v->d, 0, QSIZE, RING0, &v->q[0]);
	if (nq > 1)
		vpd_queue(&v->d, 1, QSIZE, RING1, &v->q[1]);
	vpd_driver_ok(&v->d);
	assert_int_equal(vpd_status(&v->d), 0x0F);
}

/* A fresh VM of the same devices, RAM copied from a, the driver's view carried over. */
static void blk_twin(struct blkvm *b, const struct blkvm *a, const char *fe_json,
		     const char *be_cls, const char *be_json)
{
	blk_build(b, fe_json, be_cls, be_json);
	memcpy(b->f->ram, a->f->ram, RAM);
	b->q[0] = a->q[0];
	b->q[1] = a->q[1];
	b->q[0].ram = b->q[1].ram = b->f->ram;
}

/* One request on queue qi, slot, run through the loop to its completion: the status byte. */
static uint8_t blk_req(struct blkvm *v, unsigned qi, unsigned slot, uint32_t type, uint64_t sector,
		       uint64_t data, uint32_t len, bool writable)
{
	struct vqdrv *q = &v->q[qi];
	uint16_t n = (uint16_t)(vqdrv_used_idx(q) + 1);
	uint32_t id, l;

	post_blk(v->f, q, slot, type, sector, data, len, writable);
	notify(&v->d, qi);
	wait_used(v->f, q, n);
	q->last_used = (uint16_t)(n - 1); /* earlier entries were checked by the caller */
	assert_int_equal(vqdrv_get_used(q, &id, &l), 1);
	assert_int_equal(id, 3 * slot);
	return v->f->ram[STATUS + slot];
}

static void blk_ram_round_trip_mid_use(void **state)
{
	(void)state;
	struct blkvm a, b;
	const char *fe = "{\"queues\": 2}", *be = "{\"frontend\": \"vda\", \"size\": 1048576}";
	uint8_t *ram;

	blk_build(&a, fe, "blk-ram", be);
	blk_up(&a, 2, F_BLK);
	ram = a.f->ram;
	fill(ram + DATA, 8192, 1);
	assert_int_equal(blk_req(&a, 0, 0, VIRTIO_BLK_T_OUT, 8, DATA, 4096, false), 0);
	assert_int_equal(blk_req(&a, 1, 1, VIRTIO_BLK_T_OUT, 100, DATA + 4096, 4096, false), 0);
	assert_int_equal(blk_req(&a, 0, 2, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), 0);
	/* queue 0 has used 2, queue 1 used 1 */
	snapshot(a.f);

	blk_twin(&b, &a, fe, "blk-ram", be);
	load_ok(b.f);
	run_loop(b.f); /* the load's look at every live queue finds nothing */
	assert_int_equal(vqdrv_used_idx(&b.q[0]), 2);
	/* the transport reads back as the driver left it */
	assert_int_equal(vpd_status(&b.d), 0x0F);
	vpd_wr(&b.d, b.d.common + VPD_QSEL, 1, 2);
	assert_int_equal(vpd_rd(&b.d, b.d.common + VPD_QEN, 2), 1);
	assert_int_equal(vpd_rd(&b.d, b.d.common + VPD_QSIZE, 2), QSIZE);
	assert_int_equal(vpd_rd(&b.d, b.d.common + VPD_QUSED, 4), RING1 + (a.q[1].used - RING1));
	vpd_wr(&b.d, b.d.common + VPD_GFSEL, 0, 4);
	assert_int_equal(vpd_rd(&b.d, b.d.common + VPD_GF, 4), (uint32_t)F_BLK);
	/* the driver carries on: the disk's data (restored with the RAM disk) comes back, with
	 * the next used index on each queue */
	memset(b.f->ram + DATA + 0x10000, 0, 8192);
	assert_int_equal(blk_req(&b, 0, 3, VIRTIO_BLK_T_IN, 100, DATA + 0x10000, 4096, true), 0);
	assert_int_equal(vqdrv_used_idx(&b.q[0]), 3);
	assert_memory_equal(b.f->ram + DATA + 0x10000, ram + DATA + 4096, 4096);
	assert_int_equal(blk_req(&b, 1, 4, VIRTIO_BLK_T_IN, 8, DATA + 0x12000, 4096, true), 0);
	assert_int_equal(vqdrv_used_idx(&b.q[1]), 2);
	assert_memory_equal(b.f->ram + DATA + 0x12000, ram + DATA, 4096);
	/* and the VM it came from goes on too */
	assert_int_equal(blk_req(&a, 0, 3, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), 0);
	fakevm_free(a.f);
	fakevm_free(b.f);
}

/* MSI-X: the table, and each queue's vector, survive; the next completion raises it. */
static unsigned msix_cap(struct vpcidrv *d)
{
	for (unsigned p = vpd_cfg(d, 0x34, 1); p; p = vpd_cfg(d, p + 1, 1))
		if (vpd_cfg(d, p, 1) == 0x11)
			return p;
	return 0;
}

static void blk_msix_vectors_survive(void **state)
{
	(void)state;
	struct blkvm a, b;
	const char *be = "{\"frontend\": \"vda\", \"size\": 1048576}";

	blk_build(&a, NULL, "blk-ram", be);
	unsigned cap = msix_cap(&a.d);
	assert_int_not_equal(cap, 0);
	uint64_t table = a.d.bar + (vpd_cfg(&a.d, cap + 4, 4) & ~7u);
	iobus_write(&a.f->vm.mmio, HEARTH_PCI_ECAM_BASE + (a.d.slot << 15) + cap + 2, 0x8000, 2);
	for (unsigned v = 0; v < 2; v++) {
		vpd_wr(&a.d, table + 16 * v, 0xFEE00000, 4);
		vpd_wr(&a.d, table + 16 * v + 4, 0, 4);
		vpd_wr(&a.d, table + 16 * v + 8, 0x50 + v, 4);
		vpd_wr(&a.d, table + 16 * v + 12, 0, 4);
	}
	blk_up(&a, 1, F_V1);
	vpd_wr(&a.d, a.d.common + 0x10, 0, 2); /* config vector 0 */
	vpd_wr(&a.d, a.d.common + VPD_QSEL, 0, 2);
	vpd_wr(&a.d, a.d.common + 0x1A, 1, 2); /* queue 0: vector 1 */
	assert_int_equal(blk_req(&a, 0, 0, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), 0);
	assert_int_equal(fakevm_msi_poll(a.f), 1);
	snapshot(a.f);

	blk_twin(&b, &a, NULL, "blk-ram", be);
	load_ok(b.f);
	assert_int_equal(vpd_rd(&b.d, b.d.common + 0x10, 2), 0);
	assert_int_equal(vpd_rd(&b.d, b.d.common + 0x1A, 2), 1);
	assert_int_equal(blk_req(&b, 0, 1, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), 0);
	assert_int_equal(fakevm_msi_poll(b.f), 1);
	assert_int_equal(b.f->msi[0].data, 0x51);
	assert_int_equal(b.f->msi[0].addr, 0xFEE00000);
	fakevm_free(a.f);
	fakevm_free(b.f);
}

/* ---- quiesce ---- */

struct quiesce_run {
	struct hearth_dev *dev;
	int ret;
	volatile bool done;
};

static void *quiesce_thread(void *arg)
{
	struct quiesce_run *q = arg;

	q->ret = q->dev->cls->quiesce(q->dev);
	q->done = true;
	return NULL;
}

static void nap_ms(long ms)
{
	struct timespec t = {0, ms * 1000000};
	nanosleep(&t, NULL);
}

static void blk_quiesce_waits_for_requests_in_flight(void **state)
{
	(void)state;
	struct blkvm a, b;
	const char *be = "{\"frontend\": \"vda\"}";
	struct quiesce_run qr;
	pthread_t th;

	blk_build(&a, NULL, "blk-hold", be);
	struct hold *h = hearth_dev_priv(a.be);
	blk_up(&a, 1, F_BLK);
	fill(h->disk, sizeof(h->disk), 7);
	h->hold = true;
	for (unsigned s = 0; s < 3; s++)
		post_blk(a.f, &a.q[0], s, VIRTIO_BLK_T_IN, 8 * s, DATA + 4096 * s, 4096, true);
	notify(&a.d, 0);
	run_loop(a.f);
	assert_int_equal(h->nheld, 3);
	/* saving now would lose them */
	assert_int_equal(save(a.f), -1);
	assert_non_null(strstr(hearth_err_msg(), "3 requests in flight"));
	/* a bounded wait says how many are left */
	assert_int_equal(virtio_blk_wait_idle(a.dev, 20, NULL), -1);
	assert_non_null(strstr(hearth_err_msg(), "3 requests still in flight after 20 ms"));

	/* quiesce returns only when all of them are in the used ring */
	qr = (struct quiesce_run){.dev = a.dev};
	assert_int_equal(pthread_create(&th, NULL, quiesce_thread, &qr), 0);
	nap_ms(50);
	assert_false(qr.done);
	/* a kick that reaches the device now (the guest wrote it before the pause) is held */
	post_blk(a.f, &a.q[0], 3, VIRTIO_BLK_T_IN, 24, DATA + 4096 * 3, 4096, true);
	notify(&a.d, 0);
	run_loop(a.f);
	assert_int_equal(h->nheld, 3);
	hold_release(h); /* completions on this thread, as the event loop's would be */
	pthread_join(th, NULL);
	assert_true(qr.done);
	assert_int_equal(qr.ret, 0);
	assert_int_equal(vqdrv_used_idx(&a.q[0]), 3);
	for (unsigned s = 0; s < 3; s++) {
		assert_int_equal(a.f->ram[STATUS + s], VIRTIO_BLK_S_OK);
		assert_memory_equal(a.f->ram + DATA + 4096 * s, h->disk + 4096 * s, 4096);
	}
	/* the guest heard about them (INTx: ISR bit 0) */
	assert_int_equal(vpd_rd(&a.d, a.d.isr, 1) & 1, 1);
	/* still frozen: the held kick starts nothing, even when completions ask the queue to
	 * run */
	run_loop(a.f);
	assert_int_equal(h->nheld, 0);
	assert_int_equal(save(a.f), 0);

	/* the restored VM looks at its queues once its loop runs: the request the snapshot
	 * held back is served there */
	blk_twin(&b, &a, NULL, "blk-hold", be);
	load_ok(b.f);
	struct hold *hb = hearth_dev_priv(b.be);
	assert_memory_equal(hb->disk, h->disk, sizeof(h->disk));
	run_loop(b.f);
	assert_int_equal(vqdrv_used_idx(&b.q[0]), 4);
	assert_int_equal(b.f->ram[STATUS + 3], VIRTIO_BLK_S_OK);
	assert_memory_equal(b.f->ram + DATA + 4096 * 3, hb->disk + 24 * 512, 4096);

	/* and in the original, unquiesce replays the held kick */
	h->hold = false;
	unquiesce_all(a.f);
	assert_int_equal(vqdrv_used_idx(&a.q[0]), 4);
	/* unquiesce without a quiesce is harmless */
	unquiesce_all(a.f);
	assert_int_equal(blk_req(&a, 0, 4, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), 0);
	fakevm_free(a.f);
	fakevm_free(b.f);
}

/* Chains queue 0 of v's device has taken from its ring. */
static uint16_t taken(struct blkvm *v)
{
	hearth_dev_lock(v->dev);
	uint16_t n = virtio_blk_vdev(v->dev)->vqs[0].last_avail;
	hearth_dev_unlock(v->dev);
	return n;
}

/* blk-file with its I/O thread and a real event-loop thread: quiesce waits for io_uring's
 * completions. */
static void blk_file_quiesce_and_restore(void **state)
{
	(void)state;
	struct blkvm a, b;
	char img[64], be[160];
	int fd;

	snprintf(img, sizeof(img), "/tmp/hearth-ckvio-img-XXXXXX");
	fd = mkstemp(img);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DISK), 0);
	snprintf(be, sizeof(be), "{\"frontend\": \"vda\", \"path\": \"%s\"}", img);
	blk_build(&a, NULL, "blk-file", be);
	blk_up(&a, 1, F_BLK);
	fill(a.f->ram + DATA, 8 * 4096, 3);
	for (unsigned s = 0; s < 8; s++)
		post_blk(a.f, &a.q[0], s, VIRTIO_BLK_T_OUT, 64 + 8 * s, DATA + 4096 * s, 4096,
			 false);
	notify(&a.d, 0);
	/* the kick reaches the disk's I/O thread: eight writes go to io_uring */
	for (int i = 0; i < 2000 && taken(&a) < 8; i++)
		usleep(1000);
	assert_int_equal(taken(&a), 8);
	/* quiesce returns with all of them used */
	assert_int_equal(loop_start(a.f->vm.loop), 0);
	quiesce_all(a.f);
	assert_int_equal(vqdrv_used_idx(&a.q[0]), 8);
	for (unsigned s = 0; s < 8; s++)
		assert_int_equal(a.f->ram[STATUS + s], VIRTIO_BLK_S_OK);
	assert_int_equal(save(a.f), 0);
	unquiesce_all(a.f);
	loop_stop(a.f->vm.loop);

	/* the restore opens the image again by its path: a's lock must be gone first */
	uint8_t *saved_ram = malloc(RAM);
	memcpy(saved_ram, a.f->ram, RAM);
	fakevm_free(a.f);
	blk_build(&b, NULL, "blk-file", be);
	memcpy(b.f->ram, saved_ram, RAM);
	b.q[0] = a.q[0];
	b.q[0].ram = b.f->ram;
	load_ok(b.f);
	assert_int_equal(blk_req(&b, 0, 9, VIRTIO_BLK_T_IN, 64, DATA + 0x40000, 8 * 4096, true),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(vqdrv_used_idx(&b.q[0]), 9);
	assert_memory_equal(b.f->ram + DATA + 0x40000, saved_ram + DATA, 8 * 4096);
	fakevm_free(b.f);

	/* an image whose size changed since the snapshot is refused, naming the key */
	assert_int_equal(ftruncate(fd, 2 * DISK), 0);
	blk_build(&b, NULL, "blk-file", be);
	memcpy(b.f->ram, saved_ram, RAM);
	load_refused(b.f, "devices/disk0", "'size'");
	fakevm_free(b.f);
	assert_int_equal(ftruncate(fd, DISK), 0);
	/* so is one opened another way, or another image */
	patch("devices/disk0", "readonly", 0, 1);
	blk_build(&b, NULL, "blk-file", be);
	load_refused(b.f, "devices/disk0", "'readonly'");
	fakevm_free(b.f);
	patch("devices/disk0", "readonly", 0, 0);
	patch("devices/disk0", "direct", 0, 1);
	blk_build(&b, NULL, "blk-file", be);
	load_refused(b.f, "devices/disk0", "'direct'");
	fakevm_free(b.f);
	patch("devices/disk0", "direct", 0, 0);
	patch("devices/disk0", "path", 6, 'X'); /* /tmp/hXarth-... */
	blk_build(&b, NULL, "blk-file", be);
	load_refused(b.f, "devices/disk0", "'path'");
	fakevm_free(b.f);
	free(saved_ram);
	close(fd);
	unlink(img);
}

/* ---- reset with a request in flight (virtio 1.2 4.1.4.3.2) ---- */

static void reset_waits_for_request_in_flight(void **state)
{
	(void)state;
	struct blkvm a;

	blk_build(&a, NULL, "blk-hold", "{\"frontend\": \"vda\"}");
	struct hold *h = hearth_dev_priv(a.be);
	blk_up(&a, 1, F_BLK);
	fill(h->disk, sizeof(h->disk), 9);
	h->hold = true;
	memset(a.f->ram + DATA, 0x11, 4096);
	post_blk(a.f, &a.q[0], 0, VIRTIO_BLK_T_IN, 0, DATA, 4096, true);
	notify(&a.d, 0);
	run_loop(a.f);
	assert_int_equal(h->nheld, 1);

	vpd_wr(&a.d, a.d.common + VPD_STATUS, 0, 1);
	/* the old status until the read has finished moving data */
	for (int i = 0; i < 3; i++)
		assert_int_equal(vpd_status(&a.d), 0x0F);
	/* meanwhile the driver's writes and kicks do nothing */
	vpd_wr(&a.d, a.d.common + VPD_STATUS, 1, 1);
	vpd_wr(&a.d, a.d.common + VPD_QSEL, 0, 2);
	vpd_wr(&a.d, a.d.common + VPD_QSIZE, 4, 2);
	assert_int_equal(vpd_rd(&a.d, a.d.common + VPD_QSIZE, 2), QSIZE);
	post_blk(a.f, &a.q[0], 1, VIRTIO_BLK_T_IN, 8, DATA + 4096, 4096, true);
	notify(&a.d, 0);
	run_loop(a.f);
	assert_int_equal(h->nheld, 1);
	assert_int_equal(vpd_status(&a.d), 0x0F);

	hold_release(h); /* the data lands now, as the backend finishes */
	assert_int_equal(vpd_status(&a.d), 0);
	/* the reset is complete: queues and features gone, nothing used, no status byte */
	assert_int_equal(vpd_rd(&a.d, a.d.common + VPD_QEN, 2), 0);
	vpd_wr(&a.d, a.d.common + VPD_GFSEL, 0, 4);
	assert_int_equal(vpd_rd(&a.d, a.d.common + VPD_GF, 4), 0);
	assert_int_equal(vqdrv_used_idx(&a.q[0]), 0);
	assert_int_equal(a.f->ram[STATUS], 0xee);
	/* the driver reuses the buffer: nothing of the old request writes it any more */
	memset(a.f->ram + DATA, 0x22, 4096);
	run_loop(a.f);
	for (unsigned i = 0; i < 4096; i++)
		assert_int_equal(a.f->ram[DATA + i], 0x22);
	assert_int_equal(h->nheld, 0);
	/* and the device works again after re-initialisation */
	h->hold = false;
	blk_up(&a, 1, F_BLK);
	assert_int_equal(blk_req(&a, 0, 2, VIRTIO_BLK_T_IN, 16, DATA, 4096, true), 0);
	assert_memory_equal(a.f->ram + DATA, h->disk + 16 * 512, 4096);
	assert_int_equal(vqdrv_used_idx(&a.q[0]), 1);

	/* a machine reset with a request in flight waits the same way */
	h->hold = true;
	post_blk(a.f, &a.q[0], 3, VIRTIO_BLK_T_IN, 0, DATA, 4096, true);
	notify(&a.d, 0);
	run_loop(a.f);
	assert_int_equal(h->nheld, 1);
	hearth_devs_reset(&a.f->vm);
	assert_int_not_equal(vpd_status(&a.d), 0);
	/* a checkpoint cannot be taken in the middle of it, but quiesce finishes it */
	hearth_dev_lock(a.dev);
	assert_int_equal(virtio_transport_save(virtio_blk_vdev(a.dev), NULL), -1);
	hearth_dev_unlock(a.dev);
	assert_non_null(strstr(hearth_err_msg(), "reset"));
	hold_release(h);
	assert_int_equal(vpd_status(&a.d), 0);
	fakevm_free(a.f);
}

/* The same with blk-file: the read is in io_uring when the driver resets. Completions come on
 * the event loop (iothread off), which the test runs, so the read is surely in flight. */
static void reset_with_file_read_in_flight(void **state)
{
	(void)state;
	struct blkvm a;
	char img[64], be[160];
	uint8_t pattern[4096];
	int fd;

	snprintf(img, sizeof(img), "/tmp/hearth-ckvio-img-XXXXXX");
	fd = mkstemp(img);
	assert_true(fd >= 0);
	fill(pattern, sizeof(pattern), 0x42);
	assert_int_equal(ftruncate(fd, DISK), 0);
	assert_int_equal(pwrite(fd, pattern, sizeof(pattern), 0), (ssize_t)sizeof(pattern));
	snprintf(be, sizeof(be), "{\"frontend\": \"vda\", \"path\": \"%s\", \"iothread\": false}",
		 img);
	blk_build(&a, NULL, "blk-file", be);
	blk_up(&a, 1, F_BLK);
	memset(a.f->ram + DATA, 0x11, 4096);
	post_blk(a.f, &a.q[0], 0, VIRTIO_BLK_T_IN, 0, DATA, 4096, true);
	notify(&a.d, 0);
	loop_run_once(a.f->vm.loop, 0); /* the kick: the read goes to io_uring */
	vpd_wr(&a.d, a.d.common + VPD_STATUS, 0, 1);
	/* its completion is not reaped until the loop runs again */
	assert_int_equal(vpd_status(&a.d), 0x0F);
	for (int i = 0; i < 500 && vpd_status(&a.d); i++)
		loop_run_once(a.f->vm.loop, 10);
	assert_int_equal(vpd_status(&a.d), 0);
	assert_int_equal(vqdrv_used_idx(&a.q[0]), 0);
	assert_int_equal(a.f->ram[STATUS], 0xee);
	memset(a.f->ram + DATA, 0x22, 4096);
	for (int i = 0; i < 5; i++)
		loop_run_once(a.f->vm.loop, 5);
	for (unsigned i = 0; i < 4096; i++)
		assert_int_equal(a.f->ram[DATA + i], 0x22);
	blk_up(&a, 1, F_BLK);
	assert_int_equal(blk_req(&a, 0, 1, VIRTIO_BLK_T_IN, 0, DATA, 4096, true), 0);
	assert_memory_equal(a.f->ram + DATA, pattern, sizeof(pattern));
	fakevm_free(a.f);
	close(fd);
	unlink(img);
}

/* ---- refusals of damaged checkpoints (CRCs valid) ---- */

struct bad {
	const char *ctx, *key;
	unsigned idx;
	uint64_t v;
	const char *want;
};

static void transport_refusals(void **state)
{
	(void)state;
	struct blkvm a, b;
	const char *fe = "{\"queues\": 2}", *be = "{\"frontend\": \"vda\", \"size\": 1048576}";

	blk_build(&a, fe, "blk-ram", be);
	blk_up(&a, 2, F_BLK);
	assert_int_equal(blk_req(&a, 0, 0, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false), 0);
	snapshot(a.f);
	uint16_t used0 = vqdrv_used_idx(&a.q[0]);
	const struct bad bad[] = {
		{"devices/vda", "vq.size", 0, 3, "power of two"},
		{"devices/vda", "vq.size", 1, 512, "power of two"},
		{"devices/vda", "vq.size", 0, 0, "power of two"},
		{"devices/vda", "vq.desc", 0, RAM - 64, "outside guest RAM"},
		{"devices/vda", "vq.used", 1, 1ull << 40, "outside guest RAM"},
		{"devices/vda", "vq.avail", 0, RING0 + 16 * QSIZE + 1, "misaligned"},
		{"devices/vda", "vq.last_avail", 0, used0 + 300u, "more than its size"},
		{"devices/vda", "vq.last_avail", 0, 70000, "16-bit"},
		{"devices/vda", "vq.last_avail", 0, used0 + 1u, "taken and not completed"},
		{"devices/vda", "vq.vector", 1, 9, "vector 9"},
		{"devices/vda", "vq.flags", 0, 0x11, "unknown flags"},
		{"devices/vda", "virtio.status", 0, 0x1F, "unknown bits"},
		{"devices/vda", "virtio.status", 0, 0x07, "DRIVER_OK without FEATURES_OK"},
		{"devices/vda", "virtio.features", 0, F_BLK | (1ull << 40), "not offered"},
		{"devices/vda", "virtio.features", 0, F_BLK & ~F_V1, "VERSION_1"},
		{"devices/vda", "virtio.driver_features", 0, F_V1, "not what was negotiated"},
		{"devices/vda", "virtio.isr", 0, 0x80, "unknown bits"},
		{"devices/vda", "virtio.config_vector", 0, 999, "vector 999"},
		{"devices/vda", "pci.cfg", 0, 0x1234, "read-only"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad *x = &bad[i];
		char key[80];
		snprintf(key, sizeof(key), "'%s'", x->key);
		assert_int_equal(save(a.f), 0);
		patch(x->ctx, x->key, x->idx, x->v);
		blk_twin(&b, &a, fe, "blk-ram", be);
		assert_int_equal(load(b.f), -1);
		if (!strstr(hearth_err_msg(), x->ctx) ||
		    (strcmp(x->key, "pci.cfg") && !strstr(hearth_err_msg(), key)) ||
		    !strstr(hearth_err_msg(), x->want))
			fail_msg("case %zu (%s %s): '%s'", i, x->ctx, x->key, hearth_err_msg());
		fakevm_free(b.f);
	}
	/* a device with another number of queues: the arrays do not fit */
	assert_int_equal(save(a.f), 0);
	blk_twin(&b, &a, "{\"queues\": 1}", "blk-ram", be);
	load_refused(b.f, "devices/vda", "'vq.size'");
	fakevm_free(b.f);
	/* a queue enabled before FEATURES_OK is impossible too */
	assert_int_equal(save(a.f), 0);
	patch("devices/vda", "virtio.status", 0, 0x03);
	patch("devices/vda", "virtio.features", 0, 0);
	blk_twin(&b, &a, fe, "blk-ram", be);
	load_refused(b.f, "'vq.flags'", "enabled without FEATURES_OK");
	fakevm_free(b.f);
	/* a newer context version */
	assert_int_equal(save(a.f), 0);
	{
		/* the context version lives in the record, not a field: rewrite it by hand */
		char path[160];
		snprintf(path, sizeof(path), "%s/state", ck_dir());
		FILE *fp = fopen(path, "r+b");
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		uint8_t *buf = malloc((size_t)st.st_size);
		assert_int_equal(fread(buf, 1, (size_t)st.st_size, fp), (size_t)st.st_size);
		uint8_t *at = memmem(buf, (size_t)st.st_size,
				     "\x0b"
				     "devices/vda",
				     12);
		assert_non_null(at);
		at[12] = 2;
		statefile_fixup(buf, (size_t)st.st_size);
		rewind(fp);
		assert_int_equal(fwrite(buf, 1, (size_t)st.st_size, fp), (size_t)st.st_size);
		fclose(fp);
		free(buf);
	}
	blk_twin(&b, &a, fe, "blk-ram", be);
	load_refused(b.f, "devices/vda", "version 2");
	fakevm_free(b.f);
	/* a broken queue stays broken: the device still needs a reset */
	assert_int_equal(save(a.f), 0);
	patch("devices/vda", "vq.flags", 0, 1 | 2);
	blk_twin(&b, &a, fe, "blk-ram", be);
	load_ok(b.f);
	post_blk(b.f, &b.q[0], 1, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false);
	notify(&b.d, 0);
	run_loop(b.f);
	assert_int_equal(vqdrv_used_idx(&b.q[0]), used0);
	fakevm_free(b.f);
	fakevm_free(a.f);
}

/* ---- blk-ram: its data is in the checkpoint ---- */

static void blk_ram_data_and_refusals(void **state)
{
	(void)state;
	struct blkvm a, b;
	/* not a whole number of pages: the last one is 512 bytes */
	const char *be = "{\"frontend\": \"vda\", \"size\": 1049088}";
	uint64_t last = 1049088 / 512 - 1;

	blk_build(&a, NULL, "blk-ram", be);
	blk_up(&a, 1, F_BLK);
	fill(a.f->ram + DATA, 8192, 5);
	assert_int_equal(blk_req(&a, 0, 0, VIRTIO_BLK_T_OUT, 1, DATA, 512, false), 0);
	assert_int_equal(blk_req(&a, 0, 1, VIRTIO_BLK_T_OUT, 1000, DATA + 512, 4096, false), 0);
	assert_int_equal(blk_req(&a, 0, 2, VIRTIO_BLK_T_OUT, last, DATA + 4608, 512, false), 0);
	snapshot(a.f);

	blk_twin(&b, &a, NULL, "blk-ram", be);
	load_ok(b.f);
	memset(b.f->ram + DATA + 0x10000, 0, 0x4000);
	assert_int_equal(blk_req(&b, 0, 3, VIRTIO_BLK_T_IN, 0, DATA + 0x10000, 1024, true), 0);
	assert_memory_equal(b.f->ram + DATA + 0x10000 + 512, a.f->ram + DATA, 512);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(b.f->ram[DATA + 0x10000 + i], 0);
	assert_int_equal(blk_req(&b, 0, 4, VIRTIO_BLK_T_IN, 1000, DATA + 0x11000, 4096, true), 0);
	assert_memory_equal(b.f->ram + DATA + 0x11000, a.f->ram + DATA + 512, 4096);
	assert_int_equal(blk_req(&b, 0, 5, VIRTIO_BLK_T_IN, last, DATA + 0x12000, 512, true), 0);
	assert_memory_equal(b.f->ram + DATA + 0x12000, a.f->ram + DATA + 4608, 512);
	fakevm_free(b.f);

	/* pages 0, 125 and 256 (the last, 512 bytes) hold data */
	const struct bad bad[] = {
		{"devices/disk0", "pages", 1, 0, "ascending"},
		{"devices/disk0", "pages", 0, 5000, "ascending"},
		{"devices/disk0", "pages", 2, 200, "'data'"}, /* not the short last page any more */
		{"devices/disk0", "size", 0, 1048576, "had 1048576 bytes"},
		{"devices/disk0", "readonly", 0, 1, "'readonly'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(save(a.f), 0);
		patch(bad[i].ctx, bad[i].key, bad[i].idx, bad[i].v);
		blk_twin(&b, &a, NULL, "blk-ram", be);
		assert_int_equal(load(b.f), -1);
		if (!strstr(hearth_err_msg(), "devices/disk0") ||
		    !strstr(hearth_err_msg(), bad[i].want))
			fail_msg("case %zu: '%s'", i, hearth_err_msg());
		fakevm_free(b.f);
	}
	fakevm_free(a.f);
}

static void blk_ram_limits(void **state)
{
	(void)state;
	struct blkvm a;
	char be[128];

	/* too big to scan */
	snprintf(be, sizeof(be), "{\"frontend\": \"vda\", \"size\": %llu}", 17ull << 30);
	blk_build(&a, NULL, "blk-ram", be);
	assert_int_equal(save(a.f), -1);
	assert_non_null(strstr(hearth_err_msg(), "disk0"));
	assert_non_null(strstr(hearth_err_msg(), "up to"));
	fakevm_free(a.f);
	/* too much data: 65 MiB written */
	snprintf(be, sizeof(be), "{\"frontend\": \"vda\", \"size\": %u}", 80u << 20);
	blk_build(&a, NULL, "blk-ram", be);
	blk_up(&a, 1, F_BLK);
	fill(a.f->ram + DATA, 1 << 20, 1);
	for (unsigned m = 0; m < 65; m++)
		assert_int_equal(blk_req(&a, 0, m % 4, VIRTIO_BLK_T_OUT, (uint64_t)m * 2048, DATA,
					 1 << 20, false),
				 0);
	assert_int_equal(save(a.f), -1);
	assert_non_null(strstr(hearth_err_msg(), "disk0"));
	assert_non_null(strstr(hearth_err_msg(), "68157440 bytes of data"));
	fakevm_free(a.f);
}

/* ---- virtio-rng ---- */

static void rng_round_trip(void **state)
{
	(void)state;
	struct fakevm *a = fakevm_new(RAM), *b = fakevm_new(RAM);
	struct vpcidrv da, db;
	struct vqdrv q, qb;

	assert_non_null(fakevm_dev(a, "virtio-rng", "rng0", NULL));
	assert_non_null(fakevm_dev(b, "virtio-rng", "rng0", NULL));
	assert_true(vpd_probe(&da, a, VIRTIO_ID_ENTROPY));
	assert_true(vpd_probe(&db, b, VIRTIO_ID_ENTROPY));
	assert_true(vpd_negotiate(&da, F_V1));
	vpd_queue(&da, 0, QSIZE, RING0, &q);
	vpd_driver_ok(&da);
	for (unsigned i = 0; i < 3; i++) {
		vqdrv_desc(&q, i, DATA + 256 * i, 64, VIRTQ_DESC_F_WRITE, 0);
		vqdrv_post(&q, (uint16_t)i);
	}
	vpd_kick(&da, 0);
	assert_int_equal(vqdrv_used_idx(&q), 3);
	snapshot(a);
	memcpy(b->ram, a->ram, RAM);
	load_ok(b);
	qb = q;
	qb.ram = b->ram;
	assert_int_equal(vpd_status(&db), 0x0F);
	memset(b->ram + DATA + 0x1000, 0, 128);
	vqdrv_desc(&qb, 3, DATA + 0x1000, 128, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&qb, 3);
	vpd_kick(&db, 0);
	uint32_t id, len;
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(vqdrv_get_used(&qb, &id, &len), 1);
	assert_int_equal(vqdrv_get_used(&qb, &id, &len), 1);
	assert_int_equal(id, 3);
	assert_int_equal(len, 128);
	assert_int_equal(vqdrv_used_idx(&qb), 4);
	bool nonzero = false;
	for (unsigned i = 0; i < 128; i++)
		nonzero |= b->ram[DATA + 0x1000 + i] != 0;
	assert_true(nonzero);
	fakevm_free(b);
	/* a chain taken and not used cannot be in an entropy device's checkpoint */
	b = fakevm_new(RAM);
	assert_non_null(fakevm_dev(b, "virtio-rng", "rng0", NULL));
	memcpy(b->ram, a->ram, RAM);
	patch("devices/rng0", "vq.last_avail", 0, 4);
	load_refused(b, "devices/rng0", "'vq.last_avail'");
	fakevm_free(a);
	fakevm_free(b);
}

/* ---- virtio-console: an output chain half written when the snapshot came ---- */

struct convm {
	struct fakevm *f;
	struct vpcidrv d;
	struct vqdrv rx, tx;
	struct ctb *be;
};

static void con_build(struct convm *v, size_t room)
{
	char json[96];

	memset(v, 0, sizeof(*v));
	v->f = fakevm_new(RAM);
	assert_non_null(fakevm_dev(v->f, "virtio-console", "con0", NULL));
	snprintf(json, sizeof(json), "{\"frontend\": \"con0\", \"room\": %zu}", room);
	struct hearth_dev *be = fakevm_dev(v->f, "char-test", "conbe", json);
	assert_non_null(be);
	v->be = hearth_dev_priv(be);
	assert_true(vpd_probe(&v->d, v->f, VIRTIO_ID_CONSOLE));
}

static void console_round_trip(void **state)
{
	(void)state;
	struct convm a, b;
	const char *text = "0123456789abcdefghijklmnopqrstuvwxyz";
	size_t n = strlen(text);

	con_build(&a, 10);
	assert_true(vpd_negotiate(&a.d, F_V1));
	vpd_queue(&a.d, 0, QSIZE, RING0, &a.rx);
	vpd_queue(&a.d, 1, QSIZE, RING1, &a.tx);
	vpd_driver_ok(&a.d);
	/* two receive buffers, one output chain of two pieces */
	vqdrv_desc(&a.rx, 0, DATA, 64, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&a.rx, 0);
	vqdrv_desc(&a.rx, 1, DATA + 64, 64, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&a.rx, 1);
	memcpy(a.f->ram + DATA + 0x1000, text, 20);
	memcpy(a.f->ram + DATA + 0x2000, text + 20, n - 20);
	vqdrv_desc(&a.tx, 0, DATA + 0x1000, 20, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(&a.tx, 1, DATA + 0x2000, (uint32_t)(n - 20), 0, 0);
	vqdrv_post(&a.tx, 0);
	vpd_kick(&a.d, 1);
	/* the backend took 10 bytes: the chain is held, not used */
	assert_int_equal(a.be->nout, 10);
	assert_int_equal(vqdrv_used_idx(&a.tx), 0);
	snapshot(a.f);

	con_build(&b, 4096);
	memcpy(b.f->ram, a.f->ram, RAM);
	b.rx = a.rx;
	b.tx = a.tx;
	b.rx.ram = b.tx.ram = b.f->ram;
	load_ok(b.f);
	run_loop(b.f);
	/* the rest of the chain, exactly once, then the chain is used */
	assert_int_equal(b.be->nout, n - 10);
	assert_memory_equal(b.be->out, text + 10, n - 10);
	assert_int_equal(vqdrv_used_idx(&b.tx), 1);
	/* input lands in the buffers the driver gave before the snapshot */
	assert_int_equal(b.be->fe_ops->receive(b.be->fe, (const uint8_t *)"hi", 2), 2);
	assert_int_equal(vqdrv_used_idx(&b.rx), 1);
	assert_memory_equal(b.f->ram + DATA, "hi", 2);
	fakevm_free(b.f);

	/* refusals: a held chain the queue does not show, a head or offset that cannot be */
	const struct bad bad[] = {
		{"devices/con0", "con.tx_held", 0, 0, "'con.tx_held'"},
		{"devices/con0", "con.tx_head", 0, 99, "'con.tx_head'"},
		{"devices/con0", "con.tx_off", 0, 1000, "'con.tx_off'"},
		{"devices/con0", "vq.last_avail", 0, 1, "receive queue"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(save(a.f), 0);
		patch(bad[i].ctx, bad[i].key, bad[i].idx, bad[i].v);
		con_build(&b, 4096);
		memcpy(b.f->ram, a.f->ram, RAM);
		assert_int_equal(load(b.f), -1);
		if (!strstr(hearth_err_msg(), "devices/con0") ||
		    !strstr(hearth_err_msg(), bad[i].want))
			fail_msg("case %zu: '%s'", i, hearth_err_msg());
		fakevm_free(b.f);
	}
	fakevm_free(a.f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(blk_ram_round_trip_mid_use, setup, teardown),
		cmocka_unit_test_setup_teardown(blk_msix_vectors_survive, setup, teardown),
		cmocka_unit_test_setup_teardown(blk_quiesce_waits_for_requests_in_flight, setup,
						teardown),
		cmocka_unit_test_setup_teardown(blk_file_quiesce_and_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(reset_waits_for_request_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(reset_with_file_read_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(transport_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(blk_ram_data_and_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(blk_ram_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(rng_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(console_round_trip, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
