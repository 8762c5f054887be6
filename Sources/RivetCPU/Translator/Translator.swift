#if canImport(Glibc)
import Glibc
#endif
import RivetJIT

/// Addresses of the shared code every translated block jumps to (generated at the start of the code region).
struct TranslatorStubs {
    /// `enter(frame, code)`: saves the host's callee-saved registers, points rbx at the frame and rbp at the
    /// block's pc, jumps to code.
    var enter: UInt = 0
    /// Restores the host registers and returns to the run loop.
    var exit: UInt = 0
    /// rax = the next guest pc: look up its translation (fetch TLB, block table) and jump to its prologue,
    /// or leave at the boundary.
    var dispatch: UInt = 0
    /// rax = the next guest pc: leave translated code at a block boundary (the run loop continues at rax).
    var boundary: UInt = 0
    /// As `dispatch`, and records what it found in the jump site's cache at r8 (see `JumpSite`).
    var dispatchAndRemember: UInt = 0
    /// The Swift function translated code calls to run one instruction in the interpreter.
    var callout: UInt = 0
}

/// Calls from translated code into the interpreter: `(hart, op, index in block, block byte length) -> retired`.
typealias TranslatedCallout = @convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer, Int, Int) -> Int
typealias TranslatedEnter = @convention(c) (UnsafeMutablePointer<UInt64>, UInt) -> Void

private let calloutToInterpreter: TranslatedCallout = { hart, op, index, byteLength in
    // The hart outlives its translated code: no retain/release on this path.
    Unmanaged<Hart>.fromOpaque(hart)._withUnsafeGuaranteedRef {
        $0.translatedCallout(op.assumingMemoryBound(to: MicroOp.self), index: index, byteLength: byteLength)
    }
}

/// The translated code of one block cache: code memory, its stubs, and statistics. Code lives as long as the
/// block cache's decoded blocks: a flush of the cache (pool full, reset, restore) drops both together, and it
/// happens only on the run loop of the one hart that uses this cache, never while its code runs.
public final class Translator {
    /// Bytes of code memory per block cache (reserved address space; pages cost memory only when written).
    /// Settable for tests of the full-cache flush (rivet: RIVET_JIT_CACHE_KB).
    nonisolated(unsafe) public static var codeCapacity = 32 << 20
    let memory: ExecutableMemory
    private(set) var stubs = TranslatorStubs()
    private(set) var enter: TranslatedEnter
    /// Direct exits waiting for a block on their page to be compiled: target paddr -> the rel32 fields
    /// (writable address, executable address of the byte after the field) to patch when it is.
    private var pendingLinks: [UInt64: [(field: UnsafeMutableRawPointer, end: UInt)]] = [:]
    /// Size of every block's checked entry (BlockCompiler.emitPrologue); the run loop enters right after it.
    static let prologueSize = 27
    /// Inline caches of indirect and cross-page jumps, three words each: the guest pc last jumped to, the
    /// translation context it was looked up in (read generation xor fetch TLB set: a TLB flush or a privilege
    /// change invalidates it) and the target's prologue (which re-checks that the block is still current).
    /// Zero-filled words never match (the context is never zero).
    let sites: UnsafeMutablePointer<UInt64>
    static let siteCapacity = 1 << 16
    /// Jump-site caches handed out so far; a compile that is abandoned gives its own back (`releaseSites`).
    private(set) var sitesUsed = 0
    /// Statistics (rivet --jit-stats): blocks compiled, bytes of code, host nanoseconds spent compiling, flushes.
    var blocksCompiled: UInt64 = 0
    var codeBytes: UInt64 = 0
    var compileNanoseconds: UInt64 = 0
    var flushes: UInt64 = 0

    init() throws {
        memory = try ExecutableMemory(capacity: Translator.codeCapacity)
        sites = BlockCache.mapZeroed(Translator.siteCapacity * 24).bindMemory(to: UInt64.self, capacity: Translator.siteCapacity * 3)
        enter = unsafeBitCast(0 as UInt, to: TranslatedEnter.self)
        installStubs()
    }

    deinit { munmap(sites, Translator.siteCapacity * 24) }

    /// A fresh jump-site cache, or nil when all are in use (the jump then always takes the dispatcher).
    func allocateSite() -> UnsafeMutablePointer<UInt64>? {
        guard sitesUsed < Translator.siteCapacity else { return nil }
        sitesUsed += 1
        return sites + (sitesUsed - 1) * 3
    }

