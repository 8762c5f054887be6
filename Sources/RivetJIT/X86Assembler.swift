// An x86-64 machine-code emitter for the block compiler: the integer, memory, compare and control-flow
// instructions a template translator needs, with REX prefixes for r8-r15 and the 64-bit operand size.
// Encodings follow the Intel SDM volume 2; Tests/RivetJITTests checks them against objdump.

#if canImport(Glibc)
import Glibc
#endif

/// The sixteen general-purpose registers, numbered as in ModRM/REX encodings.
public enum X86Register: UInt8, CaseIterable, Sendable {
    case rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15
    var low3: UInt8 { rawValue & 7 }
    var isExtended: Bool { rawValue >= 8 }
}

/// Condition codes for jcc and setcc (the low nibble of their opcodes).
public enum X86Condition: UInt8, Sendable {
    case overflow = 0, notOverflow, below, aboveOrEqual, equal, notEqual, belowOrEqual, above
    case sign, notSign, parity, notParity, less, greaterOrEqual, lessOrEqual, greater
}

/// Operand size of an integer instruction: RV64's W-forms use 32-bit operations.
extension X86Condition {
    /// The condition that holds exactly when this one does not (x86 pairs them in the low bit).
    public var opposite: X86Condition { X86Condition(rawValue: rawValue ^ 1)! }
}

public enum X86Width: Sendable { case bits32, bits64 }

/// A memory operand `[base + index * scale + displacement]` (index optional; scale 1, 2, 4 or 8).
public struct X86Memory: Sendable {
    public var base: X86Register
    public var index: X86Register?
    public var scale: UInt8
    public var displacement: Int32
    public init(_ base: X86Register, _ displacement: Int32 = 0) {
        self.base = base
        self.index = nil
        self.scale = 1
        self.displacement = displacement
    }
    public init(_ base: X86Register, index: X86Register, scale: UInt8, _ displacement: Int32 = 0) {
        precondition(index != .rsp, "rsp cannot be an index register")
        precondition([1, 2, 4, 8].contains(scale), "scale \(scale)")
        self.base = base
        self.index = index
        self.scale = scale
        self.displacement = displacement
    }
    var scaleBits: UInt8 { scale == 1 ? 0 : scale == 2 ? 1 : scale == 4 ? 2 : 3 }
}

/// The two-operand arithmetic group that shares one encoding pattern (opcode = 8 * n + 1 for r/m, r).
public enum X86ALUOperation: UInt8, Sendable {
    case add = 0, or = 1, and = 4, sub = 5, xor = 6, cmp = 7
}

/// Shift kinds (the ModRM reg field of the C1/D3 group).
public enum X86ShiftOperation: UInt8, Sendable {
    case shl = 4, shr = 5, sar = 7
}

/// A position in the code being assembled that jumps can target before it is known.
public struct X86Label: Hashable, Sendable { let id: Int }

/// Appends machine code to a byte buffer. Jumps to labels are patched when the label is bound
/// (`bind`) and `finish` refuses a buffer with a jump to a label that was never bound.
public struct X86Assembler {
    public private(set) var bytes: [UInt8] = []
    private var labelOffsets: [Int?] = []
    /// (offset of the rel32 field, label): each is resolved when its label is bound.
    private var pendingJumps: [(field: Int, label: X86Label)] = []

    public init() {
        bytes.reserveCapacity(4096)
        labelOffsets.reserveCapacity(64)
        pendingJumps.reserveCapacity(64)
    }

    public var offset: Int { bytes.count }

    // MARK: Labels

    public mutating func makeLabel() -> X86Label {
        labelOffsets.append(nil)
        return X86Label(id: labelOffsets.count - 1)
    }

    /// Binds `label` to the current offset and patches the jumps already waiting for it.
    /// Where `label` was bound (nil before).
    public func offset(of label: X86Label) -> Int? { labelOffsets[label.id] }

    public mutating func bind(_ label: X86Label) {
        precondition(labelOffsets[label.id] == nil, "label bound twice")
        labelOffsets[label.id] = offset
        let target = offset
        for jump in pendingJumps where jump.label == label { patchRel32(at: jump.field, target: target) }
        pendingJumps.removeAll { $0.label == label }
    }

