/* Whole-VM save and restore. A checkpoint is written into a fresh directory beside the
 * target and swapped in only when complete (memory file, then state file, both fsynced), so
 * a crash never pairs one checkpoint's memory with another's state; the memory file's
 * trailer and the `vm` context also carry the same random id, which restore compares.
 *
 * Memory is written sparse: only what the guest touched is read and written, so save time
 * follows touched RAM. Restore maps the memory file copy-on-write, so it costs the same
 * for any RAM size. */
#include "snapshot/vmsnap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/vmconfig.h"
#include "kvm/kvm_state.h"
#include "snapshot/crc32c.h"
#include "snapshot/devices.h"
#include "snapshot/store.h"
#include "vm/vm.h"

/* Context versions: bump when the meaning of a field changes (docs/checkpoint-format.md). */
#define CONFIG_CTX_VERSION 1
#define VM_CTX_VERSION 1
#define VCPU_CTX_VERSION 1

#define MEM_MAGIC "HEARTHMM"
#define MEM_TRAILER_VERSION 1

struct mem_trailer {
	char magic[8];
	uint32_t version;
	uint32_t len; /* bytes of this structure */
	uint64_t ram_size;
	uint8_t id[VMSNAP_ID_LEN];
	uint32_t crc; /* CRC32C of everything above */
} __attribute__((packed));

static const uint64_t page = 4096;

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ---- guest RAM into the memory file ---- */

struct mem_out {
	int fd;
	const uint8_t *ram;
	uint64_t size;
	uint64_t written;
	uint64_t expected;     /* bytes of RAM with data, 0 when unknown */
	struct timespec start; /* for progress on stderr once a save runs long */
	double last_report_ms;
};

/* A save of many GiB takes seconds: after the first second, a line every half second. */
static void progress(struct mem_out *mo)
{
	double ms = ms_since(&mo->start);

	if (ms < 1000 || ms - mo->last_report_ms < 500)
		return;
	mo->last_report_ms = ms;
	double mib = (double)mo->written / (1 << 20);
	if (mo->expected)
		hearth_log("snapshot: %.0f of %.0f MiB of guest RAM written (%.0f%%, %.0f MiB/s)",
			   mib, (double)mo->expected / (1 << 20),
			   100.0 * (double)mo->written / (double)mo->expected, mib * 1000 / ms);
	else
		hearth_log("snapshot: %.0f MiB of guest RAM written (%.0f MiB/s)", mib,
			   mib * 1000 / ms);
}

