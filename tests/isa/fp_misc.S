// F/D odds and ends: NaN boxing (an improperly boxed single reads as the canonical NaN in every
// operation, while moves and stores take the raw low bits), fmv.x.w sign extension, fmv.w.x
// boxing, flw/fsw keeping signalling NaN payloads, fcvt.s.d/fcvt.d.s with NaNs, sticky fflags,
// reserved rounding modes (static 5/6 and dynamic with frm = 5/6/7) as illegal instructions,
// and mstatus.FS = Off making every FP instruction and fcsr access illegal.
#include "rivet_test.h"

// Put a raw 64-bit pattern into an FP register (no boxing).
#define FRAW(freg, bits) li t5, bits; fmv.d.x freg, t5

TEST_MAIN
        // ---- NaN boxing ----
        CASE(1)                         // not boxed: reads as the canonical NaN, quiet (no NV)
        FRAW(fa0, 0x000000003f800000)
        csrwi fflags, 0
        fadd.s fa2, fa0, fa0
        FCHECK_S(fa2, 0x7fc00000)
        FFLAGS_IS(0)
        CASE(2)                         // one upper bit clear is enough to be unboxed
        FRAW(fa0, 0xfffffffe3f800000)
        FLI_S(fa1, 0x3f800000)
        fadd.s fa2, fa0, fa1
        FCHECK_S(fa2, 0x7fc00000)
        CASE(3)                         // properly boxed works
        FRAW(fa0, 0xffffffff3f800000)
        fadd.s fa2, fa0, fa0
        FCHECK_S(fa2, 0x40000000)
        CASE(4)                         // sign injection sees the canonical NaN too
        FRAW(fa0, 0x000000003f800000)
        FLI_S(fa1, 0xbf800000)
        fsgnj.s fa2, fa0, fa1
        FCHECK_S(fa2, 0xffc00000)
        fmv.s fa2, fa0
        FCHECK_S(fa2, 0x7fc00000)
        CASE(5)                         // ... also as the sign source
        FLI_S(fa1, 0x3f800000)
        FRAW(fa0, 0x00000000bf800000)   // low word negative, but the operand is +canonical NaN
        fsgnj.s fa2, fa1, fa0
        FCHECK_S(fa2, 0x3f800000)
        CASE(6)                         // compares: feq quiet, flt signalling
        FRAW(fa0, 0x000000003f800000)
        FLI_S(fa1, 0x3f800000)
        csrwi fflags, 0
        feq.s a3, fa0, fa1
        CHECK(a3, 0)
        FFLAGS_IS(0)
        flt.s a3, fa1, fa0
        CHECK(a3, 0)
        FFLAGS_IS(FF_NV)
        CASE(7)
        fclass.s a3, fa0
        CHECK(a3, 0x200)                // quiet NaN
        CASE(8)
        csrwi fflags, 0
        fcvt.w.s a3, fa0, rtz
        CHECK(a3, 0x7fffffff)
        FFLAGS_IS(FF_NV)
        CASE(9)                         // fmin returns the other operand
        fmin.s fa2, fa0, fa1
        FCHECK_S(fa2, 0x3f800000)
        CASE(10)                        // fcvt.d.s of an unboxed value: canonical double NaN
        csrwi fflags, 0
        fcvt.d.s fa2, fa0
        FCHECK_D(fa2, 0x7ff8000000000000)
        FFLAGS_IS(0)
        CASE(11)                        // fmv.x.w takes the raw low 32 bits (sign-extended)
        FRAW(fa0, 0x00000000bf800000)
        fmv.x.w a3, fa0
        CHECK(a3, 0xffffffffbf800000)
        CASE(12)                        // fsw stores the raw low 32 bits
        la a1, fbuf
        sd zero, 0(a1)
        fsw fa0, 0(a1)
        ld a3, 0(a1)
        CHECK(a3, 0xbf800000)

        // ---- moves ----
        CASE(20)
        FLI_S(fa0, 0xbf800000)
        fmv.x.w a3, fa0
        CHECK(a3, 0xffffffffbf800000)
        CASE(21)
        FLI_S(fa0, 0x7f800000)
        fmv.x.w a3, fa0
        CHECK(a3, 0x7f800000)
        CASE(22)                        // fmv.w.x ignores the upper half and boxes
        li a1, 0x123456783f800000
        fmv.w.x fa0, a1
        FCHECK_S(fa0, 0x3f800000)
        CASE(23)                        // fmv.d.x / fmv.x.d are bit exact, even for sNaN
        li a1, 0x7ff0000000000001
        fmv.d.x fa0, a1
        fmv.x.d a3, fa0
        CHECK_REG(a3, a1)
        CASE(24)                        // moves raise no flags
        csrwi fflags, 0
        FLI_S(fa0, 0x7f800001)
        fmv.x.w a3, fa0
        fmv.s fa1, fa0
        fneg.s fa2, fa0
        fabs.d fa3, fa0
        FFLAGS_IS(0)
        FCHECK_S(fa1, 0x7f800001)
        FCHECK_S(fa2, 0xff800001)
        CASE(25)
        FLI_D(fa0, 0xbff0000000000000)
        fabs.d fa1, fa0
        FCHECK_D(fa1, 0x3ff0000000000000)
        fneg.d fa1, fa1
        FCHECK_D(fa1, 0xbff0000000000000)

        // ---- loads and stores ----
        CASE(30)                        // flw boxes, keeps a signalling NaN untouched
        la a1, fbuf
        li a2, 0x7f800001
        sw a2, 0(a1)
        csrwi fflags, 0
        flw fa0, 0(a1)
        FCHECK_S(fa0, 0x7f800001)
        fsw fa0, 4(a1)
        lwu a3, 4(a1)
        CHECK(a3, 0x7f800001)
        FFLAGS_IS(0)
        CASE(31)
        li a2, 0x7ff0000000000001
        sd a2, 8(a1)
        fld fa1, 8(a1)
        fsd fa1, 16(a1)
        ld a3, 16(a1)
        CHECK_REG(a3, a2)
        CASE(32)                        // fld of a single-boxed pattern reads it as a double
        li a2, 0xffffffff3f800000
        sd a2, 8(a1)
        fld fa1, 8(a1)
        fadd.s fa2, fa1, fa1
        FCHECK_S(fa2, 0x40000000)

        // ---- conversions between formats ----
        TEST_FCVT_FF_EXACT(40, S, D, fcvt.d.s, 0x3f800000, 0x3ff0000000000000, 0)
        TEST_FCVT_FF_EXACT(41, S, D, fcvt.d.s, 0x7f800001, 0x7ff8000000000000, FF_NV)
        TEST_FCVT_FF_EXACT(42, S, D, fcvt.d.s, 0xffc00000, 0x7ff8000000000000, 0)
        TEST_FCVT_FF_EXACT(43, S, D, fcvt.d.s, 0x00000001, 0x36a0000000000000, 0)
        TEST_FCVT_FF_EXACT(44, S, D, fcvt.d.s, 0xff800000, 0xfff0000000000000, 0)
        TEST_FCVT_FF(45, D, S, fcvt.s.d, rne, 0x7ff8000000000000, 0x7fc00000, 0)
        TEST_FCVT_FF(46, D, S, fcvt.s.d, rne, 0xfff0000000000001, 0x7fc00000, FF_NV)
        TEST_FCVT_FF(47, D, S, fcvt.s.d, rne, 0x7fefffffffffffff, 0x7f800000, FF_OF | FF_NX)
        TEST_FCVT_FF(48, D, S, fcvt.s.d, rtz, 0x7fefffffffffffff, 0x7f7fffff, FF_OF | FF_NX)
        TEST_FCVT_FF(49, D, S, fcvt.s.d, rne, 0x0000000000000001, 0x00000000, FF_UF | FF_NX)
        TEST_FCVT_FF(50, D, S, fcvt.s.d, rne, 0x8000000000000000, 0x80000000, 0)
        TEST_FCVT_FF(51, D, S, fcvt.s.d, rne, 0x3ff8000000000000, 0x3fc00000, 0)

        // ---- fflags are sticky: each operation ORs into them ----
        CASE(60)
        csrwi fflags, 0
        FLI_S(fa0, 0x3f800000)
        FLI_S(fa1, 0x40400000)
        fdiv.s fa2, fa0, fa1            // NX
        fmv.w.x fa3, x0
        fdiv.s fa2, fa0, fa3            // DZ
        FFLAGS_IS(FF_NX | FF_DZ)
        fadd.s fa2, fa0, fa0            // exact: flags stay
        FFLAGS_IS(FF_NX | FF_DZ)
        CASE(61)                        // frm is not disturbed by flag updates
        csrwi frm, 2
        fdiv.s fa2, fa0, fa1, rne
        csrr a3, fcsr
        CHECK(a3, (2 << 5) | FF_NX | FF_DZ)
        csrwi fcsr, 0

        // ---- reserved rounding modes ----
        TEST_ILLEGAL(70, .word 0x00b55653)  // fadd.s fa2, fa0, fa1 with rm = 5
        TEST_ILLEGAL(71, .word 0x00b56653)  // rm = 6
        TEST_ILLEGAL(72, .word 0x12b55653)  // fmul.d with rm = 5
        TEST_ILLEGAL(73, .word 0x5a056653)  // fsqrt.d with rm = 6
        CASE(74)
        csrwi frm, 5
        TEST_ILLEGAL(75, fadd.s fa2, fa0, fa1, dyn)
        csrwi frm, 6
        TEST_ILLEGAL(76, fmul.d fa2, fa0, fa1, dyn)
        csrwi frm, 7
        TEST_ILLEGAL(77, fcvt.w.s a3, fa0, dyn)
        CASE(78)                        // operations that do not round ignore a bad frm
        fmv.x.w a3, fa0
        fsgnj.s fa2, fa0, fa1
        fmin.s fa2, fa0, fa1
        feq.s a3, fa0, fa1
        fcvt.d.s fa2, fa0
        csrwi frm, 0

        // ---- mstatus.FS = Off: FP instructions and fcsr are illegal ----
        li a1, MSTATUS_FS
        csrc mstatus, a1
        TEST_ILLEGAL(80, fadd.s fa2, fa0, fa1)
        TEST_ILLEGAL(81, fadd.d fa2, fa0, fa1)
        TEST_ILLEGAL(82, flw fa0, 0(sp))
        TEST_ILLEGAL(83, fsd fa0, 0(sp))
        TEST_ILLEGAL(84, fmv.x.w a3, fa0)
        TEST_ILLEGAL(85, fmv.d.x fa0, a3)
        TEST_ILLEGAL(86, csrr a3, fcsr)
        TEST_ILLEGAL(87, csrwi fflags, 1)
        TEST_ILLEGAL(88, csrr a3, frm)
        TEST_ILLEGAL(89, fmadd.d fa3, fa0, fa1, fa2)
        TEST_ILLEGAL(90, fcvt.s.w fa0, a1)
        TEST_ILLEGAL(91, fclass.d a3, fa0)
        CASE(92)                        // compressed FP loads/stores too (mtval = 16 bits)
        TRAP_ARM(1f)
2:      c.fld fa0, 0(s0)
1:      TRAP_EXPECT_CAUSE(CAUSE_ILLEGAL)
        la a1, 2b
        lhu a1, 0(a1)
        CHECK_REG(a0, a1)
        CASE(93)                        // FS = Off also reads back in mstatus and SD is clear
        csrr a3, mstatus
        li a4, MSTATUS_FS
        and a4, a4, a3
        CHECK(a4, 0)
        bgez a3, 1f
        j fail
1:      li a1, MSTATUS_FS_INITIAL
        csrs mstatus, a1
        CASE(94)                        // back on: works again
        FLI_S(fa0, 0x3f800000)
        fadd.s fa2, fa0, fa0
        FCHECK_S(fa2, 0x40000000)

        j pass

        .bss
        .align 3
fbuf:   .skip 32
