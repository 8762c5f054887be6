#if canImport(Glibc)
import Glibc
#endif
import RivetMemory
import RivetSnapshot
import RivetStorage

/// What query-replication reports (shared between the run loop, the replication thread and QMP).
public struct ReplicationInfo {
    /// none; primary: connecting, syncing, replicating, standby-lost, stopped;
    /// standby: waiting, syncing, standby, took-over, ended.
    public var status = "none"
    public var role = ""
    public var periodMs: UInt64 = 0
    /// The last checkpoint the standby acknowledged (primary) or applied (standby).
    public var committedEpoch: UInt64 = 0
    public var checkpoints: UInt64 = 0
    public var lastCheckpointBytes: UInt64 = 0
    public var lastCheckpointPages: UInt64 = 0
    public var lastDiskBytes: UInt64 = 0
    /// Time the guest was held for the last capture, and the longest so far (microseconds).
    public var lastPauseUs: UInt64 = 0
    public var maxPauseUs: UInt64 = 0
    public var totalBytes: UInt64 = 0
    public var error: String? = nil
    public var peer = ""
    public init() {}
}

/// Kinds of message in a replication stream after the base (the "epoch" section says which).
enum ReplicationMessage: UInt32 {
    case checkpoint = 1
    case heartbeat = 2
    /// The primary ends replication on purpose (its machine ended): the standby must not take over.
    case end = 3
    /// Drive contents for a new standby (before its first checkpoint): applied at once, not acknowledged.
    case diskCopy = 4
}

enum ReplicationStream {
    static let epochSection = "epoch"
    static let epochVersion: UInt32 = 1
    static let diskSection = "disk"
    static let diskVersion: UInt32 = 1
    /// Disk records per "disk" section are cut at about this many payload bytes.
    static let diskSectionBytes = 8 << 20
    static let diskWrite: UInt8 = 1
    static let diskDiscard: UInt8 = 2
    /// The primary is never silent longer than this (heartbeats when the period is longer).
    static let heartbeatIntervalMs: UInt64 = 100
    static let diskCopyChunk = 1 << 20
}

/// One epoch's state, captured on the run loop in a moment: the dirty pages copied aside, every device
/// section serialized, the drives' journals taken. Sent by the replication thread while the guest runs on.
final class Checkpoint {
    let epoch: UInt64
    var pages: [Int] = []
    var pageData: UnsafeMutableRawPointer? = nil
    var sections: [(name: String, version: UInt32, payload: [UInt8])] = []
    var journals: [(drive: Int, entries: [JournalEntry])] = []

    init(epoch: UInt64) { self.epoch = epoch }
    deinit { pageData?.deallocate() }

    var diskBytes: Int { journals.reduce(0) { $0 + $1.entries.reduce(0) { $0 + $1.payloadSize } } }
}

extension VirtMachine {
    /// Captures a checkpoint (run-loop thread, between passes, so no hart is mid-instruction). The guest
    /// is not paused in the QMP sense: no STOP/RESUME, the capture is just one more request of the pass.
    func captureCheckpoint(epoch: UInt64, takeJournals: Bool, commit: OutputCommit) -> Checkpoint {
        let cp = Checkpoint(epoch: epoch)
        if case .instructionCount = clock.mode { clock.retiredInstructions = totalInstructions }
        console.flush()  // into the held output of this epoch
        cp.pages = ram.syncDirtyLog()
        let page = Int(GuestRAM.pageSize)
        if !cp.pages.isEmpty {
            let buf = UnsafeMutableRawPointer.allocate(byteCount: cp.pages.count * page, alignment: page)
            for (i, p) in cp.pages.enumerated() { (buf + i * page).copyMemory(from: ram.host + p * page, byteCount: page) }
            cp.pageData = buf
        }
        for s in stateSections {
            var w = StateWriter()
            s.saveState(to: &w)
            cp.sections.append((s.snapshotName, s.snapshotVersion, w.bytes))
        }
        if takeJournals {
            for (i, d) in config.disks.enumerated() {
                guard let j = d as? JournalingDisk, j.isRecording else { continue }
                let entries = j.takeJournal()
                if !entries.isEmpty { cp.journals.append((i, entries)) }
            }
        }
        commit.seal(epoch: epoch)
        return cp
    }
}

/// Where and how a primary replicates: HOST:PORT[,period-ms=N][,ack-timeout-ms=N][,disk-copy=on|off].
struct ReplicationTarget {
    var endpoint: TCPEndpoint
    var periodMs: UInt64
    var ackTimeoutMs: UInt64 = 2000
    var copyDisks = true

