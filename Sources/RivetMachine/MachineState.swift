#if canImport(Glibc)
import Glibc
#endif
import RivetCPU
import RivetDevices
import RivetMemory
import RivetSnapshot
import RivetStorage

/// The configuration a stream belongs to: restore refuses a machine that differs (one line naming what).
struct MachineDescription: Equatable {
    static let sectionName = "machine"
    static let version: UInt32 = 1

    var memorySize: UInt64
    var hartCount: Int
    var misa: UInt64
    var icount: Bool
    /// virtio device id per slot (0 = empty).
    var virtioDevices: [UInt32]
    var drives: [Drive]
    /// Informational: instructions retired when the state was taken.
    var instructions: UInt64 = 0

    struct Drive: Equatable {
        var size: UInt64
        var format: String
        var readOnly: Bool
    }

    func encode() -> [UInt8] {
        var w = StateWriter()
        w.u64(memorySize); w.u32(UInt32(hartCount)); w.u64(misa); w.bool(icount)
        w.u32(UInt32(virtioDevices.count)); for d in virtioDevices { w.u32(d) }
        w.u32(UInt32(drives.count))
        for d in drives { w.u64(d.size); w.string(d.format); w.bool(d.readOnly) }
        w.u64(instructions)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> MachineDescription {
        var r = StateReader(bytes, context: sectionName)
        let mem = try r.u64(), harts = Int(try r.u32()), misa = try r.u64(), icount = try r.bool()
        let slots = Int(try r.u32())
        guard slots <= 64 else { throw SnapshotError("machine: \(slots) virtio slots is implausible") }
        var devices: [UInt32] = []
        for _ in 0..<slots { devices.append(try r.u32()) }
        let n = Int(try r.u32())
        guard n <= 64 else { throw SnapshotError("machine: \(n) drives is implausible") }
        var drives: [Drive] = []
        for _ in 0..<n { drives.append(Drive(size: try r.u64(), format: try r.string(limit: 16), readOnly: try r.bool())) }
        let instructions = try r.u64()
        try r.expectEnd()
        return MachineDescription(memorySize: mem, hartCount: harts, misa: misa, icount: icount,
                                  virtioDevices: devices, drives: drives, instructions: instructions)
    }

    /// Nil when `self` (the stream's) fits `actual` (this machine's); else the difference, in the user's terms.
    /// `anyDriveFormat`: a live migration's destination may keep its disks in another format (blk copies
    /// the contents; QEMU does not compare formats either).
    func mismatch(with actual: MachineDescription, anyDriveFormat: Bool = false) -> String? {
        if memorySize != actual.memorySize {
            return "the snapshot is of a machine with --memory \(sizeText(memorySize)); this one has \(sizeText(actual.memorySize))"
        }
        if hartCount != actual.hartCount {
            return "the snapshot is of a machine with --smp \(hartCount); this one has --smp \(actual.hartCount)"
        }
        if misa != actual.misa { return "the snapshot is of a machine with a different ISA (misa 0x\(String(misa, radix: 16)))" }
        if icount != actual.icount {
            return "the snapshot was taken \(icount ? "with" : "without") --icount; give the same option to restore it"
        }
        if drives.count != actual.drives.count {
            return "the snapshot has \(drives.count) drive(s); this machine has \(actual.drives.count) --drive"
        }
        for (i, (a, b)) in zip(drives, actual.drives).enumerated() where a.size != b.size || a.readOnly != b.readOnly || (a.format != b.format && !anyDriveFormat) {
            return "drive \(i): the snapshot recorded a \(a.size)-byte \(a.format)\(a.readOnly ? " read-only" : "") image; --drive gives a \(b.size)-byte \(b.format)\(b.readOnly ? " read-only" : "") image"
        }
        if virtioDevices != actual.virtioDevices { return "the snapshot's virtio devices \(virtioDevices) differ from this machine's \(actual.virtioDevices)" }
        return nil
    }
}

func sizeText(_ bytes: UInt64) -> String {
    if bytes % (1 << 30) == 0 { return "\(bytes >> 30)G" }
    if bytes % (1 << 20) == 0 { return "\(bytes >> 20)M" }
    return "\(bytes)"
}

/// What `readState` read: RAM and disk contents are in place; the device sections wait for `applyState`.
struct IncomingState {
    var stats = SnapshotStats()
    var sections: [(target: Snapshottable, payload: [UInt8])] = []
    /// The source's run state at the switch-over (live migration), if the stream says.
    var sourceRunState: String? = nil
    /// Drives whose contents came in the stream (they hold their locks already).
    var copiedDrives: Set<Int> = []
    /// Disk contents written since the copied drives were last flushed.
    var unsyncedDrives = false
}

/// Counts of what a save wrote.
public struct SnapshotStats {
    public var bytes: UInt64 = 0
    public var dataPages: UInt64 = 0
    public var zeroPages: UInt64 = 0
    public var mappedPages: UInt64 = 0
}

extension VirtMachine {
    public static let ramSectionName = "ram"
    static let ramSectionVersion: UInt32 = 1
    /// Zero gaps up to this many pages are written as data, so runs (and mappings on restore) stay few.
    static let zeroGapToKeep = 4

