#if canImport(Glibc)
import Glibc
#endif
import RivetJIT

/// Compiles one decoded block (its micro-ops, as the interpreter runs them) to x86-64.
///
/// Register use: rbx holds the hart's register frame for the whole run (HartFrame.swift), so guest register n
/// lives at `[rbx + 8n]`; rbp holds the block's virtual pc (set by the prologue, or the enter stub);
/// rax, rcx, rdx, rsi are scratch. Within a block, the guest registers it uses most
/// are cached in host registers (`RegisterCache`): loaded at first use, written back to the frame before
/// anything that reads the frame (a call into the interpreter) and at every exit. Between blocks the frame is
/// the only copy, so exceptions and exits always leave it exact.
///
/// What is compiled inline: integer and M-extension arithmetic, branches and jumps, loads and stores through an
/// inline software-TLB check. Everything else (floating point, atomics, CSRs, system instructions, TLB misses)
/// calls the interpreter for that one instruction (`translatedCallout`), which is the reference for its
/// semantics, its exceptions and its side effects. A callout that traps ends the block with the trap taken; a
/// block's last instruction, if it is a system instruction, always hands control back to the run loop.
struct BlockCompiler {
    /// One decoded block of the unit being compiled: the head block, then blocks its conditional branches fall
    /// through to (a superblock with side exits). `offset` is its distance in bytes from the head.
    struct Segment {
        var ops: UnsafeMutablePointer<MicroOp>
        var count: Int
        var byteLength: Int
        var offset: Int64
        /// The unit goes on to the next segment on this one's taken branch (the fall-through is the side exit).
        var continuesOnTaken = false
    }

    private var a = X86Assembler()
    private let segments: [Segment]
    /// The segment being emitted (`ops`, `count`, `byteLength`: its decoded block; rbp holds its pc).
    private var current = 0
    private var ops: UnsafeMutablePointer<MicroOp>
    private var count: Int
    private var byteLength: Int
    private let stubs: TranslatorStubs
    /// The head block's guest-physical address and its block-table slot.
    private let paddr: UInt64
    private let slotIndex: Int
    /// Where translations of other blocks are found (for direct links to blocks on the same page).
    private unowned(unsafe) let cache: BlockCache
    /// rel32 fields that jump to the shared stubs or to other blocks, patched once the code's address is known.
    private(set) var externalJumps: [(field: Int, target: UInt)] = []
    /// rel32 fields of direct exits to blocks on this page not compiled yet: (field, target paddr). They jump
    /// to the dispatcher until the target is compiled, and are then patched to jump to it.
    private(set) var pendingLinks: [(field: Int, target: UInt64)] = []
    /// Out-of-line TLB-miss paths, each with the register-cache state it must restore.
    private var slowPaths: [SlowPath] = []
    /// One exit per op that can trap, by segment and index (the frame is already written back when they are
    /// reached).
    private var trapExits: [(label: X86Label, segment: Int, index: Int)] = []
    /// Exits at the boundary between segments (budget spent or exit requested), with what to write back.
    private var boundaryExits: [(label: X86Label, writeBack: [WriteBack])] = []
    /// Taken side exits of a superblock or a loop, out of line so that the path staying in the unit falls
    /// through: the segment they leave from, what to write back, and the pc offset they go to.
    private var sideExits: [(label: X86Label, segment: Int, writeBack: [WriteBack], offset: Int64)] = []
    /// A cached register an exit or a call must store to the frame (sign-extending it first if `stale`).
    typealias WriteBack = (guest: UInt8, host: X86Register, stale: Bool)
    /// Where the code must start (a loop unit aligns its head to a fetch window).
    private(set) var codeAlignment = ExecutableMemory.alignment
    private static let loopHeadAlignment = 64
    /// Out-of-line exactness-checked copies of inline D operations (emitExactFloatPath).
    fileprivate var exactFloatPaths: [ExactFloatPath] = []

    fileprivate struct ExactFloatPath {
        var entry: X86Label
        var op: MicroOp
        var check: X86Label
        var slow: X86Label
    }
    /// rax holds this guest register's value, just stored to its frame slot by the instruction before (an
    /// uncached register): valid while nothing has been emitted since (`offset`) and no label bound.
    private var raxMirror: (guest: UInt8, offset: Int)? = nil
    /// Unchecked loads emitted (offset of the load instruction, its slow path), for UncheckedLoadTable.
    private var uncheckedLoadSites: [(load: Int, slow: X86Label)] = []
    /// Whether this unit's loads skip the TLB check (decided once, with room left in the table).
    private let uncheckedLoads: Bool
    private var registers: RegisterCache
    /// For uncached registers written by this unit: whether the frame holds a sign extension of 32 bits (so a
    /// bitwise op with a deferred-extension value need not complete it). Reset by calls that may write them.
    private var frameForms = [ValueForm](repeating: .full, count: 32)
    /// The chain budget (`remaining`) lives in rdi in all translated code: the enter stub loads it, the exit
    /// stub stores it, calls into the interpreter store it before and load it after. Counted down in the frame,
    /// each block's read-modify-write waited for the one before (store-to-load forwarding): a serial chain
    /// of several cycles per block that bounded branchy code with short blocks.
    static let counter = X86Register.rdi

    private struct SlowPath {
        var entry: X86Label
        var resume: X86Label
        var segment: Int
        var index: Int
        /// Cached registers to write back before the call, and to reload after it.
        var writeBack: [WriteBack]
        var reload: [(guest: UInt8, host: X86Register)]
    }

    private unowned(unsafe) let translator: Translator
    /// Loads and stores add the identity addend (BlockCache.identityAddressing).
    private var identityAddressing: Bool { cache.identityAddressing }

    init(segments: [Segment], paddr: UInt64, cache: BlockCache, translator: Translator) {
        precondition(!segments.isEmpty && segments[0].offset == 0)
        self.translator = translator
        let stubs = translator.stubs
        self.segments = segments
        ops = segments[0].ops
        count = segments[0].count
        byteLength = segments[0].byteLength
        self.paddr = paddr
        self.slotIndex = BlockCache.slot(paddr)
        self.cache = cache
        self.stubs = stubs
        registers = RegisterCache(segments: segments)
        uncheckedLoads = cache.identityAddressing && (cache.uncheckedLoads?.hasRoom ?? false)
    }

    /// The unchecked loads of the finished code: (load offset, slow path offset).
    var uncheckedLoadOffsets: [(load: Int, slow: Int)] {
        uncheckedLoadSites.map { ($0.load, a.offset(of: $0.slow)!) }
    }

    /// Makes segment `n` the one being emitted.
    private mutating func enter(segment n: Int) {
        current = n
        ops = segments[n].ops
        count = segments[n].count
        byteLength = segments[n].byteLength
    }

    /// The guest-physical address of the segment being emitted.
    private var blockPaddr: UInt64 { paddr &+ UInt64(bitPattern: segments[current].offset) }

    // MARK: Operands

    @inline(__always) private func frameX(_ r: UInt8) -> X86Memory { X86Memory(.frameBase, Int32(FrameSlot.x + Int(r)) * 8) }
    @inline(__always) private func slot(_ s: Int) -> X86Memory { X86Memory(.frameBase, FrameSlot.offset(s)) }

    private mutating func jumpExternal(_ target: UInt, condition: X86Condition? = nil) {
        if let condition { a.jump(if: condition, displacement: 0) } else { a.jump(displacement: 0) }
        externalJumps.append((a.offset - 4, target))
    }

    /// Binds a label: a join point, where rax may hold anything.
    private mutating func bindLabel(_ label: X86Label) {
        a.bind(label)
        raxMirror = nil
    }

    /// Whether rax still holds uncached guest `r` (stored by the instruction just before, nothing since).
    @inline(__always) private func raxHolds(_ r: UInt8) -> Bool {
        guard let m = raxMirror else { return false }
        return m.guest == r && m.offset == a.offset
    }

    /// The host register caching guest `r`, loading it first if this is its first use. Unless the reader uses
    /// only the low 32 bits (`lowHalf`), a value whose sign extension was deferred gets it now.
    private mutating func cachedForRead(_ r: UInt8, lowHalf: Bool = false) -> X86Register? {
        guard let i = registers.index(of: r) else { return nil }
        let h = registers.entries[i].host
        if !registers.entries[i].loaded {
            a.mov(h, frameX(r))
            registers.entries[i].loaded = true
            registers.entries[i].form = .full
        } else if !lowHalf && registers.entries[i].form == .stale {
            a.movsxd(h, h)
            registers.entries[i].form = .signExtended
        }
        return h
    }

