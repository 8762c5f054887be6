/// The widest paging mode a hart implements (`--cpu rv64,mmu=...`). Narrower modes are implemented too;
/// satp ignores a write that selects a wider one, which is how a kernel probes (Sv57, then Sv48, then Sv39).
public enum MMUMode: String, CaseIterable {
    case sv39, sv48, sv57

    /// The satp MODE field value.
    public var satpMode: UInt64 {
        switch self {
        case .sv39: return 8
        case .sv48: return 9
        case .sv57: return 10
        }
    }

    /// The device tree's `mmu-type` for the cpu nodes.
    public var deviceTreeName: String { "riscv,\(rawValue)" }
}