    /// The finished code; fails if a jump still targets an unbound label.
    public func finish() -> [UInt8] {
        precondition(pendingJumps.isEmpty, "jump to an unbound label")
        return bytes
    }

    /// Rewrites the rel32 field at `field` so that it reaches `target` (both offsets in this buffer).
    private mutating func patchRel32(at field: Int, target: Int) {
        let displacement = Int32(truncatingIfNeeded: target - (field + 4))
        withUnsafeBytes(of: displacement.littleEndian) { raw in
            for i in 0..<4 { bytes[field + i] = raw[i] }
        }
    }

    private mutating func emitRel32(to label: X86Label) {
        if let target = labelOffsets[label.id] {
            emit32(UInt32(bitPattern: Int32(truncatingIfNeeded: target - (offset + 4))))
        } else {
            pendingJumps.append((offset, label))
            emit32(0)
        }
    }

    // MARK: Encoding helpers

    private mutating func emit(_ byte: UInt8) { bytes.append(byte) }

    private mutating func emit32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    private mutating func emit64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// Emits a REX prefix when one is needed: 64-bit size, an extended register in reg or r/m, or
    /// `byteRegister` (spl, bpl, sil, dil are only reachable with a REX prefix present).
    private mutating func rex(w: Bool, reg: UInt8 = 0, index: UInt8 = 0, rm: UInt8 = 0, byteRegister: Bool = false) {
        let value: UInt8 = 0x40 | (w ? 8 : 0) | (reg >= 8 ? 4 : 0) | (index >= 8 ? 2 : 0) | (rm >= 8 ? 1 : 0)
        if value != 0x40 || byteRegister { emit(value) }
    }

    private mutating func modRM(mod: UInt8, reg: UInt8, rm: UInt8) {
        emit(mod << 6 | (reg & 7) << 3 | (rm & 7))
    }

    /// ModRM (+SIB) (+displacement) for `[base + index * scale + disp]`; disp8 when it fits. An index, or
    /// rsp/r12 as base, needs a SIB byte (r/m = 100), and rbp/r13 as base have no displacement-free form,
    /// so they always get at least a disp8.
    private mutating func memoryOperand(reg: UInt8, _ memory: X86Memory) {
        let base = memory.base
        let disp = memory.displacement
        let mod: UInt8 = (disp == 0 && base.low3 != 5) ? 0 : (Int8(exactly: disp) != nil ? 1 : 2)
        if let index = memory.index {
            modRM(mod: mod, reg: reg, rm: 4)
            emit(memory.scaleBits << 6 | index.low3 << 3 | base.low3)
        } else {
            modRM(mod: mod, reg: reg, rm: base.low3)
            if base.low3 == 4 { emit(0x24) }  // SIB: no index (100), base = rsp/r12
        }
        if mod == 1 { emit(UInt8(bitPattern: Int8(disp))) }
        if mod == 2 { emit32(UInt32(bitPattern: disp)) }
    }

    /// `op reg, r/m` or `op r/m, reg` with a register r/m operand.
    private mutating func registerForm(_ opcode: UInt8, _ opcode2: UInt8? = nil, w: Bool, reg: X86Register, rm: X86Register, byteRegister: Bool = false) {
        rex(w: w, reg: reg.rawValue, rm: rm.rawValue, byteRegister: byteRegister)
        emit(opcode)
        if let opcode2 { emit(opcode2) }
        modRM(mod: 3, reg: reg.rawValue, rm: rm.rawValue)
    }

    private mutating func memoryForm(_ opcode: UInt8, _ opcode2: UInt8? = nil, w: Bool, reg: X86Register, _ memory: X86Memory, byteRegister: Bool = false) {
        rex(w: w, reg: reg.rawValue, index: memory.index?.rawValue ?? 0, rm: memory.base.rawValue, byteRegister: byteRegister)
        emit(opcode)
        if let opcode2 { emit(opcode2) }
        memoryOperand(reg: reg.rawValue, memory)
    }

    /// Group opcodes whose ModRM reg field is an opcode extension (`/n`).
    private mutating func extensionForm(_ opcode: UInt8, _ opcode2: UInt8? = nil, w: Bool, extension n: UInt8, rm: X86Register, byteRegister: Bool = false) {
        rex(w: w, rm: rm.rawValue, byteRegister: byteRegister)
        emit(opcode)
        if let opcode2 { emit(opcode2) }
        modRM(mod: 3, reg: n, rm: rm.rawValue)
    }

