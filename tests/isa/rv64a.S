// RV64A: LR/SC success and failure paths (no reservation, different address, reservation
// cleared by SC), LR.W sign extension, SC.W writing only 32 bits, every AMO in .w and .d with
// aq/rl variants (rd = old value, .w sign-extended), rd = x0, and misaligned AMO/LR/SC traps.
#include "rivet_test.h"

// mem (8 bytes) = init; inst a3, a2, (a1); expect a3 = init and mem = new.
#define TEST_AMO_D(n, inst, init, src, new) CASE(n); la a1, amo_slot; li a4, init; sd a4, 0(a1); \
  li a2, src; inst a3, a2, (a1); CHECK(a3, init); ld a5, 0(a1); CHECK(a5, new)
// Word at offset 0, sentinel word at offset 4 must survive; a3 = sign-extended old word.
#define TEST_AMO_W(n, inst, init, src, old, new) CASE(n); la a1, amo_slot; li a4, init; sw a4, 0(a1); \
  li a4, 0xa5a5a5a5; sw a4, 4(a1); li a2, src; inst a3, a2, (a1); CHECK(a3, old); \
  lwu a5, 0(a1); CHECK(a5, new); lwu a5, 4(a1); CHECK(a5, 0xa5a5a5a5)

TEST_MAIN
        // ---- SC without any reservation fails and does not write ----
        CASE(1)
        la a1, lr_word
        li a2, 0x1111
        sd a2, 0(a1)
        li a3, 0x2222
        sc.d a4, a3, (a1)
        beqz a4, fail_sc
        ld a5, 0(a1)
        CHECK(a5, 0x1111)

        // ---- LR/SC success ----
        CASE(2)
        lr.d a5, (a1)
        CHECK(a5, 0x1111)
        sc.d a4, a3, (a1)
        CHECK(a4, 0)
        ld a5, 0(a1)
        CHECK(a5, 0x2222)

        // ---- SC clears the reservation: a second SC fails ----
        CASE(3)
        li a3, 0x3333
        sc.d a4, a3, (a1)
        beqz a4, fail_sc
        ld a5, 0(a1)
        CHECK(a5, 0x2222)

        // ---- SC to a different address (another page) fails, and its target is untouched ----
        CASE(4)
        la a2, lr_other
        li a3, 0x4444
        sd a3, 0(a2)
        lr.d a5, (a1)
        li a3, 0x5555
        sc.d a4, a3, (a2)
        beqz a4, fail_sc
        ld a5, 0(a2)
        CHECK(a5, 0x4444)
        CASE(5)                         // and the failed SC cleared the reservation on a1 too
        sc.d a4, a3, (a1)
        beqz a4, fail_sc
        ld a5, 0(a1)
        CHECK(a5, 0x2222)

        // ---- LR.W sign-extends; SC.W writes exactly 32 bits ----
        CASE(6)
        li a2, 0x12345678fedcba98
        sd a2, 0(a1)
        lr.w a5, (a1)
        CHECK(a5, 0xfffffffffedcba98)
        li a3, 0xaaaaaaaa01020304
        sc.w a4, a3, (a1)
        CHECK(a4, 0)
        ld a5, 0(a1)
        CHECK(a5, 0x1234567801020304)
        CASE(7)                         // sc.w without reservation fails
        sc.w a4, a3, (a1)
        beqz a4, fail_sc
        CASE(8)                         // aq/rl orderings behave the same
        lr.d.aq a5, (a1)
        li a3, 77
        sc.d.rl a4, a3, (a1)
        CHECK(a4, 0)
        lr.w.aqrl a5, (a1)
        CHECK(a5, 77)
        li a3, 78
        sc.w.aqrl a4, a3, (a1)
        CHECK(a4, 0)
        lw a5, 0(a1)
        CHECK(a5, 78)
        CASE(9)                         // LR/SC loop increment (the common retry idiom)
        li a3, 10
        sd a3, 0(a1)
