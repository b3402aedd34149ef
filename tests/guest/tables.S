/*
 * Static descriptor and page tables.  They are data in the image so that
 * ring 0 never builds them at run time (each emulated store costs ~2 us).
 * Values that need split addresses (IDT gates, the TSS descriptor) come from
 * symbols computed in testos.ld.
 */
#include "layout.h"

#define PTE_P 0x1
#define PTE_RW 0x2
#define PTE_US 0x4
#define PTE_PWT 0x8
#define PTE_PCD 0x10
#define PTE_PS 0x80
#define PTE_RAM (PTE_P | PTE_RW | PTE_US | PTE_PS)
#define PTE_DEV (PTE_RAM | PTE_PWT | PTE_PCD)

	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + (PTE_P | PTE_RW | PTE_US)
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x0000 + (PTE_P | PTE_RW | PTE_US)
	.quad pd + 0x1000 + (PTE_P | PTE_RW | PTE_US)
	.quad pd + 0x2000 + (PTE_P | PTE_RW | PTE_US)
	.quad pd + 0x3000 + (PTE_P | PTE_RW | PTE_US)
	.fill 508, 8, 0
	/* 4 GiB identity map in 2 MiB pages; 3-4 GiB holds the device windows
	 * (testdev MMIO, IOAPIC, LAPIC) and is uncached. */
pd:
	.set addr, 0
	.rept 1536
	.quad addr + PTE_RAM
	.set addr, addr + 0x200000
	.endr
	.rept 512
	.quad addr + PTE_DEV
	.set addr, addr + 0x200000
	.endr

	.section .data.gdt, "aw"
	.balign 16
	.globl gdt
gdt:
	.quad 0
	.quad 0x00AF9A000000FFFF	/* 0x08 kernel code, 64-bit */
	.quad 0x00CF92000000FFFF	/* 0x10 kernel data */
	.quad 0x00CF9A000000FFFF	/* 0x18 kernel code, 32-bit (AP start-up) */
	.quad 0x00CFF2000000FFFF	/* 0x20 user data */
	.quad 0x00AFFA000000FFFF	/* 0x28 user code, 64-bit */
	.quad TSS0_DESC_LO		/* 0x30 BSP TSS; AP slots are filled from ring 3 */
	.quad 0
	.fill 2 * (MAX_CPUS - 1), 8, 0

	.section .data.idt, "aw"
	.balign 16
	.globl idt
idt:
	.set vec, 0
	.rept 256
	.quad IDT_GATE_LO0 + 16 * vec
	.quad 0
	.set vec, vec + 1
	.endr

	/* Must be the last thing in .data (see testos.ld): the shared I/O
	 * bitmap starts the .bss, within 64 KiB of every TSS. */
	.section .tss, "aw"
	.balign 128
	.globl tss_array
tss_array:
	.long 0
	.quad bsp_kstack_top		/* RSP0 */
	.fill TSS_IOMAP - 12, 1, 0
	.word TSS0_IOMAP
	.fill TSS_STRIDE * MAX_CPUS - TSS_IOMAP - 2, 1, 0

	.section .bss.iobitmap, "aw", @nobits
	.balign 16
	.globl iobitmap
iobitmap:
	.skip IOBITMAP_SIZE + 16	/* all zero: every port allowed; +terminator */

	.section .note.GNU-stack, "", @progbits