    /// What is known of guest `r`'s value: in its host register, or for an uncached register, in the frame.
    private func form(_ r: UInt8) -> ValueForm {
        if r == 0 { return .signExtended }
        guard let i = registers.index(of: r) else { return frameForms[Int(r) & 31] }
        return registers.entries[i].loaded ? registers.entries[i].form : .full
    }

    /// The dirty cached registers, for an exit or a call to write back.
    private var dirtyEntries: [WriteBack] {
        registers.entries.filter(\.dirty).map { ($0.guest, $0.host, $0.form == .stale) }
    }

    /// Stores cached registers to the frame, sign-extending deferred ones in place first (the copies in host
    /// registers stay valid: a sign-extended value is also a valid stale one).
    private mutating func emitStores(_ list: [WriteBack]) {
        for r in list {
            if r.stale { a.movsxd(r.host, r.host) }
            a.store(frameX(r.guest), r.host, bytes: 8)
        }
    }

    /// dst = guest r (only its low 32 bits are right if `lowHalf` and its sign extension was deferred).
    private mutating func read(_ r: UInt8, into dst: X86Register, lowHalf: Bool = false) {
        if r == 0 {
            a.xor(dst, dst, width: .bits32)
        } else if let h = cachedForRead(r, lowHalf: lowHalf) {
            if h != dst { a.mov(dst, h) }
        } else if raxHolds(r) {
            if dst != .rax { a.mov(dst, .rax) }  // the value just stored: no store-to-load round trip
        } else {
            a.mov(dst, frameX(r))
        }
    }

    /// `dst op= guest r`, from its host register or straight from the frame.
    private mutating func alu(_ operation: X86ALUOperation, _ dst: X86Register, guest r: UInt8, width: X86Width = .bits64,
                              lowHalf: Bool = false) {
        if r != 0, let h = cachedForRead(r, lowHalf: lowHalf || width == .bits32) {
            a.alu(operation, dst, h, width: width)
        } else if r != 0 && raxHolds(r) {
            a.alu(operation, dst, .rax, width: width)
        } else {
            a.alu(operation, dst, frameX(r), width: width)  // x0 reads the frame's zero
        }
    }

    /// A register holding guest r for an instruction that only reads it (rcx if it is not cached).
    private mutating func readOnly(_ r: UInt8, scratch: X86Register, lowHalf: Bool = false) -> X86Register {
        if r != 0, let h = cachedForRead(r, lowHalf: lowHalf) { return h }
        if r != 0 && raxHolds(r) {
            if scratch != .rax { a.mov(scratch, .rax) }  // the caller may still write rax
            return scratch
        }
        read(r, into: scratch)
        return scratch
    }

    /// Where to compute a result for guest rd: its host register, unless that would clobber `avoid` (a source
    /// still to be read), else rax.
    private func destination(_ rd: UInt8, avoiding avoid: UInt8? = nil) -> X86Register {
        guard let i = registers.index(of: rd), rd != avoid || avoid == nil else { return .rax }
        return registers.entries[i].host
    }

    /// guest rd = src; `form` says what src holds (`.stale`: only its low 32 bits, the value being their sign
    /// extension, which is left for later when rd is cached in a host register).
    private mutating func write(_ rd: UInt8, from src: X86Register, form: ValueForm = .full) {
        if rd == 0 || rd >= 32 { return }  // x0 (rewritten to the sink, 32) discards writes
        if let i = registers.index(of: rd) {
            let h = registers.entries[i].host
            if h != src { a.mov(h, src) }
            registers.entries[i].loaded = true
            registers.entries[i].dirty = true
            registers.entries[i].form = form
        } else {
            if form == .stale { a.movsxd(src, src) }
            frameForms[Int(rd)] = form == .full ? .full : .signExtended
            a.store(frameX(rd), src, bytes: 8)
            if src == .rax { raxMirror = (rd, a.offset) }
        }
    }

    /// guest rd = guest rs, without a detour through rax when rd lives only in the frame.
    private mutating func emitMove(_ rd: UInt8, from rs: UInt8) {
        if registers.index(of: rd) != nil {
            let d = destination(rd)
            read(rs, into: d)
            write(rd, from: d)
        } else {
            write(rd, from: readOnly(rs, scratch: .rax))
        }
    }

    /// Stores every dirty cached register to the frame (before calls into Swift and at exits).
    private mutating func writeBackAll() {
        for i in registers.entries.indices where registers.entries[i].dirty {
            if registers.entries[i].form == .stale {
                a.movsxd(registers.entries[i].host, registers.entries[i].host)
                registers.entries[i].form = .signExtended
            }
            a.store(frameX(registers.entries[i].guest), registers.entries[i].host, bytes: 8)
            registers.entries[i].dirty = false
        }
    }

    /// Sign-extends every cached register whose extension was deferred (a loop's back edge: the head expects
    /// full values).
    private mutating func completeDeferredExtensions() {
        for i in registers.entries.indices where registers.entries[i].loaded && registers.entries[i].form == .stale {
            a.movsxd(registers.entries[i].host, registers.entries[i].host)
            registers.entries[i].form = .signExtended
        }
    }

