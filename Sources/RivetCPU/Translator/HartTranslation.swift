import RivetFloat
import RivetMemory

extension Hart {
    /// Fills the frame fields translated code reads that never change for this hart.
    /// Translated loads without a TLB check (UncheckedLoadTable), for a hart with identity addressing whose
    /// process keeps the identity range's host protections: addresses below `limit` are read directly.
    public func enableUncheckedLoads(_ table: UncheckedLoadTable, limit: UInt64) {
        precondition(userIdentityAddend != 0, "unchecked loads need identity addressing")
        frame[FrameSlot.uncheckedLimit] = limit
        cache.flushAll()
        cache.uncheckedLoads = table
        UncheckedLoadTable.active = table
    }

    /// Back to checked loads: the code compiled with unchecked ones goes (call it outside translated code).
    public func disableUncheckedLoads() {
        guard cache.uncheckedLoads != nil else { return }
        cache.flushAll()
        cache.uncheckedLoads = nil
        UncheckedLoadTable.active = nil
    }

    func prepareFrameForTranslation() {
        frame[FrameSlot.hart] = UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()))
        frame[FrameSlot.mxcsrClean] = 0x1f80
        frame[FrameSlot.blockTable] = UInt64(UInt(bitPattern: cache.table))
        frame[FrameSlot.codeTable] = UInt64(UInt(bitPattern: cache.codeTable))
        frame[FrameSlot.hostToPhysical] = ramBase &- UInt64(UInt(bitPattern: ramHost))
    }

    /// Runs translated code starting with the block at `pc` (whose code is `code`), chaining through further
    /// translated blocks while at most `budgetLeft` instructions have been started. Returns the work done, with
    /// the same accounting as the interpreter's run loop: retired instructions, plus one for a trap at a block's
    /// first instruction.
    @inline(never)
    func runTranslated(_ code: UInt, blockCount: Int, budgetLeft: Int) -> Int {
        // `remaining` counts down as blocks retire; without chaining it allows exactly this block.
        let start = Int64(chainingEnabled ? budgetLeft : blockCount)
        frame[FrameSlot.remaining] = UInt64(bitPattern: start)
        frame[FrameSlot.retired] = UInt64(bitPattern: start)
        refreshFloatSlots()
        blockPC = pc
        cache.translator.unsafelyUnwrapped.enter(frame, code &+ UInt(Translator.prologueSize))
        let retired = Int(start &- Int64(bitPattern: frame[FrameSlot.remaining]))
        if frame[FrameSlot.exitKind] == TranslatedExit.atBoundary.rawValue { pc = frame[FrameSlot.exitPC] }
        instret &+= UInt64(retired)
        var cost = retired
        if trapAtBlockStart { trapAtBlockStart = false; cost &+= 1 }
        return max(cost, 1)
    }

    /// Called by translated code to run op `index` of the current block in the interpreter (instructions the
    /// translator does not compile, and the slow paths of loads and stores). Returns 1 if it retired, 0 if it
    /// trapped (the trap is taken: pc is the handler's). Instructions that read instret (CSR reads) see the
    /// ones retired before them in this run, as in the interpreter.
    func translatedCallout(_ op: UnsafeMutablePointer<MicroOp>, index: Int, byteLength: Int) -> Int {
        // Floating point (the most frequent callout): straight to the arithmetic. Anything it refuses (FS off,
        // a reserved rounding mode) goes through the interpreter below, which raises the trap.
        if op.pointee.op.rawValue >= Op.faddS.rawValue, translatedFloat(op.pointee) {
            refreshFloatSlots()
            return 1
        }
        let before = frame[FrameSlot.retired] &- frame[FrameSlot.remaining] &+ UInt64(index)
        let invalidations = cache.invalidations
        instret &+= before
        let n = executeBlock(op, count: 1, byteLength: UInt64(byteLength))
        instret &-= before
        trapAtBlockStart = n == 0 && index == 0
        refreshFloatSlots()
        // The interpreter would not chain past this block now (an MMIO access raised an interrupt, a CSR
        // write enabled one): the next prologue leaves for the run loop, at the same boundary.
        // A store that dropped decoded blocks (self-modifying code) may have dropped the next segment of this
        // unit too: the interpreter would look it up again at the boundary, so the unit must not run it.
        if (csr.mip | wires.pins[hartID]) & csr.mie != 0 || codeEpoch.pointee != seenCodeEpoch
            || cache.invalidations != invalidations {
            attentionRequest.store(true, ordering: .relaxed)
        }
        return n
    }

    /// The frame's FP guards for inline code (HartFrame.swift: floatDirty, floatFast).
    @inline(__always)
    func refreshFloatSlots() {
        let dirty = csr.mstatus & MStatus.fsMask == MStatus.fsDirty
        frame[FrameSlot.floatDirty] = dirty ? 1 : 0
        frame[FrameSlot.floatFast] = dirty && csr.frm == 0 ? (csr.fflags & 1 != 0 ? 1 : 2) : 0
    }

    /// One F/D arithmetic op as the interpreter computes it; false (nothing changed) when it must trap.
    @inline(__always)
    func translatedFloat(_ op: MicroOp) -> Bool {
        switch op.op {
        case .faddD, .fsubD, .fmulD, .fdivD:
            guard fpAllowed, let rm = roundingMode(op.extra) else { return false }
            var fl = UInt32(truncatingIfNeeded: csr.fflags)
            let a = f[Int(op.rs1)], b = f[Int(op.rs2)]
            let r: UInt64
            switch op.op {
            case .faddD: r = RVFloat.add_d(a, b, rm, &fl)
            case .fsubD: r = RVFloat.sub_d(a, b, rm, &fl)
            case .fmulD: r = RVFloat.mul_d(a, b, rm, &fl)
            default: r = RVFloat.div_d(a, b, rm, &fl)
            }
            f[Int(op.rd)] = r
            csr.fflags = UInt64(fl)
            csr.mstatus |= MStatus.fsDirty
            return true
        case .fmaddD, .fmsubD, .fnmsubD, .fnmaddD:
            guard fpAllowed, let rm = roundingMode(op.extra) else { return false }
            var fl = UInt32(truncatingIfNeeded: csr.fflags)
            let a = f[Int(op.rs1)], b = f[Int(op.rs2)], c = f[Int(op.rs3)]
            let r: UInt64
            switch op.op {
            case .fmaddD: r = RVFloat.madd_d(a, b, c, rm, &fl)
            case .fmsubD: r = RVFloat.msub_d(a, b, c, rm, &fl)
            case .fnmsubD: r = RVFloat.nmsub_d(a, b, c, rm, &fl)
            default: r = RVFloat.nmadd_d(a, b, c, rm, &fl)
            }
            f[Int(op.rd)] = r
            csr.fflags = UInt64(fl)
            csr.mstatus |= MStatus.fsDirty
            return true
        case .fsgnjD, .fsgnjnD, .fsgnjxD:
            guard fpAllowed else { return false }
            let a = f[Int(op.rs1)], b = f[Int(op.rs2)]
            let sign: UInt64 = op.op == .fsgnjD ? b : (op.op == .fsgnjnD ? ~b : a ^ b)
            f[Int(op.rd)] = (a & ~(1 << 63)) | (sign & (1 << 63))
            csr.mstatus |= MStatus.fsDirty
            return true
        default:
            return executeFloat(op)
        }
    }
}
