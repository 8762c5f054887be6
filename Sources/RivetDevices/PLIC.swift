import RivetMemory
import RivetSnapshot

/// The platform-level interrupt controller of QEMU's virt board ("sifive,plic-1.0.0").
///
/// 96 source ids (0 is reserved, 1...95 are wired), 7 priority levels, two contexts per hart:
/// context 2h is hart h's M-mode (drives MEIP), context 2h+1 its S-mode (drives SEIP).
/// Sources are level-triggered: the pending bit follows the line; a claimed source stays masked until its
/// completion, after which a still-high line becomes pending again.
/// Registers are 32 bits wide; other sizes and misaligned accesses read 0 and are ignored.
public final class PLIC: MMIODevice, Snapshottable, InterruptSink {
    /// Number of source ids including the reserved id 0.
    public static let sourceCount = 96
    public static let maxPriority: UInt32 = 7
    static let words = (sourceCount + 31) / 32
    static let pendingBase: UInt64 = 0x1000
    static let enableBase: UInt64 = 0x2000
    static let enableStride: UInt64 = 0x80
    static let contextBase: UInt64 = 0x20_0000
    static let contextStride: UInt64 = 0x1000
    /// Contexts that fit in the register layout (enables end at 0x1f_ffff).
    public static let maxContexts = 15872

    public let hartCount: Int
    public let contextCount: Int
    let wires: InterruptWires

    @exclusivity(unchecked) public private(set) var priority: [UInt32]
    /// Current line levels of the sources.
    @exclusivity(unchecked) public private(set) var level: [UInt32]
    @exclusivity(unchecked) public private(set) var pending: [UInt32]
    /// Sources claimed by some context and not yet completed.
    @exclusivity(unchecked) public private(set) var claimed: [UInt32]
    /// contextCount * words enable bits.
    @exclusivity(unchecked) public private(set) var enable: [UInt32]
    @exclusivity(unchecked) public private(set) var threshold: [UInt32]

    public init(hartCount: Int, wires: InterruptWires) {
        precondition(hartCount >= 1 && 2 * hartCount <= PLIC.maxContexts, "PLIC: hart count \(hartCount) out of range")
        self.hartCount = hartCount
        self.contextCount = 2 * hartCount
        self.wires = wires
        priority = Array(repeating: 0, count: PLIC.sourceCount)
        level = Array(repeating: 0, count: PLIC.words)
        pending = Array(repeating: 0, count: PLIC.words)
        claimed = Array(repeating: 0, count: PLIC.words)
        enable = Array(repeating: 0, count: 2 * hartCount * PLIC.words)
        threshold = Array(repeating: 0, count: 2 * hartCount)
    }

    /// Machine reset: registers to zero; line levels are kept (devices keep driving them).
    public func reset() {
        for i in priority.indices { priority[i] = 0 }
        for i in 0..<PLIC.words { pending[i] = level[i]; claimed[i] = 0 }
        pending[0] &= ~1
        for i in enable.indices { enable[i] = 0 }
        for i in threshold.indices { threshold[i] = 0 }
        update()
    }

    // MARK: Inputs

    /// Drives source `source`'s line; out-of-range sources (including the reserved 0) are ignored.
    public func setLevel(source: Int, _ high: Bool) {
        guard source > 0 && source < PLIC.sourceCount else { return }
        let w = source >> 5, bit = UInt32(1) << UInt32(source & 31)
        let oldLevel = level[w], oldPending = pending[w]
        if high { level[w] |= bit; pending[w] |= bit } else { level[w] &= ~bit; pending[w] &= ~bit }
        if level[w] != oldLevel || pending[w] != oldPending { update() }
    }

    // MARK: Interrupt selection

    /// The best source for `context`: pending, not claimed, enabled, priority above threshold;
    /// highest priority wins, ties go to the lowest id. 0 if none.
    public func bestSource(context: Int) -> Int {
        var best = 0
        var bestPriority = threshold[context]
        for w in 0..<PLIC.words {
            var bits = pending[w] & ~claimed[w] & enable[context * PLIC.words + w]
            while bits != 0 {
                let b = bits.trailingZeroBitCount
                bits &= bits &- 1
                let id = w * 32 + b
                if priority[id] > bestPriority { best = id; bestPriority = priority[id] }
            }
        }
        return best
    }

    /// Recomputes MEIP/SEIP of every context.
    func update() {
        for ctx in 0..<contextCount {
            wires.set(hart: ctx >> 1, ctx & 1 == 0 ? InterruptWires.meip : InterruptWires.seip, bestSource(context: ctx) != 0)
        }
    }

    func claim(context: Int) -> UInt32 {
        let id = bestSource(context: context)
        if id != 0 {
            let w = id >> 5, bit = UInt32(1) << UInt32(id & 31)
            pending[w] &= ~bit
            claimed[w] |= bit
            update()
        }
        return UInt32(id)
    }