    /// After a call: caller-saved host registers are gone, and the call may have written guest `rd`.
    private mutating func forgetAfterCall(rd: UInt8) {
        for i in registers.entries.indices {
            if registers.entries[i].host.isCallerSaved || registers.entries[i].guest == rd {
                registers.entries[i].loaded = false
            }
        }
        if rd < 32 { frameForms[Int(rd)] = .full }
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

    /// Emits the whole block; the caller installs it and patches `externalJumps`.
    mutating func compile() -> [UInt8] {
        if endsWithBranchToHead {
            var loop = self
            let sitesMark = translator.sitesUsed
            if let code = loop.compileLoop() {
                self = loop
                return code
            }
            translator.releaseSites(downTo: sitesMark)  // exits the abandoned attempt emitted
        }
        emitPrologue()
        var ended = false
        for n in segments.indices {
            enter(segment: n)
            if n > 0 { emitSegmentBoundary(inLoop: false) }
            for i in 0..<count {
                let op = ops[i]
                if n < segments.count - 1 && i == count - 1 {
                    emitBranchToNextSegment(op)
                    break
                }
                if emitControlTransfer(op) {
                    ended = true
                    break
                }
                if !emitInlineKeepingMirror(op, index: i) {
                    if op.op.endsBlock {
                        emitFinalCallout(index: i)
                        ended = true
                        break
                    }
                    emitCallout(index: i)
                }
            }
        }
        if !ended {
            // Fell off the end (the block was cut at its size limit or a page end, or ended in a fence).
            writeBackAll()
            emitRetire()
            emitDirectExit(offset: Int64(byteLength))
        }
        emitOutOfLinePaths()
        return a.finish()
    }

    /// The last segment ends with a conditional branch or a jump (jal x0) back to the head (a loop).
    private var endsWithBranchToHead: Bool {
        let lastSegment = segments[segments.count - 1]
        guard lastSegment.count > 0 else { return false }
        let last = lastSegment.ops[lastSegment.count - 1]
        guard branchCondition(last.op) != nil || last.op == .jal && (last.rd == 0 || last.rd >= 32) else { return false }
        return Int64(last.pcOffset) &+ last.imm == -lastSegment.offset
    }

    /// A loop whose instructions all run inline: its cached registers are loaded once, before the loop head,
    /// and stay in host registers across iterations (every register the loop writes counts as dirty
    /// throughout, so any exit writes it back). The back edge makes the prologue's decisions itself: the next
    /// iteration must fit in the budget and the exit-request word must be clear, else it leaves at the
    /// boundary with the frame written back, as a chained run would. Nil if some instruction needs a call into
    /// the interpreter (the unit is then compiled the ordinary way).
    private mutating func compileLoop() -> [UInt8]? {
        registers = RegisterCache(segments: segments, minimumUses: 1)
        emitPrologue()
        for i in registers.entries.indices {
            let e = registers.entries[i]
            a.mov(e.host, frameX(e.guest))
            registers.entries[i].loaded = true
            registers.entries[i].dirty = segments.contains { s in (0..<s.count).contains { s.ops[$0].rd == e.guest } }
        }
        let head = a.makeLabel()
        codeAlignment = BlockCompiler.loopHeadAlignment
        a.alignWithNops(to: BlockCompiler.loopHeadAlignment)
        bindLabel(head)
        for n in segments.indices {
            enter(segment: n)
            if n > 0 { emitSegmentBoundary(inLoop: true) }
            for i in 0..<(count - 1) {
                guard emitInlineKeepingMirror(ops[i], index: i) else { return nil }
            }
            if n < segments.count - 1 { emitBranchToNextSegment(ops[count - 1]) }
        }
        let leave = a.makeLabel()
        if ops[count - 1].op == .jal {
            emitRetire()  // j head: the back edge is unconditional
        } else {
            let condition = emitRetireAndCompare(ops[count - 1])
            a.jump(if: condition.opposite, to: sideExit(offset: Int64(byteLength)))
        }
        completeDeferredExtensions()  // the head expects full values
        let lastOffset = segments[current].offset
        if lastOffset != 0 { a.lea(.pcBase, X86Memory(.pcBase, Int32(-lastOffset))) }
        emitBudgetCompare(segments[0].count)
        a.jump(if: .less, to: leave)
        a.alu(.cmp, slot(FrameSlot.exitRequest), immediate: 0)
        a.jump(if: .equal, to: head)
        bindLabel(leave)
        writeBackAll()
        a.mov(.rax, .pcBase)
        jumpExternal(stubs.boundary)
        emitOutOfLinePaths()
        return a.finish()
    }

    /// The branch ending a segment that is not the last: the path to the next segment stays in the unit with
    /// the registers still cached (the fall-through, or the taken side for `continuesOnTaken`); the other one
    /// leaves it (writing back what is dirty). A jump (jal x0, in a loop) just goes on.
    private mutating func emitBranchToNextSegment(_ op: MicroOp) {
        if op.op == .jal {
            emitRetire()
            return
        }
        let condition = emitRetireAndCompare(op)
        if segments[current].continuesOnTaken {
            a.jump(if: condition.opposite, to: sideExit(offset: Int64(byteLength)))
        } else {
            a.jump(if: condition, to: sideExit(offset: Int64(op.pcOffset) &+ op.imm))
        }
    }

    /// An out-of-line exit from the current segment to its pc + `offset` that writes back what is dirty
    /// now (and the loop's counter): the code after the jump to it keeps using the register cache.
    private mutating func sideExit(offset: Int64) -> X86Label {
        let label = a.makeLabel()
        sideExits.append((label, current, dirtyEntries, offset))
        return label
    }

    /// Retires the segment and compares a conditional branch's operands; returns the condition to jump on
    /// (emitRetire's `sub` changes the flags, so it comes first).
    private mutating func emitRetireAndCompare(_ op: MicroOp) -> X86Condition {
        emitRetire()
        let lhs = readOnly(op.rs1, scratch: .rax)
        if op.rs2 == 0 { a.test(lhs, lhs) } else { alu(.cmp, lhs, guest: op.rs2) }
        return branchCondition(op.op)!
    }

    /// Entering the next segment (rbp still holds the previous one's pc): the checks a chained entry makes in
    /// its prologue, with an exit at the boundary that writes back what is dirty. Inside a loop the
    /// exit-request word is left to the back edge: an iteration is at most 128 instructions, so requests
    /// still wait only a bounded time.
    private mutating func emitSegmentBoundary(inLoop: Bool) {
        a.lea(.pcBase, X86Memory(.pcBase, Int32(segments[current].offset - segments[current - 1].offset)))
        let leave = a.makeLabel()
        emitBudgetCompare(count)
        a.jump(if: .less, to: leave)
        if !inLoop {
            a.alu(.cmp, slot(FrameSlot.exitRequest), immediate: 0)
            a.jump(if: .notEqual, to: leave)
        }
        boundaryExits.append((leave, dirtyEntries))
    }

    private func branchCondition(_ op: Op) -> X86Condition? {
        switch op {
        case .beq: return .equal
        case .bne: return .notEqual
        case .blt: return .less
        case .bge: return .greaterOrEqual
        case .bltu: return .below
        case .bgeu: return .aboveOrEqual
        default: return nil
        }
    }

    /// The checked entry other blocks chain to (rax = this block's virtual pc). It is exactly
    /// `Translator.prologueSize` bytes, so the run loop enters at the body right after it: the run loop has
    /// made these decisions itself. Leaves at the boundary when the next block does not fit in the budget or
    /// the hart's exit-request word is set (another thread asked for a TLB flush; an interrupt, a new code page
    /// or a callout asked for the run loop's attention): the interpreter's conditions for chaining, reduced to
    /// two compares. A translation that is dropped or replaced has its prologue overwritten with a jump to the
    /// dispatcher (`Translator.retire`), so links to it need no check here.
    private mutating func emitPrologue() {
        let start = a.offset
        a.alu(.cmp, BlockCompiler.counter, immediate: Int32(count))
        jumpExternal(stubs.boundary, condition: .less)
        a.alu(.cmp, slot(FrameSlot.exitRequest), immediate: 0)
        jumpExternal(stubs.boundary, condition: .notEqual)
        a.mov(.pcBase, .rax)  // for this block's own pc arithmetic (calls into the interpreter store it)
        precondition(a.offset - start == Translator.prologueSize, "translated block prologue has the wrong size")
    }

    /// Counts the block's instructions as retired (before the final compare: it changes the flags).
    private mutating func emitRetire() {
        a.alu(.sub, BlockCompiler.counter, immediate: Int32(count))
    }

    /// `remaining` compared with the instruction count of the block about to run (flags for `.less`).
    private mutating func emitBudgetCompare(_ blockCount: Int) {
        a.alu(.cmp, BlockCompiler.counter, immediate: Int32(blockCount))
    }

    /// Stores the loop's budget counter to the frame (before an exit or a call into the interpreter, which
    /// reads it for instret).
    private mutating func emitSpillCounter() {
        a.store(slot(FrameSlot.remaining), BlockCompiler.counter, bytes: 8)
    }

    /// Leaves for blockPC (rbp) + offset, with rax = that pc. A target on this block's page is a fixed physical
    /// address, so the exit jumps straight to its translation (or is linked to it once it exists); anything
    /// else goes through the dispatcher's lookup.
    private mutating func emitDirectExit(offset: Int64) {
        a.lea(.rax, X86Memory(.pcBase, Int32(offset)))
        let paddr = blockPaddr
        let pageOffset = Int64(paddr & 0xfff)
        let targetPageOffset = pageOffset + offset
        guard targetPageOffset >= 0 && targetPageOffset < 4096 else {
            emitIndirectExit()
            return
        }
        let target = UInt64(Int64(paddr) + offset)
        let targetSlot = BlockCache.slot(target)
        if cache.table[targetSlot].paddr == target, cache.codeTable[targetSlot] != 0 {
            jumpExternal(cache.codeTable[targetSlot])
        } else {
            jumpExternal(stubs.dispatch)
            pendingLinks.append((a.offset - 4, target))
        }
    }

    /// rax = the next pc, not known to be on this page (jalr, jumps to other pages): through this jump's own
    /// inline cache, else the dispatcher's lookup, which fills the cache.
    private mutating func emitIndirectExit() {
        guard let site = translator.allocateSite() else {
            jumpExternal(stubs.dispatch)
            return
        }
        a.movabs(.r8, UInt64(UInt(bitPattern: site)))
        a.alu(.cmp, .rax, X86Memory(.r8))
        jumpExternal(stubs.dispatchAndRemember, condition: .notEqual)
        a.mov(.rcx, slot(FrameSlot.readGeneration))
        a.alu(.xor, .rcx, slot(FrameSlot.fetchTLB))
        a.alu(.cmp, .rcx, X86Memory(.r8, 8))
        jumpExternal(stubs.dispatchAndRemember, condition: .notEqual)
        a.jump(X86Memory(.r8, 16))
    }

    private mutating func emitOutOfLinePaths() {
        for path in exactFloatPaths { emitExactFloatPath(path) }
        exactFloatPaths.removeAll()
        for path in slowPaths {
            bindLabel(path.entry)
            emitStores(path.writeBack)
            emitSpillCounter()
            enter(segment: path.segment)
            emitCallInterpreter(index: path.index)
            a.test(.rax, .rax)
            a.jump(if: .equal, to: trapLabel(path.index))
            for r in path.reload { a.mov(r.host, frameX(r.guest)) }
            a.mov(BlockCompiler.counter, slot(FrameSlot.remaining))  // the call clobbered it
            a.jump(to: path.resume)
        }
        slowPaths.removeAll()
        for exit in boundaryExits {
            bindLabel(exit.label)
            emitStores(exit.writeBack)
            a.mov(.rax, .pcBase)
            jumpExternal(stubs.boundary)
        }
        boundaryExits.removeAll()
        for exit in sideExits {
            bindLabel(exit.label)
            enter(segment: exit.segment)  // the exit's target is relative to its segment (rbp, blockPaddr)
            emitStores(exit.writeBack)
            emitDirectExit(offset: exit.offset)
        }
        sideExits.removeAll()
        for exit in trapExits {
            bindLabel(exit.label)
            // Reached after a call into the interpreter (which stored the counter and clobbered rdi).
            a.mov(BlockCompiler.counter, slot(FrameSlot.remaining))
            if exit.index > 0 { a.alu(.sub, BlockCompiler.counter, immediate: Int32(exit.index)) }
            a.store(slot(FrameSlot.exitKind), immediate: Int32(TranslatedExit.pcSet.rawValue))
            jumpExternal(stubs.exit)
        }
    }

    /// The exit for a trap at op `index` of the current segment.
    private mutating func trapLabel(_ index: Int) -> X86Label {
        if let existing = trapExits.first(where: { $0.segment == current && $0.index == index }) { return existing.label }
        let label = a.makeLabel()
        trapExits.append((label, current, index))
        return label
    }

    // MARK: Calls into the interpreter

    /// Calls `translatedCallout(hart, op, index, byteLength)`; rax = instructions retired (0 after a trap).
    private mutating func emitCallInterpreter(index: Int) {
        a.store(slot(FrameSlot.blockPC), .pcBase, bytes: 8)  // the segment's pc, for the op's pc and traps
        a.mov(.rdi, slot(FrameSlot.hart))
        a.mov(.rsi, immediate: UInt64(UInt(bitPattern: ops + index)))
        a.mov(.rdx, immediate: UInt64(index))
        a.mov(.rcx, immediate: UInt64(byteLength))
        a.mov(.rax, immediate: UInt64(stubs.callout))
        a.call(.rax)
    }

    /// An instruction in the middle of the block run by the interpreter: continue unless it trapped.
    private mutating func emitCallout(index: Int) {
        writeBackAll()
        emitSpillCounter()
        emitCallInterpreter(index: index)
        a.test(.rax, .rax)
        a.jump(if: .equal, to: trapLabel(index))
        a.mov(BlockCompiler.counter, slot(FrameSlot.remaining))
        forgetAfterCall(rd: ops[index].rd)
    }

    /// A system instruction that ends the block: the interpreter runs it and sets pc; back to the run loop.
    private mutating func emitFinalCallout(index: Int) {
        writeBackAll()
        emitSpillCounter()
        emitCallInterpreter(index: index)
        if index > 0 { a.alu(.add, .rax, immediate: Int32(index)) }
        a.mov(BlockCompiler.counter, slot(FrameSlot.remaining))
        a.alu(.sub, BlockCompiler.counter, .rax)
        a.store(slot(FrameSlot.exitKind), immediate: Int32(TranslatedExit.pcSet.rawValue))
        jumpExternal(stubs.exit)
    }

    // MARK: Control transfer (always the block's last op)

    private mutating func emitControlTransfer(_ op: MicroOp) -> Bool {
        let here = Int64(op.pcOffset)
        switch op.op {
        case .jal:
            a.lea(.rcx, X86Memory(.pcBase, Int32(here + Int64(op.extra))))
            write(op.rd, from: .rcx)
            writeBackAll()
            emitRetire()
            emitDirectExit(offset: here + op.imm)
            return true
        case .jalr:
            let base = readOnly(op.rs1, scratch: .rcx)
            if let small = Int32(exactly: op.imm) {
                a.lea(.rdx, X86Memory(base, small))
            } else {
                loadImmediate(.rdx, op.imm)
                a.add(.rdx, base)
            }
            a.alu(.and, .rdx, immediate: -2)
            a.lea(.rcx, X86Memory(.pcBase, Int32(here + Int64(op.extra))))
            write(op.rd, from: .rcx)
            writeBackAll()
            a.mov(.rax, .rdx)
            emitRetire()
            emitIndirectExit()
            return true
        default:
            guard branchCondition(op.op) != nil else { return false }
        }
        writeBackAll()
        let condition = emitRetireAndCompare(op)
        if emitConditionalDirectExit(offset: here + op.imm, if: condition) {
            emitDirectExit(offset: Int64(byteLength))
            return true
        }
        let taken = a.makeLabel()
        a.jump(if: condition, to: taken)
        emitDirectExit(offset: Int64(byteLength))
        bindLabel(taken)
        emitDirectExit(offset: here + op.imm)
        return true
    }

    /// A taken branch to a target on this block's page as one conditional jump to its translation (or to the
    /// dispatcher until it is linked); lea leaves the compare's flags alone. False, with nothing emitted,
    /// when the target is on another page (it needs the indirect exit's lookup).
    private mutating func emitConditionalDirectExit(offset: Int64, if condition: X86Condition) -> Bool {
        let paddr = blockPaddr
        let targetPageOffset = Int64(paddr & 0xfff) + offset
        guard targetPageOffset >= 0 && targetPageOffset < 4096, let displacement = Int32(exactly: offset) else { return false }
        a.lea(.rax, X86Memory(.pcBase, displacement))
        let target = UInt64(Int64(paddr) + offset)
        let targetSlot = BlockCache.slot(target)
        if cache.table[targetSlot].paddr == target, cache.codeTable[targetSlot] != 0 {
            jumpExternal(cache.codeTable[targetSlot], condition: condition)
        } else {
            jumpExternal(stubs.dispatch, condition: condition)
            pendingLinks.append((a.offset - 4, target))
        }
        return true
    }

    // MARK: Inline operations

    /// emitInline, keeping rax's mirror of an uncached register across an op that cannot write rax (an
    /// integer op whose destination is cached: its result goes to that host register, its sources are read
    /// into it or used as operands).
    private mutating func emitInlineKeepingMirror(_ op: MicroOp, index i: Int) -> Bool {
        let before = raxMirror, start = a.offset
        let emitted = emitInline(op, index: i)
        // Only a mirror that was still valid when the op began, and that the op did not replace.
        if emitted, let m = before, m.offset == start, raxMirror?.guest == m.guest, raxMirror?.offset == m.offset,
           leavesRaxAlone(op) {
            raxMirror = (m.guest, a.offset)
        }
        return emitted
    }

    /// Whether the inline code for `op` never writes rax (see emitInlineKeepingMirror).
    private func leavesRaxAlone(_ op: MicroOp) -> Bool {
        guard op.rd != 0, op.rd < 32, registers.index(of: op.rd) != nil else { return false }
        switch op.op {
        case .lui, .auipc, .addi, .xori, .ori, .andi, .slli, .srli, .srai, .addiw, .slliw, .srliw, .sraiw,
             .sll, .srl, .sra, .sllw, .srlw, .sraw:
            return true
        case .add, .sub, .xor, .or, .and, .addw, .subw:
            // destination() picks rax when rd is also the second source (unless the op works in place).
            return op.rd != op.rs2 || op.rs1 == op.rs2 || updatesSecondSourceInPlace(op) && op.op != .sub && op.op != .subw
        default:
            return false
        }
    }

    /// Emits `op` inline; false if it must go to the interpreter.
    private mutating func emitInline(_ op: MicroOp, index i: Int) -> Bool {
        switch op.op {
        case .nop: break
        case .fence: a.mfence()  // orders earlier stores before later loads (x86-64 is otherwise TSO)
        case .lui:
            let d = destination(op.rd)
            loadImmediate(d, op.imm)
            write(op.rd, from: d)
        case .auipc:
            let d = destination(op.rd)
            if let offset = Int32(exactly: Int64(op.pcOffset) &+ op.imm) {
                a.lea(d, X86Memory(.pcBase, offset))
            } else {
                a.mov(d, .pcBase)
                aluImmediate(.add, d, Int64(op.pcOffset) &+ op.imm)
            }
            write(op.rd, from: d)
        case .addi where op.imm == 0, .xori where op.imm == 0, .ori where op.imm == 0:
            emitMove(op.rd, from: op.rs1)  // mv, and nops that name a register
        case .add where op.rs1 == 0, .xor where op.rs1 == 0, .or where op.rs1 == 0:
            emitMove(op.rd, from: op.rs2)  // c.mv is add rd, x0, rs2
        case .add where op.rs2 == 0, .sub where op.rs2 == 0, .xor where op.rs2 == 0, .or where op.rs2 == 0:
            emitMove(op.rd, from: op.rs1)
        case .addiw where op.imm == 0:  // sext.w
            let d = destination(op.rd)
            if op.rs1 != 0, let h = cachedForRead(op.rs1, lowHalf: true) {
                a.movsxd(d, h)
            } else if op.rs1 != 0 && raxHolds(op.rs1) {
                a.movsxd(d, .rax)
            } else {
                a.load(d, frameX(op.rs1), bytes: 4, signed: true)
            }
            write(op.rd, from: d, form: .signExtended)
        case .addi, .xori, .ori, .andi:
            // A bitwise op with a sign-extended immediate keeps a value's form (sign extension commutes with it).
            let keepsForm = op.op != .addi && form(op.rs1) != .full
            let resultForm = keepsForm ? form(op.rs1) : .full
            let d = destination(op.rd)
            read(op.rs1, into: d, lowHalf: keepsForm)
            let operation: X86ALUOperation = op.op == .addi ? .add : op.op == .xori ? .xor : op.op == .ori ? .or : .and
            if !(operation == .add && op.imm == 0) { aluImmediate(operation, d, op.imm) }
            write(op.rd, from: d, form: resultForm)
        case .slti, .sltiu:
            let lhs = readOnly(op.rs1, scratch: .rax)
            aluImmediate(.cmp, lhs, op.imm)
            a.set(op.op == .slti ? .less : .below, .rax)
            a.movzx(.rax, .rax, fromBytes: 1)
            write(op.rd, from: .rax)
        case .slli, .srli, .srai:
            let d = destination(op.rd)
            read(op.rs1, into: d)
            a.shift(op.op == .slli ? .shl : op.op == .srli ? .shr : .sar, d, by: UInt8(op.imm & 63))
            write(op.rd, from: d)
        case .addiw:
            let d = destination(op.rd)
            read(op.rs1, into: d, lowHalf: true)
            aluImmediate(.add, d, op.imm, width: .bits32)
            write(op.rd, from: d, form: .stale)  // W results: the movsxd waits for a reader of all 64 bits
        case .slliw, .srliw, .sraiw:
            let d = destination(op.rd)
            read(op.rs1, into: d, lowHalf: true)
            a.shift(op.op == .slliw ? .shl : op.op == .srliw ? .shr : .sar, d, by: UInt8(op.imm & 31), width: .bits32)
            // A 32-bit op clears bits 63:32; after a logical right shift by 1-31 bit 31 is clear too, so that
            // is already the sign extension.
            write(op.rd, from: d, form: op.op == .srliw && op.imm & 31 != 0 ? .signExtended : .stale)
        case .add where updatesSecondSourceInPlace(op), .xor where updatesSecondSourceInPlace(op),
             .or where updatesSecondSourceInPlace(op), .and where updatesSecondSourceInPlace(op):
            // rd = rs1 op rd, commutative: operate on rd's host register in place (no detour through rax).
            let (lowHalf, resultForm) = bitwiseForms(op)
            let h = cachedForRead(op.rd, lowHalf: lowHalf)!
            let operation: X86ALUOperation = op.op == .add ? .add : op.op == .xor ? .xor : op.op == .or ? .or : .and
            alu(operation, h, guest: op.rs1, lowHalf: lowHalf)
            write(op.rd, from: h, form: resultForm)
        case .add, .sub, .xor, .or, .and:
            let (lowHalf, resultForm) = bitwiseForms(op)
            let d = destination(op.rd, avoiding: op.rs2 == op.rs1 ? nil : op.rs2)
            read(op.rs1, into: d, lowHalf: lowHalf)
            let operation: X86ALUOperation = op.op == .add ? .add : op.op == .sub ? .sub : op.op == .xor ? .xor : op.op == .or ? .or : .and
            alu(operation, d, guest: op.rs2, lowHalf: lowHalf)
            write(op.rd, from: d, form: resultForm)
        case .addw where updatesSecondSourceInPlace(op):
            let h = cachedForRead(op.rd, lowHalf: true)!
            alu(.add, h, guest: op.rs1, width: .bits32)
            write(op.rd, from: h, form: .stale)
        case .addw, .subw:
            let d = destination(op.rd, avoiding: op.rs2 == op.rs1 ? nil : op.rs2)
            read(op.rs1, into: d, lowHalf: true)
            alu(op.op == .addw ? .add : .sub, d, guest: op.rs2, width: .bits32)
            write(op.rd, from: d, form: .stale)
        case .sll, .srl, .sra:
            read(op.rs2, into: .rcx)
            let d = destination(op.rd)
            read(op.rs1, into: d)
            a.shiftByCL(op.op == .sll ? .shl : op.op == .srl ? .shr : .sar, d)
            write(op.rd, from: d)
        case .sllw, .srlw, .sraw:
            read(op.rs2, into: .rcx, lowHalf: true)  // the count is its low 5 bits
            let d = destination(op.rd)
            read(op.rs1, into: d, lowHalf: true)
            a.shiftByCL(op.op == .sllw ? .shl : op.op == .srlw ? .shr : .sar, d, width: .bits32)
            write(op.rd, from: d, form: .stale)
        case .slt, .sltu:
            let lhs = readOnly(op.rs1, scratch: .rax)
            alu(.cmp, lhs, guest: op.rs2)
            a.set(op.op == .slt ? .less : .below, .rax)
            a.movzx(.rax, .rax, fromBytes: 1)
            write(op.rd, from: .rax)
        case .mul, .mulw:
            let word = op.op == .mulw
            let rhs = readOnly(op.rs2, scratch: .rcx, lowHalf: word)
            let d = destination(op.rd, avoiding: op.rs2 == op.rs1 ? nil : op.rs2)
            read(op.rs1, into: d, lowHalf: word)
            if word {
                a.imul(d, rhs, width: .bits32)
                write(op.rd, from: d, form: .stale)
            } else {
                a.imul(d, rhs)
                write(op.rd, from: d)
            }
        case .mulh, .mulhu:
            read(op.rs1, into: .rax)
            let rhs = readOnly(op.rs2, scratch: .rcx)
            if op.op == .mulh { a.imul(rhs) } else { a.mul(rhs) }
            write(op.rd, from: .rdx)
        case .mulhsu:
            // high(signed a * unsigned b) = high(unsigned a * b) - (a < 0 ? b : 0)
            read(op.rs1, into: .rax)
            read(op.rs2, into: .rsi)
            a.mul(.rsi)
            read(op.rs1, into: .rcx)
            a.shift(.sar, .rcx, by: 63)
            a.and(.rcx, .rsi)
            a.sub(.rdx, .rcx)
            write(op.rd, from: .rdx)
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
        case .lrw, .lrd, .scw, .scd, .amow, .amod: emitAtomic(op, index: i)
        case .fld: emitFloatLoad(op, index: i, bytes: 8)
        case .flw: emitFloatLoad(op, index: i, bytes: 4)
        case .fsd: emitFloatStore(op, index: i, bytes: 8)
        case .fsw: emitFloatStore(op, index: i, bytes: 4)
        case .faddD, .fsubD, .fmulD, .fdivD, .fsqrtD, .fmaddD, .fmsubD, .fnmsubD, .fnmaddD:
            return emitFloatArithmetic(op, index: i)
        case .fsgnjD, .fsgnjnD, .fsgnjxD, .fmvXD, .fmvDX:
            emitFloatMove(op, index: i)
        default: return false
        }
        return true
    }

    /// For add, sub, and, or, xor: whether the op may read only its sources' low halves, and its result's form.
    /// Bitwise ops commute with sign extension, so two sources that are (or will be) sign extensions of their
    /// low 32 bits give one too; anything else needs full values.
    private func bitwiseForms(_ op: MicroOp) -> (lowHalf: Bool, form: ValueForm) {
        guard op.op == .and || op.op == .or || op.op == .xor else { return (false, .full) }
        let f1 = form(op.rs1), f2 = form(op.rs2)
        guard f1 != .full && f2 != .full else { return (false, .full) }
        return (true, f1 == .stale || f2 == .stale ? .stale : .signExtended)
    }

    /// `rd = rs1 op rd` with rd in a host register (a commutative op can then work on it in place).
    private func updatesSecondSourceInPlace(_ op: MicroOp) -> Bool {
        op.rd == op.rs2 && op.rd != op.rs1 && op.rd != 0 && registers.index(of: op.rd) != nil
    }

    /// RISC-V division: x86's div/idiv fault on a zero divisor and on INT_MIN / -1, where RISC-V defines the
    /// results (all ones or the dividend for a zero divisor; the dividend or zero for the overflow).
    private mutating func emitDivision(_ op: MicroOp, signed: Bool, remainder: Bool, width: X86Width) {
        let zero = a.makeLabel(), overflow = a.makeLabel(), done = a.makeLabel()
        read(op.rs1, into: .rax)
        read(op.rs2, into: .rcx)
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
        bindLabel(normal)
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
        bindLabel(zero)
        if remainder {
            if width == .bits32 { a.movsxd(.rax, .rax) }  // the dividend, sign-extended from 32 bits
        } else {
            a.mov(.rax, immediate: UInt64.max)
        }
        a.jump(to: done)
        bindLabel(overflow)  // INT_MIN / -1: quotient INT_MIN (the dividend), remainder 0
        if remainder {
            a.xor(.rax, .rax, width: .bits32)
        } else if width == .bits32 {
            a.movsxd(.rax, .rax)
        }
        bindLabel(done)
        write(op.rd, from: .rax)
    }

    /// Computes the virtual address (in rsi, or the base register itself for a zero offset with identity
    /// addressing) and checks the data TLB inline: rcx = this page's entry (of the read set; the write set is
    /// 64 KiB above), compared with the tag an access of `size` bytes needs. A miss goes
    /// to an out-of-line call of the interpreter for this instruction. Returns the hit's host operand and the
    /// label where both paths continue. With identity addressing the operand is [identity addend + base
    /// register + offset], so the access waits only for the base register, not for the address arithmetic.
    private mutating func emitTLBCheck(_ op: MicroOp, index: Int, bytes size: Int, write: Bool,
                                       loadsIntegerRegister: Bool = true, writesRegister: UInt8? = nil,
                                       needsFloatDirty: Bool = false) -> (resume: X86Label, host: X86Memory) {
        let slow = a.makeLabel()
        // The base register's first load (if cached) must come before any jump to the slow path.
        let base = readOnly(op.rs1, scratch: .rsi)
        if needsFloatDirty {
            // FP loads and stores run inline only while mstatus.FS is Dirty (otherwise they set it, or trap).
            a.alu(.cmp, slot(FrameSlot.floatDirty), immediate: 0)
            a.jump(if: .equal, to: slow)
        }
        // The host operand used with identity addressing (rcx then holds the addend).
        var identityOperand = X86Memory(.rcx, index: .rsi, scale: 1)
        var address = X86Register.rsi
        if let small = Int32(exactly: op.imm) {
            if identityAddressing && small == 0 {
                address = base  // the check reads the base register itself; nothing needs the sum
            } else if small != 0 || base != .rsi {
                a.lea(.rsi, X86Memory(base, small))
            }
            if base != .rsi { identityOperand = X86Memory(.rcx, index: base, scale: 1, small) }
        } else {
            loadImmediate(.rsi, op.imm)
            a.add(.rsi, base)
        }
        a.emitTLBEntryAddress(.rcx, of: address, set: FrameSlot.dataTLB)
        a.mov(.rdx, address)
        // The tag keeps the low address bits of a misaligned access, so it never matches (slow path).
        a.alu(.and, .rdx, immediate: Int32(-4096 | (size - 1)))
        a.alu(.or, .rdx, slot(write ? FrameSlot.writeGeneration : FrameSlot.readGeneration))
        let setOffset: Int32 = write ? Int32(TLB.entries * MemoryLayout<TLBEntry>.stride) : 0
        a.alu(.cmp, .rdx, X86Memory(.rcx, setOffset))
        a.jump(if: .notEqual, to: slow)
        let resume = addSlowPath(index: index, entry: slow, reloading: writesRegister ?? (!write && loadsIntegerRegister ? op.rd : nil))
        if identityAddressing {
            a.mov(.rcx, slot(FrameSlot.identityAddend))  // every entry's addend: independent of the entry
            return (resume, identityOperand)
        }
        a.alu(.add, .rsi, X86Memory(.rcx, setOffset + 8))  // + addend: the host address
        return (resume, X86Memory(.rsi))
    }

    /// Registers the out-of-line path at `entry`: the interpreter runs op `index`, then execution continues at
    /// the returned label. It writes back what is dirty now and restores what the call clobbers (and the
    /// integer register `rd` the op writes, if cached), so call it before the fast path changes the cache.
    private mutating func addSlowPath(index: Int, entry slow: X86Label, reloading rd: UInt8?) -> X86Label {
        let resume = a.makeLabel()
        let writeBack = dirtyEntries
        var reload: [(guest: UInt8, host: X86Register)] = []
        for e in registers.entries {
            if e.loaded && e.host.isCallerSaved { reload.append((e.guest, e.host)) }
        }
        if let rd, let i = registers.index(of: rd), !registers.entries[i].host.isCallerSaved || !registers.entries[i].loaded {
            reload.append((rd, registers.entries[i].host))
        }
        slowPaths.append(SlowPath(entry: slow, resume: resume, segment: current, index: index, writeBack: writeBack, reload: reload))
        return resume
    }

    private mutating func emitLoad(_ op: MicroOp, index: Int, bytes size: Int, signed: Bool) {
        if uncheckedLoads {
            emitUncheckedLoad(op, index: index, bytes: size, signed: signed)
            return
        }
        let (resume, host) = emitTLBCheck(op, index: index, bytes: size, write: false)
        let d = destination(op.rd)
        a.load(d, host, bytes: size, signed: signed)
        write(op.rd, from: d, form: BlockCompiler.loadForm(bytes: size, signed: signed))
        bindLabel(resume)
    }

    /// LR, SC and AMOs, through the read (LR) or write TLB check. A write hit is RAM this hart may write
    /// directly (aligned, no code on the page, dirty-logged), so the host's locked instructions give the
    /// interpreter's results (executeAtomic): SC is a compare-and-swap against the value LR read, at the
    /// physical address LR reserved. A miss (faults, misalignment, MMIO, code pages) runs the interpreter for
    /// the op. x86's locked instructions are full barriers, which covers .aq and .rl.
    private mutating func emitAtomic(_ op: MicroOp, index: Int) {
        let word = op.op == .lrw || op.op == .scw || op.op == .amow
        let size = word ? 4 : 8
        let width: X86Width = word ? .bits32 : .bits64
        let isLR = op.op == .lrw || op.op == .lrd
        // The source's first load (if cached) must come before the check's jump to the slow path; the check
        // leaves rax alone.
        let value = isLR ? X86Register.rax : readOnly(op.rs2, scratch: .rax)
        let (resume, host) = emitTLBCheck(op, index: index, bytes: size, write: !isLR, writesRegister: op.rd)
        a.lea(.rsi, host)  // the host address; rcx and rdx are free from here on
        let result: X86Register
        if isLR {
            a.load(.rdx, X86Memory(.rsi), bytes: size, signed: false)
            a.store(slot(FrameSlot.reservationValue), .rdx, bytes: 8)
            a.alu(.add, .rsi, slot(FrameSlot.hostToPhysical))
            a.store(slot(FrameSlot.reservation), .rsi, bytes: 8)
            result = .rdx
        } else if op.op == .scw || op.op == .scd {
            if value != .rcx { a.mov(.rcx, value) }
            a.mov(.rdx, .rsi)
            a.alu(.add, .rdx, slot(FrameSlot.hostToPhysical))
            a.alu(.cmp, .rdx, slot(FrameSlot.reservation))
            a.store(slot(FrameSlot.reservation), immediate: -1)  // SC always drops the reservation
            a.mov(.rax, immediate: 1)  // failure (mov leaves the flags alone)
            let done = a.makeLabel()
            a.jump(if: .notEqual, to: done)
            a.mov(.rax, slot(FrameSlot.reservationValue))
            a.lockCmpxchg(X86Memory(.rsi), .rcx, width: width)
            a.set(.notEqual, .rax)
            a.movzx(.rax, .rax, fromBytes: 1)
            bindLabel(done)
            write(op.rd, from: .rax)
            bindLabel(resume)
            return
        } else {
            let kind = AMOKind(rawValue: op.extra) ?? .add
            switch kind {
            case .swap, .add:
                a.mov(.rdx, value)
                if kind == .swap { a.xchg(X86Memory(.rsi), .rdx, width: width) } else { a.lockXadd(X86Memory(.rsi), .rdx, width: width) }
                result = .rdx
            default:
                // A compare-and-swap loop: rax = the value in memory, rdx = the value to put there.
                if value != .rcx { a.mov(.rcx, value) }
                a.load(.rax, X86Memory(.rsi), bytes: size, signed: false)
                let retry = a.makeLabel()
                bindLabel(retry)
                a.mov(.rdx, .rax)
                switch kind {
                case .and: a.alu(.and, .rdx, .rcx, width: width)
                case .or: a.alu(.or, .rdx, .rcx, width: width)
                case .xor: a.alu(.xor, .rdx, .rcx, width: width)
                default:
                    a.cmp(.rax, .rcx, width: width)
                    let takeSource: X86Condition = kind == .min ? .greater : kind == .max ? .less : kind == .minu ? .above : .below
                    a.cmov(takeSource, .rdx, .rcx, width: width)
                }
                a.lockCmpxchg(X86Memory(.rsi), .rdx, width: width)
                a.jump(if: .notEqual, to: retry)
                result = .rax
            }
        }
        let d = destination(op.rd)
        if word { a.movsxd(d, result) } else if d != result { a.mov(d, result) }
        write(op.rd, from: d)
        bindLabel(resume)
    }

    /// A load without the TLB check (UncheckedLoads.swift): below the identity range's limit it reads
    /// `[identity addend + address]` directly. If the host faults there, the SIGSEGV handler continues at
    /// this load's slow path, which the range check also jumps to: the registers are the same at both
    /// places (nothing between them writes a guest register or the frame).
    private mutating func emitUncheckedLoad(_ op: MicroOp, index: Int, bytes size: Int, signed: Bool) {
        let slow = a.makeLabel()
        let base = readOnly(op.rs1, scratch: .rsi)  // a cached register's first load comes before the jump
        let operand: X86Memory
        if let small = Int32(exactly: op.imm) {
            if small == 0 {
                a.alu(.cmp, base, slot(FrameSlot.uncheckedLimit))
            } else {
                a.lea(.rdx, X86Memory(base, small))
                a.alu(.cmp, .rdx, slot(FrameSlot.uncheckedLimit))
            }
            operand = X86Memory(.rcx, index: base, scale: 1, small)
        } else {
            loadImmediate(.rdx, op.imm)
            a.add(.rdx, base)
            a.alu(.cmp, .rdx, slot(FrameSlot.uncheckedLimit))
            operand = X86Memory(.rcx, index: .rdx, scale: 1)
        }
        a.jump(if: .aboveOrEqual, to: slow)  // unsigned: a negative address is above too
        let resume = addSlowPath(index: index, entry: slow, reloading: op.rd)
        a.mov(.rcx, slot(FrameSlot.identityAddend))
        let d = destination(op.rd)
        uncheckedLoadSites.append((a.offset, slow))
        a.load(d, operand, bytes: size, signed: signed)
        write(op.rd, from: d, form: BlockCompiler.loadForm(bytes: size, signed: signed))
        bindLabel(resume)
    }

    /// lb, lh, lw sign-extend, lbu and lhu zero-extend fewer than 32 bits: all are sign extensions of 32 bits.
    static func loadForm(bytes size: Int, signed: Bool) -> ValueForm {
        size < 4 || size == 4 && signed ? .signExtended : .full
    }

    private mutating func emitStore(_ op: MicroOp, index: Int, bytes size: Int) {
        // Read the value first: a register's first load must happen where both paths pass.
        let value = readOnly(op.rs2, scratch: .rax, lowHalf: size < 8)  // sw, sh, sb store only low bits
        let (resume, host) = emitTLBCheck(op, index: index, bytes: size, write: true)
        a.store(host, value, bytes: size)
        bindLabel(resume)
    }
}

extension BlockCompiler {
    @inline(__always) private func frameF(_ r: UInt8) -> X86Memory { X86Memory(.frameBase, Int32(FrameSlot.f + Int(r)) * 8) }

