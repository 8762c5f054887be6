import RivetJIT

/// Compiles one decoded block (its micro-ops, as the interpreter runs them) to x86-64.
///
/// Register use: rbx holds the hart's register frame for the whole run (HartFrame.swift), so guest register n
/// is `[rbx + 8n]`; rax, rcx, rdx, rsi, rdi are scratch. Guest registers live in the frame, not in host
/// registers, so a call out to Swift needs no spilling and an exception leaves the frame exact.
///
/// What is compiled inline: integer and M-extension arithmetic, branches and jumps, loads and stores through an
/// inline software-TLB check. Everything else (floating point, atomics, CSRs, system instructions, TLB misses)
/// calls the interpreter for that one instruction (`translatedCallout`), which is the reference for its
/// semantics, its exceptions and its side effects. A callout that traps ends the block with the trap taken; a
/// block's last instruction, if it is a system instruction, always hands control back to the run loop.
struct BlockCompiler {
    private var a = X86Assembler()
    private let ops: UnsafeMutablePointer<MicroOp>
    private let count: Int
    private let byteLength: Int
    private let stubs: TranslatorStubs
    /// rel32 fields that jump to the shared stubs, patched once the code's address is known.
    private(set) var externalJumps: [(field: Int, target: UInt)] = []
    /// Out-of-line TLB-miss paths: (entry label, resume label, op index).
    private var slowPaths: [(entry: X86Label, resume: X86Label, index: Int)] = []
    /// One exit per op index that can trap.
    private var trapExits: [(label: X86Label, index: Int)] = []

    init(ops: UnsafeMutablePointer<MicroOp>, count: Int, byteLength: Int, stubs: TranslatorStubs) {
        self.ops = ops
        self.count = count
        self.byteLength = byteLength
        self.stubs = stubs
    }

    // MARK: Operands

    @inline(__always) private func x(_ r: UInt8) -> X86Memory { X86Memory(.rbx, Int32(FrameSlot.x + Int(r)) * 8) }
    @inline(__always) private func slot(_ s: Int) -> X86Memory { X86Memory(.rbx, FrameSlot.offset(s)) }

    private mutating func jumpExternal(_ target: UInt) {
        a.jump(displacement: 0)
        externalJumps.append((a.offset - 4, target))
    }

    /// `reg = value` for any 64-bit value.
    private mutating func loadImmediate(_ reg: X86Register, _ value: Int64) {
        a.mov(reg, immediate: UInt64(bitPattern: value))
    }

    /// `reg op= imm` with an immediate of any size.
    private mutating func aluImmediate(_ operation: X86ALUOperation, _ reg: X86Register, _ imm: Int64, width: X86Width = .bits64) {
        if let small = Int32(exactly: imm) {
            a.alu(operation, reg, immediate: small, width: width)
        } else {
            loadImmediate(.rcx, imm)
            a.alu(operation, reg, .rcx, width: width)
        }
    }

    // MARK: The block

    /// Emits the whole block; returns the code and the external jumps to patch.
    mutating func compile() -> [UInt8] {
        var i = 0
        var ended = false
        while i < count {
            let op = ops[i]
            if emitControlTransfer(op) {
                ended = true
                break
            }
            if !emitInline(op, index: i) {
                if op.op.endsBlock {
                    emitFinalCallout(index: i)
                    ended = true
                    break
                }
                emitCallout(index: i)
            }
            i += 1
        }
        if !ended {
            // Fell off the end (the block was cut at its size limit or a page end, or ended in a fence).
            a.mov(.rax, X86Memory(.rbx, FrameSlot.offset(FrameSlot.blockPC)))
            a.lea(.rax, X86Memory(.rax, Int32(byteLength)))
            emitBlockEnd()
        }
        emitOutOfLinePaths()
        return a.finish()
    }

