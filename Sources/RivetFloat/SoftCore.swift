// Software IEEE-754 core shared by single and double precision.
//
// Finite non-zero values are unpacked to (sign, exp, sig) with the leading one
// of `sig` at bit 62, so value = sig * 2^(exp - 62). Both formats use the same
// layout, which lets one rounding routine serve every operation and every
// format conversion. The host FPU fast paths live in the Arith files; this is
// the exact fallback for special values, tiny results, and non-RNE rounding.

/// Accrued exception bits as laid out in fflags.
public enum FFlag {
    public static let NV: UInt32 = 16
    public static let DZ: UInt32 = 8
    public static let OF: UInt32 = 4
    public static let UF: UInt32 = 2
    public static let NX: UInt32 = 1
}

/// Rounding-mode encodings of the rm field / frm.
public enum FRound {
    public static let RNE: UInt32 = 0
    public static let RTZ: UInt32 = 1
    public static let RDN: UInt32 = 2
    public static let RUP: UInt32 = 3
    public static let RMM: UInt32 = 4
}

@usableFromInline
struct FPFormat {
    @usableFromInline let fracBits: Int
    @usableFromInline let expBits: Int

    @inlinable init(fracBits: Int, expBits: Int) {
        self.fracBits = fracBits
        self.expBits = expBits
    }

    @inlinable static var single: FPFormat { FPFormat(fracBits: 23, expBits: 8) }
    @inlinable static var double: FPFormat { FPFormat(fracBits: 52, expBits: 11) }

    @inlinable var bias: Int { (1 << (expBits - 1)) - 1 }
    @inlinable var expAllOnes: UInt64 { (1 << UInt64(expBits)) - 1 }
    @inlinable var signBit: UInt64 { 1 << UInt64(fracBits + expBits) }
    @inlinable var fracMask: UInt64 { (1 << UInt64(fracBits)) - 1 }
    @inlinable var quietBit: UInt64 { 1 << UInt64(fracBits - 1) }
    @inlinable var infBits: UInt64 { expAllOnes << UInt64(fracBits) }
    @inlinable var canonicalNaN: UInt64 { infBits | quietBit }
}

@usableFromInline
enum FPKind: UInt8 {
    case zero, finite, inf, qnan, snan
}

@usableFromInline
struct Unpacked {
    @usableFromInline var kind: FPKind
    @usableFromInline var sign: Bool
    @usableFromInline var exp: Int
    @usableFromInline var sig: UInt64

    @inlinable init(kind: FPKind, sign: Bool, exp: Int, sig: UInt64) {
        self.kind = kind
        self.sign = sign
        self.exp = exp
        self.sig = sig
    }

    @inlinable var isNaN: Bool { kind == .qnan || kind == .snan }
}

@usableFromInline
enum Soft {
    @inlinable
    static func unpack(_ bits: UInt64, _ f: FPFormat) -> Unpacked {
        let sign = bits & f.signBit != 0
        let ef = (bits >> UInt64(f.fracBits)) & f.expAllOnes
        let frac = bits & f.fracMask
        if ef == f.expAllOnes {
            if frac == 0 { return Unpacked(kind: .inf, sign: sign, exp: 0, sig: 0) }
            return Unpacked(kind: frac & f.quietBit != 0 ? .qnan : .snan, sign: sign, exp: 0, sig: 0)
        }
        if ef == 0 {
            if frac == 0 { return Unpacked(kind: .zero, sign: sign, exp: 0, sig: 0) }
            var sig = frac << UInt64(62 - f.fracBits)
            let lz = sig.leadingZeroBitCount - 1
            sig <<= UInt64(lz)
            return Unpacked(kind: .finite, sign: sign, exp: 1 - f.bias - lz, sig: sig)
        }
        return Unpacked(kind: .finite, sign: sign, exp: Int(ef) - f.bias,
                        sig: (frac | (1 << UInt64(f.fracBits))) << UInt64(62 - f.fracBits))
    }