    // MARK: Moves

    /// `mov dst, src` (64-bit, or 32-bit which zeroes the upper half).
    public mutating func mov(_ dst: X86Register, _ src: X86Register, width: X86Width = .bits64) {
        registerForm(0x89, w: width == .bits64, reg: src, rm: dst)
    }

    /// Loads an immediate with the shortest encoding: mov r32 (zero-extends), mov r/m64 imm32 (sign-extends),
    /// or movabs imm64.
    public mutating func mov(_ dst: X86Register, immediate: UInt64) {
        if immediate <= UInt64(UInt32.max) {
            rex(w: false, rm: dst.rawValue)
            emit(0xB8 + dst.low3)
            emit32(UInt32(immediate))
        } else if Int32(exactly: Int64(bitPattern: immediate)) != nil {
            extensionForm(0xC7, w: true, extension: 0, rm: dst)
            emit32(UInt32(truncatingIfNeeded: immediate))
        } else {
            rex(w: true, rm: dst.rawValue)
            emit(0xB8 + dst.low3)
            emit64(immediate)
        }
    }

    /// `mov dst, qword [m]`.
    public mutating func mov(_ dst: X86Register, _ memory: X86Memory) {
        memoryForm(0x8B, w: true, reg: dst, memory)
    }

    /// `movabs dst, imm64`: always the 10-byte form, so code that is patched or measured has a fixed size.
    public mutating func movabs(_ dst: X86Register, _ immediate: UInt64) {
        rex(w: true, rm: dst.rawValue)
        emit(0xB8 + dst.low3)
        emit64(immediate)
    }

    /// Loads 1, 2, 4 or 8 bytes from memory into a 64-bit register, sign- or zero-extended (RISC-V lb..ld).
    public mutating func load(_ dst: X86Register, _ memory: X86Memory, bytes size: Int, signed: Bool) {
        switch (size, signed) {
        case (8, _): memoryForm(0x8B, w: true, reg: dst, memory)
        case (4, false): memoryForm(0x8B, w: false, reg: dst, memory)       // mov r32 zeroes bits 63:32
        case (4, true): memoryForm(0x63, w: true, reg: dst, memory)         // movsxd
        case (2, false): memoryForm(0x0F, 0xB7, w: false, reg: dst, memory) // movzx r32, m16
        case (2, true): memoryForm(0x0F, 0xBF, w: true, reg: dst, memory)   // movsx r64, m16
        case (1, false): memoryForm(0x0F, 0xB6, w: false, reg: dst, memory) // movzx r32, m8
        case (1, true): memoryForm(0x0F, 0xBE, w: true, reg: dst, memory)   // movsx r64, m8
        default: preconditionFailure("load size \(size)")
        }
    }

    /// Stores the low 1, 2, 4 or 8 bytes of `src` (RISC-V sb..sd).
    public mutating func store(_ memory: X86Memory, _ src: X86Register, bytes size: Int) {
        switch size {
        case 8: memoryForm(0x89, w: true, reg: src, memory)
        case 4: memoryForm(0x89, w: false, reg: src, memory)
        case 2: emit(0x66); memoryForm(0x89, w: false, reg: src, memory)
        case 1: memoryForm(0x88, w: false, reg: src, memory, byteRegister: src.rawValue >= 4)
        default: preconditionFailure("store size \(size)")
        }
    }

    /// `mov qword [m], imm32` (sign-extended to 64 bits), e.g. to store a guest pc that fits.
    public mutating func store(_ memory: X86Memory, immediate: Int32) {
        memoryForm(0xC7, w: true, reg: .rax, memory)  // reg field 0 = /0
        emit32(UInt32(bitPattern: immediate))
    }

    /// `lea dst, [base + disp]`.
    public mutating func lea(_ dst: X86Register, _ memory: X86Memory) {
        memoryForm(0x8D, w: true, reg: dst, memory)
    }

    /// `movsxd dst, src32`: sign-extends a 32-bit result to 64 bits (every RV64 W-form ends with this).
    public mutating func movsxd(_ dst: X86Register, _ src: X86Register) {
        registerForm(0x63, w: true, reg: dst, rm: src)
    }

