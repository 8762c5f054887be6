// Comparisons, min/max, classification, sign injection and conversions.

extension RVFloat {
    @inlinable static func isNaND(_ x: UInt64) -> Bool { x & 0x7FFF_FFFF_FFFF_FFFF > 0x7FF0_0000_0000_0000 }
    @inlinable static func isSNaND(_ x: UInt64) -> Bool { isNaND(x) && x & 0x0008_0000_0000_0000 == 0 }
    @inlinable static func isNaNS(_ x: UInt32) -> Bool { x & 0x7FFF_FFFF > 0x7F80_0000 }
    @inlinable static func isSNaNS(_ x: UInt32) -> Bool { isNaNS(x) && x & 0x0040_0000 == 0 }

    // MARK: min / max (IEEE 754-2019 minimumNumber/maximumNumber; -0 < +0)

    @inlinable public static func min_d(_ a: UInt64, _ b: UInt64, _ flags: inout UInt32) -> UInt64 {
        minMaxD(a, b, isMax: false, &flags)
    }

    @inlinable public static func max_d(_ a: UInt64, _ b: UInt64, _ flags: inout UInt32) -> UInt64 {
        minMaxD(a, b, isMax: true, &flags)
    }

    @inlinable @inline(__always)
    static func minMaxD(_ a: UInt64, _ b: UInt64, isMax: Bool, _ flags: inout UInt32) -> UInt64 {
        let an = isNaND(a), bn = isNaND(b)
        if an || bn {
            if isSNaND(a) || isSNaND(b) { flags |= FFlag.NV }
            if an && bn { return 0x7FF8_0000_0000_0000 }
            return an ? b : a
        }
        let x = Double(bitPattern: a), y = Double(bitPattern: b)
        // Equal values differ at most in the sign of zero: OR picks -0, AND picks +0.
        if x == y { return isMax ? a & b : a | b }
        return (x < y) != isMax ? a : b
    }

    @inlinable public static func min_s(_ a: UInt64, _ b: UInt64, _ flags: inout UInt32) -> UInt64 {
        minMaxS(a, b, isMax: false, &flags)
    }

    @inlinable public static func max_s(_ a: UInt64, _ b: UInt64, _ flags: inout UInt32) -> UInt64 {
        minMaxS(a, b, isMax: true, &flags)
    }

    @inlinable @inline(__always)
    static func minMaxS(_ a: UInt64, _ b: UInt64, isMax: Bool, _ flags: inout UInt32) -> UInt64 {
        let ua = unbox(a), ub = unbox(b)
        let an = isNaNS(ua), bn = isNaNS(ub)
        if an || bn {
            if isSNaNS(ua) || isSNaNS(ub) { flags |= FFlag.NV }
            if an && bn { return box(0x7FC0_0000) }
            return box(an ? ub : ua)
        }
        let x = Float(bitPattern: ua), y = Float(bitPattern: ub)
        if x == y { return box(isMax ? ua & ub : ua | ub) }
        return box((x < y) != isMax ? ua : ub)
    }

    // MARK: comparisons (feq quiet, flt/fle signalling)

    @inlinable public static func eq_d(_ a: UInt64, _ b: UInt64, _ flags: inout UInt32) -> UInt64 {
        if isNaND(a) || isNaND(b) {
            if isSNaND(a) || isSNaND(b) { flags |= FFlag.NV }
            return 0
        }
        return Double(bitPattern: a) == Double(bitPattern: b) ? 1 : 0
    }

    @inlinable public static func lt_d(_ a: UInt64, _ b: UInt64, _ flags: inout UInt32) -> UInt64 {
        if isNaND(a) || isNaND(b) {
            flags |= FFlag.NV
            return 0
        }
        return Double(bitPattern: a) < Double(bitPattern: b) ? 1 : 0
    }

    @inlinable public static func le_d(_ a: UInt64, _ b: UInt64, _ flags: inout UInt32) -> UInt64 {
        if isNaND(a) || isNaND(b) {
            flags |= FFlag.NV
            return 0
        }
        return Double(bitPattern: a) <= Double(bitPattern: b) ? 1 : 0
    }

    @inlinable public static func eq_s(_ a: UInt64, _ b: UInt64, _ flags: inout UInt32) -> UInt64 {
        let ua = unbox(a), ub = unbox(b)
        if isNaNS(ua) || isNaNS(ub) {
            if isSNaNS(ua) || isSNaNS(ub) { flags |= FFlag.NV }
            return 0
        }
        return Float(bitPattern: ua) == Float(bitPattern: ub) ? 1 : 0
    }

    @inlinable public static func lt_s(_ a: UInt64, _ b: UInt64, _ flags: inout UInt32) -> UInt64 {
        let ua = unbox(a), ub = unbox(b)
        if isNaNS(ua) || isNaNS(ub) {
            flags |= FFlag.NV
            return 0
        }
        return Float(bitPattern: ua) < Float(bitPattern: ub) ? 1 : 0
    }

    @inlinable public static func le_s(_ a: UInt64, _ b: UInt64, _ flags: inout UInt32) -> UInt64 {
        let ua = unbox(a), ub = unbox(b)
        if isNaNS(ua) || isNaNS(ub) {
            flags |= FFlag.NV
            return 0
        }
        return Float(bitPattern: ua) <= Float(bitPattern: ub) ? 1 : 0
    }

    // MARK: fclass

