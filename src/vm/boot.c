/* The guest's first code: a multiboot kernel entered in 32-bit protected mode (with the MP
 * table describing CPUs, IOAPIC and ISA routing), or a firmware ROM run from the reset
 * vector, which then describes the machine itself. */
#include "vm/boot.h"

#include <string.h>

#include "bus/pci_internal.h"
#include "vm/vm.h"
#include "x86/firmware.h"
#include "x86/mptable.h"
#include "x86/multiboot.h"

int boot_prepare(struct vm *vm)
{
	if (!vm->cfg->firmware)
		return 0;
	if (firmware_load(vm->cfg->firmware, &vm->fw) < 0)
		return -1;
	return 0;
}

uint64_t boot_rom_alias_size(const struct vm *vm)
{
	return vm->fw.rom ? firmware_alias_size(vm->fw.size) : 0;
}

int boot_map_rom(struct vm *vm)
{
	for (unsigned i = 0; i < vm->fw.nregions; i++) {
		const struct firmware_region *r = &vm->fw.region[i];
		if (kvm_set_memory(vm->vmfd, vm->nslots++, r->gpa, r->size, (void *)r->hva, true) <
		    0)
			return -1;
	}
	return 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	*s = (struct kvm_segment){.base = 0,
				  .limit = 0xffffffff,
				  .selector = sel,
				  .type = type,
				  .present = 1,
				  .dpl = 0,
				  .db = 1,
				  .s = 1,
				  .l = 0,
				  .g = 1};
}

/* Multiboot's machine state: protected mode, paging off, flat segments, EAX magic, EBX the
 * information structure, interrupts off. */
static int enter_multiboot(struct vcpu *bsp, const struct multiboot_boot *mb)
{
	struct kvm_sregs s;
	struct kvm_regs r = {0};

	if (kvm_get_sregs(&bsp->kvm, &s) < 0)
		return -1;
	flat_segment(&s.cs, 0x08, 0xb);
	flat_segment(&s.ds, 0x10, 0x3);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.cr0 = 0x11; /* PE | ET */
	s.cr4 = 0;
	s.efer = 0;
	if (kvm_set_sregs(&bsp->kvm, &s) < 0)
		return -1;
	r.rip = mb->entry;
	r.rax = mb->magic;
	r.rbx = mb->info_addr;
	r.rflags = 0x2;
	return kvm_set_regs(&bsp->kvm, &r);
}

int boot_setup(struct vm *vm)
{
	const struct vm_config *cfg = vm->cfg;
	struct multiboot_boot mb;

	if (cfg->firmware)
		return 0; /* the reset state KVM gives vCPU 0 is the PC's */
	if (!cfg->kernel)
		return hearth_err("nothing to boot: give --kernel or --firmware");
	struct multiboot_module mods[cfg->nmodules ? cfg->nmodules : 1];
	for (unsigned i = 0; i < cfg->nmodules; i++)
		mods[i] = (struct multiboot_module){cfg->modules[i].path, cfg->modules[i].string};
	if (multiboot_load(&vm->m, cfg->kernel, cfg->cmdline, mods, cfg->nmodules, &mb) < 0)
		return -1;
	struct mptable mp;
	if (mptable_init(&mp, vm->ncpus, 0, 0) < 0 || pci_mptable(&vm->m, &mp) < 0 ||
	    mptable_write(&vm->m, &mp) < 0)
		return -1;
	return enter_multiboot(&vm->vcpus[0], &mb);
}
