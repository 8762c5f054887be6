// F/D arithmetic entry points: host-FPU fast paths with an exact software fallback.
//
// Fast paths run only for rm = RNE and only when the host result is finite and
// clearly above the underflow threshold, so no OF/UF/NV/DZ can arise and the
// host's RNE result is the RISC-V result. NX is computed with error-free
// transforms (TwoSum, fma remainders), or skipped when NX is already accrued,
// which is the usual state of fflags in a running program.

// Double.addingProduct and squareRoot lower to libm's fma/sqrt; importing the C
// library makes every client link libm.
#if canImport(Glibc)
import Glibc
#endif

public enum RVFloat {
    @inlinable static var signD: UInt64 { 0x8000_0000_0000_0000 }

    // MARK: NaN boxing

    @inlinable public static func box(_ single: UInt32) -> UInt64 {
        0xFFFF_FFFF_0000_0000 | UInt64(single)
    }

    /// The single held in a 64-bit register; the canonical NaN if it is not properly boxed.
    @inlinable public static func unbox(_ reg: UInt64) -> UInt32 {
        reg >> 32 == 0xFFFF_FFFF ? UInt32(truncatingIfNeeded: reg) : 0x7FC0_0000
    }

    @inlinable static func unbox64(_ reg: UInt64) -> UInt64 { UInt64(unbox(reg)) }
    @inlinable static func box64(_ bits: UInt64) -> UInt64 { 0xFFFF_FFFF_0000_0000 | bits }

    /// |bits| is finite and at least 2^(loField - bias) with `loField` the lowest
    /// allowed biased exponent (strictly above min normal when loField is 1).
    @inlinable static func inRangeD(_ bits: UInt64, loField: UInt64) -> Bool {
        let m = bits & 0x7FFF_FFFF_FFFF_FFFF
        let lo = loField == 1 ? (1 << 52) + 1 : loField << 52
        return m &- lo < 0x7FF0_0000_0000_0000 &- lo
    }

    /// NX as a value, so setting it compiles to a flag move rather than a branch.
    @inlinable @inline(__always) static func nxIf(_ inexact: Bool) -> UInt32 {
        UInt32(unsafeBitCast(inexact, to: UInt8.self)) // a Bool is 0 or 1, and NX is bit 0
    }

    @inlinable static func inRangeS(_ bits: UInt32) -> Bool {
        // Strictly above the smallest normal and finite.
        let m = bits & 0x7FFF_FFFF
        return m &- 0x0080_0001 < 0x7F80_0000 &- 0x0080_0001
    }

    /// Range for double mul/div/sqrt/fma: far enough above underflow that the
    /// fma remainder used for NX is itself exact.
    @inlinable static var safeLoField: UInt64 { 64 }

    /// Range for the directed-rounding fast paths: as above, and below 2^1023
    /// (2^127 for single) so the neighbour of the RNE result is finite.
    @inlinable static func inDirectedRangeD(_ bits: UInt64) -> Bool {
        (bits & 0x7FFF_FFFF_FFFF_FFFF) &- (64 << 52) < (0x7FE << 52) &- (64 << 52)
    }

    @inlinable static func inDirectedRangeS(_ bits: UInt32) -> Bool {
        (bits & 0x7FFF_FFFF) &- (2 << 23) < (0xFE << 23) &- (2 << 23)
    }

    /// Turns r = RNE(v) into the result for rounding mode rm, given whether v
    /// is above r and whether v lies exactly halfway between r and a neighbour.
    @inlinable @inline(__always)
    static func adjust<F: BinaryFloatingPoint>(_ r: F, inexact: Bool, above: Bool, tie: Bool, _ rm: UInt32) -> F {
        if !inexact { return r }
        switch rm {
        case FRound.RTZ: return (r > 0) != above ? (above ? r.nextUp : r.nextDown) : r
        case FRound.RDN: return above ? r : r.nextDown
        case FRound.RUP: return above ? r.nextUp : r
        case FRound.RMM: return tie && above == (r > 0) ? (above ? r.nextUp : r.nextDown) : r
        default: return r
        }
    }

