/* Entry of the arm64 payload (EL1, MMU off): a stack, then main(). */
	.section .text.start
	.globl _start
_start:
	ldr	x0, =stack_top
	mov	sp, x0
	bl	main
1:	wfi
	b	1b

	.section .bss
	.align 4
	.space 16384
stack_top:

	.section .note.GNU-stack,"",@progbits
