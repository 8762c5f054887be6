// Synchronous traps: cause, mepc and mtval for illegal instructions (mtval = instruction bits),
// breakpoints, ecall from U/S/M (8/9/11, mtval 0), access faults on fetch/load/store to
// unmapped physical addresses (mtval = the address), misaligned loads/stores (trap with the
// right cause and address, or complete correctly: both are legal), privileged instructions in
// the wrong mode, and the trap-entry updates of mstatus (MPP, MPIE, MIE).
// Instruction-address-misaligned cannot happen with C: jalr clears bit 0 and every other target
// is a multiple of 2 (see rv64i_branch_jump.S).
#include "rivet_test.h"

#define UNMAPPED 0x100

// Misaligned access: accept a trap (cause c1 or c2, tval = address) or a correct result.
#define TEST_MISALIGNED_LD(n, inst, off, exp) CASE(n); la a1, mdata; addi a1, a1, off; li a3, 0; \
  TRAP_ARM(1f); inst a3, 0(a1); 1: la t6, trap_area; ld t5, TR_CAUSE(t6); bgez t5, 2f; \
  sd zero, TR_RESUME(t6); CHECK(a3, exp); j 3f; \
  2: TRAP_EXPECT_EITHER(CAUSE_MISALIGNED_LOAD, CAUSE_LOAD_ACCESS); CHECK_REG(a0, a1); 3:
#define TEST_MISALIGNED_ST(n, inst, ldinst, off, val) CASE(n); la a1, mdata; addi a1, a1, off; li a2, val; \
  TRAP_ARM(1f); inst a2, 0(a1); 1: la t6, trap_area; ld t5, TR_CAUSE(t6); bgez t5, 2f; \
  sd zero, TR_RESUME(t6); ldinst a3, 0(a1); CHECK_REG(a3, a2); j 3f; \
  2: TRAP_EXPECT_EITHER(CAUSE_MISALIGNED_STORE, CAUSE_STORE_ACCESS); CHECK_REG(a0, a1); 3:

TEST_MAIN
        // ---- illegal instructions: mtval = the encoding, mepc = its address ----
        TEST_ILLEGAL(1, .word 0x0205151b)   // slliw with shamt[5] set
        TEST_ILLEGAL(2, .word 0x00057503)   // load with funct3 = 7
        TEST_ILLEGAL(3, .word 0xfeb50533)   // OP with funct7 = 0x7f
        TEST_ILLEGAL(4, .word 0x0005050b)   // custom-0 (not implemented)
        TEST_ILLEGAL(5, .word 0x18b5152f)   // AMO with funct3 = 1
        TEST_ILLEGAL(6, .word 0x04055513)   // srli with a reserved funct6
        CASE(7)                             // mepc points at the trapping instruction
        TRAP_ARM(1f)
2:      .word 0x0005050b
1:      TRAP_EPC(a2)
        la a1, 2b
        CHECK_REG(a2, a1)

        // ---- breakpoint ----
        CASE(10)
        .option push
        .option norvc
        TRAP_ARM(1f)
2:      ebreak
        .option pop
1:      TRAP_EXPECT_CAUSE(CAUSE_BREAKPOINT)
        la a1, 2b
        CHECK_BREAK_TVAL(a1)
        TRAP_EPC(a2)
        CHECK_REG(a2, a1)

        // ---- environment calls ----
        CASE(20)
        TRAP_ARM(1f)
2:      ecall
1:      TRAP_EXPECT(CAUSE_ECALL_M, 0, 3)
        TRAP_EPC(a2)
        la a1, 2b
        CHECK_REG(a2, a1)
        CASE(21)
        GOTO_S(3f)
3:      TRAP_ARM(1f)
2:      ecall
1:      TRAP_EXPECT(CAUSE_ECALL_S, 0, 3)
        TRAP_EPC(a2)
        la a1, 2b
        CHECK_REG(a2, a1)
        CASE(22)                            // the handler returned to S (MPP was S)
        csrr a2, sstatus                    // legal in S
        S_GOTO_U(3f)
3:      TRAP_ARM(1f)
2:      ecall
1:      TRAP_EXPECT(CAUSE_ECALL_U, 0, 3)
        TRAP_EPC(a2)
        la a1, 2b
        CHECK_REG(a2, a1)
        CASE(23)                            // ebreak from U
        TRAP_ARM(1f)
        ebreak
1:      TRAP_EXPECT_CAUSE(CAUSE_BREAKPOINT)
        BACK_TO_M(1f)
1:      TRAP_EXPECT_CAUSE(CAUSE_ECALL_U)

        // ---- trap entry: MPP = previous mode, MPIE = old MIE, MIE = 0; mret restores ----
        CASE(30)
        li a1, MSTATUS_MIE                  // (no interrupt source is enabled in mie)
        csrs mstatus, a1
        TRAP_ARM(1f)
        ecall