    init(_ spec: String, defaultPeriodMs: UInt64) throws {
        let parts = spec.split(separator: ",").map(String.init)
        guard let address = parts.first else { throw SnapshotError("expected tcp:HOST:PORT[,period-ms=N]") }
        periodMs = defaultPeriodMs
        for option in parts.dropFirst() {
            let kv = option.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw SnapshotError("replication option '\(option)' needs a value (key=value)") }
            switch kv[0] {
            case "period-ms":
                guard let v = UInt64(kv[1]), (1...60_000).contains(v) else { throw SnapshotError("period-ms must be 1 to 60000 (got '\(kv[1])')") }
                periodMs = v
            case "ack-timeout-ms":
                guard let v = UInt64(kv[1]), (10...600_000).contains(v) else { throw SnapshotError("ack-timeout-ms must be 10 to 600000 (got '\(kv[1])')") }
                ackTimeoutMs = v
            case "disk-copy":
                guard kv[1] == "on" || kv[1] == "off" else { throw SnapshotError("disk-copy must be on or off (got '\(kv[1])')") }
                copyDisks = kv[1] == "on"
            default: throw SnapshotError("unknown replication option '\(kv[0])' (period-ms, ack-timeout-ms, disk-copy)")
            }
        }
        endpoint = try TCPEndpoint(address)
    }
}

/// A replicating primary (docs/failover.md): a thread copies the machine to the standby (RAM while the
/// guest runs, then a base), then at each period captures a checkpoint on the run loop, sends it while
/// the guest continues and, when the standby acknowledges it, releases that epoch's held output.
public final class Replication {
    unowned let machine: VirtMachine
    let endpoint: TCPEndpoint
    let periodMs: UInt64
    let ackTimeoutMs: UInt64
    let copyDisks: Bool
    var fd: Int32 = -1
    /// Run-loop thread only.
    let commit: OutputCommit
    var savedEventSink: ((MachineEvent) -> Void)? = nil
    var active = false
    /// Shared: set by finish (any thread), read by the replication thread.
    let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    var stopValue = false
    var doneValue = false
    var info = ReplicationInfo()

    init(machine: VirtMachine, target: ReplicationTarget) {
        self.machine = machine
        endpoint = target.endpoint
        periodMs = target.periodMs
        ackTimeoutMs = target.ackTimeoutMs
        copyDisks = target.copyDisks
        let gate = machine.consoleGate
        commit = OutputCommit(releaseConsole: { gate.writeReleased($0) })
    }

    /// Checks a `--replicate` value before the machine starts.
    public static func validate(_ spec: String) throws { _ = try ReplicationTarget(spec, defaultPeriodMs: 50) }

    deinit { pthread_mutex_destroy(lock); lock.deallocate() }

