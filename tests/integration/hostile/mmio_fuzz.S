/* MMIO fuzzer: every hart does `iterations` random accesses (3 in 4 stores) of random size (1, 2, 4 or 8
 * bytes, naturally aligned) with random values at random offsets of every device window: CLINT, PLIC
 * (priorities, pending, enables, contexts and the unmapped space past it), UART, all eight virtio slots
 * (the first, a disk, twice as often), RTC and syscon. Only the syscon's power-off register is spared.
 * Values are shaped (see below). Faults (unmapped offsets, unsupported sizes) are skipped by the trap handler. Then hart 0 waits for the
 * others, resets the UART, prints "MMIO-FUZZ: done", and powers off. Interrupts stay disabled.
 *
 * Parameters patched by the test: seed at offset 8, iterations at 16, number of harts at 24. */
#include "uart.h"

    .section .text.init
    .globl _start
_start:
    j entry
    .balign 8
seed:       .dword 0x2545f4914f6cdd1d
iterations: .dword 200000
harts:      .dword 1

entry:
    .option push
    .option norvc           /* every access is 4 bytes long, so the trap handler can skip it */
    la t0, skip_fault
    csrw mtvec, t0
    csrw mie, zero
    la s0, seed
    ld s0, 0(s0)
    li t0, 0x9e3779b97f4a7c15
    addi t1, a0, 1
    mul t0, t0, t1
    xor s0, s0, t0
    bnez s0, 1f
    li s0, 1
1:  la s1, iterations
    ld s1, 0(s1)
    la s2, windows
    mv s3, a0

fuzz:
    beqz s1, finished
    addi s1, s1, -1
    XORSHIFT s0, t0
    /* window = bits 0..3 (16 entries of base, offset mask) */
    andi t0, s0, 15
    slli t0, t0, 4
    add t0, s2, t0
    ld t1, 0(t0)            /* base */
    ld t2, 8(t0)            /* offset mask */
    srli t3, s0, 8
    and t3, t3, t2
    /* size = 1 << bits 40..41, aligned down */
    srli t4, s0, 40
    andi t4, t4, 3
    li t5, -1
    sll t5, t5, t4
    and t3, t3, t5
    add a2, t1, t3          /* address */
    li t5, SYSCON_BASE
    beq a2, t5, fuzz        /* the power-off register */
    XORSHIFT s0, t0
    /* value: bits 52..53 pick full random, a byte, 0..7, or a 16-byte aligned RAM address, so that
     * enables, selectors, queue sizes and ring addresses get plausible values often enough */
    mv a3, s0
    srli t5, s0, 52
    andi t5, t5, 3
    beqz t5, 3f
    li t6, 1
    bne t5, t6, 2f
    andi a3, a3, 0xff
    j 3f
2:  li t6, 2
    bne t5, t6, 2f
    andi a3, a3, 7
    j 3f
2:  li t6, 0x0ffffff0
    and a3, a3, t6
    li t6, 0x80000000
    or a3, a3, t6
3:
    srli t5, s0, 50
    andi t5, t5, 3
    beqz t5, do_load
    li t5, 1
    beqz t4, st1
    beq t4, t5, st2
    li t5, 2
    beq t4, t5, st4
    sd a3, 0(a2)
    j fuzz
st1: sb a3, 0(a2)
    j fuzz
st2: sh a3, 0(a2)
    j fuzz
st4: sw a3, 0(a2)
    j fuzz
do_load:
    li t5, 1
    beqz t4, ld1
    beq t4, t5, ld2
    li t5, 2
    beq t4, t5, ld4
    ld a4, 0(a2)
    j fuzz
ld1: lbu a4, 0(a2)
    j fuzz
ld2: lhu a4, 0(a2)
    j fuzz
ld4: lwu a4, 0(a2)
    j fuzz

finished:
    la t0, finished_harts
    li t1, 1
    amoadd.w zero, t1, (t0)
    bnez s3, park
    la t1, harts
    ld t1, 0(t1)
2:  lw t2, 0(t0)
    bltu t2, t1, 2b
    UART_RESET
    la a0, done
    jal uart_puts
    li t0, SYSCON_BASE
    li t1, POWER_OFF
    sw t1, 0(t0)
park:
    wfi
    j park

    .balign 4
skip_fault:
    csrr t6, mepc
    addi t6, t6, 4
    csrw mepc, t6
    mret
    .option pop

    UART_PUTS_FUNCTION

    .section .rodata
    .balign 8
windows:                    /* base, offset mask */
    .dword 0x2000000,  0xffff      /* CLINT */
    .dword 0xc000000,  0xfff       /* PLIC priorities */
    .dword 0xc001000,  0xfff       /* PLIC pending */
    .dword 0xc002000,  0x1fff      /* PLIC enables */
    .dword 0xc200000,  0x7fff      /* PLIC contexts (threshold, claim) */
    .dword 0xc000000,  0xffffff    /* all of the PLIC window and past it */
    .dword 0x10000000, 0xff        /* UART */
    .dword 0x10001000, 0x1ff       /* virtio slot 0 registers */
    .dword 0x10001000, 0x1ff       /* (twice as often) */
    .dword 0x10001000, 0x7fff      /* all virtio slots */
    .dword 0x10002000, 0x1ff       /* virtio slot 1 (entropy when one disk is attached) */
    .dword 0x101000,   0xfff       /* RTC */
    .dword 0x100000,   0xfff       /* syscon */
    .dword 0x2000000,  0xffff      /* CLINT again */
    .dword 0x0,        0xffffff    /* low space: mostly unmapped */
    .dword 0x10000000, 0xffff      /* UART and virtio */
done: .asciz "MMIO-FUZZ: done\n"
    .section .data
    .balign 8
finished_harts: .word 0
