import RivetISA

/// Builds seeded random RV64GC instruction streams from the instruction table (RivetISA's InstructionTable):
/// every row the machine executes, 16- and 32-bit, with random operands and free bits, plus the code that
/// makes them meaningful: base registers pointing at mapped, read-only, unmapped, execute-only, clean or
/// code pages and outside RAM (aligned, misaligned, page-crossing), branches and jumps to forward labels,
/// bounded backward loops, jalr through registers, CSR accesses, trapping instructions, and stores into the
/// stream's own code with and without fence.i. Trap handlers skip the trapping instruction and return.
///
/// Register conventions: x29 is the loop counter (never written by random instructions); the trap
/// handlers clobber x30 and x31 (random instructions use them freely).
public struct StreamGenerator {
    static let loopCounter = 29
    static let handlerScratch = (30, 31)

    /// Executable rows of the instruction table, by what the generator does around them.
    static let rows = InstructionTable.all.filter { $0.executes }
    static let controlOps: Set<String> = ["jal", "jalr", "beq", "bne", "blt", "bge", "bltu", "bgeu"]
    static let memoryOps: Set<String> = ["lb", "lh", "lw", "ld", "lbu", "lhu", "lwu", "sb", "sh", "sw", "sd", "flw", "fld", "fsw", "fsd"]
    static let atomicOps: Set<String> = ["lrw", "lrd", "scw", "scd", "amow", "amod"]
    static let systemOps: Set<String> = ["fence", "fencei", "ecall", "ebreak", "mret", "sret", "wfi", "sfenceVma", "csr"]
    static func isFloat(_ op: String) -> Bool { op.hasPrefix("f") && !op.hasPrefix("fence") && !memoryOps.contains(op) }

    static let integerRows = rows.filter {
        let op = $0.microOp!
        return !controlOps.contains(op) && !memoryOps.contains(op) && !atomicOps.contains(op) && !systemOps.contains(op) && !isFloat(op)
    }
    static let floatRows = rows.filter { isFloat($0.microOp!) }
    static let memoryRows = rows.filter { memoryOps.contains($0.microOp!) }
    static let atomicRows = rows.filter { atomicOps.contains($0.microOp!) }
    static let branchRows = rows.filter { controlOps.contains($0.microOp!) && $0.microOp != "jalr" }
    static let jalrRows = rows.filter { $0.microOp == "jalr" }
    static let csrRows = rows.filter { $0.microOp == "csr" }
    static func row(_ mnemonic: String) -> InstructionSpec { rows.first { $0.mnemonic == mnemonic }! }

    /// Every executable mnemonic of the table (what a long enough run must have generated).
    public static var allMnemonics: Set<String> { Set(rows.map(\.mnemonic)) }

    var random: LockstepRandom
    let seed: UInt64
    let mode: LockstepStream.Mode
    let paging: Bool
    var code: CodeBuffer
    let exitLabel: Int
    var mnemonics: [String] = []
    var itemKinds: [String: Int] = [:]
    /// Forward labels, bound when their countdown (in items) runs out.
    var pendingLabels: [(countdown: Int, label: Int)] = []
    /// Instructions a self-modifying store will overwrite, emitted when their countdown runs out.
    var pendingSlots: [(countdown: Int, label: Int, word: UInt32)] = []
    var inLoop = false
    /// Streams that delegate traps to S-mode must keep SUM (the S handler reads U code).
    let keepSUM: Bool
    let fpOff: Bool
    /// Half the streams draw operands from a few registers only, so values flow from instruction to
    /// instruction within a block (register caching in translated code); empty = all registers.
    let xPool: [Int]
    let fPool: [Int]

    public static func generate(seed: UInt64) -> LockstepStream {
        var g = StreamGenerator(seed: seed)
        return g.build()
    }

    init(seed: UInt64) {
        self.seed = seed
        var random = LockstepRandom(seed: seed)
        let mode: LockstepStream.Mode = random.pick([.machine, .machine, .supervisor, .supervisor, .user, .user, .user])
        let pagingRoll = random.percent(75)
        paging = mode != .machine && pagingRoll
        // Some streams start near the end of a page, so blocks end at the page boundary and instructions straddle it.
        let start = random.percent(30) ? 4096 - 2 * random.below(300) : (random.percent(20) ? 2 * random.below(8) : 0)
        var code = CodeBuffer(base: StreamLayout.page(StreamLayout.codePages.lowerBound) + UInt64(start))
        exitLabel = code.newLabel()
        keepSUM = mode == .user
        fpOff = random.percent(8)
        if random.percent(50) {
            var pool: [Int] = []
            for _ in 0..<random.range(3...7) { pool.append(random.range(1...15)) }
            xPool = pool.filter { $0 != StreamGenerator.loopCounter }
            fPool = (0..<random.range(2...5)).map { _ in random.range(6...13) }
        } else {
            xPool = []; fPool = []
        }
        self.mode = mode
        self.code = code
        self.random = random
    }

