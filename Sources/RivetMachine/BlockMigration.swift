#if canImport(Glibc)
import Glibc
#endif
import RivetSnapshot
import RivetStorage

/// Live migration without shared storage (QMP `migrate` with `"blk": true`, or the `block` capability):
/// every writable drive's contents go in the stream, so a destination started with its own image files
/// (same virtual sizes, any format) ends up with the same disk contents at switch-over.
///
/// The source sends each drive's data ranges first (walking the qcow2 tables / SEEK_DATA, down the backing
/// chain; the rest as zero records), then, in each round, the granules written since the previous round
/// (a DirtyTrackingDisk around each drive records them), then in the stop-and-copy the rest. All disk
/// reads happen on the run-loop thread, where the guest's own I/O happens, so a read never races a write.
///
/// "block" section (version 1): u32 drive index, u64 drive size, then records: u8 1 (data), u64 offset,
/// u64 length, the bytes; u8 2 (zero), u64 offset, u64 length; u8 0 (end). Later records win.
final class BlockMigration {
    static let sectionName = "block"
    static let sectionVersion: UInt32 = 1
    /// Disk bytes read per run-loop request and carried per section (QEMU's block migration uses 1 MiB too).
    static let chunkBytes: UInt64 = 1 << 20

    enum Record: UInt8 { case end = 0, data = 1, zero = 2 }

    struct Drive {
        let index: Int
        let disk: DirtyTrackingDisk
        /// Byte ranges that may hold data (the bulk phase's copy), from the drive's allocation.
        var dataRanges: [(offset: UInt64, length: UInt64)] = []
        /// Granules found dirty at the last sync and not sent yet.
        var pending: [Int] = []
    }

    var drives: [Drive] = []
    let total: UInt64
    /// Bytes of the drives covered by sent records (data and zero).
    var transferred: UInt64 = 0
    /// Bytes of the first copy not sent yet.
    var bulkRemaining: UInt64

    /// The writable drives of `machine` (read-only ones are the same on both sides and stay shared).
    init(machine: VirtMachine) throws {
        for (i, d) in machine.config.disks.enumerated() where !d.isReadOnly {
            guard let tracked = decoratorChain(d, find: DirtyTrackingDisk.self) else {
                throw SnapshotError("drive \(i): its writes are not tracked, so it cannot be copied (blk)")
            }
            drives.append(Drive(index: i, disk: tracked))
        }
        total = drives.reduce(0) { $0 + $1.disk.size }
        bulkRemaining = total
    }

    /// Run-loop thread: starts tracking writes and maps what the first copy must send.
    func start() throws {
        for i in drives.indices {
            drives[i].disk.startTracking()
            do {
                drives[i].dataRanges = try dataRanges(of: drives[i].disk, granularity: drives[i].disk.granularity)
            } catch { throw SnapshotError("drive \(drives[i].index): cannot map its allocation: \(error)") }
        }
    }

    /// Run-loop thread: stops tracking (migration over, failed or cancelled).
    func stop() { for d in drives { d.disk.stopTracking() } }

    /// Run-loop thread: collects the granules written since the last sync; returns the bytes now pending.
    @discardableResult
    func sync() -> UInt64 {
        for i in drives.indices {
            drives[i].pending = mergeSorted(drives[i].pending, drives[i].disk.takeDirtyGranules())
        }
        return pendingBytes
    }

    var pendingBytes: UInt64 { drives.reduce(0) { $0 + UInt64($1.pending.count) * $1.disk.granularity } }

    var remaining: UInt64 { bulkRemaining + pendingBytes }

    var progress: (transferred: UInt64, remaining: UInt64, total: UInt64) { (transferred, remaining, total) }

    // MARK: Sending

    /// A piece of a drive to send: its bytes (read now), or a range known to read as zeros.
    struct Piece { var offset: UInt64; var length: UInt64; var knownZero: Bool }

    /// The first copy: every data range, and the gaps between them as zero records (the destination's
    /// image need not be empty).
    func sendBulk(_ sender: BlockSender) throws {
        for d in drives {
            var pieces: [Piece] = []
            var pos: UInt64 = 0
            for r in d.dataRanges {
                if r.offset > pos { pieces.append(Piece(offset: pos, length: r.offset - pos, knownZero: true)) }
                pieces.append(Piece(offset: r.offset, length: r.length, knownZero: false))
                pos = r.offset + r.length
            }
            if pos < d.disk.size { pieces.append(Piece(offset: pos, length: d.disk.size - pos, knownZero: true)) }
            try send(pieces, of: d, sender) { self.bulkRemaining -= $0 }
        }
        bulkRemaining = 0
    }

