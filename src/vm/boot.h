/* Putting the guest's first code in place: a multiboot kernel (with the MP table the VMM
 * publishes) or a firmware ROM at the reset vector. */
#pragma once

#include "x86/memmap.h"

struct vm;
/* Before RAM is set up: read the firmware, whose low alias punches a hole in low RAM. */
int boot_prepare(struct vm *vm);
uint64_t boot_rom_alias_size(const struct vm *vm);
int boot_map_rom(struct vm *vm);
/* After devices and vCPUs exist: load the kernel and tables, set the BSP's registers. */
int boot_setup(struct vm *vm);
