/*
 * virtio-rng driver (virtio 1.2, section 5.4) and the "virtio-rng" guest test:
 * one request queue; the device fills device-writable buffers and says how
 * many bytes it wrote.
 */
#include "testos.h"

static struct virtio_dev vd;
static struct virtq q;

/* Fills n bytes, asking again while the device returns short reads. */
static bool rng_get(uint8_t *buf, uint32_t n, unsigned *rounds)
{
	uint32_t got = 0;
	for (*rounds = 0; got < n && *rounds < 64; (*rounds)++) {
		struct vq_seg seg = {buf + got, n - got};
		if (!tap_check(virtq_add(&q, &seg, 0, 1, buf) >= 0, "could not queue a buffer"))
			return false;
		virtq_kick(&q);
		void *cookie;
		uint32_t len;
		if (!tap_check(virtq_wait(&q, &cookie, &len, 2000), "no completion in 2 s"))
			return false;
		if (!tap_check(cookie == buf && len <= n - got,
			       "used length %u for a %u-byte buffer", len, n - got))
			return false;
		got += len;
	}
	return tap_check(got == n, "only %u of %u bytes after %u requests", got, n, *rounds);
}

void test_virtio_rng(void)
{
	static uint8_t *buf;
	const struct pci_func *f = pci_find(VIRTIO_VENDOR, VIRTIO_PCI_DEVICE(4), 0);
	if (!tap_check(f, "no virtio-rng function (1af4:1044)"))
		return;
	if (!buf)
		buf = page_alloc(4096);
	bool ok = buf && virtio_open(&vd, f) &&
		  virtio_start(&vd, VIRTIO_F_EVENT_IDX, VIRTIO_IRQ_NONE, 0) &&
		  virtq_setup(&vd, &q, 0, 64) && virtio_driver_ok(&vd);
	if (!tap_check(ok, "set-up: %s", vd.error ? vd.error : "out of memory"))
		return;
	unsigned r1, r2;
	memset(buf, 0, 256);
	if (!rng_get(buf, 64, &r1) || !rng_get(buf + 64, 64, &r2))
		return;
	bool all_equal = true;
	for (int i = 1; i < 64; i++)
		all_equal &= buf[i] == buf[0];
	tap_check(!all_equal, "64 bytes all equal to 0x%x", buf[0]);
	tap_check(memcmp(buf, buf + 64, 64), "two reads returned the same 64 bytes");
	tap_note("64 + 64 bytes in %u + %u requests: %02x%02x%02x%02x...", r1, r2, buf[0], buf[1],
		 buf[2], buf[3]);
	virtio_reset(&vd);
}