static int write_range(struct mem_out *mo, uint64_t off, uint64_t end)
{
	if (end > mo->size)
		end = mo->size;
	while (off < end) {
		/* 64 MiB at a time: large enough for the disk, small enough to report progress */
		size_t n = end - off > (64ull << 20) ? (64ull << 20) : (size_t)(end - off);
		ssize_t r = pwrite(mo->fd, mo->ram + off, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return hearth_err("memory file: writing %zu bytes at offset %llu: %s", n,
					  (unsigned long long)off,
					  r < 0 ? strerror(errno) : "no progress");
		off += (uint64_t)r;
		mo->written += (uint64_t)r;
		progress(mo);
	}
	return 0;
}

/* Calls fn for every run of fd's first size bytes that holds data (SEEK_DATA/SEEK_HOLE):
 * pages a memfd never had written, or holes of a sparse file, are skipped. */
static int data_ranges(int fd, uint64_t size, int (*fn)(void *, uint64_t, uint64_t), void *arg)
{
	off_t off = 0;

	while ((uint64_t)off < size) {
		off_t d = lseek(fd, off, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			return 0;
		if (d < 0)
			return hearth_err("guest RAM: SEEK_DATA: %s", strerror(errno));
		if ((uint64_t)d >= size)
			return 0;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			return hearth_err("guest RAM: SEEK_HOLE: %s", strerror(errno));
		if ((uint64_t)h > size)
			h = (off_t)size;
		if (fn(arg, (uint64_t)d, (uint64_t)h) < 0)
			return -1;
		off = h;
	}
	return 0;
}

static int range_write(void *arg, uint64_t start, uint64_t end)
{
	return write_range(arg, start, end);
}

static int range_mark(void *arg, uint64_t start, uint64_t end)
{
	uint8_t *bits = arg;

	for (uint64_t p = start / page; p < (end + page - 1) / page; p++)
		bits[p / 8] |= (uint8_t)(1u << (p % 8));
	return 0;
}

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)

/* A VM restored from a checkpoint has its RAM mapped private from the old memory file: a
 * page is either still the file's (its content is in the old file's data, or zero in a
 * hole) or the guest wrote it and it became anonymous (pagemap: present and not a file
 * page, or swapped out). Both sets are written, read through the mapping. */
static int save_private(struct mem_out *mo, int src_fd)
{
	uint64_t npages = mo->size / page;
	uint8_t *bits = calloc(npages / 8 + 1, 1);
	uint64_t buf[8192];
	int pm = -1, ret = -1;

	if (!bits)
		return hearth_err("out of memory");
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0) {
		hearth_err("guest RAM: /proc/self/pagemap: %s", strerror(errno));
		goto out;
	}
	for (uint64_t p = 0; p < npages;) {
		uint64_t n = npages - p < 8192 ? npages - p : 8192;
		off_t at = (off_t)(((uintptr_t)mo->ram / page + p) * sizeof(uint64_t));
		ssize_t r = pread(pm, buf, n * sizeof(uint64_t), at);
		if (r <= 0 || r % sizeof(uint64_t)) {
			hearth_err("guest RAM: reading /proc/self/pagemap: %s",
				   r < 0 ? strerror(errno) : "short read");
			goto out;
		}
		n = (uint64_t)r / sizeof(uint64_t);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t e = buf[i];
			if (((e & PM_PRESENT) && !(e & PM_FILE)) || (e & PM_SWAPPED))
				bits[(p + i) / 8] |= (uint8_t)(1u << ((p + i) % 8));
		}
		p += n;
	}
	if (data_ranges(src_fd, mo->size, range_mark, bits) < 0)
		goto out;
	for (uint64_t p = 0; p < npages;) {
		if (!(bits[p / 8] & (1u << (p % 8)))) {
			p++;
			continue;
		}
		uint64_t q = p + 1;
		while (q < npages && (bits[q / 8] & (1u << (q % 8))))
			q++;
		if (write_range(mo, p * page, q * page) < 0)
			goto out;
		p = q;
	}
	ret = 0;
out:
	if (pm >= 0)
		close(pm);
	free(bits);
	return ret;
}

static void trailer_fill(struct mem_trailer *t, uint64_t ram_size, const uint8_t *id)
{
	memset(t, 0, sizeof(*t));
	memcpy(t->magic, MEM_MAGIC, 8);
	t->version = MEM_TRAILER_VERSION;
	t->len = sizeof(*t);
	t->ram_size = ram_size;
	memcpy(t->id, id, VMSNAP_ID_LEN);
	t->crc = crc32c(0, t, offsetof(struct mem_trailer, crc));
}