    var describe: MachineDescription {
        MachineDescription(
            memorySize: config.memorySize, hartCount: harts.count, misa: CSRFile.misaValue, icount: config.icount,
            virtioDevices: virtio.map { $0.model?.deviceID ?? 0 },
            drives: config.disks.map { d in
                MachineDescription.Drive(size: d.size, format: (d as? ImageLayer)?.format.rawValue ?? "raw", readOnly: d.isReadOnly)
            },
            instructions: totalInstructions)
    }

    /// Every section besides "machine" and "ram", in stream order.
    var stateSections: [Snapshottable] {
        var s: [Snapshottable] = harts
        s += [clock, wires, clint, plic, uart, rtc, syscon] as [Snapshottable]
        s += virtio as [Snapshottable]
        s.append(ConsoleSection(console))  // input read but not yet taken by the UART
        return s
    }

    /// Writes the whole machine state (run-loop thread, between passes). Disks are flushed first, so the
    /// stream and the disk images together are a consistent point.
    public func saveState(to writer: StreamWriter) throws -> SnapshotStats {
        if case .instructionCount = clock.mode { clock.retiredInstructions = totalInstructions }
        console.flush()
        for (i, d) in config.disks.enumerated() {
            do { try d.flush() } catch { throw SnapshotError("drive \(i): flush failed: \(error)") }
        }
        var stats = SnapshotStats()
        try writer.writeHeader()
        try writer.writeSection(name: MachineDescription.sectionName, version: MachineDescription.version, payload: describe.encode())
        try writeRAM(to: writer, stats: &stats)
        for s in stateSections { try writer.writeSection(s) }
        try writer.writeEnd()
        stats.bytes = writer.offset
        return stats
    }

    /// Runs of pages holding any nonzero byte.
    func nonzeroRuns() -> [(first: Int, count: Int)] {
        var runs: [(first: Int, count: Int)] = []
        let words = Int(GuestRAM.pageSize) / 8
        var runStart = -1, lastData = -1
        for page in 0..<ram.pageCount {
            let p = (ram.host + page << Int(GuestRAM.pageShift)).assumingMemoryBound(to: UInt64.self)
            var acc: UInt64 = 0
            var i = 0
            while i < words { acc |= p[i] | p[i + 1] | p[i + 2] | p[i + 3]; i += 4 }
            guard acc != 0 else { continue }
            if runStart >= 0 && page - lastData - 1 <= VirtMachine.zeroGapToKeep {
                lastData = page
            } else {
                if runStart >= 0 { runs.append((runStart, lastData - runStart + 1)) }
                runStart = page; lastData = page
            }
        }
        if runStart >= 0 { runs.append((runStart, lastData - runStart + 1)) }
        return runs
    }

    /// The "ram" section: u64 page size, u64 page count, then records (RAMRecord), page data aligned to
    /// 4096 in the stream. Pages not named by a record are zero.
    func writeRAM(to writer: StreamWriter, stats: inout SnapshotStats) throws {
        let runs = nonzeroRuns()
        let name = VirtMachine.ramSectionName
        let payloadStart = writer.offset + 1 + 2 + UInt64(name.utf8.count) + 4 + 8
        let page = GuestRAM.pageSize
        var pos = payloadStart + 16
        var pads: [UInt32] = []
        for r in runs {
            pos += 21
            let pad = (page - pos % page) % page
            pads.append(UInt32(pad))
            pos += pad + UInt64(r.count) * page
        }
        pos += 1
        try writer.beginSection(name: name, version: VirtMachine.ramSectionVersion, length: pos - payloadStart)
        var w = StateWriter()
        w.u64(page); w.u64(UInt64(ram.pageCount))
        try writer.payloadBytes(w.bytes)
        let zeros = [UInt8](repeating: 0, count: Int(page))
        for (r, pad) in zip(runs, pads) {
            var h = StateWriter()
            h.u8(RAMRecord.data.rawValue); h.u64(UInt64(r.first)); h.u64(UInt64(r.count)); h.u32(pad)
            try writer.payloadBytes(h.bytes)
            try writer.payloadBytes(Array(zeros[0..<Int(pad)]))
            precondition(writer.offset % page == 0)
            try writer.payloadRaw(UnsafeRawBufferPointer(start: ram.host + r.first << Int(GuestRAM.pageShift),
                                                          count: r.count << Int(GuestRAM.pageShift)))
            stats.dataPages += UInt64(r.count)
        }
        try writer.payloadBytes([RAMRecord.end.rawValue])
        try writer.endSection()
        stats.zeroPages = UInt64(ram.pageCount) - stats.dataPages
    }