    // MARK: Building a stream

    mutating func build() -> LockstepStream {
        let items = random.range(16...72)
        // Code stays well inside its pages (at most ~5 KiB: this limit plus one item).
        for _ in 0..<items where code.bytes.count < 3000 { item() }
        // Whatever is still pending lands here, before the exit.
        for slot in pendingSlots { code.bind(slot.label); code.emit(slot.word) }
        for pending in pendingLabels { code.bind(pending.label) }
        pendingSlots = []; pendingLabels = []
        code.bind(exitLabel)
        let exit = code.address
        code.emit(Encode.jal(0, 0))
        code.finish()
        // The last code page stays free: random stores may land there without rewriting the stream.
        precondition(code.address <= StreamLayout.page(StreamLayout.codePages.upperBound - 1), "stream code overflows its pages")

        var memory: [(address: UInt64, bytes: [UInt8])] = []
        memory.append((StreamLayout.page(StreamLayout.machineHandlerPage), handler(machine: true, exit: exit)))
        memory.append((StreamLayout.page(StreamLayout.supervisorHandlerPage), handler(machine: false, exit: exit)))
        memory.append((code.base, code.bytes))
        for p in StreamLayout.dataPages.lowerBound...StreamLayout.cleanPage { memory.append((StreamLayout.page(p), dataPage())) }
        let csrs = controlRegisters(memory: &memory)
        let x = (0..<32).map { i -> UInt64 in i == 0 || i == StreamGenerator.loopCounter ? 0 : interestingInteger() }
        let f = (0..<32).map { _ in interestingFloatRegister() }
        let kinds = itemKinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        return LockstepStream(seed: seed, mode: mode, paging: paging, memory: memory, entry: code.base, exit: exit, x: x, f: f,
                              csrs: csrs, mnemonics: mnemonics,
                              description: "\(mode) mode, paging \(paging ? "on" : "off"), \(items) items (\(kinds))")
    }

    /// Starts an item: binds labels and emits patch slots whose time has come.
    mutating func beginItem() {
        var i = 0
        while i < pendingLabels.count {
            pendingLabels[i].countdown -= 1
            if pendingLabels[i].countdown <= 0 { code.bind(pendingLabels[i].label); pendingLabels.remove(at: i) } else { i += 1 }
        }
        i = 0
        while i < pendingSlots.count {
            pendingSlots[i].countdown -= 1
            if pendingSlots[i].countdown <= 0 {
                code.bind(pendingSlots[i].label); code.emit(pendingSlots[i].word); pendingSlots.remove(at: i)
            } else { i += 1 }
        }
    }

    mutating func count(_ kind: String) { itemKinds[kind, default: 0] += 1 }

    mutating func item() {
        beginItem()
        let roll = random.below(100)
        switch roll {
        case 0..<3: if inLoop { integerItem() } else { straightLineItem() }
        case 3..<26: integerItem()
        case 26..<42: floatItem()
        case 42..<62: memoryItem()
        case 62..<68: atomicItem()
        case 68..<75: if inLoop { integerItem() } else { branchItem() }
        case 75..<78: if inLoop { floatItem() } else { jalrItem() }
        case 78..<85: csrItem()
        case 85..<90: trapItem()
        case 90..<95: selfModifyingItem()
        default: if inLoop { memoryItem() } else if random.percent(30) { takenBranchLoopItem() } else { loopItem() }
        }
    }

    // MARK: Random instructions from the table

    /// A random encoding of `spec`: random free bits, operands chosen here. Nil if no valid encoding was hit.
    mutating func synthesize(_ spec: InstructionSpec, allowReservedRounding: Bool = false) -> UInt32? {
        for _ in 0..<32 {
            var w = (UInt32(truncatingIfNeeded: random.next()) & ~spec.mask) | spec.match
            if spec.isCompressed { w &= 0xffff }
            var rejected = false
            for operand in spec.operands {
                for field in operand.fields where !field.isConstant {
                    let value: Int64
                    switch field.kind {
                    case .xRegister, .fRegister:
                        value = Int64(register(field.kind == .xRegister ? xPool : fPool, compressed: field.offset == 8))
                    case .roundingMode:
                        value = allowReservedRounding ? Int64(random.pick([5, 6])) : Int64(random.pick([0, 1, 2, 3, 4, 7, 7, 7]))
                    case .shiftAmount:
                        value = random.percent(30) ? Int64(random.pick([0, 1, 31, 32, 63])) : field.value(w)
                    case .signed where random.percent(25):
                        value = Int64(random.pick([0, 1, -1, 2047, -2048, 31, 32, 63]))
                    default: continue
                    }
                    w = (w & ~field.wordMask) | field.encode(value)
                    if field.kind == .xRegister && field.value(w) == Int64(StreamGenerator.loopCounter) { rejected = true }
                }
            }
            if rejected { continue }
            guard let row = InstructionTable.row(for: w), row.mnemonic == spec.mnemonic else { continue }
            if allowReservedRounding { return w }
            guard spec.decodes(w) else { continue }
            return w
        }
        return nil
    }