    /// fld/flw: a single is NaN-boxed (the upper 32 bits set), as the interpreter stores it.
    fileprivate mutating func emitFloatLoad(_ op: MicroOp, index: Int, bytes size: Int) {
        let (resume, host) = emitTLBCheck(op, index: index, bytes: size, write: false, loadsIntegerRegister: false,
                                          needsFloatDirty: true)
        a.load(.rax, host, bytes: size, signed: false)
        if size == 4 {
            a.mov(.rcx, immediate: 0xffff_ffff_0000_0000)
            a.or(.rax, .rcx)
        }
        a.store(frameF(op.rd), .rax, bytes: 8)
        bindLabel(resume)
    }

    /// Whether the host has FMA3 (fused multiply-add in one rounding, as RISC-V's fmadd family computes).
    /// D arithmetic inline, guarded by `floatFast` and used only when the host's result is a normal number
    /// (above the smallest binade): then the IEEE result is RISC-V's, and the only flag the operation can raise
    /// is inexact. With inexact already accrued (floatFast 1) that is all; without it (2), an out-of-line copy
    /// runs the operation with MXCSR's flags cleared first and keeps the result only if it raised none. NaNs,
    /// infinities, zeros, subnormals, any other flag, other rounding modes and FS not Dirty all call the
    /// interpreter for this one instruction, with nothing written before.
    fileprivate mutating func emitFloatArithmetic(_ op: MicroOp, index: Int) -> Bool {
        guard op.extra == 0 || op.extra == 7 else { return false }  // a static mode other than RNE
        if BlockCompiler.fusedOperation(op) != nil && !HostCPU.hasFMA { return false }
        let slow = a.makeLabel(), exact = a.makeLabel(), check = a.makeLabel()
        let resume = addSlowPath(index: index, entry: slow, reloading: nil)
        a.alu(.cmp, slot(FrameSlot.floatFast), immediate: 1)
        a.jump(if: .notEqual, to: exact)
        emitFloatCompute(op)
        bindLabel(check)
        a.movq(.rax, xmm: 0)
        // Biased exponent in [2, 0x7fe]: a normal result above the smallest binade.
        a.mov(.rcx, .rax)
        a.shift(.shr, .rcx, by: 52)
        a.alu(.and, .rcx, immediate: 0x7ff, width: .bits32)
        a.alu(.sub, .rcx, immediate: 2, width: .bits32)
        a.alu(.cmp, .rcx, immediate: 0x7fc, width: .bits32)
        a.jump(if: .above, to: slow)
        a.store(frameF(op.rd), .rax, bytes: 8)
        bindLabel(resume)
        exactFloatPaths.append(ExactFloatPath(entry: exact, op: op, check: check, slow: slow))
        return true
    }

