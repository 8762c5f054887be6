import RivetMemory

extension Hart {
    /// Fills the frame fields translated code reads that never change for this hart.
    func prepareFrameForTranslation() {
        frame[FrameSlot.hart] = UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()))
        frame[FrameSlot.pinsAddress] = UInt64(UInt(bitPattern: wires.pins + hartID))
        frame[FrameSlot.codeEpochAddress] = UInt64(UInt(bitPattern: codeEpoch))
        frame[FrameSlot.blockTable] = UInt64(UInt(bitPattern: cache.table))
        frame[FrameSlot.codeTable] = UInt64(UInt(bitPattern: cache.codeTable))
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
        frame[FrameSlot.mie] = csr.mie
        frame[FrameSlot.mip] = csr.mip
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
        let before = frame[FrameSlot.retired] &- frame[FrameSlot.remaining] &+ UInt64(index)
        instret &+= before
        let n = executeBlock(op, count: 1, byteLength: UInt64(byteLength))
        instret &-= before
        trapAtBlockStart = n == 0 && index == 0
        return n
    }
}
