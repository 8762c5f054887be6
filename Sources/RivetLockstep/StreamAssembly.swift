import RivetISA

/// A small deterministic random generator: SplitMix64 seeding a xoshiro256** state. The stream a seed
/// produces must never change with the host or the Swift version, so the standard library's is not used.
public struct LockstepRandom {
    var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9e37_79b9_7f4a_7c15
            var z = x
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    /// The seed of stream `index` of a run started with `seed` (what a mismatch report prints).
    public static func streamSeed(_ seed: UInt64, index: Int) -> UInt64 {
        var r = LockstepRandom(seed: seed ^ (UInt64(index) &* 0xd134_2543_de82_ef95))
        return r.next()
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Uniform in 0..<n (n > 0).
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    public mutating func range(_ r: ClosedRange<Int>) -> Int { r.lowerBound + below(r.count) }
    /// True with probability `percent`/100.
    public mutating func percent(_ percent: Int) -> Bool { below(100) < percent }
    public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// RISC-V encoders for the fixed code the generator writes around the random instructions (register
/// set-up, loops, trap handlers). Hand-written from the base ISA formats.
enum Encode {
    static func i(_ opcode: UInt32, _ f3: UInt32, _ rd: Int, _ rs1: Int, _ imm: Int64) -> UInt32 {
        (UInt32(truncatingIfNeeded: imm) & 0xfff) << 20 | UInt32(rs1) << 15 | f3 << 12 | UInt32(rd) << 7 | opcode
    }
    static func s(_ f3: UInt32, _ rs1: Int, _ rs2: Int, _ imm: Int64) -> UInt32 {
        let v = UInt32(truncatingIfNeeded: imm)
        return (v >> 5 & 0x7f) << 25 | UInt32(rs2) << 20 | UInt32(rs1) << 15 | f3 << 12 | (v & 0x1f) << 7 | 0x23
    }
    static func b(_ f3: UInt32, _ rs1: Int, _ rs2: Int, _ offset: Int64) -> UInt32 {
        let v = UInt32(truncatingIfNeeded: offset)
        return (v >> 12 & 1) << 31 | (v >> 5 & 0x3f) << 25 | UInt32(rs2) << 20 | UInt32(rs1) << 15 | f3 << 12
            | (v >> 1 & 0xf) << 8 | (v >> 11 & 1) << 7 | 0x63
    }
    static func addi(_ rd: Int, _ rs1: Int, _ imm: Int64) -> UInt32 { i(0x13, 0, rd, rs1, imm) }
    static func addiw(_ rd: Int, _ rs1: Int, _ imm: Int64) -> UInt32 { i(0x1b, 0, rd, rs1, imm) }
    static func andi(_ rd: Int, _ rs1: Int, _ imm: Int64) -> UInt32 { i(0x13, 7, rd, rs1, imm) }
    static func slli(_ rd: Int, _ rs1: Int, _ shift: Int) -> UInt32 { i(0x13, 1, rd, rs1, Int64(shift)) }
    static func srli(_ rd: Int, _ rs1: Int, _ shift: Int) -> UInt32 { i(0x13, 5, rd, rs1, Int64(shift)) }
    static func lui(_ rd: Int, _ upper20: UInt32) -> UInt32 { (upper20 & 0xfffff) << 12 | UInt32(rd) << 7 | 0x37 }
    static func lhu(_ rd: Int, _ rs1: Int, _ imm: Int64) -> UInt32 { i(0x03, 5, rd, rs1, imm) }
    static func sh(_ rs2: Int, _ rs1: Int, _ imm: Int64) -> UInt32 { s(1, rs1, rs2, imm) }
    static func sw(_ rs2: Int, _ rs1: Int, _ imm: Int64) -> UInt32 { s(2, rs1, rs2, imm) }
    static func beq(_ rs1: Int, _ rs2: Int, _ offset: Int64) -> UInt32 { b(0, rs1, rs2, offset) }
    static func bne(_ rs1: Int, _ rs2: Int, _ offset: Int64) -> UInt32 { b(1, rs1, rs2, offset) }
    static func blt(_ rs1: Int, _ rs2: Int, _ offset: Int64) -> UInt32 { b(4, rs1, rs2, offset) }
    static func jal(_ rd: Int, _ offset: Int64) -> UInt32 {
        let v = UInt32(truncatingIfNeeded: offset)
        return (v >> 20 & 1) << 31 | (v >> 1 & 0x3ff) << 21 | (v >> 11 & 1) << 20 | (v >> 12 & 0xff) << 12 | UInt32(rd) << 7 | 0x6f
    }
    static func csrrs(_ rd: Int, _ csr: Int, _ rs1: Int) -> UInt32 { i(0x73, 2, rd, rs1, Int64(csr)) }
    static func csrrw(_ rd: Int, _ csr: Int, _ rs1: Int) -> UInt32 { i(0x73, 1, rd, rs1, Int64(csr)) }
    static let fenceI: UInt32 = 0x0000_100f
    static let mret: UInt32 = 0x3020_0073
    static let sret: UInt32 = 0x1020_0073
}

/// Guest code under construction: bytes at a known base address, labels, and fix-ups for forward references.
struct CodeBuffer {
    enum Fixup {
        /// A pc-relative target field of the instruction at `offset` (branches, jal, c.j, c.beqz ...).
        case target(offset: Int, field: Field, label: Int)
        /// The four-instruction `loadAddress` sequence at `offset` gets the label's address plus `addend`.
        case address(offset: Int, label: Int, addend: Int64)
    }

    let base: UInt64
    var bytes: [UInt8] = []
    var labels: [UInt64?] = []
    var fixups: [Fixup] = []

    init(base: UInt64) { self.base = base }

    var address: UInt64 { base + UInt64(bytes.count) }

    mutating func emit(_ word: UInt32) {
        if word & 3 == 3 {
            for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: word >> (8 * UInt32(k)))) }
        } else {
            bytes.append(UInt8(truncatingIfNeeded: word)); bytes.append(UInt8(truncatingIfNeeded: word >> 8))
        }
    }

    mutating func newLabel() -> Int { labels.append(nil); return labels.count - 1 }
    mutating func bind(_ label: Int) { labels[label] = address }

    /// Sets `rd` to any 64-bit value (the usual lui/addi(w)/slli expansion; up to eight instructions).
    mutating func loadImmediate(_ rd: Int, _ value: UInt64) {
        let v = Int64(bitPattern: value)
        if v >= -2048 && v < 2048 {
            emit(Encode.addi(rd, 0, v))
        } else if v >= Int64(Int32.min) && v <= Int64(Int32.max) {
            let hi = (v &+ 0x800) >> 12
            let lo = v &- (hi << 12)
            emit(Encode.lui(rd, UInt32(truncatingIfNeeded: hi)))
            if lo != 0 { emit(Encode.addiw(rd, rd, lo)) }
        } else {
            let lo = (v << 52) >> 52
            let hi = (v &- lo) >> 12
            loadImmediate(rd, UInt64(bitPattern: hi))
            emit(Encode.slli(rd, rd, 12))
            if lo != 0 { emit(Encode.addi(rd, rd, lo)) }
        }
    }

    /// Sets `rd` to a 32-bit unsigned address in exactly four instructions (so it can be patched later).
    mutating func loadAddress(_ rd: Int, label: Int, addend: Int64 = 0) {
        fixups.append(.address(offset: bytes.count, label: label, addend: addend))
        emitAddress(rd, 0)
    }

    mutating func emitAddress(_ rd: Int, _ address: UInt64) {
        let v = Int64(address & 0xffff_ffff)
        let hi = (v + 0x800) >> 12
        let lo = v - (hi << 12)
        emit(Encode.lui(rd, UInt32(truncatingIfNeeded: hi)))
        emit(Encode.addiw(rd, rd, lo))
        emit(Encode.slli(rd, rd, 32))
        emit(Encode.srli(rd, rd, 32))
    }

    /// An instruction whose target field points at `label` (set when the code is finished).
    mutating func emit(_ word: UInt32, target field: Field, label: Int) {
        fixups.append(.target(offset: bytes.count, field: field, label: label))
        emit(word)
    }

    func word(at offset: Int) -> UInt32 {
        var w = UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8
        if w & 3 == 3 { w |= UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24 }
        return w
    }

    mutating func put(_ word: UInt32, at offset: Int) {
        let n = word & 3 == 3 ? 4 : 2
        for k in 0..<n { bytes[offset + k] = UInt8(truncatingIfNeeded: word >> (8 * UInt32(k))) }
    }

    /// Resolves every fix-up. A target out of the field's range (which the generator avoids) becomes the
    /// next instruction, so the stream stays valid.
    mutating func finish() {
        for fixup in fixups {
            switch fixup {
            case .target(let offset, let field, let label):
                let here = base + UInt64(offset)
                let target = labels[label]!
                var w = word(at: offset)
                let length: Int64 = w & 3 == 3 ? 4 : 2
                var delta = Int64(bitPattern: target &- here)
                w = (w & ~field.wordMask) | field.encode(delta)
                if field.value(w) != delta {
                    delta = length
                    w = (w & ~field.wordMask) | field.encode(delta)
                }
                put(w, at: offset)
            case .address(let offset, let label, let addend):
                var patch = CodeBuffer(base: 0)
                let rd = Int((word(at: offset) >> 7) & 31)
                patch.emitAddress(rd, UInt64(bitPattern: Int64(bitPattern: labels[label]!) &+ addend))
                for (k, b) in patch.bytes.enumerated() { bytes[offset + k] = b }
            }
        }
        fixups = []
    }
}
