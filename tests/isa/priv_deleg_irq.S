// Delegation and interrupts: medeleg sends U/S exceptions to the S handler (scause/sepc/stval,
// SPP/SPIE/SIE on entry, sret restoring them) but never M-mode ones; medeleg bit 11 is read-only
// zero. Supervisor software interrupts (mip.SSIP set from M): taken in M when not delegated
// (respecting MIE only while in M), taken in S when delegated (respecting SIE only while in S,
// never taken in M), mcause/scause with the interrupt bit, direct and vectored mtvec/stvec
// (vectored applies only to interrupts), and wfi returning when an enabled interrupt is pending
// even with interrupts globally disabled.
#include "rivet_test.h"

#define INT_SSI (CAUSE_INT | 1)
#define UNUSED_ADDR 0x100

// Wait (bounded) until trap_area.icount == expected, else fail.
#define WAIT_ICOUNT(expected) li a5, 2000; 95: la t6, trap_area; ld t5, TR_ICOUNT(t6); \
  li t6, expected; beq t5, t6, 94f; addi a5, a5, -1; bnez a5, 95b; j fail; 94:
// Spin a while and fail if any interrupt arrives.
#define EXPECT_NO_IRQ(count) li a5, 200; 95: addi a5, a5, -1; bnez a5, 95b; \
  la t6, trap_area; ld t5, TR_ICOUNT(t6); CHECK(t5, count)

TEST_MAIN
        // ---- exception delegation ----
        li a1, (1 << CAUSE_ECALL_U) | (1 << CAUSE_ILLEGAL) | (1 << CAUSE_BREAKPOINT) | (1 << CAUSE_ECALL_S)
        csrw medeleg, a1
        CASE(1)                             // ecall from U goes to S
        GOTO_U(2f)
2:      TRAP_ARM(1f)
3:      ecall
1:      TRAP_EXPECT(CAUSE_ECALL_U, 0, 1)
        TRAP_EPC(a2)
        la a1, 3b
        CHECK_REG(a2, a1)
        CASE(2)                             // SPP = 0 (from U), SIE was 0 -> SPIE = 0
        TRAP_STATUS(a2)
        andi a2, a2, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE
        CHECK(a2, 0)
        CASE(3)                             // illegal instruction from U goes to S, stval = bits
        TRAP_ARM(1f)
3:      .word 0x0005050b
1:      TRAP_EXPECT(CAUSE_ILLEGAL, 0x0005050b, 1)
        CASE(4)                             // ecall from S is delegated too; leave U via S
        li a1, 0
        TRAP_ARM_MODE(1f, 1)                // S handler continues in S
        ecall
1:      TRAP_EXPECT(CAUSE_ECALL_U, 0, 1)
        csrr a2, sstatus                    // legal: we are in S
        CASE(5)
        li a1, MSTATUS_SIE
        csrs sstatus, a1                    // (no S interrupt is pending or enabled)
        TRAP_ARM(1f)
        ecall
1:      TRAP_EXPECT(CAUSE_ECALL_S, 0, 1)
        TRAP_STATUS(a2)                     // SPP = 1, SPIE = old SIE = 1, SIE = 0
        andi a2, a2, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE
        CHECK(a2, MSTATUS_SPP | MSTATUS_SPIE)
        CASE(6)                             // sret: SIE = SPIE, SPIE = 1, SPP = U
        csrr a2, sstatus
        andi a2, a2, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE
        CHECK(a2, MSTATUS_SPIE | MSTATUS_SIE)
        li a1, MSTATUS_SIE
        csrc sstatus, a1
        CASE(7)                             // breakpoint delegated: stval = pc (Rivet) or 0
        .option push
        .option norvc
        TRAP_ARM(1f)
3:      ebreak
        .option pop
1:      TRAP_EXPECT_CAUSE(CAUSE_BREAKPOINT)
        la a1, 3b
        CHECK_BREAK_TVAL(a1)
        la a4, trap_area
        ld a2, TR_LEVEL(a4)
        CHECK(a2, 1)
        CASE(8)                             // undelegated causes still go to M
        li a1, UNUSED_ADDR
        TRAP_ARM(1f)
        ld a2, 0(a1)
1:      TRAP_EXPECT(CAUSE_LOAD_ACCESS, UNUSED_ADDR, 3)
        // ecall is delegated now: get back to M through an undelegated access fault
        TRAP_ARM_MODE(1f, 3)
        li a1, UNUSED_ADDR
        ld a1, 0(a1)
1:      TRAP_EXPECT(CAUSE_LOAD_ACCESS, UNUSED_ADDR, 3)
        CASE(9)                             // delegated causes raised in M stay in M
        TRAP_ARM(1f)
        .word 0x0005050b
1:      TRAP_EXPECT(CAUSE_ILLEGAL, 0x0005050b, 3)
#ifndef QEMU_ORACLE
        // QEMU 7.2 differs: it lets medeleg[11] be written.
        CASE(10)                            // medeleg[11] (ecall from M) is read-only zero
        li a1, -1
        csrw medeleg, a1
        csrr a2, medeleg
        srli a2, a2, 11
        andi a2, a2, 1
        CHECK(a2, 0)