    /// `movsx dst64, src8/src16`.
    public mutating func movsx(_ dst: X86Register, _ src: X86Register, fromBytes size: Int) {
        precondition(size == 1 || size == 2)
        registerForm(0x0F, size == 1 ? 0xBE : 0xBF, w: true, reg: dst, rm: src, byteRegister: size == 1 && src.rawValue >= 4)
    }

    /// `movzx dst32, src8/src16` (writing the 32-bit register clears bits 63:32 too).
    public mutating func movzx(_ dst: X86Register, _ src: X86Register, fromBytes size: Int) {
        precondition(size == 1 || size == 2)
        registerForm(0x0F, size == 1 ? 0xB6 : 0xB7, w: false, reg: dst, rm: src, byteRegister: size == 1 && src.rawValue >= 4)
    }

    // MARK: Arithmetic

    /// `op dst, src` for add/or/and/sub/xor/cmp.
    public mutating func alu(_ operation: X86ALUOperation, _ dst: X86Register, _ src: X86Register, width: X86Width = .bits64) {
        registerForm(operation.rawValue << 3 | 0x01, w: width == .bits64, reg: src, rm: dst)
    }

    /// `op dst, [m]`: a guest register operand read straight from the register file.
    public mutating func alu(_ operation: X86ALUOperation, _ dst: X86Register, _ memory: X86Memory, width: X86Width = .bits64) {
        memoryForm(operation.rawValue << 3 | 0x03, w: width == .bits64, reg: dst, memory)
    }

    /// `op dst, imm` (sign-extended imm8 form when it fits, else imm32).
    public mutating func alu(_ operation: X86ALUOperation, _ dst: X86Register, immediate: Int32, width: X86Width = .bits64) {
        if let small = Int8(exactly: immediate) {
            extensionForm(0x83, w: width == .bits64, extension: operation.rawValue, rm: dst)
            emit(UInt8(bitPattern: small))
        } else {
            extensionForm(0x81, w: width == .bits64, extension: operation.rawValue, rm: dst)
            emit32(UInt32(bitPattern: immediate))
        }
    }

    /// `op [m], src`: read-modify-write of a frame field (counters) without a register round trip.
    public mutating func alu(_ operation: X86ALUOperation, _ memory: X86Memory, _ src: X86Register, width: X86Width = .bits64) {
        memoryForm(operation.rawValue << 3 | 0x01, w: width == .bits64, reg: src, memory)
    }

    /// `op [m], imm` (sign-extended imm8 form when it fits, else imm32).
    public mutating func alu(_ operation: X86ALUOperation, _ memory: X86Memory, immediate: Int32, width: X86Width = .bits64) {
        let n = X86Register(rawValue: operation.rawValue)!  // the ModRM reg field carries the opcode extension
        if let small = Int8(exactly: immediate) {
            memoryForm(0x83, w: width == .bits64, reg: n, memory)
            emit(UInt8(bitPattern: small))
        } else {
            memoryForm(0x81, w: width == .bits64, reg: n, memory)
            emit32(UInt32(bitPattern: immediate))
        }
    }

    public mutating func add(_ dst: X86Register, _ src: X86Register, width: X86Width = .bits64) { alu(.add, dst, src, width: width) }
    public mutating func sub(_ dst: X86Register, _ src: X86Register, width: X86Width = .bits64) { alu(.sub, dst, src, width: width) }
    public mutating func and(_ dst: X86Register, _ src: X86Register, width: X86Width = .bits64) { alu(.and, dst, src, width: width) }
    public mutating func or(_ dst: X86Register, _ src: X86Register, width: X86Width = .bits64) { alu(.or, dst, src, width: width) }
    public mutating func xor(_ dst: X86Register, _ src: X86Register, width: X86Width = .bits64) { alu(.xor, dst, src, width: width) }
    public mutating func cmp(_ lhs: X86Register, _ rhs: X86Register, width: X86Width = .bits64) { alu(.cmp, lhs, rhs, width: width) }

    /// `test lhs, rhs`.
    public mutating func test(_ lhs: X86Register, _ rhs: X86Register, width: X86Width = .bits64) {
        registerForm(0x85, w: width == .bits64, reg: rhs, rm: lhs)
    }

