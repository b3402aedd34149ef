/* The virtio-pci transport's guest-visible constants (virtio 1.2 section 4.1), for tests and
 * for devices that need their PCI function. The layout of the BAR is in virtio_pci.c. */
#pragma once

#include <stdint.h>

struct virtio_device;
struct hearth_pci_func;

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + device id: modern (non-transitional) devices */
#define VIRTIO_PCI_NO_VECTOR 0xffff

/* The device's PCI function once attached, else NULL. */
struct hearth_pci_func *virtio_pci_func(struct virtio_device *vd);
