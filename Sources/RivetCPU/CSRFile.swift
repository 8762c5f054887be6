import RivetMemory

/// The control and status registers that hold state (the rest are computed on read). Plain values only,
/// so reading a field never touches reference counts (the PMP registers live in `Hart`).
public struct CSRFile: Equatable {
    public var mstatus: UInt64 = MStatus.uxl | MStatus.sxl
    public var misa: UInt64 = CSRFile.misaValue
    public var medeleg: UInt64 = 0
    public var mideleg: UInt64 = 0
    public var mie: UInt64 = 0
    /// Software-writable pending bits (SSIP, STIP, SEIP); MSIP/MTIP/MEIP come from the interrupt wires.
    public var mip: UInt64 = 0
    public var mtvec: UInt64 = 0
    public var mcounteren: UInt64 = 0
    public var mscratch: UInt64 = 0
    public var mepc: UInt64 = 0
    public var mcause: UInt64 = 0
    public var mtval: UInt64 = 0
    public var menvcfg: UInt64 = 0
    public var mcountinhibit: UInt64 = 0
    public var mhartid: UInt64 = 0
    public var stvec: UInt64 = 0
    public var scounteren: UInt64 = 0
    public var sscratch: UInt64 = 0
    public var sepc: UInt64 = 0
    public var scause: UInt64 = 0
    public var stval: UInt64 = 0
    public var senvcfg: UInt64 = 0
    public var satp: UInt64 = 0
    public var fflags: UInt64 = 0
    public var frm: UInt64 = 0
    public var tselect: UInt64 = 0

    /// RV64 with I, M, A, F, D, C, S, U.
    public static let misaValue: UInt64 = (2 << 62) | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20)
    /// Interrupt bits that exist: SSI, MSI, STI, MTI, SEI, MEI.
    static let interruptMask: UInt64 = (1 << 1) | (1 << 3) | (1 << 5) | (1 << 7) | (1 << 9) | (1 << 11)
    static let supervisorInterrupts: UInt64 = (1 << 1) | (1 << 5) | (1 << 9)
    /// Exceptions that can be delegated (not ecall from M, cause 11).
    static let delegableExceptions: UInt64 = 0xb3ff & ~(1 << 11)
}

// CSR numbers by name (`CSR.mstatus`) are generated from RivetISA's CSR table into CSRNumbers.swift.

extension Hart {
    /// Executes a Zicsr instruction. Returns false when it raises illegal instruction (pending set).
    func executeCSR(_ op: MicroOp) -> Bool {
        let number = Int(op.imm & 0xfff)
        let raw = UInt64(truncatingIfNeeded: op.imm >> 32) & 0xffff_ffff
        let kind = op.extra
        let isImmediate = kind >= 5
        let source: UInt64 = isImmediate ? UInt64(op.rs1) : x[Int(op.rs1)]
        // csrrs/csrrc with rs1 = x0 (or uimm 0) do not write. (csrrw with rd = x0 does not read, but reads
        // have no side effects here, so reading anyway is the same.)
        let writes = (kind & 3) == 1 || op.rs1 != 0
        func illegal() -> Bool { pendingCause = 2; pendingTval = raw; return false }

        // Privilege and read-only checks from the number itself.
        if UInt8((number >> 8) & 3) > privilege.rawValue { return illegal() }
        if writes && (number >> 10) == 3 { return illegal() }

        guard let old = readCSR(number) else { return illegal() }
        if writes {
            // Read-modify-write of mip/sip works on the software-writable bits only: the pins driven by
            // devices (e.g. SEIP from the PLIC) must not be latched into the register.
            let base = (number == CSR.mip || number == CSR.sip) ? csr.mip : old
            let new: UInt64
            switch kind & 3 {
            case 1: new = source
            case 2: new = base | source
            default: new = base & ~source
            }
            if !writeCSR(number, new) { return illegal() }
        }
        x[Int(op.rd)] = old
        return true
    }

    /// Counter access allowed in the current mode by mcounteren/scounteren (bit = counter index).
    func counterAllowed(_ index: Int) -> Bool {
        if privilege == .machine { return true }
        if (csr.mcounteren >> UInt64(index)) & 1 == 0 { return false }
        if privilege == .user && (csr.scounteren >> UInt64(index)) & 1 == 0 { return false }
        return true
    }

