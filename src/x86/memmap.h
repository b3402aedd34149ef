/* The guest physical layout of a PC-like machine: where RAM goes for a given size, the
 * device windows in the 3-4 GiB hole, and the e820-style map handed to boot loaders.
 * Pure functions of the RAM size, so every loader and the VM layer agree. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct hearth_vm;

#define MEMMAP_KIB 0x400ULL
#define MEMMAP_MIB 0x100000ULL
#define MEMMAP_GIB 0x40000000ULL

#define MEMMAP_PAGE_SIZE 0x1000ULL

/* Low RAM ends at 3 GiB at most; whatever is left starts again at 4 GiB. */
#define MEMMAP_LOW_RAM_MAX 0xC0000000ULL
#define MEMMAP_HIGH_RAM_BASE 0x100000000ULL

/* RAM sizes: a multiple of 4 KiB (KVM maps pages), at least 2 MiB (the map needs RAM above
 * 1 MiB), at most 1 TiB (comfortably inside every host's physical address width). */
#define MEMMAP_RAM_MIN (2 * MEMMAP_MIB)
#define MEMMAP_RAM_MAX (1024 * MEMMAP_GIB)

/* Legacy areas below 1 MiB. */
#define MEMMAP_EBDA_BASE 0x9FC00ULL /* 1 KiB extended BIOS data area */
#define MEMMAP_EBDA_END 0xA0000ULL
#define MEMMAP_BIOS_BASE 0xF0000ULL /* BIOS area: holds the MP table */
#define MEMMAP_BIOS_END 0x100000ULL
#define MEMMAP_LOW_USABLE_END MEMMAP_EBDA_BASE

/* Device windows in the hole, all below the firmware ROM. */
#define MEMMAP_PCI_MMIO_BASE 0xC0000000ULL
#define MEMMAP_PCI_MMIO_SIZE 0x10000000ULL /* up to the test device */
#define MEMMAP_TESTDEV_BASE 0xD0000000ULL
#define MEMMAP_TESTDEV_SIZE 0x100000ULL
#define MEMMAP_IOAPIC_BASE 0xFEC00000ULL
#define MEMMAP_IOAPIC_SIZE 0x1000ULL
#define MEMMAP_LAPIC_BASE 0xFEE00000ULL
#define MEMMAP_LAPIC_SIZE 0x1000ULL
#define MEMMAP_4GIB 0x100000000ULL /* firmware ROM ends here */

/* e820 / multiboot memory types */
enum memmap_type {
	MEMMAP_USABLE = 1,
	MEMMAP_RESERVED = 2,
};

struct memmap_entry {
	uint64_t addr, size;
	uint32_t type; /* enum memmap_type */
};

/* One KVM memory slot of guest RAM. The VM layer allocates one host buffer of ram_size
 * bytes; a slot maps [offset, offset+size) of that buffer at gpa. */
struct memmap_slot {
	uint64_t gpa, size, offset;
};

/* Low RAM, high RAM, and one more when a firmware alias splits low RAM. */
#define MEMMAP_MAX_SLOTS 3
/* Usable x 4, reserved x 4: see memmap_entries(). */
#define MEMMAP_MAX_ENTRIES 8
#define MEMMAP_MAX_RESERVED 4

/* 0 when ram_size is acceptable, else -1 with a message naming the size and the rule. */
int memmap_check_size(uint64_t ram_size);

/* Top of low RAM: min(ram_size, 3 GiB). */
uint64_t memmap_low_top(uint64_t ram_size);

/* The RAM slots for ram_size (sorted by gpa). rom_alias_size is 0 without firmware, else the
 * size of the read-only firmware window that ends at 1 MiB (firmware_layout() gives it):
 * low RAM then has a hole there, so the ROM's slot does not overlap a RAM slot (the RAM
 * bytes under the hole are simply not mapped). Returns the slot count (1..3) or -1. */
int memmap_ram_slots(uint64_t ram_size, uint64_t rom_alias_size,
		     struct memmap_slot out[MEMMAP_MAX_SLOTS]);

/* Fill vm->ram[], vm->nram and vm->ram_size from the slots over the host buffer ram
 * (ram_size bytes). Returns 0 or -1. */
int memmap_setup_vm(struct hearth_vm *vm, uint8_t *ram, uint64_t ram_size, uint64_t rom_alias_size);

/* The memory map a boot loader reports (e820 and multiboot use the same types), sorted by
 * address, without firmware:
 *   usable   0 .. 0x9FC00            (640 KiB less the EBDA)
 *   reserved 0x9FC00 .. 0xA0000      (EBDA)
 *   reserved 0xF0000 .. 0x100000     (BIOS area, MP table)
 *   usable   1 MiB .. low top
 *   reserved IOAPIC page, LAPIC page
 *   usable   4 GiB .. 4 GiB + (ram_size - 3 GiB)   when ram_size > 3 GiB
 * Returns the entry count, or -1 for a bad size. */
int memmap_entries(uint64_t ram_size, struct memmap_entry out[MEMMAP_MAX_ENTRIES]);

/* Guest-physical ranges (type MEMMAP_RESERVED) that loaders must never write, whatever a
 * kernel image asks for: the EBDA through the end of the BIOS area (0x9FC00..1 MiB, which
 * also covers the VGA hole and the MP table) and the 3-4 GiB device hole. Returns the count or
 * -1 for a bad size. */
int memmap_reserved(uint64_t ram_size, struct memmap_entry out[MEMMAP_MAX_RESERVED]);

/* True when [gpa, gpa+len) lies inside one usable entry of the map for ram_size (len 0 is
 * true for any gpa inside or at the end of a usable entry). Never wraps. */
bool memmap_is_usable(uint64_t ram_size, uint64_t gpa, uint64_t len);
