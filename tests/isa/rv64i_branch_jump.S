// RV64I control transfer: every conditional branch taken and not taken, forwards and backwards,
// signed vs unsigned comparisons; JAL/JALR link values, JALR clearing bit 0 of the target,
// JALR with rd == rs1, negative offsets, and x0 as the link register.
#include "rivet_test.h"

// Forward: a3 = 0 if taken, 1 if not. Backward: a3 = 2 if taken, 1 if not.
#define TEST_BR(n, op, v1, v2, taken) CASE(n); li a1, v1; li a2, v2; \
  li a3, 0; op a1, a2, 1f; li a3, 1; 1: CHECK(a3, (1 - (taken))); \
  j 3f; 2: li a3, 2; j 4f; 3: li a3, 0; op a1, a2, 2b; li a3, 1; 4: CHECK(a3, (1 + (taken)))

TEST_MAIN
        TEST_BR(1, beq, 0x0, 0x0, 1)
        TEST_BR(2, beq, 0x1, 0x1, 1)
        TEST_BR(3, beq, 0xffffffffffffffff, 0xffffffffffffffff, 1)
        TEST_BR(4, beq, 0x0, 0x1, 0)
        TEST_BR(5, beq, 0x1, 0x0, 0)
        TEST_BR(6, beq, 0xffffffffffffffff, 0x1, 0)
        TEST_BR(7, beq, 0x1, 0xffffffffffffffff, 0)
        TEST_BR(8, beq, 0xfffffffffffffffe, 0xffffffffffffffff, 0)
        TEST_BR(9, beq, 0xffffffffffffffff, 0xfffffffffffffffe, 0)
        TEST_BR(10, beq, 0x8000000000000000, 0x7fffffffffffffff, 0)
        TEST_BR(11, beq, 0x7fffffffffffffff, 0x8000000000000000, 0)
        TEST_BR(12, beq, 0x100000000, 0x1, 0)
        TEST_BR(13, bne, 0x0, 0x0, 0)
        TEST_BR(14, bne, 0x1, 0x1, 0)
        TEST_BR(15, bne, 0xffffffffffffffff, 0xffffffffffffffff, 0)
        TEST_BR(16, bne, 0x0, 0x1, 1)
        TEST_BR(17, bne, 0x1, 0x0, 1)
        TEST_BR(18, bne, 0xffffffffffffffff, 0x1, 1)
        TEST_BR(19, bne, 0x1, 0xffffffffffffffff, 1)
        TEST_BR(20, bne, 0xfffffffffffffffe, 0xffffffffffffffff, 1)
        TEST_BR(21, bne, 0xffffffffffffffff, 0xfffffffffffffffe, 1)
        TEST_BR(22, bne, 0x8000000000000000, 0x7fffffffffffffff, 1)
        TEST_BR(23, bne, 0x7fffffffffffffff, 0x8000000000000000, 1)
        TEST_BR(24, bne, 0x100000000, 0x1, 1)
        TEST_BR(25, blt, 0x0, 0x0, 0)
        TEST_BR(26, blt, 0x1, 0x1, 0)
        TEST_BR(27, blt, 0xffffffffffffffff, 0xffffffffffffffff, 0)
        TEST_BR(28, blt, 0x0, 0x1, 1)
        TEST_BR(29, blt, 0x1, 0x0, 0)
        TEST_BR(30, blt, 0xffffffffffffffff, 0x1, 1)
        TEST_BR(31, blt, 0x1, 0xffffffffffffffff, 0)
        TEST_BR(32, blt, 0xfffffffffffffffe, 0xffffffffffffffff, 1)
        TEST_BR(33, blt, 0xffffffffffffffff, 0xfffffffffffffffe, 0)
        TEST_BR(34, blt, 0x8000000000000000, 0x7fffffffffffffff, 1)
        TEST_BR(35, blt, 0x7fffffffffffffff, 0x8000000000000000, 0)
        TEST_BR(36, blt, 0x100000000, 0x1, 0)
        TEST_BR(37, bge, 0x0, 0x0, 1)
        TEST_BR(38, bge, 0x1, 0x1, 1)
        TEST_BR(39, bge, 0xffffffffffffffff, 0xffffffffffffffff, 1)
        TEST_BR(40, bge, 0x0, 0x1, 0)
        TEST_BR(41, bge, 0x1, 0x0, 1)
        TEST_BR(42, bge, 0xffffffffffffffff, 0x1, 0)
        TEST_BR(43, bge, 0x1, 0xffffffffffffffff, 1)
        TEST_BR(44, bge, 0xfffffffffffffffe, 0xffffffffffffffff, 0)
        TEST_BR(45, bge, 0xffffffffffffffff, 0xfffffffffffffffe, 1)
        TEST_BR(46, bge, 0x8000000000000000, 0x7fffffffffffffff, 0)
        TEST_BR(47, bge, 0x7fffffffffffffff, 0x8000000000000000, 1)
        TEST_BR(48, bge, 0x100000000, 0x1, 1)
        TEST_BR(49, bltu, 0x0, 0x0, 0)
        TEST_BR(50, bltu, 0x1, 0x1, 0)
        TEST_BR(51, bltu, 0xffffffffffffffff, 0xffffffffffffffff, 0)
        TEST_BR(52, bltu, 0x0, 0x1, 1)
        TEST_BR(53, bltu, 0x1, 0x0, 0)
        TEST_BR(54, bltu, 0xffffffffffffffff, 0x1, 0)
        TEST_BR(55, bltu, 0x1, 0xffffffffffffffff, 1)
        TEST_BR(56, bltu, 0xfffffffffffffffe, 0xffffffffffffffff, 1)
        TEST_BR(57, bltu, 0xffffffffffffffff, 0xfffffffffffffffe, 0)
        TEST_BR(58, bltu, 0x8000000000000000, 0x7fffffffffffffff, 0)
        TEST_BR(59, bltu, 0x7fffffffffffffff, 0x8000000000000000, 1)
        TEST_BR(60, bltu, 0x100000000, 0x1, 0)
        TEST_BR(61, bgeu, 0x0, 0x0, 1)
        TEST_BR(62, bgeu, 0x1, 0x1, 1)
        TEST_BR(63, bgeu, 0xffffffffffffffff, 0xffffffffffffffff, 1)
        TEST_BR(64, bgeu, 0x0, 0x1, 0)
        TEST_BR(65, bgeu, 0x1, 0x0, 1)
        TEST_BR(66, bgeu, 0xffffffffffffffff, 0x1, 1)
        TEST_BR(67, bgeu, 0x1, 0xffffffffffffffff, 0)
        TEST_BR(68, bgeu, 0xfffffffffffffffe, 0xffffffffffffffff, 0)
        TEST_BR(69, bgeu, 0xffffffffffffffff, 0xfffffffffffffffe, 1)
        TEST_BR(70, bgeu, 0x8000000000000000, 0x7fffffffffffffff, 1)
        TEST_BR(71, bgeu, 0x7fffffffffffffff, 0x8000000000000000, 0)
        TEST_BR(72, bgeu, 0x100000000, 0x1, 1)

        // ---- JAL ----
        CASE(100)
        li ra, 0
        jal ra, 1f