    mutating func emitRandom(_ spec: InstructionSpec) {
        guard let w = synthesize(spec) else { return }
        mnemonics.append(spec.mnemonic)
        code.emit(w)
    }

    mutating func integerItem() {
        count("integer")
        emitRandom(random.pick(StreamGenerator.integerRows))
    }

    mutating func floatItem() {
        count("float")
        if random.percent(25) {
            // Bring a special value (NaN, infinity, subnormal, integer boundary) into an FP register.
            let bits = random.percent(50) ? interestingDouble() : 0xffff_ffff_0000_0000 | UInt64(interestingSingle())
            let t = scratchRegister()
            code.loadImmediate(t, bits)
            let move = StreamGenerator.row(random.percent(50) ? "fmv.d.x" : "fmv.w.x")
            guard var w = synthesize(move) else { return }
            w = (w & ~Fields.rs1.wordMask) | Fields.rs1.encode(Int64(t))
            mnemonics.append(move.mnemonic)
            code.emit(w)
            return
        }
        emitRandom(random.pick(StreamGenerator.floatRows))
    }

    /// An operand register: from the stream's pool when it has one (x8-x15 / f8-f15 for compressed fields).
    mutating func register(_ pool: [Int], compressed: Bool) -> Int {
        let usable = compressed ? pool.filter { (8...15).contains($0) } : pool
        if !usable.isEmpty && random.percent(90) { return random.pick(usable) }
        return compressed ? 8 + random.below(8) : random.below(32)
    }

    /// A run of 8-30 integer and memory instructions without a block end (long translated blocks).
    mutating func straightLineItem() {
        count("straight-line")
        for _ in 0..<random.range(8...30) {
            if random.percent(80) { emitRandom(random.pick(StreamGenerator.integerRows)) } else { memoryItem() }
        }
    }

    /// A register the random part may overwrite (not x0, not the loop counter).
    mutating func scratchRegister() -> Int {
        while true {
            let r = random.range(1...31)
            if r != StreamGenerator.loopCounter { return r }
        }
    }

    /// The base register and offset of a memory operand.
    func memoryOperand(_ spec: InstructionSpec, _ w: UInt32) -> (base: Int, offset: Int64)? {
        for operand in spec.operands {
            if case .memory(let offset, let base) = operand {
                return (Int(base.value(w)), offset?.value(w) ?? 0)
            }
        }
        return nil
    }

    /// An address for an access of `size` bytes: mostly aligned in read-write data, sometimes misaligned,
    /// crossing into the next page, in a read-only, unmapped, execute-only or clean page, in code, or
    /// outside RAM.
    mutating func dataAddress(size: Int) -> UInt64 {
        let roll = random.below(100)
        let aligned = UInt64(size)
        func inPage(_ p: Int) -> UInt64 {
            var offset = UInt64(random.below(4096 / size)) * aligned
            if random.percent(12) { offset |= UInt64(random.range(1...max(1, size - 1))) & (aligned - 1) }  // misaligned
            return StreamLayout.page(p) + min(offset, 4096 - aligned)
        }
        switch roll {
        case 0..<58: return inPage(random.range(StreamLayout.dataPages.lowerBound...StreamLayout.dataPages.upperBound - 1))
        case 58..<64:  // the last bytes of a page, running into the next one
            let p = random.range(StreamLayout.dataPages.lowerBound...StreamLayout.cleanPage - 1)
            return StreamLayout.page(p + 1) - UInt64(random.range(1...size))
        case 64..<72: return inPage(StreamLayout.readOnlyPage)
        case 72..<78: return inPage(StreamLayout.unmappedPage)
        case 78..<84: return inPage(StreamLayout.executeOnlyPage)
        case 84..<90: return inPage(StreamLayout.cleanPage)
        case 90..<94: return random.pick(StreamLayout.outsideRAM) + UInt64(random.below(64))
        case 94..<97:  // read or overwrite code far past the stream (the last code page stays unused)
            return inPage(StreamLayout.codePages.upperBound - 1)
        default:  // a non-canonical or wild address
            return random.pick([0x0000_4000_0000_0000, 0xffff_ffff_8000_0000, UInt64(random.next())])
        }
    }

