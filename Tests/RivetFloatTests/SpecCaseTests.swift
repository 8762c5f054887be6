// Hand-derived cases from the RISC-V F/D chapters and IEEE 754 (expected values worked out by hand).
import Testing
import RivetFloat

typealias R = RVFloat
let NV = FFlag.NV, DZ = FFlag.DZ, OF = FFlag.OF, UF = FFlag.UF, NX = FFlag.NX
let RNE = FRound.RNE, RTZ = FRound.RTZ, RDN = FRound.RDN, RUP = FRound.RUP, RMM = FRound.RMM

func d(_ x: Double) -> UInt64 { x.bitPattern }
func s(_ x: Float) -> UInt64 { R.box(x.bitPattern) }
let qNaND: UInt64 = 0x7FF8_0000_0000_0000, sNaND: UInt64 = 0x7FF4_0000_0000_0000
let qNaNS = R.box(0x7FC0_0000), sNaNS = R.box(0x7FA0_0000)
let minSubD: UInt64 = 1, minNormD: UInt64 = 0x0010_0000_0000_0000, maxD: UInt64 = 0x7FEF_FFFF_FFFF_FFFF
let infD: UInt64 = 0x7FF0_0000_0000_0000, negInfD: UInt64 = 0xFFF0_0000_0000_0000

/// Runs `op` from clean flags and returns (result, flags).
func go(_ op: (inout UInt32) -> UInt64) -> (UInt64, UInt32) {
    var f: UInt32 = 0
    let r = op(&f)
    return (r, f)
}

@Suite struct BoxingTests {
    @Test func boxAndUnbox() {
        #expect(R.box(0x3F80_0000) == 0xFFFF_FFFF_3F80_0000)
        #expect(R.unbox(0xFFFF_FFFF_3F80_0000) == 0x3F80_0000)
        #expect(R.unbox(0x0000_0000_3F80_0000) == 0x7FC0_0000)
        #expect(R.unbox(0xFFFF_FFFE_3F80_0000) == 0x7FC0_0000)
    }

    @Test func improperlyBoxedInputReadsAsCanonicalNaN() {
        // 1.0 + (unboxed 1.0) = NaN, quietly (canonical NaN is quiet).
        #expect(go { R.add_s(s(1), 0x3F80_0000, RNE, &$0) } == (qNaNS, 0))
        #expect(R.class_s(0x3F80_0000) == 1 << 9)
        // Sign injection reads the canonical NaN too, and boxes its result.
        #expect(R.sgnjn_s(0x3F80_0000, s(1)) == R.box(0xFFC0_0000))
        #expect(R.sgnj_s(s(2), 0x0000_0000_BF80_0000) == s(2)) // unboxed b is +qNaN
    }
}

@Suite struct ArithmeticTests {
    @Test func exactAndInexactAdd() {
        #expect(go { R.add_d(d(1), d(2), RNE, &$0) } == (d(3), 0))
        #expect(go { R.add_d(d(0.1), d(0.2), RNE, &$0) } == (d(0.1 + 0.2), NX))
        #expect(go { R.add_s(s(1), s(2), RNE, &$0) } == (s(3), 0))
        #expect(go { R.sub_s(s(1), s(0x1p-30), RNE, &$0) } == (s(1), NX))
    }

    @Test func roundingModesOnATie() {
        // 1 + 2^-53 is exactly halfway between 1 and 1 + 2^-52.
        let half = d(0x1p-53)
        #expect(go { R.add_d(d(1), half, RNE, &$0) } == (d(1), NX))
        #expect(go { R.add_d(d(1), half, RMM, &$0) } == (d(1 + 0x1p-52), NX))
        #expect(go { R.add_d(d(1), half, RUP, &$0) } == (d(1 + 0x1p-52), NX))
        #expect(go { R.add_d(d(1), half, RDN, &$0) } == (d(1), NX))
        #expect(go { R.add_d(d(1), half, FRound.RTZ, &$0) } == (d(1), NX))
        // Negative tie: RDN moves away from zero, RUP toward.
        #expect(go { R.add_d(d(-1), d(-0x1p-53), RDN, &$0) } == (d(-(1 + 0x1p-52)), NX))
        #expect(go { R.add_d(d(-1), d(-0x1p-53), RUP, &$0) } == (d(-1), NX))
        #expect(go { R.add_d(d(-1), d(-0x1p-53), RMM, &$0) } == (d(-(1 + 0x1p-52)), NX))
        // Odd last bit: RNE rounds up to even.
        #expect(go { R.add_d(d(1 + 0x1p-52), half, RNE, &$0) } == (d(1 + 0x1p-51), NX))
    }

