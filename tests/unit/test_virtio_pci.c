/* The virtio-pci transport driven as a guest driver would: capabilities found by walking
 * configuration space, registers reached through the BAR on the fake VM's buses, kicks
 * through the fake ioeventfds and served on the event loop, interrupts seen as INTx levels
 * and MSI messages. Includes every refusal and hostile register traffic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakevm.h"
#include "hearth/pci.h"
#include "virtio/virtio_dev.h"
#include "virtio/virtio_pci.h"
#include "vqdrv.h"

/* ---- a device model for the transport: two queues, 8 bytes of config ---- */

#define VT_ID 31
#define VT_Q0_MAX 64
#define VT_Q1_MAX 16
#define VT_REFUSED_BIT 1 /* the device's features_ok refuses this one */
#define VT_OFFERED (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(0) | VIRTIO_BIT(VT_REFUSED_BIT))

struct vtest {
	struct virtio_device vd;
	struct virtq vqs[2];
	uint8_t config[8];
	unsigned notifies[2], resets, driver_oks;
	bool notify_on_vcpu; /* set by the test: kicks must never arrive while it is true */
	bool in_vcpu;
};

static void vt_config_read(struct virtio_device *vd, uint32_t off, void *buf, uint32_t len)
{
	struct vtest *v = vd->opaque;
	assert_true(off + len <= sizeof(v->config));
	memcpy(buf, v->config + off, len);
}

static void vt_config_write(struct virtio_device *vd, uint32_t off, const void *buf, uint32_t len)
{
	struct vtest *v = vd->opaque;
	assert_true(off + len <= sizeof(v->config));
	/* the first half is read-only */
	for (uint32_t i = 0; i < len; i++)
		if (off + i >= 4)
			v->config[off + i] = ((const uint8_t *)buf)[i];
}

static bool vt_features_ok(struct virtio_device *vd, uint64_t features)
{
	(void)vd;
	return !(features & VIRTIO_BIT(VT_REFUSED_BIT));
}

static void vt_driver_ok(struct virtio_device *vd)
{
	((struct vtest *)vd->opaque)->driver_oks++;
}

static void vt_notify(struct virtio_device *vd, unsigned q)
{
	struct vtest *v = vd->opaque;
	assert_false(v->in_vcpu); /* never on a vCPU */
	assert_true(q < 2);
	v->notifies[q]++;
}

static void vt_reset(struct virtio_device *vd)
{
	((struct vtest *)vd->opaque)->resets++;
}

static const struct virtio_device_ops vt_ops = {
	.config_read = vt_config_read,
	.config_write = vt_config_write,
	.features_ok = vt_features_ok,
	.driver_ok = vt_driver_ok,
	.notify = vt_notify,
	.reset = vt_reset,
};

static int vt_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	struct vtest *v = calloc(1, sizeof(*v));
	uint64_t nq, cfglen;
	bool v1;

	hearth_dev_set_priv(dev, v);
	if (hearth_cfg_u64(cfg, "queues", 2, 0, 100000, &nq) < 0 ||
	    hearth_cfg_u64(cfg, "cfglen", 8, 0, 100000, &cfglen) < 0 ||
	    hearth_cfg_bool(cfg, "v1", true, &v1) < 0)
		return -1;
	for (unsigned i = 0; i < 2; i++)
		virtq_init(&v->vqs[i], dev->vm, i ? VT_Q1_MAX : VT_Q0_MAX);
	memcpy(v->config, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	v->vd = (struct virtio_device){.dev = dev,
				       .ops = &vt_ops,
				       .opaque = v,
				       .device_id = VT_ID,
				       .offered = v1 ? VT_OFFERED : VIRTIO_BIT(0),
				       .config_len = (uint32_t)cfglen,
				       .num_queues = (unsigned)nq,
				       .vqs = v->vqs};
	return virtio_transport_attach(&v->vd, cfg);
}

static void vt_free(struct hearth_dev *dev)
{
	struct vtest *v = hearth_dev_priv(dev);
	if (v && v->vd.transport)
		virtio_transport_detach(&v->vd);
	free(v);
}

static void vt_reset_dev(struct hearth_dev *dev)
{
	virtio_transport_reset(&((struct vtest *)hearth_dev_priv(dev))->vd);
}

static void vt_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	virtio_transport_describe(&((struct vtest *)hearth_dev_priv(dev))->vd, buf, len);
}

HEARTH_DEVICE_CLASS(vt_class, .name = "vtest", .summary = "virtio-pci transport test device",
		    .init = vt_init, .free = vt_free, .reset = vt_reset_dev,
		    .describe = vt_describe);

/* ---- the guest driver's view ---- */

#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8
#define ST_NEEDS_RESET 64
#define ST_FAILED 128

enum {
	DFSEL = 0x00,
	DF = 0x04,
	GFSEL = 0x08,
	GF = 0x0C,
	MSIXV = 0x10,
	NUMQ = 0x12,
	STATUS = 0x14,
	GEN = 0x15,
	QSEL = 0x16,
	QSIZE = 0x18,
	QMSIX = 0x1A,
	QEN = 0x1C,
	QNOFF = 0x1E,
	QDESC = 0x20,
	QAVAIL = 0x28,
	QUSED = 0x30,
};