    /// rax holds the next pc: count the block as retired and chain through the dispatcher.
    private mutating func emitBlockEnd() {
        a.alu(.add, slot(FrameSlot.retired), immediate: Int32(count))
        a.alu(.sub, slot(FrameSlot.remaining), immediate: Int32(count))
        jumpExternal(stubs.dispatch)
    }

    private mutating func emitOutOfLinePaths() {
        for path in slowPaths {
            a.bind(path.entry)
            emitCallInterpreter(index: path.index)
            a.test(.rax, .rax)
            a.jump(if: .equal, to: trapLabel(path.index))
            a.jump(to: path.resume)
        }
        slowPaths.removeAll()
        for exit in trapExits {
            a.bind(exit.label)
            if exit.index > 0 { a.alu(.add, slot(FrameSlot.retired), immediate: Int32(exit.index)) }
            a.store(slot(FrameSlot.exitKind), immediate: Int32(TranslatedExit.pcSet.rawValue))
            jumpExternal(stubs.exit)
        }
    }

    private mutating func trapLabel(_ index: Int) -> X86Label {
        if let existing = trapExits.first(where: { $0.index == index }) { return existing.label }
        let label = a.makeLabel()
        trapExits.append((label, index))
        return label
    }

    // MARK: Calls into the interpreter

    /// Calls `translatedCallout(hart, op, index, byteLength)`; rax = instructions retired (0 after a trap).
    private mutating func emitCallInterpreter(index: Int) {
        a.mov(.rdi, slot(FrameSlot.hart))
        a.mov(.rsi, immediate: UInt64(UInt(bitPattern: ops + index)))
        a.mov(.rdx, immediate: UInt64(index))
        a.mov(.rcx, immediate: UInt64(byteLength))
        a.mov(.rax, immediate: UInt64(stubs.callout))
        a.call(.rax)
    }

    /// An instruction in the middle of the block run by the interpreter: continue unless it trapped.
    private mutating func emitCallout(index: Int) {
        emitCallInterpreter(index: index)
        a.test(.rax, .rax)
        a.jump(if: .equal, to: trapLabel(index))
    }

    /// A system instruction that ends the block: the interpreter runs it and sets pc; back to the run loop.
    private mutating func emitFinalCallout(index: Int) {
        emitCallInterpreter(index: index)
        if index > 0 { a.alu(.add, .rax, immediate: Int32(index)) }
        a.alu(.add, slot(FrameSlot.retired), .rax)
        a.store(slot(FrameSlot.exitKind), immediate: Int32(TranslatedExit.pcSet.rawValue))
        jumpExternal(stubs.exit)
    }

    // MARK: Control transfer (always the block's last op)

    private mutating func emitControlTransfer(_ op: MicroOp) -> Bool {
        let here = Int64(op.pcOffset)
        let condition: X86Condition
        switch op.op {
        case .jal:
            a.mov(.rax, slot(FrameSlot.blockPC))
            a.lea(.rcx, X86Memory(.rax, Int32(here + Int64(op.extra))))
            a.store(x(op.rd), .rcx, bytes: 8)
            a.lea(.rax, X86Memory(.rax, Int32(here + op.imm)))
            emitBlockEnd()
            return true
        case .jalr:
            a.mov(.rcx, x(op.rs1))
            aluImmediateRCXSafe(op.imm)
            a.alu(.and, .rdx, immediate: -2)
            a.mov(.rax, slot(FrameSlot.blockPC))
            a.lea(.rcx, X86Memory(.rax, Int32(here + Int64(op.extra))))
            a.store(x(op.rd), .rcx, bytes: 8)
            a.mov(.rax, .rdx)
            emitBlockEnd()
            return true
        case .beq: condition = .equal
        case .bne: condition = .notEqual
        case .blt: condition = .less
        case .bge: condition = .greaterOrEqual
        case .bltu: condition = .below
        case .bgeu: condition = .aboveOrEqual
        default: return false
        }
        a.mov(.rax, x(op.rs1))
        a.alu(.cmp, .rax, x(op.rs2))
        // mov and lea leave the flags alone.
        a.mov(.rax, slot(FrameSlot.blockPC))
        a.lea(.rcx, X86Memory(.rax, Int32(here + op.imm)))
        a.lea(.rax, X86Memory(.rax, Int32(byteLength)))
        a.cmov(condition, .rax, .rcx)
        emitBlockEnd()
        return true
    }