    /// The out-of-line variant for floatFast 2 (no inexact accrued yet): clear MXCSR's flags, compute, and go
    /// back to the result check only if no flag but the denormal-operand one (not an IEEE flag) was raised.
    fileprivate mutating func emitExactFloatPath(_ path: ExactFloatPath) {
        bindLabel(path.entry)
        a.alu(.cmp, slot(FrameSlot.floatFast), immediate: 2)
        a.jump(if: .notEqual, to: path.slow)
        a.loadMXCSR(slot(FrameSlot.mxcsrClean))
        emitFloatCompute(path.op)
        a.storeMXCSR(slot(FrameSlot.mxcsrSaved))
        a.test(slot(FrameSlot.mxcsrSaved), immediate: 0x3d)  // IE ZE OE UE PE (not DE)
        a.jump(if: .notEqual, to: path.slow)
        a.jump(to: path.check)
    }

    /// xmm0 = the operation's result (SSE2, or FMA3 for the fused group).
    fileprivate mutating func emitFloatCompute(_ op: MicroOp) {
        switch op.op {
        case .faddD: a.movsd(xmm: 0, frameF(op.rs1)); a.scalarDouble(.add, xmm: 0, frameF(op.rs2))
        case .fsubD: a.movsd(xmm: 0, frameF(op.rs1)); a.scalarDouble(.sub, xmm: 0, frameF(op.rs2))
        case .fmulD: a.movsd(xmm: 0, frameF(op.rs1)); a.scalarDouble(.mul, xmm: 0, frameF(op.rs2))
        case .fdivD: a.movsd(xmm: 0, frameF(op.rs1)); a.scalarDouble(.div, xmm: 0, frameF(op.rs2))
        case .fsqrtD: a.scalarDouble(.sqrt, xmm: 0, frameF(op.rs1))
        default:
            a.movsd(xmm: 0, frameF(op.rs3))
            a.movsd(xmm: 1, frameF(op.rs1))
            a.fusedMultiplyAdd(BlockCompiler.fusedOperation(op)!, accumulator: 0, 1, frameF(op.rs2))
        }
    }

