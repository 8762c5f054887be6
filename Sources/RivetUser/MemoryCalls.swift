#if canImport(Glibc)
import Glibc
#endif

extension AddressSpace {
    /// MADV_DONTNEED: drops the pages' contents (they read back as zero), keeping the mapping.
    func discard(_ start: UInt64, _ length: UInt64) {
        var va = start
        while va < start + length {
            if let slot = leafSlot(va, create: false), slot.pointee & PTE.mapped != 0, slot.pointee & PTE.shared == 0 {
                let pte = slot.pointee
                if PTE.ppn(pte) != 0 {
                    let pa = PTE.ppn(pte) << 12
                    ram.noteWrite(pa, length: 4096)
                    host(pa).initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
                }
            }
            va += 4096
        }
    }

    /// The Linux protection of a mapped page.
    func prot(at va: UInt64) -> UInt64 {
        guard let slot = leafSlot(va, create: false) else { return 0 }
        let p = slot.pointee
        return (p & PTE.r != 0 ? Prot.read : 0) | (p & PTE.w != 0 ? Prot.write : 0) | (p & PTE.x != 0 ? Prot.exec : 0)
    }
}

extension UserProcess {
    static let mapShared: UInt64 = 1, mapPrivate: UInt64 = 2, mapFixed: UInt64 = 0x10, mapAnonymous: UInt64 = 0x20
    static let mapFixedNoreplace: UInt64 = 0x10_0000

    /// brk: grows or shrinks the heap after the program's image; returns the (possibly unchanged) break.
    func brkCall(_ want: UInt64) -> Int64 {
        let cur = mm.brkCurrent
        guard want >= mm.brkStart, want < AddressSpace.mmapMin + AddressSpace.mmapTop else { return Int64(cur) }
        let oldTop = AddressSpace.pageAlignUp(cur), newTop = AddressSpace.pageAlignUp(want)
        if newTop > oldTop {
            guard mm.isFree(oldTop, newTop - oldTop), (try? mm.map(oldTop, newTop - oldTop, prot: Prot.read | Prot.write)) != nil else {
                return Int64(cur)
            }
        } else if newTop < oldTop {
            mm.unmap(newTop, oldTop - newTop)
        }
        mm.brkCurrent = want
        return Int64(want)
    }

    func mmapCall(_ t: GuestThread, _ addr: UInt64, _ length: UInt64, _ prot: UInt64, _ flags: UInt64, _ fdArg: UInt64, _ offset: UInt64) -> Int64 {
        guard length > 0, offset & 4095 == 0 else { return EINVALr }
        // Offsets past the off_t range (where a mapping could end) overflow, as on Linux.
        guard offset <= UInt64(Int64.max) - AddressSpace.userTop else { return -Int64(EOVERFLOW) }
        let type = flags & 3
        guard type != 0 else { return EINVALr }
        let len = AddressSpace.pageAlignUp(length)
        guard len != 0, len <= AddressSpace.userTop else { return ENOMEMr }
        let anonymous = flags & UserProcess.mapAnonymous != 0
        let fd = i32(fdArg)
        var fileSize: Int64 = 0
        let shared = type == UserProcess.mapShared || type == 3  // MAP_SHARED, MAP_SHARED_VALIDATE
        var hostWritable = true
        if !anonymous {
            var st = stat()
            guard fstat(Int32(fd), &st) == 0 else { return -Int64(EBADF) }
            if (st.st_mode & S_IFMT) == S_IFDIR { return -Int64(ENODEV) }
            fileSize = Int64(st.st_size)
            if shared {
                let mode = fcntl(Int32(fd), F_GETFL) & O_ACCMODE
                // As Linux: a shared mapping needs a readable file, and a writable one for PROT_WRITE.
                if mode == O_WRONLY || (mode == O_RDONLY && prot & Prot.write != 0) { return -Int64(EACCES) }
                hostWritable = mode == O_RDWR
            }
        }
        // The range is chosen and mapped under one hold of the lock: another thread's mmap must not pick the
        // same free range in between.
        let result: Int64 = lock.locked {
            let start: UInt64
            if flags & (UserProcess.mapFixed | UserProcess.mapFixedNoreplace) != 0 {
                guard addr & 4095 == 0 else { return EINVALr }
                guard AddressSpace.validRange(addr, len) else { return ENOMEMr }
                if flags & UserProcess.mapFixed == 0 && !mm.isFree(addr, len) { return -Int64(EEXIST) }
                mm.unmap(addr, len)
                start = addr
            } else if addr != 0, addr & 4095 == 0, AddressSpace.validRange(addr, len), addr >= AddressSpace.mmapMin,
                      mm.isFree(addr, len) {
                start = addr
            } else {
                guard let a = mm.findFree(len) else { return ENOMEMr }
                start = a
            }
            if shared {
                guard (try? mm.mapShared(start, len, prot: prot & 7, fd: anonymous ? nil : Int32(fd), offset: Int64(offset),
                                         fileSize: fileSize, hostWritable: hostWritable)) != nil else { return ENOMEMr }
            } else {
                guard (try? mm.map(start, len, prot: prot & 7)) != nil else { return ENOMEMr }
            }
            return Int64(start)
        }
        if result < 0 { return result }
        let start = UInt64(result)
        let ok: Bool = lock.locked {
            if shared || anonymous { return true }
            // Private file mappings are copies of the file.
            let avail = max(0, fileSize - Int64(offset))
            let n = min(UInt64(avail), len)
            guard n > 0 else { return true }
            mm.openHostAccess(start, n)  // the copy is written whatever the mapping's protection
            defer { mm.applyHostProtection(start, start + AddressSpace.pageAlignUp(n)) }
            guard let ps = mm.pieces(start, n, write: true, force: true) else { return true }
            var off = Int64(offset)
            for p in ps {
                var done = 0
                while done < p.count {
                    let r = pread(Int32(fd), p.baseAddress! + done, p.count - done, off_t(off + Int64(done)))
                    if r <= 0 { break }
                    done += r
                }
                off += Int64(p.count)
            }
            return true
        }
        if ok && !anonymous, let path = UserProcess.fdPath(fd) {
            lock.locked { mm.setName(start, start + len, path: path, offset: offset) }
        }
        t.hart.flushTLB()
        return ok ? Int64(start) : ENOMEMr
    }