    /// The 10-bit class mask: bit 0 -inf ... bit 7 +inf, 8 sNaN, 9 qNaN.
    @inlinable static func classify(sign: Bool, expField: UInt64, expMax: UInt64, frac: UInt64, quiet: UInt64) -> UInt64 {
        if expField == expMax {
            if frac == 0 { return sign ? 1 << 0 : 1 << 7 }
            return frac & quiet != 0 ? 1 << 9 : 1 << 8
        }
        if expField == 0 {
            if frac == 0 { return sign ? 1 << 3 : 1 << 4 }
            return sign ? 1 << 2 : 1 << 5
        }
        return sign ? 1 << 1 : 1 << 6
    }

    @inlinable public static func class_d(_ a: UInt64) -> UInt64 {
        classify(sign: a >> 63 != 0, expField: (a >> 52) & 0x7FF, expMax: 0x7FF,
                 frac: a & 0x000F_FFFF_FFFF_FFFF, quiet: 0x0008_0000_0000_0000)
    }

    @inlinable public static func class_s(_ a: UInt64) -> UInt64 {
        let u = UInt64(unbox(a))
        return classify(sign: u >> 31 != 0, expField: (u >> 23) & 0xFF, expMax: 0xFF,
                        frac: u & 0x7F_FFFF, quiet: 0x40_0000)
    }

    // MARK: sign injection

    @inlinable public static func sgnj_d(_ a: UInt64, _ b: UInt64) -> UInt64 { (a & ~signD) | (b & signD) }
    @inlinable public static func sgnjn_d(_ a: UInt64, _ b: UInt64) -> UInt64 { (a & ~signD) | (~b & signD) }
    @inlinable public static func sgnjx_d(_ a: UInt64, _ b: UInt64) -> UInt64 { a ^ (b & signD) }

    @inlinable public static func sgnj_s(_ a: UInt64, _ b: UInt64) -> UInt64 {
        box((unbox(a) & 0x7FFF_FFFF) | (unbox(b) & 0x8000_0000))
    }

    @inlinable public static func sgnjn_s(_ a: UInt64, _ b: UInt64) -> UInt64 {
        box((unbox(a) & 0x7FFF_FFFF) | (~unbox(b) & 0x8000_0000))
    }

    @inlinable public static func sgnjx_s(_ a: UInt64, _ b: UInt64) -> UInt64 {
        box(unbox(a) ^ (unbox(b) & 0x8000_0000))
    }

    // MARK: float -> integer (results are integer register values; W results sign-extended)

    @inlinable public static func cvt_w_d(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        // Common case: truncation of a value safely inside the int32 range.
        if rm == FRound.RTZ {
            let x = Double(bitPattern: a)
            if x.magnitude < 2147483648.0 {
                let i = Int64(x) // truncates; in range by the test above
                if Double(i) != x { flags |= FFlag.NX }
                return UInt64(bitPattern: i)
            }
        }
        return Soft.toInt(a, .double, signed: true, width: 32, rm, &flags)
    }

    @inlinable public static func cvt_wu_d(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        Soft.toInt(a, .double, signed: false, width: 32, rm, &flags)
    }

    @inlinable public static func cvt_l_d(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        Soft.toInt(a, .double, signed: true, width: 64, rm, &flags)
    }

    @inlinable public static func cvt_lu_d(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        Soft.toInt(a, .double, signed: false, width: 64, rm, &flags)
    }

    @inlinable public static func cvt_w_s(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        Soft.toInt(unbox64(a), .single, signed: true, width: 32, rm, &flags)
    }

    @inlinable public static func cvt_wu_s(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        Soft.toInt(unbox64(a), .single, signed: false, width: 32, rm, &flags)
    }

    @inlinable public static func cvt_l_s(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        Soft.toInt(unbox64(a), .single, signed: true, width: 64, rm, &flags)
    }

    @inlinable public static func cvt_lu_s(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        Soft.toInt(unbox64(a), .single, signed: false, width: 64, rm, &flags)
    }

    // MARK: integer -> float

    @inlinable public static func cvt_d_w(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        // Every int32 is exact in double.
        Double(Int32(truncatingIfNeeded: a)).bitPattern
    }

    @inlinable public static func cvt_d_wu(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        Double(UInt32(truncatingIfNeeded: a)).bitPattern
    }

    @inlinable public static func cvt_d_l(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        Soft.fromInt(a, signed: true, width: 64, .double, rm, &flags)
    }

    @inlinable public static func cvt_d_lu(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        Soft.fromInt(a, signed: false, width: 64, .double, rm, &flags)
    }

    @inlinable public static func cvt_s_w(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        box64(Soft.fromInt(a, signed: true, width: 32, .single, rm, &flags))
    }

    @inlinable public static func cvt_s_wu(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        box64(Soft.fromInt(a, signed: false, width: 32, .single, rm, &flags))
    }

    @inlinable public static func cvt_s_l(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        box64(Soft.fromInt(a, signed: true, width: 64, .single, rm, &flags))
    }

    @inlinable public static func cvt_s_lu(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        box64(Soft.fromInt(a, signed: false, width: 64, .single, rm, &flags))
    }

    // MARK: single <-> double

    @inlinable public static func cvt_s_d(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        box64(Soft.convert(a, from: .double, to: .single, rm, &flags))
    }

    /// Exact; only a signalling NaN raises a flag.
    @inlinable public static func cvt_d_s(_ a: UInt64, _ flags: inout UInt32) -> UInt64 {
        Soft.convert(unbox64(a), from: .single, to: .double, FRound.RNE, &flags)
    }
}