    /// Shift right, OR-ing every bit shifted out into bit 0 (the sticky bit).
    @inlinable
    static func shiftRightJam(_ x: UInt64, _ n: Int) -> UInt64 {
        if n <= 0 { return x }
        if n >= 64 { return x != 0 ? 1 : 0 }
        return (x >> UInt64(n)) | ((x << UInt64(64 - n)) != 0 ? 1 : 0)
    }

    @inlinable
    static func shiftRightJam128(_ x: UInt128, _ n: Int) -> UInt128 {
        if n <= 0 { return x }
        if n >= 128 { return x != 0 ? 1 : 0 }
        return (x >> UInt128(n)) | ((x << UInt128(128 - n)) != 0 ? 1 : 0)
    }

    /// Whether to add one unit in the last place, given the discarded bits `rest`
    /// and the value of half a unit `half`.
    @inlinable
    static func roundsUp(_ rest: UInt64, _ half: UInt64, lsbOdd: Bool, sign: Bool, _ rm: UInt32) -> Bool {
        switch rm {
        case FRound.RNE: return rest > half || (rest == half && lsbOdd)
        case FRound.RTZ: return false
        case FRound.RDN: return sign && rest != 0
        case FRound.RUP: return !sign && rest != 0
        default: return rest >= half // RMM
        }
    }

    @inlinable
    static func zero(_ sign: Bool, _ f: FPFormat) -> UInt64 { sign ? f.signBit : 0 }

    /// Round value = sig * 2^(exp - 62) to format `f` and pack it, raising
    /// NX/UF/OF. Tininess is detected after rounding, as RISC-V requires.
    @usableFromInline
    static func roundPack(_ sign: Bool, _ exp: Int, _ sigIn: UInt64, _ f: FPFormat, _ rm: UInt32,
                          _ flags: inout UInt32) -> UInt64 {
        var sig = sigIn
        var exp = exp
        if sig == 0 { return zero(sign, f) }
        if sig >> 63 != 0 {
            sig = (sig >> 1) | (sig & 1)
            exp += 1
        } else {
            let lz = sig.leadingZeroBitCount - 1
            sig <<= UInt64(lz)
            exp -= lz
        }
        let k = UInt64(62 - f.fracBits) // discarded bits below the last kept bit
        let mask: UInt64 = (1 << k) - 1
        let half: UInt64 = 1 << (k - 1)
        let emin = 1 - f.bias
        let signBits = sign ? f.signBit : 0
        if exp < emin {
            // Tiny unless rounding at full precision carries up to 2^emin.
            var tiny = true
            if exp == emin - 1 {
                let q = sig >> k
                if roundsUp(sig & mask, half, lsbOdd: q & 1 != 0, sign: sign, rm),
                   q + 1 == 1 << UInt64(f.fracBits + 1) {
                    tiny = false
                }
            }
            sig = shiftRightJam(sig, emin - exp)
            let rest = sig & mask
            var q = sig >> k
            if roundsUp(rest, half, lsbOdd: q & 1 != 0, sign: sign, rm) { q += 1 }
            if rest != 0 {
                flags |= FFlag.NX
                if tiny { flags |= FFlag.UF }
            }
            // A carry into bit fracBits lands in the exponent field: min normal.
            return signBits | q
        }
        let rest = sig & mask
        var q = sig >> k
        if roundsUp(rest, half, lsbOdd: q & 1 != 0, sign: sign, rm) {
            q += 1
            if q >> UInt64(f.fracBits + 1) != 0 {
                q >>= 1
                exp += 1
            }
        }
        if exp > f.bias {
            flags |= FFlag.OF | FFlag.NX
            let toInf = rm == FRound.RNE || rm == FRound.RMM || (rm == FRound.RDN && sign) || (rm == FRound.RUP && !sign)
            return signBits | (toInf ? f.infBits : f.infBits - 1)
        }
        if rest != 0 { flags |= FFlag.NX }
        // q carries the implicit one at bit fracBits, which adds one to the field.
        return signBits | ((UInt64(exp + f.bias - 1) << UInt64(f.fracBits)) &+ q)
    }

