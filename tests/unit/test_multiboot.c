/* Multiboot v1 loader: crafted a.out-kludge, ELF32 and ELF64 kernels load where they ask, bss
 * is zeroed, the information structure matches the memory map and modules; and every
 * malformed kernel, module or request is refused with one line naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakevm.h"
#include "hearth/error.h"
#include "hearth/le.h"
#include "x86/memmap.h"
#include "x86/multiboot.h"
#include "testutil.h"

#define RAM (64u << 20)
#define MB_MAGIC 0x1BADB002u
#define KLUDGE (1u << 16)

static char dir[] = "/tmp/hearth-mb-XXXXXX";
static uint8_t img[64 * 1024];

/* ---- files ---- */

static const char *path_of(const char *name)
{
	static char paths[8][256];
	static unsigned next;
	char *p = paths[next++ % 8];

	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static const char *write_file(const char *name, const void *data, size_t len)
{
	const char *path = path_of(name);
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	return path;
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rm_tree(dir);
}

/* ---- image builders ---- */

static void put_header(uint8_t *p, uint32_t flags)
{
	le_put32(p, MB_MAGIC);
	le_put32(p + 4, flags);
	le_put32(p + 8, (uint32_t) - (MB_MAGIC + flags));
}

struct kludge {
	uint32_t hoff; /* header offset in the file */
	uint32_t flags, header_addr, load_addr, load_end, bss_end, entry;
	size_t size; /* file size */
};

/* File bytes are a pattern of their offset, so a load from the wrong offset shows. */
static uint8_t pat(size_t off)
{
	return (uint8_t)(off * 13 + 5);
}

static size_t build_kludge(const struct kludge *k)
{
	memset(img, 0, sizeof(img));
	for (size_t i = 0; i < k->size; i++)
		img[i] = pat(i);
	put_header(img + k->hoff, k->flags | KLUDGE);
	le_put32(img + k->hoff + 12, k->header_addr);
	le_put32(img + k->hoff + 16, k->load_addr);
	le_put32(img + k->hoff + 20, k->load_end);
	le_put32(img + k->hoff + 24, k->bss_end);
	le_put32(img + k->hoff + 28, k->entry);
	return k->size;
}

/* A good kludge image: 0x3000 bytes at 1 MiB, header at 0x40, bss to 0x106000. */
static struct kludge good_kludge(void)
{
	return (struct kludge){.hoff = 0x40,
			       .header_addr = 0x100040,
			       .load_addr = 0x100000,
			       .load_end = 0x103000,
			       .bss_end = 0x106000,
			       .entry = 0x100080,
			       .size = 0x3000};
}

struct seg {
	uint32_t type;
	uint64_t off, vaddr, paddr, filesz, memsz;
};

struct elf {
	int cls; /* 1 or 2 */
	uint16_t machine, etype;
	uint64_t entry;
	uint32_t mbflags;
	uint64_t phoff; /* 0: right after the ELF header */
	unsigned nseg;
	struct seg seg[8];
};

/* Segment payloads: byte i of segment s is 0x40 + s*16 + (i & 15). */
static size_t build_elf(const struct elf *e)
{
	int is64 = e->cls == 2;
	size_t ehsize = is64 ? 64 : 52, phentsize = is64 ? 56 : 32;
	uint64_t phoff = e->phoff ? e->phoff : ehsize;
	size_t end = 0x400;

	memset(img, 0, sizeof(img));
	memcpy(img, "\177ELF", 4);
	img[4] = (uint8_t)e->cls;
	img[5] = 1; /* little endian */
	img[6] = 1;
	le_put16(img + 16, e->etype ? e->etype : 2);
	le_put16(img + 18, e->machine);
	le_put32(img + 20, 1);
	if (is64) {
		le_put64(img + 24, e->entry);
		le_put64(img + 32, phoff);
		le_put16(img + 52, (uint16_t)ehsize);
		le_put16(img + 54, (uint16_t)phentsize);
		le_put16(img + 56, (uint16_t)e->nseg);
	} else {
		le_put32(img + 24, (uint32_t)e->entry);
		le_put32(img + 28, (uint32_t)phoff);
		le_put16(img + 40, (uint16_t)ehsize);
		le_put16(img + 42, (uint16_t)phentsize);
		le_put16(img + 44, (uint16_t)e->nseg);
	}
	put_header(img + 0x200, e->mbflags);
	for (unsigned i = 0; i < e->nseg; i++) {
		const struct seg *s = &e->seg[i];
		uint8_t *ph = img + phoff + i * phentsize;

		if (phoff + (i + 1) * phentsize <= sizeof(img)) {
			le_put32(ph, s->type ? s->type : 1);
			if (is64) {
				le_put64(ph + 8, s->off);
				le_put64(ph + 16, s->vaddr ? s->vaddr : s->paddr);
				le_put64(ph + 24, s->paddr);
				le_put64(ph + 32, s->filesz);
				le_put64(ph + 40, s->memsz);
			} else {
				le_put32(ph + 4, (uint32_t)s->off);
				le_put32(ph + 8, (uint32_t)(s->vaddr ? s->vaddr : s->paddr));
				le_put32(ph + 12, (uint32_t)s->paddr);
				le_put32(ph + 16, (uint32_t)s->filesz);
				le_put32(ph + 20, (uint32_t)s->memsz);
			}
		}
		if (s->off >= sizeof(img))
			continue; /* deliberately out of range: nothing to write */
		for (uint64_t b = 0; b < s->filesz && b < sizeof(img) - s->off; b++)
			img[s->off + b] = (uint8_t)(0x40 + i * 16 + (b & 15));
		if (s->filesz <= sizeof(img) - s->off && s->off + s->filesz > end)
			end = s->off + s->filesz;
	}
	return end;
}

/* Text at 1 MiB, data + bss at 1 MiB + 8 KiB. */
static struct elf good_elf(int cls)
{
	return (struct elf){.cls = cls,
			    .machine = cls == 2 ? 62 : 3,
			    .entry = 0x100010,
			    .nseg = 2,
			    .seg = {{1, 0x1000, 0, 0x100000, 0x1800, 0x1800},
				    {1, 0x3000, 0, 0x102000, 0x100, 0x2000}}};
}

/* ---- running the loader ---- */

static struct fakevm *vm_dirty(void)
{
	struct fakevm *f = fakevm_new(RAM);

	/* garbage everywhere, so "zeroed" and "untouched" mean something */
	memset(f->ram, 0xCC, RAM);
	return f;
}

static int load(struct fakevm *f, const char *path, const char *cmdline,
		const struct multiboot_module *mods, unsigned nmods, struct multiboot_boot *out)
{
	hearth_err_clear();
	return multiboot_load(&f->vm, path, cmdline, mods, nmods, out);
}

/* Loading path fails with a one-line message naming what and saying why. */
static void refused_with(struct fakevm *f, const char *path, const struct multiboot_module *mods,
			 unsigned nmods, const char *what, const char *why)
{
	struct multiboot_boot b;

	assert_int_equal(load(f, path, "x", mods, nmods, &b), -1);
	if (!strstr(hearth_err_msg(), what) || !strstr(hearth_err_msg(), why))
		fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", hearth_err_msg(), what, why);
	assert_null(strchr(hearth_err_msg(), '\n'));
}

static void refused(const char *path, const char *why)
{
	struct fakevm *f = fakevm_new(RAM);

	refused_with(f, path, NULL, 0, path, why);
	fakevm_free(f);
}

static void refuse_kludge(const struct kludge *k, const char *why)
{
	refused(write_file("k.bin", img, build_kludge(k)), why);
}

static void refuse_elf(const struct elf *e, const char *why)
{
	refused(write_file("k.elf", img, build_elf(e)), why);
}

/* ---- loading ---- */

static void test_kludge_loads(void **state)
{
	struct kludge k = good_kludge();
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	const char *path = write_file("k.bin", img, build_kludge(&k));
	(void)state;

	assert_int_equal(load(f, path, "console=ttyS0", NULL, 0, &b), 0);
	assert_int_equal(b.entry, 0x100080);
	assert_int_equal(b.magic, 0x2BADB002);
	assert_int_equal(b.info_addr, MULTIBOOT_INFO_BASE);
	assert_int_equal(b.kernel_start, 0x100000);
	assert_int_equal(b.kernel_end, 0x106000);
	assert_memory_equal(f->ram + 0x100000, img, 0x3000);
	for (uint32_t a = 0x103000; a < 0x106000; a++)
		assert_int_equal(f->ram[a], 0);
	assert_int_equal(f->ram[0x106000], 0xCC); /* not past bss_end */
	assert_int_equal(f->ram[0x0FFFFF], 0xCC);
	fakevm_free(f);
}

static void test_kludge_whole_file_no_bss(void **state)
{
	struct kludge k = good_kludge();
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	const char *path;
	(void)state;

	/* header 4 KiB into the file; load_addr 4 KiB below header_addr: load from offset 0 */
	k.hoff = 0x1000;
	k.header_addr = 0x201000;
	k.load_addr = 0x200000;
	k.load_end = 0;
	k.bss_end = 0;
	k.entry = 0x201ffc;
	k.size = 0x2000;
	path = write_file("k.bin", img, build_kludge(&k));
	assert_int_equal(load(f, path, NULL, NULL, 0, &b), 0);
	assert_memory_equal(f->ram + 0x200000, img, 0x2000);
	assert_int_equal(f->ram[0x202000], 0xCC);
	assert_int_equal(b.kernel_end, 0x202000);
	assert_int_equal(b.entry, 0x201ffc);
	fakevm_free(f);
}

static void test_kludge_loads_from_header_offset(void **state)
{
	struct kludge k = good_kludge();
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	const char *path;
	(void)state;

	/* header_addr == load_addr: the file is read from the header's offset on */
	k.hoff = 0x800;
	k.header_addr = 0x300000;
	k.load_addr = 0x300000;
	k.load_end = 0x300800;
	k.bss_end = 0x300900;
	k.entry = 0x300020;
	k.size = 0x1000;
	path = write_file("k.bin", img, build_kludge(&k));
	assert_int_equal(load(f, path, NULL, NULL, 0, &b), 0);
	assert_memory_equal(f->ram + 0x300000, img + 0x800, 0x800);
	assert_int_equal(f->ram[0x3008FF], 0);
	assert_int_equal(f->ram[0x300900], 0xCC);
	fakevm_free(f);
}

static void check_elf_loaded(struct fakevm *f, const struct multiboot_boot *b)
{
	for (unsigned i = 0; i < 0x1800; i++)
		assert_int_equal(f->ram[0x100000 + i], 0x40 + (i & 15));
	for (unsigned i = 0; i < 0x100; i++)
		assert_int_equal(f->ram[0x102000 + i], 0x50 + (i & 15));
	for (unsigned i = 0x100; i < 0x2000; i++)
		assert_int_equal(f->ram[0x102000 + i], 0);
	assert_int_equal(f->ram[0x101800], 0xCC); /* the gap between segments is untouched */
	assert_int_equal(f->ram[0x104000], 0xCC);
	assert_int_equal(b->entry, 0x100010);
	assert_int_equal(b->kernel_start, 0x100000);
	assert_int_equal(b->kernel_end, 0x104000);
}

static void test_elf32_loads(void **state)
{
	struct elf e = good_elf(1);
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	(void)state;

	assert_int_equal(load(f, write_file("k.elf", img, build_elf(&e)), NULL, NULL, 0, &b), 0);
	check_elf_loaded(f, &b);
	fakevm_free(f);
}

static void test_elf64_loads(void **state)
{
	struct elf e = good_elf(2);
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	(void)state;

	/* a non-loadable header and an empty segment are skipped */
	e.seg[2] = (struct seg){4, 0x300, 0, 0, 0x10, 0x10};
	e.seg[3] = (struct seg){1, 0x300, 0, 0x500000, 0, 0};
	e.nseg = 4;
	assert_int_equal(load(f, write_file("k.elf", img, build_elf(&e)), NULL, NULL, 0, &b), 0);
	check_elf_loaded(f, &b);
	fakevm_free(f);
}

static void test_elf_virtual_entry_translated(void **state)
{
	struct elf e = good_elf(1);
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	(void)state;

	/* a higher-half kernel: linked at 3 GiB + 1 MiB, loaded at 1 MiB */
	e.seg[0].vaddr = 0xC0100000;
	e.seg[1].vaddr = 0xC0102000;
	e.entry = 0xC0102010;
	assert_int_equal(load(f, write_file("k.elf", img, build_elf(&e)), NULL, NULL, 0, &b), 0);
	assert_int_equal(b.entry, 0x102010);
	fakevm_free(f);
}

static void test_low_segment_allowed(void **state)
{
	struct elf e = good_elf(1);
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	(void)state;

	/* below 1 MiB is fine when it is usable RAM outside the boot information area */
	e.seg[0].paddr = 0x1000;
	e.seg[1].paddr = 0x40000;
	e.entry = 0x1000;
	assert_int_equal(load(f, write_file("k.elf", img, build_elf(&e)), NULL, NULL, 0, &b), 0);
	assert_int_equal(f->ram[0x1000], 0x40);
	assert_int_equal(f->ram[0x40000], 0x50);
	assert_int_equal(b.kernel_end, 0x42000);
	fakevm_free(f);
}

static void test_optional_flag_ignored(void **state)
{
	struct elf e = good_elf(1);
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	(void)state;

	e.mbflags = 0x3 | (1u << 20); /* page align, memory info, an unknown optional bit */
	assert_int_equal(load(f, write_file("k.elf", img, build_elf(&e)), NULL, NULL, 0, &b), 0);
	fakevm_free(f);
}

/* ---- the information structure ---- */

static const char *guest_str(struct fakevm *f, uint32_t addr)
{
	assert_true(addr > 0 && addr < RAM);
	assert_non_null(memchr(f->ram + addr, 0, RAM - addr));
	return (const char *)f->ram + addr;
}

static void test_info(void **state)
{
	struct elf e = good_elf(1);
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	static uint8_t mod1[5000], mod2[3];
	struct memmap_entry map[MEMMAP_MAX_ENTRIES];
	struct multiboot_module mods[3];
	const uint8_t *mbi, *ml;
	const char *m1, *m2, *m3;
	int nmap = memmap_entries(RAM, map);
	(void)state;

	for (size_t i = 0; i < sizeof(mod1); i++)
		mod1[i] = (uint8_t)(i ^ 0x5A);
	memcpy(mod2, "abc", 3);
	m1 = write_file("initrd.img", mod1, sizeof(mod1));
	m2 = write_file("small.bin", mod2, sizeof(mod2));
	m3 = write_file("empty.bin", "", 0);
	mods[0] = (struct multiboot_module){m1, NULL};
	mods[1] = (struct multiboot_module){m2, "small root=/dev/x"};
	mods[2] = (struct multiboot_module){m3, ""};
	assert_int_equal(
		load(f, write_file("k.elf", img, build_elf(&e)), "quiet tests=all", mods, 3, &b),
		0);

	mbi = f->ram + b.info_addr;
	assert_int_equal(le_get32(mbi + 0), 0x1 | 0x4 | 0x8 | 0x40 | 0x200);
	assert_int_equal(le_get32(mbi + 4), 639);
	assert_int_equal(le_get32(mbi + 8), (RAM - 0x100000) / 1024);
	assert_int_equal(le_get32(mbi + 12), 0); /* no boot device */
	assert_string_equal(guest_str(f, le_get32(mbi + 16)), "quiet tests=all");
	assert_string_equal(guest_str(f, le_get32(mbi + 64)), "hearth");
	for (unsigned off = 28; off < 44; off += 4) /* no symbol table */
		assert_int_equal(le_get32(mbi + off), 0);
	for (unsigned off = 52; off < 64; off += 4) /* no drives, no config table */
		assert_int_equal(le_get32(mbi + off), 0);
	for (unsigned off = 68; off < 88; off += 4) /* no APM, no VBE */
		assert_int_equal(le_get32(mbi + off), 0);

	/* mem_upper agrees with the usable entry at 1 MiB */
	assert_int_equal(map[3].addr, 0x100000);
	assert_int_equal((uint64_t)le_get32(mbi + 8) * 1024, map[3].size);

	/* memory map: identical to memmap_entries() */
	assert_int_equal(le_get32(mbi + 44), nmap * 24);
	for (int i = 0; i < nmap; i++) {
		const uint8_t *m = f->ram + le_get32(mbi + 48) + i * 24;

		assert_int_equal(le_get32(m), 20);
		assert_int_equal(le_get64(m + 4), map[i].addr);
		assert_int_equal(le_get64(m + 12), map[i].size);
		assert_int_equal(le_get32(m + 20), map[i].type);
	}

	/* modules: page aligned, above the kernel, in order, contents and strings right */
	assert_int_equal(le_get32(mbi + 20), 3);
	ml = f->ram + le_get32(mbi + 24);
	assert_int_equal(le_get32(ml + 0) % 4096, 0);
	assert_true(le_get32(ml + 0) >= b.kernel_end);
	assert_int_equal(le_get32(ml + 4) - le_get32(ml + 0), sizeof(mod1));
	assert_memory_equal(f->ram + le_get32(ml + 0), mod1, sizeof(mod1));
	assert_string_equal(guest_str(f, le_get32(ml + 8)), m1);
	assert_int_equal(le_get32(ml + 12), 0);
	assert_int_equal(le_get32(ml + 16) % 4096, 0);
	assert_true(le_get32(ml + 16) >= le_get32(ml + 4));
	assert_int_equal(le_get32(ml + 20) - le_get32(ml + 16), 3);
	assert_memory_equal(f->ram + le_get32(ml + 16), "abc", 3);
	assert_string_equal(guest_str(f, le_get32(ml + 24)), "small root=/dev/x");
	assert_int_equal(le_get32(ml + 32) % 4096, 0);
	assert_int_equal(le_get32(ml + 36), le_get32(ml + 32)); /* empty module */
	assert_string_equal(guest_str(f, le_get32(ml + 40)), "");
	assert_int_equal(b.modules_end, le_get32(ml + 36));

	/* everything the loader wrote besides the kernel and modules is in the info area */
	for (unsigned i = 0; i < 3; i++)
		assert_true(le_get32(ml + i * 16 + 8) >= MULTIBOOT_INFO_BASE &&
			    le_get32(ml + i * 16 + 8) < MULTIBOOT_INFO_END);
	assert_true(le_get32(mbi + 48) >= MULTIBOOT_INFO_BASE &&
		    le_get32(mbi + 48) < MULTIBOOT_INFO_END);
	assert_true(le_get32(mbi + 24) >= MULTIBOOT_INFO_BASE &&
		    le_get32(mbi + 24) < MULTIBOOT_INFO_END);
	fakevm_free(f);
}

static void test_info_without_modules(void **state)
{
	struct elf e = good_elf(1);
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	const uint8_t *mbi;
	(void)state;

	assert_int_equal(load(f, write_file("k.elf", img, build_elf(&e)), NULL, NULL, 0, &b), 0);
	mbi = f->ram + b.info_addr;
	assert_int_equal(le_get32(mbi), 0x1 | 0x4 | 0x40 | 0x200);
	assert_int_equal(le_get32(mbi + 20), 0);
	assert_int_equal(le_get32(mbi + 24), 0);
	assert_string_equal(guest_str(f, le_get32(mbi + 16)), "");
	fakevm_free(f);
}

static void test_modules_above_low_kernel_start_at_1m(void **state)
{
	struct elf e = good_elf(1);
	struct fakevm *f = vm_dirty();
	struct multiboot_boot b;
	struct multiboot_module m = {write_file("m.bin", "hello module", 12), NULL};
	const uint8_t *ml;
	(void)state;

	e.seg[0].paddr = 0x1000;
	e.seg[1].paddr = 0x40000;
	e.entry = 0x1000;
	assert_int_equal(load(f, write_file("k.elf", img, build_elf(&e)), NULL, &m, 1, &b), 0);
	ml = f->ram + le_get32(f->ram + b.info_addr + 24);
	assert_int_equal(le_get32(ml), 0x100000);
	assert_memory_equal(f->ram + 0x100000, "hello module", 12);
	fakevm_free(f);
}

static void test_module_parse(void **state)
{
	struct multiboot_module m;
	char a[] = "/boot/initrd.img", b[] = "/x/y.bin,root=/dev/vda ro,extra", c[] = ",str",
	     d[] = "file,";
	(void)state;

	assert_int_equal(multiboot_module_parse(a, &m), 0);
	assert_string_equal(m.path, "/boot/initrd.img");
	assert_null(m.string);
	assert_int_equal(multiboot_module_parse(b, &m), 0);
	assert_string_equal(m.path, "/x/y.bin");
	assert_string_equal(m.string, "root=/dev/vda ro,extra");
	assert_int_equal(multiboot_module_parse(d, &m), 0);
	assert_string_equal(m.path, "file");
	assert_string_equal(m.string, "");
	hearth_err_clear();
	assert_int_equal(multiboot_module_parse(c, &m), -1);
	assert_non_null(strstr(hearth_err_msg(), "empty file name"));
}

/* ---- refusals: the file itself ---- */

static void test_refuse_files(void **state)
{
	(void)state;
	refused(path_of("missing.elf"), "cannot open kernel");
	refused(write_file("empty.elf", "", 0), "empty");
	refused(dir, "is a directory");
	refused("/dev/null", "not a regular file");
}

static void test_refuse_headers(void **state)
{
	struct elf e = good_elf(1);
	size_t n;
	(void)state;

	memset(img, 0, 8192);
	refused(write_file("zero.bin", img, 8192), "no multiboot header in the first 8192 bytes");
	refused(write_file("tiny.bin", "\x02\xb0\xad\x1b", 4),
		"no multiboot header"); /* magic but no room for flags */

	n = build_elf(&e);
	le_put32(img + 0x208, le_get32(img + 0x208) + 1);
	refused(write_file("sum.elf", img, n), "bad checksum");

	/* a valid header starting at 8 KiB is not looked at */
	memset(img, 0, sizeof(img));
	put_header(img + 8192, 0);
	refused(write_file("late.bin", img, 16384), "no multiboot header");
	/* one that starts inside but ends past 8 KiB neither */
	memset(img, 0, sizeof(img));
	put_header(img + 8188, 0);
	refused(write_file("straddle.bin", img, 16384), "no multiboot header");
	/* misaligned */
	memset(img, 0, sizeof(img));
	put_header(img + 0x102, 0);
	refused(write_file("unaligned.bin", img, 8192), "no multiboot header");
	/* kludge fields cut off by the 8 KiB limit or by the end of the file */
	memset(img, 0, sizeof(img));
	put_header(img + 8176, KLUDGE);
	refused(write_file("cut.bin", img, 16384), "first 8192 bytes");
	refused(write_file("cut2.bin", img, 8188), "end of the file");
}

static void test_refuse_flags(void **state)
{
	struct elf e = good_elf(1);
	(void)state;

	e.mbflags = 0x7;
	refuse_elf(&e, "video mode");
	e.mbflags = 0x3 | (1u << 5);
	refuse_elf(&e, "unsupported bits 0x20");
	e.mbflags = 1u << 15;
	refuse_elf(&e, "unsupported");
}

/* ---- refusals: a.out kludge ---- */

static void test_refuse_kludge(void **state)
{
	struct kludge k;
	(void)state;

	k = good_kludge();
	k.load_end = 0xFFFFF;
	refuse_kludge(&k, "load_end_addr 0xfffff is below load_addr");
	k = good_kludge();
	k.load_addr = 0x100044;
	refuse_kludge(&k, "load_addr 0x100044 is above header_addr");
	k = good_kludge();
	k.load_addr = 0x0FF000; /* would start 4 KiB before the header: before the file */
	refuse_kludge(&k, "before the beginning of the file");
	k = good_kludge();
	k.load_end = 0x100050; /* header not wholly loaded */
	refuse_kludge(&k, "header_addr 0x100040 is not inside the loaded image");
	k = good_kludge();
	k.load_end = 0x104000; /* past the end of the 0x3000-byte file */
	refuse_kludge(&k, "past the end of the file");
	k = good_kludge();
	k.bss_end = 0x102000;
	refuse_kludge(&k, "bss_end_addr 0x102000 is below the end");
	k = good_kludge();
	k.entry = 0x0FFFFF;
	refuse_kludge(&k, "entry_addr 0xfffff is outside the loaded image");
	k.entry = 0x103000; /* the first byte past the image (in bss) */
	refuse_kludge(&k, "entry_addr 0x103000 is outside");
	k = good_kludge();
	k.header_addr = 0xF0040; /* into the BIOS area */
	k.load_addr = 0xF0000;
	k.load_end = 0xF3000;
	k.bss_end = 0;
	k.entry = 0xF0080;
	refuse_kludge(&k, "reserved");
	k = good_kludge();
	k.header_addr = 0xFFFFF040; /* into the hole */
	k.load_addr = 0xFFFFF000;
	k.load_end = 0;
	k.bss_end = 0;
	k.entry = 0xFFFFF080;
	k.size = 0x1000;
	refuse_kludge(&k, "outside low RAM");
}

/* ---- refusals: ELF ---- */

static void test_refuse_elf_format(void **state)
{
	struct elf e;
	size_t n;
	(void)state;

	e = good_elf(1);
	n = build_elf(&e);
	img[0] = 'X';
	refused(write_file("notelf.bin", img, n), "not an ELF file");

	/* ELF magic and a multiboot header, but no room for the ELF header */
	memset(img, 0, sizeof(img));
	memcpy(img, "\177ELF\1\1\1", 7);
	put_header(img + 16, 0);
	refused(write_file("short.elf", img, 40), "ELF header is truncated");
	img[4] = 2;
	refused(write_file("short64.elf", img, 60), "ELF header is truncated");

	e = good_elf(1);
	n = build_elf(&e);
	img[4] = 3;
	refused(write_file("class.elf", img, n), "unsupported ELF class 3");
	e = good_elf(1);
	n = build_elf(&e);
	img[5] = 2;
	refused(write_file("be.elf", img, n), "not little-endian");

	e = good_elf(1);
	e.etype = 3;
	refuse_elf(&e, "not an executable");
	e = good_elf(1);
	e.machine = 62;
	refuse_elf(&e, "ELF32 machine 62");
	e = good_elf(2);
	e.machine = 3;
	refuse_elf(&e, "ELF64 machine 3");
	e = good_elf(1);
	e.machine = 40;
	refuse_elf(&e, "machine 40");

	e = good_elf(1);
	e.nseg = 0;
	refuse_elf(&e, "no program headers");
	e = good_elf(1);
	e.seg[0].type = 4;
	e.seg[1].type = 6;
	refuse_elf(&e, "no loadable segments");
	e = good_elf(1);
	n = build_elf(&e);
	le_put16(img + 42, 16);
	refused(write_file("phent.elf", img, n), "program header size 16");
}

static void test_refuse_elf_truncated(void **state)
{
	struct elf e;
	size_t n;
	(void)state;

	e = good_elf(1);
	e.phoff = 0x3F00; /* table ends past the end of the file */
	refuse_elf(&e, "program header table");
	e = good_elf(2);
	n = build_elf(&e);
	le_put64(img + 32, UINT64_MAX - 8); /* phoff + size would wrap */
	refused(write_file("wrap.elf", img, n), "program header table");

	e = good_elf(1);
	e.seg[1].filesz = 0x1000; /* 0x3000 + 0x1000 > file size 0x3100 */
	e.seg[1].memsz = 0x2000;
	n = build_elf(&e);
	refused(write_file("seg.elf", img, 0x3100), "segment 1 (offset 12288, 4096 bytes) extends");
	e = good_elf(2);
	e.seg[0].off = UINT64_MAX - 0x100; /* offset + size wraps */
	refuse_elf(&e, "extends past the end of the file");
}

static void test_refuse_elf_segments(void **state)
{
	struct elf e;
	(void)state;

	e = good_elf(1);
	e.seg[1].filesz = 0x2001;
	refuse_elf(&e, "p_filesz 0x2001 larger than p_memsz 0x2000");

	e = good_elf(1);
	e.seg[1].paddr = RAM - 0x1000; /* 8 KiB of memsz: runs off the end of RAM */
	refuse_elf(&e, "outside low RAM");
	e = good_elf(2);
	e.seg[1].paddr = 0x100000000ULL; /* high RAM is not reachable in 32-bit mode */
	refuse_elf(&e, "outside low RAM");
	e = good_elf(2);
	e.seg[1].paddr = UINT64_MAX - 0x100; /* paddr + memsz wraps */
	refuse_elf(&e, "outside low RAM");

	e = good_elf(1);
	e.seg[1].paddr = 0x9F000; /* into the EBDA */
	refuse_elf(&e, "reserved area");
	e = good_elf(1);
	e.seg[1].paddr = 0xB8000; /* VGA */
	refuse_elf(&e, "reserved area");
	e = good_elf(1);
	e.seg[1].paddr = 0x2F000; /* the boot information area */
	refuse_elf(&e, "boot information area");

	e = good_elf(1);
	e.seg[1].paddr = 0x101000; /* inside segment 0 */
	refuse_elf(&e, "segments 0 and 1 overlap");
	e = good_elf(1);
	e.seg[1].paddr = 0x0FF000; /* ends inside segment 0 (and starts in the BIOS area) */
	e.seg[1].vaddr = 0;
	refuse_elf(&e, "reserved");
}

static void test_refuse_elf_entry(void **state)
{
	struct elf e;
	(void)state;

	e = good_elf(2);
	e.entry = 0x100000000ULL;
	refuse_elf(&e, "entry point 0x100000000 is not below 4 GiB");
	e = good_elf(2);
	e.entry = 0xFFFFFFFF80100000ULL;
	refuse_elf(&e, "not below 4 GiB");
	e = good_elf(1);
	e.entry = 0x104000; /* just past the data segment's bss */
	refuse_elf(&e, "entry point 0x104000 is not inside any loadable segment");
}

static void test_refuse_too_many_segments(void **state)
{
	struct elf e = good_elf(1);
	size_t n;
	(void)state;

	/* 65 one-page segments: the builder writes two, the rest by hand */
	n = build_elf(&e);
	le_put32(img + 28, 0x4000);
	le_put16(img + 44, 65);
	for (unsigned i = 0; i < 65; i++) {
		uint8_t *ph = img + 0x4000 + i * 32;

		le_put32(ph, 1);
		le_put32(ph + 4, 0x1000);
		le_put32(ph + 8, 0x400000 + i * 0x1000);
		le_put32(ph + 12, 0x400000 + i * 0x1000);
		le_put32(ph + 16, 0x10);
		le_put32(ph + 20, 0x1000);
	}
	(void)n;
	refused(write_file("many.elf", img, 0x4000 + 65 * 32), "more than 64 loadable segments");
}

/* ---- refusals: modules, command line, RAM ---- */

static void test_refuse_modules(void **state)
{
	struct elf e = good_elf(1);
	struct fakevm *f = fakevm_new(RAM);
	const char *k = write_file("k.elf", img, build_elf(&e));
	struct multiboot_module m[2];
	const char *big = path_of("big.bin");
	FILE *fp;
	static struct multiboot_module many[MULTIBOOT_MAX_MODULES + 1];
	(void)state;

	m[0] = (struct multiboot_module){write_file("ok.bin", "ok", 2), NULL};
	m[1] = (struct multiboot_module){path_of("nope.bin"), NULL};
	refused_with(f, k, m, 2, m[1].path, "cannot open module");
	m[1] = (struct multiboot_module){dir, NULL};
	refused_with(f, k, m, 2, dir, "module is a directory");
	m[1] = (struct multiboot_module){"", NULL};
	refused_with(f, k, m, 2, "module 1", "no file name");

	/* sparse, larger than what is left of low RAM */
	fp = fopen(big, "wb");
	assert_non_null(fp);
	assert_int_equal(ftruncate(fileno(fp), RAM - 0x100000), 0);
	fclose(fp);
	m[1] = (struct multiboot_module){big, NULL};
	refused_with(f, k, m, 2, big, "does not fit in guest RAM");

	for (unsigned i = 0; i <= MULTIBOOT_MAX_MODULES; i++)
		many[i] = m[0];
	refused_with(f, k, many, MULTIBOOT_MAX_MODULES + 1, "257 modules", "at most 256");
	fakevm_free(f);
}

static void test_many_modules_fit(void **state)
{
	struct elf e = good_elf(1);
	struct fakevm *f = fakevm_new(RAM);
	static struct multiboot_module many[MULTIBOOT_MAX_MODULES];
	struct multiboot_boot b;
	(void)state;

	many[0] = (struct multiboot_module){write_file("ok.bin", "ok", 2), NULL};
	for (unsigned i = 1; i < MULTIBOOT_MAX_MODULES; i++)
		many[i] = many[0];
	assert_int_equal(load(f, write_file("k.elf", img, build_elf(&e)), NULL, many,
			      MULTIBOOT_MAX_MODULES, &b),
			 0);
	assert_int_equal(le_get32(f->ram + b.info_addr + 20), MULTIBOOT_MAX_MODULES);
	assert_int_equal(b.modules_end, 0x104000 + 255 * 4096 + 2);
	fakevm_free(f);
}

static void test_refuse_long_cmdline(void **state)
{
	struct elf e = good_elf(1);
	struct fakevm *f = fakevm_new(RAM);
	struct multiboot_boot b;
	const char *k = write_file("k.elf", img, build_elf(&e));
	size_t n = MULTIBOOT_INFO_END - MULTIBOOT_INFO_BASE;
	char *line = malloc(n + 1);
	(void)state;

	memset(line, 'a', n);
	line[n] = 0;
	assert_int_equal(load(f, k, line, NULL, 0, &b), -1);
	assert_non_null(strstr(hearth_err_msg(), "boot information area"));
	/* a long one that fits is passed whole */
	line[n - 4096] = 0;
	assert_int_equal(load(f, k, line, NULL, 0, &b), 0);
	assert_int_equal(strlen(guest_str(f, le_get32(f->ram + b.info_addr + 16))), n - 4096);
	free(line);
	fakevm_free(f);
}

static void test_refuse_bad_ram(void **state)
{
	struct elf e = good_elf(1);
	const char *k = write_file("k.elf", img, build_elf(&e));
	struct fakevm *f;
	(void)state;

	/* a RAM size the memory map refuses */
	f = fakevm_new(1 << 20);
	refused_with(f, k, NULL, 0, "multiboot", "minimum");
	fakevm_free(f);

	/* the map says usable, but the slot is shorter: the loader still never writes outside */
	f = fakevm_new(RAM);
	f->vm.ram[0].size = 0x100000 + 0x1000;
	refused_with(f, k, NULL, 0, k, "not backed by guest RAM");
	f->vm.ram[0].size = 0x20000;
	refused_with(f, k, NULL, 0, "multiboot", "no guest RAM at the boot information area");
	fakevm_free(f);
}

/* Mutated images never crash the loader (the sanitizer build makes this meaningful). */
static void test_mutations_never_crash(void **state)
{
	struct fakevm *f = fakevm_new(RAM);
	struct multiboot_boot b;
	uint32_t seed = 12345;
	unsigned ok = 0;
	(void)state;

	for (unsigned iter = 0; iter < 600; iter++) {
		struct elf e = good_elf(1 + iter % 2);
		size_t n = build_elf(&e);
		const char *k;

		for (unsigned m = 0; m < 1 + iter % 6; m++) {
			seed = seed * 1103515245u + 12345u;
			/* mostly the ELF and program headers, sometimes the multiboot header */
			img[(seed >> 8) % (iter % 3 ? 0xC0 : 0x210)] = (uint8_t)(seed >> 20);
		}
		k = write_file("mut.elf", img, n);
		if (load(f, k, NULL, NULL, 0, &b) == 0) {
			ok++;
			assert_true(b.entry >= b.kernel_start && b.entry < b.kernel_end);
		} else {
			assert_non_null(strstr(hearth_err_msg(), k));
		}
	}
	assert_true(ok > 0); /* some mutations are harmless */
	fakevm_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kludge_loads),
		cmocka_unit_test(test_kludge_whole_file_no_bss),
		cmocka_unit_test(test_kludge_loads_from_header_offset),
		cmocka_unit_test(test_elf32_loads),
		cmocka_unit_test(test_elf64_loads),
		cmocka_unit_test(test_elf_virtual_entry_translated),
		cmocka_unit_test(test_low_segment_allowed),
		cmocka_unit_test(test_optional_flag_ignored),
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_info_without_modules),
		cmocka_unit_test(test_modules_above_low_kernel_start_at_1m),
		cmocka_unit_test(test_module_parse),
		cmocka_unit_test(test_refuse_files),
		cmocka_unit_test(test_refuse_headers),
		cmocka_unit_test(test_refuse_flags),
		cmocka_unit_test(test_refuse_kludge),
		cmocka_unit_test(test_refuse_elf_format),
		cmocka_unit_test(test_refuse_elf_truncated),
		cmocka_unit_test(test_refuse_elf_segments),
		cmocka_unit_test(test_refuse_elf_entry),
		cmocka_unit_test(test_refuse_too_many_segments),
		cmocka_unit_test(test_refuse_modules),
		cmocka_unit_test(test_many_modules_fit),
		cmocka_unit_test(test_refuse_long_cmdline),
		cmocka_unit_test(test_refuse_bad_ram),
		cmocka_unit_test(test_mutations_never_crash),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
