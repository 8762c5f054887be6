import RivetCPU

/// `--cpu MODEL[,mmu=sv39|sv48|sv57]`: the only model is `rv64` (RV64GC); `mmu` picks the widest paging
/// mode (default sv57), which the device tree's `mmu-type` then reports.
struct CPUOption {
    var mmuMode: MMUMode = .sv57

    init(_ text: String) throws {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard parts.first == "rv64" else {
            throw CLIError("--cpu \(text): unknown CPU model '\(parts.first ?? "")' (the model is rv64)")
        }
        for option in parts.dropFirst() {
            let kv = option.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, kv[0] == "mmu" else {
                throw CLIError("--cpu \(text): unknown option '\(option)' (mmu=sv39|sv48|sv57)")
            }
            guard let mode = MMUMode(rawValue: kv[1]) else {
                throw CLIError("--cpu \(text): unknown MMU mode '\(kv[1])' (sv39, sv48 or sv57)")
            }
            mmuMode = mode
        }
    }
}