    /// The granules pending since the last sync (a round, or the stop-and-copy after a final sync).
    func sendPending(_ sender: BlockSender) throws {
        for i in drives.indices {
            let d = drives[i]
            var pieces: [Piece] = []
            for g in d.pending {
                let (offset, length) = d.disk.granuleRange(g)
                if let last = pieces.last, last.offset + last.length == offset, last.length < BlockMigration.chunkBytes {
                    pieces[pieces.count - 1].length += length
                } else {
                    pieces.append(Piece(offset: offset, length: length, knownZero: false))
                }
            }
            drives[i].pending = []
            try send(pieces, of: d, sender) { _ in }
        }
    }

    /// Sends pieces of one drive in sections of about `chunkBytes` of data; granules that read as zeros
    /// go as zero records.
    func send(_ pieces: [Piece], of d: Drive, _ sender: BlockSender, covered: (UInt64) -> Void) throws {
        var section = BlockSection(drive: d.index, size: d.disk.size)
        func flushSection() throws {
            guard section.records > 0 else { return }
            try sender.write(section)
            section = BlockSection(drive: d.index, size: d.disk.size)
        }
        for p in pieces {
            if p.knownZero {
                section.zero(p.offset, p.length)
                transferred += p.length
                covered(p.length)
                if section.records >= 4096 { try flushSection() }
                continue
            }
            var pos = p.offset
            while pos < p.offset + p.length {
                let n = min(BlockMigration.chunkBytes - (pos % BlockMigration.chunkBytes), p.offset + p.length - pos)
                let bytes = try sender.read(d.disk, at: pos, count: Int(n))
                section.add(bytes, at: pos, granularity: Int(d.disk.granularity))
                pos += n
                transferred += n
                covered(n)
                if section.dataBytes >= Int(BlockMigration.chunkBytes) { try flushSection() }
            }
        }
        try flushSection()
    }
}

/// Where BlockMigration's reads run and its sections go: the migration thread (reads posted to the run
/// loop, sends paced) or the run loop itself in the stop-and-copy.
struct BlockSender {
    let machine: VirtMachine
    let writer: StreamWriter
    /// True when already on the run-loop thread (the guest is paused).
    let onRunLoop: Bool
    /// Called after each section (pacing, cancellation, progress).
    let afterSection: () throws -> Void

    func read(_ disk: DirtyTrackingDisk, at offset: UInt64, count: Int) throws -> [UInt8] {
        func readNow() -> Result<[UInt8], Error> {
            var bytes = [UInt8](repeating: 0, count: count)
            do {
                try bytes.withUnsafeMutableBytes { try disk.read(at: offset, into: $0) }
                return .success(bytes)
            } catch { return .failure(error) }
        }
        let result = onRunLoop ? readNow() : RunLoopCall.run(machine) { _ in readNow() }
        switch result {
        case .success(let bytes): return bytes
        case .failure(let e): throw SnapshotError("reading a drive to copy it failed: \(e)")
        }
    }

    func write(_ section: BlockSection) throws {
        try writer.writeSection(name: BlockMigration.sectionName, version: BlockMigration.sectionVersion, payload: section.encoded())
        try afterSection()
    }
}

/// One "block" section being built.
struct BlockSection {
    var w = StateWriter()
    var records = 0
    var dataBytes = 0

    init(drive: Int, size: UInt64) { w.u32(UInt32(drive)); w.u64(size) }

    mutating func zero(_ offset: UInt64, _ length: UInt64) {
        w.u8(BlockMigration.Record.zero.rawValue); w.u64(offset); w.u64(length)
        records += 1
    }