    /// Round value = r * 2^(e - 124) (r < 2^127) to format `f`.
    @usableFromInline
    static func roundPack128(_ sign: Bool, _ e: Int, _ r: UInt128, _ f: FPFormat, _ rm: UInt32,
                             _ flags: inout UInt32) -> UInt64 {
        let lz = r.leadingZeroBitCount
        let n = r << UInt128(lz - 1) // leading one at bit 126
        let hi = UInt64(truncatingIfNeeded: n >> 64)
        let lo = UInt64(truncatingIfNeeded: n)
        return roundPack(sign, e + 3 - lz, hi | (lo != 0 ? 1 : 0), f, rm, &flags)
    }

    // MARK: arithmetic

    @usableFromInline
    static func add(_ a: UInt64, _ b: UInt64, negB: Bool, _ f: FPFormat, _ rm: UInt32,
                    _ flags: inout UInt32) -> UInt64 {
        let x = unpack(a, f)
        var y = unpack(b, f)
        if x.isNaN || y.isNaN {
            if x.kind == .snan || y.kind == .snan { flags |= FFlag.NV }
            return f.canonicalNaN
        }
        if negB { y.sign.toggle() }
        if x.kind == .inf {
            if y.kind == .inf && x.sign != y.sign {
                flags |= FFlag.NV
                return f.canonicalNaN
            }
            return f.infBits | (x.sign ? f.signBit : 0)
        }
        if y.kind == .inf { return f.infBits | (y.sign ? f.signBit : 0) }
        if x.kind == .zero {
            if y.kind == .zero { return zero(x.sign == y.sign ? x.sign : rm == FRound.RDN, f) }
            return (b & ~f.signBit) | (y.sign ? f.signBit : 0)
        }
        if y.kind == .zero { return a }
        var e = x.exp
        var sx = x.sig, sy = y.sig
        if x.exp >= y.exp {
            sy = shiftRightJam(sy, x.exp - y.exp)
        } else {
            sx = shiftRightJam(sx, y.exp - x.exp)
            e = y.exp
        }
        if x.sign == y.sign { return roundPack(x.sign, e, sx &+ sy, f, rm, &flags) }
        if sx == sy { return zero(rm == FRound.RDN, f) }
        if sx > sy { return roundPack(x.sign, e, sx - sy, f, rm, &flags) }
        return roundPack(y.sign, e, sy - sx, f, rm, &flags)
    }

    @usableFromInline
    static func mul(_ a: UInt64, _ b: UInt64, _ f: FPFormat, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        let x = unpack(a, f), y = unpack(b, f)
        if x.isNaN || y.isNaN {
            if x.kind == .snan || y.kind == .snan { flags |= FFlag.NV }
            return f.canonicalNaN
        }
        let sign = x.sign != y.sign
        if x.kind == .inf || y.kind == .inf {
            if x.kind == .zero || y.kind == .zero {
                flags |= FFlag.NV
                return f.canonicalNaN
            }
            return f.infBits | (sign ? f.signBit : 0)
        }
        if x.kind == .zero || y.kind == .zero { return zero(sign, f) }
        let p = UInt128(x.sig) * UInt128(y.sig)
        return roundPack128(sign, x.exp + y.exp, p, f, rm, &flags)
    }

