/* Start-up for the C hostile programs: hart 0 gets a stack and a trap handler and calls main(dtb);
 * the other harts park. Any trap is unexpected: trap() reports it and powers off with a failure code. */
    .section .text.init
    .globl _start
_start:
    bnez a0, park
    la sp, stack_top
    la t0, trap_entry
    csrw mtvec, t0
    mv a0, a1
    call main
park:
    wfi
    j park

    .balign 4
trap_entry:
    csrr a0, mcause
    csrr a1, mepc
    csrr a2, mtval
    call trap
    j park
