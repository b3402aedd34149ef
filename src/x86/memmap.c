#include "x86/memmap.h"

#include "dev/machine.h"
#include "hearth/error.h"

int memmap_check_size(uint64_t ram_size)
{
	if (ram_size % MEMMAP_PAGE_SIZE)
		return hearth_err("RAM size %#llx is not a multiple of 4 KiB",
				  (unsigned long long)ram_size);
	if (ram_size < MEMMAP_RAM_MIN)
		return hearth_err("RAM size %#llx is below the minimum of 2 MiB",
				  (unsigned long long)ram_size);
	if (ram_size > MEMMAP_RAM_MAX)
		return hearth_err("RAM size %#llx is above the maximum of 1 TiB",
				  (unsigned long long)ram_size);
	return 0;
}

uint64_t memmap_low_top(uint64_t ram_size)
{
	return ram_size < MEMMAP_LOW_RAM_MAX ? ram_size : MEMMAP_LOW_RAM_MAX;
}

int memmap_ram_slots(uint64_t ram_size, uint64_t rom_alias_size,
		     struct memmap_slot out[MEMMAP_MAX_SLOTS])
{
	uint64_t low = memmap_low_top(ram_size);
	int n = 0;

	if (memmap_check_size(ram_size))
		return -1;
	/* the alias must end at 1 MiB and stay above the EBDA, as on a PC */
	if (rom_alias_size % MEMMAP_PAGE_SIZE || rom_alias_size > MEMMAP_BIOS_END - MEMMAP_EBDA_END)
		return hearth_err("firmware window below 1 MiB of %#llx bytes is not a multiple "
				  "of 4 KiB up to 384 KiB",
				  (unsigned long long)rom_alias_size);
	if (rom_alias_size) {
		uint64_t hole = MEMMAP_BIOS_END - rom_alias_size;

		out[n++] = (struct memmap_slot){0, hole, 0};
		out[n++] = (struct memmap_slot){MEMMAP_BIOS_END, low - MEMMAP_BIOS_END,
						MEMMAP_BIOS_END};
	} else {
		out[n++] = (struct memmap_slot){0, low, 0};
	}
	if (ram_size > low)
		out[n++] = (struct memmap_slot){MEMMAP_HIGH_RAM_BASE, ram_size - low, low};
	return n;
}

int memmap_setup_vm(struct hearth_vm *vm, uint8_t *ram, uint64_t ram_size, uint64_t rom_alias_size)
{
	struct memmap_slot s[MEMMAP_MAX_SLOTS];
	int n = memmap_ram_slots(ram_size, rom_alias_size, s);

	if (n < 0)
		return -1;
	_Static_assert(MEMMAP_MAX_SLOTS <= HEARTH_MAX_RAM_SLOTS, "vm->ram[] too small");
	for (int i = 0; i < n; i++)
		vm->ram[i] = (struct hearth_ram_slot){s[i].gpa, s[i].size, ram + s[i].offset};
	vm->nram = (unsigned)n;
	vm->ram_size = ram_size;
	return 0;
}

int memmap_entries(uint64_t ram_size, struct memmap_entry out[MEMMAP_MAX_ENTRIES])
{
	uint64_t low = memmap_low_top(ram_size);
	int n = 0;

	if (memmap_check_size(ram_size))
		return -1;
	out[n++] = (struct memmap_entry){0, MEMMAP_EBDA_BASE, MEMMAP_USABLE};
	out[n++] = (struct memmap_entry){MEMMAP_EBDA_BASE, MEMMAP_EBDA_END - MEMMAP_EBDA_BASE,
					 MEMMAP_RESERVED};
	out[n++] = (struct memmap_entry){MEMMAP_BIOS_BASE, MEMMAP_BIOS_END - MEMMAP_BIOS_BASE,
					 MEMMAP_RESERVED};
	out[n++] = (struct memmap_entry){MEMMAP_BIOS_END, low - MEMMAP_BIOS_END, MEMMAP_USABLE};
	out[n++] = (struct memmap_entry){MEMMAP_IOAPIC_BASE, MEMMAP_IOAPIC_SIZE, MEMMAP_RESERVED};
	out[n++] = (struct memmap_entry){MEMMAP_LAPIC_BASE, MEMMAP_LAPIC_SIZE, MEMMAP_RESERVED};
	if (ram_size > low)
		out[n++] =
			(struct memmap_entry){MEMMAP_HIGH_RAM_BASE, ram_size - low, MEMMAP_USABLE};
	return n;
}

int memmap_reserved(uint64_t ram_size, struct memmap_entry out[MEMMAP_MAX_RESERVED])
{
	if (memmap_check_size(ram_size))
		return -1;
	out[0] = (struct memmap_entry){MEMMAP_EBDA_BASE, MEMMAP_BIOS_END - MEMMAP_EBDA_BASE,
				       MEMMAP_RESERVED};
	out[1] = (struct memmap_entry){MEMMAP_LOW_RAM_MAX, MEMMAP_4GIB - MEMMAP_LOW_RAM_MAX,
				       MEMMAP_RESERVED};
	return 2;
}

bool memmap_is_usable(uint64_t ram_size, uint64_t gpa, uint64_t len)
{
	struct memmap_entry e[MEMMAP_MAX_ENTRIES];
	int n = memmap_entries(ram_size, e);

	for (int i = 0; i < n; i++) {
		if (e[i].type != MEMMAP_USABLE || gpa < e[i].addr)
			continue;
		/* subtract before comparing so that gpa + len can never wrap */
		if (gpa - e[i].addr <= e[i].size && len <= e[i].size - (gpa - e[i].addr))
			return true;
	}
	return false;
}