    @Test func signOfExactZero() {
        #expect(go { R.sub_d(d(1), d(1), RNE, &$0) } == (d(0), 0))
        #expect(go { R.sub_d(d(1), d(1), RDN, &$0) } == (d(-0.0), 0))
        #expect(go { R.add_d(d(-0.0), d(-0.0), RNE, &$0) } == (d(-0.0), 0))
        #expect(go { R.add_d(d(-0.0), d(0), RNE, &$0) } == (d(0), 0))
        #expect(go { R.add_d(d(-0.0), d(0), RDN, &$0) } == (d(-0.0), 0))
        #expect(go { R.sub_s(s(2), s(2), RDN, &$0) } == (s(-0.0), 0))
    }

    @Test func overflowByRoundingMode() {
        #expect(go { R.mul_d(maxD, d(2), RNE, &$0) } == (infD, OF | NX))
        #expect(go { R.mul_d(maxD, d(2), FRound.RTZ, &$0) } == (maxD, OF | NX))
        #expect(go { R.mul_d(maxD, d(-2), RUP, &$0) } == (maxD | 1 << 63, OF | NX))
        #expect(go { R.mul_d(maxD, d(-2), RDN, &$0) } == (negInfD, OF | NX))
        #expect(go { R.add_s(s(.greatestFiniteMagnitude), s(.greatestFiniteMagnitude), RMM, &$0) } == (s(.infinity), OF | NX))
    }

    @Test func tininessIsDetectedAfterRounding() {
        // (1 - 2^-24) * 2^-126 exactly: tiny and inexact as a subnormal -> UF.
        #expect(go { R.mul_s(R.box(0x00FF_FFFF), s(0.5), RNE, &$0) } == (R.box(0x0080_0000), UF | NX))
        // (1 + 2^-24 - 2^-47) * 2^-126 rounds to 2^-126 even with unbounded exponent: not tiny.
        #expect(go { R.mul_s(R.box(0x00FF_FFFF), R.box(0x3F00_0001), RNE, &$0) } == (R.box(0x0080_0000), NX))
        #expect(go { R.mul_d(0x001F_FFFF_FFFF_FFFF, 0x3FE0_0000_0000_0001, RNE, &$0) } == (minNormD, NX))
        #expect(go { R.mul_d(0x001F_FFFF_FFFF_FFFF, d(0.5), RNE, &$0) } == (minNormD, UF | NX))
        // An exact subnormal result raises nothing.
        #expect(go { R.sub_d(minNormD, minSubD, RNE, &$0) } == (0x000F_FFFF_FFFF_FFFF, 0))
        #expect(go { R.mul_d(minSubD, d(0.5), RNE, &$0) } == (0, UF | NX))
        #expect(go { R.mul_d(minSubD, d(0.5), RUP, &$0) } == (minSubD, UF | NX))
    }

    @Test func divisionAndSqrt() {
        #expect(go { R.div_d(d(1), d(0), RNE, &$0) } == (infD, DZ))
        #expect(go { R.div_d(d(-1), d(0), RNE, &$0) } == (negInfD, DZ))
        #expect(go { R.div_d(d(0), d(0), RNE, &$0) } == (qNaND, NV))
        #expect(go { R.div_d(infD, infD, RNE, &$0) } == (qNaND, NV))
        #expect(go { R.div_s(s(1), s(3), RNE, &$0) } == (s(1.0 / 3.0), NX))
        // Float(1/3) and Double(sqrt 2) are rounded up by RNE: RUP agrees, RDN/RTZ give the value below.
        #expect(go { R.div_s(s(1), s(3), RUP, &$0) } == (s(Float(1.0 / 3.0)), NX))
        #expect(go { R.div_s(s(1), s(3), RDN, &$0) } == (s(Float(1.0 / 3.0).nextDown), NX))
        #expect(go { R.div_s(s(-1), s(3), FRound.RTZ, &$0) } == (s(-Float(1.0 / 3.0).nextDown), NX))
        #expect(go { R.div_d(d(6), d(3), RNE, &$0) } == (d(2), 0))
        #expect(go { R.sqrt_d(d(4), RNE, &$0) } == (d(2), 0))
        #expect(go { R.sqrt_d(d(2), RNE, &$0) } == (d(2.0.squareRoot()), NX))
        #expect(go { R.sqrt_d(d(2), RUP, &$0) } == (d(2.0.squareRoot()), NX))
        #expect(go { R.sqrt_d(d(2), RDN, &$0) } == (d(2.0.squareRoot().nextDown), NX))
        #expect(go { R.sqrt_d(d(-1), RNE, &$0) } == (qNaND, NV))
        #expect(go { R.sqrt_d(d(-0.0), RNE, &$0) } == (d(-0.0), 0))
        #expect(go { R.sqrt_d(negInfD, RNE, &$0) } == (qNaND, NV))
        #expect(go { R.sqrt_s(s(-4), RNE, &$0) } == (qNaNS, NV))
        #expect(go { R.sqrt_s(R.box(1), RNE, &$0) } == (s(Float(0x1p-149).squareRoot()), NX))
    }

