/* virtio-console through the PCI transport, joined to a char backend: output with
 * backpressure (nothing dropped), input with flow control, the emergency write, reset in the
 * middle of a transfer, hostile chains, and the backend attach rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hearth/chardev.h"
#include "virtio/virtio_dev.h"
#include "vpcidrv.h"

/* ---- a char backend that records what it is given and takes only `room` bytes ---- */

struct fakechar {
	uint8_t out[4096];
	size_t nout, room;
	unsigned rx_ready;
	const struct hearth_char_frontend_ops *fe_ops;
	void *fe;
};

static size_t fc_write(void *be, const uint8_t *buf, size_t len)
{
	struct fakechar *c = be;
	size_t n = len < c->room ? len : c->room;

	if (n > sizeof(c->out) - c->nout)
		n = sizeof(c->out) - c->nout;
	memcpy(c->out + c->nout, buf, n);
	c->nout += n;
	c->room -= n;
	return n;
}

static void fc_rx_ready(void *be)
{
	((struct fakechar *)be)->rx_ready++;
}

static const struct hearth_char_backend_ops fc_ops = {.write = fc_write, .rx_ready = fc_rx_ready};

static int fc_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	struct fakechar *c = calloc(1, sizeof(*c));

	c->room = SIZE_MAX;
	hearth_dev_set_priv(dev, c);
	return hearth_char_backend_attach(dev, cfg, &fc_ops, c, &c->fe_ops, &c->fe);
}

static void fc_free(struct hearth_dev *dev)
{
	struct fakechar *c = hearth_dev_priv(dev);

	if (c && c->fe_ops && c->fe_ops->attach)
		c->fe_ops->attach(c->fe, NULL, NULL);
	free(c);
}

HEARTH_DEVICE_CLASS(fc_class, .name = "fakechar", .summary = "test char backend", .init = fc_init,
		    .free = fc_free);

/* ---- fixture ---- */

#define RXR 0x10000
#define TXR 0x20000
#define BUFS 0x100000

static struct fakevm *f;
static struct hearth_dev *con, *be;
static struct fakechar *fc;
static struct vpcidrv d;
static struct vqdrv rxq, txq;

static int setup(void **state)
{
	(void)state;
	f = fakevm_new(16 << 20);
	con = fakevm_dev(f, "virtio-console", "con0", NULL);
	if (!con)
		fail_msg("virtio-console: %s", hearth_err_msg());
	be = fakevm_dev(f, "fakechar", "be", "{\"frontend\": \"con0\"}");
	if (!be)
		fail_msg("fakechar: %s", hearth_err_msg());
	fc = hearth_dev_priv(be);
	assert_true(vpd_probe(&d, f, VIRTIO_ID_CONSOLE));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fakevm_free(f);
	return 0;
}

