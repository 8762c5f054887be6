import Foundation

/// One instruction as GNU objdump decodes it.
struct DisassembledInstruction: Equatable {
    var offset: Int
    var length: Int
    /// Intel syntax with runs of spaces collapsed, e.g. "mov rax,QWORD PTR [rbx+0x10]".
    var text: String
}

enum ObjdumpError: Error { case failed(String) }

/// Disassembles raw x86-64 bytes with `objdump -D -b binary -mi386:x86-64 -M intel` (binutils), the
/// independent reference the assembler's encodings are checked against.
func objdump(_ code: [UInt8]) throws -> [DisassembledInstruction] {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("rivet-jit-\(getpid())-\(UUID().uuidString).bin")
    try Data(code).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/objdump")
    process.arguments = ["-D", "-b", "binary", "-mi386:x86-64", "-M", "intel", file.path]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw ObjdumpError.failed("objdump exited \(process.terminationStatus)") }
    var result: [DisassembledInstruction] = []
    // Lines look like "   1f:\t48 8b 43 10          \tmov    rax,QWORD PTR [rbx+0x10]"; long instructions continue
    // on a line with only an offset and bytes, which adds to the previous instruction's length.
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count >= 2, fields[0].hasSuffix(":"),
              let offset = Int(fields[0].dropLast().trimmingCharacters(in: .whitespaces), radix: 16) else { continue }
        let byteCount = fields[1].split(separator: " ").count
        if fields.count >= 3 {
            let text = fields[2...].joined(separator: " ").split(whereSeparator: { $0 == " " }).joined(separator: " ")
            result.append(DisassembledInstruction(offset: offset, length: byteCount, text: text))
        } else if !result.isEmpty {
            result[result.count - 1].length += byteCount
        }
    }
    return result
}