    /// Replaces the machine's state with the stream's. Everything is checked (framing, checksums, the
    /// configuration, every section present once, every value); on an error the machine must not run.
    /// `mapFile`: map RAM pages copy-on-write from the file when the stream is a regular file.
    /// `live`: the stream comes from a live migration, which may also carry disk contents ("block").
    @discardableResult
    public func restoreState(from reader: StreamReader, mapFile: Bool = true, live: Bool = false) throws -> SnapshotStats {
        let state = try readState(from: reader, mapFile: mapFile, live: live)
        try applyState(state)
        return state.stats
    }

    /// Reads a whole stream: RAM pages go straight into place, disk contents to the drives, device sections
    /// are kept (small) for `applyState`. A live-migration destination calls this on its receiving thread:
    /// `onRunLoop` then runs what touches more than RAM (clearing it, the drives) on the run loop (the
    /// default runs it at once, for callers on the run-loop thread); `progress` sees the bytes read so far.
    func readState(from reader: StreamReader, mapFile: Bool, live: Bool,
                   onRunLoop runLoopHook: ((@escaping (VirtMachine) -> Void) -> Void)? = nil,
                   progress: (UInt64) -> Void = { _ in }) throws -> IncomingState {
        let onRunLoop = runLoopHook ?? { body in body(self) }
        try reader.readHeader()
        guard let first = try reader.nextSection(), first.name == MachineDescription.sectionName else {
            throw SnapshotError("stream does not start with the machine section")
        }
        guard first.version == MachineDescription.version else {
            throw SnapshotError("machine section version \(first.version) is not supported (this rivet reads \(MachineDescription.version))")
        }
        let recorded = try MachineDescription.decode(try reader.payload(of: first))
        if let why = recorded.mismatch(with: describe, anyDriveFormat: live) { throw SnapshotError(why) }

        onRunLoop { m in
            m.ram.clear()
            m.flushDecodedCode()
        }
        var state = IncomingState()
        var byName: [String: Snapshottable] = [:]
        for s in stateSections { byName[s.snapshotName] = s }
        var seen: Set<String> = [MachineDescription.sectionName]
        while let s = try reader.nextSection() {
            defer { progress(reader.offset) }
            // RAM and disk contents may come in several sections (live migration sends rounds); later records win.
            let repeatable = s.name == VirtMachine.ramSectionName || s.name == BlockMigration.sectionName
            guard seen.insert(s.name).inserted || repeatable else {
                throw SnapshotError("section \(s.name) appears twice")
            }
            if s.name == VirtMachine.ramSectionName {
                if state.unsyncedDrives { try syncCopiedDrives(state.copiedDrives, onRunLoop: onRunLoop); state.unsyncedDrives = false }
                guard s.version == VirtMachine.ramSectionVersion else {
                    throw SnapshotError("section ram version \(s.version) is not supported (this rivet reads \(VirtMachine.ramSectionVersion))")
                }
                var sectionStats = SnapshotStats()
                try readRAM(s, from: reader, mapFile: mapFile, stats: &sectionStats)
                state.stats.dataPages += sectionStats.dataPages
                state.stats.mappedPages += sectionStats.mappedPages
                continue
            }
            if s.name == BlockMigration.sectionName {
                guard live else { throw SnapshotError("section block (disk contents) is only accepted from a live migration") }
                try readBlockSection(s, from: reader, lockedDrives: &state.copiedDrives, onRunLoop: onRunLoop)
                state.unsyncedDrives = true
                continue
            }
            if s.name == MigrationRunState.sectionName {
                state.sourceRunState = try MigrationRunState.decode(s, from: reader)
                continue
            }
            guard let target = byName[s.name] else { throw SnapshotError("unknown section \(s.name) (is the stream from another machine or a newer rivet?)") }
            guard s.version == target.snapshotVersion else {
                throw SnapshotError("section \(s.name) version \(s.version) is not supported (this rivet reads \(target.snapshotVersion))")
            }
            state.sections.append((target, try reader.payload(of: s)))
        }
        let missing = ([VirtMachine.ramSectionName] + stateSections.map { $0.snapshotName }).filter { !seen.contains($0) }
        if let m = missing.first { throw SnapshotError("stream lacks section \(m)") }
        state.stats.bytes = reader.offset
        state.stats.zeroPages = UInt64(ram.pageCount) - min(state.stats.dataPages, UInt64(ram.pageCount))
        return state
    }

