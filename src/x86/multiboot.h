/* Multiboot (version 1, spec 0.6.96) kernel loader: finds the header, loads an a.out-kludge,
 * ELF32 or ELF64 image and its modules into guest RAM, and writes the multiboot information
 * structure. The kernel file and module files are untrusted: every size, offset and address
 * is checked, and a bad file gives a one-line hearth_err naming the file and the problem.
 * See docs/boot.md for what is honoured and where things are placed. */
#pragma once

#include <stdint.h>

struct hearth_vm;

#define MULTIBOOT_HEADER_MAGIC 0x1BADB002u
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u /* EAX at entry */
#define MULTIBOOT_SEARCH 8192u		       /* the header lies in the first 8 KiB */

/* Header flags (bits 0-15 are requirements, 16-31 optional). */
#define MULTIBOOT_HF_PAGE_ALIGN (1u << 0) /* modules page aligned: always done */
#define MULTIBOOT_HF_MEMORY_INFO (1u << 1)
#define MULTIBOOT_HF_VIDEO_MODE (1u << 2) /* refused: no video mode table */
#define MULTIBOOT_HF_AOUT_KLUDGE (1u << 16)
#define MULTIBOOT_HF_SUPPORTED (MULTIBOOT_HF_PAGE_ALIGN | MULTIBOOT_HF_MEMORY_INFO)

/* Information flags that hearth sets. */
#define MULTIBOOT_INFO_MEMORY (1u << 0)
#define MULTIBOOT_INFO_CMDLINE (1u << 2)
#define MULTIBOOT_INFO_MODS (1u << 3)
#define MULTIBOOT_INFO_MEM_MAP (1u << 6)
#define MULTIBOOT_INFO_LOADER_NAME (1u << 9)

/* Byte offsets in the information structure (little endian u32 unless noted). */
#define MBI_FLAGS 0
#define MBI_MEM_LOWER 4
#define MBI_MEM_UPPER 8
#define MBI_BOOT_DEVICE 12
#define MBI_CMDLINE 16
#define MBI_MODS_COUNT 20
#define MBI_MODS_ADDR 24
#define MBI_MMAP_LENGTH 44
#define MBI_MMAP_ADDR 48
#define MBI_LOADER_NAME 64
#define MBI_SIZE 88 /* through vbe_interface_len */

#define MULTIBOOT_MOD_ENTRY_SIZE 16  /* mod_start, mod_end (exclusive), string, reserved */
#define MULTIBOOT_MMAP_ENTRY_SIZE 24 /* size (=20), base_addr u64, length u64, type */

#define MULTIBOOT_LOADER_NAME "hearth"

/* The boot information area: a fixed window in low memory holding the information structure,
 * the memory map, the module list and every string. Kernel segments may not overlap it. */
#define MULTIBOOT_INFO_BASE 0x10000u
#define MULTIBOOT_INFO_END 0x30000u

#define MULTIBOOT_MAX_MODULES 256
#define MULTIBOOT_MAX_SEGMENTS 64

struct multiboot_module {
	const char *path;
	const char *string; /* NULL: the path */
};

/* What the VM layer needs to start the CPU: 32-bit protected mode, flat 4 GiB code and data
 * segments, paging off, interrupts off, EAX = magic, EBX = info_addr, EIP = entry. */
struct multiboot_boot {
	uint32_t entry;
	uint32_t info_addr;
	uint32_t magic;
	/* what was written, for logs and tests: [kernel_start, kernel_end) covers every loaded
	 * byte including bss; modules lie in [kernel_end rounded up to a page or 1 MiB,
	 * modules_end) */
	uint64_t kernel_start, kernel_end;
	uint64_t modules_end;
};

/* Parse a --module argument "FILE[,string]" in place: the first comma ends the path (so a path
 * cannot contain one). Returns 0, or -1 with a message when the path is empty. */
int multiboot_module_parse(char *arg, struct multiboot_module *out);

/* Load kernel_path (and nmods modules) into vm's RAM, whose layout must be the one
 * memmap_setup_vm() gives for vm->ram_size (without a firmware window). cmdline may be NULL
 * (an empty command line is passed). 0 and *out filled, or -1 with a message. Guest RAM may
 * have been partly written on failure. */
int multiboot_load(struct hearth_vm *vm, const char *kernel_path, const char *cmdline,
		   const struct multiboot_module *mods, unsigned nmods, struct multiboot_boot *out);