1:      TRAP_STATUS(a2)
        li a3, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE
        and a2, a2, a3
        CHECK(a2, MSTATUS_MPP | MSTATUS_MPIE)
        CASE(31)                            // after mret: MIE = MPIE, MPIE = 1, MPP = U
        csrr a2, mstatus
        and a2, a2, a3
        CHECK(a2, MSTATUS_MPIE | MSTATUS_MIE)
        csrc mstatus, a1
        CASE(32)                            // MIE = 0 on entry is saved as MPIE = 0
        TRAP_ARM(1f)
        ecall
1:      TRAP_STATUS(a2)
        li a3, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE
        and a2, a2, a3
        CHECK(a2, MSTATUS_MPP)
        CASE(33)                            // from U: MPP = 0
        GOTO_U(2f)
2:      TRAP_ARM(1f)
        ecall
1:      BACK_TO_M(3f)
3:      la t6, trap_area                    // status of the first (U) trap was overwritten:
        ld a2, TR_STATUS(t6)                // this one is the BACK_TO_M ecall, also from U
        li a3, MSTATUS_MPP
        and a2, a2, a3
        CHECK(a2, 0)
        CASE(34)                            // from S: MPP = 1
        GOTO_S(2f)
2:      BACK_TO_M(3f)
3:      TRAP_STATUS(a2)
        li a3, MSTATUS_MPP
        and a2, a2, a3
        CHECK(a2, MSTATUS_MPP_S)
        CASE(35)                            // mret to U clears MPRV
        li a1, MSTATUS_MPRV
        csrs mstatus, a1
        GOTO_U(2f)
2:      BACK_TO_M(3f)
3:      csrr a2, mstatus
        and a2, a2, a1
        CHECK(a2, 0)
        CASE(36)                            // mret to M keeps MPRV
        li a1, MSTATUS_MPRV | MSTATUS_MPP
        csrs mstatus, a1                    // MPP = M, so MPRV has no effect on translation
        la a2, 2f
        csrw mepc, a2
        mret
2:      csrr a2, mstatus
        li a3, MSTATUS_MPRV
        and a2, a2, a3
        CHECK(a2, MSTATUS_MPRV)
        csrc mstatus, a3

        // ---- mepc/sepc: bit 0 is always zero (IALIGN = 16) ----
#ifndef QEMU_ORACLE
        // QEMU 7.2 differs: it keeps bit 0 of a value written to mepc/sepc (and drops it only on xRET).
        CASE(40)
        li a1, 0x80001233
        csrw mepc, a1
        csrr a2, mepc
        CHECK(a2, 0x80001232)
        csrw sepc, a1
        csrr a2, sepc
        CHECK(a2, 0x80001232)
        // QEMU 7.2 differs: it keeps the reserved value 2 written to MPP.
        CASE(41)                            // MPP is WARL: the reserved value 2 is not kept
        li a1, MSTATUS_MPP
        csrc mstatus, a1
        li a2, 2 << 11
        csrs mstatus, a2
        csrr a3, mstatus
        and a3, a3, a1
        li a2, 2 << 11
        bne a3, a2, 1f
        j fail
1:      csrc mstatus, a1
#endif

        // ---- privileged instructions in the wrong mode ----
        GOTO_S(1f)
1:      TEST_ILLEGAL(50, mret)
        TEST_ILLEGAL(51, csrr a2, mepc)
        S_GOTO_U(1f)
1:      TEST_ILLEGAL(52, mret)
        TEST_ILLEGAL(53, sret)
        TEST_ILLEGAL(54, sfence.vma)
        TEST_ILLEGAL(55, csrw stvec, a1)
        BACK_TO_M(1f)
1:
        // ---- TSR, TVM, TW trap the S-mode instructions they guard ----
        li a1, MSTATUS_TSR | MSTATUS_TVM | MSTATUS_TW
        csrs mstatus, a1
        GOTO_S(1f)
1:      TEST_ILLEGAL(60, sret)
        TEST_ILLEGAL(61, csrr a2, satp)
        TEST_ILLEGAL(62, csrw satp, zero)
        TEST_ILLEGAL(63, sfence.vma)
        TEST_ILLEGAL(64, sfence.vma a1, a2)
        TEST_ILLEGAL(65, wfi)               // TW = 1: time limit 0 on Rivet and QEMU
        BACK_TO_M(1f)
1:      li a1, MSTATUS_TSR | MSTATUS_TVM | MSTATUS_TW
        csrc mstatus, a1
        GOTO_S(1f)
