// Differential test: every RVFloat operation against real RISC-V instructions
// executed by qemu-riscv64 (QEMU's softfloat), on seeded random and special inputs.
import Foundation
import Testing
import RivetFloat

/// splitmix64: small, seedable, reproducible.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: UInt64) -> UInt64 { next() % n }
}

enum Operands { case f1, f2, f3, int1 }

struct OpSpec {
    let name: String
    let isDouble: Bool
    let operands: Operands
    let usesRM: Bool
    let run: (UInt64, UInt64, UInt64, UInt32, inout UInt32) -> UInt64
}

func allOps() -> [OpSpec] {
    typealias R = RVFloat
    var ops: [OpSpec] = []
    func f2(_ n: String, _ d: Bool, _ f: @escaping (UInt64, UInt64, UInt32, inout UInt32) -> UInt64) {
        ops.append(OpSpec(name: n, isDouble: d, operands: .f2, usesRM: true) { a, b, _, rm, fl in f(a, b, rm, &fl) })
    }
    func f3(_ n: String, _ d: Bool, _ f: @escaping (UInt64, UInt64, UInt64, UInt32, inout UInt32) -> UInt64) {
        ops.append(OpSpec(name: n, isDouble: d, operands: .f3, usesRM: true) { a, b, c, rm, fl in f(a, b, c, rm, &fl) })
    }
    func f1(_ n: String, _ d: Bool, _ f: @escaping (UInt64, UInt32, inout UInt32) -> UInt64) {
        ops.append(OpSpec(name: n, isDouble: d, operands: .f1, usesRM: true) { a, _, _, rm, fl in f(a, rm, &fl) })
    }
    func nr2(_ n: String, _ d: Bool, _ f: @escaping (UInt64, UInt64, inout UInt32) -> UInt64) {
        ops.append(OpSpec(name: n, isDouble: d, operands: .f2, usesRM: false) { a, b, _, _, fl in f(a, b, &fl) })
    }
    func pure2(_ n: String, _ d: Bool, _ f: @escaping (UInt64, UInt64) -> UInt64) {
        ops.append(OpSpec(name: n, isDouble: d, operands: .f2, usesRM: false) { a, b, _, _, _ in f(a, b) })
    }
    func x1(_ n: String, _ d: Bool, _ f: @escaping (UInt64, UInt32, inout UInt32) -> UInt64) {
        ops.append(OpSpec(name: n, isDouble: d, operands: .int1, usesRM: true) { a, _, _, rm, fl in f(a, rm, &fl) })
    }
    f2("add_s", false, R.add_s); f2("sub_s", false, R.sub_s); f2("mul_s", false, R.mul_s); f2("div_s", false, R.div_s)
    f1("sqrt_s", false, R.sqrt_s)
    f3("madd_s", false, R.madd_s); f3("msub_s", false, R.msub_s); f3("nmsub_s", false, R.nmsub_s); f3("nmadd_s", false, R.nmadd_s)
    nr2("min_s", false, R.min_s); nr2("max_s", false, R.max_s)
    nr2("eq_s", false, R.eq_s); nr2("lt_s", false, R.lt_s); nr2("le_s", false, R.le_s)
    pure2("sgnj_s", false, R.sgnj_s); pure2("sgnjn_s", false, R.sgnjn_s); pure2("sgnjx_s", false, R.sgnjx_s)
    ops.append(OpSpec(name: "class_s", isDouble: false, operands: .f1, usesRM: false) { a, _, _, _, _ in R.class_s(a) })
    f1("cvt_w_s", false, R.cvt_w_s); f1("cvt_wu_s", false, R.cvt_wu_s); f1("cvt_l_s", false, R.cvt_l_s); f1("cvt_lu_s", false, R.cvt_lu_s)
    x1("cvt_s_w", false, R.cvt_s_w); x1("cvt_s_wu", false, R.cvt_s_wu); x1("cvt_s_l", false, R.cvt_s_l); x1("cvt_s_lu", false, R.cvt_s_lu)

    f2("add_d", true, R.add_d); f2("sub_d", true, R.sub_d); f2("mul_d", true, R.mul_d); f2("div_d", true, R.div_d)
    f1("sqrt_d", true, R.sqrt_d)
    f3("madd_d", true, R.madd_d); f3("msub_d", true, R.msub_d); f3("nmsub_d", true, R.nmsub_d); f3("nmadd_d", true, R.nmadd_d)
    nr2("min_d", true, R.min_d); nr2("max_d", true, R.max_d)
    nr2("eq_d", true, R.eq_d); nr2("lt_d", true, R.lt_d); nr2("le_d", true, R.le_d)
    pure2("sgnj_d", true, R.sgnj_d); pure2("sgnjn_d", true, R.sgnjn_d); pure2("sgnjx_d", true, R.sgnjx_d)
    ops.append(OpSpec(name: "class_d", isDouble: true, operands: .f1, usesRM: false) { a, _, _, _, _ in R.class_d(a) })
    f1("cvt_w_d", true, R.cvt_w_d); f1("cvt_wu_d", true, R.cvt_wu_d); f1("cvt_l_d", true, R.cvt_l_d); f1("cvt_lu_d", true, R.cvt_lu_d)
    x1("cvt_d_w", true, R.cvt_d_w); x1("cvt_d_wu", true, R.cvt_d_wu); x1("cvt_d_l", true, R.cvt_d_l); x1("cvt_d_lu", true, R.cvt_d_lu)
    // Format conversions: the operand format is the source format.
    f1("cvt_s_d", true, R.cvt_s_d)
    ops.append(OpSpec(name: "cvt_d_s", isDouble: false, operands: .f1, usesRM: false) { a, _, _, _, fl in R.cvt_d_s(a, &fl) })
    return ops
}

