#if canImport(Glibc)
import Glibc
#endif
import RivetMemory
import RivetSnapshot
import RivetStorage

/// Tunables of live migration (QMP migrate-set-parameters), QEMU's names and defaults.
public struct MigrationParameters {
    /// Bytes per second for the rounds while the guest runs (QEMU's default: 128 MiB/s); 0 = unlimited.
    public var maxBandwidth: UInt64 = 128 << 20
    /// The longest pause acceptable for the final stop-and-copy, in milliseconds.
    public var downtimeLimitMs: UInt64 = 300
    /// Rounds without convergence before the harts are throttled (auto-converge).
    public var throttleAfterRounds = 4
    public var throttleInitial = 20
    public var throttleIncrement = 10
    public var throttleMax = 99
    /// The `block` capability (migrate-set-capabilities): copy the writable drives, as `migrate` with `blk`.
    public var blockCapability = false
    public init() {}
}

/// A TCP endpoint "HOST:PORT" (IPv4 dotted quad or localhost).
struct TCPEndpoint {
    var address = sockaddr_in()
    let text: String

    init(_ spec: String) throws {
        text = spec
        guard let colon = spec.lastIndex(of: ":"), let port = UInt16(spec[spec.index(after: colon)...]) else {
            throw SnapshotError("tcp:\(spec): expected tcp:HOST:PORT")
        }
        var host = String(spec[..<colon])
        if host == "localhost" || host.isEmpty { host = host.isEmpty ? "0.0.0.0" : "127.0.0.1" }
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw SnapshotError("tcp:\(spec): the host must be an IPv4 address")
        }
    }

    func connectSocket() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SnapshotError("tcp:\(text): socket failed") }
        var a = address
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = String(cString: strerror(errno)); close(fd)
            throw SnapshotError("tcp:\(text): cannot connect: \(e)")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(4))
        return fd
    }

    /// A listening socket (the destination takes exactly one stream).
    func listenSocket() throws -> Int32 {
        let fd: Int32
        do { fd = try listenTCP(address, backlog: 1) } catch { throw SnapshotError("tcp:\(text): cannot listen: \(error)") }
        fputs("rivet: waiting for an incoming migration on tcp:\(text)\n", stderr)
        return fd
    }

    /// Accepts one connection and closes the listening socket.
    func acceptOne(_ listenFD: Int32) throws -> Int32 {
        defer { close(listenFD) }
        while true {
            let c = accept(listenFD, nil, nil)
            if c >= 0 { _ = fcntl(c, F_SETFD, FD_CLOEXEC); return c }
            if errno != EINTR { throw SnapshotError("tcp:\(text): accept failed: \(String(cString: strerror(errno)))") }
        }
    }
}

/// The destination's answer once the whole stream was read and checked: the source may stop for good.
let migrationAck: UInt8 = 0x06

/// Waits for a posted run-loop request's result (the migration thread's view of the run loop).
final class RunLoopCall<T> {
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    var result: T? = nil

    init() { pthread_mutex_init(mutex, nil); pthread_cond_init(cond, nil) }
    deinit {
        pthread_mutex_destroy(mutex); pthread_cond_destroy(cond)
        mutex.deallocate(); cond.deallocate()
    }

    static func run(_ machine: VirtMachine, _ body: @escaping (VirtMachine) -> T) -> T {
        let call = RunLoopCall<T>()
        machine.control.post { m in
            let r = body(m)
            pthread_mutex_lock(call.mutex); call.result = r; pthread_cond_signal(call.cond); pthread_mutex_unlock(call.mutex)
        }
        pthread_mutex_lock(call.mutex)
        while call.result == nil { pthread_cond_wait(call.cond, call.mutex) }
        let r = call.result!
        pthread_mutex_unlock(call.mutex)
        return r
    }
}

/// Writes RAM page records for live migration: each batch of pages is one "ram" section (its length is
/// known once the batch's pages are copied and classified), so a reader applies rounds in order.
struct RAMBatchWriter {
    static let batchPages = 256
    let ram: GuestRAM
    var scratch: UnsafeMutableRawPointer
    var dataPages: UInt64 = 0
    var zeroPages: UInt64 = 0