    mutating func memoryItem() {
        count("memory")
        let spec = random.pick(StreamGenerator.memoryRows)
        guard let w = synthesize(spec), let (base, offset) = memoryOperand(spec, w) else { return }
        let size: Int
        switch spec.microOp! {
        case "lb", "lbu", "sb": size = 1
        case "lh", "lhu", "sh": size = 2
        case "lw", "lwu", "sw", "flw", "fsw": size = 4
        default: size = 8
        }
        if base != 0 && base != StreamGenerator.loopCounter {
            code.loadImmediate(base, dataAddress(size: size) &- UInt64(bitPattern: offset))
        }
        mnemonics.append(spec.mnemonic)
        code.emit(w)
    }

    mutating func atomicItem() {
        count("atomic")
        let spec = random.pick(StreamGenerator.atomicRows)
        guard let w = synthesize(spec) else { return }
        let base = Int((w >> 15) & 31)
        let size = spec.microOp!.hasSuffix("w") ? 4 : 8
        if base != 0 {
            code.loadImmediate(base, random.percent(70)
                ? StreamLayout.page(random.range(StreamLayout.dataPages.lowerBound...StreamLayout.dataPages.upperBound - 1)) + UInt64(random.below(4096 / size) * size)
                : dataAddress(size: size))
        }
        mnemonics.append(spec.mnemonic)
        code.emit(w)
        if spec.microOp!.hasPrefix("lr") && random.percent(70) {
            // A matching store-conditional, sometimes after other work or a store to the same place.
            if random.percent(30) { integerItem() }
            if random.percent(15) { code.emit(Encode.sw(scratchRegister(), base, 0)) }
            let sc = StreamGenerator.row(size == 4 ? "sc.w" : "sc.d")
            guard var scWord = synthesize(sc) else { return }
            scWord = (scWord & ~Fields.rs1.wordMask) | Fields.rs1.encode(Int64(base))
            mnemonics.append(sc.mnemonic)
            code.emit(scWord)
        }
    }

    /// A branch or jump (16- or 32-bit) to a label a few items ahead.
    mutating func branchItem() {
        count("branch")
        let spec = random.pick(StreamGenerator.branchRows)
        guard let w = synthesize(spec) else { return }
        guard let field = spec.operands.flatMap(\.fields).first(where: { $0.kind == .target }) else { return }
        let label = code.newLabel()
        // Compressed branches reach 256 bytes: keep them close.
        pendingLabels.append((spec.isCompressed ? random.range(1...2) : random.range(1...6), label))
        mnemonics.append(spec.mnemonic)
        code.emit(w, target: field, label: label)
    }

    /// jalr, c.jr or c.jalr through a register holding a forward label (or, rarely, a bad address).
    mutating func jalrItem() {
        count("jalr")
        let spec = random.pick(StreamGenerator.jalrRows)
        guard let w = synthesize(spec) else { return }
        let base: Int, offset: Int64
        if let (b, o) = memoryOperand(spec, w) { base = b; offset = o } else { base = Int((w >> 7) & 31); offset = 0 }
        if base == 0 { return }
        if random.percent(4) {
            // A fetch fault (or fetching data as code): the handler ends the stream.
            // Without paging only addresses outside RAM fault (elsewhere random data would run as code).
            let bad = paging ? random.pick([StreamLayout.page(StreamLayout.unmappedPage), StreamLayout.outsideRAM[0],
                                            StreamLayout.page(StreamLayout.dataPages.lowerBound)]) : random.pick(StreamLayout.outsideRAM)
            code.loadImmediate(base, bad &- UInt64(bitPattern: offset))
        } else {
            let label = code.newLabel()
            pendingLabels.append((random.range(1...6), label))
            code.loadAddress(base, label: label, addend: -offset)
        }
        mnemonics.append(spec.mnemonic)
        code.emit(w)
    }

    /// CSRs the stream may touch without breaking the test: FP state, scratch and trap registers
    /// (rewritten at the next trap), counters, and some that are read-only or do not exist (illegal).
    static let harmlessCSRs: [Int] = [
        0x001, 0x002, 0x003,  // fflags, frm, fcsr
        0xc00, 0xc01, 0xc02, 0xc03,  // cycle, time, instret, hpmcounter3
        0x140, 0x141, 0x142, 0x143,  // sscratch, sepc, scause, stval
        0x340, 0x341, 0x342, 0x343,  // mscratch, mepc, mcause, mtval
        0xb00, 0xb02,  // mcycle, minstret
        0x301, 0xf11, 0xf14,  // misa, mvendorid, mhartid
        0x180,  // satp (read only here)
        0x7ff, 0x5c0, 0xdef,  // not CSRs
    ]