/// Operand generator biased toward the values where floating point goes wrong.
struct InputGen {
    var rng: SplitMix

    static let specialsD: [UInt64] = [
        0, 0x8000_0000_0000_0000, 0x7FF0_0000_0000_0000, 0xFFF0_0000_0000_0000,
        0x7FF8_0000_0000_0000, 0xFFF8_0000_0000_0001, 0x7FF4_0000_0000_0000, 0x7FF0_0000_0000_0001,
        0x0010_0000_0000_0000, 0x8010_0000_0000_0000, 0x000F_FFFF_FFFF_FFFF, 0x0000_0000_0000_0001,
        0x8000_0000_0000_0001, 0x7FEF_FFFF_FFFF_FFFF, 0xFFEF_FFFF_FFFF_FFFF, 0x3FF0_0000_0000_0000,
        0xBFF0_0000_0000_0000, 0x3FE0_0000_0000_0000, 0x3FF8_0000_0000_0000, 0x4004_0000_0000_0000,
        0x41DF_FFFF_FFE0_0000, 0x41E0_0000_0000_0000, 0xC1E0_0000_0000_0000, 0xC1E0_0000_0020_0000,
        0x41F0_0000_0000_0000, 0x43E0_0000_0000_0000, 0xC3E0_0000_0000_0000, 0x43F0_0000_0000_0000,
        0x3CA0_0000_0000_0000, 0x0008_0000_0000_0000, 0x3FDF_FFFF_FFFF_FFFF, 0xBFE0_0000_0000_0000,
    ]
    static let specialsS: [UInt32] = [
        0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0001, 0x7FA0_0000, 0x7F80_0001,
        0x0080_0000, 0x8080_0000, 0x007F_FFFF, 0x0000_0001, 0x8000_0001, 0x7F7F_FFFF, 0xFF7F_FFFF,
        0x3F80_0000, 0xBF80_0000, 0x3F00_0000, 0x3FC0_0000, 0x4020_0000, 0x4EFF_FFFF, 0x4F00_0000,
        0xCF00_0000, 0xCF00_0001, 0x4F80_0000, 0x5F00_0000, 0xDF00_0000, 0x5F80_0000, 0x3EFF_FFFF,
        0x0040_0000, 0xBF00_0000,
    ]

    mutating func double(near prev: UInt64?) -> UInt64 {
        let kind = rng.below(100)
        if let p = prev, kind < 12 { return p ^ (rng.next() & ((1 << rng.below(60)) - 1)) ^ (rng.below(2) << 63) }
        if kind < 27 { return Self.specialsD[Int(rng.below(UInt64(Self.specialsD.count)))] }
        if kind < 40 { return rng.next() }
        let sign = rng.below(2) << 63
        var exp: UInt64
        switch rng.below(10) {
        case 0, 1: exp = rng.below(120) // subnormal and near-underflow region
        case 2: exp = 0x7FF - 1 - rng.below(80) // near overflow
        case 3: exp = 1023 + 20 + rng.below(50) // integer conversion range
        default: exp = 1023 - 30 + rng.below(60)
        }
        var frac = rng.next() & 0x000F_FFFF_FFFF_FFFF
        if rng.below(3) == 0 { frac &= ~((1 << rng.below(52)) - 1) } // short fractions: exact results and ties
        if rng.below(8) == 0 { frac |= (1 << rng.below(52)) - 1 }
        return sign | (exp << 52) | frac
    }