static struct fakevm *f;
static struct hearth_dev *dev;
static struct vtest *vt;

struct drv {
	unsigned slot;
	uint64_t bar, bar_size;
	uint64_t common, notify, isr, device;
	uint32_t mult, device_len, notify_len;
	unsigned cfgcap, msixcap;
	uint64_t table, pba;
};
static struct drv d;

static uint32_t cfg_rd(unsigned reg, unsigned size)
{
	return (uint32_t)iobus_read(&f->vm.mmio, HEARTH_PCI_ECAM_BASE + (d.slot << 15) + reg, size);
}

static void cfg_wr(unsigned reg, uint32_t v, unsigned size)
{
	iobus_write(&f->vm.mmio, HEARTH_PCI_ECAM_BASE + (d.slot << 15) + reg, v, size);
}

static uint64_t rd(uint64_t a, unsigned size)
{
	return iobus_read(&f->vm.mmio, a, size);
}

static void wr(uint64_t a, uint64_t v, unsigned size)
{
	iobus_write(&f->vm.mmio, a, v, size);
}

#define CC_R(off, size) rd(d.common + (off), size)
#define CC_W(off, v, size) wr(d.common + (off), v, size)

/* What a driver does first: find the function, size its BAR, walk the capabilities. */
static void probe(void)
{
	memset(&d, 0, sizeof(d));
	for (d.slot = 1; d.slot < 32; d.slot++)
		if (cfg_rd(0, 2) == VIRTIO_PCI_VENDOR)
			break;
	assert_true(d.slot < 32);
	uint32_t b0 = cfg_rd(0x10, 4);
	d.bar = b0 & ~0xFull;
	cfg_wr(0x10, 0xFFFFFFFF, 4);
	d.bar_size = (~(cfg_rd(0x10, 4) & ~0xFu) + 1) & 0xFFFFFFFFu;
	cfg_wr(0x10, b0, 4);
	for (unsigned p = cfg_rd(0x34, 1); p; p = cfg_rd(p + 1, 1)) {
		if (cfg_rd(p, 1) == 0x11) {
			d.msixcap = p;
			d.table = d.bar + (cfg_rd(p + 4, 4) & ~7u);
			d.pba = d.bar + (cfg_rd(p + 8, 4) & ~7u);
			continue;
		}
		assert_int_equal(cfg_rd(p, 1), 0x09);
		unsigned type = cfg_rd(p + 3, 1);
		uint32_t off = cfg_rd(p + 8, 4), len = cfg_rd(p + 12, 4);
		if (type != 5) {
			assert_int_equal(cfg_rd(p + 4, 1), 0); /* BAR 0 */
			assert_true(off + len <= d.bar_size);
		}
		switch (type) {
		case 1:
			d.common = d.bar + off;
			assert_true(len >= 0x38);
			break;
		case 2:
			d.notify = d.bar + off;
			d.notify_len = len;
			d.mult = cfg_rd(p + 16, 4);
			assert_int_equal(cfg_rd(p + 2, 1), 20);
			break;
		case 3:
			d.isr = d.bar + off;
			break;
		case 4:
			d.device = d.bar + off;
			d.device_len = len;
			break;
		case 5:
			d.cfgcap = p;
			assert_int_equal(cfg_rd(p + 2, 1), 20);
			break;
		default:
			fail_msg("capability type %u", type);
		}
	}
}

static struct hearth_dev *make(const char *json)
{
	struct hearth_dev *x = fakevm_dev(f, "vtest", "vt", json);
	if (!x)
		fail_msg("vtest: %s", hearth_err_msg());
	return x;
}

static int setup(void **state)
{
	(void)state;
	f = fakevm_new(16 << 20);
	dev = make(NULL);
	vt = hearth_dev_priv(dev);
	probe();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fakevm_free(f);
	return 0;
}

static uint8_t status(void)
{
	return (uint8_t)CC_R(STATUS, 1);
}

static void set_features(uint64_t feat)
{
	CC_W(GFSEL, 0, 4);
	CC_W(GF, (uint32_t)feat, 4);
	CC_W(GFSEL, 1, 4);
	CC_W(GF, (uint32_t)(feat >> 32), 4);
}

/* ACK, DRIVER, features, FEATURES_OK; returns whether the device kept FEATURES_OK. */
static bool negotiate(uint64_t feat)
{
	CC_W(STATUS, ST_ACK, 1);
	CC_W(STATUS, ST_ACK | ST_DRIVER, 1);
	set_features(feat);
	CC_W(STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK, 1);
	return status() & ST_FEATURES_OK;
}

static struct vqdrv q0;

/* Lay out queue q's rings at base (in RAM) and program them through the registers. */
static void setup_queue(unsigned q, uint16_t size, uint64_t base, struct vqdrv *qd)
{
	struct virtq shadow;
	virtq_init(&shadow, &f->vm, size);
	vqdrv_init(qd, f, &shadow, size, base);
	qd->vq = &vt->vqs[q];
	CC_W(QSEL, q, 2);
	CC_W(QSIZE, size, 2);
	CC_W(QDESC, qd->desc, 4);
	CC_W(QDESC + 4, qd->desc >> 32, 4);
	CC_W(QAVAIL, qd->avail, 8); /* a 64-bit write covers both halves */
	CC_W(QUSED, qd->used, 4);
	CC_W(QUSED + 4, 0, 4);
}