    var currentInstret: UInt64 { instret &+ retiredInBlock }

    /// Reads a CSR; nil = does not exist or not accessible (illegal instruction).
    public func readCSR(_ number: Int) -> UInt64? {
        switch number {
        case CSR.fflags: return fpAllowed ? csr.fflags : nil
        case CSR.frm: return fpAllowed ? csr.frm : nil
        case CSR.fcsr: return fpAllowed ? (csr.frm << 5) | csr.fflags : nil
        case CSR.cycle: return counterAllowed(0) ? currentInstret : nil
        case CSR.time: return counterAllowed(1) ? clock.mtime : nil
        case CSR.instret: return counterAllowed(2) ? currentInstret : nil
        case 0xc03...0xc1f: return counterAllowed(number - 0xc00) ? 0 : nil
        case CSR.sstatus: return sstatusValue
        case CSR.sie: return csr.mie & csr.mideleg
        case CSR.stvec: return csr.stvec
        case CSR.scounteren: return csr.scounteren
        case CSR.senvcfg: return csr.senvcfg
        case CSR.sscratch: return csr.sscratch
        case CSR.sepc: return csr.sepc
        case CSR.scause: return csr.scause
        case CSR.stval: return csr.stval
        case CSR.sip: return effectiveMIP & csr.mideleg
        case CSR.satp:
            if privilege == .supervisor && (csr.mstatus & MStatus.tvm) != 0 { return nil }
            return csr.satp
        case CSR.mvendorid, CSR.marchid, CSR.mimpid, CSR.mconfigptr: return 0
        case CSR.mhartid: return csr.mhartid
        case CSR.mstatus: return mstatusValue
        case CSR.misa: return csr.misa
        case CSR.medeleg: return csr.medeleg
        case CSR.mideleg: return csr.mideleg
        case CSR.mie: return csr.mie
        case CSR.mtvec: return csr.mtvec
        case CSR.mcounteren: return csr.mcounteren
        case CSR.menvcfg: return csr.menvcfg
        case CSR.mcountinhibit: return csr.mcountinhibit
        case CSR.mscratch: return csr.mscratch
        case CSR.mepc: return csr.mepc
        case CSR.mcause: return csr.mcause
        case CSR.mtval: return csr.mtval
        case CSR.mip: return effectiveMIP
        case CSR.mcycle, CSR.minstret: return currentInstret
        case 0xb03...0xb1f, 0x323...0x33f: return 0  // mhpmcounter3..31, mhpmevent3..31: hardwired zero
        case 0x3a0...0x3af:  // pmpcfg: only even numbers exist on RV64
            return number & 1 == 0 ? pmpcfg[(number - 0x3a0) / 2] : nil
        case 0x3b0...0x3ef: return pmpaddr[number - 0x3b0]  // entries 16-63 stay zero
        case CSR.tselect: return csr.tselect
        case CSR.tdata1, CSR.tdata2, CSR.tdata3: return 0  // no triggers implemented
        default: return nil
        }
    }

    var fpAllowed: Bool { csr.mstatus & MStatus.fsMask != 0 }

    var mstatusValue: UInt64 {
        let s = csr.mstatus
        return (s & MStatus.fsMask) == MStatus.fsDirty ? s | MStatus.sd : s & ~MStatus.sd
    }
    var sstatusValue: UInt64 { mstatusValue & MStatus.readableS }

