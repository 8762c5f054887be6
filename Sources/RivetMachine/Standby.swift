#if canImport(Glibc)
import Glibc
#endif
import RivetMemory
import RivetSnapshot
import RivetStorage

/// One replication message read whole and checked (framing, every CRC, the end marker), not yet applied.
final class StagedMessage {
    var kind = ReplicationMessage.heartbeat
    var epoch: UInt64 = 0
    /// RAM runs: data runs hold their bytes, zero runs none.
    var ram: [(first: Int, count: Int, data: [UInt8]?)] = []
    var disk: [(drive: Int, entries: [JournalEntry])] = []
    var sections: [(name: String, version: UInt32, payload: [UInt8])] = []
}

/// The standby side of replication (docs/failover.md): receives the base, then checkpoints into staging
/// buffers, applies each only once it arrived whole, makes its disk writes durable, acknowledges it; and
/// when the primary's stream breaks or falls silent longer than the heartbeat timeout, resumes the guest
/// from the last applied checkpoint.
final class Standby {
    unowned let machine: VirtMachine
    let endpoint: TCPEndpoint
    let listenFD: Int32
    let heartbeatMs: UInt64
    var info = ReplicationInfo()

    init(machine: VirtMachine, endpoint: TCPEndpoint, listenFD: Int32, heartbeatMs: UInt64) {
        self.machine = machine
        self.endpoint = endpoint
        self.listenFD = listenFD
        self.heartbeatMs = heartbeatMs
        info.role = "standby"
        info.status = "waiting"
        info.peer = endpoint.text
    }

    func publish() { machine.control.replicationInfo = info }

    func start() {
        publish()
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let s = Unmanaged<Standby>.fromOpaque(raw!).takeRetainedValue()
            s.runThread()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        pthread_detach(thread)
    }

    /// Ends rivet with status 1: there is no consistent state to take over from.
    func fatal(_ why: String) -> Never {
        machine.console.restore()
        fputs("rivet: --standby tcp:\(endpoint.text): \(why)\n", stderr)
        exit(1)
    }