    @Test func nanResultsAreCanonicalAndOnlySignallingNaNsRaiseNV() {
        #expect(go { R.add_d(0x7FF8_0000_DEAD_BEEF, d(1), RNE, &$0) } == (qNaND, 0))
        #expect(go { R.add_d(sNaND, d(1), RNE, &$0) } == (qNaND, NV))
        #expect(go { R.mul_s(R.box(0xFFC1_2345), s(1), RNE, &$0) } == (qNaNS, 0))
        #expect(go { R.add_d(infD, negInfD, RNE, &$0) } == (qNaND, NV))
        #expect(go { R.mul_d(infD, d(0), RNE, &$0) } == (qNaND, NV))
    }
}

@Suite struct FusedTests {
    @Test func singleRounding() {
        // (1 + 2^-52)(1 - 2^-52) = 1 - 2^-104, exactly representable only as a fused residue.
        let a = d(1 + 0x1p-52), b = d(1 - 0x1p-52)
        #expect(go { R.madd_d(a, b, d(-1), RNE, &$0) } == (d(-0x1p-104), 0)) // exact residue, unfused would be 0
        #expect(go { R.madd_d(a, b, d(0), RDN, &$0) } == (d(1 - 0x1p-53), NX))
        #expect(go { R.madd_d(a, b, d(0), RNE, &$0) } == (d(1), NX))
    }

    @Test func signVariants() {
        let two = d(2), three = d(3), one = d(1)
        #expect(go { R.madd_d(two, three, one, RNE, &$0) } == (d(7), 0))
        #expect(go { R.msub_d(two, three, one, RNE, &$0) } == (d(5), 0))
        #expect(go { R.nmsub_d(two, three, one, RNE, &$0) } == (d(-5), 0))
        #expect(go { R.nmadd_d(two, three, one, RNE, &$0) } == (d(-7), 0))
        #expect(go { R.nmadd_s(s(2), s(3), s(1), RNE, &$0) } == (s(-7), 0))
        // -(+0 * 1) - (+0) = -0
        #expect(go { R.nmadd_d(d(0), one, d(0), RNE, &$0) } == (d(-0.0), 0))
        #expect(go { R.madd_d(d(0), one, d(-0.0), RNE, &$0) } == (d(0), 0))
    }

    @Test func infTimesZeroIsInvalidEvenWithQuietNaNAddend() {
        #expect(go { R.madd_d(infD, d(0), qNaND, RNE, &$0) } == (qNaND, NV))
        #expect(go { R.madd_s(s(0), s(.infinity), qNaNS, RNE, &$0) } == (qNaNS, NV))
        #expect(go { R.madd_d(d(1), d(1), qNaND, RNE, &$0) } == (qNaND, 0))
        #expect(go { R.madd_d(infD, d(1), negInfD, RNE, &$0) } == (qNaND, NV))
    }

    @Test func singleFastPathMidpointFallsBackToSoftware() {
        // a*b = 2^-24 - 2^-70; + (1 + 2^-23): the double sum lands on a single midpoint.
        #expect(go { R.madd_s(R.box(0x3F80_0001), R.box(0x337F_FFFE), R.box(0x3F80_0001), RNE, &$0) } == (R.box(0x3F80_0001), NX))
    }

    @Test func accruedNXTakesTheSameResult() {
        var f = NX
        #expect(R.madd_d(d(0.1), d(0.2), d(0.3), RNE, &f) == d((0.3).addingProduct(0.1, 0.2)))
        #expect(f == NX)
        var g: UInt32 = 0
        #expect(R.madd_d(d(0.1), d(0.2), d(0.3), RNE, &g) == d((0.3).addingProduct(0.1, 0.2)))
        #expect(g == NX)
    }
}

