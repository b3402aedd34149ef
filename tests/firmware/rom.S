/*
 * A 64 KiB firmware ROM for the --firmware guest test. The CPU starts at the reset vector
 * (the ROM's last 16 bytes, at 0xFFFFFFF0 through the window that ends at 4 GiB); its far
 * jump lands in the copy visible below 1 MiB (segment 0xF000). The code prints a line on
 * COM1 and ends through debug-exit with 0, so hearth exits with status 1.
 */
	.code16
	.text
	.globl _start
_start:
	cli
	mov %cs, %ax
	mov %ax, %ds
	mov $0x3f8, %dx
	mov $msg, %si
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	xor %al, %al
	out %al, $0xf4
3:	hlt
	jmp 3b
msg:
	.asciz "hearth firmware ok\n"

	.org 0xfff0
reset:
	ljmp $0xf000, $_start
	.org 0x10000