    /// `bytes` read at `offset`: runs of granules that are all zero become zero records, the rest data.
    mutating func add(_ bytes: [UInt8], at offset: UInt64, granularity: Int) {
        bytes.withUnsafeBytes { raw in
            var start = 0
            while start < raw.count {
                let zero = isAllZero(raw, start, min(granularity, raw.count - start))
                var end = start
                while end < raw.count && isAllZero(raw, end, min(granularity, raw.count - end)) == zero { end += granularity }
                end = min(end, raw.count)
                if zero { self.zero(offset + UInt64(start), UInt64(end - start)) } else {
                    w.u8(BlockMigration.Record.data.rawValue); w.u64(offset + UInt64(start))
                    w.raw(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                    records += 1
                    dataBytes += end - start
                }
                start = end
            }
        }
    }

    func encoded() -> [UInt8] {
        var out = w
        out.u8(BlockMigration.Record.end.rawValue)
        return out.bytes
    }
}

private func isAllZero(_ raw: UnsafeRawBufferPointer, _ start: Int, _ count: Int) -> Bool {
    var acc: UInt8 = 0
    // Word at a time where aligned; the buffers are Swift arrays (8-byte aligned) and granules are large.
    let words = count / 8
    let base = raw.baseAddress! + start
    if Int(bitPattern: base) & 7 == 0 {
        let p = base.assumingMemoryBound(to: UInt64.self)
        var w: UInt64 = 0
        for i in 0..<words { w |= p[i] }
        if w != 0 { return false }
        for i in words * 8..<count { acc |= raw[start + i] }
        return acc == 0
    }
    for i in 0..<count { acc |= raw[start + i] }
    return acc == 0
}

extension VirtMachine {
    /// Destination: applies one "block" section to this machine's own drive. The payload is read whole and
    /// its CRC and every index, offset and length checked before anything is written; the writes then run
    /// through `onRunLoop` (the receiving thread posts them to the run loop, which owns the drives). The
    /// first section for a drive takes its image's locks: a destination that was given the source's own
    /// image (shared storage) is refused there rather than having two processes write one file.
    func readBlockSection(_ s: SectionHeader, from reader: StreamReader, lockedDrives: inout Set<Int>,
                          onRunLoop: (@escaping (VirtMachine) -> Void) -> Void) throws {
        guard s.version == BlockMigration.sectionVersion else {
            throw SnapshotError("section block version \(s.version) is not supported (this rivet reads \(BlockMigration.sectionVersion))")
        }
        var r = StateReader(try reader.payload(of: s), context: "block")
        let index = Int(try r.u32()), size = try r.u64()
        guard index < config.disks.count else {
            throw SnapshotError("section block: drive \(index) does not exist (this machine has \(config.disks.count) --drive)")
        }
        let disk = config.disks[index]
        guard !disk.isReadOnly else { throw SnapshotError("section block: drive \(index) is read-only here") }
        guard size == disk.size else {
            throw SnapshotError("section block: drive \(index) is \(size) bytes on the source and \(disk.size) here")
        }
        enum Operation { case data(UInt64, [UInt8]), zero(UInt64, UInt64) }
        var operations: [Operation] = []
        decoding: while true {
            let kind = try r.u8()
            switch BlockMigration.Record(rawValue: kind) {
            case .end?:
                try r.expectEnd()
                break decoding
            case .data?:
                let offset = try r.u64()
                let bytes = try r.data(limit: Int(BlockMigration.chunkBytes) * 2)
                guard !bytes.isEmpty, offset <= size, UInt64(bytes.count) <= size - offset else {
                    throw SnapshotError("section block: data at \(offset)+\(bytes.count) is outside drive \(index) (\(size) bytes)")
                }
                operations.append(.data(offset, bytes))
            case .zero?:
                let offset = try r.u64(), length = try r.u64()
                guard length > 0, offset <= size, length <= size - offset else {
                    throw SnapshotError("section block: zeros at \(offset)+\(length) are outside drive \(index) (\(size) bytes)")
                }
                operations.append(.zero(offset, length))
            case nil:
                throw SnapshotError("section block: unknown record kind \(kind)")
            }
        }
        let takeLocks = !lockedDrives.contains(index)
        lockedDrives.insert(index)
        var failure: String? = nil
        onRunLoop { m in
            if takeLocks {
                do { try (disk as? ImageLockHandover)?.activateLocks() } catch {
                    failure = "drive \(index): \(error) (copying the disk (blk) needs the destination's own image)"
                    return
                }
            }
            do {
                for op in operations {
                    switch op {
                    case .data(let offset, let bytes): try bytes.withUnsafeBytes { try disk.write(at: offset, from: $0) }
                    case .zero(let offset, let length): try m.zeroDriveRange(disk, offset, length)
                    }
                }
            } catch { failure = "drive \(index): writing the copied contents failed: \(error)" }
        }
        if let f = failure { throw SnapshotError(f) }
    }

    /// Flushes the drives copied so far, when RAM follows disk contents in the stream (the source's guest
    /// still runs then), so the flush before the acknowledgement, in the downtime, has little left to do.
    func syncCopiedDrives(_ drives: Set<Int>, onRunLoop: (@escaping (VirtMachine) -> Void) -> Void) throws {
        var failure: String? = nil
        onRunLoop { m in
            for i in drives.sorted() {
                do { try m.config.disks[i].flush() } catch { failure = "drive \(i): flush failed: \(error)"; return }
            }
        }
        if let f = failure { throw SnapshotError(f) }
    }

    /// Makes a range of a drive read as zeros, touching only parts that do not already (a fresh image's
    /// unallocated clusters stay unallocated).
    func zeroDriveRange(_ disk: BlockDevice, _ offset: UInt64, _ length: UInt64) throws {
        var pos = offset
        let end = offset + length
        while pos < end {
            if let layer = disk as? ImageLayer {
                let e = try layer.extent(at: pos, maxLength: end - pos)
                if e.length > 0 && (e.kind == .zero || (e.kind == .unallocated && layer.backingDevice == nil)) {
                    pos += min(e.length, end - pos)
                    continue
                }
                let n = e.length > 0 ? min(e.length, end - pos) : end - pos
                try disk.discard(at: pos, length: n)
                pos += n
            } else {
                try disk.discard(at: pos, length: end - pos)
                return
            }
        }
    }
}