    static func fusedOperation(_ op: MicroOp) -> X86FusedMultiplyAdd? {
        switch op.op {
        case .fmaddD: return .multiplyAdd
        case .fmsubD: return .multiplySubtract
        case .fnmsubD: return .negatedMultiplyAdd        // -(rs1 * rs2) + rs3
        case .fnmaddD: return .negatedMultiplySubtract   // -(rs1 * rs2) - rs3
        default: return nil
        }
    }

    /// Sign injection (fmv.d, fneg.d, fabs.d) and moves between x and f registers: bit operations that raise
    /// no flags, inline while FS is Dirty (otherwise they would set it, or trap).
    fileprivate mutating func emitFloatMove(_ op: MicroOp, index: Int) {
        let slow = a.makeLabel()
        if op.op == .fmvDX {
            let source = readOnly(op.rs1, scratch: .rax)  // before the guard: a first load on both paths
            let resume = addSlowPath(index: index, entry: slow, reloading: nil)
            a.alu(.cmp, slot(FrameSlot.floatDirty), immediate: 0)
            a.jump(if: .equal, to: slow)
            a.store(frameF(op.rd), source, bytes: 8)
            bindLabel(resume)
            return
        }
        let resume = addSlowPath(index: index, entry: slow, reloading: op.op == .fmvXD ? op.rd : nil)
        a.alu(.cmp, slot(FrameSlot.floatDirty), immediate: 0)
        a.jump(if: .equal, to: slow)
        if op.op == .fmvXD {
            let d = destination(op.rd)
            a.mov(d, frameF(op.rs1))
            write(op.rd, from: d)
            bindLabel(resume)
            return
        }
        a.mov(.rax, frameF(op.rs1))
        if !(op.op == .fsgnjD && op.rs1 == op.rs2) {  // fmv.d copies
            a.mov(.rcx, frameF(op.rs2))
            if op.op == .fsgnjnD { a.alu(.xor, .rcx, immediate: -1) }
            a.shift(.shr, .rcx, by: 63)
            a.shift(.shl, .rcx, by: 63)  // rcx = the sign bit to inject
            if op.op == .fsgnjxD {
                a.xor(.rax, .rcx)
            } else {
                a.shift(.shl, .rax, by: 1)
                a.shift(.shr, .rax, by: 1)
                a.or(.rax, .rcx)
            }
        }
        a.store(frameF(op.rd), .rax, bytes: 8)
        bindLabel(resume)
    }