    @usableFromInline
    static func div(_ a: UInt64, _ b: UInt64, _ f: FPFormat, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        let x = unpack(a, f), y = unpack(b, f)
        if x.isNaN || y.isNaN {
            if x.kind == .snan || y.kind == .snan { flags |= FFlag.NV }
            return f.canonicalNaN
        }
        let sign = x.sign != y.sign
        if x.kind == .inf {
            if y.kind == .inf {
                flags |= FFlag.NV
                return f.canonicalNaN
            }
            return f.infBits | (sign ? f.signBit : 0)
        }
        if y.kind == .inf { return zero(sign, f) }
        if y.kind == .zero {
            if x.kind == .zero {
                flags |= FFlag.NV
                return f.canonicalNaN
            }
            flags |= FFlag.DZ
            return f.infBits | (sign ? f.signBit : 0)
        }
        if x.kind == .zero { return zero(sign, f) }
        // q = x.sig * 2^63 / y.sig lies in (2^62, 2^64).
        let (q, r) = y.sig.dividingFullWidth((high: x.sig >> 1, low: x.sig << 63))
        return roundPack(sign, x.exp - y.exp - 1, q | (r != 0 ? 1 : 0), f, rm, &flags)
    }

    @usableFromInline
    static func sqrt(_ a: UInt64, _ f: FPFormat, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        let x = unpack(a, f)
        if x.isNaN {
            if x.kind == .snan { flags |= FFlag.NV }
            return f.canonicalNaN
        }
        if x.kind == .zero { return a }
        if x.sign {
            flags |= FFlag.NV
            return f.canonicalNaN
        }
        if x.kind == .inf { return a }
        // Make the exponent even, then take the integer square root of a 126-bit number.
        let n = UInt128(x.sig) << (x.exp & 1 == 0 ? 62 : 63)
        let root = isqrt(n)
        let exact = UInt128(root) * UInt128(root) == n
        return roundPack(false, x.exp >> 1, root | (exact ? 0 : 1), f, rm, &flags)
    }

    /// floor(sqrt(n)) for 2^124 <= n < 2^126.
    @usableFromInline
    static func isqrt(_ n: UInt128) -> UInt64 {
        var r = UInt128(Double(n).squareRoot())
        r = (r + n / r) >> 1 // one Newton step: error drops to a unit or two
        while r * r > n { r -= 1 }
        while (r + 1) * (r + 1) <= n { r += 1 }
        return UInt64(r)
    }

    /// (±a*b) + (±c) with one rounding.
    @usableFromInline
    static func fma(_ a: UInt64, _ b: UInt64, _ c: UInt64, negProduct: Bool, negC: Bool, _ f: FPFormat,
                    _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        let x = unpack(a, f), y = unpack(b, f), z = unpack(c, f)
        let infTimesZero = (x.kind == .inf && y.kind == .zero) || (x.kind == .zero && y.kind == .inf)
        if x.isNaN || y.isNaN || z.isNaN {
            // inf*0 is invalid even when the addend is a quiet NaN.
            if x.kind == .snan || y.kind == .snan || z.kind == .snan || infTimesZero { flags |= FFlag.NV }
            return f.canonicalNaN
        }
        if infTimesZero {
            flags |= FFlag.NV
            return f.canonicalNaN
        }
        let signP = (x.sign != y.sign) != negProduct
        let signC = z.sign != negC
        if x.kind == .inf || y.kind == .inf {
            if z.kind == .inf && signC != signP {
                flags |= FFlag.NV
                return f.canonicalNaN
            }
            return f.infBits | (signP ? f.signBit : 0)
        }
        if z.kind == .inf { return f.infBits | (signC ? f.signBit : 0) }
        if x.kind == .zero || y.kind == .zero {
            if z.kind == .zero { return zero(signP == signC ? signP : rm == FRound.RDN, f) }
            return (c & ~f.signBit) | (signC ? f.signBit : 0)
        }
        var p = UInt128(x.sig) * UInt128(y.sig) // value p * 2^(ep - 124)
        let ep = x.exp + y.exp
        if z.kind == .zero { return roundPack128(signP, ep, p, f, rm, &flags) }
        var q = UInt128(z.sig) << 62 // value q * 2^(ez - 124)
        var e = ep
        if ep >= z.exp {
            q = shiftRightJam128(q, ep - z.exp)
        } else {
            p = shiftRightJam128(p, z.exp - ep)
            e = z.exp
        }
        if signP == signC { return roundPack128(signP, e, p + q, f, rm, &flags) }
        if p == q { return zero(rm == FRound.RDN, f) }
        if p > q { return roundPack128(signP, e, p - q, f, rm, &flags) }
        return roundPack128(signC, e, q - p, f, rm, &flags)
    }