    init(ram: GuestRAM) {
        self.ram = ram
        scratch = .allocate(byteCount: RAMBatchWriter.batchPages * Int(GuestRAM.pageSize), alignment: 4096)
    }

    func free() { scratch.deallocate() }

    static func isZero(_ p: UnsafeRawPointer) -> Bool {
        let w = p.assumingMemoryBound(to: UInt64.self)
        var acc: UInt64 = 0
        var i = 0
        while i < 512 { acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3]; i += 4 }
        return acc == 0
    }

    /// Sends `pages` (ascending page indices). The pages are copied first: the guest may be writing them
    /// (any such write is in the dirty log and the page goes again in a later round).
    mutating func send(_ pages: ArraySlice<Int>, to writer: StreamWriter) throws {
        var start = pages.startIndex
        while start < pages.endIndex {
            let end = min(start + RAMBatchWriter.batchPages, pages.endIndex)
            try sendBatch(pages[start..<end], to: writer)
            start = end
        }
    }

    mutating func sendBatch(_ pages: ArraySlice<Int>, to writer: StreamWriter) throws {
        let page = Int(GuestRAM.pageSize)
        // Copy and classify; then group consecutive pages of one kind into records.
        var kinds: [(first: Int, count: Int, zero: Bool, slot: Int)] = []
        var slot = 0
        for p in pages {
            let dst = scratch + slot * page
            // A page that reads as zero is sent as a zero record without copying it; if the guest writes it
            // meanwhile, the write is in the dirty log and the page goes again.
            let zero = RAMBatchWriter.isZero(ram.host + p * page)
            if !zero {
                dst.copyMemory(from: ram.host + p * page, byteCount: page)
            }
            if let last = kinds.last, last.zero == zero, last.first + last.count == p {
                kinds[kinds.count - 1].count += 1
            } else {
                kinds.append((p, 1, zero, slot))
            }
            slot += 1
        }
        var length: UInt64 = 16 + 1
        for k in kinds { length += k.zero ? 17 : 21 + UInt64(k.count * page) }
        try writer.beginSection(name: VirtMachine.ramSectionName, version: VirtMachine.ramSectionVersion, length: length)
        var w = StateWriter()
        w.u64(UInt64(page)); w.u64(UInt64(ram.pageCount))
        try writer.payloadBytes(w.bytes)
        for k in kinds {
            var h = StateWriter()
            h.u8(k.zero ? RAMRecord.zero.rawValue : RAMRecord.data.rawValue); h.u64(UInt64(k.first)); h.u64(UInt64(k.count))
            if k.zero { zeroPages += UInt64(k.count); try writer.payloadBytes(h.bytes); continue }
            h.u32(0)
            try writer.payloadBytes(h.bytes)
            try writer.payloadRaw(UnsafeRawBufferPointer(start: scratch + k.slot * page, count: k.count * page))
            dataPages += UInt64(k.count)
        }
        try writer.payloadBytes([RAMRecord.end.rawValue])
        try writer.endSection()
    }
}

/// An outgoing live migration: a thread sends RAM in rounds while the guest runs, then the run loop
/// pauses the guest and sends the rest with all device state (stop-and-copy).
public final class LiveMigration {
    unowned let machine: VirtMachine
    let endpoint: TCPEndpoint
    /// Read again each round, so migrate-set-parameters applies to a migration in progress (as in QEMU).
    var parameters: MigrationParameters { machine.control.migrationParameters }
    var fd: Int32 = -1
    var thread = pthread_t()
    /// Guards `cancelRequested` and `throttle`, which the migration thread and the run loop share.
    let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    var cancelRequestedValue = false
    var throttleValue = 0
    /// Run-loop thread only: the throttle request is posted.
    var throttling = false
    var info = MigrationInfo()
    let start = VirtualClock.hostNanoseconds()
    /// Copies the writable drives too (blk; nil for shared storage). See BlockMigration.swift.
    let block: BlockMigration?

    init(machine: VirtMachine, endpoint: TCPEndpoint, block: BlockMigration?) {
        self.machine = machine
        self.endpoint = endpoint
        self.block = block
    }

    deinit { pthread_mutex_destroy(lock); lock.deallocate() }

