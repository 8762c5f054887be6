import Atomics
import RivetFloat
import RivetMemory

extension Hart {
    // MARK: Fast memory access through the software TLB

    @inline(__always)
    func load<T: FixedWidthInteger>(_ va: UInt64, _ tlb: UnsafeMutablePointer<TLBEntry>, _: T.Type) -> T? {
        let e = tlb[Int(truncatingIfNeeded: (va >> 12) & UInt64(TLB.entries - 1))]
        if e.tag == (va & (~0xfff | UInt64(MemoryLayout<T>.size - 1))) | readGeneration {
            return UnsafeRawPointer(bitPattern: UInt(va &+ e.addend)).unsafelyUnwrapped.load(as: T.self)
        }
        guard let v = loadSlow(va, size: MemoryLayout<T>.size) else { return nil }
        return T(truncatingIfNeeded: v)
    }

    @inline(__always)
    func store<T: FixedWidthInteger>(_ va: UInt64, _ value: T, _ tlb: UnsafeMutablePointer<TLBEntry>) -> Bool {
        let e = tlb[TLB.entries + Int(truncatingIfNeeded: (va >> 12) & UInt64(TLB.entries - 1))]
        if e.tag == (va & (~0xfff | UInt64(MemoryLayout<T>.size - 1))) | writeGeneration {
            UnsafeMutableRawPointer(bitPattern: UInt(va &+ e.addend)).unsafelyUnwrapped.storeBytes(of: value, as: T.self)
            return true
        }
        return storeSlow(va, size: MemoryLayout<T>.size, value: UInt64(truncatingIfNeeded: value))
    }

    // MARK: The run loop

    /// Runs up to about `budget` instructions (whole blocks), taking interrupts between blocks.
    /// Returns early when the hart waits for an interrupt.
    public func run(budget: Int) -> HartStop {
        runLoop(budget: budget, singleBlock: false)
    }

    /// One pass of the run loop: interrupts, then exactly one block (or one instruction), never chaining into
    /// the next. Returns the work done. For lockstep testing of the two accelerators (block by block).
    public func runBlock() -> Int {
        let before = work
        let chaining = chainingEnabled
        chainingEnabled = false
        _ = runLoop(budget: Int.max, singleBlock: true)
        chainingEnabled = chaining
        return Int(work &- before)
    }