    // MARK: conversions

    /// Float to integer with RISC-V saturation. `width` is 32 or 64; the result
    /// is the 64-bit register value (32-bit results sign-extended).
    @usableFromInline
    static func toInt(_ a: UInt64, _ f: FPFormat, signed: Bool, width: Int, _ rm: UInt32,
                      _ flags: inout UInt32) -> UInt64 {
        let x = unpack(a, f)
        let maxPos: UInt64 = signed ? (1 << UInt64(width - 1)) - 1 : (width == 64 ? UInt64.max : (1 << 32) - 1)
        let minNeg: UInt64 = signed ? 0 &- (1 << UInt64(width - 1)) : 0
        var mag: UInt64 = 0
        var inexact = false
        var invalid = false
        var sign = x.sign
        switch x.kind {
        case .qnan, .snan:
            invalid = true
            sign = false
        case .inf:
            invalid = true
        case .zero:
            return 0
        case .finite:
            if x.exp > 63 {
                invalid = true
            } else if x.exp >= 62 {
                mag = x.sig << UInt64(x.exp - 62)
            } else if x.exp < -1 {
                // |value| < 1/2: only directed rounding can move it away from zero.
                inexact = true
                if roundsUp(1, 2, lsbOdd: false, sign: sign, rm) { mag = 1 }
            } else {
                let shift = UInt64(62 - x.exp)
                mag = x.sig >> shift
                let rest = x.sig & ((1 << shift) - 1)
                inexact = rest != 0
                if roundsUp(rest, 1 << (shift - 1), lsbOdd: mag & 1 != 0, sign: sign, rm) { mag += 1 }
            }
            if !invalid {
                if signed {
                    invalid = mag > (sign ? maxPos + 1 : maxPos)
                } else {
                    invalid = sign ? mag != 0 : mag > maxPos
                }
            }
        }
        var result: UInt64
        if invalid {
            flags |= FFlag.NV
            result = sign ? minNeg : maxPos
        } else {
            if inexact { flags |= FFlag.NX }
            result = sign ? 0 &- mag : mag
        }
        if width == 32 { result = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: result))) }
        return result
    }

    /// Integer register value to float; `width` 32 uses the low word.
    @usableFromInline
    static func fromInt(_ v: UInt64, signed: Bool, width: Int, _ f: FPFormat, _ rm: UInt32,
                        _ flags: inout UInt32) -> UInt64 {
        var sign = false
        var mag: UInt64
        if width == 32 {
            if signed {
                let s = Int32(truncatingIfNeeded: v)
                sign = s < 0
                mag = UInt64(s.magnitude)
            } else {
                mag = UInt64(UInt32(truncatingIfNeeded: v))
            }
        } else if signed {
            let s = Int64(bitPattern: v)
            sign = s < 0
            mag = s.magnitude
        } else {
            mag = v
        }
        return roundPack(sign, 62, mag, f, rm, &flags)
    }

    /// Format conversion (single <-> double); NaNs become the canonical NaN.
    @usableFromInline
    static func convert(_ a: UInt64, from: FPFormat, to: FPFormat, _ rm: UInt32, _ flags: inout UInt32) -> UInt64 {
        let x = unpack(a, from)
        switch x.kind {
        case .snan:
            flags |= FFlag.NV
            return to.canonicalNaN
        case .qnan: return to.canonicalNaN
        case .inf: return to.infBits | (x.sign ? to.signBit : 0)
        case .zero: return zero(x.sign, to)
        case .finite: return roundPack(x.sign, x.exp, x.sig, to, rm, &flags)
        }
    }
}
