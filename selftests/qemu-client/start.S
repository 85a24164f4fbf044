/* Entry of the multiboot payload: a stack, then main(). */
	.section .text
	.globl _start
_start:
	cli
	mov $stack_top, %esp
	call main
1:	hlt
	jmp 1b

	.section .bss
	.align 16
	.space 16384
stack_top:

	.section .note.GNU-stack,"",@progbits
