/// How a hart executes guest code.
public enum Accelerator: String, CaseIterable, Sendable {
    /// The interpreter only: decoded blocks executed by `Hart.executeBlock` (the reference).
    case interp
    /// Blocks that run often are compiled to host code (x86-64); the rest stay in the interpreter.
    case jit

    /// True when this host can run translated code.
    public static var translatorAvailable: Bool {
        #if arch(x86_64) && os(Linux)
        return true
        #else
        return false
        #endif
    }

    /// What `rivet` uses when no `--accel` is given: the translator where it exists.
    public static var hostDefault: Accelerator { translatorAvailable ? .jit : .interp }
}