    /// Takes back the jump-site caches handed out after `mark` (code that referenced them was never installed).
    func releaseSites(downTo mark: Int) {
        precondition(mark <= sitesUsed)
        sitesUsed = mark
    }

    /// Forgets all code and writes the stubs again at the start of the region.
    func reset() {
        memory.reset()
        madvise(sites, Translator.siteCapacity * 24, MADV_DONTNEED)
        sitesUsed = 0
        pendingLinks.removeAll()
        flushes &+= 1
        installStubs()
    }

    private func installStubs() {
        var a = X86Assembler()
        let exitLabel = a.makeLabel(), dispatchLabel = a.makeLabel(), boundary = a.makeLabel()
        let saved: [X86Register] = [.rbx, .rbp, .r12, .r13, .r14, .r15]
        func frame(_ s: Int) -> X86Memory { X86Memory(.frameBase, FrameSlot.offset(s)) }
        // enter(frame: rdi, code: rsi). Six pushes after the return address leave rsp 8 off 16-byte
        // alignment; one more slot realigns it for the calls translated code makes.
        let enterOffset = a.offset
        for r in saved { a.push(r) }
        a.alu(.sub, .rsp, immediate: 8)
        a.mov(.frameBase, .rdi)
        a.mov(.pcBase, frame(FrameSlot.blockPC))  // the block's pc, as a prologue leaves it
        a.mov(BlockCompiler.counter, frame(FrameSlot.remaining))  // the chain budget, kept in rdi
        a.jump(.rsi)
        // exit
        a.bind(exitLabel)
        let exitOffset = a.offset
        a.store(frame(FrameSlot.remaining), BlockCompiler.counter, bytes: 8)
        a.alu(.add, .rsp, immediate: 8)
        for r in saved.reversed() { a.pop(r) }
        a.ret()
        // dispatch: rax = next pc. Fetch TLB: the next pc's physical address, then the block table and the
        // code table; the target's prologue checks the budget, interrupts and the rest. The remembering variant
        // (r8 = a jump site's cache) stores the pc, the translation context and the target before jumping.
        func emitLookup(remember: Bool) {
            a.emitTLBEntryAddress(.rcx, of: .rax, set: FrameSlot.fetchTLB)
            a.mov(.rsi, .rax)
            a.alu(.and, .rsi, immediate: -4096)
            a.alu(.or, .rsi, frame(FrameSlot.readGeneration))
            a.alu(.cmp, .rsi, X86Memory(.rcx))
            a.jump(if: .notEqual, to: boundary)
            a.mov(.rsi, .rax)
            a.alu(.add, .rsi, X86Memory(.rcx, 8))
            // The block table slot (BlockCache.slot): ((pa >> 1) ^ (pa >> 17)) & (size - 1).
            a.mov(.rcx, .rsi)
            a.shift(.shr, .rcx, by: 1)
            a.mov(.rdx, .rsi)
            a.shift(.shr, .rdx, by: 17)
            a.xor(.rcx, .rdx)
            a.alu(.and, .rcx, immediate: Int32(BlockCache.tableSize - 1), width: .bits32)
            a.mov(.rdx, .rcx)
            a.shift(.shl, .rdx, by: 4)
            a.alu(.add, .rdx, frame(FrameSlot.blockTable))
            a.alu(.cmp, .rsi, X86Memory(.rdx))
            a.jump(if: .notEqual, to: boundary)
            a.mov(.rdx, frame(FrameSlot.codeTable))
            a.mov(.rdx, X86Memory(.rdx, index: .rcx, scale: 8))
            a.test(.rdx, .rdx)
            a.jump(if: .equal, to: boundary)
            if remember {
                a.store(X86Memory(.r8), .rax, bytes: 8)
                a.mov(.rcx, frame(FrameSlot.readGeneration))
                a.alu(.xor, .rcx, frame(FrameSlot.fetchTLB))
                a.store(X86Memory(.r8, 8), .rcx, bytes: 8)
                a.store(X86Memory(.r8, 16), .rdx, bytes: 8)
            }
            a.jump(.rdx)
        }
        a.bind(dispatchLabel)
        let dispatchOffset = a.offset
        emitLookup(remember: false)
        let rememberOffset = a.offset
        emitLookup(remember: true)
        a.bind(boundary)
        let boundaryOffset = a.offset
        a.store(frame(FrameSlot.exitPC), .rax, bytes: 8)
        a.store(frame(FrameSlot.exitKind), immediate: Int32(TranslatedExit.atBoundary.rawValue))
        a.jump(to: exitLabel)
        guard let base = memory.install(a.finish()) else { fatalError("translator code memory cannot hold its stubs") }
        let address = UInt(bitPattern: base)
        stubs.enter = address + UInt(enterOffset)
        stubs.exit = address + UInt(exitOffset)
        stubs.dispatch = address + UInt(dispatchOffset)
        stubs.boundary = address + UInt(boundaryOffset)
        stubs.dispatchAndRemember = address + UInt(rememberOffset)
        stubs.callout = unsafeBitCast(calloutToInterpreter, to: UInt.self)
        enter = unsafeBitCast(stubs.enter, to: TranslatedEnter.self)
    }