    /// rdx = rcx + imm (jalr's target before the low bit is cleared).
    private mutating func aluImmediateRCXSafe(_ imm: Int64) {
        if let small = Int32(exactly: imm) {
            a.lea(.rdx, X86Memory(.rcx, small))
        } else {
            loadImmediate(.rdx, imm)
            a.add(.rdx, .rcx)
        }
    }

    // MARK: Inline operations

    /// Emits `op` inline; false if it must go to the interpreter.
    private mutating func emitInline(_ op: MicroOp, index i: Int) -> Bool {
        let rd = x(op.rd), rs1 = x(op.rs1), rs2 = x(op.rs2)
        switch op.op {
        case .nop: break
        case .fence: a.mfence()  // orders earlier stores before later loads (x86-64 is otherwise TSO)
        case .lui:
            loadImmediate(.rax, op.imm)
            a.store(rd, .rax, bytes: 8)
        case .auipc:
            a.mov(.rax, slot(FrameSlot.blockPC))
            loadImmediate(.rcx, Int64(op.pcOffset) &+ op.imm)
            a.add(.rax, .rcx)
            a.store(rd, .rax, bytes: 8)
        case .addi, .xori, .ori, .andi:
            a.mov(.rax, rs1)
            let operation: X86ALUOperation = op.op == .addi ? .add : op.op == .xori ? .xor : op.op == .ori ? .or : .and
            aluImmediate(operation, .rax, op.imm)
            a.store(rd, .rax, bytes: 8)
        case .slti, .sltiu:
            a.mov(.rax, rs1)
            aluImmediate(.cmp, .rax, op.imm)
            a.set(op.op == .slti ? .less : .below, .rax)
            a.movzx(.rax, .rax, fromBytes: 1)
            a.store(rd, .rax, bytes: 8)
        case .slli, .srli, .srai:
            a.mov(.rax, rs1)
            a.shift(op.op == .slli ? .shl : op.op == .srli ? .shr : .sar, .rax, by: UInt8(op.imm & 63))
            a.store(rd, .rax, bytes: 8)
        case .addiw:
            a.mov(.rax, rs1)
            aluImmediate(.add, .rax, op.imm, width: .bits32)
            a.movsxd(.rax, .rax)
            a.store(rd, .rax, bytes: 8)
        case .slliw, .srliw, .sraiw:
            a.mov(.rax, rs1)
            a.shift(op.op == .slliw ? .shl : op.op == .srliw ? .shr : .sar, .rax, by: UInt8(op.imm & 31), width: .bits32)
            a.movsxd(.rax, .rax)
            a.store(rd, .rax, bytes: 8)
        case .add, .sub, .xor, .or, .and:
            a.mov(.rax, rs1)
            let operation: X86ALUOperation = op.op == .add ? .add : op.op == .sub ? .sub : op.op == .xor ? .xor : op.op == .or ? .or : .and
            a.alu(operation, .rax, rs2)
            a.store(rd, .rax, bytes: 8)
        case .addw, .subw:
            a.mov(.rax, rs1)
            a.alu(op.op == .addw ? .add : .sub, .rax, rs2, width: .bits32)
            a.movsxd(.rax, .rax)
            a.store(rd, .rax, bytes: 8)
        case .sll, .srl, .sra:
            a.mov(.rcx, rs2)
            a.mov(.rax, rs1)
            a.shiftByCL(op.op == .sll ? .shl : op.op == .srl ? .shr : .sar, .rax)
            a.store(rd, .rax, bytes: 8)
        case .sllw, .srlw, .sraw:
            a.mov(.rcx, rs2)
            a.mov(.rax, rs1)
            a.shiftByCL(op.op == .sllw ? .shl : op.op == .srlw ? .shr : .sar, .rax, width: .bits32)
            a.movsxd(.rax, .rax)
            a.store(rd, .rax, bytes: 8)
        case .slt, .sltu:
            a.mov(.rax, rs1)
            a.alu(.cmp, .rax, rs2)
            a.set(op.op == .slt ? .less : .below, .rax)
            a.movzx(.rax, .rax, fromBytes: 1)
            a.store(rd, .rax, bytes: 8)
        case .mul, .mulw:
            a.mov(.rax, rs1)
            a.mov(.rcx, rs2)
            if op.op == .mul {
                a.imul(.rax, .rcx)
            } else {
                a.imul(.rax, .rcx, width: .bits32)
                a.movsxd(.rax, .rax)
            }
            a.store(rd, .rax, bytes: 8)
        case .mulh, .mulhu:
            a.mov(.rax, rs1)
            a.mov(.rcx, rs2)
            if op.op == .mulh { a.imul(.rcx) } else { a.mul(.rcx) }
            a.store(rd, .rdx, bytes: 8)
        case .mulhsu:
            // high(signed a * unsigned b) = high(unsigned a * b) - (a < 0 ? b : 0)
            a.mov(.rax, rs1)
            a.mov(.rsi, rs2)
            a.mul(.rsi)
            a.mov(.rcx, rs1)
            a.shift(.sar, .rcx, by: 63)
            a.and(.rcx, .rsi)
            a.sub(.rdx, .rcx)
            a.store(rd, .rdx, bytes: 8)
        case .div: emitDivision(op, signed: true, remainder: false, width: .bits64)
        case .divu: emitDivision(op, signed: false, remainder: false, width: .bits64)
        case .rem: emitDivision(op, signed: true, remainder: true, width: .bits64)
        case .remu: emitDivision(op, signed: false, remainder: true, width: .bits64)
        case .divw: emitDivision(op, signed: true, remainder: false, width: .bits32)
        case .divuw: emitDivision(op, signed: false, remainder: false, width: .bits32)
        case .remw: emitDivision(op, signed: true, remainder: true, width: .bits32)
        case .remuw: emitDivision(op, signed: false, remainder: true, width: .bits32)
        case .lb: emitLoad(op, index: i, bytes: 1, signed: true)
        case .lh: emitLoad(op, index: i, bytes: 2, signed: true)
        case .lw: emitLoad(op, index: i, bytes: 4, signed: true)
        case .ld: emitLoad(op, index: i, bytes: 8, signed: false)
        case .lbu: emitLoad(op, index: i, bytes: 1, signed: false)
        case .lhu: emitLoad(op, index: i, bytes: 2, signed: false)
        case .lwu: emitLoad(op, index: i, bytes: 4, signed: false)
        case .sb: emitStore(op, index: i, bytes: 1)
        case .sh: emitStore(op, index: i, bytes: 2)
        case .sw: emitStore(op, index: i, bytes: 4)
        case .sd: emitStore(op, index: i, bytes: 8)
        default: return false
        }
        return true
    }

