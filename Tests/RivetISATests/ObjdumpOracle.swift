import Foundation
import Testing

/// Runs Debian's `riscv64-linux-gnu-objdump` on raw instruction bytes and parses its lines.
/// It is the oracle the disassembler is compared against; tests fail (never skip) without it.
enum ObjdumpOracle {
    struct Line {
        let address: UInt64
        let encoding: String   // hex column as printed, e.g. "00000297" or "1141"
        let text: String       // mnemonic, tab, operands (address comments removed)
        let fullLine: String   // the whole line, address comments removed
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let toolName = "riscv64-linux-gnu-objdump"

    static func executablePath() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/bin"]
        for dir in directories {
            let candidate = dir + "/" + toolName
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw Failure(description: "\(toolName) not found in PATH (apt-get install binutils-riscv64-linux-gnu)")
    }

    /// Encodes instructions as little-endian bytes: 2 bytes for compressed encodings, else 4.
    static func bytes(of words: [UInt32]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(words.count * 4)
        for w in words {
            out.append(UInt8(w & 0xff))
            out.append(UInt8((w >> 8) & 0xff))
            if w & 3 == 3 {
                out.append(UInt8((w >> 16) & 0xff))
                out.append(UInt8(w >> 24))
            }
        }
        return out
    }

    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executablePath())
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(toolName) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Disassembles `words` laid out from `vma` as objdump does for a raw RV64 binary.
    /// `-z` keeps runs of zero bytes from being collapsed into "...".
    static func disassemble(_ words: [UInt32], vma: UInt64) throws -> [Line] {
        let file = FileManager.default.temporaryDirectory
            .appendingPathComponent("rivet-isa-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString).bin")
        try Data(bytes(of: words)).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let text = try run(["-D", "-z", "-b", "binary", "-m", "riscv:rv64",
                            "--adjust-vma=0x" + String(vma, radix: 16), file.path])
        return parse(text)
    }

    /// Instruction lines look like "    80000000:\t00000297          \tauipc\tt0,0x0".
    /// objdump appends " # <address>" when it can compute an address from an earlier lui/auipc;
    /// that is cross-instruction state the single-instruction disassembler does not model.
    static func parse(_ text: String) -> [Line] {
        var lines: [Line] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let parts = raw.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].hasSuffix(":"),
                  let address = UInt64(parts[0].dropLast().trimmingCharacters(in: .whitespaces), radix: 16)
            else { continue }
            var full = String(raw)
            if let comment = full.range(of: " # ") { full = String(full[..<comment.lowerBound]) }
            var insnText = String(parts[2])
            if let comment = insnText.range(of: " # ") { insnText = String(insnText[..<comment.lowerBound]) }
            lines.append(Line(address: address, encoding: parts[1].trimmingCharacters(in: .whitespaces),
                              text: insnText, fullLine: full))
        }
        return lines
    }
}

/// Deterministic generator (SplitMix64) so that every run tests the same encodings.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