#endif
        csrw medeleg, zero

        // ---- supervisor software interrupt handled in M (not delegated) ----
        csrw mideleg, zero
        li a1, MIP_SSIP
        csrs mie, a1
        CASE(20)                            // pending but MIE = 0 in M: not taken
        csrs mip, a1
        EXPECT_NO_IRQ(0)
        csrr a2, mip
        andi a2, a2, MIP_SSIP
        CHECK(a2, MIP_SSIP)
        CASE(21)                            // wfi returns: an enabled interrupt is pending
        wfi
        EXPECT_NO_IRQ(0)
        CASE(22)                            // MIE = 1: taken, mcause = interrupt | 1
        li a2, MSTATUS_MIE
        csrs mstatus, a2
        WAIT_ICOUNT(1)
        csrc mstatus, a2
        la a4, trap_area
        ld a3, TR_ICAUSE(a4)
        CHECK(a3, INT_SSI)
        ld a3, TR_ILEVEL(a4)
        CHECK(a3, 3)
        csrr a2, mip                        // the handler cleared it
        andi a2, a2, MIP_SSIP
        CHECK(a2, 0)
        CASE(23)                            // in S, an M-level interrupt is taken whatever MIE says
        csrs mip, a1
        EXPECT_NO_IRQ(1)
        GOTO_S(2f)
2:      WAIT_ICOUNT(2)
        la a4, trap_area
        ld a3, TR_ICAUSE(a4)
        CHECK(a3, INT_SSI)
        ld a3, TR_ILEVEL(a4)
        CHECK(a3, 3)
        BACK_TO_M(1f)
1:      CASE(24)                            // mie bit clear: never taken even in S
        li a1, MIP_SSIP
        csrc mie, a1
        csrs mip, a1
        GOTO_S(2f)
2:      EXPECT_NO_IRQ(2)
        BACK_TO_M(1f)
1:      li a1, MIP_SSIP
        csrc mip, a1

        // ---- delegated to S ----
        csrs mideleg, a1
        csrs mie, a1
        CASE(30)                            // sip/sie show the delegated bits
        csrs mip, a1
        csrr a2, sip
        andi a2, a2, MIP_SSIP
        CHECK(a2, MIP_SSIP)
        csrr a2, sie
        andi a2, a2, MIP_SSIP
        CHECK(a2, MIP_SSIP)
        CASE(31)                            // delegated interrupts are not taken in M, even with MIE
        li a2, MSTATUS_MIE
        csrs mstatus, a2
        EXPECT_NO_IRQ(2)
        csrc mstatus, a2
        CASE(32)                            // in S with SIE = 0: not taken
        GOTO_S(2f)
2:      EXPECT_NO_IRQ(2)
        CASE(33)                            // S sets SIE: taken in S, scause = interrupt | 1
        li a2, MSTATUS_SIE
        csrs sstatus, a2
        WAIT_ICOUNT(3)
        csrc sstatus, a2
        la a4, trap_area
        ld a3, TR_ICAUSE(a4)
        CHECK(a3, INT_SSI)
        ld a3, TR_ILEVEL(a4)
        CHECK(a3, 1)
        CASE(34)                            // S can raise its own software interrupt through sip
        li a2, MIP_SSIP
        csrs sip, a2
        csrr a3, sip
        andi a3, a3, MIP_SSIP
        CHECK(a3, MIP_SSIP)
        CASE(35)                            // in U, S interrupts are enabled whatever SIE says
        S_GOTO_U(2f)
2:      WAIT_ICOUNT(4)
        la a4, trap_area
        ld a3, TR_ILEVEL(a4)
        CHECK(a3, 1)
        BACK_TO_M(1f)
1:
        // ---- vectored mode: interrupts go to base + 4 * cause, exceptions to base ----
        CASE(40)
        li a1, MIP_SSIP
        csrc mideleg, a1
        la a2, m_vectors
        ori a2, a2, 1
        csrw mtvec, a2
        csrr a3, mtvec
        CHECK_REG(a3, a2)                   // vectored mode is supported
        li tp, 0
        csrs mip, a1
        li a2, MSTATUS_MIE
        csrs mstatus, a2
        li a5, 2000
2:      li t6, 0x1111
        beq tp, t6, 3f
        addi a5, a5, -1
        bnez a5, 2b
        j fail
3:      csrc mstatus, a2
        CASE(41)                            // a synchronous exception still uses the base
        TRAP_ARM(1f)
        ecall
1:      TRAP_EXPECT(CAUSE_ECALL_M, 0, 3)
        la a2, m_trap_handler
        csrw mtvec, a2
        CASE(42)                            // stvec vectored with a delegated interrupt
        csrs mideleg, a1
        la a2, s_vectors
        ori a2, a2, 1
        csrw stvec, a2
        li tp, 0
        csrs mip, a1
        GOTO_S(2f)
2:      li a2, MSTATUS_SIE
        csrs sstatus, a2
        li a5, 2000
2:      li t6, 0x2222
        beq tp, t6, 3f
        addi a5, a5, -1
        bnez a5, 2b
        j fail
3:      csrc sstatus, a2
        CASE(43)                            // the S exception path uses the stvec base
        li a2, 1 << CAUSE_BREAKPOINT
        TRAP_ARM(1f)
        ebreak
1:      TRAP_EXPECT_CAUSE(CAUSE_BREAKPOINT) // not delegated: went to M
        BACK_TO_M(1f)
1:      la a2, s_trap_handler
        csrw stvec, a2
        csrw mideleg, zero
        csrw mie, zero

        j pass


        // Vector tables: entry 0 = exceptions, entry 1 = supervisor software interrupt.
        .align 8
m_vectors:
        j m_trap_handler
        j m_vec_ssi
        .rept 14
        j fail
        .endr
m_vec_ssi:
        csrci mip, MIP_SSIP
        li tp, 0x1111
        mret

        .align 8
s_vectors:
        j s_trap_handler
        j s_vec_ssi
        .rept 14
        j fail
        .endr
s_vec_ssi:
        csrci sip, MIP_SSIP
        li tp, 0x2222
        sret
