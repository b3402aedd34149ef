/*
 * Ring-0 part of the test OS.  On PVM every ring-0 instruction is emulated
 * (~2 us each), so this file does the minimum: switch to long mode with the
 * static tables from tables.S, drop to ring 3, and provide handlers that only
 * count interrupts or hand exceptions to a ring-3 reporter.  Nothing here
 * loops, zeroes or copies memory.
 */
#include "layout.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010003 /* page-aligned modules, memory info, a.out kludge */

	.section .multiboot, "a"
	.balign 4
	.globl mb_header
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
	/* The kludge fields: QEMU refuses ELF64 multiboot images without them. */
	.long mb_header
	.long image_start
	.long image_data_end
	.long image_end
	.long _start

	.text
	.code32
	.globl _start
_start:
	/* Multiboot magic and info pointer stay in esi/edi: they become the
	 * first two arguments of user_main() after iretq. */
	mov %eax, %esi
	mov %ebx, %edi
	/* Under PVM, cpuid once paging runs is answered by the host CPU; here, before long
	 * mode, the VMM's CPUID table answers. Keep the leaves the tests want. */
	mov $0x40000100, %eax
	xor %ecx, %ecx
	cpuid
	mov %eax, early_cpuid + 0
	mov %ebx, early_cpuid + 4
	mov %ecx, early_cpuid + 8
	mov %edx, early_cpuid + 12
	lgdt gdtr32
	mov $CR4_BOOT, %eax
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	mov $EFER_LME, %eax
	xor %edx, %edx
	wrmsr
	mov $CR0_BOOT, %eax
	mov %eax, %cr0
	ljmp $SEL_KCODE64, $bsp_entry64

	.code64
bsp_entry64:
	mov $bsp_kstack_top, %esp
	lidt idtr
	mov $SEL_TSS0, %eax
	ltr %ax
	/* Firmware (SeaBIOS under QEMU) may leave the 8259 timer unmasked with
	 * its vectors on top of our exception vectors; ring 3 cannot clear IF. */
	mov $0xff, %al
	out %al, $0x21
	out %al, $0xa1
	push $(SEL_UDATA | 3)
	push $(bsp_ustack_top - 8)
	push $0x202
	push $(SEL_UCODE64 | 3)
	push $user_main
	iretq

/*
 * AP start-up.  ap_tramp..ap_tramp_end is copied by ring 3 to a page below
 * 1 MiB and started with SIPI; it only needs to reach the 32-bit code below,
 * which lives in the image.  Ring 3 fills ap_boot before each SIPI.
 */
	.code16
	.balign 16
	.globl ap_tramp, ap_tramp_end
ap_tramp:
	lgdtl %cs:(ap_tramp_gdtr - ap_tramp)
	movl $0x11, %eax
	movl %eax, %cr0
	ljmpl $SEL_KCODE32, $ap_entry32
	.balign 8
ap_tramp_gdtr:
	.word GDT_SIZE - 1
	.long gdt
ap_tramp_end:

	.code32
ap_entry32:
	mov $SEL_KDATA, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov $CR4_BOOT, %eax
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	mov $EFER_LME, %eax
	xor %edx, %edx
	wrmsr
	mov $CR0_BOOT, %eax
	mov %eax, %cr0
	ljmp $SEL_KCODE64, $ap_entry64

	.code64
ap_entry64:
	mov ap_boot + 0, %rsp
	lidt idtr
	mov ap_boot + 16, %eax
	ltr %ax
	mov ap_boot + 24, %edi
	push $(SEL_UDATA | 3)
	pushq ap_boot + 8
	push $0x202
	push $(SEL_UCODE64 | 3)
	push $ap_main
	iretq

/*
 * 256 entry stubs, 16 bytes apart, so that tables.S can compute every IDT
 * gate from one base value.  Exceptions get a uniform frame; everything else
 * is counted in irq_count[vector] and acknowledged at the LAPIC.
 */
	.balign 4096
	.globl isr_stubs