    /// `imul dst, src` (the low half of the product, as RISC-V mul/mulw).
    public mutating func imul(_ dst: X86Register, _ src: X86Register, width: X86Width = .bits64) {
        registerForm(0x0F, 0xAF, w: width == .bits64, reg: dst, rm: src)
    }

    /// `neg dst` and `not dst`.
    public mutating func neg(_ dst: X86Register, width: X86Width = .bits64) { extensionForm(0xF7, w: width == .bits64, extension: 3, rm: dst) }
    public mutating func not(_ dst: X86Register, width: X86Width = .bits64) { extensionForm(0xF7, w: width == .bits64, extension: 2, rm: dst) }

    /// Shift by an immediate count (x86 masks it to 5 or 6 bits, as RISC-V does).
    public mutating func shift(_ operation: X86ShiftOperation, _ dst: X86Register, by count: UInt8, width: X86Width = .bits64) {
        extensionForm(0xC1, w: width == .bits64, extension: operation.rawValue, rm: dst)
        emit(count)
    }

    /// Shift by cl (the caller puts the guest shift amount in rcx).
    public mutating func shiftByCL(_ operation: X86ShiftOperation, _ dst: X86Register, width: X86Width = .bits64) {
        extensionForm(0xD3, w: width == .bits64, extension: operation.rawValue, rm: dst)
    }

    /// `setcc dst8`: 1 or 0 in the low byte (follow with movzx to widen; RISC-V slt/sltu).
    public mutating func set(_ condition: X86Condition, _ dst: X86Register) {
        extensionForm(0x0F, 0x90 | condition.rawValue, w: false, extension: 0, rm: dst, byteRegister: dst.rawValue >= 4)
    }

    /// `cmovcc dst, src`: branch-free selects (RISC-V min/max, the div-by-zero results).
    public mutating func cmov(_ condition: X86Condition, _ dst: X86Register, _ src: X86Register, width: X86Width = .bits64) {
        registerForm(0x0F, 0x40 | condition.rawValue, w: width == .bits64, reg: dst, rm: src)
    }

    /// `cqo` / `cdq`: sign-extend rax into rdx before a signed divide.
    public mutating func signExtendAccumulator(width: X86Width = .bits64) {
        if width == .bits64 { emit(0x48) }
        emit(0x99)
    }

    /// One-operand multiply and divide on rdx:rax: `mul`/`imul` leave the high half in rdx (RISC-V mulh*),
    /// `div`/`idiv` the quotient in rax and the remainder in rdx. Dividing by zero or INT_MIN by -1 raises #DE
    /// on x86, so the translator must test those cases first (RISC-V defines their results instead).
    public mutating func mul(_ src: X86Register, width: X86Width = .bits64) { extensionForm(0xF7, w: width == .bits64, extension: 4, rm: src) }
    public mutating func imul(_ src: X86Register, width: X86Width = .bits64) { extensionForm(0xF7, w: width == .bits64, extension: 5, rm: src) }
    public mutating func div(_ src: X86Register, width: X86Width = .bits64) { extensionForm(0xF7, w: width == .bits64, extension: 6, rm: src) }
    public mutating func idiv(_ src: X86Register, width: X86Width = .bits64) { extensionForm(0xF7, w: width == .bits64, extension: 7, rm: src) }

    // MARK: Atomics (RISC-V AMOs and LR/SC on guest RAM)

    /// `lock cmpxchg [m], src`: compares rax with [m], stores src if equal; ZF says which (sc.w/sc.d).
    public mutating func lockCmpxchg(_ memory: X86Memory, _ src: X86Register, width: X86Width = .bits64) {
        emit(0xF0)
        memoryForm(0x0F, 0xB1, w: width == .bits64, reg: src, memory)
    }

    /// `lock xadd [m], src`: src gets the old value, [m] the sum (amoadd).
    public mutating func lockXadd(_ memory: X86Memory, _ src: X86Register, width: X86Width = .bits64) {
        emit(0xF0)
        memoryForm(0x0F, 0xC1, w: width == .bits64, reg: src, memory)
    }

    /// `xchg [m], src` (locked implicitly; amoswap).
    public mutating func xchg(_ memory: X86Memory, _ src: X86Register, width: X86Width = .bits64) {
        memoryForm(0x87, w: width == .bits64, reg: src, memory)
    }