    @inline(__always)
    func runLoop(budget: Int, singleBlock: Bool) -> HartStop {
        var executed = 0
        defer { work &+= UInt64(executed) }
        if budget <= 0 { return .budgetExhausted }
        repeat {
            // Clear before looking (an exchange orders it before the loads below): a request made after this
            // is seen by the next prologue.
            if attentionRequest.load(ordering: .relaxed) { _ = attentionRequest.exchange(false, ordering: .sequentiallyConsistent) }
            if let code = pendingInterrupt(), !(debugArmed && debug.unsafelyUnwrapped.singleStep) {
                waitingForInterrupt = false
                takeTrap(cause: code, tval: 0, epc: pc, interrupt: true)
            }
            if waitingForInterrupt {
                if hasWakeupInterrupt { waitingForInterrupt = false } else { return .waitingForInterrupt }
            }
            // Before any instruction runs (single-stepped ones too): a page that became code, or a dirty-log
            // sync, must find no writable TLB entry left here.
            if codeEpoch.pointee != seenCodeEpoch {
                seenCodeEpoch = codeEpoch.pointee
                flushWritableEntries()
            }
            if debugArmed {
                let (n, stop) = debugStep(debug.unsafelyUnwrapped)
                executed += n
                if stop { return .debugStop }
                continue
            }
            if traceHook != nil {
                executed += max(stepTraced(), 1)
                continue
            }
            if tlbFlushRequest.load(ordering: .relaxed) {
                tlbFlushRequest.store(false, ordering: .relaxed)
                flushTLB()
            }
            // Budgets count work, not just retired instructions: a trap that retires nothing still costs one,
            // so a guest trapping in a loop returns control to the machine (time limits, console, quit).
            guard let paddr = fetchAddress(pc) else {
                takeTrap(cause: pendingCause, tval: pendingTval, epc: pc, interrupt: false)
                executed += 1
                continue
            }
            if fetchNeedsExactChecks {  // a page split by PMP rules: one instruction, fetch checked exactly
                fetchNeedsExactChecks = false
                executed += max(executeSingle(paddr), 1)
                continue
            }
            var entry = cache.table[BlockCache.slot(paddr)]
            if entry.paddr != paddr {
                entry = cache.decodeBlock(at: paddr)
                if entry.count == 0 {  // a page-straddling instruction
                    executed += max(executeSingle(paddr), 1)
                    continue
                }
                if codeEpoch.pointee != seenCodeEpoch {  // the decode made its page a code page
                    seenCodeEpoch = codeEpoch.pointee
                    flushWritableEntries()
                }
            }
            if Int(entry.count) > budget - executed {
                // Would overshoot the budget: run just the block's first instructions, so limits are exact.
                executed += max(executeLeading(entry, count: budget - executed), 1)
                continue
            }
            if translating {
                // Hot blocks run as host code; a block is compiled after it ran `translationThreshold` times
                // here (interpreted blocks then return to this loop after each block, so the count is exact).
                let slot = BlockCache.slot(paddr)
                var code = cache.codeTable[slot]
                if code == 0 {
                    let heat = cache.heatTable[slot]
                    if Int(heat) >= translationThreshold {
                        guard let compiled = cache.translate(slot: slot, entry: entry) else { continue }  // cache flushed
                        code = compiled
                    } else if heat < UInt8.max {
                        cache.heatTable[slot] = heat &+ 1
                    }
                }
                if code != 0 {
                    executed &+= runTranslated(code, blockCount: Int(entry.count), budgetLeft: budget - executed)
                    continue
                }
            }
            blockPC = pc
            let n = executeBlock(cache.pool + Int(entry.start), count: Int(entry.count), byteLength: UInt64(entry.byteLength),
                                 chainBudget: chainingEnabled && !translating ? budget - executed : 0)
            // Work is retired instructions plus one per exception that retired nothing in its block. It must
            // not depend on chaining (which depends on the block cache and TLB, not saved in snapshots):
            // a chained run that traps at a block's first instruction costs what the unchained run costs.
            var cost = n
            if trapAtBlockStart { trapAtBlockStart = false; cost &+= 1 }
            executed &+= max(cost, 1)
            instret &+= UInt64(n)
        } while executed < budget && !singleBlock
        return .budgetExhausted
    }

    /// Fetches and decodes the single instruction at pc into the scratch op (for page-straddling
    /// instructions and tracing). Returns its raw bits, or nil after raising a fetch fault.
    func decodeSingle(_ paddr: UInt64) -> UInt32? {
        guard let low = ram.load16(paddr) else {
            takeTrap(cause: 1, tval: pc, epc: pc, interrupt: false); return nil
        }
        var word = UInt32(low)
        if low & 3 == 3 {
            let highVA = pc &+ 2
            let highPA: UInt64
            if (paddr & 0xfff) == 0xffe {
                guard let pa = fetchAddress(highVA) else {
                    takeTrap(cause: pendingCause, tval: pendingTval, epc: pc, interrupt: false); return nil
                }
                highPA = pa
            } else {
                highPA = paddr + 2
                if pmpRuleCount != 0 && !pmpCheck(highPA, size: 2, .fetch, privilege) {
                    takeTrap(cause: 1, tval: highVA, epc: pc, interrupt: false); return nil
                }
            }
            guard let high = ram.load16(highPA) else {
                takeTrap(cause: 1, tval: highVA, epc: pc, interrupt: false); return nil
            }
            word |= UInt32(high) << 16
            scratchOp.pointee = Decoder.decode32(word)
        } else {
            scratchOp.pointee = Decoder.decode16(low)
        }
        scratchOp.pointee.pcOffset = 0
        return word
    }