    mutating func csrItem() {
        count("csr")
        if mode == .machine && random.percent(20) {
            // Raise (or drop) an interrupt: set bits in mip, or flip mstatus.MIE. Taken at a block boundary
            // when mie and MIE allow.
            count("interrupt")
            let t = scratchRegister()
            let toMIP = random.percent(60)
            code.loadImmediate(t, toMIP ? [0x2, 0x20, 0x200, 0x222][random.below(4)] : 0x8)
            code.emit(Encode.i(0x73, random.percent(75) ? 2 : 3, random.percent(50) ? 0 : scratchRegister(), t, toMIP ? 0x344 : 0x300))
            mnemonics.append(toMIP ? "interrupt" : "mstatus.MIE")
            return
        }
        if random.percent(20) && !(mode == .user) {
            // Flip translation- and FP-relevant status bits: FS (FP on/off), MXR, SUM.
            var mask: UInt64 = random.pick([0x6000, 0x2000, 1 << 19])
            if !keepSUM && random.percent(30) { mask = 1 << 18 }
            let set = random.percent(55)
            if !set && mask == 1 << 18 && keepSUM { return }
            let t = scratchRegister()
            code.loadImmediate(t, mask)
            let number = mode == .machine && random.percent(50) ? 0x300 : 0x100
            code.emit(Encode.i(0x73, set ? 2 : 3, random.percent(50) ? 0 : scratchRegister(), t, Int64(number)))
            mnemonics.append(set ? "csrrs" : "csrrc")
            return
        }
        let spec = random.pick(StreamGenerator.csrRows)
        guard var w = synthesize(spec) else { return }
        let number = random.percent(10) ? random.below(4096) : random.pick(StreamGenerator.harmlessCSRs)
        w = (w & ~Fields.csr.wordMask) | Fields.csr.encode(Int64(number))
        // satp is only read here, and unknown numbers must not hit a real CSR that changes the machine.
        let writes = (w >> 12) & 3 == 1 || (w >> 15) & 31 != 0
        if writes && !StreamGenerator.harmlessCSRs.contains(number) { w &= ~(31 << 15); w = (w & ~(7 << 12)) | 2 << 12 }
        if number == 0x180 { w = (w & ~(31 << 15) & ~(7 << 12)) | 2 << 12 }
        mnemonics.append(spec.mnemonic)
        code.emit(w)
    }

    /// ecall, ebreak, c.ebreak, undefined encodings, reserved rounding modes, privileged instructions.
    mutating func trapItem() {
        count("trap")
        switch random.below(9) {
        case 0: mnemonics.append("ecall"); code.emit(0x0000_0073)
        case 1: mnemonics.append("ebreak"); code.emit(0x0010_0073)
        case 2: mnemonics.append("c.ebreak"); code.emit(0x9002)
        case 3:  // an encoding no row decodes (32-bit or compressed)
            for _ in 0..<64 {
                var w = UInt32(truncatingIfNeeded: random.next())
                if random.percent(30) { w &= 0xffff; if w & 3 == 3 { continue } } else { w |= 3 }
                if let row = InstructionTable.row(for: w), row.decodes(w) { continue }
                code.emit(w)
                mnemonics.append("illegal")
                return
            }
        case 4: mnemonics.append("c.unimp"); code.emit(0x0000)
        case 5:  // a reserved static rounding mode
            let spec = random.pick(StreamGenerator.floatRows.filter { $0.usesRoundingMode })
            if let w = synthesize(spec, allowReservedRounding: true) { code.emit(w); mnemonics.append("reserved-rm") }
        case 6:  // wfi (waits; the runner wakes it), sfence.vma, fence, fence.i
            let name = random.pick(["wfi", "sfence.vma", "fence", "fence.i"])
            emitRandom(StreamGenerator.row(name))
        default:
            // mret/sret are legal only where they would jump to a random epc: generate them where they trap.
            if mode == .user { emitRandom(StreamGenerator.row(random.percent(50) ? "mret" : "sret")) }
            else if mode == .supervisor { emitRandom(StreamGenerator.row("mret")) }
            else { emitRandom(StreamGenerator.row("ecall")) }
        }
    }

    static let patchableRows = integerRows.filter { !$0.isCompressed }
    static let replacementRows = (integerRows + floatRows).filter { !$0.isCompressed }

    /// A store that replaces an instruction a few items ahead (or the very next one, in the same block),
    /// with or without fence.i.
    mutating func selfModifyingItem() {
        count("self-modifying")
        let intoThisBlock = random.percent(30)
        guard let original = synthesize(random.pick(StreamGenerator.patchableRows)) else { return }
        let label = code.newLabel()
        emitPatch(label)
        if intoThisBlock {
            code.bind(label); code.emit(original)
        } else {
            pendingSlots.append((random.range(1...4), label, original))
        }
    }