2:      j fail
1:      la a1, 2b
        CHECK_REG(ra, a1)              // link = address of the next instruction
        CASE(101)
        jal x0, 1f                     // j: no link written
        j fail
1:      CHECK(x0, 0)
        CASE(102)                      // backward jal
        j 2f
1:      li a1, 0x55
        j 3f
2:      li a1, 0
        jal t0, 1b
3:      CHECK(a1, 0x55)

        // ---- JALR ----
        CASE(110)
        la a1, 1f
        jalr ra, 0(a1)
2:      j fail
1:      la a2, 2b
        CHECK_REG(ra, a2)
        CASE(111)                      // odd target: bit 0 is cleared
        la a1, 1f
        addi a1, a1, 1
        jalr ra, 0(a1)
        j fail
        .align 2
1:      li a3, 0x111
        CHECK(a3, 0x111)
        CASE(112)                      // odd immediate makes the sum odd
        la a1, 1f
        addi a1, a1, -3
        jalr ra, 3(a1)
        j fail
        .align 2
1:      CASE(113)                      // negative offset
        la a1, 1f
        addi a1, a1, 100
        jalr ra, -100(a1)
        j fail
1:      CASE(114)                      // rd == rs1: target uses the old value
        la a1, 1f
        jalr a1, 0(a1)
2:      j fail
1:      la a2, 2b
        CHECK_REG(a1, a2)
        CASE(115)                      // rd = x0
        la a1, 1f
        jalr x0, 0(a1)
        j fail
1:      CHECK(x0, 0)
        CASE(116)                      // call/ret through ra
        li a0, 0
        call 5f
        CHECK(a0, 0x77)
        j 6f
5:      li a0, 0x77
        ret
6:      CASE(117)                      // jalr to a halfword-aligned target (legal with C)
        la a1, 1f
        jalr ra, 0(a1)
        j fail
        .align 2
        c.nop
1:      li a3, 1
        CHECK(a3, 1)
        CASE(118)                      // jalr immediate sign extension: -2048
        la a1, 1f
        li a2, 2048
        add a1, a1, a2
        jalr ra, -2048(a1)
        j fail
1:      nop

        j pass