    /// Runs the first `k` instructions of a decoded block (fewer than all: none of them transfers control,
    /// which only a block's last instruction does); pc then points at instruction `k`. Ending a budget this
    /// way costs one call, where stepping instruction by instruction decoded each again.
    func executeLeading(_ entry: BlockCache.Entry, count k: Int) -> Int {
        let ops = cache.pool + Int(entry.start)
        precondition(k > 0 && k < Int(entry.count))
        blockPC = pc
        let n = executeBlock(ops, count: k, byteLength: UInt64(ops[k].pcOffset))
        trapAtBlockStart = false  // the caller counts a trap here as one unit of work itself
        instret &+= UInt64(n)
        return n
    }

    func executeSingle(_ paddr: UInt64) -> Int {
        guard let word = decodeSingle(paddr) else { return 0 }
        blockPC = pc
        let n = executeBlock(scratchOp, count: 1, byteLength: word & 3 == 3 ? 4 : 2)
        trapAtBlockStart = false  // the caller counts a trap here as one unit of work itself
        instret &+= UInt64(n)
        return n
    }

    /// Executes one instruction and reports it to the trace hook if it retired.
    func stepTraced() -> Int {
        guard let paddr = fetchAddress(pc) else {
            takeTrap(cause: pendingCause, tval: pendingTval, epc: pc, interrupt: false); return 0
        }
        let at = pc
        guard let word = decodeSingle(paddr) else { return 0 }
        blockPC = pc
        let n = executeBlock(scratchOp, count: 1, byteLength: word & 3 == 3 ? 4 : 2)
        trapAtBlockStart = false  // the caller counts a trap here as one unit of work itself
        instret &+= UInt64(n)
        if n == 1 { traceHook?(at, word & 3 == 3 ? word : word & 0xffff) }
        return n
    }

    /// Raises the pending exception for op `i` of the current block; returns the retired count.
    @inline(never)
    func raiseAt(_ ops: UnsafeMutablePointer<MicroOp>, _ i: Int) -> Int {
        let epc = blockPC &+ UInt64(ops[i].pcOffset)
        if pendingCause == 2 && pendingTval == 0 { pendingTval = instructionBits(at: epc) }
        takeTrap(cause: pendingCause, tval: pendingTval, epc: epc, interrupt: false)
        if i == 0 { trapAtBlockStart = true }
        return i
    }

    /// Re-reads the instruction at `va` (for mtval of illegal instructions whose bits were not kept).
    func instructionBits(at va: UInt64) -> UInt64 {
        let savedCause = pendingCause
        defer { pendingCause = savedCause }
        guard let pa = fetchAddress(va), let low = ram.load16(pa) else { return 0 }
        if low & 3 != 3 { return UInt64(low) }
        let highPA = (pa & 0xfff) == 0xffe ? fetchAddress(va &+ 2) : pa + 2
        guard let hp = highPA, let high = ram.load16(hp) else { return 0 }
        return UInt64(low) | UInt64(high) << 16
    }

    // MARK: The executor

