/* Jump to garbage: fill 64 KiB of RAM with pseudo-random bytes and run it. Every trap lands in `leap`,
 * which jumps to another random point of the garbage with fresh random registers (half of them
 * addresses in RAM, a few the bases of devices), in a random privilege mode (M, S or U), sometimes with
 * a random Sv39/Sv48/Sv57 page table root inside the garbage. Every hart does this with its own random
 * stream; hart 0 fills the area, the others wait for it. Whatever the random code does (traps, CSR
 * writes, paging, stores over itself, device accesses, WFI), rivet must keep running until --time-limit
 * or a power-off, never crash.
 *
 * Parameter patched by the test: seed at offset 8. */
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
1:  csrw mscratch, s0
    bnez a0, wait_for_garbage

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

    /* Entry point and trap handler (M-mode): pick the next random start in the garbage. */
    .balign 4
leap:
    csrr t0, mscratch
    XORSHIFT t0, t1
    csrw mscratch, t0
    la t1, leap             /* the garbage may have moved mtvec */
    csrw mtvec, t1
    /* Privilege after mret: M (half of the time), S or U. */
    li t1, 3 << 11
    csrc mstatus, t1
    andi t2, t0, 3
    li t1, 2
    beq t2, t1, 4f
    li t1, 3
    beq t2, t1, 5f
    li t1, 3 << 11
    csrs mstatus, t1
    j 5f
4:  li t1, 1 << 11
    csrs mstatus, t1
5:  /* Paging: one time in four a random root inside the garbage, mode Sv39, Sv48 or Sv57. */
    csrw satp, zero
    srli t2, t0, 2
    andi t2, t2, 3
    bnez t2, 6f
    srli t1, t0, 4
    andi t1, t1, 15
    li t2, GARBAGE_BASE >> 12
    add t1, t1, t2
    srli t2, t0, 8
    andi t2, t2, 3
    addi t2, t2, 8          /* 8, 9, 10 or 11 (11 is reserved: must be ignored) */
    slli t2, t2, 60
    or t1, t1, t2
    csrw satp, t1
6:  sfence.vma
    /* Quiet this hart's software and timer interrupts, then enable a random subset of the
     * machine-level ones so random device writes can raise interrupts into `leap` too. */
    csrr t1, mhartid
    slli t2, t1, 2
    li a0, 0x2000000
    add t2, t2, a0
    sw zero, 0(t2)
    slli t2, t1, 3
    li a0, 0x2004000
    add t2, t2, a0
    li a0, -1
    sd a0, 0(t2)
    srli t1, t0, 10
    li t2, 0x888
    and t1, t1, t2
    csrw mie, t1
    li t1, 1 << 7           /* MPIE */
    csrs mstatus, t1
    /* Target: a 2-byte aligned point in the garbage (also its virtual address under paging). */
    srli t1, t0, 16
    li t2, 0xfffe
    and t1, t1, t2
    li t2, GARBAGE_BASE
    add t1, t1, t2
    csrw mepc, t1

    /* Random registers: odd-numbered ones any value, even ones 8-byte aligned RAM addresses. */
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
    li t0, 0x10000000
    li t1, 0x10001000
    li t2, 0x101000
    mret

    UART_PUTS_FUNCTION

    .section .rodata
hello: .asciz "GARBAGE: jumping\n"
    .section .data
    .balign 8
garbage_ready: .word 0