@Suite struct CompareTests {
    @Test func minMax() {
        var f: UInt32 = 0
        #expect(R.min_d(d(-0.0), d(0), &f) == d(-0.0))
        #expect(R.min_d(d(0), d(-0.0), &f) == d(-0.0))
        #expect(R.max_d(d(-0.0), d(0), &f) == d(0))
        #expect(R.min_d(qNaND, d(3), &f) == d(3))
        #expect(R.max_d(d(3), qNaND, &f) == d(3))
        #expect(f == 0)
        #expect(R.min_d(sNaND, d(3), &f) == d(3))
        #expect(f == NV)
        f = 0
        #expect(R.max_d(qNaND, 0x7FF8_0000_0000_1234, &f) == qNaND)
        #expect(f == 0)
        #expect(R.min_s(sNaNS, qNaNS, &f) == qNaNS)
        #expect(f == NV)
        #expect(R.max_s(s(-1), s(-2), &f) == s(-1))
        #expect(R.min_s(s(-1), s(-2), &f) == s(-2))
    }

    @Test func quietEqualSignallingOrder() {
        var f: UInt32 = 0
        #expect(R.eq_d(d(0), d(-0.0), &f) == 1)
        #expect(R.eq_d(qNaND, qNaND, &f) == 0)
        #expect(f == 0)
        #expect(R.eq_d(sNaND, d(1), &f) == 0)
        #expect(f == NV)
        f = 0
        #expect(R.lt_d(qNaND, d(1), &f) == 0)
        #expect(f == NV)
        f = 0
        #expect(R.le_s(s(-0.0), s(0), &f) == 1)
        #expect(R.lt_s(s(-0.0), s(0), &f) == 0)
        #expect(R.lt_s(s(-1), s(1), &f) == 1)
        #expect(f == 0)
        #expect(R.le_s(qNaNS, s(1), &f) == 0)
        #expect(f == NV)
    }

    @Test func classify() {
        let want: [(UInt64, UInt64)] = [
            (negInfD, 1 << 0), (d(-1), 1 << 1), (0x8000_0000_0000_0001, 1 << 2), (d(-0.0), 1 << 3),
            (d(0), 1 << 4), (minSubD, 1 << 5), (d(1), 1 << 6), (infD, 1 << 7), (sNaND, 1 << 8), (qNaND, 1 << 9),
        ]
        for (x, c) in want { #expect(R.class_d(x) == c) }
        #expect(R.class_s(s(-.infinity)) == 1 << 0)
        #expect(R.class_s(R.box(0x8000_0001)) == 1 << 2)
        #expect(R.class_s(sNaNS) == 1 << 8)
        #expect(R.class_s(s(1)) == 1 << 6)
    }

    @Test func signInjection() {
        #expect(R.sgnj_d(d(1), d(-2)) == d(-1))
        #expect(R.sgnjn_d(d(1), d(-2)) == d(1))
        #expect(R.sgnjx_d(d(-1), d(-2)) == d(1))
        #expect(R.sgnjn_s(s(3), s(3)) == s(-3))
        #expect(R.sgnjx_s(s(-3), s(2)) == s(-3))
    }
}

@Suite struct ConversionTests {
    @Test func floatToIntSaturatesAndFlags() {
        #expect(go { R.cvt_w_d(qNaND, RNE, &$0) } == (0x7FFF_FFFF, NV))
        #expect(go { R.cvt_w_d(d(-0x1p40), RNE, &$0) } == (0xFFFF_FFFF_8000_0000, NV))
        #expect(go { R.cvt_w_d(negInfD, RNE, &$0) } == (0xFFFF_FFFF_8000_0000, NV))
        #expect(go { R.cvt_wu_d(qNaND, RNE, &$0) } == (UInt64.max, NV)) // 2^32-1 sign-extended
        #expect(go { R.cvt_wu_d(d(-1), RNE, &$0) } == (0, NV))
        #expect(go { R.cvt_wu_d(d(-0.4), RNE, &$0) } == (0, NX))
        #expect(go { R.cvt_wu_d(d(-0.5), RNE, &$0) } == (0, NX)) // ties to even: -0
        #expect(go { R.cvt_wu_d(d(-0.5), RMM, &$0) } == (0, NV))
        #expect(go { R.cvt_wu_d(d(3e9), RNE, &$0) } == (UInt64(bitPattern: Int64(Int32(bitPattern: 3_000_000_000))), 0))
        #expect(go { R.cvt_l_d(d(0x1p63), RNE, &$0) } == (0x7FFF_FFFF_FFFF_FFFF, NV))
        #expect(go { R.cvt_l_d(d(-0x1p63), RNE, &$0) } == (0x8000_0000_0000_0000, 0))
        #expect(go { R.cvt_lu_d(d(0x1p64), RNE, &$0) } == (UInt64.max, NV))
        #expect(go { R.cvt_lu_d(infD, RNE, &$0) } == (UInt64.max, NV))
        #expect(go { R.cvt_lu_s(s(-.infinity), RNE, &$0) } == (0, NV))
        #expect(go { R.cvt_w_s(s(2147483520), RNE, &$0) } == (2147483520, 0))
        #expect(go { R.cvt_w_s(s(2147483648), RNE, &$0) } == (0x7FFF_FFFF, NV))
        #expect(go { R.cvt_w_d(d(2147483647.5), RTZ, &$0) } == (0x7FFF_FFFF, NX))
        #expect(go { R.cvt_w_d(d(2147483647.5), RNE, &$0) } == (0x7FFF_FFFF, NV))
    }