    /// Set by migrate_cancel (any thread); the sender checks it between batches.
    var cancelled: Bool {
        get { pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }; return cancelRequestedValue }
        set { pthread_mutex_lock(lock); cancelRequestedValue = newValue; pthread_mutex_unlock(lock) }
    }

    /// Percentage of host time the harts are held back (auto-converge); 0 = not throttled.
    var throttle: Int {
        get { pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }; return throttleValue }
        set { pthread_mutex_lock(lock); throttleValue = newValue; pthread_mutex_unlock(lock) }
    }

    func publish() {
        info.totalTimeMs = (VirtualClock.hostNanoseconds() - start) / 1_000_000
        if let b = block { info.disk = b.progress }
        machine.control.migrationInfo = info
    }

    /// Status change: query-migrate sees it at once; the MIGRATION event goes out from the run loop.
    func setStatus(_ s: String) {
        info.status = s
        publish()
        machine.control.post { m in m.emit(.migration(status: s)) }
    }

    func begin() {
        info.status = "setup"
        info.live = true
        info.total = machine.ram.size
        info.remaining = machine.ram.size
        if let b = block { info.disk = b.progress }
        machine.control.migrationInfo = info
        machine.emit(.migration(status: "setup"))
        pthread_create(&thread, nil, { raw in
            let m = Unmanaged<LiveMigration>.fromOpaque(raw!).takeRetainedValue()
            m.sendAll()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        pthread_detach(thread)
    }

    func now() -> UInt64 { VirtualClock.hostNanoseconds() }

    /// The migration thread.
    func sendAll() {
        var batch = RAMBatchWriter(ram: machine.ram)
        defer { batch.free() }
        do {
            fd = try endpoint.connectSocket()
            let writer = StreamWriter(fd: fd)
            let setup = RunLoopCall.run(machine) { m -> Result<[UInt8], Error> in
                m.ram.startDirtyLog()
                do { try self.block?.start() } catch { return .failure(error) }
                return .success(m.describe.encode())
            }
            let description = try setup.get()
            try writer.writeHeader()
            try writer.writeSection(name: MachineDescription.sectionName, version: MachineDescription.version, payload: description)
            info.setupTimeMs = (now() - start) / 1_000_000
            setStatus("active")
            let firstStart = now(), firstOffset = writer.offset
            // Disks first (blk): their data ranges; writes made meanwhile go in the rounds.
            try block?.sendBulk(blockSender(writer, roundStart: firstStart, roundOffset: firstOffset))
            // First pass: all of RAM, in pieces (no list of every page for a large machine).
            let piece = 1 << 16
            for first in stride(from: 0, to: machine.ram.pageCount, by: piece) {
                let pieceEnd = min(first + piece, machine.ram.pageCount)
                try sendPaced(ArraySlice(Array(first..<pieceEnd)), batch: &batch, writer: writer,
                              roundStart: firstStart, roundOffset: firstOffset)
            }
            var pages = ArraySlice<Int>()
            var round = 0
            var lastDirty = Int.max
            var stalled = 0
            while true {
                let roundStart = round == 0 ? firstStart : now()
                let before = round == 0 ? firstOffset : writer.offset
                if round > 0 {
                    try sendPaced(pages, batch: &batch, writer: writer, roundStart: roundStart, roundOffset: before)
                    try block?.sendPending(blockSender(writer, roundStart: roundStart, roundOffset: before))
                }
                round += 1
                let (dirty, diskDirty) = RunLoopCall.run(machine) { m in (m.ram.syncDirtyLog(), self.block?.sync() ?? 0) }
                let seconds = max(Double(now() - roundStart) / 1e9, 1e-6)
                let bytes = Double(writer.offset - before)
                var bandwidth = max(bytes / seconds, 1e6)
                if parameters.maxBandwidth > 0 { bandwidth = min(bandwidth, Double(parameters.maxBandwidth)) }
                let remaining = UInt64(dirty.count) * GuestRAM.pageSize + diskDirty
                info.dirtySyncCount += 1
                info.dirtyPagesRate = UInt64(Double(dirty.count) / seconds)
                info.remaining = remaining - diskDirty
                info.expectedDowntimeMs = UInt64(Double(remaining) / bandwidth * 1000)
                info.mbps = bandwidth * 8 / 1e6
                info.transferred = writer.offset
                info.normalPages = batch.dataPages
                info.zeroPages = batch.zeroPages
                publish()
                if info.expectedDowntimeMs <= parameters.downtimeLimitMs {
                    try finish(pending: dirty, writer: writer, batch: &batch)
                    return
                }
                // Auto-converge: rounds that do not shrink the dirty set hold the harts back more.
                if dirty.count >= lastDirty / 2 { stalled += 1 } else { stalled = 0 }
                lastDirty = dirty.count
                if stalled >= parameters.throttleAfterRounds || (throttle > 0 && stalled > 0) {
                    throttle = throttle == 0 ? parameters.throttleInitial : min(throttle + parameters.throttleIncrement, parameters.throttleMax)
                    info.throttlePercent = UInt64(throttle)
                    publish()
                    startThrottle()
                    stalled = 0
                }
                pages = ArraySlice(dirty)
            }
        } catch is CancelledMigration {
            setStatus("cancelling")
            RunLoopCall.run(machine) { m -> Bool in
                m.ram.stopDirtyLog()
                self.block?.stop()
                return true
            }
            throttle = 0
            closeSocket()
            info.remaining = 0
            setStatus("cancelled")
        } catch {
            fail("\(error)")
        }
    }

    struct CancelledMigration: Error {}

    func closeSocket() { if fd >= 0 { close(fd); fd = -1 } }

    /// The source keeps running: logging off, the throttle released, status failed with one line.
    func fail(_ reason: String) {
        throttle = 0
        closeSocket()
        RunLoopCall.run(machine) { m -> Bool in
            m.ram.stopDirtyLog()
            self.block?.stop()
            return true
        }
        info.error = reason
        setStatus("failed")
        fputs("rivet: migration failed: \(reason)\n", stderr)
    }

    /// Sends pages at no more than max-bandwidth.
    func sendPaced(_ pages: ArraySlice<Int>, batch: inout RAMBatchWriter, writer: StreamWriter,
                   roundStart: UInt64, roundOffset before: UInt64) throws {
        var i = pages.startIndex
        while i < pages.endIndex {
            if cancelled { throw CancelledMigration() }
            let end = min(i + RAMBatchWriter.batchPages, pages.endIndex)
            try batch.send(pages[i..<end], to: writer)
            i = end
            info.normalPages = batch.dataPages
            info.zeroPages = batch.zeroPages
            try pace(writer, roundStart: roundStart, roundOffset: before)
        }
        try writer.flush()
    }

    /// After each section sent while the guest runs: progress for query-migrate, then a sleep that keeps
    /// the round at max-bandwidth.
    func pace(_ writer: StreamWriter, roundStart: UInt64, roundOffset before: UInt64) throws {
        info.transferred = writer.offset
        publish()
        if parameters.maxBandwidth > 0 {
            try writer.flush()
            let due = Double(writer.offset - before) / Double(parameters.maxBandwidth) * 1e9
            let spent = Double(now() - roundStart)
            if due > spent { usleep(UInt32(min((due - spent) / 1000, 1e6))) }
        }
    }

    /// Block migration from the migration thread: reads posted to the run loop, sections paced.
    func blockSender(_ writer: StreamWriter, roundStart: UInt64, roundOffset: UInt64) -> BlockSender {
        BlockSender(machine: machine, writer: writer, onRunLoop: false) {
            if self.cancelled { throw CancelledMigration() }
            try self.pace(writer, roundStart: roundStart, roundOffset: roundOffset)
        }
    }

    /// Holds the harts back `throttle` percent of host time: a request that re-posts itself each pass
    /// and sleeps in proportion to the time the harts ran since its last turn.
    func startThrottle() {
        machine.control.post { _ in self.startThrottleOnRunLoop() }
    }

    func startThrottleOnRunLoop() {
        guard !throttling else { return }
        throttling = true
        var lastEnd = now()
        func tick(_ m: VirtMachine) {
            let p = throttle
            guard p > 0 else { throttling = false; return }
            let ran = now() - lastEnd
            let sleepNs = min(ran * UInt64(p) / UInt64(100 - min(p, 99)), 100_000_000)
            if sleepNs > 1000 { usleep(UInt32(sleepNs / 1000)) }
            lastEnd = now()
            m.control.post(tick)
        }
        machine.control.post(tick)
    }

    /// Stop-and-copy on the run loop: pause, the last dirty pages and every device section, then wait
    /// for the destination's acknowledgement. The source stays paused (postmigrate) only if it came.
    func finish(pending: [Int], writer: StreamWriter, batch: inout RAMBatchWriter) throws {
        if cancelled { throw CancelledMigration() }
        throttle = 0
        var b = batch
        let outcome: String? = RunLoopCall.run(machine) { m -> String? in
            let wasRunning = m.control.runState == .running
            let downStart = self.now()
            if wasRunning { m.requestPause(reason: "migration", state: .finishMigrate) }
            do {
                // The pages of the last sync (not sent yet) and those written since.
                let dirty = mergeSorted(pending, m.ram.syncDirtyLog())
                m.ram.stopDirtyLog()
                self.info.dirtySyncCount += 1
                try b.send(ArraySlice(dirty), to: writer)
                if let block = self.block {
                    // The disks' last writes, straight from the run loop (the guest is paused).
                    block.sync()
                    try block.sendPending(BlockSender(machine: m, writer: writer, onRunLoop: true) {})
                    block.stop()
                }
                if case .instructionCount = m.clock.mode { m.clock.retiredInstructions = m.totalInstructions }
                m.console.flush()
                try m.flushDrivesForHandover()
                // Shared storage: the destination takes the image locks once it has the whole stream (QEMU
                // inactivates). Copied drives (blk) stay this process's own.
                if self.block == nil { m.releaseDiskLocks() }
                for s in m.stateSections { try writer.writeSection(s) }
                try writer.writeSection(name: MigrationRunState.sectionName, version: MigrationRunState.version,
                                        payload: MigrationRunState.encode(wasRunning ? .running : .paused))
                try writer.writeEnd()
                try self.awaitAck()
                self.info.downtimeMs = (self.now() - downStart) / 1_000_000
                self.info.transferred = writer.offset
                self.info.normalPages = b.dataPages
                self.info.zeroPages = b.zeroPages
                self.info.remaining = 0
                self.info.expectedDowntimeMs = 0
                if let block = self.block { block.bulkRemaining = 0; self.info.disk = block.progress }
                self.info.status = "completed"
                self.publish()
                self.closeSocket()
                m.control.runState = .postmigrate
                m.emit(.migration(status: "completed"))
                return nil
            } catch {
                // Nothing was handed over: the guest continues here.
                m.ram.stopDirtyLog()
                self.block?.stop()
                do { try m.activateDiskLocks() } catch {
                    fputs("rivet: warning: migration failed and the drives' locks could not be taken back: \(error)\n", stderr)
                }
                if wasRunning { m.resume() } else if m.control.runState == .finishMigrate { m.control.runState = .paused }
                return "\(error)"
            }
        }
        batch = b
        if let reason = outcome {
            throttle = 0
            closeSocket()
            info.error = reason
            setStatus("failed")
            fputs("rivet: migration failed: \(reason)\n", stderr)
        }
    }

    /// The destination answers one byte once it has read and checked the whole stream.
    func awaitAck() throws {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        var waited = 0
        while true {
            let r = poll(&p, 1, 1000)
            if r > 0 { break }
            if r < 0 && errno == EINTR { continue }
            waited += 1
            if waited >= 30 { throw SnapshotError("the destination did not confirm the stream within 30 s") }
        }
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        guard n == 1, byte == migrationAck else {
            throw SnapshotError("the destination closed the connection without accepting the stream")
        }
    }
}


/// The union of two ascending lists of page indices, ascending.
func mergeSorted(_ a: [Int], _ b: [Int]) -> [Int] {
    var out: [Int] = []
    out.reserveCapacity(a.count + b.count)
    var i = 0, j = 0
    while i < a.count || j < b.count {
        if j == b.count || (i < a.count && a[i] < b[j]) { out.append(a[i]); i += 1 }
        else if i == a.count || b[j] < a[i] { out.append(b[j]); j += 1 }
        else { out.append(a[i]); i += 1; j += 1 }
    }
    return out
}

extension VirtMachine {
    /// QMP migrate with tcp:HOST:PORT: starts the background migration (run-loop thread). `copyDisks`
    /// (blk): the destination has its own images and the writable drives' contents go in the stream.
    public func startLiveMigration(to spec: String, copyDisks: Bool = false) throws {
        if let m = control.liveMigration, m.isActive {
            throw SnapshotError("a migration is already in progress")
        }
        if control.runState == .inmigrate { throw SnapshotError("the guest is waiting for an incoming migration") }
        if !copyDisks {
            // Shared storage: both processes open the same images. The destination re-reads a qcow2 image's
            // tables when it takes the image over, which needs the drive to be replaceable (tracked).
            for (i, d) in config.disks.enumerated() where !d.isReadOnly {
                if (d as? ImageLayer)?.format == .qcow2 && decoratorChain(d, find: DirtyTrackingDisk.self) == nil {
                    throw SnapshotError("drive \(i): this writable qcow2 drive cannot be handed over (shared storage)")
                }
            }
        }
        let block = copyDisks ? try BlockMigration(machine: self) : nil
        let endpoint = try TCPEndpoint(spec)
        let m = LiveMigration(machine: self, endpoint: endpoint, block: block)
        control.liveMigration = m
        m.begin()
    }

    /// QMP migrate_cancel: the migration thread stops at its next batch; the guest keeps running.
    public func cancelLiveMigration() {
        guard let m = control.liveMigration, m.isActive else { return }
        m.cancelled = true
    }

    /// `--incoming tcp:HOST:PORT` / migrate-incoming: accepts one connection, restores the stream (which
    /// may carry several rounds of RAM) and confirms it. Nothing runs or touches a disk before the whole
    /// stream was read and checked.
    @discardableResult
    public func receiveMigration(listenOn spec: String) throws -> SnapshotStats {
        let endpoint = try TCPEndpoint(spec)
        return try receiveMigration(endpoint: endpoint, listenFD: try endpoint.listenSocket())
    }

    func receiveMigration(endpoint: TCPEndpoint, listenFD: Int32) throws -> SnapshotStats {
        let fd = try endpoint.acceptOne(listenFD)
        defer { close(fd) }
        let state = try readState(from: StreamReader(fd: fd), mapFile: false, live: true)
        try applyState(state)
        // The source gave up its image locks before the end of the stream; take them before confirming, so
        // a failure here leaves the source running.
        try takeOverDrives(copied: state.copiedDrives)
        let stats = state.stats
        var ack = migrationAck
        guard write(fd, &ack, 1) == 1 else {
            throw SnapshotError("the source went away before the switch-over was confirmed")
        }
        return stats
    }
}

extension VirtMachine {
    /// `--incoming tcp:` and QMP migrate-incoming: listens now (an error is returned at once), then
    /// receives on its own thread (file: and exec: on the run loop) while the guest has not started; a
    /// failed stream ends rivet with status 1, as a bad `--incoming file:` does.
    public func acceptIncoming(_ uri: String, origin: String = "migrate-incoming") throws {
        if case .tcp(let spec) = try MigrationURI.parse(uri) {
            // Received on a thread of its own, so QMP answers meanwhile (IncomingMigration.swift).
            let endpoint = try TCPEndpoint(spec)
            IncomingMigration(machine: self, endpoint: endpoint, listenFD: try endpoint.listenSocket(), what: "\(origin) \(uri)").begin()
            return
        }
        control.post { m in
            do {
                try m.restoreSnapshot(from: uri)
                try m.activateDrivesAfterHandover()
            } catch {
                // The machine's state is a half-restored mix: end the run (rivet exits with status 1).
                m.requestExit(.failed("\(origin) \(uri): \(error)"))
                return
            }
            m.control.runState = .paused
            if m.control.startAfterIncoming { m.resume() }
        }
    }
}

extension VirtMachine {
    /// Takes the drives' image locks if this process does not hold them (migration destination).
    public func activateDiskLocks() throws {
        for d in config.disks { try (d as? ImageLockHandover)?.activateLocks() }
    }

    /// Gives up the drives' image locks, keeping the files open (migration source at switch-over).
    public func releaseDiskLocks() {
        for d in config.disks { (d as? ImageLockHandover)?.releaseLocks() }
    }
}

extension LiveMigration {
    var isActive: Bool {
        let s = machine.control.migrationInfo.status
        return s == "setup" || s == "active" || s == "cancelling"
    }
}
