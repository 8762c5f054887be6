#if canImport(Glibc)
import Glibc
#endif
import RivetMemory

/// Something the machine tells its management clients (QMP events).
public enum MachineEvent {
    case stop
    case resume
    case reset(guest: Bool, reason: String)
    case powerdown
    case shutdown(guest: Bool, reason: String)
    case migration(status: String)
    /// Any other event: its name and its "data" member as a JSON object text (BLOCK_IO_ERROR, ...).
    case custom(name: String, dataJSON: String)
}

/// QEMU's run states, as query-status names them.
public enum RunState: String {
    case running, paused, prelaunch, postmigrate, inmigrate, shutdown
    case finishMigrate = "finish-migrate"
    case ioError = "io-error"
    case internalError = "internal-error"
}

/// What query-migrate reports about the last snapshot written (shared with the QMP thread).
public struct MigrationInfo {
    public var status = "none"
    public var totalTimeMs: UInt64 = 0
    public var transferred: UInt64 = 0
    public var total: UInt64 = 0
    public var normalPages: UInt64 = 0
    public var zeroPages: UInt64 = 0
    public var error: String? = nil
    // Live migration (tcp:) only.
    public var live = false
    public var remaining: UInt64 = 0
    public var setupTimeMs: UInt64 = 0
    public var downtimeMs: UInt64 = 0
    public var expectedDowntimeMs: UInt64 = 0
    public var dirtySyncCount: UInt64 = 0
    public var dirtyPagesRate: UInt64 = 0
    public var mbps: Double = 0
    public var throttlePercent: UInt64 = 0
    /// Block migration (blk): bytes of the drives covered so far, still to send, and in all.
    public var disk: (transferred: UInt64, remaining: UInt64, total: UInt64)? = nil
    public init() {}
}

/// Requests from other threads to the run loop, and the state they act on.
///
/// Other threads post closures with `post`; the run loop executes them between passes (when no hart is
/// running), so a request never races with the harts. `wakeup` rouses the loop if it sleeps.
public final class MachineControl {
    let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    var queue: [(VirtMachine) -> Void] = []
    var queuedCount = 0
    var migration = MigrationInfo()
    var parameters = MigrationParameters()
    /// The current or last live migration (run-loop thread).
    var liveMigration: LiveMigration? = nil
    /// Replication (docs/failover.md): progress shared with QMP, guarded by `mutex`; the primary's
    /// replication (run-loop thread); the x-colo capability and the checkpoint period QMP sets.
    var replicationState = ReplicationInfo()
    var replicationPrimary: Replication? = nil
    public var replicationCapability = false
    public var checkpointPeriodMs: UInt64 = 50
    /// `--incoming defer`: waiting for QMP migrate-incoming (run-loop thread).
    public var awaitingIncoming = false
    /// Resume once the deferred incoming stream is restored (no -S).
    public var startAfterIncoming = true
    let wakeup: Wakeup

    /// Run-loop thread only.
    public internal(set) var runState: RunState = .running
    var exitRequest: MachineExit? = nil
    /// Emitted once the requests of this pass have run (so a command's reply goes out before it).
    var exitEvent: MachineEvent? = nil
    var pauseReason: String? = nil
    /// Debug/testing: pause once the harts' work count reaches this (`--x-pause-at`).
    public var pauseAtWork: UInt64? = nil
    /// Receives events on the run-loop thread; must not block (QMP queues them for its own thread).
    public var eventSink: ((MachineEvent) -> Void)? = nil

    init(wakeup: Wakeup) { self.wakeup = wakeup }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `request` on the run-loop thread at the next pass (any thread may call this).
    public func post(_ request: @escaping (VirtMachine) -> Void) {
        pthread_mutex_lock(mutex)
        queue.append(request)
        queuedCount = queue.count
        pthread_mutex_unlock(mutex)
        wakeup.signal()
    }

