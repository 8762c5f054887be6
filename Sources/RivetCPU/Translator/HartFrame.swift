/// The hart's register frame: one allocation holding the guest registers and everything generated code reads
/// per block, at fixed offsets from one base register (rbp in translated code: X86Register.frameBase). The interpreter uses the same
/// storage (`Hart.x`, `Hart.f` and the properties below are views of it), so nothing is copied when execution
/// moves between interpreted and translated blocks.
///
/// Slots are 8 bytes. Fields Swift owns but generated code reads (TLB generations and set pointers, the
/// block's pc, the code epoch seen) are stored here and exposed to Swift as computed properties; values
/// generated code only reads between exits (the interrupt enables) are mirrored in before entering it.
enum FrameSlot {
    /// x0...x31, then 32: the sink for writes to x0.
    static let x = 0
    /// f0...f31 as raw bits.
    static let f = 33
    static let readGeneration = 65
    static let writeGeneration = 66
    /// Address of the current data TLB set (reads at [0, N), writes at [N, 2N)).
    static let dataTLB = 67
    /// Address of the current fetch TLB set.
    static let fetchTLB = 68
    /// Virtual pc of the block being executed.
    static let blockPC = 69
    /// Instructions the translated run may still start (the chain budget left), signed.
    static let remaining = 70
    /// `remaining` when translated code was entered (so retired instructions = this - remaining).
    static let retired = 71
    /// The pc to continue at when translated code exits normally.
    static let exitPC = 72
    /// `Unmanaged<Hart>` pointer, the first argument of calls out to Swift.
    static let hart = 73
    /// The code epoch this hart's TLB reflects (Interpreter.swift: writable entries of code pages dropped).
    static let seenCodeEpoch = 78
    /// The exit-request word every translated block's prologue compares with zero. Byte 0: another thread
    /// asks this hart to drop its TLB (`Hart.tlbFlushRequest`). Byte 1: something needs the run loop
    /// (`Hart.attentionRequest`: an interrupt raised from another thread, a page becoming a code page, or
    /// a callout leaving an interrupt pending or the code epoch changed), cleared by the run loop.
    static let exitRequest = 79
    /// The block cache's table of entries and its table of translated code addresses.
    static let blockTable = 80
    static let codeTable = 81
    /// How translated code last exited (`TranslatedExit`).
    static let exitKind = 82
    /// 1 when mstatus.FS is Dirty, so FP loads and stores may run inline (they would otherwise set it or
    /// trap); refreshed on entry and after each callout.
    static let floatDirty = 83
    /// Whether D arithmetic may run inline (BlockCompiler.emitFloatArithmetic), refreshed with `floatDirty`:
    /// 0 no; with FS Dirty and frm = RNE, 1 when fflags.NX is already set, 2 when it is not (the inline result
    /// must then also be exact, which the host's MXCSR flags tell).
    static let floatFast = 84
    /// The MXCSR value inline code loads before an operation whose flags it reads (all exceptions masked,
    /// round to nearest, flags clear: 0x1f80), and a slot to store MXCSR into.
    static let mxcsrClean = 85
    static let mxcsrSaved = 86
    /// `Hart.userIdentityAddend` (0 when off).
    static let identityAddend = 87
    /// The LR reservation (`Hart.reservation`: a physical address, all ones for none) and the value LR read,
    /// here so that translated LR/SC keep them; and guest-physical minus host address of RAM, which turns a
    /// TLB hit's host address into the physical address a reservation names.
    static let reservation = 88
    static let reservationValue = 89
    static let hostToPhysical = 90
    static let noReservation = UInt64.max
    /// Unchecked loads (UncheckedLoads.swift) take the fast path only for addresses below this.
    static let uncheckedLimit = 91
    static let count = 96

    @inline(__always) static func offset(_ slot: Int) -> Int32 { Int32(slot * 8) }
}

/// How a run of translated code ended.
enum TranslatedExit: UInt64 {
    /// Left at a block boundary: continue at `exitPC`.
    case atBoundary = 0
    /// An instruction executed by the interpreter trapped or changed control (mret, ecall, csr...): `pc`
    /// is already set.
    case pcSet = 1
}
