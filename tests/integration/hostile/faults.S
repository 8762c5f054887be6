/* Endless trap loops that retire no instruction: the trap handler itself faults at once, forever.
 * rivet must still honour --time-limit (and stay killable); a correct emulator spins in the loop until then.
 *
 * Parameter patched by the test: mode at offset 8.
 *   1  fetch from unmapped memory, mtvec pointing to the same unmapped address
 *   2  fetch from a device (the UART), mtvec there too
 *   3  a 4-byte instruction straddling the end of RAM, mtvec on the c.nop just before it
 *   4  a load from unmapped memory whose trap handler is that same load
 *   5  an illegal instruction that is its own trap handler
 *   6  S-mode with Sv39 whose root page table is unmapped: every fetch faults in the page walk; the
 *      M-mode handler re-enters S-mode at the same address
 *   7  vectored mtvec into unmapped memory with a timer interrupt pending and enabled */
#include "uart.h"

#define UNMAPPED 0x40000000

    .section .text.init
    .globl _start
_start:
    j entry
    .balign 8
mode: .dword 1

entry:
    bnez a0, park
    la a0, hello
    mv s1, a1
    jal uart_puts
    la t0, mode
    ld t0, 0(t0)
    li t1, 1
    beq t0, t1, mode1
    li t1, 2
    beq t0, t1, mode2
    li t1, 3
    beq t0, t1, mode3
    li t1, 4
    beq t0, t1, mode4
    li t1, 5
    beq t0, t1, mode5
    li t1, 6
    beq t0, t1, mode6
    li t1, 7
    beq t0, t1, mode7
    la a0, badmode
    jal uart_puts
    li t0, SYSCON_BASE
    li t1, POWER_FAIL | (9 << 16)
    sw t1, 0(t0)
park:
    wfi
    j park

mode1:
    li t0, UNMAPPED
    csrw mtvec, t0
    jr t0

mode2:
    li t0, UART_BASE
    csrw mtvec, t0
    jr t0

mode3:
    /* The device tree sits 2 MiB below the end of RAM (a1 at entry). */
    li t0, 0x200000
    add t0, s1, t0
    li t1, 0x0001           /* c.nop at end-4 */
    sh t1, -4(t0)
    li t1, 0x0013           /* first half of addi x0,x0,0 at end-2; the second half is past RAM */
    sh t1, -2(t0)
    fence.i
    addi t0, t0, -4
    csrw mtvec, t0
    jr t0

mode4:
    la t0, load_loop
    csrw mtvec, t0
    li t1, UNMAPPED
    .balign 4
load_loop:
    ld t2, 0(t1)
    j load_loop

mode5:
    la t0, illegal_loop
    csrw mtvec, t0
    .balign 4
illegal_loop:
    .word 0                 /* all-zero: an illegal instruction */

mode6:
    li t0, (8 << 60) | (UNMAPPED >> 12)     /* Sv39, root table in unmapped memory */
    csrw satp, t0
    la t0, reenter_s
    csrw mtvec, t0
    .balign 4
reenter_s:
    li t0, 0x1000
    csrw mepc, t0
    li t0, 3 << 11
    csrc mstatus, t0
    li t0, 1 << 11           /* MPP = S */
    csrs mstatus, t0
    mret

mode7:
    li t0, UNMAPPED | 1      /* vectored */
    csrw mtvec, t0
    li t0, 0x2000000 + 0x4000  /* mtimecmp of hart 0 = 0: the timer is pending at once */
    sd zero, 0(t0)
    li t0, 0x80
    csrw mie, t0
    csrsi mstatus, 8
1:  j 1b

    UART_PUTS_FUNCTION

    .section .rodata
hello: .asciz "FAULTS: starting\n"
badmode: .asciz "FAULTS: unknown mode\n"