    /// Whether r + err (err the exact rounding error, non-zero) is a tie between r and its neighbour.
    @inlinable @inline(__always)
    static func isTie<F: BinaryFloatingPoint>(_ r: F, _ err: F) -> Bool {
        let neighbour = err > 0 ? r.nextUp : r.nextDown
        return neighbour - r == err + err
    }

    // MARK: double

    @inlinable public static func add_d(_ a: UInt64, _ b: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        addD(a, b, negB: false, rm, &flags)
    }

    @inlinable public static func sub_d(_ a: UInt64, _ b: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        addD(a, b, negB: true, rm, &flags)
    }

    @inlinable @inline(__always)
    static func addD(_ a: UInt64, _ b: UInt64, negB: Bool, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        if rm == FRound.RNE {
            let x = Double(bitPattern: a)
            let y = Double(bitPattern: negB ? b ^ signD : b)
            let s = x + y
            if inRangeD(s.bitPattern, loField: 1) {
                if flags & FFlag.NX == 0 {
                    // TwoSum: the rounding error of x + y, exactly.
                    let bv = s - x
                    let err = (x - (s - bv)) + (y - bv)
                    flags |= nxIf(err != 0)
                }
                return s.bitPattern
            }
        } else {
            let x = Double(bitPattern: a)
            let y = Double(bitPattern: negB ? b ^ signD : b)
            let s = x + y
            if inDirectedRangeD(s.bitPattern) {
                let bv = s - x
                let err = (x - (s - bv)) + (y - bv)
                flags |= nxIf(err != 0)
                let tie = rm == FRound.RMM && err != 0 && isTie(s, err)
                return adjust(s, inexact: err != 0, above: err > 0, tie: tie, rm).bitPattern
            }
        }
        return Soft.add(a, b, negB: negB, .double, rm, &flags)
    }

    @inlinable public static func mul_d(_ a: UInt64, _ b: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        if rm == FRound.RNE {
            let x = Double(bitPattern: a), y = Double(bitPattern: b)
            let p = x * y
            if inRangeD(p.bitPattern, loField: safeLoField) {
                if flags & FFlag.NX == 0 { flags |= nxIf((-p).addingProduct(x, y) != 0) }
                return p.bitPattern
            }
        } else {
            let x = Double(bitPattern: a), y = Double(bitPattern: b)
            let p = x * y
            if inDirectedRangeD(p.bitPattern) {
                let err = (-p).addingProduct(x, y)
                flags |= nxIf(err != 0)
                let tie = rm == FRound.RMM && err != 0 && isTie(p, err)
                return adjust(p, inexact: err != 0, above: err > 0, tie: tie, rm).bitPattern
            }
        }
        return Soft.mul(a, b, .double, rm, &flags)
    }

    @inlinable public static func div_d(_ a: UInt64, _ b: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        if rm == FRound.RNE {
            let x = Double(bitPattern: a), y = Double(bitPattern: b)
            let q = x / y
            if inRangeD(q.bitPattern, loField: safeLoField) && inRangeD(a, loField: safeLoField) {
                if flags & FFlag.NX == 0 { flags |= nxIf(x.addingProduct(-q, y) != 0) }
                return q.bitPattern
            }
        } else {
            let x = Double(bitPattern: a), y = Double(bitPattern: b)
            let q = x / y
            if inDirectedRangeD(q.bitPattern) && inRangeD(a, loField: safeLoField) {
                // x/y is above q when the remainder has the sign of y. A quotient is never a tie.
                let rem = x.addingProduct(-q, y)
                flags |= nxIf(rem != 0)
                return adjust(q, inexact: rem != 0, above: (rem > 0) == (y > 0), tie: false, rm).bitPattern
            }
        }
        return Soft.div(a, b, .double, rm, &flags)
    }