    /// Stores a random instruction over the one at `label`, with or without fence.i.
    mutating func emitPatch(_ label: Int) {
        guard let replacement = synthesize(random.pick(StreamGenerator.replacementRows)) else { return }
        let base = scratchRegister()
        var value = scratchRegister()
        while value == base { value = scratchRegister() }
        code.loadAddress(base, label: label)
        code.loadImmediate(value, UInt64(replacement))
        if random.percent(25) {
            // Two halfword stores: the instruction is half new, half old in between.
            code.emit(Encode.sh(value, base, 0))
            code.emit(Encode.srli(value, value, 16))
            code.emit(Encode.sh(value, base, 2))
        } else {
            code.emit(Encode.sw(value, base, 0))
        }
        let fence = random.percent(50)
        if fence { code.emit(Encode.fenceI) }
        mnemonics.append(fence ? "self-modify+fence.i" : "self-modify")
    }

    /// A loop of 1-5 items run 1-4 times, counted down in x29. Jumping into the body from outside is safe:
    /// x29 is zero there, so the body runs once.
    mutating func loopItem() {
        count("loop")
        let counter = StreamGenerator.loopCounter
        code.emit(Encode.addi(counter, 0, Int64(random.range(1...4))))
        let head = code.address
        inLoop = true
        // Now and then the body rewrites its own first instruction: the next pass runs code that was
        // already executed (and translated) in its old form.
        let rewritten = random.percent(35) ? code.newLabel() : nil
        if let rewritten, let original = synthesize(random.pick(StreamGenerator.patchableRows)) {
            code.bind(rewritten); code.emit(original)
        }
        for _ in 0..<random.range(1...5) { item() }
        if let rewritten { emitPatch(rewritten); mnemonics.append("self-modify-loop") }
        inLoop = false
        code.emit(Encode.addi(counter, counter, -1))
        code.emit(Encode.blt(0, counter, Int64(bitPattern: head &- code.address)))
        mnemonics.append("loop")
    }

    /// A loop whose body is on the taken side of the head's branch and jumps back (`head: ...; bgtz x29, body;
    /// j out; body: ...; j head`), as compilers lay out `while` loops: the translator compiles such a loop
    /// through the taken branch. Run 0-3 times; entered from outside with x29 zero, it leaves at once.
    /// Half the time the body comes first (`j head; body: ...; j head; head: ...; bgtz x29, body`): a body
    /// below the head.
    mutating func takenBranchLoopItem() {
        count("taken-loop")
        let counter = StreamGenerator.loopCounter
        code.emit(Encode.addi(counter, 0, Int64(random.range(1...4))))
        let body = code.newLabel(), out = code.newLabel(), headLabel = code.newLabel()
        inLoop = true
        if random.percent(50) {
            code.emit(Encode.jal(0, 0), target: Fields.jump, label: headLabel)
            code.bind(body)
            for _ in 0..<random.range(1...4) { item() }
            code.emit(Encode.jal(0, 0), target: Fields.jump, label: headLabel)
            code.bind(headLabel)
            for _ in 0..<random.range(0...3) { item() }
            code.emit(Encode.addi(counter, counter, -1))
            code.emit(Encode.blt(0, counter, 0), target: Fields.branch, label: body)
        } else {
            let head = code.address
            for _ in 0..<random.range(0...3) { item() }
            code.emit(Encode.addi(counter, counter, -1))
            code.emit(Encode.blt(0, counter, 0), target: Fields.branch, label: body)
            code.emit(Encode.jal(0, 0), target: Fields.jump, label: out)
            code.bind(body)
            for _ in 0..<random.range(1...4) { item() }
            code.emit(Encode.jal(0, Int64(bitPattern: head &- code.address)))
            code.bind(out)
        }
        inLoop = false
        mnemonics.append("taken-loop")
    }

    // MARK: Trap handlers

    /// Skips the trapping instruction (2 or 4 bytes, read at the exception pc) and returns; a fetch fault
    /// (access or page) goes to the exit instead; an interrupt clears mip's writable bits and returns.
    /// Uses x30 and x31 only.
    func handler(machine: Bool, exit: UInt64) -> [UInt8] {
        let (t5, t6) = StreamGenerator.handlerScratch
        let cause = machine ? 0x342 : 0x142, epc = machine ? 0x341 : 0x141
        var h = CodeBuffer(base: StreamLayout.page(machine ? StreamLayout.machineHandlerPage : StreamLayout.supervisorHandlerPage))
        let fetchFault = h.newLabel(), interrupt = h.newLabel()
        h.emit(Encode.csrrs(t6, cause, 0))
        h.emit(Encode.blt(t6, 0, 0), target: Fields.branch, label: interrupt)
        h.emit(Encode.addi(t5, t6, -1))
        h.emit(Encode.beq(t5, 0, 0), target: Fields.branch, label: fetchFault)
        h.emit(Encode.addi(t5, t6, -12))
        h.emit(Encode.beq(t5, 0, 0), target: Fields.branch, label: fetchFault)
        h.emit(Encode.csrrs(t6, epc, 0))
        h.emit(Encode.lhu(t5, t6, 0))
        h.emit(Encode.andi(t5, t5, 3))
        h.emit(Encode.addi(t5, t5, -3))
        h.emit(Encode.bne(t5, 0, 8))
        h.emit(Encode.addi(t6, t6, 2))
        h.emit(Encode.addi(t6, t6, 2))
        h.emit(Encode.csrrw(0, epc, t6))
        h.emit(machine ? Encode.mret : Encode.sret)
        h.bind(fetchFault)
        h.emitAddress(t6, exit)
        h.emit(Encode.csrrw(0, epc, t6))
        h.emit(machine ? Encode.mret : Encode.sret)
        // An interrupt (the stream set a pending bit in mip): clear the software-writable ones and return to
        // the interrupted instruction.
        h.bind(interrupt)
        h.emit(Encode.addi(t5, 0, 0x222))
        h.emit(Encode.i(0x73, 3, 0, t5, machine ? 0x344 : 0x144))
        h.emit(machine ? Encode.mret : Encode.sret)
        h.finish()
        return h.bytes
    }