static void up(void)
{
	assert_true(vpd_negotiate(&d, VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	vpd_queue(&d, 0, 8, RXR, &rxq);
	vpd_queue(&d, 1, 8, TXR, &txq);
	vpd_driver_ok(&d);
	assert_int_equal(vpd_status(&d), 0x0F);
}

/* Queue `text` for output in descriptor i. */
static void tx_post(unsigned i, const char *text)
{
	uint64_t at = BUFS + 0x1000 * i;
	memcpy(f->ram + at, text, strlen(text));
	vqdrv_desc(&txq, i, at, (uint32_t)strlen(text), 0, 0);
	vqdrv_post(&txq, (uint16_t)i);
}

static void rx_post(unsigned i, uint32_t len)
{
	vqdrv_desc(&rxq, i, BUFS + 0x80000 + 0x1000 * i, len, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&rxq, (uint16_t)i);
}

static size_t feed(const char *text)
{
	return fc->fe_ops->receive(fc->fe, (const uint8_t *)text, strlen(text));
}

/* ================= tests ================= */

static void test_identity(void **state)
{
	(void)state;
	assert_int_equal(vpd_cfg(&d, 0x08, 4) >> 8, 0x078000);
	assert_int_equal(vpd_rd(&d, d.common + VPD_NUMQ, 2), 2);
	assert_true(d.has_device_cap);
	assert_int_equal(d.device_len, 12);
	assert_int_equal(vpd_offered(&d), VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(2));
	assert_int_equal(vpd_rd(&d, d.device, 4), 0); /* no size */
	assert_int_equal(vpd_rd(&d, d.device + 8, 4), 0);
	char buf[256];
	hearth_dev_class(con)->describe(con, buf, sizeof(buf));
	assert_non_null(strstr(buf, "1af4:1043"));
}

static void test_output(void **state)
{
	(void)state;
	up();
	tx_post(0, "hello, ");
	tx_post(1, "world\n");
	vpd_kick(&d, 1);
	assert_int_equal(fc->nout, 13);
	assert_memory_equal(fc->out, "hello, world\n", 13);
	uint32_t id, len;
	assert_int_equal(vqdrv_get_used(&txq, &id, &len), 1);
	assert_int_equal(id, 0);
	assert_int_equal(len, 0);
	assert_int_equal(vqdrv_get_used(&txq, &id, &len), 1);
	assert_int_equal(id, 1);
	assert_int_equal(vpd_rd(&d, d.isr, 1), 1);
	/* a chain over several descriptors comes out in order */
	memcpy(f->ram + BUFS + 0x5000, "abc", 3);
	memcpy(f->ram + BUFS + 0x6000, "def", 3);
	vqdrv_desc(&txq, 2, BUFS + 0x5000, 3, VIRTQ_DESC_F_NEXT, 3);
	vqdrv_desc(&txq, 3, BUFS + 0x6000, 3, 0, 0);
	vqdrv_post(&txq, 2);
	vpd_kick(&d, 1);
	assert_memory_equal(fc->out + 13, "abcdef", 6);
}

static void test_output_backpressure(void **state)
{
	(void)state;
	up();
	fc->room = 3;
	tx_post(0, "abcdef");
	tx_post(1, "gh");
	vpd_kick(&d, 1);
	assert_int_equal(fc->nout, 3);
	assert_int_equal(vqdrv_used_idx(&txq), 0); /* not used until it all went */
	/* another kick changes nothing while the backend is full */
	vpd_kick(&d, 1);
	assert_int_equal(fc->nout, 3);
	fc->room = 2;
	fc->fe_ops->tx_ready(fc->fe);
	assert_int_equal(fc->nout, 5);
	assert_int_equal(vqdrv_used_idx(&txq), 0);
	fc->room = 100;
	fc->fe_ops->tx_ready(fc->fe);
	assert_int_equal(fc->nout, 8);
	assert_memory_equal(fc->out, "abcdefgh", 8);
	assert_int_equal(vqdrv_used_idx(&txq), 2);
}

static void test_output_without_backend(void **state)
{
	(void)state;
	assert_int_equal(hearth_dev_remove(be), 0);
	up();
	tx_post(0, "into the void");
	vpd_kick(&d, 1);
	assert_int_equal(vqdrv_used_idx(&txq), 1);
	/* the emergency write has nowhere to go either, and that is fine */
	vpd_wr(&d, d.device + 8, 'x', 4);
	/* a backend can come later */
	be = fakevm_dev(f, "fakechar", "be2", "{\"frontend\": \"con0\"}");
	assert_non_null(be);
	fc = hearth_dev_priv(be);
	tx_post(1, "hi");
	vpd_kick(&d, 1);
	assert_memory_equal(fc->out, "hi", 2);
}

static void test_input(void **state)
{
	(void)state;
	/* before the driver is ready, input waits with the backend */
	assert_int_equal(feed("early"), 0);
	up();
	assert_int_equal(fc->rx_ready, 1); /* DRIVER_OK: offer it again */
	rx_post(0, 4);
	rx_post(1, 4);
	vpd_kick(&d, 0);
	assert_int_equal(feed("abcdefghij"), 8);
	uint32_t id, len;
	assert_int_equal(vqdrv_get_used(&rxq, &id, &len), 1);
	assert_int_equal(len, 4);
	assert_memory_equal(f->ram + BUFS + 0x80000, "abcd", 4);
	assert_int_equal(vqdrv_get_used(&rxq, &id, &len), 1);
	assert_memory_equal(f->ram + BUFS + 0x81000, "efgh", 4);
	assert_int_equal(vpd_rd(&d, d.isr, 1), 1);
	/* out of buffers: refused, and rx_ready once the driver adds one */
	unsigned before = fc->rx_ready;
	assert_int_equal(feed("ij"), 0);
	assert_int_equal(fc->rx_ready, before);
	rx_post(2, 16);
	vpd_kick(&d, 0);
	assert_int_equal(fc->rx_ready, before + 1);
	assert_int_equal(feed("ij"), 2);
	assert_int_equal(vqdrv_get_used(&rxq, &id, &len), 1);
	assert_int_equal(len, 2);
	/* a kick with nothing owed does not bother the backend */
	vpd_kick(&d, 0);
	assert_int_equal(fc->rx_ready, before + 1);
	/* a receive buffer the device cannot write into is returned empty */
	vqdrv_desc(&rxq, 3, BUFS, 4, 0, 0);
	vqdrv_post(&rxq, 3);
	rx_post(4, 4);
	assert_int_equal(feed("xyz"), 3);
	assert_int_equal(vqdrv_get_used(&rxq, &id, &len), 1);
	assert_int_equal(id, 3);
	assert_int_equal(len, 0);
	assert_int_equal(vqdrv_get_used(&rxq, &id, &len), 1);
	assert_int_equal(len, 3);
}

static void test_emergency_write(void **state)
{
	(void)state;
	up();
	vpd_wr(&d, d.device + 8, 'Z', 4);
	assert_int_equal(fc->nout, 1);
	assert_int_equal(fc->out[0], 'Z');
	/* other widths and offsets are not emergency writes */
	vpd_wr(&d, d.device + 8, 'Y', 1);
	vpd_wr(&d, d.device + 4, 'Y', 4);
	vpd_wr(&d, d.device, 'Y', 4);
	assert_int_equal(fc->nout, 1);
}

static void test_reset_mid_transfer(void **state)
{
	(void)state;
	up();
	fc->room = 2;
	tx_post(0, "abcdef");
	vpd_kick(&d, 1);
	assert_int_equal(fc->nout, 2);
	/* the driver resets with a chain half written: it is forgotten */
	fc->room = 100;
	up();
	assert_int_equal(fc->nout, 2);
	tx_post(0, "new");
	vpd_kick(&d, 1);
	assert_memory_equal(fc->out, "abnew", 5);
	/* the backend's late tx_ready after a reset is harmless */
	fc->fe_ops->tx_ready(fc->fe);
	assert_int_equal(fc->nout, 5);
	/* machine reset too */
	hearth_devs_reset(&f->vm);
	assert_int_equal(vpd_status(&d), 0);
	assert_int_equal(feed("x"), 0);
}

static void test_hostile_chains(void **state)
{
	(void)state;
	up();
	/* output from outside RAM */
	vqdrv_desc(&txq, 0, 0x7FFFF000, 16, 0, 0);
	vqdrv_post(&txq, 0);
	vpd_kick(&d, 1);
	assert_true(vpd_status(&d) & VPD_NEEDS_RESET);
	assert_int_equal(fc->nout, 0);
	/* an avail index that jumps past the ring: input side */
	up();
	vqdrv_set_avail_idx(&rxq, 100);
	assert_int_equal(feed("abc"), 0);
	assert_true(vpd_status(&d) & VPD_NEEDS_RESET);
	/* a chain that loops */
	up();
	vqdrv_desc(&txq, 0, BUFS, 1, VIRTQ_DESC_F_NEXT, 1);
	vqdrv_desc(&txq, 1, BUFS, 1, VIRTQ_DESC_F_NEXT, 0);
	vqdrv_post(&txq, 0);
	vpd_kick(&d, 1);
	assert_true(vpd_status(&d) & VPD_NEEDS_RESET);
	/* and after all that the console still works */
	up();
	tx_post(0, "ok");
	vpd_kick(&d, 1);
	assert_memory_equal(fc->out, "ok", 2);
}

static void test_backend_rules(void **state)
{
	(void)state;
	/* the console is taken */
	hearth_err_clear();
	assert_null(fakevm_dev(f, "fakechar", "be3", "{\"frontend\": \"con0\"}"));
	assert_non_null(strstr(hearth_err_msg(), "already connected"));
	/* a frontend that is neither a UART nor a console */
	struct hearth_dev *rng = fakevm_dev(f, "virtio-rng", "rng", NULL);
	assert_non_null(rng);
	assert_null(fakevm_dev(f, "fakechar", "be4", "{\"frontend\": \"rng\"}"));
	assert_non_null(strstr(hearth_err_msg(), "not a frontend"));
	assert_null(fakevm_dev(f, "fakechar", "be5", "{\"frontend\": \"nope\"}"));
	assert_non_null(strstr(hearth_err_msg(), "no frontend 'nope'"));
	/* the frontend cannot go while its backend is attached */
	assert_int_equal(hearth_dev_remove(con), -1);
	assert_int_equal(hearth_dev_remove(be), 0);
	assert_int_equal(hearth_dev_remove(con), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_output),
		T(test_output_backpressure),
		T(test_output_without_backend),
		T(test_input),
		T(test_emergency_write),
		T(test_reset_mid_transfer),
		T(test_hostile_chains),
		T(test_backend_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