static void bring_up(void)
{
	assert_true(negotiate(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(0)));
	setup_queue(0, 32, 0x10000, &q0);
	CC_W(QEN, 1, 2);
	assert_int_equal(CC_R(QEN, 2), 1);
	CC_W(STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK, 1);
	assert_int_equal(status(), ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
}

static void run_loop(void)
{
	while (loop_run_once(f->vm.loop, 0) > 0)
		;
}

/* ================= discovery ================= */

static void test_identity_and_caps(void **state)
{
	(void)state;
	assert_int_equal(cfg_rd(2, 2), VIRTIO_PCI_DEVICE_BASE + VT_ID);
	assert_int_equal(cfg_rd(8, 1), 1); /* revision 1: modern only */
	assert_int_equal(cfg_rd(0x2C, 2), VIRTIO_PCI_VENDOR);
	assert_true(cfg_rd(0x2E, 2) >= 0x40);
	assert_int_equal(cfg_rd(0x3D, 1), 1);	    /* INTA */
	assert_int_equal(cfg_rd(0x10, 4) & 0xF, 0); /* 32-bit, not prefetchable */
	assert_int_equal(d.bar_size & (d.bar_size - 1), 0);
	assert_int_not_equal(d.common, 0);
	assert_int_not_equal(d.notify, 0);
	assert_int_not_equal(d.isr, 0);
	assert_int_equal(d.device_len, 8);
	assert_int_equal(d.mult, 4);
	assert_true(d.notify_len >= 2 * d.mult);
	assert_int_not_equal(d.cfgcap, 0);
	assert_int_not_equal(d.msixcap, 0);
	assert_int_equal(cfg_rd(d.msixcap + 2, 2) & 0x7FF, 2); /* 3 vectors: config + 2 */
	assert_int_equal(CC_R(NUMQ, 2), 2);
	assert_int_equal(CC_R(MSIXV, 2), VIRTIO_PCI_NO_VECTOR);
	/* queue_notify_off follows the queue */
	CC_W(QSEL, 1, 2);
	assert_int_equal(CC_R(QNOFF, 2), 1);
	assert_int_equal(CC_R(QSIZE, 2), VT_Q1_MAX);
	/* each queue has an ioeventfd on its notify address */
	assert_int_equal(f->niofd, 2);
	for (unsigned i = 0; i < f->niofd; i++) {
		assert_int_equal(f->iofd[i].len, 2);
		assert_true(f->iofd[i].addr == d.notify || f->iofd[i].addr == d.notify + d.mult);
	}
	char buf[256];
	hearth_dev_class(dev)->describe(dev, buf, sizeof(buf));
	assert_non_null(strstr(buf, "1af4:105f"));
	assert_non_null(strstr(buf, "msi-x 3"));
}

static void test_attach_refusals(void **state)
{
	(void)state;
	static const struct {
		const char *json, *what;
	} bad[] = {
		{"{\"v1\": false}", "VIRTIO_F_VERSION_1"},
		{"{\"queues\": 0}", "0 queues"},
		{"{\"queues\": 5000}", "5000 queues"},
		{"{\"cfglen\": 5000}", "5000 bytes"},
		{"{\"addr\": 40}", "addr"},
	};
	unsigned iofds = f->niofd;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hearth_err_clear();
		assert_null(fakevm_dev(f, "vtest", "bad", bad[i].json));
		if (!strstr(hearth_err_msg(), bad[i].what))
			fail_msg("'%s' lacks '%s'", hearth_err_msg(), bad[i].what);
		assert_int_equal(f->niofd, iofds); /* nothing left behind */
	}
	/* a slot that is taken */
	char json[32];
	snprintf(json, sizeof(json), "{\"addr\": %u}", d.slot);
	assert_null(fakevm_dev(f, "vtest", "bad", json));
	assert_non_null(strstr(hearth_err_msg(), "taken"));
	assert_int_equal(f->niofd, iofds);
	/* no device config at all: no device capability */
	assert_non_null(fakevm_dev(f, "vtest", "nocfg", "{\"cfglen\": 0, \"queues\": 1}"));
}

/* ================= features and status ================= */