static int save_memory(struct vm *vm, const char *tmpdir, const uint8_t *id, uint64_t *written)
{
	char path[4200];
	uint8_t *tail = aligned_alloc(page, VMSNAP_MEM_TRAILER);
	struct mem_out mo = {.ram = vm->ram, .size = vm->cfg->memory};
	int ret = -1;

	if (!tail)
		return hearth_err("out of memory");
	memset(tail, 0, VMSNAP_MEM_TRAILER);
	snprintf(path, sizeof(path), "%s/memory", tmpdir);
	/* Direct I/O: guest RAM goes to the disk without passing through the page cache first,
	 * several times faster than buffered writes plus fsync (docs/performance.md). Every
	 * write is page-aligned in memory and in the file. Filesystems without it: buffered. */
	mo.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0600);
	if (mo.fd < 0 && errno == EINVAL)
		mo.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (mo.fd < 0) {
		free(tail);
		return hearth_err("memory file '%s': %s", path, strerror(errno));
	}
	if (ftruncate(mo.fd, (off_t)(mo.size + VMSNAP_MEM_TRAILER)) < 0) {
		hearth_err("memory file: cannot size it: %s", strerror(errno));
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &mo.start);
	struct stat st;
	if (vm->memfd >= 0 && fstat(vm->memfd, &st) == 0)
		mo.expected = (uint64_t)st.st_blocks * 512; /* the memfd's pages with data */
	if (vm->memfd >= 0)
		ret = data_ranges(vm->memfd, mo.size, range_write, &mo);
	else
		ret = save_private(&mo, vm->mem_src_fd);
	if (ret < 0)
		goto out;
	ret = -1;
	trailer_fill((struct mem_trailer *)tail, mo.size, id);
	if (pwrite(mo.fd, tail, VMSNAP_MEM_TRAILER, (off_t)mo.size) != VMSNAP_MEM_TRAILER) {
		hearth_err("memory file: writing the trailer: %s", strerror(errno));
		goto out;
	}
	if (fsync(mo.fd) < 0) {
		hearth_err("memory file: fsync: %s", strerror(errno));
		goto out;
	}
	*written = mo.written;
	ret = 0;
out:
	close(mo.fd);
	free(tail);
	return ret;
}

/* ---- contexts ---- */

static int put_config(struct vm *vm, struct hearth_ckpt_writer *w)
{
	struct hearth_ckpt *ck;
	const char *json = json_object_to_json_string_ext(vm->cfg->root, JSON_C_TO_STRING_PLAIN);

	if (hearth_ckpt_open_ctx(w, "config", CONFIG_CTX_VERSION, 0, &ck) < 0 ||
	    hearth_ckpt_put_bytes(ck, "json", json, strlen(json)) < 0)
		return -1;
	return hearth_ckpt_close_ctx(ck);
}

static int put_vm(struct vm *vm, struct hearth_ckpt_writer *w, const uint8_t *id)
{
	struct kvm_vm_state st;
	struct hearth_ckpt *ck;

	if (kvm_vm_get_state(vm->vmfd, &st) < 0 ||
	    hearth_ckpt_open_ctx(w, "vm", VM_CTX_VERSION, 0, &ck) < 0)
		return -1;
	if (hearth_ckpt_put_u64(ck, "memory.size", vm->cfg->memory) < 0 ||
	    hearth_ckpt_put_bytes(ck, "memory.id", id, VMSNAP_ID_LEN) < 0 ||
	    hearth_ckpt_put_u32(ck, "cpus", vm->ncpus) < 0 ||
	    hearth_ckpt_put_bytes(ck, "pic.master", &st.pic_master, sizeof(st.pic_master)) < 0 ||
	    hearth_ckpt_put_bytes(ck, "pic.slave", &st.pic_slave, sizeof(st.pic_slave)) < 0 ||
	    hearth_ckpt_put_bytes(ck, "ioapic", &st.ioapic, sizeof(st.ioapic)) < 0 ||
	    hearth_ckpt_put_bytes(ck, "pit", &st.pit, sizeof(st.pit)) < 0 ||
	    hearth_ckpt_put_u64(ck, "clock", st.clock.clock) < 0)
		return -1;
	return hearth_ckpt_close_ctx(ck);
}

static int put_vcpu(struct vm *vm, struct vcpu *c, struct hearth_ckpt_writer *w,
		    struct kvm_vcpu_state *st)
{
	char name[32];
	struct hearth_ckpt *ck;
	uint32_t idx[KVM_STATE_MAX_MSRS];
	uint64_t val[KVM_STATE_MAX_MSRS];