    /// Restores the device sections `readState` kept (run-loop thread, or before the run loop starts).
    func applyState(_ state: IncomingState) throws {
        for (target, payload) in state.sections {
            var r = StateReader(payload, context: target.snapshotName)
            try target.restoreState(from: &r)
            try r.expectEnd()
        }
        // mtime under --icount derives from the harts' counts, which are back only now.
        if case .instructionCount = clock.mode { clock.retiredInstructions = totalInstructions }
        if let m = clock.restoredMTime { clock.set(mtime: m) }
        clint.updateTimers()
        flushDecodedCode()
    }

    func readRAM(_ s: SectionHeader, from reader: StreamReader, mapFile: Bool, stats: inout SnapshotStats) throws {
        let page = Int(GuestRAM.pageSize)
        var consumed = 0
        func take(_ n: Int) throws -> [UInt8] {
            guard UInt64(consumed + n) <= s.length else { throw SnapshotError("section ram: records run past the section's length") }
            consumed += n
            return try reader.payloadBytes(n, of: s)
        }
        var h = StateReader(try take(16), context: "ram")
        let pageSize = try h.u64(), pageCount = try h.u64()
        guard pageSize == UInt64(page), pageCount == UInt64(ram.pageCount) else {
            throw SnapshotError("section ram: \(pageCount) pages of \(pageSize) bytes do not match this machine's RAM")
        }
        recordLoop: while true {
            let kind = try take(1)[0]
            switch RAMRecord(rawValue: kind) {
            case .end?: break recordLoop
            case .data?, .zero?:
                var r = StateReader(try take(16), context: "ram")
                let first = try r.u64(), count = try r.u64()
                guard count > 0, first < pageCount, count <= pageCount - first else {
                    throw SnapshotError("section ram: page run \(first)+\(count) is outside RAM (\(pageCount) pages)")
                }
                let firstPage = Int(first), pages = Int(count)
                let host = ram.host + firstPage * page
                if kind == RAMRecord.zero.rawValue {
                    // Long runs: give the pages back (anonymous memory reads as zero again) instead of
                    // touching them; not over file mappings, where MADV_DONTNEED would bring the file back.
                    if pages >= 16 && !ram.hasFileMappings { madvise(host, pages * page, MADV_DONTNEED) }
                    else { memset(host, 0, pages * page) }
                    continue
                }
                var pr = StateReader(try take(4), context: "ram")
                let pad = Int(try pr.u32())
                guard pad < page else { throw SnapshotError("section ram: padding \(pad) is implausible") }
                _ = try take(pad)
                let bytes = pages * page
                guard UInt64(consumed) + UInt64(bytes) <= s.length else {
                    throw SnapshotError("section ram: records run past the section's length")
                }
                let dest = UnsafeMutableRawBufferPointer(start: host, count: bytes)
                if mapFile && reader.isMappable && reader.offset % UInt64(page) == 0 &&
                    reader.offset + UInt64(bytes) <= reader.fileSize &&
                    ram.mapFile(fd: reader.fd, fileOffset: reader.offset, firstPage: firstPage, pageCount: pages) {
                    try reader.payloadSkip(bytes, crc: 0, combinedWith: UnsafeRawBufferPointer(dest), of: s)
                    stats.mappedPages += count
                } else {
                    try reader.payloadRead(into: dest, of: s)
                }
                consumed += bytes
                stats.dataPages += count
            case nil:
                throw SnapshotError("section ram: unknown record kind \(kind)")
            }
        }
        guard UInt64(consumed) == s.length else { throw SnapshotError("section ram: \(s.length - UInt64(consumed)) bytes after the end record") }
        try reader.checkTrailer(of: s)
        stats.zeroPages = UInt64(ram.pageCount) - min(stats.dataPages, UInt64(ram.pageCount))
    }
}