    /// RISC-V division: x86's div/idiv fault on a zero divisor and on INT_MIN / -1, where RISC-V defines the
    /// results (all ones or the dividend for a zero divisor; the dividend or zero for the overflow).
    private mutating func emitDivision(_ op: MicroOp, signed: Bool, remainder: Bool, width: X86Width) {
        let zero = a.makeLabel(), overflow = a.makeLabel(), done = a.makeLabel()
        a.mov(.rax, x(op.rs1))
        a.mov(.rcx, x(op.rs2))
        a.test(.rcx, .rcx, width: width)
        a.jump(if: .equal, to: zero)
        let normal = a.makeLabel()
        if signed {
            a.alu(.cmp, .rcx, immediate: -1, width: width)
            a.jump(if: .notEqual, to: normal)
            if width == .bits64 {
                a.mov(.rdx, immediate: 0x8000_0000_0000_0000)
                a.cmp(.rax, .rdx)
            } else {
                a.alu(.cmp, .rax, immediate: Int32.min, width: .bits32)
            }
            a.jump(if: .equal, to: overflow)
        }
        a.bind(normal)
        if signed {
            a.signExtendAccumulator(width: width)
            a.idiv(.rcx, width: width)
        } else {
            a.xor(.rdx, .rdx, width: .bits32)
            a.div(.rcx, width: width)
        }
        if remainder { a.mov(.rax, .rdx) }
        if width == .bits32 { a.movsxd(.rax, .rax) }
        a.jump(to: done)
        a.bind(zero)
        if remainder {
            if width == .bits32 { a.movsxd(.rax, .rax) }  // the dividend, sign-extended from 32 bits
        } else {
            a.mov(.rax, immediate: UInt64.max)
        }
        a.jump(to: done)
        a.bind(overflow)  // INT_MIN / -1: quotient INT_MIN (the dividend), remainder 0
        if remainder {
            a.xor(.rax, .rax, width: .bits32)
        } else if width == .bits32 {
            a.movsxd(.rax, .rax)
        }
        a.bind(done)
        a.store(x(op.rd), .rax, bytes: 8)
    }