    @Test func floatToIntRounding() {
        let cases: [(Double, UInt32, Int64)] = [
            (2.5, RNE, 2), (3.5, RNE, 4), (2.5, RMM, 3), (-2.5, RMM, -3), (2.7, FRound.RTZ, 2), (-2.7, FRound.RTZ, -2),
            (-2.2, RDN, -3), (2.2, RUP, 3), (-2.2, RUP, -2), (0.3, RUP, 1), (-0.3, RDN, -1), (1e-300, RUP, 1),
        ]
        for (x, rm, want) in cases {
            #expect(go { R.cvt_l_d(d(x), rm, &$0) } == (UInt64(bitPattern: want), NX))
            #expect(go { R.cvt_w_d(d(x), rm, &$0) } == (UInt64(bitPattern: want), NX))
        }
        #expect(go { R.cvt_l_d(d(-0.0), RNE, &$0) } == (0, 0))
    }

    @Test func intToFloat() {
        #expect(go { R.cvt_d_w(0xFFFF_FFFF, RNE, &$0) } == (d(-1), 0))
        #expect(go { R.cvt_d_wu(0xFFFF_FFFF, RNE, &$0) } == (d(4294967295), 0))
        #expect(go { R.cvt_d_l(0x8000_0000_0000_0000, RNE, &$0) } == (d(-0x1p63), 0))
        #expect(go { R.cvt_d_lu(UInt64.max, RNE, &$0) } == (d(0x1p64), NX))
        #expect(go { R.cvt_d_lu(UInt64.max, FRound.RTZ, &$0) } == (d(0x1p64.nextDown), NX))
        #expect(go { R.cvt_d_l((1 << 53) + 1, RNE, &$0) } == (d(0x1p53), NX))
        #expect(go { R.cvt_d_l((1 << 53) + 1, RUP, &$0) } == (d(0x1p53 + 2), NX))
        #expect(go { R.cvt_s_w(16_777_217, RNE, &$0) } == (s(16_777_216), NX))
        #expect(go { R.cvt_s_w(16_777_217, RMM, &$0) } == (s(16_777_218), NX))
        #expect(go { R.cvt_s_wu(0xFFFF_FFFF_FFFF_FFFF, RNE, &$0) } == (s(4294967296), NX)) // uses the low word
        #expect(go { R.cvt_s_l(0, RNE, &$0) } == (s(0), 0))
    }

    @Test func formatConversions() {
        #expect(go { R.cvt_s_d(d(0.1), RNE, &$0) } == (s(0.1), NX))
        #expect(go { R.cvt_s_d(d(1e300), RNE, &$0) } == (s(.infinity), OF | NX))
        #expect(go { R.cvt_s_d(d(1e300), FRound.RTZ, &$0) } == (s(.greatestFiniteMagnitude), OF | NX))
        #expect(go { R.cvt_s_d(d(1e-50), RNE, &$0) } == (s(0), UF | NX))
        #expect(go { R.cvt_s_d(sNaND, RNE, &$0) } == (qNaNS, NV))
        #expect(go { R.cvt_s_d(0xFFF8_0000_0000_1234, RNE, &$0) } == (qNaNS, 0))
        #expect(go { R.cvt_d_s(s(0.1), &$0) } == (d(Double(Float(0.1))), 0))
        #expect(go { R.cvt_d_s(R.box(1), &$0) } == (d(Double(Float(0x1p-149))), 0))
        #expect(go { R.cvt_d_s(sNaNS, &$0) } == (qNaND, NV))
        #expect(go { R.cvt_d_s(0x3F80_0000, &$0) } == (qNaND, 0)) // not boxed
    }
}