	if (kvm_vcpu_get_state(&vm->kvm, &c->kvm, st) < 0)
		return hearth_err_prefix("vCPU %u", c->id);
	for (uint32_t i = 0; i < st->nmsrs; i++) {
		idx[i] = st->msrs[i].index;
		val[i] = st->msrs[i].data;
	}
	snprintf(name, sizeof(name), "vcpu/%u", c->id);
	if (hearth_ckpt_open_ctx(w, name, VCPU_CTX_VERSION, 0, &ck) < 0)
		return -1;
	if (hearth_ckpt_put_u32(ck, "mp_state", st->mp.mp_state) < 0 ||
	    hearth_ckpt_put_bytes(ck, "regs", &st->regs, sizeof(st->regs)) < 0 ||
	    hearth_ckpt_put_bytes(ck, "sregs", &st->sregs, sizeof(st->sregs)) < 0 ||
	    hearth_ckpt_put_bytes(ck, "xsave", &st->xsave, sizeof(st->xsave)) < 0 ||
	    hearth_ckpt_put_bytes(ck, "xcrs", &st->xcrs, sizeof(st->xcrs)) < 0 ||
	    hearth_ckpt_put_bytes(ck, "debugregs", &st->debugregs, sizeof(st->debugregs)) < 0 ||
	    hearth_ckpt_put_bytes(ck, "lapic", &st->lapic, sizeof(st->lapic)) < 0 ||
	    hearth_ckpt_put_bytes(ck, "events", &st->events, sizeof(st->events)) < 0 ||
	    hearth_ckpt_put_u32_array(ck, "msr.index", idx, st->nmsrs) < 0 ||
	    hearth_ckpt_put_u64_array(ck, "msr.data", val, st->nmsrs) < 0 ||
	    hearth_ckpt_put_bytes(ck, "cpuid", st->cpuid, st->ncpuid * sizeof(st->cpuid[0])) < 0)
		return -1;
	return hearth_ckpt_close_ctx(ck);
}

/* ---- the checkpoint directory ---- */

/* What a checkpoint directory may hold: its two files and the store's hidden temporaries. */
static bool ckpt_entry(const char *n)
{
	return !strcmp(n, "state") || !strcmp(n, "memory") ||
	       (n[0] == '.' &&
		(strncmp(n, ".state.tmp-", 11) == 0 || strncmp(n, ".memory.tmp-", 12) == 0));
}

/* 1 when dir exists holding nothing but checkpoint files, 0 when it does not exist; refuses
 * anything else, so a mistyped path never has a user's files swapped away. */
static int replaceable(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d) {
		if (errno == ENOENT)
			return 0;
		return hearth_err("checkpoint directory '%s': %s", dir, strerror(errno));
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!ckpt_entry(e->d_name)) {
			closedir(d);
			return hearth_err("'%s' exists and holds '%s': not a checkpoint directory, "
					  "refusing to replace it",
					  dir, e->d_name);
		}
	}
	closedir(d);
	return 1;
}

static void remove_ckpt_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (ckpt_entry(e->d_name))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		hearth_log("cannot remove '%s': %s", dir, strerror(errno));
}

static void fsync_parent(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	char *slash = strrchr(buf, '/');
	const char *parent = slash ? (slash == buf ? "/" : (*slash = 0, buf)) : ".";
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* The finished tmp directory takes dir's place: renamed when dir is new, exchanged with
 * it atomically otherwise (the old checkpoint, now under the tmp name, is then removed). */
static int swap_in(const char *tmp, const char *dir, bool exists)
{
	if (!exists) {
		if (rename(tmp, dir) < 0)
			return hearth_err("cannot rename '%s' to '%s': %s", tmp, dir,
					  strerror(errno));
	} else {
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) < 0)
			return hearth_err("cannot replace '%s' (exchanging it with '%s'): %s", dir,
					  tmp, strerror(errno));
	}
	fsync_parent(dir);
	if (exists)
		remove_ckpt_dir(tmp);
	return 0;
}

static void strip_slashes(char *s)
{
	size_t n = strlen(s);

	while (n > 1 && s[n - 1] == '/')
		s[--n] = 0;
}

static int quiesce_devices(struct vm *vm)
{
	for (struct hearth_dev *d = vm->m.devs; d; d = d->next)
		if (d->cls->quiesce && d->cls->quiesce(d) < 0)
			return hearth_err_prefix("device '%s' (%s): cannot stop its I/O", d->id,
						 d->cls->name);
	return 0;
}