    /// Compiles the block (with the blocks it falls through to, `segments` after the first) and installs its code; returns the address of its prologue (the chained entry; the
    /// body starts `prologueSize` bytes later), or nil when code memory is full (the caller flushes).
    func compile(segments: [BlockCompiler.Segment], paddr: UInt64, cache: BlockCache) -> UInt? {
        let start = Translator.now()
        var compiler = BlockCompiler(segments: segments, paddr: paddr, cache: cache, translator: self)
        let code = compiler.compile()
        guard let space = memory.allocate(code.count, alignment: compiler.codeAlignment) else { return nil }
        code.withUnsafeBytes { space.writable.copyMemory(from: $0.baseAddress!, byteCount: code.count) }
        let executable = UInt(bitPattern: space.executable)
        for jump in compiler.externalJumps {
            Translator.patchRel32(space.writable + jump.field, end: executable + UInt(jump.field + 4), target: jump.target)
        }
        if let table = cache.uncheckedLoads {
            for site in compiler.uncheckedLoadOffsets {
                table.insert(load: executable + UInt(site.load), slowPath: executable + UInt(site.slow))
            }
        }
        for link in compiler.pendingLinks {
            pendingLinks[link.target, default: []].append((space.writable + link.field, executable + UInt(link.field + 4)))
        }
        // Exits (of this block too) that were waiting for this block now jump straight to it.
        if let waiting = pendingLinks.removeValue(forKey: paddr) {
            for site in waiting { Translator.patchRel32(site.field, end: site.end, target: executable) }
        }
        describe(executable: executable, size: code.count, paddr: paddr)
        if Translator.perfMap != nil, let dump = fopen("/tmp/rivet-jit-\(getpid())-\(String(executable, radix: 16)).bin", "w") {
            _ = code.withUnsafeBytes { fwrite($0.baseAddress, 1, code.count, dump) }
            fclose(dump)
        }
        blocksCompiled &+= 1
        codeBytes &+= UInt64(code.count)
        compileNanoseconds &+= Translator.now() &- start
        return executable
    }

    /// The translation at `code` (a prologue address) was dropped or replaced: its prologue becomes a jump to
    /// the dispatcher, so every link and jump-site cache that still leads to it looks the pc up again (rax
    /// holds the pc at every prologue). Code memory itself is reused only after a full flush.
    func retire(code: UInt) {
        let offset = Int(code &- UInt(bitPattern: memory.executable))
        precondition(offset >= 0 && offset + 5 <= memory.used, "retired code outside the code memory")
        let field = memory.writable + offset
        field.storeBytes(of: 0xe9, as: UInt8.self)
        Translator.patchRel32(field + 1, end: code &+ 5, target: stubs.dispatch)
    }

    /// Points the rel32 field at `field` (whose instruction ends at `end` in the executable view) at `target`.
    static func patchRel32(_ field: UnsafeMutableRawPointer, end: UInt, target: UInt) {
        let displacement = Int32(truncatingIfNeeded: Int64(bitPattern: UInt64(target)) &- Int64(bitPattern: UInt64(end)))
        field.storeBytes(of: displacement.littleEndian, as: Int32.self)
    }

    /// When set, every compiled block is described in perf's JIT map format (`/tmp/perf-PID.map`: start, size,
    /// name), so `perf report` names translated code by guest physical address (docs/translator.md).
    nonisolated(unsafe) public static var perfMap: UnsafeMutablePointer<FILE>? = nil

    /// Turns on the perf map for this process (rivet does this when RIVET_PERF_MAP is set).
    public static func enablePerfMap() {
        guard perfMap == nil else { return }
        perfMap = fopen("/tmp/perf-\(getpid()).map", "a")
    }

    private func describe(executable: UInt, size: Int, paddr: UInt64) {
        guard let file = Translator.perfMap else { return }
        fputs("\(String(executable, radix: 16)) \(String(size, radix: 16)) guest_\(String(paddr, radix: 16))\n", file)
        fflush(file)
    }

    static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }
}