    var hasRequests: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return queuedCount > 0
    }

    func takeRequests() -> [(VirtMachine) -> Void] {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        let q = queue
        queue = []
        queuedCount = 0
        return q
    }

    /// The last migration's progress (any thread).
    public var migrationInfo: MigrationInfo {
        get { pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }; return migration }
        set { pthread_mutex_lock(mutex); migration = newValue; pthread_mutex_unlock(mutex) }
    }

    /// Live-migration tunables (any thread).
    public var migrationParameters: MigrationParameters {
        get { pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }; return parameters }
        set { pthread_mutex_lock(mutex); parameters = newValue; pthread_mutex_unlock(mutex) }
    }

    public var isRunning: Bool { runState == .running }

    func emit(_ e: MachineEvent) { eventSink?(e) }
}

extension VirtMachine {
    /// Stops every hart, the clock and device time at the end of the current pass (run-loop thread; also
    /// callable from device code inside a pass, e.g. a disk error policy). Emits STOP.
    public func requestPause(reason: String, state: RunState = .paused) {
        guard control.runState == .running else {
            if control.runState != .shutdown { control.runState = state }
            return
        }
        clock.freeze()
        control.runState = state
        control.pauseReason = reason
        console.flush()
        control.emit(.stop)
    }

    /// Continues a paused machine; the clock continues from where it stopped. Emits RESUME.
    public func resume() {
        guard control.runState != .running, control.runState != .shutdown else { return }
        if case .instructionCount = clock.mode { clock.retiredInstructions = totalInstructions }
        clock.thaw()
        clint.updateTimers()
        control.runState = .running
        control.pauseReason = nil
        control.emit(.resume)
        // `cont` after a disk's stop policy paused the machine retries the held requests.
        if diskStop.isPaused { continueAfterDiskStop() }
    }

    /// Ends `run` with `exit` at the next pass (run-loop thread); `event` is emitted after the requests
    /// of this pass have been answered (QEMU answers quit before its SHUTDOWN event).
    public func requestExit(_ exit: MachineExit, event: MachineEvent? = nil) {
        control.exitRequest = exit
        control.exitEvent = event
    }

    public func emit(_ event: MachineEvent) { control.emit(event) }

    /// Executes posted requests; returns an exit if one asked the loop to end.
    func serviceRequests() -> MachineExit? {
        for request in control.takeRequests() { request(self) }
        if let e = control.exitEvent {
            control.exitEvent = nil
            emit(e)
        }
        return control.exitRequest
    }

    /// Sleeps while paused until a request arrives or the wall-clock deadline passes (~0 host CPU).
    func waitWhilePaused(deadline: UInt64?) {
        console.flush()
        var timeout: Int32 = 1000
        if let d = deadline {
            let now = VirtualClock.hostNanoseconds()
            timeout = d <= now ? 0 : Int32(min((d - now) / 1_000_000 + 1, 1000))
        }
        var fds = pollfd(fd: wakeup.fd, events: Int16(POLLIN), revents: 0)
        if poll(&fds, 1, timeout) > 0 { wakeup.drain() }
    }
}

extension MachineControl {
    /// The machine is going away at the host's request (QMP quit).
    public func runStateForShutdown() { runState = .shutdown }
}

extension VirtMachine {
    /// Work done by all harts (instructions and traps): what --max-instructions and --x-pause-at count.
    public var totalWork: UInt64 { harts.reduce(0) { $0 &+ $1.work } }

    /// The power button (QMP system_powerdown): emits POWERDOWN. The virt board has no ACPI; see
    /// docs/snapshots.md for how the guest learns of it.
    public func requestPowerdown() {
        emit(.powerdown)
    }

    /// FNV-1a over all of RAM, 8 bytes at a time (exactness tests compare it between runs).
    public func ramHash() -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let words = ram.host.assumingMemoryBound(to: UInt64.self)
        for i in 0..<Int(ram.size / 8) {
            h = (h ^ words[i]) &* 0x100_0000_01b3
        }
        let s = String(h, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
