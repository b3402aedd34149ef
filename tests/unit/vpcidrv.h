/* A guest driver's side of the virtio-pci transport for device tests: find the function,
 * walk its capabilities, negotiate, set up queues (rings laid out with vqdrv.h), kick through
 * the fake ioeventfds and run the event loop, as the test OS driver does on real KVM. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "fakevm.h"
#include "hearth/pci.h"
#include "virtio/virtio_pci.h"
#include "vqdrv.h"

#define VPD_ACK 1
#define VPD_DRIVER 2
#define VPD_DRIVER_OK 4
#define VPD_FEATURES_OK 8
#define VPD_NEEDS_RESET 64

/* common configuration offsets */
#define VPD_DFSEL 0x00
#define VPD_DF 0x04
#define VPD_GFSEL 0x08
#define VPD_GF 0x0C
#define VPD_NUMQ 0x12
#define VPD_STATUS 0x14
#define VPD_QSEL 0x16
#define VPD_QSIZE 0x18
#define VPD_QEN 0x1C
#define VPD_QDESC 0x20
#define VPD_QAVAIL 0x28
#define VPD_QUSED 0x30

struct vpcidrv {
	struct fakevm *f;
	unsigned slot;
	uint64_t bar, common, notify, isr, device;
	uint32_t mult, device_len;
	bool has_device_cap;
};

static inline uint32_t vpd_cfg(struct vpcidrv *d, unsigned reg, unsigned size)
{
	return (uint32_t)iobus_read(&d->f->vm.mmio, HEARTH_PCI_ECAM_BASE + (d->slot << 15) + reg,
				    size);
}

static inline uint64_t vpd_rd(struct vpcidrv *d, uint64_t a, unsigned size)
{
	return iobus_read(&d->f->vm.mmio, a, size);
}

static inline void vpd_wr(struct vpcidrv *d, uint64_t a, uint64_t v, unsigned size)
{
	iobus_write(&d->f->vm.mmio, a, v, size);
}

/* Find the virtio function with this device type; false when there is none. */
static inline bool vpd_probe(struct vpcidrv *d, struct fakevm *f, uint16_t type)
{
	*d = (struct vpcidrv){.f = f};
	for (d->slot = 1; d->slot < 32; d->slot++)
		if (vpd_cfg(d, 0, 2) == VIRTIO_PCI_VENDOR &&
		    vpd_cfg(d, 2, 2) == (uint32_t)(VIRTIO_PCI_DEVICE_BASE + type))
			break;
	if (d->slot == 32)
		return false;
	d->bar = vpd_cfg(d, 0x10, 4) & ~0xFull;
	for (unsigned p = vpd_cfg(d, 0x34, 1); p; p = vpd_cfg(d, p + 1, 1)) {
		if (vpd_cfg(d, p, 1) != 0x09)
			continue;
		uint64_t at = d->bar + vpd_cfg(d, p + 8, 4);
		switch (vpd_cfg(d, p + 3, 1)) {
		case 1:
			d->common = at;
			break;
		case 2:
			d->notify = at;
			d->mult = vpd_cfg(d, p + 16, 4);
			break;
		case 3:
			d->isr = at;
			break;
		case 4:
			d->device = at;
			d->device_len = vpd_cfg(d, p + 12, 4);
			d->has_device_cap = true;
			break;
		}
	}
	return d->common && d->notify && d->isr;
}

static inline uint8_t vpd_status(struct vpcidrv *d)
{
	return (uint8_t)vpd_rd(d, d->common + VPD_STATUS, 1);
}

static inline uint64_t vpd_offered(struct vpcidrv *d)
{
	vpd_wr(d, d->common + VPD_DFSEL, 0, 4);
	uint64_t lo = vpd_rd(d, d->common + VPD_DF, 4);
	vpd_wr(d, d->common + VPD_DFSEL, 1, 4);
	return lo | vpd_rd(d, d->common + VPD_DF, 4) << 32;
}

/* Reset, then ACK, DRIVER, features, FEATURES_OK: whether the device kept FEATURES_OK. */
static inline bool vpd_negotiate(struct vpcidrv *d, uint64_t features)
{
	vpd_wr(d, d->common + VPD_STATUS, 0, 1);
	vpd_wr(d, d->common + VPD_STATUS, VPD_ACK | VPD_DRIVER, 1);
	vpd_wr(d, d->common + VPD_GFSEL, 0, 4);
	vpd_wr(d, d->common + VPD_GF, (uint32_t)features, 4);
	vpd_wr(d, d->common + VPD_GFSEL, 1, 4);
	vpd_wr(d, d->common + VPD_GF, features >> 32, 4);
	vpd_wr(d, d->common + VPD_STATUS, VPD_ACK | VPD_DRIVER | VPD_FEATURES_OK, 1);
	return vpd_status(d) & VPD_FEATURES_OK;
}

/* Lay out and enable queue q with rings at base. */
static inline void vpd_queue(struct vpcidrv *d, unsigned q, uint16_t size, uint64_t base,
			     struct vqdrv *qd)
{
	struct virtq shadow;
	virtq_init(&shadow, &d->f->vm, size);
	vqdrv_init(qd, d->f, &shadow, size, base);
	qd->vq = NULL; /* the device's queue is reached through registers only */
	vpd_wr(d, d->common + VPD_QSEL, q, 2);
	vpd_wr(d, d->common + VPD_QSIZE, size, 2);
	vpd_wr(d, d->common + VPD_QDESC, qd->desc, 8);
	vpd_wr(d, d->common + VPD_QAVAIL, qd->avail, 8);
	vpd_wr(d, d->common + VPD_QUSED, qd->used, 8);
	vpd_wr(d, d->common + VPD_QEN, 1, 2);
}

static inline void vpd_driver_ok(struct vpcidrv *d)
{
	vpd_wr(d, d->common + VPD_STATUS, VPD_ACK | VPD_DRIVER | VPD_FEATURES_OK | VPD_DRIVER_OK,
	       1);
}

static inline void vpd_run_loop(struct vpcidrv *d)
{
	while (loop_run_once(d->f->vm.loop, 0) > 0)
		;
}

/* Notify queue q as the driver does (a 16-bit write of its index) and let the loop serve it. */
static inline void vpd_kick(struct vpcidrv *d, unsigned q)
{
	fakevm_guest_write(d->f, false, d->notify + (uint64_t)q * d->mult, q, 2);
	vpd_run_loop(d);
}
