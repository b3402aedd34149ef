/* blk-ram: a disk held in anonymous memory, zero-filled, gone when the VM ends. Requests
 * finish inside submit; discarded whole pages go back to the host. Its data goes into the
 * checkpoint (the pages that are not all zeroes), within the limits below. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hearth/blk.h"
#include "hearth/checkpoint.h"
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

/* ---- checkpoints ----
 * Fields: size, readonly (checked against the rebuilt disk), pages (u32 array: indexes of the
 * 4 KiB pages that hold anything but zeroes, ascending) and data (those pages back to back; the
 * last page of the disk only as far as the disk goes). The state file is read whole on restore,
 * so the data is capped, and finding it means reading the whole disk, so the disk size is too:
 * a VM whose RAM disk is over either limit refuses to checkpoint, naming the disk. */

#define RAM_CKPT_VERSION 1
#define RAM_CKPT_DATA_MAX (64u << 20)
#define RAM_CKPT_SIZE_MAX (16ull << 30)

static bool page_zero(const uint8_t *p, size_t n)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < n / 8; i++)
		if (w[i])
			return false;
	for (size_t i = n / 8 * 8; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static size_t page_len(const struct blk_ram *r, uint64_t page)
{
	uint64_t off = page * RAM_PAGE;

	return r->size - off < RAM_PAGE ? (size_t)(r->size - off) : RAM_PAGE;
}

static int ram_save(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct blk_ram *r = hearth_dev_priv(dev);
	uint64_t npages = (r->size + RAM_PAGE - 1) / RAM_PAGE, used = 0;
	uint32_t *pages = NULL;
	uint8_t *data = NULL;
	size_t bytes = 0;
	int ret = -1;

	if (r->size > RAM_CKPT_SIZE_MAX)
		return hearth_err("RAM disk of %llu bytes: a checkpoint holds RAM disks of up to "
				  "%llu bytes (use blk-file for larger disks)",
				  (unsigned long long)r->size, RAM_CKPT_SIZE_MAX);
	for (uint64_t p = 0; p < npages; p++)
		if (!page_zero(r->mem + p * RAM_PAGE, page_len(r, p))) {
			used++;
			bytes += page_len(r, p);
		}
	if (bytes > RAM_CKPT_DATA_MAX)
		return hearth_err("RAM disk holds %zu bytes of data: a checkpoint holds up to %u "
				  "(use blk-file for larger data)",
				  bytes, RAM_CKPT_DATA_MAX);
	pages = malloc(used ? used * sizeof(*pages) : 1);
	data = malloc(bytes ? bytes : 1);
	if (!pages || !data) {
		hearth_err("out of memory");
		goto out;
	}
	used = bytes = 0;
	for (uint64_t p = 0; p < npages; p++) {
		size_t n = page_len(r, p);
		if (page_zero(r->mem + p * RAM_PAGE, n))
			continue;
		pages[used++] = (uint32_t)p;
		memcpy(data + bytes, r->mem + p * RAM_PAGE, n);
		bytes += n;
	}
	if (hearth_ckpt_set_version(ck, RAM_CKPT_VERSION) < 0 ||
	    hearth_ckpt_put_u64(ck, "size", r->size) < 0 ||
	    hearth_ckpt_put_bool(ck, "readonly", r->readonly) < 0 ||
	    hearth_ckpt_put_u32_array(ck, "pages", pages, used) < 0 ||
	    hearth_ckpt_put_bytes(ck, "data", data, bytes) < 0)
		goto out;
	ret = 0;
out:
	free(pages);
	free(data);
	return ret;
}

static int ram_load(struct hearth_dev *dev, struct hearth_ckpt *ck)
{
	struct blk_ram *r = hearth_dev_priv(dev);
	const char *name = hearth_ckpt_name(ck);
	uint64_t npages = (r->size + RAM_PAGE - 1) / RAM_PAGE, size, want = 0;
	size_t max = RAM_CKPT_DATA_MAX / RAM_PAGE + 1, n, len;
	uint32_t *pages;
	const void *data;
	bool ro;
	int ret = -1;

	if (hearth_ckpt_accept_versions(ck, 1, RAM_CKPT_VERSION) < 0 ||
	    hearth_ckpt_get_u64(ck, "size", &size) < 0 ||
	    hearth_ckpt_get_bool(ck, "readonly", &ro) < 0)
		return -1;
	if (size != r->size)
		return hearth_err(
			"checkpoint context '%s': key 'size': the RAM disk had %llu bytes, "
			"this one has %llu",
			name, (unsigned long long)size, (unsigned long long)r->size);
	if (ro != r->readonly)
		return hearth_err("checkpoint context '%s': key 'readonly': the RAM disk was %s",
				  name, ro ? "read-only" : "writable");
	if (max > npages)
		max = npages;
	pages = malloc((max ? max : 1) * sizeof(*pages));
	if (!pages)
		return hearth_err("out of memory");
	if (hearth_ckpt_get_u32_array(ck, "pages", pages, max, &n) < 0 ||
	    hearth_ckpt_get_blob(ck, "data", &data, &len) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (pages[i] >= npages || (i && pages[i] <= pages[i - 1])) {
			hearth_err("checkpoint context '%s': key 'pages': entry %zu (%u) is not an "
				   "ascending page index below %llu",
				   name, i, pages[i], (unsigned long long)npages);
			goto out;
		}
		want += page_len(r, pages[i]);
	}
	if (len != want) {
		hearth_err("checkpoint context '%s': key 'data': %zu bytes for %zu pages that "
			   "hold %llu",
			   name, len, n, (unsigned long long)want);
		goto out;
	}
	zero_range(r, 0, r->size);
	const uint8_t *src = data;
	for (size_t i = 0; i < n; i++) {
		size_t pl = page_len(r, pages[i]);
		memcpy(r->mem + (uint64_t)pages[i] * RAM_PAGE, src, pl);
		src += pl;
	}
	ret = 0;
out:
	free(pages);
	return ret;
}

static void ram_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	struct blk_ram *r = hearth_dev_priv(dev);

	snprintf(buf, len, "%llu bytes in memory%s", (unsigned long long)r->size,
		 r->readonly ? ", read-only" : "");
}

HEARTH_DEVICE_CLASS(blk_ram_class, .name = "blk-ram",
		    .summary = "block backend: a zero-filled disk in memory (size=, frontend=)",
		    .init = ram_init, .free = ram_free, .save = ram_save, .load = ram_load,
		    .describe = ram_describe);
