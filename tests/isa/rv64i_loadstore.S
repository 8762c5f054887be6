// RV64I loads and stores of every width: sign extension (lb/lh/lw) vs zero extension
// (lbu/lhu/lwu), ld, sb/sh/sw/sd writing only their bytes, little-endian byte order,
// negative and positive offsets, and a load into x0.
#include "rivet_test.h"

#define TEST_LD(n, inst, off, exp) CASE(n); la a1, ldata; inst a3, off(a1); CHECK(a3, exp)

TEST_MAIN
        // ldata = 80 81 82 83 84 85 86 87 | 7f 01 ff 7f 00 80 ff ff | ...
        TEST_LD(1, lb, 0, 0xffffffffffffff80)
        TEST_LD(2, lb, 8, 0x7f)
        TEST_LD(3, lbu, 0, 0x80)
        TEST_LD(4, lbu, 10, 0xff)
        TEST_LD(5, lh, 0, 0xffffffffffff8180)
        TEST_LD(6, lh, 8, 0x017f)
        TEST_LD(7, lh, 10, 0x7fff)
        TEST_LD(8, lhu, 0, 0x8180)
        TEST_LD(9, lhu, 14, 0xffff)
        TEST_LD(10, lw, 0, 0xffffffff83828180)
        TEST_LD(11, lw, 8, 0x7fff017f)
        TEST_LD(12, lw, 12, 0xffffffffffff8000)
        TEST_LD(13, lwu, 0, 0x83828180)
        TEST_LD(14, lwu, 12, 0xffff8000)
        TEST_LD(15, ld, 0, 0x8786858483828180)
        TEST_LD(16, ld, 8, 0xffff80007fff017f)
        TEST_LD(17, lb, 1, 0xffffffffffffff81)
        TEST_LD(18, lbu, 7, 0x87)
        TEST_LD(19, lh, 6, 0xffffffffffff8786)
        TEST_LD(20, lw, 4, 0xffffffff87868584)
        // negative offset
        CASE(21)
        la a1, ldata
        addi a1, a1, 16
        ld a3, -16(a1)
        CHECK(a3, 0x8786858483828180)
        CASE(22)
        lbu a3, -1(a1)
        CHECK(a3, 0xff)
        CASE(23)                        // large positive offset
        la a1, ldata
        addi a1, a1, -2040
        ld a3, 2040(a1)
        CHECK(a3, 0x8786858483828180)
        CASE(24)                        // load into x0 is performed but discarded
        la a1, ldata
        lw x0, 0(a1)
        CHECK(x0, 0)
        CASE(25)                        // rd == rs1
        la a1, ptr
        ld a1, 0(a1)
        la a2, ldata
        CHECK_REG(a1, a2)

        // ---- stores write exactly their width ----
        CASE(30)
        la a1, sdata
        li a2, -1
        sd a2, 0(a1)
        li a2, 0x12
        sb a2, 0(a1)
        ld a3, 0(a1)
        CHECK(a3, 0xffffffffffffff12)
        CASE(31)
        li a2, 0x3456
        sh a2, 2(a1)
        ld a3, 0(a1)
        CHECK(a3, 0xffffffff3456ff12)
        CASE(32)
        li a2, 0x0abbccdd
        sw a2, 4(a1)
        ld a3, 0(a1)
        CHECK(a3, 0x0abbccdd3456ff12)
        CASE(33)                        // only the low bits of rs2 are stored
        li a2, 0x1122334455667788
        sb a2, 1(a1)
        ld a3, 0(a1)
        CHECK(a3, 0x0abbccdd34568812)
        CASE(34)
        sh a2, 4(a1)
        sw a2, 8(a1)
        ld a3, 0(a1)
        CHECK(a3, 0x0abb778834568812)
        ld a3, 8(a1)
        CHECK(a3, 0x55667788)           // upper half was 0 (bss)
        CASE(35)
        sd a2, 16(a1)
        lbu a3, 16(a1)
        CHECK(a3, 0x88)                 // little endian: low byte first
        lbu a3, 23(a1)
        CHECK(a3, 0x11)
        CASE(36)                        // negative store offset
        addi a4, a1, 32
        li a2, 0x5a
        sb a2, -8(a4)
        lbu a3, 24(a1)
        CHECK(a3, 0x5a)
        CASE(37)                        // store then load back each width, sign-extending
        li a2, 0x80
        sb a2, 40(a1)
        lb a3, 40(a1)
        CHECK(a3, -128)
        li a2, 0x8000
        sh a2, 42(a1)
        lh a3, 42(a1)
        CHECK(a3, -32768)
        li a2, 0x80000000
        sw a2, 44(a1)
        lw a3, 44(a1)
        CHECK(a3, 0xffffffff80000000)
        lwu a3, 44(a1)
        CHECK(a3, 0x80000000)
        CASE(38)                        // storing x0 writes zeros
        sd x0, 16(a1)
        ld a3, 16(a1)
        CHECK(a3, 0)
        CASE(39)                        // store then load at the same address via different base
        la a4, sdata + 48
        li a2, 0xdeadbeefcafef00d
        sd a2, 0(a4)
        la a5, sdata
        ld a3, 48(a5)
        CHECK(a3, 0xdeadbeefcafef00d)
        lhu a3, 50(a5)
        CHECK(a3, 0xcafe)
        lh a3, 54(a5)
        CHECK(a3, 0xffffffffffffdead)

        j pass

        .data
        .align 3
ldata:  .byte 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87
        .byte 0x7f, 0x01, 0xff, 0x7f, 0x00, 0x80, 0xff, 0xff
ptr:    .dword ldata
        .bss
        .align 3
sdata:  .skip 64