    fileprivate mutating func emitFloatStore(_ op: MicroOp, index: Int, bytes size: Int) {
        a.mov(.rax, frameF(op.rs2))
        let (resume, host) = emitTLBCheck(op, index: index, bytes: size, write: true, needsFloatDirty: true)
        a.store(host, .rax, bytes: size)
        bindLabel(resume)
    }
}

extension X86Assembler {
    /// `entry = [rbx + set slot] + index(address) * 16`: the TLB entry of `address`'s page in the set whose
    /// address the frame holds (MMU.swift: entries are 16 bytes, indexed by the page number's low bits).
    mutating func emitTLBEntryAddress(_ entry: X86Register, of address: X86Register, set: Int) {
        precondition(MemoryLayout<TLBEntry>.stride == 16)
        if HostCPU.hasBMI2 {
            rotateRightCopy(entry, address, by: 12 - 4)  // the mask below drops the bits rotated in
        } else {
            mov(entry, address)
            shift(.shr, entry, by: 12 - 4)  // page number * 16
        }
        alu(.and, entry, immediate: Int32((TLB.entries - 1) << 4), width: .bits32)
        alu(.add, entry, X86Memory(.frameBase, FrameSlot.offset(set)))
    }
}

extension X86Register {
    /// The register holding the hart's frame in translated code. rbp: AMD's Zen cores forward a store to a later
    /// load of the same [rbp + displacement] without the usual store-to-load latency (memory renaming), which
    /// they do not do for every base register; guest registers not cached in host registers live there.
    static var frameBase: X86Register { .rbp }
    /// The register holding the virtual pc of the block (segment) being run.
    static var pcBase: X86Register { .rbx }
}

extension X86Register {
    /// Clobbered by calls in the System V ABI (rax, rcx, rdx, rsi are scratch anyway; rdi, the calls' first
    /// argument, also caches a guest register).
    var isCallerSaved: Bool { self == .r8 || self == .r9 || self == .r10 || self == .r11 || self == .rdi }
}

/// What a host register caching a guest register is known to hold.
enum ValueForm {
    /// The guest value, nothing more known.
    case full
    /// The guest value, which is the sign extension of its low 32 bits.
    case signExtended
    /// Only the low 32 bits are right: the guest value is their sign extension (a W instruction's result
    /// whose `movsxd` is deferred until something reads all 64 bits, or until it is stored).
    case stale
}

/// Which guest registers a block keeps in host registers, and their state during compilation.
struct RegisterCache {
    struct Entry {
        var guest: UInt8
        var host: X86Register
        /// The host register holds the guest value (loaded, or written since).
        var loaded = false
        /// The host register holds a value the frame does not have yet.
        var dirty = false
        /// What the host register's upper half holds (W instructions leave their sign extension for later).
        var form = ValueForm.full
    }
    /// Callee-saved ones first: they survive calls into the interpreter.
    static let hosts: [X86Register] = [.r12, .r13, .r14, .r15, .r8, .r9, .r10, .r11]
    var entries: [Entry] = []
    private var indexOfGuest = [Int8](repeating: -1, count: 33)

