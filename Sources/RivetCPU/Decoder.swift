/// Turns RV64GC instruction words into micro-ops. Compressed instructions expand into the same micro-ops as
/// their 32-bit equivalents. Anything reserved or unknown becomes `.illegal` carrying the raw bits
/// (the value of mtval for an illegal-instruction trap).
///
/// `decode32` and `decode16` are generated from RivetISA's instruction table into DecoderTable.swift
/// (`scripts/generate-decoder`); this file holds the helpers the generated code uses.
public enum Decoder {
    @inline(__always) static func sext(_ v: UInt32, _ width: Int) -> Int64 {
        let shift = 64 - width
        return (Int64(v) << Int64(shift)) >> Int64(shift)
    }
    /// Integer destination: x0 becomes the scratch slot 32.
    @inline(__always) static func rdx(_ r: UInt32) -> UInt8 { r == 0 ? 32 : UInt8(truncatingIfNeeded: r) }

    /// Bits `lo ..< lo + width` of `w` (selected by `mask`), moved to bit `at` of an immediate.
    @inline(__always) static func piece(_ w: UInt32, _ lo: UInt32, _ mask: UInt32, _ at: UInt32) -> UInt32 {
        ((w >> lo) & mask) << at
    }

    /// The rounding modes 5 and 6 are reserved.
    @inline(__always) static func roundingModeIsValid(_ w: UInt32) -> Bool {
        let rm = (w >> 12) & 7
        return rm != 5 && rm != 6
    }

    static func illegal(_ w: UInt32) -> MicroOp { MicroOp(.illegal, imm: Int64(w)) }
}
