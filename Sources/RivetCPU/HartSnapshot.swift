import RivetSnapshot

/// Hart state in the snapshot format: every architectural register and CSR, the LR reservation (address
/// and the value LR read, which SC compares) and the work counter that budgets and instruction limits
/// use. Decoded blocks and TLB entries are caches and are not saved; restore flushes them.
/// Version 2 added the reservation value and the work counter.
extension Hart: Snapshottable {
    public var snapshotName: String { "cpu.\(hartID)" }
    public var snapshotVersion: UInt32 { 2 }

    public func saveState(to w: inout StateWriter) {
        w.u64(pc)
        w.u8(privilege.rawValue)
        for i in 0..<32 { w.u64(x[i]) }
        for i in 0..<32 { w.u64(f[i]) }
        w.u64(instret)
        w.bool(waitingForInterrupt)
        w.bool(reservation != nil)
        w.u64(reservation ?? 0)
        w.u64(reservationValue)
        w.u64(work)
        let c = csr
        for v in [c.mstatus, c.misa, c.medeleg, c.mideleg, c.mie, c.mip, c.mtvec, c.mcounteren, c.mscratch,
                  c.mepc, c.mcause, c.mtval, c.menvcfg, c.mcountinhibit, c.mhartid, c.stvec, c.scounteren,
                  c.sscratch, c.sepc, c.scause, c.stval, c.senvcfg, c.satp, c.fflags, c.frm, c.tselect] {
            w.u64(v)
        }
        w.u64s(pmpcfg)
        w.u64s(pmpaddr)
    }

    public func restoreState(from r: inout StateReader) throws {
        let newPC = try r.u64()
        guard let p = Privilege(rawValue: try r.u8()) else { throw SnapshotError("\(snapshotName): invalid privilege level") }
        var xs = [UInt64](), fs = [UInt64]()
        for _ in 0..<32 { xs.append(try r.u64()) }
        for _ in 0..<32 { fs.append(try r.u64()) }
        let newInstret = try r.u64()
        let wfi = try r.bool()
        let hasReservation = try r.bool()
        let res = try r.u64()
        let resValue = try r.u64()
        let newWork = try r.u64()
        var c = CSRFile()
        c.mstatus = try r.u64(); c.misa = try r.u64(); c.medeleg = try r.u64(); c.mideleg = try r.u64()
        c.mie = try r.u64(); c.mip = try r.u64(); c.mtvec = try r.u64(); c.mcounteren = try r.u64()
        c.mscratch = try r.u64(); c.mepc = try r.u64(); c.mcause = try r.u64(); c.mtval = try r.u64()
        c.menvcfg = try r.u64(); c.mcountinhibit = try r.u64(); c.mhartid = try r.u64(); c.stvec = try r.u64()
        c.scounteren = try r.u64(); c.sscratch = try r.u64(); c.sepc = try r.u64(); c.scause = try r.u64()
        c.stval = try r.u64(); c.senvcfg = try r.u64(); c.satp = try r.u64(); c.fflags = try r.u64()
        c.frm = try r.u64(); c.tselect = try r.u64()
        let newPMPCfg = try r.u64s(limit: 8)
        let newPMPAddr = try r.u64s(limit: 64)
        try r.expectEnd()
        // Validate against what the hardware could hold (WARL fields), so a crafted snapshot cannot
        // put the hart in an impossible state.
        guard newPMPCfg.count == 8, newPMPAddr.count == 64 else { throw SnapshotError("\(snapshotName): wrong PMP register count") }
        guard c.mhartid == UInt64(hartID) else { throw SnapshotError("\(snapshotName): saved for hart \(c.mhartid)") }
        guard c.misa == CSRFile.misaValue else { throw SnapshotError("\(snapshotName): saved with a different ISA (misa 0x\(String(c.misa, radix: 16)))") }
        let satpMode = c.satp >> 60
        guard satpMode == 0 || (satpMode >= 8 && satpMode <= mmuMode.satpMode) else {
            throw SnapshotError("\(snapshotName): satp mode \(satpMode) is not supported by this hart (mmu=\(mmuMode.rawValue))")
        }
        guard c.frm <= 7, c.fflags <= 0x1f else { throw SnapshotError("\(snapshotName): invalid fcsr") }
        guard (c.mstatus & MStatus.mppMask) >> MStatus.mppShift != 2 else { throw SnapshotError("\(snapshotName): invalid mstatus.MPP") }
        c.mstatus = (c.mstatus & (MStatus.writableM)) | MStatus.uxl | MStatus.sxl
        c.mip &= (1 << 1) | (1 << 5) | (1 << 9)
        c.mie &= CSRFile.interruptMask
        c.mideleg &= CSRFile.supervisorInterrupts
        c.medeleg &= CSRFile.delegableExceptions
        pc = newPC
        privilege = p
        for i in 0..<32 { x[i] = xs[i]; f[i] = fs[i] }
        x[0] = 0
        instret = newInstret
        waitingForInterrupt = wfi
        reservation = hasReservation ? res : nil
        reservationValue = resValue
        work = newWork
        csr = c
        // Through the WARL rules, with locks released first so that every saved value is taken.
        pmpcfg = Array(repeating: 0, count: 8)
        pmpaddr = Array(repeating: 0, count: 64)
        for i in 0..<PMP.entryCount { writePMPAddress(i, newPMPAddr[i]) }
        for n in 0..<8 { writePMPConfig(register: n, newPMPCfg[n]) }
        flushTLB()
        updateTranslationMode()
    }
}