1:      CASE(66)                            // all allowed again (no wfi: nothing would wake it)
        csrr a2, satp
        sfence.vma
        la a2, 2f
        csrw sepc, a2
        li a2, MSTATUS_SPP
        csrs sstatus, a2                    // sret back to S
        sret
        j fail
2:      BACK_TO_M(1f)
1:      CASE(67)                            // M-mode may execute sret (returns to SPP)
        li a2, MSTATUS_SPP
        csrs mstatus, a2
        la a2, 2f
        csrw sepc, a2
        sret
        j fail
2:      csrr a2, sstatus                    // legal: we are in S now
        BACK_TO_M(1f)
1:      TRAP_EXPECT_CAUSE(CAUSE_ECALL_S)

        // ---- access faults: nothing is mapped at UNMAPPED ----
        CASE(70)
        li a1, UNMAPPED
        TRAP_ARM(1f)
        ld a2, 0(a1)
1:      TRAP_EXPECT(CAUSE_LOAD_ACCESS, UNMAPPED, 3)
        CASE(71)
        li a1, UNMAPPED
        TRAP_ARM(1f)
        sw a2, 4(a1)
1:      TRAP_EXPECT(CAUSE_STORE_ACCESS, UNMAPPED + 4, 3)
#ifndef QEMU_ORACLE
        // QEMU 7.2 differs: it reports an AMO access fault as a load access fault (cause 5).
        CASE(72)
        li a1, UNMAPPED
        TRAP_ARM(1f)
        amoadd.d a2, a2, (a1)
1:      TRAP_EXPECT(CAUSE_STORE_ACCESS, UNMAPPED, 3)
#endif
        CASE(73)
        li a1, UNMAPPED
        TRAP_ARM(1f)
        jalr ra, 0(a1)
1:      TRAP_EXPECT(CAUSE_FETCH_ACCESS, UNMAPPED, 3)
        TRAP_EPC(a2)
        CHECK(a2, UNMAPPED)
        CASE(74)
        li a1, UNMAPPED
        TRAP_ARM(1f)
        lr.d a2, (a1)
1:      TRAP_EXPECT(CAUSE_LOAD_ACCESS, UNMAPPED, 3)
        CASE(75)                            // from U as well
        GOTO_U(2f)
2:      li a1, UNMAPPED
        TRAP_ARM(1f)
        lbu a2, 3(a1)
1:      TRAP_EXPECT(CAUSE_LOAD_ACCESS, UNMAPPED + 3, 3)
        BACK_TO_M(1f)
1:
        // ---- misaligned loads and stores (mdata = 00 01 .. 07 f8 f9 .. ff) ----
        TEST_MISALIGNED_LD(80, lh, 1, 0x0201)
        TEST_MISALIGNED_LD(81, lhu, 7, 0xf807)
        TEST_MISALIGNED_LD(82, lh, 7, 0xfffffffffffff807)
        TEST_MISALIGNED_LD(83, lw, 1, 0x04030201)
        TEST_MISALIGNED_LD(84, lw, 6, 0xfffffffff9f80706)
        TEST_MISALIGNED_LD(85, lwu, 6, 0xf9f80706)
        TEST_MISALIGNED_LD(86, ld, 1, 0xf807060504030201)
        TEST_MISALIGNED_LD(87, ld, 4, 0xfbfaf9f807060504)
        TEST_MISALIGNED_LD(88, ld, 7, 0xfefdfcfbfaf9f807)
        TEST_MISALIGNED_ST(90, sh, lhu, 17, 0xabcd)
        TEST_MISALIGNED_ST(91, sw, lwu, 19, 0x89abcdef)
        TEST_MISALIGNED_ST(92, sd, ld, 21, 0x0123456789abcdef)
        TEST_MISALIGNED_ST(93, sd, ld, 31, 0x1122334455667788)
        CASE(94)                            // a misaligned ld straddling a page boundary
        la a1, mpage
        addi a1, a1, -3
        li a2, 0x0807060504030201
        TRAP_ARM(1f)
        sd a2, 0(a1)
1:      la t6, trap_area
        ld t5, TR_CAUSE(t6)
        bgez t5, 2f
        sd zero, TR_RESUME(t6)
        ld a3, 0(a1)
        CHECK_REG(a3, a2)
        lbu a3, 3(a1)                       // first byte of the next page
        CHECK(a3, 0x04)
        j 3f
2:      TRAP_EXPECT_EITHER(CAUSE_MISALIGNED_STORE, CAUSE_STORE_ACCESS)
        CHECK_REG(a0, a1)
3:
        j pass

        .data
        .align 3
mdata:  .byte 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
        .byte 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff
        .skip 32
        .bss
        .align 12
        .skip 4096
mpage:  .skip 64