1:      lr.d a5, (a1)
        addi a5, a5, 5
        sc.d a4, a5, (a1)
        bnez a4, 1b
        ld a5, 0(a1)
        CHECK(a5, 15)
        CASE(10)                        // SC failure code is nonzero, rd = x0 form still fails quietly
        sc.d x0, a5, (a1)
        ld a5, 0(a1)
        CHECK(a5, 15)
        CASE(11)                        // LR.W on the upper word of a doubleword
        li a2, 0x80000000ffffffff
        sd a2, 0(a1)
        addi a6, a1, 4
        lr.w a5, (a6)
        CHECK(a5, 0xffffffff80000000)
        li a3, 0x7
        sc.w a4, a3, (a6)
        CHECK(a4, 0)
        ld a5, 0(a1)
        CHECK(a5, 0x00000007ffffffff)

        // ---- every AMO ----
        TEST_AMO_D(40, amoswap.d, 0x8000000000000001, 0x7ffffffffffffff0, 0x7ffffffffffffff0)
        TEST_AMO_D(41, amoswap.d.aq, 0xffffffff, 0xffffffffffffffff, 0xffffffffffffffff)
        TEST_AMO_D(42, amoswap.d.rl, 0x7fffffffffffffff, 0x100000000, 0x100000000)
        TEST_AMO_W(43, amoswap.w.aqrl, 0x80000001, 0x7ffffff0, 0xffffffff80000001, 0x7ffffff0)
        TEST_AMO_W(44, amoswap.w, 0x7fffffff, 0xffffffffffffffff, 0x7fffffff, 0xffffffff)
        TEST_AMO_W(45, amoswap.w.aq, 0xffffffff, 0x100000001, 0xffffffffffffffff, 0x1)
        TEST_AMO_D(46, amoadd.d.rl, 0x8000000000000001, 0x7ffffffffffffff0, 0xfffffffffffffff1)
        TEST_AMO_D(47, amoadd.d.aqrl, 0xffffffff, 0xffffffffffffffff, 0xfffffffe)
        TEST_AMO_D(48, amoadd.d, 0x7fffffffffffffff, 0x100000000, 0x80000000ffffffff)
        TEST_AMO_W(49, amoadd.w.aq, 0x80000001, 0x7ffffff0, 0xffffffff80000001, 0xfffffff1)
        TEST_AMO_W(50, amoadd.w.rl, 0x7fffffff, 0xffffffffffffffff, 0x7fffffff, 0x7ffffffe)
        TEST_AMO_W(51, amoadd.w.aqrl, 0xffffffff, 0x100000001, 0xffffffffffffffff, 0x0)
        TEST_AMO_D(52, amoxor.d, 0x8000000000000001, 0x7ffffffffffffff0, 0xfffffffffffffff1)
        TEST_AMO_D(53, amoxor.d.aq, 0xffffffff, 0xffffffffffffffff, 0xffffffff00000000)
        TEST_AMO_D(54, amoxor.d.rl, 0x7fffffffffffffff, 0x100000000, 0x7ffffffeffffffff)
        TEST_AMO_W(55, amoxor.w.aqrl, 0x80000001, 0x7ffffff0, 0xffffffff80000001, 0xfffffff1)
        TEST_AMO_W(56, amoxor.w, 0x7fffffff, 0xffffffffffffffff, 0x7fffffff, 0x80000000)
        TEST_AMO_W(57, amoxor.w.aq, 0xffffffff, 0x100000001, 0xffffffffffffffff, 0xfffffffe)
        TEST_AMO_D(58, amoand.d.rl, 0x8000000000000001, 0x7ffffffffffffff0, 0x0)
        TEST_AMO_D(59, amoand.d.aqrl, 0xffffffff, 0xffffffffffffffff, 0xffffffff)
        TEST_AMO_D(60, amoand.d, 0x7fffffffffffffff, 0x100000000, 0x100000000)
        TEST_AMO_W(61, amoand.w.aq, 0x80000001, 0x7ffffff0, 0xffffffff80000001, 0x0)
        TEST_AMO_W(62, amoand.w.rl, 0x7fffffff, 0xffffffffffffffff, 0x7fffffff, 0x7fffffff)
        TEST_AMO_W(63, amoand.w.aqrl, 0xffffffff, 0x100000001, 0xffffffffffffffff, 0x1)
        TEST_AMO_D(64, amoor.d, 0x8000000000000001, 0x7ffffffffffffff0, 0xfffffffffffffff1)
        TEST_AMO_D(65, amoor.d.aq, 0xffffffff, 0xffffffffffffffff, 0xffffffffffffffff)
        TEST_AMO_D(66, amoor.d.rl, 0x7fffffffffffffff, 0x100000000, 0x7fffffffffffffff)
        TEST_AMO_W(67, amoor.w.aqrl, 0x80000001, 0x7ffffff0, 0xffffffff80000001, 0xfffffff1)
        TEST_AMO_W(68, amoor.w, 0x7fffffff, 0xffffffffffffffff, 0x7fffffff, 0xffffffff)
        TEST_AMO_W(69, amoor.w.aq, 0xffffffff, 0x100000001, 0xffffffffffffffff, 0xffffffff)
        TEST_AMO_D(70, amomin.d.rl, 0x8000000000000001, 0x7ffffffffffffff0, 0x8000000000000001)
        TEST_AMO_D(71, amomin.d.aqrl, 0xffffffff, 0xffffffffffffffff, 0xffffffffffffffff)
        TEST_AMO_D(72, amomin.d, 0x7fffffffffffffff, 0x100000000, 0x100000000)
        TEST_AMO_W(73, amomin.w.aq, 0x80000001, 0x7ffffff0, 0xffffffff80000001, 0x80000001)
        TEST_AMO_W(74, amomin.w.rl, 0x7fffffff, 0xffffffffffffffff, 0x7fffffff, 0xffffffff)
        TEST_AMO_W(75, amomin.w.aqrl, 0xffffffff, 0x100000001, 0xffffffffffffffff, 0xffffffff)
        TEST_AMO_D(76, amomax.d, 0x8000000000000001, 0x7ffffffffffffff0, 0x7ffffffffffffff0)
        TEST_AMO_D(77, amomax.d.aq, 0xffffffff, 0xffffffffffffffff, 0xffffffff)
        TEST_AMO_D(78, amomax.d.rl, 0x7fffffffffffffff, 0x100000000, 0x7fffffffffffffff)
        TEST_AMO_W(79, amomax.w.aqrl, 0x80000001, 0x7ffffff0, 0xffffffff80000001, 0x7ffffff0)
        TEST_AMO_W(80, amomax.w, 0x7fffffff, 0xffffffffffffffff, 0x7fffffff, 0x7fffffff)
        TEST_AMO_W(81, amomax.w.aq, 0xffffffff, 0x100000001, 0xffffffffffffffff, 0x1)
        TEST_AMO_D(82, amominu.d.rl, 0x8000000000000001, 0x7ffffffffffffff0, 0x7ffffffffffffff0)
        TEST_AMO_D(83, amominu.d.aqrl, 0xffffffff, 0xffffffffffffffff, 0xffffffff)
        TEST_AMO_D(84, amominu.d, 0x7fffffffffffffff, 0x100000000, 0x100000000)
        TEST_AMO_W(85, amominu.w.aq, 0x80000001, 0x7ffffff0, 0xffffffff80000001, 0x7ffffff0)
        TEST_AMO_W(86, amominu.w.rl, 0x7fffffff, 0xffffffffffffffff, 0x7fffffff, 0x7fffffff)
        TEST_AMO_W(87, amominu.w.aqrl, 0xffffffff, 0x100000001, 0xffffffffffffffff, 0x1)
        TEST_AMO_D(88, amomaxu.d, 0x8000000000000001, 0x7ffffffffffffff0, 0x8000000000000001)
        TEST_AMO_D(89, amomaxu.d.aq, 0xffffffff, 0xffffffffffffffff, 0xffffffffffffffff)
        TEST_AMO_D(90, amomaxu.d.rl, 0x7fffffffffffffff, 0x100000000, 0x7fffffffffffffff)
        TEST_AMO_W(91, amomaxu.w.aqrl, 0x80000001, 0x7ffffff0, 0xffffffff80000001, 0x80000001)
        TEST_AMO_W(92, amomaxu.w, 0x7fffffff, 0xffffffffffffffff, 0x7fffffff, 0xffffffff)
        TEST_AMO_W(93, amomaxu.w.aq, 0xffffffff, 0x100000001, 0xffffffffffffffff, 0xffffffff)

        // ---- rd = x0 still updates memory; rd == rs2 reads old value ----
        CASE(100)
        la a1, amo_slot
        li a2, 40
        sd a2, 0(a1)
        li a3, 2
        amoadd.d x0, a3, (a1)
        ld a5, 0(a1)
        CHECK(a5, 42)
        CASE(101)
        li a3, 100
        amoswap.d a3, a3, (a1)
        CHECK(a3, 42)
        ld a5, 0(a1)
        CHECK(a5, 100)

        // ---- misaligned AMO/LR/SC: address-misaligned or access fault, tval = address ----
        // ---- misaligned LR/SC/AMO: address-misaligned or access fault, tval = address ----
        CASE(110)
        la a1, amo_slot
        addi a1, a1, 4                  // 4-aligned but not 8-aligned
        TRAP_ARM(1f)
        lr.d a3, (a1)