    var stopRequested: Bool {
        get { pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }; return stopValue }
        set { pthread_mutex_lock(lock); stopValue = newValue; pthread_mutex_unlock(lock) }
    }
    var threadDone: Bool {
        get { pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }; return doneValue }
        set { pthread_mutex_lock(lock); doneValue = newValue; pthread_mutex_unlock(lock) }
    }

    func publish() {
        machine.control.replicationInfo = info
    }

    func now() -> UInt64 { VirtualClock.hostNanoseconds() }

    /// Run-loop thread: from here on output is held, writes journaled and pages logged; then the thread starts.
    func begin() {
        let m = machine
        active = true
        m.console.flush()  // output from before replication is not held
        m.consoleGate.hold = commit
        for n in m.networkDevices { (n.card.backend as? CommittedNetworkBackend)?.commit = commit }
        savedEventSink = m.control.eventSink
        let saved = savedEventSink
        let commit = self.commit
        commit.releaseEventSink = saved
        m.control.eventSink = { e in
            if e.isGuestCaused { commit.current.events.append(e) } else { saved?(e) }
        }
        for d in m.config.disks { (d as? JournalingDisk)?.setRecording(true) }
        m.ram.startDirtyLog()
        info.status = "connecting"
        info.role = "primary"
        info.periodMs = periodMs
        info.peer = endpoint.text
        publish()
        // A standby that goes away must not kill the primary with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let r = Unmanaged<Replication>.fromOpaque(raw!).takeRetainedValue()
            r.runThread()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        pthread_detach(thread)
    }

    /// Run-loop thread: replication is over (standby lost or stopped): output flows, logging stops.
    func end(status: String, reason: String?) {
        guard active else { return }
        active = false
        let m = machine
        m.console.flush()
        m.consoleGate.hold = nil
        for n in m.networkDevices { (n.card.backend as? CommittedNetworkBackend)?.commit = nil }
        m.control.eventSink = savedEventSink
        commit.releaseAll()
        for d in m.config.disks { (d as? JournalingDisk)?.setRecording(false) }
        if m.control.liveMigration?.isActive != true { m.ram.stopDirtyLog() }
        info.status = status
        info.error = reason
        publish()
        if let r = reason {
            fputs("rivet: replication to tcp:\(endpoint.text) stopped: \(r); the guest continues unreplicated\n", stderr)
            m.emit(.custom(name: "COLO_EXIT", dataJSON: "{\"mode\": \"primary\", \"reason\": \"error\"}"))
        }
    }

    // MARK: The replication thread

    func runThread() {
        defer {
            if fd >= 0 { close(fd); fd = -1 }
            threadDone = true
        }
        do {
            try replicate()
            // Stopped on purpose (the machine ended): the standby was told not to take over.
            _ = RunLoopCall.run(machine) { _ -> Bool in self.end(status: "stopped", reason: nil); return true }
        } catch {
            let reason = "\(error)"
            _ = RunLoopCall.run(machine) { _ -> Bool in self.end(status: "standby-lost", reason: reason); return true }
        }
    }

    func replicate() throws {
        fd = try endpoint.connectSocket()
        var tv = timeval(tv_sec: Int(ackTimeoutMs / 1000), tv_usec: Int(ackTimeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let writer = StreamWriter(fd: fd)
        info.status = "syncing"; publish()
        // The base: a migration stream (header, machine, RAM while the guest runs, a captured state, end).
        let description = RunLoopCall.run(machine) { m in m.describe.encode() }
        try writer.writeHeader()
        try writer.writeSection(name: MachineDescription.sectionName, version: MachineDescription.version, payload: description)
        var batch = RAMBatchWriter(ram: machine.ram)
        defer { batch.free() }
        let piece = 1 << 16
        for first in stride(from: 0, to: machine.ram.pageCount, by: piece) {
            if stopRequested { throw SnapshotError("replication stopped before the standby had a copy") }
            try batch.send(ArraySlice(Array(first..<min(first + piece, machine.ram.pageCount))), to: writer)
        }
        let base = capture(epoch: 0, takeJournals: false)
        try writeRAM(base, to: writer)
        for s in base.sections { try writer.writeSection(name: s.name, version: s.version, payload: s.payload) }
        try writer.writeEnd()
        if copyDisks { try sendDiskCopy(writer) }
        // Checkpoints. The first carries every journaled write since replication began.
        var epoch: UInt64 = 1
        var lastCapture = now()
        var lastSent = now()
        while true {
            let stop = stopRequested
            let due = lastCapture + periodMs * 1_000_000
            if !stop && now() < due {
                // Idle until the period ends; heartbeats keep the standby from taking over meanwhile.
                if now() - lastSent >= ReplicationStream.heartbeatIntervalMs * 1_000_000 {
                    try writeMessage(.heartbeat, epoch: epoch, to: writer)
                    lastSent = now()
                }
                let wait = min(due - now(), ReplicationStream.heartbeatIntervalMs * 1_000_000)
                usleep(UInt32(max(wait / 1000, 100)))
                continue
            }
            lastCapture = now()
            let cp = capture(epoch: epoch, takeJournals: true)
            let start = writer.offset
            try writeCheckpoint(cp, to: writer)
            try awaitAck()
            lastSent = now()
            let committed = epoch
            machine.control.post { _ in self.commit.release(through: committed) }
            info.status = "replicating"
            info.committedEpoch = committed
            info.checkpoints += 1
            info.lastCheckpointBytes = writer.offset - start
            info.lastCheckpointPages = UInt64(cp.pages.count)
            info.lastDiskBytes = UInt64(cp.diskBytes)
            info.totalBytes = writer.offset
            publish()
            epoch += 1
            if stop {
                try writeMessage(.end, epoch: epoch, to: writer)
                return
            }
        }
    }

    /// Captures on the run loop and records how long the guest was held.
    func capture(epoch: UInt64, takeJournals: Bool) -> Checkpoint {
        let commit = self.commit
        var pause: UInt64 = 0
        let cp = RunLoopCall.run(machine) { m -> Checkpoint in
            let t0 = VirtualClock.hostNanoseconds()
            let c = m.captureCheckpoint(epoch: epoch, takeJournals: takeJournals, commit: commit)
            pause = VirtualClock.hostNanoseconds() - t0
            return c
        }
        info.lastPauseUs = pause / 1000
        info.maxPauseUs = max(info.maxPauseUs, info.lastPauseUs)
        return cp
    }

    func writeMessage(_ kind: ReplicationMessage, epoch: UInt64, to writer: StreamWriter) throws {
        try writer.writeHeader()
        try writeEpoch(kind, epoch: epoch, to: writer)
        try writer.writeEnd()
    }

    func writeEpoch(_ kind: ReplicationMessage, epoch: UInt64, to writer: StreamWriter) throws {
        var w = StateWriter()
        w.u32(kind.rawValue); w.u64(epoch)
        try writer.writeSection(name: ReplicationStream.epochSection, version: ReplicationStream.epochVersion, payload: w.bytes)
    }

    /// header, epoch, ram*, disk*, every device section, end.
    func writeCheckpoint(_ cp: Checkpoint, to writer: StreamWriter) throws {
        try writer.writeHeader()
        try writeEpoch(.checkpoint, epoch: cp.epoch, to: writer)
        try writeRAM(cp, to: writer)
        for j in cp.journals { try writeDisk(drive: j.drive, entries: j.entries, to: writer) }
        for s in cp.sections { try writer.writeSection(name: s.name, version: s.version, payload: s.payload) }
        try writer.writeEnd()
    }

    /// The captured pages as "ram" sections (the migration format: zero and data records, at most
    /// RAMBatchWriter.batchPages pages per section), read from the checkpoint's copy.
    func writeRAM(_ cp: Checkpoint, to writer: StreamWriter) throws {
        guard let data = cp.pageData else { return }
        let page = Int(GuestRAM.pageSize)
        var start = 0
        while start < cp.pages.count {
            let end = min(start + RAMBatchWriter.batchPages, cp.pages.count)
            var runs: [(first: Int, count: Int, zero: Bool, slot: Int)] = []
            for slot in start..<end {
                let p = cp.pages[slot]
                let zero = RAMBatchWriter.isZero(data + slot * page)
                if let last = runs.last, last.zero == zero, last.first + last.count == p {
                    runs[runs.count - 1].count += 1
                } else {
                    runs.append((p, 1, zero, slot))
                }
            }
            var length: UInt64 = 16 + 1
            for r in runs { length += r.zero ? 17 : 21 + UInt64(r.count * page) }
            try writer.beginSection(name: VirtMachine.ramSectionName, version: VirtMachine.ramSectionVersion, length: length)
            var w = StateWriter()
            w.u64(UInt64(page)); w.u64(UInt64(machine.ram.pageCount))
            try writer.payloadBytes(w.bytes)
            for r in runs {
                var h = StateWriter()
                h.u8(r.zero ? RAMRecord.zero.rawValue : RAMRecord.data.rawValue); h.u64(UInt64(r.first)); h.u64(UInt64(r.count))
                if !r.zero { h.u32(0) }
                try writer.payloadBytes(h.bytes)
                if !r.zero { try writer.payloadRaw(UnsafeRawBufferPointer(start: data + r.slot * page, count: r.count * page)) }
            }
            try writer.payloadBytes([RAMRecord.end.rawValue])
            try writer.endSection()
            start = end
        }
    }

    /// "disk" sections: u32 drive, then records (u8 kind, u64 offset, u64 length, data for writes).
    func writeDisk(drive: Int, entries: [JournalEntry], to writer: StreamWriter) throws {
        var i = 0
        while i < entries.count {
            var end = i, bytes = 0
            while end < entries.count && (end == i || bytes + entries[end].payloadSize <= ReplicationStream.diskSectionBytes) {
                bytes += entries[end].payloadSize + 17
                end += 1
            }
            try writer.beginSection(name: ReplicationStream.diskSection, version: ReplicationStream.diskVersion, length: UInt64(4 + bytes))
            var w = StateWriter(); w.u32(UInt32(drive))
            try writer.payloadBytes(w.bytes)
            for e in entries[i..<end] {
                var h = StateWriter()
                switch e {
                case .write(let offset, let data):
                    h.u8(ReplicationStream.diskWrite); h.u64(offset); h.u64(UInt64(data.count))
                    try writer.payloadBytes(h.bytes)
                    try writer.payloadBytes(data)
                case .discard(let offset, let length):
                    h.u8(ReplicationStream.diskDiscard); h.u64(offset); h.u64(length)
                    try writer.payloadBytes(h.bytes)
                }
            }
            try writer.endSection()
            i = end
        }
    }

    /// A new standby gets the drives as they are now, read in chunks on the run loop (so no guest write is
    /// half-seen); writes during the copy are journaled and reach it again in the first checkpoint.
    func sendDiskCopy(_ writer: StreamWriter) throws {
        let drives = machine.config.disks.enumerated().filter { $0.element is JournalingDisk }
        guard !drives.isEmpty else { return }
        try writer.writeHeader()
        try writeEpoch(.diskCopy, epoch: 0, to: writer)
        let chunk = ReplicationStream.diskCopyChunk
        for (i, d) in drives {
            var offset: UInt64 = 0
            var entries: [JournalEntry] = []
            var pending = 0
            while offset < d.size {
                if stopRequested { throw SnapshotError("replication stopped before the standby had a copy") }
                let n = Int(min(UInt64(chunk), d.size - offset))
                let at = offset
                let read = RunLoopCall.run(machine) { _ -> Result<[UInt8], Error> in
                    var b = [UInt8](repeating: 0, count: n)
                    do { try b.withUnsafeMutableBytes { try d.read(at: at, into: $0) } } catch { return .failure(error) }
                    return .success(b)
                }
                let data: [UInt8]
                switch read {
                case .success(let b): data = b
                case .failure(let e): throw SnapshotError("drive \(i): cannot read it for the standby's copy: \(e)")
                }
                if data.allSatisfy({ $0 == 0 }) { entries.append(.discard(offset: at, length: UInt64(n))) } else {
                    entries.append(.write(offset: at, bytes: data)); pending += n
                }
                if pending >= ReplicationStream.diskSectionBytes || entries.count >= 4096 {
                    try writeDisk(drive: i, entries: entries, to: writer); entries = []; pending = 0
                }
                offset += UInt64(n)
            }
            try writeDisk(drive: i, entries: entries, to: writer)
        }
        try writer.writeEnd()
    }

    /// One byte per checkpoint once the standby applied it and made its disk writes durable.
    func awaitAck() throws {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = now() + ackTimeoutMs * 1_000_000
        while true {
            let left = deadline > now() ? Int32((deadline - now()) / 1_000_000) + 1 : 0
            let r = poll(&p, 1, left)
            if r > 0 { break }
            if r < 0 && errno == EINTR { continue }
            if now() >= deadline { throw SnapshotError("the standby did not acknowledge a checkpoint within \(ackTimeoutMs) ms") }
        }
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        guard n == 1, byte == migrationAck else { throw SnapshotError("the standby closed the connection") }
    }

    /// The machine is ending (guest power-off, quit; main thread after the run loop ended): one last
    /// checkpoint, then the end message, so the standby exits instead of taking over. The run loop no
    /// longer runs, so this thread serves the replication thread's requests itself.
    func finish(timeoutMs: UInt64 = 3000) {
        stopRequested = true
        let deadline = now() + timeoutMs * 1_000_000
        while !threadDone && now() < deadline {
            for request in machine.control.takeRequests() { request(machine) }
            usleep(1000)
        }
        for request in machine.control.takeRequests() { request(machine) }
        end(status: "stopped", reason: threadDone ? nil : "the standby did not confirm the last checkpoint")
    }
}

extension MachineControl {
    /// Replication progress (any thread).
    public var replicationInfo: ReplicationInfo {
        get { pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }; return replicationState }
        set { pthread_mutex_lock(mutex); replicationState = newValue; pthread_mutex_unlock(mutex) }
    }
}

extension VirtMachine {
    /// `--replicate tcp:HOST:PORT[,...]` and QMP migrate with the x-colo capability (run-loop thread).
    public func startReplication(to spec: String) throws {
        if let r = control.replicationPrimary, r.active { throw SnapshotError("replication is already running (to tcp:\(r.endpoint.text))") }
        if let m = control.liveMigration, m.isActive { throw SnapshotError("a migration is in progress") }
        let r = Replication(machine: self, target: try ReplicationTarget(spec, defaultPeriodMs: control.checkpointPeriodMs))
        control.replicationPrimary = r
        r.begin()
    }

    /// True while this machine replicates to a standby (run-loop thread).
    public var isReplicating: Bool { control.replicationPrimary?.active == true }

    /// Called once the run loop has ended (main thread): a replicating primary tells its standby.
    public func finishReplication() {
        guard let r = control.replicationPrimary, r.active else { return }
        r.finish()
    }
}