    // MARK: Machine set-up

    /// The CSR writes that start the stream, and the page tables when paging is on.
    mutating func controlRegisters(memory: inout [(address: UInt64, bytes: [UInt8])]) -> [(number: Int, value: UInt64)] {
        var csrs: [(number: Int, value: UInt64)] = [
            (0x3b0, ~0), (0x3a0, 0x1f),  // PMP: S and U may touch everything (as firmware sets up)
            (0x305, StreamLayout.page(StreamLayout.machineHandlerPage)),  // mtvec
            (0x105, StreamLayout.page(StreamLayout.supervisorHandlerPage)),  // stvec
        ]
        var status: UInt64 = fpOff ? 0 : (random.percent(50) ? 0x2000 : 0x6000)
        if keepSUM || random.percent(30) { status |= 1 << 18 }
        if random.percent(20) { status |= 1 << 19 }
        if mode == .machine && random.percent(70) { status |= 0x8 }  // MIE: interrupts the stream raises are taken
        csrs.append((0x300, status))
        if mode == .machine { csrs.append((0x304, [0, 0x222, 0x2, 0x20, 0x200][random.below(5)])) }  // mie
        if mode != .machine && random.percent(50) {
            // Delegate some exceptions to the S handler.
            let delegable: [UInt64] = [2, 3, 4, 5, 6, 7, 8, 12, 13, 15]
            var mask: UInt64 = 0
            for c in delegable where random.percent(50) { mask |= 1 << c }
            csrs.append((0x302, mask))
        }
        csrs.append((0x306, random.percent(70) ? 0xffff_ffff : random.next() & 0xf))  // mcounteren
        csrs.append((0x106, random.percent(70) ? 0xffff_ffff : random.next() & 0xf))  // scounteren
        if !fpOff {
            csrs.append((0x002, UInt64(random.percent(80) ? random.below(5) : random.range(5...7))))  // frm, sometimes invalid
            csrs.append((0x001, random.next() & 0x1f))
        }
        if paging {
            memory.append(contentsOf: pageTables())
            csrs.append((0x180, 8 << 60 | StreamLayout.page(StreamLayout.rootTablePage) >> 12))
        }
        return csrs
    }

    /// Sv39 tables mapping every page at its physical address, with each page's permissions.
    mutating func pageTables() -> [(address: UInt64, bytes: [UInt8])] {
        func pte(_ page: UInt64, _ flags: UInt64) -> UInt64 { (page >> 12) << 10 | flags }
        let v: UInt64 = 1, r: UInt64 = 2, w: UInt64 = 4, x: UInt64 = 8, u: UInt64 = 16, a: UInt64 = 64, d: UInt64 = 128
        let user = mode == .user ? u : 0
        var root = [UInt64](repeating: 0, count: 512)
        var middle = [UInt64](repeating: 0, count: 512)
        var leaf = [UInt64](repeating: 0, count: 512)
        root[Int((StreamLayout.ramBase >> 30) & 0x1ff)] = pte(StreamLayout.page(StreamLayout.middleTablePage), v)
        middle[Int((StreamLayout.ramBase >> 21) & 0x1ff)] = pte(StreamLayout.page(StreamLayout.leafTablePage), v)
        func map(_ p: Int, _ flags: UInt64) { leaf[p] = pte(StreamLayout.page(p), flags) }
        map(StreamLayout.supervisorHandlerPage, v | r | x | a)
        for p in StreamLayout.codePages { map(p, v | r | w | x | a | d | user) }
        for p in StreamLayout.dataPages {
            // In S mode, now and then a user page (S may touch it only with SUM).
            let flip = mode == .supervisor && random.percent(15) ? u : 0
            map(p, v | r | w | a | d | (user ^ flip))
        }
        map(StreamLayout.readOnlyPage, v | r | a | user)
        map(StreamLayout.executeOnlyPage, v | x | a | user)
        map(StreamLayout.cleanPage, v | r | w | user)
        func bytes(_ table: [UInt64]) -> [UInt8] { table.withUnsafeBytes { [UInt8]($0) } }
        return [(StreamLayout.page(StreamLayout.rootTablePage), bytes(root)),
                (StreamLayout.page(StreamLayout.middleTablePage), bytes(middle)),
                (StreamLayout.page(StreamLayout.leafTablePage), bytes(leaf))]
    }