    mutating func single(near prev: UInt32?) -> UInt32 {
        let kind = rng.below(100)
        if let p = prev, kind < 12 { return p ^ UInt32(rng.next() & ((1 << rng.below(31)) - 1)) ^ UInt32(rng.below(2) << 31) }
        if kind < 27 { return Self.specialsS[Int(rng.below(UInt64(Self.specialsS.count)))] }
        if kind < 40 { return UInt32(truncatingIfNeeded: rng.next()) }
        let sign = UInt32(rng.below(2) << 31)
        var exp: UInt32
        switch rng.below(10) {
        case 0, 1: exp = UInt32(rng.below(40))
        case 2: exp = 0xFF - 1 - UInt32(rng.below(40))
        case 3: exp = 127 + 10 + UInt32(rng.below(60))
        default: exp = 127 - 20 + UInt32(rng.below(40))
        }
        var frac = UInt32(truncatingIfNeeded: rng.next()) & 0x7F_FFFF
        if rng.below(3) == 0 { frac &= ~((1 << UInt32(rng.below(23))) - 1) }
        if rng.below(8) == 0 { frac |= (1 << UInt32(rng.below(23))) - 1 }
        return sign | (exp << 23) | frac
    }

    /// A boxed single; now and then an improperly boxed register.
    mutating func boxedSingle(near prev: UInt64?) -> UInt64 {
        let s = single(near: prev.map { UInt32(truncatingIfNeeded: $0) })
        if rng.below(40) == 0 { return (rng.next() << 32) | UInt64(s) }
        return RVFloat.box(s)
    }

    mutating func integer() -> UInt64 {
        switch rng.below(6) {
        case 0: return rng.next()
        case 1: return rng.below(2000) &- 1000
        case 2: // around a power of two
            let p: UInt64 = 1 << rng.below(64)
            return p &+ rng.below(9) &- 4
        case 3: return UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: rng.next())))
        case 4: return rng.next() >> rng.below(64)
        default: return (rng.next() >> rng.below(64)) | (1 << rng.below(64))
        }
    }

    mutating func operand(_ op: OpSpec, near prev: UInt64?) -> UInt64 {
        if op.operands == .int1 { return integer() }
        return op.isDouble ? double(near: prev) : boxedSingle(near: prev)
    }

    /// An addend close to -(a*b), to exercise cancellation in the fused ops.
    mutating func cancellingAddend(_ op: OpSpec, _ a: UInt64, _ b: UInt64) -> UInt64 {
        if op.isDouble {
            let p = Double(bitPattern: a) * Double(bitPattern: b)
            return ((-p).bitPattern ^ (rng.below(4))) ^ (rng.below(2) << 63)
        }
        let p = Float(bitPattern: RVFloat.unbox(a)) * Float(bitPattern: RVFloat.unbox(b))
        return RVFloat.box(((-p).bitPattern ^ UInt32(rng.below(4))) ^ UInt32(rng.below(2) << 31))
    }
}

struct Case { let op: OpSpec; let rm: UInt32; let a, b, c: UInt64 }

func makeCases(seed: UInt64, perOp: Int) -> [Case] {
    var gen = InputGen(rng: SplitMix(state: seed))
    var cases: [Case] = []
    for op in allOps() {
        let n = op.operands == .f3 || op.operands == .f2 ? perOp : perOp / 2
        for _ in 0..<n {
            let rm = op.usesRM ? UInt32(gen.rng.below(5)) : 0
            let a = gen.operand(op, near: nil)
            let b = op.operands == .f2 || op.operands == .f3 ? gen.operand(op, near: a) : 0
            var c: UInt64 = 0
            if op.operands == .f3 {
                c = gen.rng.below(4) == 0 ? gen.cancellingAddend(op, a, b) : gen.operand(op, near: nil)
            }
            cases.append(Case(op: op, rm: rm, a: a, b: b, c: c))
        }
    }
    return cases
}

enum OracleError: Error, CustomStringConvertible {
    case missingTool(String), failed(String)
    var description: String {
        switch self {
        case .missingTool(let t): return "required tool not found: \(t) (install gcc-riscv64-linux-gnu and qemu-user)"
        case .failed(let m): return m
        }
    }
}