    /// `mfence`: orders stores before later loads (RISC-V fence rw,rw on x86-64's TSO).
    public mutating func mfence() { bytes.append(contentsOf: [0x0F, 0xAE, 0xF0]) }

    /// Multi-byte NOPs (the forms the vendors recommend, at most 9 bytes each) up to the next multiple of
    /// `alignment` bytes from the start of the code: a loop head then starts a fetch window.
    public mutating func alignWithNops(to alignment: Int) {
        let forms: [[UInt8]] = [[0x90], [0x66, 0x90], [0x0F, 0x1F, 0x00], [0x0F, 0x1F, 0x40, 0x00],
                                [0x0F, 0x1F, 0x44, 0x00, 0x00], [0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00],
                                [0x0F, 0x1F, 0x80, 0x00, 0x00, 0x00, 0x00],
                                [0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
                                [0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00]]
        var padding = (alignment - bytes.count % alignment) % alignment
        while padding > 0 {
            let n = min(padding, forms.count)
            bytes.append(contentsOf: forms[n - 1])
            padding -= n
        }
    }

    // MARK: Control flow

    /// `jcc rel32` to a label.
    public mutating func jump(if condition: X86Condition, to label: X86Label) {
        emit(0x0F)
        emit(0x80 | condition.rawValue)
        emitRel32(to: label)
    }

    /// `jmp rel32` to a label.
    public mutating func jump(to label: X86Label) {
        emit(0xE9)
        emitRel32(to: label)
    }

    /// `jmp rel32` / `call rel32` with a displacement computed by the caller (from the end of this instruction),
    /// for targets outside this buffer once its final address is known.
    public mutating func jump(displacement: Int32) { emit(0xE9); emit32(UInt32(bitPattern: displacement)) }
    public mutating func jump(if condition: X86Condition, displacement: Int32) {
        emit(0x0F)
        emit(0x80 | condition.rawValue)
        emit32(UInt32(bitPattern: displacement))
    }
    public mutating func call(displacement: Int32) { emit(0xE8); emit32(UInt32(bitPattern: displacement)) }

    /// `call rel32` to a label.
    public mutating func call(_ label: X86Label) {
        emit(0xE8)
        emitRel32(to: label)
    }

    /// `jmp reg` and `call reg`: indirect targets (helpers at absolute addresses, chained-block lookups).
    public mutating func jump(_ target: X86Register) { extensionForm(0xFF, w: false, extension: 4, rm: target) }
    /// `jmp qword [m]`: an indirect jump through a pointer in memory (inline caches of jump targets).
    public mutating func jump(_ memory: X86Memory) { memoryForm(0xFF, w: false, reg: X86Register(rawValue: 4)!, memory) }
    public mutating func call(_ target: X86Register) { extensionForm(0xFF, w: false, extension: 2, rm: target) }

    public mutating func ret() { emit(0xC3) }

    public mutating func push(_ register: X86Register) {
        rex(w: false, rm: register.rawValue)
        emit(0x50 + register.low3)
    }

    public mutating func pop(_ register: X86Register) {
        rex(w: false, rm: register.rawValue)
        emit(0x58 + register.low3)
    }

    // MARK: Scalar doubles (SSE2, and FMA3 where the host has it)

    /// `op xmm, qword [m]` for F2-prefixed scalar-double SSE2 instructions (`movsd` loads).
    private mutating func scalarDouble(opcode: UInt8, xmm: UInt8, _ memory: X86Memory) {
        precondition(xmm < 16)
        emit(0xF2)  // the mandatory prefix comes before REX
        rex(w: false, reg: xmm, index: memory.index?.rawValue ?? 0, rm: memory.base.rawValue)
        emit(0x0F)
        emit(opcode)
        memoryOperand(reg: xmm, memory)
    }

    /// `movsd xmm, qword [m]`.
    public mutating func movsd(xmm: UInt8, _ memory: X86Memory) { scalarDouble(opcode: 0x10, xmm: xmm, memory) }

    /// `addsd/subsd/mulsd/divsd/sqrtsd xmm, qword [m]` (sqrtsd: xmm = sqrt(m)).
    public mutating func scalarDouble(_ operation: X86ScalarDoubleOperation, xmm: UInt8, _ memory: X86Memory) {
        scalarDouble(opcode: operation.rawValue, xmm: xmm, memory)
    }

    /// `ldmxcsr dword [m]` and `stmxcsr dword [m]`: the SSE control and status register (rounding, flags).
    public mutating func loadMXCSR(_ memory: X86Memory) { memoryForm(0x0F, 0xAE, w: false, reg: X86Register(rawValue: 2)!, memory) }
    public mutating func storeMXCSR(_ memory: X86Memory) { memoryForm(0x0F, 0xAE, w: false, reg: X86Register(rawValue: 3)!, memory) }

    /// `test dword [m], imm32`.
    public mutating func test(_ memory: X86Memory, immediate: UInt32) {
        memoryForm(0xF7, w: false, reg: .rax, memory)  // /0
        emit32(immediate)
    }

    /// `movq dst, xmm`: the double's bits into a general register.
    public mutating func movq(_ dst: X86Register, xmm: UInt8) {
        emit(0x66)
        rex(w: true, reg: xmm, rm: dst.rawValue)
        emit(0x0F)
        emit(0x7E)
        modRM(mod: 3, reg: xmm, rm: dst.rawValue)
    }

    /// `vfm{add,sub,nmadd,nmsub}231sd acc, src, qword [m]`: acc = ±(src * m) ± acc with one rounding (VEX.128,
    /// FMA3). acc and src are xmm0-xmm7; the memory operand has no index register.
    public mutating func fusedMultiplyAdd(_ operation: X86FusedMultiplyAdd, accumulator: UInt8, _ source: UInt8, _ memory: X86Memory) {
        precondition(accumulator < 8 && source < 16 && memory.index == nil)
        emit(0xC4)  // three-byte VEX
        emit(0x80 | 0x40 | (memory.base.isExtended ? 0 : 0x20) | 0x02)  // ~R ~X ~B, map 0F38
        emit(0x80 | ((~source & 0xF) << 3) | 0x01)  // W1, ~vvvv = source, L0, pp = 66
        emit(operation.rawValue)
        memoryOperand(reg: accumulator, memory)
    }
}

extension X86Assembler {
    /// `rorx dst, src, count` (BMI2): dst = src rotated right, flags untouched; one instruction for a copy
    /// and a shift whose low bits are masked afterwards.
    public mutating func rotateRightCopy(_ dst: X86Register, _ src: X86Register, by count: UInt8) {
        emit(0xC4)  // three-byte VEX
        emit((dst.isExtended ? 0 : 0x80) | 0x40 | (src.isExtended ? 0 : 0x20) | 0x03)  // ~R ~X ~B, map 0F3A
        emit(0x80 | 0x78 | 0x03)  // W1, vvvv unused (1111), L0, pp = F2
        emit(0xF0)
        modRM(mod: 3, reg: dst.rawValue & 7, rm: src.rawValue & 7)
        emit(count)
    }
}

/// What the host CPU offers beyond x86-64's baseline (from /proc/cpuinfo's flags; none if it cannot be read).
public enum HostCPU {
    static let flags: Set<Substring> = {
        guard let file = fopen("/proc/cpuinfo", "r") else { return [] }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 8192)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(cString: line)
            if text.hasPrefix("flags") { return Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })) }
        }
        return []
    }()
    /// FMA3 (fused multiply-add with one rounding, VEX-encoded, so AVX too).
    public static let hasFMA = flags.contains("fma") && flags.contains("avx")
    /// BMI2 (rorx).
    public static let hasBMI2 = flags.contains("bmi2")
}

/// F2 0F xx scalar-double operations.
public enum X86ScalarDoubleOperation: UInt8, Sendable {
    case sqrt = 0x51, add = 0x58, mul = 0x59, sub = 0x5C, div = 0x5E
}

/// The 231 forms of the FMA3 scalar-double group (opcodes in map 0F38, W1).
public enum X86FusedMultiplyAdd: UInt8, Sendable {
    /// acc = src * m + acc
    case multiplyAdd = 0xB9
    /// acc = src * m - acc
    case multiplySubtract = 0xBB
    /// acc = -(src * m) + acc
    case negatedMultiplyAdd = 0xBD
    /// acc = -(src * m) - acc
    case negatedMultiplySubtract = 0xBF
}