/* Every device, whether its quiesce ran or not (the op is harmless then): what a device held
 * back while the state was saved starts now. */
static void unquiesce_devices(struct vm *vm)
{
	for (struct hearth_dev *d = vm->m.devs; d; d = d->next)
		if (d->cls->unquiesce)
			d->cls->unquiesce(d);
}

static int save_quiesced(struct vm *vm, const char *dir, const struct timespec *t0);

int vm_snapshot(struct vm *vm, const char *dir_arg)
{
	char dir[4000];
	struct timespec t0;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!dir_arg || !*dir_arg || strlen(dir_arg) >= sizeof(dir))
		return hearth_err("snapshot: a directory name is needed (at most %zu bytes)",
				  sizeof(dir) - 1);
	snprintf(dir, sizeof(dir), "%s", dir_arg);
	strip_slashes(dir);
	if (kvm_state_init(&vm->kvm) < 0)
		return -1;
	vm_pause(vm);
	/* a VM without a save op anywhere fails before anything is written */
	for (struct hearth_dev *d = vm->m.devs; d; d = d->next)
		if (!d->cls->save || !d->cls->load)
			return hearth_err("device '%s' (%s) cannot be checkpointed: no %s op",
					  d->id, d->cls->name, d->cls->save ? "load" : "save");
	ret = quiesce_devices(vm);
	if (ret == 0)
		ret = save_quiesced(vm, dir, &t0);
	unquiesce_devices(vm);
	return ret;
}

static int save_quiesced(struct vm *vm, const char *dir, const struct timespec *t0)
{
	struct hearth_ckpt_writer *w = NULL;
	struct kvm_vcpu_state *st = NULL;
	uint8_t id[VMSNAP_ID_LEN];
	char tmp[4032];
	uint64_t written = 0;
	int exists, ret = -1;

	exists = replaceable(dir);
	if (exists < 0)
		return -1;
	if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id))
		return hearth_err("snapshot: getrandom: %s", strerror(errno));
	snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", dir);
	if (!mkdtemp(tmp))
		return hearth_err("snapshot: cannot create '%s': %s", tmp, strerror(errno));
	st = malloc(sizeof(*st));
	if (!st) {
		hearth_err("out of memory");
		goto out;
	}
	if (save_memory(vm, tmp, id, &written) < 0 || hearth_ckpt_writer_new(tmp, &w) < 0 ||
	    put_config(vm, w) < 0 || put_vm(vm, w, id) < 0)
		goto out;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (put_vcpu(vm, &vm->vcpus[i], w, st) < 0)
			goto out;
	if (ckpt_save_devices(&vm->m, w) < 0 || hearth_ckpt_writer_finish(w) < 0 ||
	    swap_in(tmp, dir, exists) < 0)
		goto out;
	tmp[0] = 0;
	if (getenv("HEARTH_SNAPSHOT_VERBOSE"))
		hearth_log("snapshot '%s': %llu MiB of guest RAM written, %.1f ms", dir,
			   (unsigned long long)(written >> 20), ms_since(t0));
	ret = 0;
out:
	if (ret < 0)
		hearth_err_prefix("snapshot to '%s'", dir);
	if (tmp[0])
		remove_ckpt_dir(tmp);
	hearth_ckpt_writer_free(w);
	free(st);
	return ret;
}

/* ---- restore ---- */

