import ArgumentParser
import RivetCPU

/// `--accel jit|interp`: how harts execute guest code (docs/translator.md). Without the option, the
/// environment variable RIVET_ACCEL gives the default (the test suite runs once per mode that way), else the
/// translator where the host has one (x86-64 Linux) and the interpreter elsewhere.
enum AccelOption {
    static let help = ArgumentHelp("How harts run guest code: jit (compile hot blocks to x86-64; the default on x86-64) or interp (the interpreter). Default from $RIVET_ACCEL if set.")

    static func parse(_ text: String?) throws -> Accelerator {
        if ProcessInfoLite.environment("RIVET_PERF_MAP") != nil { Translator.enablePerfMap() }
        if let text = ProcessInfoLite.environment("RIVET_JIT_CACHE_KB"), !text.isEmpty {
            // A small code cache, to test flushing it when full (docs/translator.md).
            guard let kb = Int(text), kb >= 64, kb <= 1 << 20 else {
                throw CLIError("RIVET_JIT_CACHE_KB \(text): not a number of KiB from 64 to 1048576")
            }
            Translator.codeCapacity = kb << 10
        }
        if let text { return try value(text, source: "--accel") }
        if let env = ProcessInfoLite.environment("RIVET_ACCEL"), !env.isEmpty { return try value(env, source: "RIVET_ACCEL") }
        return .hostDefault
    }

    /// RIVET_JIT_THRESHOLD=N: compile a block after N interpreted runs (0: at first use; for testing the
    /// translator on code that runs once, such as the ISA tests).
    static func threshold() throws -> Int? {
        guard let text = ProcessInfoLite.environment("RIVET_JIT_THRESHOLD"), !text.isEmpty else { return nil }
        guard let n = Int(text), n >= 0, n <= 255 else { throw CLIError("RIVET_JIT_THRESHOLD \(text): not a number from 0 to 255") }
        return n
    }

    private static func value(_ text: String, source: String) throws -> Accelerator {
        let name = text == "tcg" ? "jit" : text  // QEMU's name for its translator
        guard let a = Accelerator(rawValue: name) else {
            throw CLIError("\(source) \(text): unknown accelerator (jit or interp)")
        }
        if a == .jit && !Accelerator.translatorAvailable {
            throw CLIError("\(source) jit: this host has no translator (x86-64 Linux only); use --accel interp")
        }
        return a
    }
}