func findTool(_ name: String) throws -> String {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    throw OracleError.missingTool(name)
}

func run(_ tool: String, _ args: [String], stdin: URL? = nil, stdout: URL? = nil) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: tool)
    p.arguments = args
    if let i = stdin { p.standardInput = try FileHandle(forReadingFrom: i) }
    if let o = stdout {
        _ = FileManager.default.createFile(atPath: o.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: o)
    }
    try p.run()
    p.waitUntilExit()
    if p.terminationStatus != 0 {
        throw OracleError.failed("\(tool) \(args.joined(separator: " ")) exited with status \(p.terminationStatus)")
    }
}

/// Builds the oracle and runs all cases through it; returns (result, flags) per case.
func runOracle(_ cases: [Case]) throws -> [(UInt64, UInt32)] {
    let gcc = try findTool("riscv64-linux-gnu-gcc")
    let qemu = try findTool("qemu-riscv64")
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("oracle/fpu_oracle.c.in")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rivet-float-oracle-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let exe = dir.appendingPathComponent("fpu_oracle")
    try run(gcc, ["-static", "-O1", "-march=rv64gc", "-x", "c", "-o", exe.path, source.path])
    var text = ""
    text.reserveCapacity(cases.count * 64)
    for c in cases {
        text += "\(c.op.name) \(c.rm) \(String(c.a, radix: 16)) \(String(c.b, radix: 16)) \(String(c.c, radix: 16))\n"
    }
    let input = dir.appendingPathComponent("in.txt"), output = dir.appendingPathComponent("out.txt")
    try text.write(to: input, atomically: false, encoding: .utf8)
    try run(qemu, [exe.path], stdin: input, stdout: output)
    let lines = try String(contentsOf: output, encoding: .utf8).split(separator: "\n")
    guard lines.count == cases.count else {
        throw OracleError.failed("oracle printed \(lines.count) lines for \(cases.count) cases")
    }
    return try lines.map { line in
        let parts = line.split(separator: " ")
        guard parts.count == 2, let r = UInt64(parts[0], radix: 16), let f = UInt32(parts[1], radix: 16) else {
            throw OracleError.failed("bad oracle line: \(line)")
        }
        return (r, f)
    }
}

@Suite("RVFloat vs qemu-riscv64")
struct OracleDifferentialTests {
    @Test("random and special operands, all ops, all rounding modes")
    func differential() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["RIVET_FLOAT_SEED"] ?? "") ?? 0x5EED_F10A7
        let perOp = Int(ProcessInfo.processInfo.environment["RIVET_FLOAT_CASES"] ?? "") ?? 4000
        let cases = makeCases(seed: seed, perOp: perOp)
        let expected = try runOracle(cases)
        var mismatches: [String] = []
        var perOpFailures: [String: Int] = [:]
        for (c, (want, wantFlags)) in zip(cases, expected) {
            // Once with clean flags, once with NX already accrued (takes the fused fast paths).
            for start: UInt32 in [0, FFlag.NX] {
                var flags = start
                let got = c.op.run(c.a, c.b, c.c, c.rm, &flags)
                if got != want || flags != wantFlags | start {
                    perOpFailures[c.op.name, default: 0] += 1
                    if mismatches.count < 40 {
                        mismatches.append("\(c.op.name) rm=\(c.rm) a=\(String(c.a, radix: 16)) b=\(String(c.b, radix: 16)) c=\(String(c.c, radix: 16)) start=\(start): got \(String(got, radix: 16))/\(String(flags, radix: 16)) want \(String(want, radix: 16))/\(String(wantFlags | start, radix: 16))")
                    }
                }
            }
        }
        // How often the oracle raised each flag: shows the inputs reach the hard corners.
        let flagNames: [(UInt32, String)] = [(FFlag.NV, "NV"), (FFlag.DZ, "DZ"), (FFlag.OF, "OF"), (FFlag.UF, "UF"), (FFlag.NX, "NX")]
        let coverage = flagNames.map { bit, name in "\(name)=\(expected.filter { $0.1 & bit != 0 }.count)" }.joined(separator: " ")
        print("RivetFloat differential: \(cases.count) cases x 2 flag states, seed \(seed), oracle flags \(coverage), \(perOpFailures.values.reduce(0, +)) mismatches \(perOpFailures)")
        for m in mismatches { print("  " + m) }
        #expect(mismatches.isEmpty, "\(perOpFailures)")
    }
}