static int get_vcpu(struct hearth_ckpt_reader *r, unsigned i, struct kvm_vcpu_state *st)
{
	char name[32];
	struct hearth_ckpt *ck;
	uint32_t idx[KVM_STATE_MAX_MSRS];
	uint64_t val[KVM_STATE_MAX_MSRS];
	size_t ni, nv, ncpuid;

	memset(st, 0, sizeof(*st));
	snprintf(name, sizeof(name), "vcpu/%u", i);
	if (hearth_ckpt_find_ctx(r, name, VCPU_CTX_VERSION, VCPU_CTX_VERSION, &ck) < 0 ||
	    hearth_ckpt_get_u32(ck, "mp_state", &st->mp.mp_state) < 0 ||
	    hearth_ckpt_get_bytes(ck, "regs", &st->regs, sizeof(st->regs), NULL) < 0 ||
	    hearth_ckpt_get_bytes(ck, "sregs", &st->sregs, sizeof(st->sregs), NULL) < 0 ||
	    hearth_ckpt_get_bytes(ck, "xsave", &st->xsave, sizeof(st->xsave), NULL) < 0 ||
	    hearth_ckpt_get_bytes(ck, "xcrs", &st->xcrs, sizeof(st->xcrs), NULL) < 0 ||
	    hearth_ckpt_get_bytes(ck, "debugregs", &st->debugregs, sizeof(st->debugregs), NULL) <
		    0 ||
	    hearth_ckpt_get_bytes(ck, "lapic", &st->lapic, sizeof(st->lapic), NULL) < 0 ||
	    hearth_ckpt_get_bytes(ck, "events", &st->events, sizeof(st->events), NULL) < 0 ||
	    hearth_ckpt_get_u32_array(ck, "msr.index", idx, KVM_STATE_MAX_MSRS, &ni) < 0 ||
	    hearth_ckpt_get_u64_array(ck, "msr.data", val, KVM_STATE_MAX_MSRS, &nv) < 0 ||
	    hearth_ckpt_get_bytes(ck, "cpuid", st->cpuid, sizeof(st->cpuid), &ncpuid) < 0)
		return -1;
	if (ni != nv)
		return hearth_err("checkpoint context '%s': key 'msr.data': %zu values for %zu "
				  "MSRs in 'msr.index'",
				  name, nv, ni);
	if (ncpuid % sizeof(st->cpuid[0]) || ncpuid == 0)
		return hearth_err("checkpoint context '%s': key 'cpuid': %zu bytes is not a "
				  "whole number of CPUID entries",
				  name, ncpuid);
	st->ncpuid = (uint32_t)(ncpuid / sizeof(st->cpuid[0]));
	st->nmsrs = (uint32_t)ni;
	for (size_t k = 0; k < ni; k++)
		st->msrs[k] = (struct kvm_msr_entry){.index = idx[k], .data = val[k]};
	return hearth_ckpt_close_ctx(ck);
}

struct vm_ctx {
	uint64_t mem_size;
	uint8_t id[VMSNAP_ID_LEN];
	uint32_t cpus;
	struct kvm_vm_state kst;
};

static int get_vm(struct hearth_ckpt_reader *r, struct vm_ctx *v)
{
	struct hearth_ckpt *ck;
	uint64_t clock;

	memset(v, 0, sizeof(*v));
	if (hearth_ckpt_find_ctx(r, "vm", VM_CTX_VERSION, VM_CTX_VERSION, &ck) < 0 ||
	    hearth_ckpt_get_u64(ck, "memory.size", &v->mem_size) < 0 ||
	    hearth_ckpt_get_bytes(ck, "memory.id", v->id, sizeof(v->id), NULL) < 0 ||
	    hearth_ckpt_get_u32(ck, "cpus", &v->cpus) < 0 ||
	    hearth_ckpt_get_bytes(ck, "pic.master", &v->kst.pic_master, sizeof(v->kst.pic_master),
				  NULL) < 0 ||
	    hearth_ckpt_get_bytes(ck, "pic.slave", &v->kst.pic_slave, sizeof(v->kst.pic_slave),
				  NULL) < 0 ||
	    hearth_ckpt_get_bytes(ck, "ioapic", &v->kst.ioapic, sizeof(v->kst.ioapic), NULL) < 0 ||
	    hearth_ckpt_get_bytes(ck, "pit", &v->kst.pit, sizeof(v->kst.pit), NULL) < 0 ||
	    hearth_ckpt_get_u64(ck, "clock", &clock) < 0)
		return -1;
	v->kst.clock.clock = clock;
	if (v->kst.pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER ||
	    v->kst.pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
	    v->kst.ioapic.chip_id != KVM_IRQCHIP_IOAPIC)
		return hearth_err("checkpoint context 'vm': keys 'pic.master', 'pic.slave', "
				  "'ioapic': wrong chip ids");
	return hearth_ckpt_close_ctx(ck);
}