isr_stubs:
	.set vec, 0
	.rept 256
	.balign 16
	.if vec == 6
	jmp ud_service
	.elseif vec < NR_EXCEPTIONS
	.if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0
	.endif
	pushq $vec
	jmp exc_common
	.else
	lock incq irq_count + 8 * vec
	jmp irq_eoi
	.endif
	.set vec, vec + 1
	.endr

/*
 * Ring 3 cannot touch MSRs, and ud2 is the only trap into ring 0 here (PVM.md), so a ud2
 * with a magic in edi is the test OS's one system call: rdmsr (edi = UD_RDMSR) or wrmsr
 * (edi = UD_WRMSR), ecx = MSR, edx:eax = value, as the instructions take them. Any other
 * ud2 is a real invalid opcode.
 *
 * edi = UD_WAIT idles the CPU until the next interrupt (ring 3 cannot hlt): rcx points to
 * a counter (irq_count[v]) and rax holds the value ring 3 last saw. The gate entered with
 * IF clear, so an interrupt that came after that check stays pending until sti, whose
 * shadow covers hlt: no wake-up is lost.
 */
ud_service:	/* crash=triple and crash=emulation test the VMM's guest-crash reports */
	cmp $UD_RDMSR, %edi
	je 1f
	cmp $UD_WRMSR, %edi
	je 2f
	cmp $UD_WAIT, %edi
	je 3f
	cmp $UD_TRIPLE, %edi
	je 5f
	cmp $UD_EMUFAIL, %edi
	je 6f
	pushq $0
	pushq $6
	jmp exc_common
1:	rdmsr
	addq $2, (%rsp)
	iretq
2:	wrmsr
	addq $2, (%rsp)
	iretq
5:	lidt null_idtr
	ud2
6:	popcnt %rax, %rax
	addq $2, (%rsp)
	iretq
3:	addq $2, (%rsp)
	cmp %rax, (%rcx)
	jne 4f
	sti
	hlt
4:	iretq

irq_eoi:
	push %rax
	mov $(LAPIC_BASE + LAPIC_EOI), %eax
	movl $0, (%rax)
	pop %rax
	iretq

/*
 * Exceptions are fatal.  Save the frame and continue in ring 3 (fault_report)
 * where printing runs natively; a second fault while reporting ends the VM
 * from here.
 */
exc_common:
	lock btsl $0, fault_lock
	jc fault_die
	popq fault_info + 0	/* vector */
	popq fault_info + 8	/* error code */
	popq fault_info + 16	/* rip */
	popq fault_info + 24	/* cs */
	popq fault_info + 32	/* rflags */
	popq fault_info + 40	/* rsp */
	mov %cr2, %rax
	mov %rax, fault_info + 48
	push $(SEL_UDATA | 3)
	push $(fault_stack_top - 8)
	push $0x2
	push $(SEL_UCODE64 | 3)
	push $fault_report
	iretq
fault_die:
	mov $0x7f, %al
	out %al, $PORT_DEBUG_EXIT
	mov $0xfe, %al
	out %al, $PORT_I8042_CMD
1:	hlt
	jmp 1b

	.section .rodata
	.balign 8
gdtr32:
	.word GDT_SIZE - 1
	.long gdt
	.balign 8
null_idtr:
	.word 0
	.quad 0
idtr:
	.word 256 * 16 - 1
	.quad idt

	.bss
	.balign 4096
	.globl irq_count, fault_info, fault_lock, ap_boot, early_cpuid
early_cpuid:	/* CPUID 0x40000100 (testdev's leaf) at entry, before long mode */
	.skip 16
irq_count:
	.skip 8 * 256
fault_info:
	.skip 8 * 8
fault_lock:
	.skip 8
ap_boot:	/* rsp0, user rsp, TSS selector, argument: written by ring 3 */
	.skip 8 * 4
	.balign 16
bsp_kstack:
	.skip KSTACK_SIZE
bsp_kstack_top:
	.globl bsp_kstack_top
bsp_ustack:
	.skip BSP_USTACK_SIZE
bsp_ustack_top:
fault_stack:
	.skip FAULT_STACK_SIZE
fault_stack_top:

	.section .note.GNU-stack, "", @progbits