static void test_feature_negotiation(void **state)
{
	(void)state;
	CC_W(DFSEL, 0, 4);
	assert_int_equal(CC_R(DF, 4), (uint32_t)VT_OFFERED);
	CC_W(DFSEL, 1, 4);
	assert_int_equal(CC_R(DF, 4), VT_OFFERED >> 32);
	CC_W(DFSEL, 2, 4);
	assert_int_equal(CC_R(DF, 4), 0);
	assert_int_equal(CC_R(DFSEL, 4), 2);
	/* a feature not offered */
	assert_false(negotiate(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(5)));
	assert_int_equal(vt->vd.features, 0);
	CC_W(STATUS, 0, 1);
	/* no VERSION_1: legacy drivers are refused */
	assert_false(negotiate(VIRTIO_BIT(0)));
	CC_W(STATUS, 0, 1);
	/* bits beyond 63 */
	CC_W(STATUS, ST_ACK | ST_DRIVER, 1);
	set_features(VIRTIO_BIT(VIRTIO_F_VERSION_1));
	CC_W(GFSEL, 2, 4);
	CC_W(GF, 1, 4);
	CC_W(STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK, 1);
	assert_false(status() & ST_FEATURES_OK);
	CC_W(STATUS, 0, 1);
	/* the device's own refusal */
	assert_false(negotiate(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VT_REFUSED_BIT)));
	CC_W(STATUS, 0, 1);
	/* a good set; the driver reads back what it wrote */
	assert_true(negotiate(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(0)));
	assert_int_equal(vt->vd.features, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(0));
	CC_W(GFSEL, 1, 4);
	assert_int_equal(CC_R(GF, 4), 1);
	/* after FEATURES_OK the features are fixed */
	CC_W(GFSEL, 0, 4);
	CC_W(GF, 0, 4);
	assert_int_equal(CC_R(GF, 4), 1);
	assert_int_equal(vt->vd.features, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(0));
	/* and a second FEATURES_OK does not renegotiate */
	CC_W(STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK, 1);
	assert_int_equal(status(), ST_ACK | ST_DRIVER | ST_FEATURES_OK);
}