    func complete(context: Int, id: UInt32) {
        // Like QEMU, completion is accepted whatever the enable bits say (Linux toggles them around it).
        guard id > 0 && id < UInt32(PLIC.sourceCount) else { return }
        let w = Int(id >> 5), bit = UInt32(1) << (id & 31)
        guard claimed[w] & bit != 0 else { return }
        claimed[w] &= ~bit
        if level[w] & bit != 0 { pending[w] |= bit }
        update()
    }

    // MARK: MMIO

    public func mmioRead(offset: UInt64, size: Int) -> UInt64 {
        guard size == 4, offset & 3 == 0 else { return 0 }
        if offset < PLIC.pendingBase {
            let id = Int(offset >> 2)
            return id < PLIC.sourceCount ? UInt64(priority[id]) : 0
        }
        if offset < PLIC.enableBase {
            let w = Int((offset - PLIC.pendingBase) >> 2)
            return w < PLIC.words ? UInt64(pending[w]) : 0
        }
        if offset < PLIC.contextBase {
            guard let (ctx, w) = enableWord(offset) else { return 0 }
            return UInt64(enable[ctx * PLIC.words + w])
        }
        let rel = offset - PLIC.contextBase
        let ctx = rel / PLIC.contextStride
        guard ctx < UInt64(contextCount) else { return 0 }
        switch rel % PLIC.contextStride {
        case 0: return UInt64(threshold[Int(ctx)])
        case 4: return UInt64(claim(context: Int(ctx)))
        default: return 0
        }
    }

    public func mmioWrite(offset: UInt64, size: Int, value: UInt64) {
        guard size == 4, offset & 3 == 0 else { return }
        let v = UInt32(truncatingIfNeeded: value)
        if offset < PLIC.pendingBase {
            let id = Int(offset >> 2)
            guard id > 0 && id < PLIC.sourceCount else { return }
            priority[id] = v & PLIC.maxPriority
            update()
            return
        }
        if offset < PLIC.enableBase { return }  // pending bits are read-only
        if offset < PLIC.contextBase {
            guard let (ctx, w) = enableWord(offset) else { return }
            enable[ctx * PLIC.words + w] = w == 0 ? v & ~1 : v  // source 0 does not exist
            update()
            return
        }
        let rel = offset - PLIC.contextBase
        let ctx = rel / PLIC.contextStride
        guard ctx < UInt64(contextCount) else { return }
        switch rel % PLIC.contextStride {
        case 0: threshold[Int(ctx)] = v & PLIC.maxPriority; update()
        case 4: complete(context: Int(ctx), id: v)
        default: break
        }
    }

    private func enableWord(_ offset: UInt64) -> (Int, Int)? {
        let rel = offset - PLIC.enableBase
        let ctx = rel / PLIC.enableStride, w = Int((rel % PLIC.enableStride) >> 2)
        guard ctx < UInt64(contextCount), w < PLIC.words else { return nil }
        return (Int(ctx), w)
    }

    // MARK: Snapshot

    public var snapshotName: String { "plic" }
    public var snapshotVersion: UInt32 { 1 }

    public func saveState(to w: inout StateWriter) {
        w.int(hartCount)
        w.u32s(priority)
        w.u32s(level)
        w.u32s(pending)
        w.u32s(claimed)
        w.u32s(enable)
        w.u32s(threshold)
    }

    public func restoreState(from r: inout StateReader) throws {
        let n = try r.int()
        guard n == hartCount else { throw SnapshotError("\(r.context): PLIC state is for \(n) harts, machine has \(hartCount)") }
        func array(_ what: String, count: Int, validBits: (Int) -> UInt32) throws -> [UInt32] {
            let a = try r.u32s(limit: count)
            guard a.count == count else { throw SnapshotError("\(r.context): PLIC \(what) has \(a.count) entries, expected \(count)") }
            for (i, v) in a.enumerated() where v & ~validBits(i) != 0 {
                throw SnapshotError("\(r.context): PLIC \(what)[\(i)] = \(v) is out of range")
            }
            return a
        }
        // Bit 0 (source 0) is never set in bit arrays.
        let bitsMask: (Int) -> UInt32 = { i in i % PLIC.words == 0 ? ~1 : ~0 }
        let newPriority = try array("priority", count: PLIC.sourceCount) { $0 == 0 ? 0 : PLIC.maxPriority }
        let newLevel = try array("level", count: PLIC.words, validBits: bitsMask)
        let newPending = try array("pending", count: PLIC.words, validBits: bitsMask)
        let newClaimed = try array("claimed", count: PLIC.words, validBits: bitsMask)
        let newEnable = try array("enable", count: contextCount * PLIC.words, validBits: bitsMask)
        let newThreshold = try array("threshold", count: contextCount) { _ in PLIC.maxPriority }
        priority = newPriority; level = newLevel; pending = newPending
        claimed = newClaimed; enable = newEnable; threshold = newThreshold
        update()
    }
}