    func mremapCall(_ t: GuestThread, _ old: UInt64, _ oldLen0: UInt64, _ newLen0: UInt64, _ flags: UInt64, _ newAddr: UInt64) -> Int64 {
        let mayMove: UInt64 = 1, fixed: UInt64 = 2
        guard old & 4095 == 0, flags & ~3 == 0, flags & fixed == 0 || flags & mayMove != 0 else { return EINVALr }
        let oldLen = AddressSpace.pageAlignUp(oldLen0), newLen = AddressSpace.pageAlignUp(newLen0)
        guard newLen > 0, oldLen > 0, AddressSpace.validRange(old, oldLen) else { return EINVALr }
        defer { t.hart.flushTLB() }
        return lock.locked {
            var va = old
            while va < old + oldLen { guard mm.isMapped(va) else { return -Int64(EFAULT) }; va += 4096 }
            let prot = mm.prot(at: old + oldLen - 4096)
            if flags & fixed != 0 {
                guard newAddr & 4095 == 0, AddressSpace.validRange(newAddr, newLen),
                      newAddr + newLen <= old || old + oldLen <= newAddr else { return EINVALr }  // no overlap, as Linux
                mm.unmap(newAddr, newLen)
                if newLen < oldLen { mm.unmap(old + newLen, oldLen - newLen) }
                do {
                    try mm.move(from: old, to: newAddr, length: min(oldLen, newLen))
                    if newLen > oldLen { try mm.map(newAddr + oldLen, newLen - oldLen, prot: prot) }
                } catch { return ENOMEMr }
                mm.unmap(old, oldLen)
                return Int64(newAddr)
            }
            if newLen <= oldLen {
                if newLen < oldLen { mm.unmap(old + newLen, oldLen - newLen) }
                return Int64(old)
            }
            if AddressSpace.validRange(old + oldLen, newLen - oldLen) && mm.isFree(old + oldLen, newLen - oldLen) {
                guard (try? mm.map(old + oldLen, newLen - oldLen, prot: prot)) != nil else { return ENOMEMr }
                return Int64(old)
            }
            guard flags & mayMove != 0 else { return ENOMEMr }
            guard let dest = mm.findFree(newLen) else { return ENOMEMr }
            do {
                try mm.move(from: old, to: dest, length: oldLen)
                try mm.map(dest + oldLen, newLen - oldLen, prot: prot)
            } catch { return ENOMEMr }
            return Int64(dest)
        }
    }
}
