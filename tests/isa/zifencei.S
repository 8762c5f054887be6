// Zifencei: self-modifying code. Run an instruction slot once (so it may be cached or
// pre-decoded), store a new instruction over it, fence.i, and run it again: the new one runs.
// Covers 32-bit and 16-bit replacements and a whole rewritten sequence.
#include "rivet_test.h"

TEST_MAIN
        CASE(1)
        li a0, 0
        call slot1                      // original: li a0, 1
        CHECK(a0, 1)
        CASE(2)
        la a1, slot1
        li a2, 0x02a00513               // addi a0, x0, 42
        sw a2, 0(a1)
        fence.i
        call slot1
        CHECK(a0, 42)
        CASE(3)                         // again, in a loop that ran the old code many times
        li a3, 20
1:      call slot1
        addi a3, a3, -1
        bnez a3, 1b
        li a2, 0x07b00513               // addi a0, x0, 123
        sw a2, 0(a1)
        fence.i
        call slot1
        CHECK(a0, 123)
        CASE(4)                         // replace with a compressed instruction + c.nop
        li a2, 0x0001453d               // c.li a0, 15 ; c.nop
        sw a2, 0(a1)
        fence.i
        call slot1
        CHECK(a0, 15)
        CASE(5)                         // rewrite a whole block: a0 = a0 + a0, a0 = a0 + 1
        la a1, slot2
        li a2, 0x00a50533               // add a0, a0, a0
        sw a2, 0(a1)
        li a2, 0x00150513               // addi a0, a0, 1
        sw a2, 4(a1)
        fence.i
        li a0, 20
        call slot2
        CHECK(a0, 41)
        CASE(6)                         // a halfword store that changes only the immediate field
        la a1, slot1
        li a2, 0x02a00513               // addi a0, x0, 42
        sw a2, 0(a1)
        fence.i
        call slot1
        CHECK(a0, 42)
        li a2, 0x0630                   // upper halfword: imm = 99 (0x063 << 4 | rs1 bits 0)
        sh a2, 2(a1)
        fence.i
        call slot1
        CHECK(a0, 99)

        j pass

        // Code slots (in .text, RAM is writable).
        .align 2
slot1:
        .option push
        .option norvc
        li a0, 1
        ret
slot2:
        nop
        nop
        ret
        .option pop