    /// Executes a decoded block starting at `blockPC`; returns the number of retired instructions and
    /// leaves `pc` at the next instruction (or the trap handler).
    ///
    /// Blocks chain: when a block ends in a plain branch or jump and the next block is already decoded,
    /// its TLB entry is hot, no interrupt is pending and `chainBudget` allows, execution continues there
    /// without returning to `run` (which handles everything else).
    @inline(never)
    func executeBlock(_ firstOps: UnsafeMutablePointer<MicroOp>, count firstCount: Int, byteLength: UInt64, chainBudget: Int = 0) -> Int {
        let x = self.x
        let tlb = dataTLB
        var ops = firstOps
        var count = firstCount
        var base = blockPC
        var nextPC = base &+ byteLength
        var done = 0
        var chainable = true
        while true {
        var i = 0
        while i < count {
            let op = ops[i]
            let rd = Int(op.rd), rs1 = Int(op.rs1), rs2 = Int(op.rs2)
            let imm = UInt64(bitPattern: op.imm)
            switch op.op {
            case .nop, .fence: break
            case .lui: x[rd] = imm
            case .auipc: x[rd] = base &+ UInt64(op.pcOffset) &+ imm
            case .addi: x[rd] = x[rs1] &+ imm
            case .slti: x[rd] = Int64(bitPattern: x[rs1]) < op.imm ? 1 : 0
            case .sltiu: x[rd] = x[rs1] < imm ? 1 : 0
            case .xori: x[rd] = x[rs1] ^ imm
            case .ori: x[rd] = x[rs1] | imm
            case .andi: x[rd] = x[rs1] & imm
            case .slli: x[rd] = x[rs1] << (imm & 63)
            case .srli: x[rd] = x[rs1] >> (imm & 63)
            case .srai: x[rd] = UInt64(bitPattern: Int64(bitPattern: x[rs1]) >> Int64(imm & 63))
            case .addiw: x[rd] = sext32(UInt32(truncatingIfNeeded: x[rs1] &+ imm))
            case .slliw: x[rd] = sext32(UInt32(truncatingIfNeeded: x[rs1]) << UInt32(imm & 31))
            case .srliw: x[rd] = sext32(UInt32(truncatingIfNeeded: x[rs1]) >> UInt32(imm & 31))
            case .sraiw: x[rd] = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: x[rs1]) >> Int32(imm & 31)))
            case .add: x[rd] = x[rs1] &+ x[rs2]
            case .sub: x[rd] = x[rs1] &- x[rs2]
            case .sll: x[rd] = x[rs1] << (x[rs2] & 63)
            case .slt: x[rd] = Int64(bitPattern: x[rs1]) < Int64(bitPattern: x[rs2]) ? 1 : 0
            case .sltu: x[rd] = x[rs1] < x[rs2] ? 1 : 0
            case .xor: x[rd] = x[rs1] ^ x[rs2]
            case .srl: x[rd] = x[rs1] >> (x[rs2] & 63)
            case .sra: x[rd] = UInt64(bitPattern: Int64(bitPattern: x[rs1]) >> Int64(x[rs2] & 63))
            case .or: x[rd] = x[rs1] | x[rs2]
            case .and: x[rd] = x[rs1] & x[rs2]
            case .addw: x[rd] = sext32(UInt32(truncatingIfNeeded: x[rs1] &+ x[rs2]))
            case .subw: x[rd] = sext32(UInt32(truncatingIfNeeded: x[rs1] &- x[rs2]))
            case .sllw: x[rd] = sext32(UInt32(truncatingIfNeeded: x[rs1]) << UInt32(x[rs2] & 31))
            case .srlw: x[rd] = sext32(UInt32(truncatingIfNeeded: x[rs1]) >> UInt32(x[rs2] & 31))
            case .sraw: x[rd] = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: x[rs1]) >> Int32(x[rs2] & 31)))
            case .mul: x[rd] = x[rs1] &* x[rs2]
            case .mulh:
                x[rd] = UInt64(bitPattern: Int64(bitPattern: x[rs1]).multipliedFullWidth(by: Int64(bitPattern: x[rs2])).high)
            case .mulhu: x[rd] = x[rs1].multipliedFullWidth(by: x[rs2]).high
            case .mulhsu:
                let a = Int64(bitPattern: x[rs1]), b = x[rs2]
                var hi = a.magnitude.multipliedFullWidth(by: b)
                if a < 0 {  // negate the 128-bit product
                    hi.low = ~hi.low &+ 1
                    hi.high = ~hi.high &+ (hi.low == 0 ? 1 : 0)
                }
                x[rd] = hi.high
            case .div:
                let a = Int64(bitPattern: x[rs1]), b = Int64(bitPattern: x[rs2])
                x[rd] = b == 0 ? ~0 : (a == .min && b == -1 ? x[rs1] : UInt64(bitPattern: a / b))
            case .divu: x[rd] = x[rs2] == 0 ? ~0 : x[rs1] / x[rs2]
            case .rem:
                let a = Int64(bitPattern: x[rs1]), b = Int64(bitPattern: x[rs2])
                x[rd] = b == 0 ? x[rs1] : (a == .min && b == -1 ? 0 : UInt64(bitPattern: a % b))
            case .remu: x[rd] = x[rs2] == 0 ? x[rs1] : x[rs1] % x[rs2]
            case .mulw: x[rd] = sext32(UInt32(truncatingIfNeeded: x[rs1] &* x[rs2]))
            case .divw:
                let a = Int32(truncatingIfNeeded: x[rs1]), b = Int32(truncatingIfNeeded: x[rs2])
                x[rd] = b == 0 ? ~0 : UInt64(bitPattern: Int64(a == .min && b == -1 ? a : a / b))
            case .divuw:
                let a = UInt32(truncatingIfNeeded: x[rs1]), b = UInt32(truncatingIfNeeded: x[rs2])
                x[rd] = b == 0 ? ~0 : sext32(a / b)
            case .remw:
                let a = Int32(truncatingIfNeeded: x[rs1]), b = Int32(truncatingIfNeeded: x[rs2])
                x[rd] = UInt64(bitPattern: Int64(b == 0 ? a : (a == .min && b == -1 ? 0 : a % b)))
            case .remuw:
                let a = UInt32(truncatingIfNeeded: x[rs1]), b = UInt32(truncatingIfNeeded: x[rs2])
                x[rd] = sext32(b == 0 ? a : a % b)

            case .jal:
                let here = base &+ UInt64(op.pcOffset)
                x[rd] = here &+ UInt64(op.extra)
                nextPC = here &+ imm
            case .jalr:
                let target = (x[rs1] &+ imm) & ~1
                x[rd] = base &+ UInt64(op.pcOffset) &+ UInt64(op.extra)
                nextPC = target
            case .beq: if x[rs1] == x[rs2] { nextPC = base &+ UInt64(op.pcOffset) &+ imm }
            case .bne: if x[rs1] != x[rs2] { nextPC = base &+ UInt64(op.pcOffset) &+ imm }
            case .blt: if Int64(bitPattern: x[rs1]) < Int64(bitPattern: x[rs2]) { nextPC = base &+ UInt64(op.pcOffset) &+ imm }
            case .bge: if Int64(bitPattern: x[rs1]) >= Int64(bitPattern: x[rs2]) { nextPC = base &+ UInt64(op.pcOffset) &+ imm }
            case .bltu: if x[rs1] < x[rs2] { nextPC = base &+ UInt64(op.pcOffset) &+ imm }
            case .bgeu: if x[rs1] >= x[rs2] { nextPC = base &+ UInt64(op.pcOffset) &+ imm }

            case .lb:
                guard let v = load(x[rs1] &+ imm, tlb, Int8.self) else { return done &+ raiseAt(ops, i) }
                x[rd] = UInt64(bitPattern: Int64(v))
            case .lh:
                guard let v = load(x[rs1] &+ imm, tlb, Int16.self) else { return done &+ raiseAt(ops, i) }
                x[rd] = UInt64(bitPattern: Int64(v))
            case .lw:
                guard let v = load(x[rs1] &+ imm, tlb, Int32.self) else { return done &+ raiseAt(ops, i) }
                x[rd] = UInt64(bitPattern: Int64(v))
            case .ld:
                guard let v = load(x[rs1] &+ imm, tlb, UInt64.self) else { return done &+ raiseAt(ops, i) }
                x[rd] = v
            case .lbu:
                guard let v = load(x[rs1] &+ imm, tlb, UInt8.self) else { return done &+ raiseAt(ops, i) }
                x[rd] = UInt64(v)
            case .lhu:
                guard let v = load(x[rs1] &+ imm, tlb, UInt16.self) else { return done &+ raiseAt(ops, i) }
                x[rd] = UInt64(v)
            case .lwu:
                guard let v = load(x[rs1] &+ imm, tlb, UInt32.self) else { return done &+ raiseAt(ops, i) }
                x[rd] = UInt64(v)
            case .sb:
                guard store(x[rs1] &+ imm, UInt8(truncatingIfNeeded: x[rs2]), tlb) else { return done &+ raiseAt(ops, i) }
            case .sh:
                guard store(x[rs1] &+ imm, UInt16(truncatingIfNeeded: x[rs2]), tlb) else { return done &+ raiseAt(ops, i) }
            case .sw:
                guard store(x[rs1] &+ imm, UInt32(truncatingIfNeeded: x[rs2]), tlb) else { return done &+ raiseAt(ops, i) }
            case .sd:
                guard store(x[rs1] &+ imm, x[rs2], tlb) else { return done &+ raiseAt(ops, i) }
            case .flw:
                guard fpAllowed else { return done &+ illegalAt(ops, i) }
                guard let v = load(x[rs1] &+ imm, tlb, UInt32.self) else { return done &+ raiseAt(ops, i) }
                f[rd] = 0xffff_ffff_0000_0000 | UInt64(v); markFPDirty()
            case .fld:
                guard fpAllowed else { return done &+ illegalAt(ops, i) }
                guard let v = load(x[rs1] &+ imm, tlb, UInt64.self) else { return done &+ raiseAt(ops, i) }
                f[rd] = v; markFPDirty()
            case .fsw:
                guard fpAllowed else { return done &+ illegalAt(ops, i) }
                guard store(x[rs1] &+ imm, UInt32(truncatingIfNeeded: f[rs2]), tlb) else { return done &+ raiseAt(ops, i) }
            case .fsd:
                guard fpAllowed else { return done &+ illegalAt(ops, i) }
                guard store(x[rs1] &+ imm, f[rs2], tlb) else { return done &+ raiseAt(ops, i) }

            case .lrw, .lrd, .scw, .scd, .amow, .amod:
                guard executeAtomic(op) else { return done &+ raiseAt(ops, i) }

            case .fencei:
                chainable = false  // stores already invalidate decoded code (see BlockCache)
                cache.applyForeignInvalidations()  // and other threads' stores, queued (hart threads)
            case .ecall:
                pendingCause = 8 + UInt64(privilege.rawValue); pendingTval = 0
                return done &+ raiseAt(ops, i)
            case .ebreak:
                pendingCause = 3; pendingTval = base &+ UInt64(op.pcOffset)
                return done &+ raiseAt(ops, i)
            case .mret:
                guard executeMRET() else { return done &+ illegalAt(ops, i) }
                return done &+ i &+ 1
            case .sret:
                guard executeSRET() else { return done &+ illegalAt(ops, i) }
                return done &+ i &+ 1
            case .wfi:
                if privilege == .user || (privilege == .supervisor && csr.mstatus & MStatus.tw != 0) {
                    return done &+ illegalAt(ops, i)
                }
                if !hasWakeupInterrupt { waitingForInterrupt = true }
                chainable = false
            case .sfenceVma:
                if privilege == .user || (privilege == .supervisor && csr.mstatus & MStatus.tvm != 0) {
                    return done &+ illegalAt(ops, i)
                }
                fenceTLB(address: op.rs1 == 0 ? nil : x[rs1])
                chainable = false
            case .csr:
                chainable = false  // may change privilege, translation or interrupt enables
                retiredInBlock = UInt64(done &+ i)
                let ok = executeCSR(op)
                retiredInBlock = 0
                guard ok else { return done &+ raiseAt(ops, i) }
            case .illegal:
                pendingCause = 2; pendingTval = imm & 0xffff_ffff
                return done &+ raiseAt(ops, i)
            // The hot double-precision operations are executed here; the rest go through executeFloat.
            case .faddD, .fsubD, .fmulD, .fdivD:
                guard fpAllowed, let rm = roundingMode(op.extra) else { return done &+ illegalAt(ops, i) }
                var fl = UInt32(truncatingIfNeeded: csr.fflags)
                let a = f[rs1], b = f[rs2]
                switch op.op {
                case .faddD: f[rd] = RVFloat.add_d(a, b, rm, &fl)
                case .fsubD: f[rd] = RVFloat.sub_d(a, b, rm, &fl)
                case .fmulD: f[rd] = RVFloat.mul_d(a, b, rm, &fl)
                default: f[rd] = RVFloat.div_d(a, b, rm, &fl)
                }
                csr.fflags = UInt64(fl)
                csr.mstatus |= MStatus.fsDirty
            case .fmaddD, .fmsubD, .fnmsubD, .fnmaddD:
                guard fpAllowed, let rm = roundingMode(op.extra) else { return done &+ illegalAt(ops, i) }
                var fl = UInt32(truncatingIfNeeded: csr.fflags)
                let a = f[rs1], b = f[rs2], c = f[Int(op.rs3)]
                switch op.op {
                case .fmaddD: f[rd] = RVFloat.madd_d(a, b, c, rm, &fl)
                case .fmsubD: f[rd] = RVFloat.msub_d(a, b, c, rm, &fl)
                case .fnmsubD: f[rd] = RVFloat.nmsub_d(a, b, c, rm, &fl)
                default: f[rd] = RVFloat.nmadd_d(a, b, c, rm, &fl)
                }
                csr.fflags = UInt64(fl)
                csr.mstatus |= MStatus.fsDirty
            case .fsgnjD, .fsgnjnD, .fsgnjxD:
                guard fpAllowed else { return done &+ illegalAt(ops, i) }
                let a = f[rs1], b = f[rs2]
                let sign: UInt64 = op.op == .fsgnjD ? b : (op.op == .fsgnjnD ? ~b : a ^ b)
                f[rd] = (a & ~(1 << 63)) | (sign & (1 << 63))
                csr.mstatus |= MStatus.fsDirty
            default:
                guard executeFloat(op) else { return done &+ raiseAt(ops, i) }
            }
            i &+= 1
        }
        pc = nextPC
        done &+= count
        // Chain to the next block if nothing needs the run loop's attention.
        guard chainable, done < chainBudget, !waitingForInterrupt else { return done }
        let e = fetchTLB[Int(truncatingIfNeeded: (nextPC >> 12) & UInt64(TLB.entries - 1))]
        guard e.tag == (nextPC & ~0xfff) | readGeneration else { return done }
        let pa = nextPC &+ e.addend
        let entry = cache.table[BlockCache.slot(pa)]
        guard entry.paddr == pa, Int(entry.count) <= chainBudget &- done,
              (csr.mip | wires.pins[hartID]) & csr.mie == 0, codeEpoch.pointee == seenCodeEpoch,
              !tlbFlushRequest.load(ordering: .relaxed) else { return done }
        ops = cache.pool + Int(entry.start)
        count = Int(entry.count)
        base = nextPC
        blockPC = base
        nextPC = base &+ UInt64(entry.byteLength)
        }
    }

    /// The rounding mode of an FP micro-op (7 = dynamic, from frm); nil if reserved.
    @inline(__always)
    func roundingMode(_ extra: UInt8) -> UInt32? {
        let rm = extra == 7 ? UInt32(truncatingIfNeeded: csr.frm) : UInt32(extra)
        return rm <= 4 ? rm : nil
    }

    @inline(never)
    func illegalAt(_ ops: UnsafeMutablePointer<MicroOp>, _ i: Int) -> Int {
        pendingCause = 2
        pendingTval = 0
        return raiseAt(ops, i)
    }

    /// LR/SC and AMOs, with host atomics so that they stay atomic when harts run on several host threads
    /// (user mode). SC succeeds when the reservation is held and memory still holds the value LR read
    /// (a compare-and-swap, as QEMU does); a hart switch or trap may drop the reservation, which the ISA allows.
    func executeAtomic(_ op: MicroOp) -> Bool {
        let isWord = op.op == .lrw || op.op == .scw || op.op == .amow
        let size = isWord ? 4 : 8
        let va = x[Int(op.rs1)]
        let isLR = op.op == .lrw || op.op == .lrd
        guard let pa = atomicAddress(va, size: size, isLoadReserved: isLR) else { return false }
        let host = ramHost + Int(pa - ramBase)
        let rd = Int(op.rd)
        switch op.op {
        case .lrw:
            let v = UnsafeAtomic<UInt32>(at: host.assumingMemoryBound(to: UInt32.AtomicRepresentation.self)).load(ordering: .acquiring)
            x[rd] = sext32(v); reservation = pa; reservationValue = UInt64(v)
        case .lrd:
            let v = UnsafeAtomic<UInt64>(at: host.assumingMemoryBound(to: UInt64.AtomicRepresentation.self)).load(ordering: .acquiring)
            x[rd] = v; reservation = pa; reservationValue = v
        case .scw, .scd:
            var ok = false
            if reservation == pa {
                if isWord {
                    let a = UnsafeAtomic<UInt32>(at: host.assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
                    ok = a.compareExchange(expected: UInt32(truncatingIfNeeded: reservationValue),
                                           desired: UInt32(truncatingIfNeeded: x[Int(op.rs2)]), ordering: .acquiringAndReleasing).exchanged
                } else {
                    let a = UnsafeAtomic<UInt64>(at: host.assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
                    ok = a.compareExchange(expected: reservationValue, desired: x[Int(op.rs2)], ordering: .acquiringAndReleasing).exchanged
                }
                if ok { ram.noteWrite(pa, length: UInt64(size)) }
            }
            x[rd] = ok ? 0 : 1
            reservation = nil
        default:
            let kind = AMOKind(rawValue: op.extra) ?? .add
            let src = x[Int(op.rs2)]
            if isWord {
                let a = UnsafeAtomic<UInt32>(at: host.assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
                let b = UInt32(truncatingIfNeeded: src)
                let old: UInt32
                switch kind {
                case .add: old = a.loadThenWrappingIncrement(by: b, ordering: .acquiringAndReleasing)
                case .swap: old = a.exchange(b, ordering: .acquiringAndReleasing)
                case .xor: old = a.loadThenBitwiseXor(with: b, ordering: .acquiringAndReleasing)
                case .or: old = a.loadThenBitwiseOr(with: b, ordering: .acquiringAndReleasing)
                case .and: old = a.loadThenBitwiseAnd(with: b, ordering: .acquiringAndReleasing)
                case .min, .max, .minu, .maxu:
                    var current = a.load(ordering: .relaxed)
                    while true {
                        let new: UInt32
                        switch kind {
                        case .min: new = Int32(bitPattern: current) < Int32(bitPattern: b) ? current : b
                        case .max: new = Int32(bitPattern: current) > Int32(bitPattern: b) ? current : b
                        case .minu: new = min(current, b)
                        default: new = max(current, b)
                        }
                        let r = a.compareExchange(expected: current, desired: new, ordering: .acquiringAndReleasing)
                        if r.exchanged { break }
                        current = r.original
                    }
                    old = current
                }
                x[rd] = sext32(old)
            } else {
                let a = UnsafeAtomic<UInt64>(at: host.assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
                let old: UInt64
                switch kind {
                case .add: old = a.loadThenWrappingIncrement(by: src, ordering: .acquiringAndReleasing)
                case .swap: old = a.exchange(src, ordering: .acquiringAndReleasing)
                case .xor: old = a.loadThenBitwiseXor(with: src, ordering: .acquiringAndReleasing)
                case .or: old = a.loadThenBitwiseOr(with: src, ordering: .acquiringAndReleasing)
                case .and: old = a.loadThenBitwiseAnd(with: src, ordering: .acquiringAndReleasing)
                case .min, .max, .minu, .maxu:
                    var current = a.load(ordering: .relaxed)
                    while true {
                        let new: UInt64
                        switch kind {
                        case .min: new = Int64(bitPattern: current) < Int64(bitPattern: src) ? current : src
                        case .max: new = Int64(bitPattern: current) > Int64(bitPattern: src) ? current : src
                        case .minu: new = min(current, src)
                        default: new = max(current, src)
                        }
                        let r = a.compareExchange(expected: current, desired: new, ordering: .acquiringAndReleasing)
                        if r.exchanged { break }
                        current = r.original
                    }
                    old = current
                }
                x[rd] = old
            }
            ram.noteWrite(pa, length: UInt64(size))
        }
        return true
    }
}

@inline(__always) func sext32(_ v: UInt32) -> UInt64 { UInt64(bitPattern: Int64(Int32(bitPattern: v))) }
