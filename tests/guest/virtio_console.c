/*
 * virtio-console driver (virtio 1.2, section 5.3), single port without
 * VIRTIO_CONSOLE_F_MULTIPORT: receiveq0 is queue 0, transmitq0 queue 1.
 * The "virtio-console" guest test writes one line; with conin=WORD it waits
 * (up to 20 s) for the host to send WORD and a newline, then echoes
 * "got WORD" so the runner can check the round trip.
 */
#include "testos.h"

#define RXBUFS 8
#define RXLEN 128

static struct virtio_dev vd;
static struct virtq rxq, txq;

static bool con_write(uint8_t *dma, const char *s)
{
	size_t n = strlen(s);
	memcpy(dma, s, n);
	struct vq_seg seg = {dma, (uint32_t)n};
	if (!tap_check(virtq_add(&txq, &seg, 1, 0, dma) >= 0, "transmit queue full"))
		return false;
	virtq_kick(&txq);
	void *cookie;
	uint32_t len;
	return tap_check(virtq_wait(&txq, &cookie, &len, 5000) && cookie == dma,
			 "transmit buffer not returned in 5 s");
}

static void post_rx(uint8_t *rx, unsigned i)
{
	struct vq_seg seg = {rx + RXLEN * i, RXLEN};
	virtq_add(&rxq, &seg, 0, 1, rx + RXLEN * i);
}

/* Collects input until a newline; false on timeout. */
static bool con_read_line(uint8_t *rx, char *line, size_t size, uint64_t ms)
{
	size_t n = 0;
	uint64_t end = deadline_ms(ms);
	while (!expired(end)) {
		void *cookie;
		uint32_t len;
		if (!virtq_get(&rxq, &cookie, &len)) {
			cpu_relax();
			continue;
		}
		uint8_t *p = cookie;
		if (!tap_check(p && len <= RXLEN, "receive: used length %u", len))
			return false;
		for (uint32_t i = 0; i < len && n + 1 < size; i++)
			line[n++] = (char)p[i];
		post_rx(rx, (unsigned)((p - rx) / RXLEN));
		virtq_kick(&rxq);
		line[n] = 0;
		for (size_t i = 0; i < n; i++)
			if (line[i] == '\n' || line[i] == '\r') {
				line[i] = 0;
				return true;
			}
	}
	line[n] = 0;
	return false;
}

void test_virtio_console(void)
{
	static uint8_t *dma;
	const struct pci_func *f = pci_find(VIRTIO_VENDOR, VIRTIO_PCI_DEVICE(3), 0);
	if (!tap_check(f, "no virtio-console function (1af4:1043)"))
		return;
	if (!dma)
		dma = page_alloc(RXBUFS * RXLEN + 4096);
	bool ok = dma && virtio_open(&vd, f) &&
		  virtio_start(&vd, VIRTIO_F_EVENT_IDX, VIRTIO_IRQ_NONE, 0) &&
		  virtq_setup(&vd, &rxq, 0, 16) && virtq_setup(&vd, &txq, 1, 16);
	if (!tap_check(ok, "set-up: %s", vd.error ? vd.error : "out of memory"))
		return;
	uint8_t *rx = dma, *tx = dma + RXBUFS * RXLEN;
	for (unsigned i = 0; i < RXBUFS; i++)
		post_rx(rx, i);
	if (!tap_check(virtio_driver_ok(&vd), "%s", vd.error))
		return;
	virtq_kick(&rxq);
	tap_note("00:%02x.%u offered 0x%lx negotiated 0x%lx, %u queues", f->dev, f->fn, vd.offered,
		 vd.features, virtio_num_queues(&vd));
	if (!con_write(tx, "hearth-testos virtio-console hello\n"))
		return;
	const char *want = cmdline_get("conin");
	if (want) {
		char line[RXLEN * 2], reply[RXLEN * 2 + 8];
		bool got = con_read_line(rx, line, sizeof(line), 20000);
		tap_check(got && !strcmp(line, want), "input \"%s\"%s, want \"%s\"", line,
			  got ? "" : " (no newline in 20 s)", want);
		snprintf(reply, sizeof(reply), "got %s\n", line);
		con_write(tx, reply);
	}
	virtio_reset(&vd);
}
