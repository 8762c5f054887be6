/* Jump to garbage: fill 64 KiB of RAM with pseudo-random bytes, point mtvec into it, load every register
 * with random values (half of them addresses in RAM, a few the bases of devices) and jump into it.
 * Every hart does this; hart 0 fills the area, the others wait for it, each with its own random stream.
 * Whatever the random code does (traps, CSR writes, paging, stores over itself, device accesses), rivet
 * must keep running until --time-limit or a power-off, never crash.
 *
 * Parameters patched by the test into the binary: seed at offset 8. */
#include "uart.h"

#define GARBAGE_BASE 0x80100000
#define GARBAGE_SIZE 0x10000

    .section .text.init
    .globl _start
_start:
    j entry
    .balign 8
seed: .dword 0x9e3779b97f4a7c15

entry:
    la s0, seed
    ld s0, 0(s0)
    /* A different stream per hart: add hartid * golden ratio, keep it non-zero. */
    li t0, 0x9e3779b97f4a7c15
    mul t0, t0, a0
    add s0, s0, t0
    bnez s0, 1f
    li s0, 1
1:  bnez a0, wait_for_garbage

    la a0, hello
    jal uart_puts
    li s1, GARBAGE_BASE
    li s2, GARBAGE_BASE + GARBAGE_SIZE
    mv t0, s0
2:  XORSHIFT t0, t1
    sd t0, 0(s1)
    addi s1, s1, 8
    bltu s1, s2, 2b
    fence.i
    la t1, garbage_ready
    li t2, 1
    sw t2, 0(t1)
    j leap

wait_for_garbage:
    la t1, garbage_ready
3:  lw t2, 0(t1)
    beqz t2, 3b
    fence.i

leap:
    mv t0, s0
    /* mtvec and the target: 4- and 2-byte aligned points inside the garbage. */
    XORSHIFT t0, t1
    li t2, 0xfffc
    and t2, t0, t2
    li t1, GARBAGE_BASE
    add t2, t2, t1
    csrw mtvec, t2
    csrw mscratch, t0
    /* Let random device writes raise interrupts into the garbage too. */
    li t1, 0x888
    csrw mie, t1
    csrsi mstatus, 8

    /* Random registers: even-numbered ones hold 8-byte aligned RAM addresses, odd ones any value. */
    .irp reg, x1, x3, x8, x9, x11, x13, x15, x17, x19, x21, x23, x25, x27, x29, x31
    XORSHIFT t0, t1
    mv \reg, t0
    .endr
    li t2, 0x0ffffff8
    .irp reg, x2, x4, x10, x12, x18, x20, x22, x24, x26, x28, x30
    XORSHIFT t0, t1
    and t1, t0, t2
    li \reg, 0x80000000
    add \reg, \reg, t1
    .endr
    /* Device bases, so random loads/stores with small offsets reach CLINT, PLIC, UART and virtio. */
    li x14, 0x2000000
    li x16, 0xc000000
    XORSHIFT t0, t1
    srli t1, t0, 16
    li t2, 0xfffe
    and t1, t1, t2
    li t2, GARBAGE_BASE
    add t1, t1, t2
    li t0, 0x10000000
    li t2, 0x10001000
    jr t1

    UART_PUTS_FUNCTION

    .section .rodata
hello: .asciz "GARBAGE: jumping\n"
    .section .data
    .balign 8
garbage_ready: .word 0