/* The saved configuration, with the restore's own choices applied. */
static int get_config(struct hearth_ckpt_reader *r, const char *dir,
		      const struct vm_restore_opts *opts, struct vm_config *cfg)
{
	struct hearth_ckpt *ck;
	const void *text;
	size_t len;
	char where[4200];

	if (hearth_ckpt_find_ctx(r, "config", CONFIG_CTX_VERSION, CONFIG_CTX_VERSION, &ck) < 0)
		return -1;
	if (hearth_ckpt_get_blob(ck, "json", &text, &len) < 0)
		return -1;
	struct json_tokener *tok = json_tokener_new();
	struct json_object *tree = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
	bool whole = tok && json_tokener_get_error(tok) == json_tokener_success &&
		     json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	if (!tree || !whole || !json_object_is_type(tree, json_type_object)) {
		json_object_put(tree);
		return hearth_err("checkpoint context 'config': key 'json' is not a JSON object");
	}
	if (hearth_ckpt_close_ctx(ck) < 0) {
		json_object_put(tree);
		return -1;
	}
	if (opts && opts->serial)
		json_object_object_add(tree, "serial", json_object_new_string(opts->serial));
	snprintf(where, sizeof(where), "checkpoint '%s' config", dir);
	int ret = vmconfig_finish(tree, where, cfg);
	json_object_put(tree);
	if (ret < 0)
		return -1;
	/* the guest's output continues where it stopped instead of replacing the file */
	for (size_t i = 0; i < json_object_array_length(cfg->devices); i++) {
		struct json_object *d = json_object_array_get_idx(cfg->devices, i), *cls;
		if (json_object_object_get_ex(d, "class", &cls) &&
		    !strcmp(json_object_get_string(cls), "char-file"))
			json_object_object_add(d, "append", json_object_new_boolean(true));
	}
	return 0;
}

/* The memory file: the size the state says plus the trailer, whose id must be the state's.
 * Returns the open file. */