static void test_status_machine(void **state)
{
	(void)state;
	assert_int_equal(status(), 0);
	CC_W(STATUS, ST_ACK, 1);
	assert_int_equal(status(), ST_ACK);
	/* DRIVER_OK before FEATURES_OK is ignored */
	CC_W(STATUS, ST_ACK | ST_DRIVER | ST_DRIVER_OK, 1);
	assert_int_equal(status(), ST_ACK | ST_DRIVER);
	assert_int_equal(vt->driver_oks, 0);
	/* the driver cannot set NEEDS_RESET, nor clear bits without a reset */
	CC_W(STATUS, ST_NEEDS_RESET | ST_ACK, 1);
	assert_int_equal(status(), ST_ACK | ST_DRIVER);
	set_features(VIRTIO_BIT(VIRTIO_F_VERSION_1));
	CC_W(STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK, 1);
	assert_int_equal(status(), ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	assert_int_equal(vt->driver_oks, 1);
	CC_W(STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK, 1);
	assert_int_equal(vt->driver_oks, 1); /* once */
	CC_W(STATUS, ST_FAILED, 1);
	assert_int_equal(status(), 0x8F);
	/* a status write of another width covering whole fields works; partial ones do not */
	CC_W(STATUS, 0, 1);
	CC_W(STATUS, 0x00000001, 2); /* covers status and generation: status = ACK */
	assert_int_equal(status(), ST_ACK);
	CC_W(STATUS - 1, 0xFFFF, 2); /* half of num_queues, half of status: ignored */
	assert_int_equal(status(), ST_ACK);
}

/* Drive the device into state `s` (0..7) of a driver's life. */
static void reach(unsigned s)
{
	static const uint8_t plain[] = {0, ST_ACK, ST_ACK | ST_DRIVER};
	if (s < 3) {
		CC_W(STATUS, plain[s], 1);
		return;
	}
	assert_true(negotiate(VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	if (s == 3)
		return;
	setup_queue(0, 16, 0x20000, &q0);
	CC_W(QMSIX, 1, 2);
	CC_W(MSIXV, 0, 2);
	CC_W(QEN, 1, 2);
	if (s == 4)
		return;
	CC_W(STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK, 1);
	if (s == 5)
		return;
	virtio_device_broken(&vt->vd); /* 6: NEEDS_RESET */
	if (s == 7)
		CC_W(STATUS, ST_FAILED, 1);
}

static void test_reset_from_every_state(void **state)
{
	(void)state;
	for (unsigned s = 0; s < 8; s++) {
		reach(s);
		unsigned resets = vt->resets;
		hearth_pci_intx(virtio_pci_func(&vt->vd), 1);
		CC_W(STATUS, 0, 1);
		assert_int_equal(status(), 0);
		assert_int_equal(vt->resets, resets + 1);
		assert_int_equal(vt->vd.features, 0);
		assert_int_equal(CC_R(MSIXV, 2), VIRTIO_PCI_NO_VECTOR);
		for (unsigned q = 0; q < 2; q++) {
			CC_W(QSEL, q, 2);
			assert_int_equal(CC_R(QEN, 2), 0);
			assert_int_equal(CC_R(QSIZE, 2), q ? VT_Q1_MAX : VT_Q0_MAX);
			assert_int_equal(CC_R(QMSIX, 2), VIRTIO_PCI_NO_VECTOR);
			assert_int_equal(CC_R(QDESC, 8), 0);
		}
		assert_int_equal(CC_R(QSEL, 2), 1);
		assert_int_equal(rd(d.isr, 1), 0);
		assert_int_equal(f->irq_level[hearth_pci_intx_gsi(virtio_pci_func(&vt->vd))], 0);
		CC_W(GFSEL, 0, 4);
		assert_int_equal(CC_R(GF, 4), 0);
	}
	/* and the device comes up again */
	bring_up();
}

/* ================= queues ================= */

static void test_queue_rules(void **state)
{
	(void)state;
	assert_true(negotiate(VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	CC_W(QSEL, 0, 2);
	assert_int_equal(CC_R(QSIZE, 2), VT_Q0_MAX);
	CC_W(QSIZE, 8, 2);
	assert_int_equal(CC_R(QSIZE, 2), 8);
	CC_W(QSIZE, VT_Q0_MAX, 2);
	assert_int_equal(CC_R(QSIZE, 2), VT_Q0_MAX);
	/* an unknown queue: reads as absent, writes go nowhere */
	CC_W(QSEL, 7, 2);
	assert_int_equal(CC_R(QSIZE, 2), 0);
	assert_int_equal(CC_R(QMSIX, 2), VIRTIO_PCI_NO_VECTOR);
	CC_W(QSIZE, 4, 2);
	CC_W(QEN, 1, 2);
	CC_W(QDESC, 0x1000, 4);
	assert_int_equal(CC_R(QSIZE, 2), 0);
	assert_int_equal(CC_R(QEN, 2), 0);
	assert_false(status() & ST_NEEDS_RESET);
	/* sizes no driver may write: refused, and the device needs a reset */
	static const uint16_t bad[] = {0, 3, 48, VT_Q0_MAX * 2, 0xFFFF};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CC_W(STATUS, 0, 1);
		assert_true(negotiate(VIRTIO_BIT(VIRTIO_F_VERSION_1)));
		CC_W(QSEL, 0, 2);
		CC_W(QSIZE, bad[i], 2);
		assert_int_equal(CC_R(QSIZE, 2), VT_Q0_MAX);
		assert_true(status() & ST_NEEDS_RESET);
	}
	/* enabling before FEATURES_OK */
	CC_W(STATUS, 0, 1);
	CC_W(STATUS, ST_ACK | ST_DRIVER, 1);
	CC_W(QSEL, 0, 2);
	CC_W(QEN, 1, 2);
	assert_int_equal(CC_R(QEN, 2), 0);
	assert_true(status() & ST_NEEDS_RESET);
	/* rings outside RAM */
	CC_W(STATUS, 0, 1);
	assert_true(negotiate(VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	CC_W(QSEL, 0, 2);
	CC_W(QDESC, 0, 4);
	CC_W(QDESC + 4, 1, 4); /* 4 GiB: the fake VM has 16 MiB */
	CC_W(QEN, 1, 2);
	assert_int_equal(CC_R(QEN, 2), 0);
	assert_true(status() & ST_NEEDS_RESET);
	/* a live queue's registers are fixed */
	CC_W(STATUS, 0, 1);
	bring_up();
	CC_W(QSEL, 0, 2);
	uint64_t desc = CC_R(QDESC, 8);
	CC_W(QSIZE, 4, 2);
	CC_W(QDESC, 0x5000, 4);
	CC_W(QEN, 0, 2);
	assert_int_equal(CC_R(QSIZE, 2), 32);
	assert_int_equal(CC_R(QDESC, 8), desc);
	assert_int_equal(CC_R(QEN, 2), 1);
	assert_false(status() & ST_NEEDS_RESET);
	/* the 64-bit write of the avail address took both halves */
	assert_int_equal(CC_R(QAVAIL, 4), q0.avail);
	assert_int_equal(vt->vqs[0].avail_gpa, q0.avail);
}

static void test_notify_on_loop(void **state)
{
	(void)state;
	/* kicks before DRIVER_OK are not the device's business */
	assert_true(negotiate(VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	setup_queue(0, 32, 0x10000, &q0);
	CC_W(QEN, 1, 2);
	vt->in_vcpu = true;
	assert_true(fakevm_ioeventfd_write(f, false, d.notify, 2, 0));
	vt->in_vcpu = false;
	run_loop();
	assert_int_equal(vt->notifies[0], 0);
	CC_W(STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK, 1);
	/* through the ioeventfd: no exit, served by the loop */
	vt->in_vcpu = true;
	fakevm_guest_write(f, false, d.notify, 0, 2);
	vt->in_vcpu = false;
	assert_int_equal(vt->notifies[0], 0);
	run_loop();
	assert_int_equal(vt->notifies[0], 1);
	/* a width the ioeventfd does not match exits to the BAR: still served by the loop */
	vt->in_vcpu = true;
	fakevm_guest_write(f, false, d.notify, 0, 4);
	vt->in_vcpu = false;
	assert_int_equal(vt->notifies[0], 1);
	run_loop();
	assert_int_equal(vt->notifies[0], 2);
	/* queue 1 is not enabled: its kick is dropped */
	fakevm_guest_write(f, false, d.notify + d.mult, 1, 2);
	run_loop();
	assert_int_equal(vt->notifies[1], 0);
	/* writes past the last queue's slot go nowhere */
	wr(d.notify + 2 * d.mult, 2, 2);
	wr(d.notify + 0x800, 9, 4);
	run_loop();
	assert_int_equal(vt->notifies[0] + vt->notifies[1], 2);
	assert_int_equal(rd(d.notify, 2), 0);
	/* a device that needs a reset hears nothing */
	virtio_device_broken(&vt->vd);
	fakevm_guest_write(f, false, d.notify, 0, 2);
	run_loop();
	assert_int_equal(vt->notifies[0], 2);
	/* the ioeventfds follow the BAR when the guest moves it */
	cfg_wr(0x10, 0xC8000000, 4);
	assert_int_equal(f->niofd, 2);
	assert_true(f->iofd[0].addr >= 0xC8000000);
	/* removing the device removes its ioeventfds */
	assert_int_equal(hearth_dev_remove(dev), 0);
	assert_int_equal(f->niofd, 0);
}

/* ================= interrupts ================= */

static void test_isr_and_intx(void **state)
{
	(void)state;
	struct hearth_pci_func *fn = virtio_pci_func(&vt->vd);
	int gsi = hearth_pci_intx_gsi(fn);

	assert_true(gsi >= 16);
	/* before DRIVER_OK nothing is signalled */
	hearth_dev_lock(dev);
	vt->vd.tops->interrupt(&vt->vd, 0);
	hearth_dev_unlock(dev);
	assert_int_equal(f->irq_level[gsi], 0);
	bring_up();
	hearth_dev_lock(dev);
	vt->vd.tops->interrupt(&vt->vd, 0);
	hearth_dev_unlock(dev);
	assert_int_equal(f->irq_level[gsi], 1);
	assert_true(cfg_rd(6, 2) & HEARTH_PCI_STATUS_INTX);
	/* reading ISR acknowledges: the bits, then zero, and the line drops */
	assert_int_equal(rd(d.isr, 1), 1);
	assert_int_equal(f->irq_level[gsi], 0);
	assert_int_equal(rd(d.isr, 1), 0);
	/* configuration change: bit 1 and a new generation */
	uint8_t gen = (uint8_t)CC_R(GEN, 1);
	hearth_dev_lock(dev);
	vt->vd.tops->config_changed(&vt->vd);
	vt->vd.tops->interrupt(&vt->vd, 0);
	hearth_dev_unlock(dev);
	assert_int_equal((uint8_t)CC_R(GEN, 1), (uint8_t)(gen + 1));
	assert_int_equal(f->irq_level[gsi], 1);
	assert_int_equal(f->irq_raises[gsi], 2);
	assert_int_equal(rd(d.isr, 4), 3);
	/* ISR is read-only, and only its first byte means anything */
	wr(d.isr, 0xFF, 1);
	assert_int_equal(rd(d.isr, 1), 0);
	assert_int_equal(rd(d.isr + 1, 1), 0);
	/* out-of-range queues signal nothing */
	hearth_dev_lock(dev);
	vt->vd.tops->interrupt(&vt->vd, 9);
	hearth_dev_unlock(dev);
	assert_int_equal(rd(d.isr, 1), 0);
}

static void set_vector(unsigned v, uint32_t data)
{
	wr(d.table + 16 * v, 0xFEE00000, 4);
	wr(d.table + 16 * v + 4, 0, 4);
	wr(d.table + 16 * v + 8, data, 4);
	wr(d.table + 16 * v + 12, 0, 4);
}

static void test_msix_vectors(void **state)
{
	(void)state;
	struct hearth_pci_func *fn = virtio_pci_func(&vt->vd);
	int gsi = hearth_pci_intx_gsi(fn);

	cfg_wr(d.msixcap + 2, 0x8000, 2);
	for (unsigned v = 0; v < 3; v++)
		set_vector(v, 0x40 + v);
	bring_up();
	CC_W(MSIXV, 0, 2);
	assert_int_equal(CC_R(MSIXV, 2), 0);
	CC_W(QSEL, 0, 2);
	CC_W(QMSIX, 2, 2);
	assert_int_equal(CC_R(QMSIX, 2), 2);
	/* a vector the function does not have reads back as NO_VECTOR */
	CC_W(QSEL, 1, 2);
	CC_W(QMSIX, 3, 2);
	assert_int_equal(CC_R(QMSIX, 2), VIRTIO_PCI_NO_VECTOR);
	CC_W(MSIXV, 77, 2);
	assert_int_equal(CC_R(MSIXV, 2), VIRTIO_PCI_NO_VECTOR);
	CC_W(MSIXV, 0, 2);
	hearth_dev_lock(dev);
	vt->vd.tops->interrupt(&vt->vd, 0);
	vt->vd.tops->config_changed(&vt->vd);
	vt->vd.tops->interrupt(&vt->vd, 1); /* NO_VECTOR: no interrupt at all */
	hearth_dev_unlock(dev);
	assert_int_equal(fakevm_msi_poll(f), 2);
	unsigned got = 0;
	for (unsigned i = 0; i < 2; i++)
		got |= 1u << (f->msi[i].data - 0x40);
	assert_int_equal(got, 1u << 2 | 1u << 0);
	/* MSI-X on: ISR and INTx stay quiet */
	assert_int_equal(rd(d.isr, 1), 0);
	assert_int_equal(f->irq_raises[gsi], 0);
	/* a masked vector keeps the interrupt pending until unmasked */
	wr(d.table + 16 * 2 + 12, 1, 4);
	hearth_dev_lock(dev);
	vt->vd.tops->interrupt(&vt->vd, 0);
	hearth_dev_unlock(dev);
	assert_int_equal(fakevm_msi_poll(f), 2);
	assert_int_equal(rd(d.pba, 8), 1u << 2);
	wr(d.table + 16 * 2 + 12, 0, 4);
	assert_int_equal(fakevm_msi_poll(f), 3);
	/* MSI-X off again: back to ISR + INTx */
	cfg_wr(d.msixcap + 2, 0, 2);
	hearth_dev_lock(dev);
	vt->vd.tops->interrupt(&vt->vd, 0);
	hearth_dev_unlock(dev);
	assert_int_equal(f->irq_level[gsi], 1);
	assert_int_equal(rd(d.isr, 1), 1);
}

static void test_needs_reset(void **state)
{
	(void)state;
	int gsi = hearth_pci_intx_gsi(virtio_pci_func(&vt->vd));
	/* before DRIVER_OK: the bit only */
	CC_W(STATUS, ST_ACK, 1);
	hearth_dev_lock(dev);
	virtio_device_broken(&vt->vd);
	hearth_dev_unlock(dev);
	assert_int_equal(status(), ST_ACK | ST_NEEDS_RESET);
	assert_int_equal(f->irq_level[gsi], 0);
	CC_W(STATUS, 0, 1);
	assert_int_equal(status(), 0);
	/* with DRIVER_OK: the bit and a configuration interrupt, once per episode */
	bring_up();
	hearth_dev_lock(dev);
	virtio_device_broken(&vt->vd);
	virtio_device_broken(&vt->vd);
	hearth_dev_unlock(dev);
	assert_true(status() & ST_NEEDS_RESET);
	assert_int_equal(f->irq_raises[gsi], 1);
	assert_int_equal(rd(d.isr, 1), 2); /* configuration change */
	/* the other bits are still there for the driver to read */
	assert_int_equal(status() & ~ST_NEEDS_RESET,
			 ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	CC_W(STATUS, 0, 1);
	assert_int_equal(status(), 0);
	bring_up();
	assert_false(status() & ST_NEEDS_RESET);
	/* with MSI-X: the configuration vector */
	cfg_wr(d.msixcap + 2, 0x8000, 2);
	set_vector(0, 0x99);
	CC_W(MSIXV, 0, 2);
	hearth_dev_lock(dev);
	virtio_device_broken(&vt->vd);
	hearth_dev_unlock(dev);
	assert_int_equal(fakevm_msi_poll(f), 1);
	assert_int_equal(f->msi[0].data, 0x99);
}

/* ================= device configuration and the PCI access window ================= */

static void test_device_config(void **state)
{
	(void)state;
	assert_int_equal(rd(d.device, 1), 0x11);
	assert_int_equal(rd(d.device + 2, 2), 0x4433);
	assert_int_equal(rd(d.device + 4, 4), 0x88776655);
	assert_int_equal(rd(d.device, 8), 0x8877665544332211ull);
	/* unaligned, past the end: zero and no call */
	assert_int_equal(rd(d.device + 1, 2), 0);
	assert_int_equal(rd(d.device + 6, 4), 0);
	assert_int_equal(rd(d.device + 8, 1), 0);
	assert_int_equal(rd(d.device + 0x100, 4), 0);
	/* writes reach the device, which keeps its read-only part */
	wr(d.device, 0xFFFFFFFF, 4);
	wr(d.device + 4, 0xA5A5A5A5, 4);
	wr(d.device + 6, 0xFFFFFFFF, 4); /* unaligned: dropped */
	assert_int_equal(rd(d.device, 8), 0xA5A5A5A544332211ull);
}

static void test_pci_cfg_window(void **state)
{
	(void)state;
	unsigned c = d.cfgcap;
	/* read num_queues (common config + 0x12, 2 bytes) through configuration space */
	cfg_wr(c + 4, 0, 1);
	cfg_wr(c + 8, (uint32_t)(d.common - d.bar) + NUMQ, 4);
	cfg_wr(c + 12, 2, 4);
	assert_int_equal(cfg_rd(c + 16, 2), 2);
	/* write the status register through it */
	cfg_wr(c + 8, (uint32_t)(d.common - d.bar) + STATUS, 4);
	cfg_wr(c + 12, 1, 4);
	cfg_wr(c + 16, ST_ACK, 1);
	assert_int_equal(status(), ST_ACK);
	assert_int_equal(cfg_rd(c + 16, 1), ST_ACK);
	/* a bad window (another BAR, an odd length, misaligned, outside) does nothing */
	static const uint32_t win[][3] = {
		{1, 0x14, 1}, {0, 0x14, 3}, {0, 0x15, 2}, {0, 0x7FFFFFFF, 4}, {0, 0xFFFFFFFC, 4}};
	for (unsigned i = 0; i < sizeof(win) / sizeof(win[0]); i++) {
		cfg_wr(c + 4, win[i][0], 1);
		cfg_wr(c + 8, win[i][1], 4);
		cfg_wr(c + 12, win[i][2], 4);
		cfg_wr(c + 16, 0, 4);
		(void)cfg_rd(c + 16, 4);
	}
	assert_int_equal(status(), ST_ACK);
	/* the capability header fields stay read-only */
	cfg_wr(c + 3, 0, 1);
	assert_int_equal(cfg_rd(c + 3, 1), 5);
	/* the MSI-X table is reachable through it too */
	cfg_wr(c + 4, 0, 1);
	cfg_wr(c + 8, (uint32_t)(d.table - d.bar) + 8, 4);
	cfg_wr(c + 12, 4, 4);
	cfg_wr(c + 16, 0x1234, 4);
	assert_int_equal(rd(d.table + 8, 4), 0x1234);
}

/* ================= machine reset, hostile traffic ================= */

static void test_machine_reset(void **state)
{
	(void)state;
	bring_up();
	cfg_wr(d.msixcap + 2, 0x8000, 2);
	uint32_t bar = cfg_rd(0x10, 4);
	cfg_wr(0x10, 0xC9000000, 4);
	unsigned resets = vt->resets;
	hearth_devs_reset(&f->vm);
	assert_int_equal(vt->resets, resets + 1);
	assert_int_equal(cfg_rd(0x10, 4), bar);
	assert_int_equal(cfg_rd(d.msixcap + 2, 2) & 0x8000, 0);
	assert_int_equal(status(), 0);
	assert_int_equal(CC_R(GEN, 1), 0);
	bring_up();
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_hostile_registers(void **state)
{
	(void)state;
	static const uint64_t patterns[] = {0,
					    ~0ull,
					    0xAAAAAAAAAAAAAAAAull,
					    0x5555555555555555ull,
					    0x8000000000000000ull,
					    0xFFFF,
					    0x8000,
					    1,
					    0x80,
					    0x0000000100000000ull};
	/* every offset of the BAR's structures, every size, every pattern, in every state a
	 * driver can reach */
	uint64_t spans[][2] = {{d.common, 0x40}, {d.isr, 8},	  {d.device, 16},
			       {d.notify, 16},	 {d.table, 0x40}, {d.pba, 16}};
	for (unsigned s = 0; s < 6; s++) {
		CC_W(STATUS, 0, 1);
		reach(s);
		for (unsigned sp = 0; sp < 6; sp++)
			for (uint64_t o = 0; o < spans[sp][1]; o++)
				for (unsigned size = 1; size <= 8; size *= 2)
					for (unsigned p = 0;
					     p < sizeof(patterns) / sizeof(patterns[0]); p++) {
						wr(spans[sp][0] + o, patterns[p], size);
						(void)rd(spans[sp][0] + o, size);
					}
		run_loop();
	}
	/* random traffic over the whole BAR and configuration space, with the loop running
	 * now and then */
	for (unsigned i = 0; i < 300000; i++) {
		uint64_t r = rnd(), v = rnd();
		unsigned size = 1u << (r & 3);
		uint64_t off = (r >> 8) % (d.bar_size + 64);
		switch ((r >> 2) & 7) {
		case 0:
			cfg_wr((unsigned)((r >> 16) & 0xFF), (uint32_t)v, size > 4 ? 4 : size);
			break;
		case 1:
			run_loop();
			break;
		case 2:
		case 3:
			(void)rd(d.bar + off, size);
			break;
		default:
			/* the common configuration gets most of the writes */
			wr((r & 0x100) ? d.bar + off : d.common + (off & 0x3F), v, size);
		}
	}
	run_loop();
	/* whatever happened, a reset gives a working device again */
	cfg_wr(4, 7, 2);
	cfg_wr(0x10, (uint32_t)d.bar, 4);
	cfg_wr(d.msixcap + 2, 0, 2);
	CC_W(STATUS, 0, 1);
	assert_int_equal(status(), 0);
	unsigned before = vt->notifies[0];
	bring_up();
	fakevm_guest_write(f, false, d.notify, 0, 2);
	run_loop();
	assert_int_equal(vt->notifies[0], before + 1);
}

/* The loop thread serving kicks while a vCPU (this thread) kicks, resets and re-initialises:
 * no deadlock, no kick served before DRIVER_OK or by this thread. */
static void test_concurrent_kicks(void **state)
{
	(void)state;
	bring_up();
	assert_int_equal(loop_start(f->vm.loop), 0);
	vt->in_vcpu = false;
	for (unsigned i = 0; i < 20000; i++) {
		fakevm_guest_write(f, false, d.notify, 0, i % 3 ? 2 : 4);
		if (i % 500 == 499) {
			CC_W(STATUS, 0, 1);
			bring_up();
		}
	}
	loop_stop(f->vm.loop);
	run_loop();
	assert_true(vt->notifies[0] > 0);
	assert_true(vt->notifies[0] <= 20000);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_identity_and_caps),	T(test_attach_refusals),
		T(test_feature_negotiation),	T(test_status_machine),
		T(test_reset_from_every_state), T(test_queue_rules),
		T(test_notify_on_loop),		T(test_isr_and_intx),
		T(test_msix_vectors),		T(test_needs_reset),
		T(test_device_config),		T(test_pci_cfg_window),
		T(test_machine_reset),		T(test_hostile_registers),
		T(test_concurrent_kicks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
