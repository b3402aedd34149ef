/*
 * Constants shared by the ring-0 assembly and the ring-3 C code.  Kept in one
 * place because the GDT, TSS and stack layout are built statically by the
 * assembler and later extended (for APs) from ring 3.
 */
#ifndef TESTOS_LAYOUT_H
#define TESTOS_LAYOUT_H

#define LOAD_ADDR 0x100000

#define SEL_KCODE64 0x08
#define SEL_KDATA 0x10
#define SEL_KCODE32 0x18
#define SEL_UDATA 0x20
#define SEL_UCODE64 0x28
#define SEL_TSS0 0x30 /* CPU i uses SEL_TSS0 + 16 * i */

#define MAX_CPUS 32
#define GDT_FIXED 6 /* null + 5 code/data descriptors before the TSS slots */
#define GDT_SIZE (8 * (GDT_FIXED + 2 * MAX_CPUS))

/* One TSS per CPU (each needs its own RSP0); all share one I/O bitmap. */
#define TSS_STRIDE 128
#define TSS_RSP0 4
#define TSS_IOMAP 0x66
#define IOBITMAP_SIZE 8192

#define KSTACK_SIZE 4096
#define BSP_USTACK_SIZE 65536
#define AP_USTACK_SIZE 16384
#define FAULT_STACK_SIZE 16384

#define NR_EXCEPTIONS 32

/* ud2 system calls (boot.S ud_service): the magic goes in edi */
#define UD_RDMSR 0x4d535201
#define UD_WRMSR 0x4d535202
#define UD_WAIT 0x57414954    /* sleep until an interrupt unless *rcx != rax */
#define UD_TRIPLE 0x54524950  /* fault with no IDT: #UD, #DF, shutdown (the VMM's crash path) */
#define UD_EMUFAIL 0x454d5546 /* popcnt in ring 0: PVM's emulator cannot (KVM internal error) */

#define CR0_BOOT 0x80010033 /* PG | WP | NE | ET | MP | PE */
#define CR4_BOOT 0x620	    /* PAE | OSFXSR | OSXMMEXCPT (no OSXSAVE: xsave kills PVM ring 0) */
#define MSR_EFER 0xC0000080
#define EFER_LME 0x100

#define LAPIC_BASE 0xFEE00000
#define LAPIC_EOI 0xB0

#define PORT_DEBUG_EXIT 0xF4
#define PORT_I8042_CMD 0x64

#endif