1:      TRAP_EXPECT_EITHER(CAUSE_MISALIGNED_LOAD, CAUSE_LOAD_ACCESS)
        CHECK_REG(a0, a1)
        CASE(111)
        addi a1, a1, 1
        TRAP_ARM(1f)
        lr.w a3, (a1)
1:      TRAP_EXPECT_EITHER(CAUSE_MISALIGNED_LOAD, CAUSE_LOAD_ACCESS)
        CHECK_REG(a0, a1)
#ifndef QEMU_ORACLE
        // QEMU 7.2 differs: a misaligned SC just fails without a trap, and a misaligned AMO
        // raises load-address-misaligned (cause 4) instead of a store/AMO cause.
        CASE(112)
        TRAP_ARM(1f)
        sc.w a3, a2, (a1)
1:      TRAP_EXPECT_EITHER(CAUSE_MISALIGNED_STORE, CAUSE_STORE_ACCESS)
        CHECK_REG(a0, a1)
        // An AMO reports a store/AMO exception, never a load one. Kept last: QEMU 7.2 reports
        // cause 4 (load misaligned) here (see README, known QEMU differences).
        CASE(113)
        la a1, amo_slot
        addi a1, a1, 2
        TRAP_ARM(1f)
        amoadd.w a3, a2, (a1)
1:      TRAP_EXPECT_EITHER(CAUSE_MISALIGNED_STORE, CAUSE_STORE_ACCESS)
        CHECK_REG(a0, a1)
        CASE(114)
        addi a1, a1, 2
        TRAP_ARM(1f)
        amoswap.d a3, a2, (a1)
1:      TRAP_EXPECT_EITHER(CAUSE_MISALIGNED_STORE, CAUSE_STORE_ACCESS)
        CHECK_REG(a0, a1)

#endif

        j pass

fail_sc:                                // an SC that should have failed reported success
        j fail

        .bss
        .align 12
lr_word:   .skip 8
        .align 12
lr_other:  .skip 8
        .align 3
amo_slot:  .skip 16
