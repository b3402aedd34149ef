/* blk-ram: a disk held in anonymous memory, zero-filled, gone when the VM ends. Requests
 * finish inside submit; discarded whole pages go back to the host. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hearth/blk.h"
#include "hearth/device.h"

#define RAM_PAGE 4096u

struct blk_ram {
	uint8_t *mem;
	uint64_t size;
	bool readonly;
	const struct hearth_blk_frontend_ops *fe_ops;
	void *fe;
};

static void copy_iov(uint8_t *disk, const struct hearth_blk_req *req, bool to_disk)
{
	uint64_t off = req->offset;

	for (unsigned i = 0; i < req->niov; i++) {
		const struct iovec *v = &req->iov[i];
		if (to_disk)
			memcpy(disk + off, v->iov_base, v->iov_len);
		else
			memcpy(v->iov_base, disk + off, v->iov_len);
		off += v->iov_len;
	}
}

/* Zero [off, off+len): whole pages are dropped (they read back as zeroes), the edges cleared. */
static void zero_range(struct blk_ram *r, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;
	uint64_t pstart = (off + RAM_PAGE - 1) & ~(uint64_t)(RAM_PAGE - 1);
	uint64_t pend = end & ~(uint64_t)(RAM_PAGE - 1);

	if (pstart < pend && madvise(r->mem + pstart, pend - pstart, MADV_DONTNEED) == 0) {
		memset(r->mem + off, 0, pstart - off);
		memset(r->mem + pend, 0, end - pend);
		return;
	}
	memset(r->mem + off, 0, len);
}

static int ram_submit(void *be, struct hearth_blk_req *req)
{
	struct blk_ram *r = be;

	if (req->op != HEARTH_BLK_FLUSH &&
	    (req->offset > r->size || req->len > r->size - req->offset))
		return -EIO;
	if (r->readonly && req->op != HEARTH_BLK_READ && req->op != HEARTH_BLK_FLUSH)
		return -EROFS;
	switch (req->op) {
	case HEARTH_BLK_READ:
	case HEARTH_BLK_WRITE: {
		uint64_t total = 0;
		for (unsigned i = 0; i < req->niov; i++)
			total += req->iov[i].iov_len;
		if (total != req->len)
			return -EINVAL;
		copy_iov(r->mem, req, req->op == HEARTH_BLK_WRITE);
		return HEARTH_BLK_DONE;
	}
	case HEARTH_BLK_FLUSH:
		return HEARTH_BLK_DONE;
	case HEARTH_BLK_DISCARD:
	case HEARTH_BLK_WRITE_ZEROES:
		zero_range(r, req->offset, req->len);
		return HEARTH_BLK_DONE;
	}
	return -EOPNOTSUPP;
}

static const struct hearth_blk_backend_ops ram_ops = {.submit = ram_submit};

static void ram_free(struct hearth_dev *dev)
{
	struct blk_ram *r = hearth_dev_priv(dev);

	if (!r)
		return;
	if (r->fe_ops)
		r->fe_ops->detach(r->fe);
	if (r->mem)
		munmap(r->mem, r->size);
	free(r);
}

static int ram_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	uint64_t size;
	bool ro;

	/* 1 TiB: the memory is reserved lazily, but keep typos from asking for exabytes */
	if (hearth_cfg_size(cfg, "size", 0, 0, 1ull << 40, &size) < 0 ||
	    hearth_cfg_bool(cfg, "readonly", false, &ro) < 0)
		return -1;
	if (size == 0)
		return hearth_err("key 'size' is missing: give the disk size, e.g. size=64M");
	if (size % 512)
		return hearth_err("key 'size': %llu is not a multiple of 512 bytes",
				  (unsigned long long)size);
	struct blk_ram *r = calloc(1, sizeof(*r));
	if (!r)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, r);
	r->mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->mem == MAP_FAILED) {
		r->mem = NULL;
		return hearth_err("cannot reserve %llu bytes: %s", (unsigned long long)size,
				  strerror(errno));
	}
	r->size = size;
	r->readonly = ro;
	struct hearth_blk_info info = {
		.size = size,
		.block_size = 512,
		.readonly = ro,
		.discard = true,
		.write_zeroes = true,
		.name = hearth_dev_id(dev),
	};
	return hearth_blk_backend_attach(dev, cfg, &info, &ram_ops, r, &r->fe_ops, &r->fe);
}

static void ram_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	struct blk_ram *r = hearth_dev_priv(dev);

	snprintf(buf, len, "%llu bytes in memory%s", (unsigned long long)r->size,
		 r->readonly ? ", read-only" : "");
}

HEARTH_DEVICE_CLASS(blk_ram_class, .name = "blk-ram",
		    .summary = "block backend: a zero-filled disk in memory (size=, frontend=)",
		    .init = ram_init, .free = ram_free, .describe = ram_describe);
