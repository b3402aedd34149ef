/* virtio-blk (virtio 1.2 section 5.2): the request engine, a blk frontend. The PCI side is the
 * transport's (virtio_dev.h); the class `virtio-blk` (src/devices/virtio_blk.c) joins the two. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hearth_dev;
struct hearth_cfg;
struct virtio_device;

/* Feature bits. */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values. */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_WZ_F_UNMAP 1u /* virtio_blk_discard_write_zeroes.flags */
#define VIRTIO_BLK_ID_BYTES 20

/* Limits the device advertises. */
#define VIRTIO_BLK_SEG_MAX 254 /* data segments; a chain adds header and status */
#define VIRTIO_BLK_CHAIN_MAX (VIRTIO_BLK_SEG_MAX + 2)
#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_QUEUES_MAX 64
#define VIRTIO_BLK_DISCARD_SECTORS_MAX (1u << 22) /* 2 GiB per request */

/* Config space offsets (5.2.4). */
#define VIRTIO_BLK_CFG_CAPACITY 0
#define VIRTIO_BLK_CFG_SIZE_MAX 8
#define VIRTIO_BLK_CFG_SEG_MAX 12
#define VIRTIO_BLK_CFG_GEOMETRY 16
#define VIRTIO_BLK_CFG_BLK_SIZE 20
#define VIRTIO_BLK_CFG_TOPOLOGY 24
#define VIRTIO_BLK_CFG_WRITEBACK 32
#define VIRTIO_BLK_CFG_NUM_QUEUES 34
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VIRTIO_BLK_CFG_DISCARD_ALIGN 44
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS 48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG 52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP 56
#define VIRTIO_BLK_CFG_LEN 60

/* Build the engine on dev (priv), reading keys "queues", "queue-size", "serial" from cfg,
 * and register dev as a blk frontend. No transport: the class `virtio-blk` adds one; tests
 * drive the returned device directly. 0, or -1 with hearth_err set. */
int virtio_blk_setup(struct hearth_dev *dev, struct hearth_cfg *cfg);
struct virtio_device *virtio_blk_vdev(struct hearth_dev *dev);
void virtio_blk_free(struct hearth_dev *dev);
/* Locks: the device lock (hearth_dev_lock) guards the queues and request slots; the count of
 * requests in flight has its own lock, taken inside the device lock (submission, completion)
 * or alone (wait_idle), never the other way round. Completions arrive on the event-loop thread
 * and take the device lock, so wait_idle must be called without it, and from a thread other
 * than the event loop's.
 *
 * Checkpoints (the class's ops call these around the transport's; the engine itself knows no
 * checkpoint format, so it builds and is fuzzed alone). wait_idle: without the device lock,
 * until no request is in flight (every completion in its used ring, the guest notified), or
 * -1 after timeout_ms; *waited (may be NULL): how many were in flight. resume (lock held):
 * queues that wanted to run while the transport was frozen run now. in_flight: requests the
 * backend has not completed. restored (lock held): the engine's state after a load, which
 * holds no request (quiesce saw to that). */
int virtio_blk_wait_idle(struct hearth_dev *dev, unsigned timeout_ms, unsigned *waited);
void virtio_blk_resume(struct hearth_dev *dev);
unsigned virtio_blk_in_flight(struct hearth_dev *dev);
bool virtio_blk_broken(struct hearth_dev *dev);
void virtio_blk_restored(struct hearth_dev *dev, bool broken);
/* "2 queues, /path/disk.img" for `hearth devices`. */
void virtio_blk_describe(struct hearth_dev *dev, char *buf, size_t len);