    @inlinable public static func sqrt_d(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        // Positive, finite, well above underflow (the sign bit makes the range test fail).
        if a &- (safeLoField << 52) < 0x7FF0_0000_0000_0000 &- (safeLoField << 52) {
            let x = Double(bitPattern: a)
            let r = x.squareRoot()
            if rm == FRound.RNE {
                if flags & FFlag.NX == 0 { flags |= nxIf(x.addingProduct(-r, r) != 0) }
                return r.bitPattern
            }
            // A square root is never a tie either.
            let rem = x.addingProduct(-r, r)
            flags |= nxIf(rem != 0)
            return adjust(r, inexact: rem != 0, above: rem > 0, tie: false, rm).bitPattern
        }
        return Soft.sqrt(a, .double, rm, &flags)
    }

    @inlinable public static func madd_d(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        fmaD(a, b, c, negProduct: false, negC: false, rm, &flags)
    }

    @inlinable public static func msub_d(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        fmaD(a, b, c, negProduct: false, negC: true, rm, &flags)
    }

    /// -(a*b) + c
    @inlinable public static func nmsub_d(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        fmaD(a, b, c, negProduct: true, negC: false, rm, &flags)
    }

    /// -(a*b) - c
    @inlinable public static func nmadd_d(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        fmaD(a, b, c, negProduct: true, negC: true, rm, &flags)
    }

    @inlinable @inline(__always)
    static func fmaD(_ a: UInt64, _ b: UInt64, _ c: UInt64, negProduct: Bool, negC: Bool, _ rm: UInt32,
                     _ flags: inout UInt32) -> UInt64 {
        // Without NX accrued we would need the exact error of a fused op: leave that to software.
        if rm == FRound.RNE && flags & FFlag.NX != 0 {
            let x = Double(bitPattern: negProduct ? a ^ signD : a)
            let y = Double(bitPattern: b)
            let z = Double(bitPattern: negC ? c ^ signD : c)
            let r = z.addingProduct(x, y)
            if inRangeD(r.bitPattern, loField: 1) { return r.bitPattern }
        }
        return Soft.fma(a, b, c, negProduct: negProduct, negC: negC, .double, rm, &flags)
    }

    // MARK: single (through double, where the double result is exact or rounding twice is harmless)

    @inlinable public static func add_s(_ a: UInt64, _ b: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        addS(a, b, negB: false, rm, &flags)
    }

    @inlinable public static func sub_s(_ a: UInt64, _ b: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        addS(a, b, negB: true, rm, &flags)
    }

    @inlinable @inline(__always)
    static func addS(_ a: UInt64, _ b: UInt64, negB: Bool, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        let ua = unbox(a), ub = unbox(b)
        if rm == FRound.RNE {
            let x = Float(bitPattern: ua)
            let y = Float(bitPattern: negB ? ub ^ 0x8000_0000 : ub)
            let s = x + y
            if inRangeS(s.bitPattern) {
                if flags & FFlag.NX == 0 {
                    let bv = s - x
                    let err = (x - (s - bv)) + (y - bv)
                    flags |= nxIf(err != 0)
                }
                return box(s.bitPattern)
            }
        } else {
            let x = Float(bitPattern: ua)
            let y = Float(bitPattern: negB ? ub ^ 0x8000_0000 : ub)
            let s = x + y
            if inDirectedRangeS(s.bitPattern) {
                let bv = s - x
                let err = (x - (s - bv)) + (y - bv)
                flags |= nxIf(err != 0)
                let tie = rm == FRound.RMM && err != 0 && isTie(s, err)
                return box(adjust(s, inexact: err != 0, above: err > 0, tie: tie, rm).bitPattern)
            }
        }
        return box64(Soft.add(UInt64(ua), UInt64(ub), negB: negB, .single, rm, &flags))
    }