    /// Writes a CSR (WARL rules applied). False = illegal instruction.
    @discardableResult
    public func writeCSR(_ number: Int, _ value: UInt64) -> Bool {
        switch number {
        case CSR.fflags:
            guard fpAllowed else { return false }
            csr.fflags = value & 0x1f; markFPDirty()
        case CSR.frm:
            guard fpAllowed else { return false }
            csr.frm = value & 7; markFPDirty()
        case CSR.fcsr:
            guard fpAllowed else { return false }
            csr.fflags = value & 0x1f; csr.frm = (value >> 5) & 7; markFPDirty()
        case CSR.sstatus:
            setMStatus((csr.mstatus & ~MStatus.writableS) | (value & MStatus.writableS))
        case CSR.sie:
            csr.mie = (csr.mie & ~csr.mideleg) | (value & csr.mideleg)
        case CSR.stvec: csr.stvec = value & ~2
        case CSR.scounteren: csr.scounteren = value & 0xffff_ffff
        case CSR.senvcfg: csr.senvcfg = value & 1
        case CSR.sscratch: csr.sscratch = value
        case CSR.sepc: csr.sepc = value & ~1
        case CSR.scause: csr.scause = value
        case CSR.stval: csr.stval = value
        case CSR.sip:
            // Only SSIP is writable through sip.
            let mask = csr.mideleg & (1 << 1)
            csr.mip = (csr.mip & ~mask) | (value & mask)
        case CSR.satp:
            if privilege == .supervisor && (csr.mstatus & MStatus.tvm) != 0 { return false }
            let mode = value >> 60
            guard mode == 0 || (mode >= 8 && mode <= mmuMode.satpMode) else { return true }  // unsupported: no effect
            csr.satp = value & ((0xf << 60) | (0xffff << 44) | 0xfff_ffff_ffff)
            flushTLB()
        case CSR.mstatus:
            setMStatus((csr.mstatus & ~MStatus.writableM) | (value & MStatus.writableM))
        case CSR.misa: break  // fixed
        case CSR.medeleg: csr.medeleg = value & CSRFile.delegableExceptions
        case CSR.mideleg: csr.mideleg = value & CSRFile.supervisorInterrupts
        case CSR.mie: csr.mie = value & CSRFile.interruptMask
        case CSR.mtvec: csr.mtvec = value & ~2
        case CSR.mcounteren: csr.mcounteren = value & 0xffff_ffff
        case CSR.menvcfg: csr.menvcfg = value & 1
        case CSR.mcountinhibit: csr.mcountinhibit = value & 0xffff_fffd
        case CSR.mscratch: csr.mscratch = value
        case CSR.mepc: csr.mepc = value & ~1
        case CSR.mcause: csr.mcause = value
        case CSR.mtval: csr.mtval = value
        case CSR.mip:
            let mask: UInt64 = (1 << 1) | (1 << 5) | (1 << 9)  // SSIP, STIP, SEIP
            csr.mip = (csr.mip & ~mask) | (value & mask)
        case CSR.mcycle, CSR.minstret:
            // The write replaces this instruction's own increment (added when its block retires).
            instret = value &- retiredInBlock &- 1
        case 0xb03...0xb1f, 0x323...0x33f: break
        case 0x3a0...0x3af:
            guard number & 1 == 0 else { return false }
            writePMPConfig(register: (number - 0x3a0) / 2, value)
        case 0x3b0...0x3ef: writePMPAddress(number - 0x3b0, value)
        case CSR.tselect: csr.tselect = 0
        case CSR.tdata1, CSR.tdata2, CSR.tdata3: break
        case CSR.mvendorid, CSR.marchid, CSR.mimpid, CSR.mhartid, CSR.mconfigptr: return false
        default:
            return readCSR(number) != nil
        }
        return true
    }

    func setMStatus(_ value: UInt64) {
        var v = value
        // MPP cannot hold the reserved value 2.
        if (v & MStatus.mppMask) >> MStatus.mppShift == 2 { v &= ~MStatus.mppMask }
        let old = csr.mstatus
        csr.mstatus = v | MStatus.uxl | MStatus.sxl
        let translationBits = MStatus.mprv | MStatus.mppMask | MStatus.sum | MStatus.mxr
        if (old ^ csr.mstatus) & translationBits != 0 {
            if (old ^ csr.mstatus) & MStatus.mxr != 0 {
                flushTLB()
            } else if (old & MStatus.sum) != 0 && (csr.mstatus & MStatus.sum) == 0 && supervisorTLBHasUserPages {
                flushTLB()
            }
            updateTranslationMode()
        }
    }

    @inline(__always) func markFPDirty() { csr.mstatus |= MStatus.fsDirty }
}
