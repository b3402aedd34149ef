/* virtio-rng through the PCI transport: requests filled with host entropy, the used lengths,
 * the interrupt, useless and hostile chains, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/virtio_dev.h"
#include "vpcidrv.h"

#define RING 0x10000
#define BUFS 0x100000

static struct fakevm *f;
static struct hearth_dev *dev;
static struct vpcidrv d;
static struct vqdrv q;

static int setup(void **state)
{
	(void)state;
	f = fakevm_new(16 << 20);
	dev = fakevm_dev(f, "virtio-rng", "rng", NULL);
	if (!dev)
		fail_msg("virtio-rng: %s", hearth_err_msg());
	assert_true(vpd_probe(&d, f, VIRTIO_ID_ENTROPY));
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
	vpd_queue(&d, 0, 16, RING, &q);
	vpd_driver_ok(&d);
	assert_int_equal(vpd_status(&d), 0x0F);
}

static bool all_zero(uint64_t gpa, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (f->ram[gpa + i])
			return false;
	return true;
}

static void test_identity(void **state)
{
	(void)state;
	assert_int_equal(vpd_cfg(&d, 0x08, 4) >> 8, 0xff0000);
	assert_int_equal(vpd_rd(&d, d.common + VPD_NUMQ, 2), 1);
	assert_false(d.has_device_cap); /* no configuration space */
	assert_int_equal(vpd_offered(&d), VIRTIO_BIT(VIRTIO_F_VERSION_1));
	/* nothing else is accepted */
	assert_false(vpd_negotiate(&d, VIRTIO_BIT(VIRTIO_F_VERSION_1) |
					       VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX)));
	char buf[256];
	hearth_dev_class(dev)->describe(dev, buf, sizeof(buf));
	assert_non_null(strstr(buf, "1af4:1044"));
}

static void test_fills_requests(void **state)
{
	(void)state;
	up();
	/* three requests: small, odd, and larger than one request is ever given */
	vqdrv_desc(&q, 0, BUFS, 16, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_desc(&q, 1, BUFS + 0x1000, 100, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_desc(&q, 2, BUFS + 0x10000, 200000, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&q, 0);
	vqdrv_post(&q, 1);
	vqdrv_post(&q, 2);
	vpd_kick(&d, 0);
	uint32_t id, len;
	assert_int_equal(vqdrv_get_used(&q, &id, &len), 1);
	assert_int_equal(id, 0);
	assert_int_equal(len, 16);
	assert_int_equal(vqdrv_get_used(&q, &id, &len), 1);
	assert_int_equal(id, 1);
	assert_int_equal(len, 100);
	assert_int_equal(vqdrv_get_used(&q, &id, &len), 1);
	assert_int_equal(id, 2);
	assert_int_equal(len, 65536);
	assert_int_equal(vqdrv_get_used(&q, &id, &len), 0);
	assert_false(all_zero(BUFS + 0x1000, 100));
	assert_false(all_zero(BUFS + 0x10000 + 65536 - 64, 64));
	assert_true(all_zero(BUFS + 0x10000 + 65536, 4096)); /* nothing past what was given */
	/* one interrupt, INTx + ISR (MSI-X is off) */
	assert_int_equal(vpd_rd(&d, d.isr, 1), 1);
	/* a request spread over two descriptors */
	vqdrv_desc(&q, 3, BUFS + 0x30000, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 4);
	vqdrv_desc(&q, 4, BUFS + 0x31000, 8, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&q, 3);
	vpd_kick(&d, 0);
	assert_int_equal(vqdrv_get_used(&q, &id, &len), 1);
	assert_int_equal(id, 3);
	assert_int_equal(len, 16);
	assert_false(all_zero(BUFS + 0x31000, 8) && all_zero(BUFS + 0x30000, 8));
	/* a request with nothing to write into is returned empty */
	vqdrv_desc(&q, 5, BUFS, 8, 0, 0);
	vqdrv_post(&q, 5);
	vpd_kick(&d, 0);
	assert_int_equal(vqdrv_get_used(&q, &id, &len), 1);
	assert_int_equal(len, 0);
	/* the driver asked for no interrupts: none comes */
	(void)vpd_rd(&d, d.isr, 1);
	vqdrv_set_avail_flags(&q, VIRTQ_AVAIL_F_NO_INTERRUPT);
	vqdrv_desc(&q, 6, BUFS, 8, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&q, 6);
	vpd_kick(&d, 0);
	assert_int_equal(vqdrv_get_used(&q, &id, &len), 1);
	assert_int_equal(vpd_rd(&d, d.isr, 1), 0);
}

static void test_hostile_chain(void **state)
{
	(void)state;
	up();
	/* a buffer outside guest RAM breaks the queue: DEVICE_NEEDS_RESET, nothing written */
	vqdrv_desc(&q, 0, 0x40000000, 64, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&q, 0);
	vpd_kick(&d, 0);
	assert_true(vpd_status(&d) & VPD_NEEDS_RESET);
	assert_int_equal(vqdrv_used_idx(&q), 0);
	/* further kicks are ignored */
	vqdrv_desc(&q, 1, BUFS, 64, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&q, 1);
	vpd_kick(&d, 0);
	assert_int_equal(vqdrv_used_idx(&q), 0);
	/* a chain longer than the device takes */
	up();
	for (unsigned i = 0; i < 15; i++)
		vqdrv_desc(&q, i, BUFS + 16 * i, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
			   (uint16_t)(i + 1));
	vqdrv_desc(&q, 15, BUFS + 0x1000, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
	vqdrv_post(&q, 0); /* loops back to 0 */
	vpd_kick(&d, 0);
	assert_true(vpd_status(&d) & VPD_NEEDS_RESET);
	/* reset and it works again */
	up();
	assert_false(vpd_status(&d) & VPD_NEEDS_RESET);
	vqdrv_desc(&q, 0, BUFS, 32, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&q, 0);
	vpd_kick(&d, 0);
	uint32_t id, len;
	assert_int_equal(vqdrv_get_used(&q, &id, &len), 1);
	assert_int_equal(len, 32);
}

static void test_machine_reset(void **state)
{
	(void)state;
	up();
	hearth_devs_reset(&f->vm);
	assert_int_equal(vpd_status(&d), 0);
	up();
	vqdrv_desc(&q, 0, BUFS, 32, VIRTQ_DESC_F_WRITE, 0);
	vqdrv_post(&q, 0);
	vpd_kick(&d, 0);
	assert_int_equal(vqdrv_used_idx(&q), 1);
}

static void test_no_event_loop(void **state)
{
	(void)state;
	/* `hearth devices` builds machines without a loop */
	struct fakevm *g = fakevm_new(1 << 20);
	struct hearth_loop *l = g->vm.loop;
	g->vm.loop = NULL;
	assert_non_null(fakevm_dev(g, "virtio-rng", "rng", "{\"addr\": 9}"));
	assert_non_null(fakevm_dev(g, "virtio-console", "con", NULL));
	machine_destroy(&g->vm);
	machine_init(&g->vm);
	g->vm.loop = l;
	fakevm_free(g);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_identity),      T(test_fills_requests), T(test_hostile_chain),
		T(test_machine_reset), T(test_no_event_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