static int open_memory(const char *dir, const struct vm_ctx *v)
{
	char path[4200];
	struct mem_trailer t, want;
	struct stat sb;
	int fd;

	snprintf(path, sizeof(path), "%s/memory", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hearth_err("memory file '%s': %s", path, strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		hearth_err("memory file '%s': not a regular file", path);
		goto fail;
	}
	if ((uint64_t)sb.st_size != v->mem_size + VMSNAP_MEM_TRAILER) {
		hearth_err("memory file '%s' has %llu bytes, but checkpoint context 'vm' key "
			   "'memory.size' says %llu (+ %u of trailer)",
			   path, (unsigned long long)sb.st_size, (unsigned long long)v->mem_size,
			   VMSNAP_MEM_TRAILER);
		goto fail;
	}
	if (pread(fd, &t, sizeof(t), (off_t)v->mem_size) != (ssize_t)sizeof(t)) {
		hearth_err("memory file '%s': cannot read its trailer: %s", path, strerror(errno));
		goto fail;
	}
	trailer_fill(&want, v->mem_size, v->id);
	if (memcmp(t.magic, MEM_MAGIC, 8) != 0 ||
	    t.crc != crc32c(0, &t, offsetof(struct mem_trailer, crc))) {
		hearth_err("memory file '%s': its trailer is damaged", path);
		goto fail;
	}
	if (memcmp(&t, &want, sizeof(t)) != 0) {
		hearth_err(
			"memory file '%s' belongs to another checkpoint (its id is not checkpoint "
			"context 'vm' key 'memory.id')",
			path);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int vm_restore(struct vm *vm, const char *dir, const struct vm_restore_opts *opts,
	       struct vm_config *cfg, bool *created)
{
	struct hearth_ckpt_reader *r = NULL;
	struct kvm_vcpu_state *st = NULL;
	struct vm_ctx *v = NULL;
	int memfd = -1, ret = EXIT_CONFIG;

	*created = false;
	memset(cfg, 0, sizeof(*cfg));
	if (hearth_ckpt_reader_open(dir, &r) < 0 || get_config(r, dir, opts, cfg) < 0)
		goto out;
	v = malloc(sizeof(*v));
	if (!v || get_vm(r, v) < 0)
		goto out;
	if (v->cpus != cfg->cpus || v->mem_size != cfg->memory) {
		hearth_err("checkpoint context 'vm': keys 'cpus' and 'memory.size' (%u, %llu) "
			   "do not match the saved configuration (%u, %llu)",
			   v->cpus, (unsigned long long)v->mem_size, cfg->cpus,
			   (unsigned long long)cfg->memory);
		goto out;
	}
	st = calloc(cfg->cpus, sizeof(*st));
	if (!st) {
		hearth_err("out of memory");
		ret = EXIT_HOST;
		goto out;
	}
	for (unsigned i = 0; i < cfg->cpus; i++)
		if (get_vcpu(r, i, &st[i]) < 0)
			goto out;
	memfd = open_memory(dir, v);
	if (memfd < 0)
		goto out;
	*created = true;
	ret = vm_create_restored(vm, cfg, memfd);
	memfd = -1; /* the VM's now */
	if (ret)
		goto out;
	ret = EXIT_CONFIG;
	if (ckpt_load_devices(&vm->m, r) < 0 || hearth_ckpt_reader_check_all_consumed(r) < 0)
		goto out;
	ret = EXIT_HOST;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (kvm_vcpu_set_state(&vm->vcpus[i].kvm, &st[i]) < 0) {
			hearth_err_prefix("restoring vCPU %u", i);
			goto out;
		}
	if (kvm_vm_set_state(vm->vmfd, &v->kst) < 0) {
		hearth_err_prefix("restoring the interrupt controllers, PIT and clock");
		goto out;
	}
	ret = 0;
out:
	if (memfd >= 0)
		close(memfd);
	if (ret && !strstr(hearth_err_msg(), dir))
		hearth_err_prefix("restoring '%s'", dir);
	hearth_ckpt_reader_free(r);
	free(st);
	free(v);
	return ret;
}

/* ---- the signal trigger ---- */

void vmsnap_on_signal(struct vm *vm)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (vm_snapshot(vm, vm->snap_sig_dir) < 0) {
		hearth_log("%s", hearth_err_msg());
		vm_resume(vm);
		return;
	}
	hearth_log("snapshot saved to '%s' (%.1f ms)", vm->snap_sig_dir, ms_since(&t0));
	if (vm->snap_sig_then == VMSNAP_THEN_STOP)
		vm_stop(vm, EXIT_GUEST_OK);
	else if (vm->snap_sig_then == VMSNAP_THEN_RESUME)
		vm_resume(vm);
}

int vmsnap_signal_setup(struct vm *vm, const char *spec)
{
	static char dir[4096];
	const char *comma = strrchr(spec, ',');
	size_t n = comma ? (size_t)(comma - spec) : strlen(spec);

	if (n == 0 || n >= sizeof(dir))
		return hearth_err(
			"HEARTH_SNAPSHOT_ON_SIGUSR2 '%s': expected DIR[,resume|stop|pause]", spec);
	memcpy(dir, spec, n);
	dir[n] = 0;
	vm->snap_sig_then = VMSNAP_THEN_RESUME;
	if (comma && !strcmp(comma + 1, "stop"))
		vm->snap_sig_then = VMSNAP_THEN_STOP;
	else if (comma && !strcmp(comma + 1, "pause"))
		vm->snap_sig_then = VMSNAP_THEN_PAUSE;
	else if (comma && strcmp(comma + 1, "resume"))
		return hearth_err(
			"HEARTH_SNAPSHOT_ON_SIGUSR2 '%s': expected DIR[,resume|stop|pause]", spec);
	vm->snap_sig_dir = dir;
	return 0;
}
