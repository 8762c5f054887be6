// RV64I integer computation: every ALU operation, W forms (32-bit result sign-extended),
// shift amounts 0/1/31/32/63 and masking of the amount, x0 as destination, LUI and AUIPC.
#include "rivet_test.h"

TEST_MAIN
        // x0 reads as zero and ignores writes
        CASE(1)
        li a1, 123
        add x0, a1, a1
        addi x0, x0, 5
        lui x0, 0x12345
        CHECK(x0, 0)
        mv a2, x0
        CHECK(a2, 0)
        // ---- register-register ----
        TEST_RR(2, add, 0x0, 0x0, 0x0)
        TEST_RR(3, add, 0x2, 0x1, 0x1)
        TEST_RR(4, add, 0xa, 0x3, 0x7)
        TEST_RR(5, add, 0x8000000000000000, 0x7fffffffffffffff, 0x1)
        TEST_RR(6, add, 0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff)
        TEST_RR(7, add, 0x0, 0xffffffffffffffff, 0x1)
        TEST_RR(8, add, 0x80000000, 0x7fffffff, 0x1)
        TEST_RR(9, add, 0x100000000, 0xffffffff, 0x1)
        TEST_RR(10, sub, 0x0, 0x0, 0x0)
        TEST_RR(11, sub, 0x0, 0x1, 0x1)
        TEST_RR(12, sub, 0xfffffffffffffffc, 0x3, 0x7)
        TEST_RR(13, sub, 0x7fffffffffffffff, 0x8000000000000000, 0x1)
        TEST_RR(14, sub, 0xffffffffffffffff, 0x0, 0x1)
        TEST_RR(15, sub, 0xffffffff, 0x100000000, 0x1)
        TEST_RR(16, sll, 0x1, 0x1, 0x0)
        TEST_RR(17, sll, 0x2, 0x1, 0x1)
        TEST_RR(18, sll, 0x80000000, 0x1, 0x1f)
        TEST_RR(19, sll, 0x100000000, 0x1, 0x20)
        TEST_RR(20, sll, 0x8000000000000000, 0x1, 0x3f)
        TEST_RR(21, sll, 0xfffffffffffffff0, 0xffffffffffffffff, 0x44)
        TEST_RR(22, sll, 0x84848484000, 0x21212121, 0xe)
        TEST_RR(23, srl, 0x8000000000000000, 0x8000000000000000, 0x0)
        TEST_RR(24, srl, 0x4000000000000000, 0x8000000000000000, 0x1)
        TEST_RR(25, srl, 0x100000000, 0x8000000000000000, 0x1f)
        TEST_RR(26, srl, 0x80000000, 0x8000000000000000, 0x20)
        TEST_RR(27, srl, 0x1, 0x8000000000000000, 0x3f)
        TEST_RR(28, srl, 0x1, 0xffffffffffffffff, 0x7f)
        TEST_RR(29, sra, 0x8000000000000000, 0x8000000000000000, 0x0)
        TEST_RR(30, sra, 0xc000000000000000, 0x8000000000000000, 0x1)
        TEST_RR(31, sra, 0xffffffff00000000, 0x8000000000000000, 0x1f)
        TEST_RR(32, sra, 0xffffffff80000000, 0x8000000000000000, 0x20)
        TEST_RR(33, sra, 0xffffffffffffffff, 0x8000000000000000, 0x3f)
        TEST_RR(34, sra, 0x0, 0x7fffffff00000000, 0x3f)
        TEST_RR(35, sra, 0xc000000000000000, 0x8000000000000000, 0x41)
        TEST_RR(36, slt, 0x0, 0x0, 0x0)
        TEST_RR(37, slt, 0x1, 0xffffffffffffffff, 0x0)
        TEST_RR(38, slt, 0x0, 0x0, 0xffffffffffffffff)
        TEST_RR(39, slt, 0x1, 0x8000000000000000, 0x7fffffffffffffff)
        TEST_RR(40, slt, 0x0, 0x7fffffffffffffff, 0x8000000000000000)
        TEST_RR(41, slt, 0x1, 0xfffffffffffffffe, 0xffffffffffffffff)
        TEST_RR(42, sltu, 0x0, 0x0, 0x0)
        TEST_RR(43, sltu, 0x0, 0xffffffffffffffff, 0x0)
        TEST_RR(44, sltu, 0x1, 0x0, 0xffffffffffffffff)
        TEST_RR(45, sltu, 0x0, 0x8000000000000000, 0x7fffffffffffffff)
        TEST_RR(46, sltu, 0x1, 0x1, 0x2)
        TEST_RR(47, xor, 0xf00ff00ff00ff00f, 0xff00ff00ff00ff00, 0xf0f0f0f0f0f0f0f)
        TEST_RR(48, xor, 0x0, 0xffffffffffffffff, 0xffffffffffffffff)
        TEST_RR(49, or, 0xff0fff0fff0fff0f, 0xff00ff00ff00ff00, 0xf0f0f0f0f0f0f0f)
        TEST_RR(50, or, 0x0, 0x0, 0x0)
        TEST_RR(51, and, 0xf000f000f000f00, 0xff00ff00ff00ff00, 0xf0f0f0f0f0f0f0f)
        TEST_RR(52, and, 0x0, 0xffffffffffffffff, 0x0)
        // ---- W forms: 32-bit result sign-extended, upper source bits ignored ----
        TEST_RR(53, addw, 0xffffffff80000000, 0x7fffffff, 0x1)
        TEST_RR(54, addw, 0x0, 0xffffffff, 0x1)
        TEST_RR(55, addw, 0x1f, 0x123456780000000f, 0x10)
        TEST_RR(56, addw, 0xfffffffffffffffe, 0xffffffffffffffff, 0xffffffffffffffff)
        TEST_RR(57, addw, 0xffffffff80000000, 0x80000000, 0x0)
        TEST_RR(58, subw, 0xffffffffffffffff, 0x0, 0x1)
        TEST_RR(59, subw, 0x7fffffff, 0x80000000, 0x1)
        TEST_RR(60, subw, 0x0, 0xffffffff00000000, 0x0)
        TEST_RR(61, subw, 0xffffffffffffffff, 0x100000000, 0x1)
        TEST_RR(62, sllw, 0x1, 0x1, 0x0)
        TEST_RR(63, sllw, 0xffffffff80000000, 0x1, 0x1f)
        TEST_RR(64, sllw, 0x1, 0x1, 0x20)
        TEST_RR(65, sllw, 0xfffffffffffffffe, 0xffffffff, 0x1)
        TEST_RR(66, sllw, 0x23456780, 0x12345678, 0x24)
        TEST_RR(67, srlw, 0xffffffff80000000, 0x80000000, 0x0)
        TEST_RR(68, srlw, 0x40000000, 0x80000000, 0x1)
        TEST_RR(69, srlw, 0x1, 0x80000000, 0x1f)
        TEST_RR(70, srlw, 0x8000000, 0xffffffff80000000, 0x4)
        TEST_RR(71, srlw, 0xffffffff80000000, 0x80000000, 0x20)
        TEST_RR(72, sraw, 0xffffffff80000000, 0x80000000, 0x0)
        TEST_RR(73, sraw, 0xffffffffc0000000, 0x80000000, 0x1)
        TEST_RR(74, sraw, 0xffffffffffffffff, 0x80000000, 0x1f)
        TEST_RR(75, sraw, 0x0, 0x7fffffff, 0x1f)
        TEST_RR(76, sraw, 0x3fffffff, 0xffffffff7fffffff, 0x1)
        TEST_RR(77, sraw, 0xffffffff80000000, 0x80000000, 0x20)
        // ---- register-immediate ----
        TEST_RI(78, addi, 0x0, 0x0, 0)
        TEST_RI(79, addi, 0x800, 0x1, 2047)
        TEST_RI(80, addi, 0xfffffffffffff801, 0x1, -2048)
        TEST_RI(81, addi, 0x8000000000000000, 0x7fffffffffffffff, 1)
        TEST_RI(82, addi, 0x7fffffffe, 0x7ffffffff, -1)
        TEST_RI(83, slti, 0x0, 0x0, -1)
        TEST_RI(84, slti, 0x1, 0xffffffffffffffff, 0)
        TEST_RI(85, slti, 0x1, 0xfffffffffffff800, -2047)
        TEST_RI(86, sltiu, 0x1, 0x0, -1)
        TEST_RI(87, sltiu, 0x0, 0xffffffffffffffff, -1)
        TEST_RI(88, sltiu, 0x1, 0x5, 6)
        TEST_RI(89, sltiu, 0x0, 0x1, 1)
        TEST_RI(90, xori, 0xffffffff00ff00ff, 0xff00ff00, -1)
        TEST_RI(91, xori, 0x7f0, 0xff, 1807)
        TEST_RI(92, ori, 0xff00ff0f, 0xff00ff00, 15)
        TEST_RI(93, ori, 0xfffffffffffff800, 0x0, -2048)
        TEST_RI(94, andi, 0x700, 0xff00ff00, 2032)
        TEST_RI(95, andi, 0xfffffffffffff800, 0xffffffffffffffff, -2048)
        TEST_RI(96, slli, 0x1, 0x1, 0)
        TEST_RI(97, slli, 0x80000000, 0x1, 31)
        TEST_RI(98, slli, 0x100000000, 0x1, 32)
        TEST_RI(99, slli, 0x8000000000000000, 0x1, 63)
        TEST_RI(100, slli, 0x5000000000000000, 0x5555, 60)
        TEST_RI(101, srli, 0x8000000000000000, 0x8000000000000000, 0)
        TEST_RI(102, srli, 0x100000000, 0x8000000000000000, 31)
        TEST_RI(103, srli, 0x80000000, 0x8000000000000000, 32)
        TEST_RI(104, srli, 0x1, 0x8000000000000000, 63)
        TEST_RI(105, srli, 0x7fffffffffffffff, 0xffffffffffffffff, 1)
        TEST_RI(106, srai, 0x8000000000000000, 0x8000000000000000, 0)
        TEST_RI(107, srai, 0xffffffff00000000, 0x8000000000000000, 31)
        TEST_RI(108, srai, 0xffffffff80000000, 0x8000000000000000, 32)
        TEST_RI(109, srai, 0xffffffffffffffff, 0x8000000000000000, 63)
        TEST_RI(110, srai, 0x0, 0x7fffffffffffffff, 63)
        TEST_RI(111, addiw, 0xffffffff80000000, 0x7fffffff, 1)
        TEST_RI(112, addiw, 0xffffffffffffffff, 0xffffffff, 0)
        TEST_RI(113, addiw, 0x0, 0x1ffffffff, 1)
        TEST_RI(114, addiw, 0xffffffffffffffff, 0x0, -1)
        TEST_RI(115, slliw, 0x1, 0x1, 0)
        TEST_RI(116, slliw, 0xffffffff80000000, 0x1, 31)
        TEST_RI(117, slliw, 0xfffffffffffffffe, 0x7fffffff, 1)
        TEST_RI(118, slliw, 0x10, 0xf00000001, 4)
        TEST_RI(119, srliw, 0xffffffff80000000, 0x80000000, 0)
        TEST_RI(120, srliw, 0x1, 0xffffffff80000000, 31)
        TEST_RI(121, srliw, 0x40000000, 0x80000000, 1)
        TEST_RI(122, srliw, 0x1, 0xffffffff00000001, 0)
        TEST_RI(123, sraiw, 0xffffffff80000000, 0x80000000, 0)
        TEST_RI(124, sraiw, 0xffffffffffffffff, 0x80000000, 31)
        TEST_RI(125, sraiw, 0x1, 0x7fffffff, 30)
        TEST_RI(126, sraiw, 0xfffffffff8000000, 0x180000000, 4)

        // ---- destination equals a source ----
        TEST_RR_SRC1(130, add, 24, 11, 13)
        TEST_RR_SRC2(131, sub, -2, 11, 13)
        TEST_RR_SRC1(132, sllw, 0xffffffff80000000, 1, 31)
        CASE(133)
        li a1, 7
        add a1, a1, a1
        CHECK(a1, 14)

        // ---- LUI: imm << 12, sign-extended from bit 31 ----
        CASE(140)
        lui a1, 0
        CHECK(a1, 0)
        CASE(141)
        lui a1, 0x7ffff
        CHECK(a1, 0x7ffff000)
        CASE(142)
        lui a1, 0x80000
        CHECK(a1, 0xffffffff80000000)
        CASE(143)
        lui a1, 0xfffff
        CHECK(a1, 0xfffffffffffff000)
        CASE(144)
        lui a1, 0x12345
        addi a1, a1, 0x678
        CHECK(a1, 0x12345678)

        // ---- AUIPC: pc + (imm << 12) ----
        CASE(150)
1:      auipc a1, 0
        la a2, 1b
        CHECK_REG(a1, a2)
        CASE(151)
2:      auipc a1, 1
        la a2, 2b
        li a3, 0x1000
        add a2, a2, a3
        CHECK_REG(a1, a2)
        CASE(152)
3:      auipc a1, 0xfffff           // -4096
        la a2, 3b
        li a3, -0x1000
        add a2, a2, a3
        CHECK_REG(a1, a2)
        CASE(153)
4:      auipc a1, 0x80000           // -2 GiB, sign-extended
        la a2, 4b
        li a3, 0xffffffff80000000
        add a2, a2, a3
        CHECK_REG(a1, a2)

        // ---- NOP forms and HINTs do nothing architecturally ----
        CASE(160)
        li a1, 5
        nop
        addi x0, a1, 1              // HINT encoding (rd = x0)
        slli x0, a1, 3
        CHECK(a1, 5)

        j pass