    func runThread() {
        let fd: Int32
        do { fd = try endpoint.acceptOne(listenFD) } catch { fatal("\(error)") }
        signal(SIGPIPE, SIG_IGN)
        // A read that waits longer than the heartbeat timeout fails: the primary fell silent.
        var tv = timeval(tv_sec: Int(heartbeatMs / 1000), tv_usec: Int(heartbeatMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        info.status = "syncing"; publish()
        let reader = StreamReader(fd: fd)
        let baseError = RunLoopCall.run(machine) { m -> String? in
            do { try m.restoreState(from: reader, mapFile: false); return nil } catch { return "\(error)" }
        }
        if let e = baseError { fatal("the primary's stream ended before the first checkpoint: \(e)") }
        var committed: UInt64? = nil
        while true {
            let message: StagedMessage
            do { message = try readMessage(reader) } catch {
                close(fd)
                guard let epoch = committed else { fatal("the primary's stream ended before the first checkpoint: \(describe(error))") }
                takeOver(epoch: epoch, reason: describe(error))
                return
            }
            switch message.kind {
            case .heartbeat: continue
            case .end:
                close(fd)
                machine.console.restore()
                fputs("rivet: --standby: the primary ended replication (its machine stopped); the standby exits without taking over\n", stderr)
                exit(0)
            case .diskCopy:
                guard committed == nil else { fatal("the primary sent a drive copy after the first checkpoint") }
                if let e = RunLoopCall.run(machine, { m -> String? in self.applyDisk(message, to: m) }) { fatal(e) }
            case .checkpoint:
                if let e = RunLoopCall.run(machine, { m -> String? in self.apply(message, to: m) }) {
                    fatal("checkpoint \(message.epoch) could not be applied: \(e)")
                }
                committed = message.epoch
                info.status = "standby"
                info.committedEpoch = message.epoch
                info.checkpoints += 1
                info.lastCheckpointPages = UInt64(message.ram.reduce(0) { $0 + $1.count })
                info.lastDiskBytes = UInt64(message.disk.reduce(0) { $0 + $1.entries.reduce(0) { $0 + $1.payloadSize } })
                publish()
                var ack = migrationAck
                // A primary that died after sending is noticed at the next read.
                _ = write(fd, &ack, 1)
            }
        }
    }

    func describe(_ error: Error) -> String {
        let text = "\(error)"
        if text.contains("Resource temporarily unavailable") { return "the primary was silent for more than \(heartbeatMs) ms" }
        return text
    }

    /// Resumes the guest from the last applied checkpoint (posted to the run loop).
    func takeOver(epoch: UInt64, reason: String) {
        info.status = "took-over"
        info.error = reason
        publish()
        machine.control.post { m in
            var t = timespec()
            clock_gettime(CLOCK_REALTIME, &t)
            var tm = tm()
            var secs = t.tv_sec
            gmtime_r(&secs, &tm)
            var buf = [CChar](repeating: 0, count: 32)
            _ = strftime(&buf, 32, "%Y-%m-%dT%H:%M:%S", &tm)
            let ms = Int(t.tv_nsec / 1_000_000)
            let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
            let stamp = String(cString: buf) + "." + msText + "Z"
            fputs("rivet: standby took over at \(stamp) from checkpoint \(epoch) (\(reason))\n", stderr)
            m.emit(.custom(name: "COLO_EXIT", dataJSON: "{\"mode\": \"secondary\", \"reason\": \"error\"}"))
            m.resume()
        }
    }

    // MARK: Reading a message into staging

    func readMessage(_ reader: StreamReader) throws -> StagedMessage {
        let msg = StagedMessage()
        try reader.readHeader()
        guard let first = try reader.nextSection(), first.name == ReplicationStream.epochSection,
              first.version == ReplicationStream.epochVersion else {
            throw SnapshotError("replication message does not start with an epoch section")
        }
        var r = StateReader(try reader.payload(of: first), context: "epoch")
        guard let kind = ReplicationMessage(rawValue: try r.u32()) else { throw SnapshotError("unknown replication message kind") }
        msg.kind = kind
        msg.epoch = try r.u64()
        try r.expectEnd()
        let expected = Set(machine.stateSections.map { $0.snapshotName })
        var versions: [String: UInt32] = [:]
        for s in machine.stateSections { versions[s.snapshotName] = s.snapshotVersion }
        var seen: Set<String> = []
        while let s = try reader.nextSection() {
            switch s.name {
            case VirtMachine.ramSectionName:
                guard kind == .checkpoint, s.version == VirtMachine.ramSectionVersion else { throw SnapshotError("unexpected ram section") }
                try stageRAM(s, from: reader, into: msg)
            case ReplicationStream.diskSection:
                guard kind == .checkpoint || kind == .diskCopy, s.version == ReplicationStream.diskVersion else {
                    throw SnapshotError("unexpected disk section")
                }
                try stageDisk(try reader.payload(of: s), into: msg)
            default:
                guard kind == .checkpoint, expected.contains(s.name), versions[s.name] == s.version else {
                    throw SnapshotError("unexpected section \(s.name) version \(s.version)")
                }
                guard seen.insert(s.name).inserted else { throw SnapshotError("section \(s.name) appears twice") }
                msg.sections.append((s.name, s.version, try reader.payload(of: s)))
            }
        }
        if kind == .checkpoint, seen != expected {
            throw SnapshotError("checkpoint \(msg.epoch) lacks section \(expected.subtracting(seen).sorted().first ?? "?")")
        }
        return msg
    }

    func stageRAM(_ s: SectionHeader, from reader: StreamReader, into msg: StagedMessage) throws {
        let page = Int(GuestRAM.pageSize)
        let pageCount = machine.ram.pageCount
        var consumed: UInt64 = 0
        func take(_ n: Int) throws -> [UInt8] {
            guard consumed + UInt64(n) <= s.length else { throw SnapshotError("section ram: records run past the section's length") }
            consumed += UInt64(n)
            return try reader.payloadBytes(n, of: s)
        }
        var h = StateReader(try take(16), context: "ram")
        guard try h.u64() == UInt64(page), try h.u64() == UInt64(pageCount) else {
            throw SnapshotError("section ram: page geometry does not match this machine's RAM")
        }
        while true {
            let kind = try take(1)[0]
            if kind == RAMRecord.end.rawValue { break }
            guard kind == RAMRecord.data.rawValue || kind == RAMRecord.zero.rawValue else {
                throw SnapshotError("section ram: unknown record kind \(kind)")
            }
            var r = StateReader(try take(16), context: "ram")
            let first = try r.u64(), count = try r.u64()
            guard count > 0, first < UInt64(pageCount), count <= UInt64(pageCount) - first else {
                throw SnapshotError("section ram: page run \(first)+\(count) is outside RAM")
            }
            if kind == RAMRecord.zero.rawValue { msg.ram.append((Int(first), Int(count), nil)); continue }
            var pr = StateReader(try take(4), context: "ram")
            guard try pr.u32() == 0 else { throw SnapshotError("section ram: padding in a network stream") }
            let bytes = Int(count) * page
            guard consumed + UInt64(bytes) <= s.length else { throw SnapshotError("section ram: records run past the section's length") }
            var data = [UInt8](repeating: 0, count: bytes)
            try data.withUnsafeMutableBytes { try reader.payloadRead(into: $0, of: s) }
            consumed += UInt64(bytes)
            msg.ram.append((Int(first), Int(count), data))
        }
        guard consumed == s.length else { throw SnapshotError("section ram: bytes after the end record") }
        try reader.checkTrailer(of: s)
    }

    /// A "disk" section: u32 drive, then records (u8 kind, u64 offset, u64 length, the data of a write).
    func stageDisk(_ payload: [UInt8], into msg: StagedMessage) throws {
        var at = 0
        func le(_ n: Int) throws -> UInt64 {
            guard payload.count - at >= n else { throw SnapshotError("disk section: a record runs past the section's end") }
            var v: UInt64 = 0
            for i in 0..<n { v |= UInt64(payload[at + i]) << (8 * i) }
            at += n
            return v
        }
        let drive = Int(try le(4))
        let disks = machine.config.disks
        guard drive < disks.count, !disks[drive].isReadOnly else {
            throw SnapshotError("disk section names drive \(drive), which is not a writable --drive here")
        }
        let size = disks[drive].size
        var entries: [JournalEntry] = []
        while at < payload.count {
            let kind = UInt8(try le(1)), offset = try le(8), length = try le(8)
            guard offset <= size, length <= size - offset else {
                throw SnapshotError("disk section: range \(offset)+\(length) is outside drive \(drive) (\(size) bytes)")
            }
            switch kind {
            case ReplicationStream.diskWrite:
                guard length <= UInt64(payload.count - at) else { throw SnapshotError("disk section: a write runs past the section's end") }
                entries.append(.write(offset: offset, bytes: Array(payload[at..<at + Int(length)])))
                at += Int(length)
            case ReplicationStream.diskDiscard: entries.append(.discard(offset: offset, length: length))
            default: throw SnapshotError("disk section: unknown record kind \(kind)")
            }
        }
        msg.disk.append((drive, entries))
    }

    // MARK: Applying (run-loop thread)

    /// Disk writes first, made durable; then RAM and every device. Nil on success.
    func apply(_ msg: StagedMessage, to m: VirtMachine) -> String? {
        if let e = applyDisk(msg, to: m) { return e }
        let page = Int(GuestRAM.pageSize)
        for run in msg.ram {
            let host = m.ram.host + run.first * page
            if let data = run.data { data.withUnsafeBytes { host.copyMemory(from: $0.baseAddress!, byteCount: data.count) } }
            else { memset(host, 0, run.count * page) }
        }
        var byName: [String: Snapshottable] = [:]
        for s in m.stateSections { byName[s.snapshotName] = s }
        for s in msg.sections {
            var r = StateReader(s.payload, context: s.name)
            do {
                try byName[s.name]!.restoreState(from: &r)
                try r.expectEnd()
            } catch { return "section \(s.name): \(error)" }
        }
        if case .instructionCount = m.clock.mode { m.clock.retiredInstructions = m.totalInstructions }
        if let t = m.clock.restoredMTime { m.clock.set(mtime: t) }
        m.clint.updateTimers()
        m.flushDecodedCode()
        return nil
    }

    func applyDisk(_ msg: StagedMessage, to m: VirtMachine) -> String? {
        var touched: Set<Int> = []
        for (drive, entries) in msg.disk {
            let d = m.config.disks[drive]
            do {
                for e in entries {
                    switch e {
                    case .write(let offset, let bytes): try bytes.withUnsafeBytes { try d.write(at: offset, from: $0) }
                    case .discard(let offset, let length): try d.discard(at: offset, length: length)
                    }
                }
            } catch { return "drive \(drive): \(error)" }
            touched.insert(drive)
        }
        for drive in touched.sorted() {
            do { try m.config.disks[drive].flush() } catch { return "drive \(drive): flush failed: \(error)" }
        }
        return nil
    }
}

extension VirtMachine {
    /// `--incoming tcp:HOST:PORT --standby`: listens now (an error is returned at once), then receives
    /// on its own thread while the machine waits in `inmigrate`.
    public func startStandby(listenOn uri: String, heartbeatMs: UInt64) throws {
        guard uri.hasPrefix("tcp:") else { throw SnapshotError("--standby needs --incoming tcp:HOST:PORT") }
        let endpoint = try TCPEndpoint(String(uri.dropFirst(4)))
        // The standby's drives are its own copies (not shared with the primary): lock them now, so a
        // standby pointed at the primary's own image is refused.
        try activateDiskLocks()
        let fd = try endpoint.listenSocket()
        Standby(machine: self, endpoint: endpoint, listenFD: fd, heartbeatMs: heartbeatMs).start()
    }
}
