# Entry for the bare-metal benchmark: a stack, call main, report main's return through HTIF tohost
# (1 = pass, (n << 1) | 1 = failure n), then spin until the host stops us.
    .section .text.init
    .globl _start
_start:
    la sp, stack_top
    # FP on (the compiler may use FP registers for nothing here, but be safe).
    li t0, 0x2000
    csrs mstatus, t0
    call main
    slli a0, a0, 1
    ori a0, a0, 1
    la t0, tohost
1:  sd a0, 0(t0)
    j 1b

    .section .tohost, "aw", @progbits
    .align 6
    .globl tohost
    .type tohost, @object
    .size tohost, 8
tohost: .dword 0
    .align 6
    .globl fromhost
    .type fromhost, @object
    .size fromhost, 8
fromhost: .dword 0

    .bss
    .align 4
    .space 65536
stack_top:
