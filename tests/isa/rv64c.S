// RV64C: every compressed encoding (quadrants 0, 1 and 2, including the FP loads/stores and the
// SP-relative forms), link value pc+2 of c.jalr, and reserved encodings raising
// illegal-instruction with mtval = the 16-bit instruction.
#include "rivet_test.h"

// A raw 16-bit encoding must trap as illegal with mtval = its bits.
#define TEST_ILLEGAL16(n, bits) CASE(n); TRAP_ARM(1f); .half bits; .half 0x0001; 1: \
  TRAP_EXPECT(CAUSE_ILLEGAL, bits, 3)

TEST_MAIN
        la sp, cdata
        // ---- quadrant 0 ----
        CASE(1)
        c.addi4spn a0, sp, 16
        addi a1, sp, 16
        CHECK_REG(a0, a1)
        CASE(2)
        c.addi4spn s1, sp, 1020        // largest immediate
        addi a1, sp, 1020
        CHECK_REG(s1, a1)
        CASE(3)
        mv s0, sp
        c.lw a0, 0(s0)                 // sign-extends
        CHECK(a0, 0xffffffff80000001)
        CASE(4)
        c.lw a1, 4(s0)
        CHECK(a1, 0x7ffffffe)
        CASE(5)
        c.ld a2, 8(s0)
        CHECK(a2, 0x8877665544332211)
        CASE(6)
        li a3, 0x01020304
        c.sw a3, 16(s0)
        ld a4, 16(s0)
        CHECK(a4, 0x01020304)
        CASE(7)
        li a3, 0xf0f0f0f0a5a5a5a5
        c.sd a3, 24(s0)
        ld a4, 24(s0)
        CHECK(a4, 0xf0f0f0f0a5a5a5a5)
        CASE(8)
        c.fld fa0, 8(s0)
        fmv.x.d a4, fa0
        CHECK(a4, 0x8877665544332211)
        CASE(9)
        c.fsd fa0, 32(s0)
        ld a4, 32(s0)
        CHECK(a4, 0x8877665544332211)
        CASE(10)
        c.ld a5, 248(s0)               // largest c.ld offset
        CHECK(a5, 0x1234)
        CASE(11)
        c.lw a5, 124(s0)               // largest c.lw offset
        CHECK(a5, 0x5678)

        // ---- quadrant 1 ----
        CASE(20)
        li a0, 5
        c.nop
        c.addi a0, -6
        CHECK(a0, -1)
        CASE(21)
        li a0, 0x7fffffff
        c.addiw a0, 1                  // 32-bit wrap, sign-extended
        CHECK(a0, 0xffffffff80000000)
        CASE(22)
        li a0, 0x100000000
        c.addiw a0, 0                  // sext.w
        CHECK(a0, 0)
        CASE(23)
        c.li a1, -32
        CHECK(a1, -32)
        CASE(24)
        c.li a1, 31
        CHECK(a1, 31)
        CASE(25)
        mv a2, sp
        c.addi16sp sp, -512
        addi a2, a2, -512
        CHECK_REG(sp, a2)
        c.addi16sp sp, 496
        addi a2, a2, 496
        CHECK_REG(sp, a2)
        la sp, cdata
        CASE(26)
        c.lui a3, 0xfffe0              // imm = -32 << 12 (sign-extended 6-bit field)
        CHECK(a3, 0xfffffffffffe0000)
        CASE(27)
        c.lui a3, 1
        CHECK(a3, 0x1000)
        CASE(28)
        c.lui a3, 0x1f
        CHECK(a3, 0x1f000)
        CASE(29)
        li s0, 0x8000000000000000
        c.srli s0, 63
        CHECK(s0, 1)
        CASE(30)
        li s0, 0x8000000000000000
        c.srai s0, 32
        CHECK(s0, 0xffffffff80000000)
        CASE(31)
        li s0, 0x8000000000000000
        c.srli s0, 1
        CHECK(s0, 0x4000000000000000)
        CASE(32)
        li s1, 0xff
        c.andi s1, -16
        CHECK(s1, 0xf0)
        CASE(33)
        li a4, 10
        li a5, 3
        c.sub a4, a5
        CHECK(a4, 7)
        CASE(34)
        li a4, 0xf0
        c.xor a4, a5
        CHECK(a4, 0xf3)
        CASE(35)
        li a4, 0x10
        c.or a4, a5
        CHECK(a4, 0x13)
        CASE(36)
        li a4, 0x12
        c.and a4, a5
        CHECK(a4, 0x2)
        CASE(37)
        li a4, 0x80000000
        li a5, 1
        c.subw a4, a5
        CHECK(a4, 0x7fffffff)
        CASE(38)
        li a4, 0x7fffffff
        c.addw a4, a5
        CHECK(a4, 0xffffffff80000000)
        CASE(39)
        li a0, 0
        c.j 1f
        li a0, 1
1:      CHECK(a0, 0)
        CASE(40)
        li a0, 0
        c.beqz a0, 1f                  // taken
        li a0, 1
1:      CHECK(a0, 0)
        CASE(41)
        li s0, 5
        c.beqz s0, 1f                  // not taken
        li s0, 6
1:      CHECK(s0, 6)
        CASE(42)
        li s0, 5
        c.bnez s0, 1f                  // taken
        li s0, 6
1:      CHECK(s0, 5)
        CASE(43)
        li s0, 0
        c.bnez s0, 1f                  // not taken
        li s0, 7
1:      CHECK(s0, 7)
        CASE(44)                       // backward c.j / c.bnez
        li s0, 3
        li a0, 0
2:      addi a0, a0, 1
        addi s0, s0, -1
        c.bnez s0, 2b
        CHECK(a0, 3)

        // ---- quadrant 2 ----
        CASE(50)
        li a0, 1
        c.slli a0, 63
        CHECK(a0, 0x8000000000000000)
        CASE(51)
        li a0, 3
        c.slli a0, 1
        CHECK(a0, 6)
        CASE(52)
        c.lwsp a1, 0(sp)
        CHECK(a1, 0xffffffff80000001)
        CASE(53)
        c.ldsp a1, 8(sp)
        CHECK(a1, 0x8877665544332211)
        CASE(54)
        c.fldsp fa1, 8(sp)
        fmv.x.d a1, fa1
        CHECK(a1, 0x8877665544332211)
        CASE(55)
        li a2, 0x5555aaaa
        c.swsp a2, 40(sp)
        lwu a3, 40(sp)
        CHECK(a3, 0x5555aaaa)
        CASE(56)
        li a2, 0x123456789
        c.sdsp a2, 48(sp)
        ld a3, 48(sp)
        CHECK(a3, 0x123456789)
        CASE(57)
        c.fsdsp fa1, 56(sp)
        ld a3, 56(sp)
        CHECK(a3, 0x8877665544332211)
        CASE(58)
        c.ldsp a1, 248(sp)
        CHECK(a1, 0x1234)
        CASE(59)
        la a0, 1f
        c.jr a0
        j fail
1:      CASE(60)
        li a1, 99
        c.mv a2, a1
        CHECK(a2, 99)
        CASE(61)
        li a1, 40
        li a2, 2
        c.add a1, a2
        CHECK(a1, 42)
        CASE(62)
        la a0, 1f
        c.jalr a0
2:      j fail
1:      la a1, 2b
        CHECK_REG(ra, a1)              // link = pc + 2
        CASE(63)                       // c.jalr with rs1 = ra: target read before the link write
        la ra, 1f
        c.jalr ra
        j fail
1:      CASE(64)
        TRAP_ARM(1f)
2:      c.ebreak
1:      TRAP_EXPECT_CAUSE(CAUSE_BREAKPOINT)
        la a1, 2b
        CHECK_BREAK_TVAL(a1)           // mtval = pc of the c.ebreak (Rivet)
        TRAP_EPC(a2)
        CHECK_REG(a2, a1)
        CASE(65)                       // c.ldsp/c.sdsp/c.lwsp reach their largest offsets
        li a2, 0x77
        c.sdsp a2, 504(sp)
        c.ldsp a3, 504(sp)
        CHECK(a3, 0x77)
        c.swsp a2, 252(sp)
        c.lwsp a3, 252(sp)
        CHECK(a3, 0x77)

        // ---- reserved compressed encodings ----
        TEST_ILLEGAL16(80, 0x0000)     // all-zero halfword
        TEST_ILLEGAL16(81, 0x0004)     // c.addi4spn with nzuimm = 0
        TEST_ILLEGAL16(82, 0x6501)     // c.lui a0, 0
        TEST_ILLEGAL16(83, 0x2001)     // c.addiw x0
        TEST_ILLEGAL16(84, 0x6101)     // c.addi16sp with nzimm = 0
        TEST_ILLEGAL16(85, 0x4002)     // c.lwsp x0
        TEST_ILLEGAL16(86, 0x6002)     // c.ldsp x0
        TEST_ILLEGAL16(87, 0x8002)     // c.jr x0
        TEST_ILLEGAL16(88, 0x2005)     // c.addiw x0, 1 (rd = 0 with an immediate)
        TEST_ILLEGAL16(89, 0x6081)     // c.lui ra, 0 (another rd)

        j pass

        .data
        .align 4
cdata:  .word 0x80000001, 0x7ffffffe
        .dword 0x8877665544332211
        .skip 108
        .word 0x5678                   // offset 124
        .skip 120
        .dword 0x1234                  // offset 248
        .skip 248
        .dword 0                       // offset 504
