// Entry point of scripts/generate-decoder: compiled together with Sources/RivetISA (one module), it writes the
// decoder and the CSR constants that RivetCPU compiles from the instruction and CSR tables.
import Foundation

let directory = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Sources/RivetCPU"
for (name, text) in [("DecoderTable.swift", DecoderGenerator.decoderSource()), ("CSRNumbers.swift", DecoderGenerator.csrSource())] {
    let path = directory + "/" + name
    let old = try? String(contentsOfFile: path, encoding: .utf8)
    if old == text { print("\(path): up to date"); continue }
    do {
        // Beside and rename, so an interrupted run leaves the old file whole.
        try text.write(toFile: path + ".tmp", atomically: false, encoding: .utf8)
        guard rename(path + ".tmp", path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        print("\(path): written")
    } catch {
        FileHandle.standardError.write("generate-decoder: cannot write \(path): \(error)\n".data(using: .utf8)!)
        exit(1)
    }
}
