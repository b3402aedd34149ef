/* A raw firmware ROM (--firmware FILE), mapped read-only so that it ends at 4 GiB, with its
 * last 128 KiB (or all of it, when smaller) visible again just below 1 MiB as on a PC. This
 * file only reads and checks the image and says where it goes; the VM layer maps each region
 * as a KVM_MEM_READONLY slot and starts the CPU at the reset vector. */
#pragma once

#include <stdint.h>

/* Sizes: a non-zero multiple of 4 KiB (each region is a page-mapped memory slot) up to
 * 16 MiB (4 GiB - 16 MiB stays clear of the IOAPIC and LAPIC windows). */
#define FIRMWARE_SIZE_MAX 0x1000000ULL
#define FIRMWARE_SIZE_ALIGN 0x1000ULL
#define FIRMWARE_ALIAS_MAX 0x20000ULL
#define FIRMWARE_ALIAS_END 0x100000ULL

/* Where the CPU starts in firmware mode: real mode with CS.base 0xFFFF0000, CS.selector
 * 0xF000, IP 0xFFF0 -> first instruction at 4 GiB - 16. */
#define FIRMWARE_RESET_CS_SELECTOR 0xF000
#define FIRMWARE_RESET_CS_BASE 0xFFFF0000ULL
#define FIRMWARE_RESET_IP 0xFFF0

struct firmware_region {
	uint64_t gpa, size;
	const void *hva; /* page aligned, read-only on the host too */
};

#define FIRMWARE_MAX_REGIONS 2

struct firmware {
	const uint8_t *rom; /* the image; NULL when not loaded */
	uint64_t size;
	/* [0]: the whole ROM ending at 4 GiB; [1]: its tail ending at 1 MiB */
	struct firmware_region region[FIRMWARE_MAX_REGIONS];
	unsigned nregions;
};

/* 0 when a ROM of this size is acceptable, else -1 with a message (what names the file). */
int firmware_check_size(const char *what, uint64_t size);

/* How much of a ROM of rom_size bytes is aliased below 1 MiB: min(rom_size, 128 KiB). Pass it
 * to memmap_ram_slots() so that low RAM leaves room for the alias. */
uint64_t firmware_alias_size(uint64_t rom_size);

/* Where an image of size bytes at host address rom (page aligned) is mapped: fills out[] and
 * returns the region count (2), or -1 for a bad size. */
int firmware_layout(const uint8_t *rom, uint64_t size,
		    struct firmware_region out[FIRMWARE_MAX_REGIONS]);

/* Read and check path, fill *fw. On failure -1 with a one-line message naming the file, and
 * *fw is left empty (firmware_free is still safe). */
int firmware_load(const char *path, struct firmware *fw);
void firmware_free(struct firmware *fw);