    /// Caches the guest registers used at least `minimumUses` times by the unit's inline instructions, most used
    /// first (twice for straight code, where a register used once gains nothing; once in a loop, where it is
    /// loaded before the loop and written back after it, instead of once per iteration).
    init(segments: [BlockCompiler.Segment], minimumUses: Int = 2) {
        var uses = [Int](repeating: 0, count: 32)
        for segment in segments {
            for i in 0..<segment.count {
                let op = segment.ops[i]
                guard op.op.isIntegerOnly else { continue }
                if op.rd < 32 { uses[Int(op.rd)] += 1 }
                uses[Int(op.rs1) & 31] += 1
                uses[Int(op.rs2) & 31] += 1
            }
        }
        uses[0] = 0
        let chosen = (1..<32).filter { uses[$0] >= minimumUses }.sorted { uses[$0] > uses[$1] }.prefix(RegisterCache.hosts.count)
        for (n, g) in chosen.enumerated() {
            indexOfGuest[g] = Int8(n)
            entries.append(Entry(guest: UInt8(g), host: RegisterCache.hosts[n]))
        }
    }

    /// Stops caching the guest register held in `host` (the host is wanted for something else).
    mutating func release(host: X86Register) {
        guard let i = entries.firstIndex(where: { $0.host == host }) else { return }
        indexOfGuest[Int(entries[i].guest)] = -1
        entries.remove(at: i)
        for (n, e) in entries.enumerated() { indexOfGuest[Int(e.guest)] = Int8(n) }
    }

    @inline(__always) func index(of guest: UInt8) -> Int? {
        let i = indexOfGuest[Int(guest) & 31 | (guest >= 32 ? 32 : 0)]
        return i < 0 ? nil : Int(i)
    }
}

extension Op {
    /// Integer ops whose rd, rs1 and rs2 all name x registers (the ones the register cache counts).
    var isIntegerOnly: Bool {
        switch self {
        case .lui, .auipc, .addi, .slti, .sltiu, .xori, .ori, .andi, .slli, .srli, .srai, .addiw, .slliw, .srliw, .sraiw,
             .add, .sub, .sll, .slt, .sltu, .xor, .srl, .sra, .or, .and, .addw, .subw, .sllw, .srlw, .sraw,
             .mul, .mulh, .mulhsu, .mulhu, .div, .divu, .rem, .remu, .mulw, .divw, .divuw, .remw, .remuw,
             .jal, .jalr, .beq, .bne, .blt, .bge, .bltu, .bgeu,
             .lb, .lh, .lw, .ld, .lbu, .lhu, .lwu, .sb, .sh, .sw, .sd:
            return true
        default:
            return false
        }
    }
}