    /// rsi = virtual address, rcx = this page's TLB entry (of the read set; the write set is 64 KiB above),
    /// rdx = the tag the entry must hold for an access of `size` bytes; then compares and jumps to a new slow
    /// path on a miss. Returns the slow path's resume label.
    private mutating func emitTLBCheck(_ op: MicroOp, index: Int, bytes size: Int, write: Bool) -> X86Label {
        a.mov(.rsi, x(op.rs1))
        if op.imm != 0 {
            if let small = Int32(exactly: op.imm) { a.lea(.rsi, X86Memory(.rsi, small)) } else {
                loadImmediate(.rcx, op.imm); a.add(.rsi, .rcx)
            }
        }
        a.mov(.rcx, .rsi)
        a.shift(.shr, .rcx, by: UInt8(TLB.bits))
        a.alu(.and, .rcx, immediate: Int32(TLB.entries - 1), width: .bits32)
        a.shift(.shl, .rcx, by: 4, width: .bits32)
        a.alu(.add, .rcx, slot(FrameSlot.dataTLB))
        a.mov(.rdx, .rsi)
        // The tag keeps the low address bits of a misaligned access, so it never matches (slow path).
        a.alu(.and, .rdx, immediate: Int32(-4096 | (size - 1)))
        a.alu(.or, .rdx, slot(write ? FrameSlot.writeGeneration : FrameSlot.readGeneration))
        let setOffset: Int32 = write ? Int32(TLB.entries * MemoryLayout<TLBEntry>.stride) : 0
        a.alu(.cmp, .rdx, X86Memory(.rcx, setOffset))
        let slow = a.makeLabel(), resume = a.makeLabel()
        a.jump(if: .notEqual, to: slow)
        a.alu(.add, .rsi, X86Memory(.rcx, setOffset + 8))  // + addend: the host address
        slowPaths.append((slow, resume, index))
        return resume
    }

    private mutating func emitLoad(_ op: MicroOp, index: Int, bytes size: Int, signed: Bool) {
        let resume = emitTLBCheck(op, index: index, bytes: size, write: false)
        a.load(.rax, X86Memory(.rsi), bytes: size, signed: signed)
        a.store(x(op.rd), .rax, bytes: 8)
        a.bind(resume)
    }

    private mutating func emitStore(_ op: MicroOp, index: Int, bytes size: Int) {
        let resume = emitTLBCheck(op, index: index, bytes: size, write: true)
        a.mov(.rax, x(op.rs2))
        a.store(X86Memory(.rsi), .rax, bytes: size)
        a.bind(resume)
    }
}
