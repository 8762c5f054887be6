import RivetCPU

// TEMPORARY: stands in for the translator API the s4-jit branch adds to RivetCPU (`Accelerator`,
// `Hart.accelerator`, `Hart.translationThreshold`, `Hart.runBlock()`). Delete this file when s4-jit is merged.

public enum Accelerator: String { case interp, jit }

extension Hart {
    var accelerator: Accelerator {
        get { .interp }
        set {}
    }
    var translationThreshold: Int {
        get { 0 }
        set {}
    }
    /// One instruction or one block (budget 1 makes the run loop step single instructions in longer blocks).
    func runBlock() -> Int {
        let before = work
        _ = run(budget: 1)
        return Int(work &- before)
    }
}
