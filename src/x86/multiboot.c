#include "hearth/le.h"
#include "x86/multiboot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dev/machine.h"
#include "hearth/error.h"
#include "hearth/guestmem.h"
#include "x86/memmap.h"

#define EM_386 3
#define EM_X86_64 62
#define ET_EXEC 2
#define PT_LOAD 1
#define ELFCLASS32 1
#define ELFCLASS64 2
#define ELFDATA2LSB 1
#define EHDR32_SIZE 52
#define EHDR64_SIZE 64
#define PHDR32_SIZE 32
#define PHDR64_SIZE 56

#define KLUDGE_HEADER_SIZE 32
#define BASE_HEADER_SIZE 12

/* Where the information structure's parts sit inside the boot information area. */
#define AREA_MMAP_OFF 128u

struct mb_file {
	const char *path;
	int fd;
	uint64_t size;
};

struct mb_seg {
	uint64_t dst, off, filesz, memsz;
	uint64_t vaddr; /* for turning a virtual e_entry into a physical one */
};

struct mb_image {
	struct mb_seg seg[MULTIBOOT_MAX_SEGMENTS];
	unsigned nseg;
	uint32_t entry;
	uint64_t low_top;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* what: "kernel" or "module", for the messages. */
static int file_open(struct mb_file *f, const char *path, const char *what, bool allow_empty)
{
	struct stat st;

	f->path = path;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return hearth_err("%s: cannot open %s: %s", path, what, strerror(errno));
	if (fstat(f->fd, &st) < 0) {
		hearth_err("%s: cannot stat %s: %s", path, what, strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		hearth_err("%s: %s is a directory", path, what);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		hearth_err("%s: %s is not a regular file", path, what);
		goto fail;
	}
	if (st.st_size == 0 && !allow_empty) {
		hearth_err("%s: %s file is empty", path, what);
		goto fail;
	}
	f->size = (uint64_t)st.st_size;
	return 0;
fail:
	close(f->fd);
	f->fd = -1;
	return -1;
}

static void file_close(struct mb_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* Callers have checked that [off, off+len) lies inside the size seen at open; a short read
 * here means the file changed under us. */
static int file_read(struct mb_file *f, uint64_t off, void *buf, uint64_t len)
{
	uint8_t *p = buf;

	while (len) {
		size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t r = pread(f->fd, p, chunk, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return hearth_err("%s: read error at offset %llu: %s", f->path,
					  (unsigned long long)off, strerror(errno));
		if (r == 0)
			return hearth_err("%s: file shrank while loading (offset %llu)", f->path,
					  (unsigned long long)off);
		p += r;
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

/* [off, off+len) inside a file of size bytes, without wrapping. */
static bool in_file(uint64_t size, uint64_t off, uint64_t len)
{
	return off <= size && len <= size - off;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* ---- header ---- */

struct mb_header {
	uint64_t off; /* in the file */
	uint32_t flags;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

static int find_header(struct mb_file *f, struct mb_header *h)
{
	uint8_t buf[MULTIBOOT_SEARCH];
	uint64_t n = f->size < MULTIBOOT_SEARCH ? f->size : MULTIBOOT_SEARCH;
	bool bad_sum = false;

	if (file_read(f, 0, buf, n))
		return -1;
	for (uint64_t off = 0; off + BASE_HEADER_SIZE <= n; off += 4) {
		uint32_t magic = le_get32(buf + off), flags = le_get32(buf + off + 4);

		if (magic != MULTIBOOT_HEADER_MAGIC)
			continue;
		if ((uint32_t)(magic + flags + le_get32(buf + off + 8)) != 0) {
			bad_sum = true;
			continue;
		}
		h->off = off;
		h->flags = flags;
		if (!(flags & MULTIBOOT_HF_AOUT_KLUDGE))
			return 0;
		if (off + KLUDGE_HEADER_SIZE > n)
			return hearth_err(
				"%s: multiboot header at offset %llu asks for load "
				"addresses (flags bit 16) but its address fields lie past "
				"the %s",
				f->path, (unsigned long long)off,
				n < MULTIBOOT_SEARCH ? "end of the file" : "first 8192 bytes");
		h->header_addr = le_get32(buf + off + 12);
		h->load_addr = le_get32(buf + off + 16);
		h->load_end_addr = le_get32(buf + off + 20);
		h->bss_end_addr = le_get32(buf + off + 24);
		h->entry_addr = le_get32(buf + off + 28);
		return 0;
	}
	if (bad_sum)
		return hearth_err("%s: multiboot header has a bad checksum", f->path);
	return hearth_err("%s: no multiboot header in the first 8192 bytes", f->path);
}

static int check_flags(struct mb_file *f, uint32_t flags)
{
	uint32_t required = flags & 0xFFFFu;

	if (required & MULTIBOOT_HF_VIDEO_MODE)
		return hearth_err("%s: kernel requires a video mode table (multiboot flags bit 2), "
				  "which hearth does not provide",
				  f->path);
	if (required & ~MULTIBOOT_HF_SUPPORTED)
		return hearth_err("%s: kernel requires unsupported multiboot features (flags "
				  "%#x, unsupported bits %#x)",
				  f->path, flags, required & ~MULTIBOOT_HF_SUPPORTED);
	return 0;
}

/* ---- images ---- */

static int image_from_kludge(struct mb_file *f, const struct mb_header *h, struct mb_image *img)
{
	uint64_t delta, off, filesz, memsz;

	if (h->load_addr > h->header_addr)
		return hearth_err("%s: multiboot load_addr %#x is above header_addr %#x", f->path,
				  h->load_addr, h->header_addr);
	delta = (uint64_t)h->header_addr - h->load_addr;
	if (delta > h->off)
		return hearth_err("%s: multiboot header_addr %#x and load_addr %#x would start "
				  "loading %llu bytes before the beginning of the file",
				  f->path, h->header_addr, h->load_addr,
				  (unsigned long long)(delta - h->off));
	off = h->off - delta;
	if (h->load_end_addr) {
		if (h->load_end_addr < h->load_addr)
			return hearth_err("%s: multiboot load_end_addr %#x is below load_addr %#x",
					  f->path, h->load_end_addr, h->load_addr);
		filesz = (uint64_t)h->load_end_addr - h->load_addr;
		if (!in_file(f->size, off, filesz))
			return hearth_err("%s: multiboot load_end_addr %#x needs %llu bytes from "
					  "offset %llu, past the end of the file (%llu bytes)",
					  f->path, h->load_end_addr, (unsigned long long)filesz,
					  (unsigned long long)off, (unsigned long long)f->size);
	} else {
		filesz = f->size - off;
	}
	if (delta + KLUDGE_HEADER_SIZE > filesz)
		return hearth_err("%s: multiboot header_addr %#x is not inside the loaded image "
				  "%#x..%#llx",
				  f->path, h->header_addr, h->load_addr,
				  (unsigned long long)(h->load_addr + filesz));
	memsz = filesz;
	if (h->bss_end_addr) {
		if (h->bss_end_addr < h->load_addr + filesz)
			return hearth_err("%s: multiboot bss_end_addr %#x is below the end of the "
					  "loaded image %#llx",
					  f->path, h->bss_end_addr,
					  (unsigned long long)(h->load_addr + filesz));
		memsz = (uint64_t)h->bss_end_addr - h->load_addr;
	}
	if (h->entry_addr < h->load_addr || h->entry_addr - h->load_addr >= filesz)
		return hearth_err("%s: multiboot entry_addr %#x is outside the loaded image "
				  "%#x..%#llx",
				  f->path, h->entry_addr, h->load_addr,
				  (unsigned long long)(h->load_addr + filesz));
	img->seg[0] = (struct mb_seg){h->load_addr, off, filesz, memsz, h->load_addr};
	img->nseg = 1;
	img->entry = h->entry_addr;
	return 0;
}

static int image_from_elf(struct mb_file *f, struct mb_image *img)
{
	uint8_t eh[EHDR64_SIZE], ph[PHDR64_SIZE];
	uint64_t entry, phoff, phsize;
	unsigned phentsize, phnum, cls;

	if (f->size < 4 || file_read(f, 0, eh, 4))
		return hearth_err("%s: not an ELF file, and the multiboot header gives no load "
				  "addresses (flags bit 16)",
				  f->path);
	if (memcmp(eh, "\177ELF", 4))
		return hearth_err("%s: not an ELF file, and the multiboot header gives no load "
				  "addresses (flags bit 16)",
				  f->path);
	if (f->size < EHDR32_SIZE || file_read(f, 0, eh, EHDR32_SIZE))
		return f->size < EHDR32_SIZE ? hearth_err("%s: ELF header is truncated", f->path)
					     : -1;
	cls = eh[4];
	if (cls != ELFCLASS32 && cls != ELFCLASS64)
		return hearth_err("%s: unsupported ELF class %u", f->path, cls);
	if (eh[5] != ELFDATA2LSB)
		return hearth_err("%s: ELF file is not little-endian", f->path);
	if (cls == ELFCLASS64) {
		if (f->size < EHDR64_SIZE)
			return hearth_err("%s: ELF header is truncated", f->path);
		if (file_read(f, 0, eh, EHDR64_SIZE))
			return -1;
	}
	if (le_get16(eh + 16) != ET_EXEC)
		return hearth_err("%s: ELF file is not an executable (e_type %u)", f->path,
				  le_get16(eh + 16));
	if (cls == ELFCLASS32 && le_get16(eh + 18) != EM_386)
		return hearth_err("%s: ELF32 machine %u is not i386 (3)", f->path,
				  le_get16(eh + 18));
	if (cls == ELFCLASS64 && le_get16(eh + 18) != EM_X86_64)
		return hearth_err("%s: ELF64 machine %u is not x86-64 (62)", f->path,
				  le_get16(eh + 18));
	if (cls == ELFCLASS32) {
		entry = le_get32(eh + 24);
		phoff = le_get32(eh + 28);
		phentsize = le_get16(eh + 42);
		phnum = le_get16(eh + 44);
	} else {
		entry = le_get64(eh + 24);
		phoff = le_get64(eh + 32);
		phentsize = le_get16(eh + 54);
		phnum = le_get16(eh + 56);
		if (entry >> 32)
			return hearth_err("%s: ELF64 entry point %#llx is not below 4 GiB (the CPU "
					  "starts in 32-bit mode)",
					  f->path, (unsigned long long)entry);
	}
	if (phentsize < (cls == ELFCLASS32 ? PHDR32_SIZE : PHDR64_SIZE))
		return hearth_err("%s: ELF program header size %u is too small", f->path,
				  phentsize);
	if (phnum == 0)
		return hearth_err("%s: ELF file has no program headers", f->path);
	phsize = (uint64_t)phentsize * phnum;
	if (!in_file(f->size, phoff, phsize))
		return hearth_err("%s: ELF program header table (offset %llu, %u entries) extends "
				  "past the end of the file (%llu bytes)",
				  f->path, (unsigned long long)phoff, phnum,
				  (unsigned long long)f->size);

	img->nseg = 0;
	for (unsigned i = 0; i < phnum; i++) {
		struct mb_seg s;

		if (file_read(f, phoff + (uint64_t)i * phentsize, ph,
			      cls == ELFCLASS32 ? PHDR32_SIZE : PHDR64_SIZE))
			return -1;
		if (le_get32(ph) != PT_LOAD)
			continue;
		if (cls == ELFCLASS32)
			s = (struct mb_seg){.off = le_get32(ph + 4),
					    .vaddr = le_get32(ph + 8),
					    .dst = le_get32(ph + 12),
					    .filesz = le_get32(ph + 16),
					    .memsz = le_get32(ph + 20)};
		else
			s = (struct mb_seg){.off = le_get64(ph + 8),
					    .vaddr = le_get64(ph + 16),
					    .dst = le_get64(ph + 24),
					    .filesz = le_get64(ph + 32),
					    .memsz = le_get64(ph + 40)};
		if (s.filesz > s.memsz)
			return hearth_err("%s: ELF segment %u has p_filesz %#llx larger than "
					  "p_memsz %#llx",
					  f->path, i, (unsigned long long)s.filesz,
					  (unsigned long long)s.memsz);
		if (!in_file(f->size, s.off, s.filesz))
			return hearth_err("%s: ELF segment %u (offset %llu, %llu bytes) extends "
					  "past the end of the file (%llu bytes)",
					  f->path, i, (unsigned long long)s.off,
					  (unsigned long long)s.filesz,
					  (unsigned long long)f->size);
		if (s.memsz == 0)
			continue;
		if (img->nseg == MULTIBOOT_MAX_SEGMENTS)
			return hearth_err("%s: ELF file has more than %d loadable segments",
					  f->path, MULTIBOOT_MAX_SEGMENTS);
		img->seg[img->nseg++] = s;
	}
	if (img->nseg == 0)
		return hearth_err("%s: ELF file has no loadable segments", f->path);

	/* e_entry is usually physical; a higher-half kernel may give a virtual one, which we
	 * translate through the segment containing it */
	for (unsigned i = 0; i < img->nseg; i++) {
		const struct mb_seg *s = &img->seg[i];

		if (entry >= s->dst && entry - s->dst < s->memsz) {
			img->entry = (uint32_t)entry;
			return 0;
		}
	}
	for (unsigned i = 0; i < img->nseg; i++) {
		const struct mb_seg *s = &img->seg[i];

		if (entry >= s->vaddr && entry - s->vaddr < s->memsz) {
			img->entry = (uint32_t)(s->dst + (entry - s->vaddr));
			return 0;
		}
	}
	return hearth_err("%s: ELF entry point %#llx is not inside any loadable segment", f->path,
			  (unsigned long long)entry);
}

/* Every destination: inside usable low RAM, clear of the boot information area and of the
 * other segments. */
static int check_segments(struct hearth_vm *vm, struct mb_file *f, struct mb_image *img)
{
	for (unsigned i = 0; i < img->nseg; i++) {
		const struct mb_seg *s = &img->seg[i];

		if (s->dst >= img->low_top || s->memsz > img->low_top - s->dst)
			return hearth_err("%s: segment %u at %#llx (%#llx bytes) is outside low "
					  "RAM (0..%#llx)",
					  f->path, i, (unsigned long long)s->dst,
					  (unsigned long long)s->memsz,
					  (unsigned long long)img->low_top);
		if (!memmap_is_usable(vm->ram_size, s->dst, s->memsz))
			return hearth_err("%s: segment %u at %#llx..%#llx overlaps the reserved "
					  "area %#llx..%#llx (EBDA, VGA, BIOS)",
					  f->path, i, (unsigned long long)s->dst,
					  (unsigned long long)(s->dst + s->memsz), MEMMAP_EBDA_BASE,
					  MEMMAP_BIOS_END);
		if (overlaps(s->dst, s->memsz, MULTIBOOT_INFO_BASE,
			     MULTIBOOT_INFO_END - MULTIBOOT_INFO_BASE))
			return hearth_err("%s: segment %u at %#llx..%#llx overlaps the boot "
					  "information area %#x..%#x",
					  f->path, i, (unsigned long long)s->dst,
					  (unsigned long long)(s->dst + s->memsz),
					  MULTIBOOT_INFO_BASE, MULTIBOOT_INFO_END);
		if (!hearth_gpa_ptr(vm, s->dst, s->memsz))
			return hearth_err("%s: segment %u at %#llx (%#llx bytes) is not backed by "
					  "guest RAM",
					  f->path, i, (unsigned long long)s->dst,
					  (unsigned long long)s->memsz);
		for (unsigned j = 0; j < i; j++) {
			const struct mb_seg *o = &img->seg[j];

			if (overlaps(s->dst, s->memsz, o->dst, o->memsz))
				return hearth_err(
					"%s: segments %u and %u overlap at %#llx", f->path, j, i,
					(unsigned long long)(s->dst > o->dst ? s->dst : o->dst));
		}
	}
	return 0;
}

/* Zero guest RAM. Whole pages are given back instead (MADV_REMOVE on the shared memfd RAM
 * reads back as zero): a 750 KiB bss then costs neither the time to write it (0.5 ms of a
 * 4.5 ms start, bench-startup) nor resident memory. Elsewhere (unit tests' heap RAM, a
 * private mapping) the advice fails and the bytes are written. */
static void zero_ram(uint8_t *p, uint64_t len)
{
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
	uintptr_t b = ((uintptr_t)p + len) & ~(uintptr_t)4095;

	if (b > a && madvise((void *)a, b - a, MADV_REMOVE) == 0) {
		memset(p, 0, a - (uintptr_t)p);
		memset((void *)b, 0, (uintptr_t)p + len - b);
		return;
	}
	memset(p, 0, len);
}

static int load_segments(struct hearth_vm *vm, struct mb_file *f, const struct mb_image *img)
{
	for (unsigned i = 0; i < img->nseg; i++) {
		const struct mb_seg *s = &img->seg[i];
		uint8_t *p = hearth_gpa_ptr(vm, s->dst, s->memsz);

		if (file_read(f, s->off, p, s->filesz))
			return -1;
		zero_ram(p + s->filesz, s->memsz - s->filesz);
	}
	return 0;
}

/* ---- boot information ---- */

struct mb_area {
	uint32_t mmap_off, mods_off, str_off, size;
};

static const char *mod_string(const struct multiboot_module *m)
{
	return m->string ? m->string : m->path;
}

static int plan_area(const char *cmdline, const struct multiboot_module *mods, unsigned nmods,
		     unsigned nmmap, struct mb_area *a)
{
	uint64_t size;

	if (nmods > MULTIBOOT_MAX_MODULES)
		return hearth_err("multiboot: %u modules given, at most %d are supported", nmods,
				  MULTIBOOT_MAX_MODULES);
	a->mmap_off = AREA_MMAP_OFF;
	a->mods_off = (uint32_t)align_up(a->mmap_off + nmmap * MULTIBOOT_MMAP_ENTRY_SIZE, 16);
	a->str_off = a->mods_off + nmods * MULTIBOOT_MOD_ENTRY_SIZE;
	size = a->str_off + strlen(cmdline) + 1 + sizeof(MULTIBOOT_LOADER_NAME);
	for (unsigned i = 0; i < nmods; i++)
		size += strlen(mod_string(&mods[i])) + 1;
	if (size > MULTIBOOT_INFO_END - MULTIBOOT_INFO_BASE)
		return hearth_err("multiboot: the command line and module strings need %llu bytes, "
				  "more than the %u-byte boot information area",
				  (unsigned long long)size,
				  MULTIBOOT_INFO_END - MULTIBOOT_INFO_BASE);
	a->size = (uint32_t)size;
	return 0;
}

static uint32_t put_string(uint8_t *area, uint32_t *off, const char *s)
{
	uint32_t at = *off;
	size_t n = strlen(s) + 1;

	memcpy(area + at, s, n);
	*off += (uint32_t)n;
	return MULTIBOOT_INFO_BASE + at;
}

static int load_modules(struct hearth_vm *vm, const struct multiboot_module *mods, unsigned nmods,
			uint64_t start, uint64_t low_top, uint8_t *list, uint64_t *end)
{
	uint64_t cur = start;

	for (unsigned i = 0; i < nmods; i++) {
		struct mb_file f;
		uint64_t at = align_up(cur, MEMMAP_PAGE_SIZE);
		uint8_t *p;

		if (!mods[i].path || !mods[i].path[0])
			return hearth_err("multiboot: module %u has no file name", i);
		if (file_open(&f, mods[i].path, "module", true))
			return -1;
		if (at >= low_top || f.size > low_top - at ||
		    !memmap_is_usable(vm->ram_size, at, f.size) ||
		    !(p = hearth_gpa_ptr(vm, at, f.size))) {
			file_close(&f);
			return hearth_err("%s: module of %llu bytes does not fit in guest RAM "
					  "(it would go at %#llx, low RAM ends at %#llx)",
					  mods[i].path, (unsigned long long)f.size,
					  (unsigned long long)at, (unsigned long long)low_top);
		}
		if (file_read(&f, 0, p, f.size)) {
			file_close(&f);
			return -1;
		}
		file_close(&f);
		le_put32(list + i * MULTIBOOT_MOD_ENTRY_SIZE, (uint32_t)at);
		le_put32(list + i * MULTIBOOT_MOD_ENTRY_SIZE + 4, (uint32_t)(at + f.size));
		cur = at + f.size;
	}
	*end = cur;
	return 0;
}

int multiboot_module_parse(char *arg, struct multiboot_module *out)
{
	char *comma = strchr(arg, ',');

	out->path = arg;
	out->string = NULL;
	if (comma) {
		*comma = 0;
		out->string = comma + 1;
	}
	if (!arg[0])
		return hearth_err("--module: empty file name");
	return 0;
}

int multiboot_load(struct hearth_vm *vm, const char *kernel_path, const char *cmdline,
		   const struct multiboot_module *mods, unsigned nmods, struct multiboot_boot *out)
{
	struct memmap_entry map[MEMMAP_MAX_ENTRIES];
	struct mb_file f = {.fd = -1};
	struct mb_header h = {0};
	struct mb_image *img;
	struct mb_area a = {0};
	uint8_t *area = NULL;
	uint64_t kstart = UINT64_MAX, kend = 0, mods_end = 0;
	uint32_t str, flags;
	int nmap, ret = -1;

	if (!cmdline)
		cmdline = "";
	nmap = memmap_entries(vm->ram_size, map);
	if (nmap < 0)
		return hearth_err_prefix("multiboot");
	if (!hearth_gpa_ptr(vm, MULTIBOOT_INFO_BASE, MULTIBOOT_INFO_END - MULTIBOOT_INFO_BASE))
		return hearth_err("multiboot: no guest RAM at the boot information area %#x..%#x",
				  MULTIBOOT_INFO_BASE, MULTIBOOT_INFO_END);
	if (plan_area(cmdline, mods, nmods, (unsigned)nmap, &a))
		return -1;
	img = calloc(1, sizeof(*img));
	area = calloc(1, a.size);
	if (!img || !area) {
		hearth_err("multiboot: out of memory");
		goto out;
	}
	img->low_top = memmap_low_top(vm->ram_size);

	if (file_open(&f, kernel_path, "kernel", false))
		goto out;
	if (find_header(&f, &h) || check_flags(&f, h.flags))
		goto out;
	if (h.flags & MULTIBOOT_HF_AOUT_KLUDGE ? image_from_kludge(&f, &h, img)
					       : image_from_elf(&f, img))
		goto out;
	if (check_segments(vm, &f, img) || load_segments(vm, &f, img))
		goto out;
	for (unsigned i = 0; i < img->nseg; i++) {
		if (img->seg[i].dst < kstart)
			kstart = img->seg[i].dst;
		if (img->seg[i].dst + img->seg[i].memsz > kend)
			kend = img->seg[i].dst + img->seg[i].memsz;
	}

	/* modules go above the kernel, never below 1 MiB where the legacy areas are */
	if (load_modules(
		    vm, mods, nmods,
		    align_up(kend > MEMMAP_BIOS_END ? kend : MEMMAP_BIOS_END, MEMMAP_PAGE_SIZE),
		    img->low_top, area + a.mods_off, &mods_end))
		goto out;

	flags = MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_CMDLINE | MULTIBOOT_INFO_MEM_MAP |
		MULTIBOOT_INFO_LOADER_NAME | (nmods ? MULTIBOOT_INFO_MODS : 0);
	le_put32(area + MBI_FLAGS, flags);
	le_put32(area + MBI_MEM_LOWER, (uint32_t)(MEMMAP_LOW_USABLE_END / MEMMAP_KIB));
	le_put32(area + MBI_MEM_UPPER, (uint32_t)((img->low_top - MEMMAP_BIOS_END) / MEMMAP_KIB));
	str = a.str_off;
	le_put32(area + MBI_CMDLINE, put_string(area, &str, cmdline));
	le_put32(area + MBI_LOADER_NAME, put_string(area, &str, MULTIBOOT_LOADER_NAME));
	le_put32(area + MBI_MODS_COUNT, nmods);
	le_put32(area + MBI_MODS_ADDR, nmods ? MULTIBOOT_INFO_BASE + a.mods_off : 0);
	for (unsigned i = 0; i < nmods; i++)
		le_put32(area + a.mods_off + i * MULTIBOOT_MOD_ENTRY_SIZE + 8,
			 put_string(area, &str, mod_string(&mods[i])));
	for (int i = 0; i < nmap; i++) {
		uint8_t *e = area + a.mmap_off + i * MULTIBOOT_MMAP_ENTRY_SIZE;

		le_put32(e, MULTIBOOT_MMAP_ENTRY_SIZE - 4); /* size excludes itself */
		le_put64(e + 4, map[i].addr);
		le_put64(e + 12, map[i].size);
		le_put32(e + 20, map[i].type);
	}
	le_put32(area + MBI_MMAP_LENGTH, (uint32_t)nmap * MULTIBOOT_MMAP_ENTRY_SIZE);
	le_put32(area + MBI_MMAP_ADDR, MULTIBOOT_INFO_BASE + a.mmap_off);
	if (hearth_gpa_write(vm, MULTIBOOT_INFO_BASE, area, a.size)) {
		hearth_err("multiboot: cannot write the boot information area");
		goto out;
	}

	*out = (struct multiboot_boot){
		.entry = img->entry,
		.info_addr = MULTIBOOT_INFO_BASE,
		.magic = MULTIBOOT_BOOTLOADER_MAGIC,
		.kernel_start = kstart,
		.kernel_end = kend,
		.modules_end = mods_end,
	};
	ret = 0;
out:
	file_close(&f);
	free(area);
	free(img);
	return ret;
}