    @inlinable public static func mul_s(_ a: UInt64, _ b: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        let ua = unbox(a), ub = unbox(b)
        // A product of two singles is exact in double.
        let p = Double(Float(bitPattern: ua)) * Double(Float(bitPattern: ub))
        let r = Float(p)
        if rm == FRound.RNE {
            if inRangeS(r.bitPattern) {
                flags |= nxIf(Double(r) != p)
                return box(r.bitPattern)
            }
        } else if inDirectedRangeS(r.bitPattern) {
            let err = p - Double(r) // exact: both are short doubles of similar size
            flags |= nxIf(err != 0)
            // Tie: the error is half the (single-precision) gap to the neighbour on its side.
            let gap = err > 0 ? Double(r.nextUp) - Double(r) : Double(r.nextDown) - Double(r)
            let tie = rm == FRound.RMM && err != 0 && gap == err + err
            return box(adjust(r, inexact: err != 0, above: err > 0, tie: tie, rm).bitPattern)
        }
        return box64(Soft.mul(UInt64(ua), UInt64(ub), .single, rm, &flags))
    }

    @inlinable public static func div_s(_ a: UInt64, _ b: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        let ua = unbox(a), ub = unbox(b)
        if rm == FRound.RNE {
            // Double has more than 2*24+2 bits, so double-then-single rounding is correct.
            let x = Double(Float(bitPattern: ua)), y = Double(Float(bitPattern: ub))
            let r = Float(x / y)
            if inRangeS(r.bitPattern) {
                flags |= nxIf(Double(r) * y != x)
                return box(r.bitPattern)
            }
        }
        return box64(Soft.div(UInt64(ua), UInt64(ub), .single, rm, &flags))
    }

    @inlinable public static func sqrt_s(_ a: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        let ua = unbox(a)
        // Positive non-zero finite (sign bit fails the test).
        if rm == FRound.RNE && ua &- 1 < 0x7F80_0000 - 1 {
            let x = Double(Float(bitPattern: ua))
            let r = Float(x.squareRoot())
            let rd = Double(r)
            flags |= nxIf(rd * rd != x)
            return box(r.bitPattern)
        }
        return box64(Soft.sqrt(UInt64(ua), .single, rm, &flags))
    }

    @inlinable public static func madd_s(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        fmaS(a, b, c, negProduct: false, negC: false, rm, &flags)
    }

    @inlinable public static func msub_s(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        fmaS(a, b, c, negProduct: false, negC: true, rm, &flags)
    }

    /// -(a*b) + c
    @inlinable public static func nmsub_s(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        fmaS(a, b, c, negProduct: true, negC: false, rm, &flags)
    }

    /// -(a*b) - c
    @inlinable public static func nmadd_s(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        fmaS(a, b, c, negProduct: true, negC: true, rm, &flags)
    }

    @inlinable @inline(__always)
    static func fmaS(_ a: UInt64, _ b: UInt64, _ c: UInt64, negProduct: Bool, negC: Bool, _ rm: UInt32,
                     _ flags: inout UInt32) -> UInt64 {
        let ua = unbox(a), ub = unbox(b), uc = unbox(c)
        if rm == FRound.RNE {
            // a*b is exact in double; s = p + z rounds once. Rounding s to single
            // again is correct unless s sits exactly on a single-precision
            // midpoint (then software decides; that is rare).
            let p = Double(Float(bitPattern: negProduct ? ua ^ 0x8000_0000 : ua)) * Double(Float(bitPattern: ub))
            let z = Double(Float(bitPattern: negC ? uc ^ 0x8000_0000 : uc))
            let s = p + z
            let r = Float(s)
            if inRangeS(r.bitPattern) && s.bitPattern & 0x1FFF_FFFF != 0x1000_0000 {
                if flags & FFlag.NX == 0 {
                    // TwoSum error of p + z, then the second rounding.
                    let bv = s - p
                    let err = (p - (s - bv)) + (z - bv)
                    flags |= nxIf(err != 0) | nxIf(Double(r) != s)
                }
                return box(r.bitPattern)
            }
        }
        return box64(Soft.fma(UInt64(ua), UInt64(ub), UInt64(uc), negProduct: negProduct, negC: negC, .single, rm, &flags))
    }
}