    // MARK: Values

    static let integers: [UInt64] = [
        0, 1, 2, 3, 31, 32, 63, 64, ~0, ~1, 1 << 63, (1 << 63) - 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff,
        0x1_0000_0000, 0xffff_ffff_8000_0000, 0xffff_ffff_7fff_ffff, 0x8000_0000_0000_0001, 0xff, 0x80, 0xffff, 0x8000,
    ]
    static let doubles: [UInt64] = [
        0, 1 << 63, 0x3ff0_0000_0000_0000, 0xbff0_0000_0000_0000, 0x3fe0_0000_0000_0000, 0x3ff8_0000_0000_0000,
        0x4004_0000_0000_0000, 0xc004_0000_0000_0000, 0x7ff0_0000_0000_0000, 0xfff0_0000_0000_0000,
        0x7ff8_0000_0000_0000, 0x7ff0_0000_0000_0001, 0x7ff8_dead_beef_0001, 0xfff8_0000_0000_0000, 0x7ff4_0000_0000_0000,
        1, 0x000f_ffff_ffff_ffff, 0x8000_0000_0000_0001, 0x0010_0000_0000_0000, 0x7fef_ffff_ffff_ffff, 0xffef_ffff_ffff_ffff,
        0x43e0_0000_0000_0000, 0xc3e0_0000_0000_0000, 0x43f0_0000_0000_0000, 0x43df_ffff_ffff_ffff, 0x41e0_0000_0000_0000,
        0xc1e0_0000_0000_0000, 0xc1e0_0000_0020_0000, 0x41f0_0000_0000_0000, 0x41ef_ffff_ffe0_0000, 0x3fb9_9999_9999_999a,
        0x3ca0_0000_0000_0000, 0x4330_0000_0000_0001, 0xbfe0_0000_0000_0000,
    ]
    static let singles: [UInt32] = [
        0, 0x8000_0000, 0x3f80_0000, 0xbf80_0000, 0x3f00_0000, 0x3fc0_0000, 0x4020_0000, 0xc020_0000, 0x7f80_0000,
        0xff80_0000, 0x7fc0_0000, 0x7f80_0001, 0x7fa0_0000, 0xffc0_0000, 0x7fc0_dead, 1, 0x007f_ffff, 0x8000_0001,
        0x0080_0000, 0x7f7f_ffff, 0xff7f_ffff, 0x5f00_0000, 0xdf00_0000, 0x5f80_0000, 0x4f00_0000, 0xcf00_0000,
        0x4f80_0000, 0x4eff_ffff, 0x3dcc_cccd, 0x3300_0000, 0x4b00_0001,
    ]

    mutating func interestingInteger() -> UInt64 {
        switch random.below(10) {
        case 0..<5: return random.pick(StreamGenerator.integers)
        case 5: return UInt64(bitPattern: Int64(random.range(-100...100)))
        case 6: return random.pick(StreamGenerator.doubles)
        default: return random.next()
        }
    }

    mutating func interestingDouble() -> UInt64 { random.percent(85) ? random.pick(StreamGenerator.doubles) : random.next() }
    mutating func interestingSingle() -> UInt32 {
        random.percent(85) ? random.pick(StreamGenerator.singles) : UInt32(truncatingIfNeeded: random.next())
    }

    /// A double, a NaN-boxed single, or (sometimes) a single that is not properly boxed.
    mutating func interestingFloatRegister() -> UInt64 {
        switch random.below(10) {
        case 0..<5: return interestingDouble()
        case 5..<9: return 0xffff_ffff_0000_0000 | UInt64(interestingSingle())
        default: return (random.next() << 32) | UInt64(interestingSingle())
        }
    }

    /// Data-page contents: random bytes with special integers and floats in one slot of eight.
    mutating func dataPage() -> [UInt8] {
        var words = [UInt64](repeating: 0, count: 512)
        for slot in 0..<512 { words[slot] = random.next() }
        for _ in 0..<64 {
            let value: UInt64
            switch random.below(3) {
            case 0: value = interestingInteger()
            case 1: value = interestingDouble()
            default: value = UInt64(interestingSingle()) | UInt64(interestingSingle()) << 32
            }
            words[random.below(512)] = value
        }
        return words.withUnsafeBytes { [UInt8]($0) }
    }
}
