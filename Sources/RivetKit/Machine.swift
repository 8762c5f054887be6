#if canImport(Glibc)
import Glibc
#endif
@_exported import RivetMachine
@_exported import RivetDevices
@_exported import RivetStorage
@_exported import RivetSnapshot
import RivetCPU

/// A `virt` machine (QEMU's RISC-V board: OpenSBI, Linux, virtio disks and network) that a program owns.
///
/// Create it from a ``MachineConfiguration`` and a console, call ``start()`` to run it on a thread of its
/// own, and ``waitForExit()`` for how it ended. While it runs, any thread may ``pause()``, ``resume()``,
/// ``reset()``, ``powerOff()``, read ``status``, ``snapshot(to:)``, ``restore(from:)`` or ``migrate(to:)``:
/// each of these is carried out by the machine's run loop between two slices of guest execution, so it
/// never races with the harts, and returns when done. Machines share nothing: a process may run several
/// at once, each with its own console.
///
/// Lifetime: a started machine keeps itself alive until its run loop ends, even if the program drops
/// every reference; ``powerOff()`` ends it. After the exit the object still answers ``status``,
/// ``deviceTree`` and ``board`` queries, and its drives are flushed; the image files are closed when the
/// last reference goes.
public final class Machine {
    /// What the machine was built from.
    public let configuration: MachineConfiguration
    /// Where the guest's serial console goes.
    public let console: MachineConsole
    /// The board itself, for management front ends (QMP, the GDB stub) and inspection. Touch its state
    /// only from its run loop (``perform(_:)``), or while it is not running.
    public let board: VirtMachine

    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    let exited: UnsafeMutablePointer<pthread_cond_t>
    /// Serializes requests carried out directly while no run loop runs (before start, after exit).
    let directMutex: UnsafeMutablePointer<pthread_mutex_t>
    enum Phase { case created, running, exited(MachineExit) }
    var phase = Phase.created
    var runLoopThread: pthread_t? = nil

    /// Reads the boot files, checks them, opens the drives and builds the board; with
    /// ``MachineConfiguration/incoming`` it also restores the saved machine (file:, exec:) or starts
    /// listening for the migration (tcp:, defer). Throws ``MachineError`` or a storage error whose text
    /// names the file and the problem. Nothing runs until ``start()``.
    public init(configuration: MachineConfiguration, console: MachineConsole) throws {
        self.configuration = configuration
        self.console = console
        try validateTimeLimit(configuration.timeLimitSeconds)
        var config = configuration.boardSettings
        config.memorySize = configuration.memorySize
        config.hartCount = configuration.hartCount
        config.icount = configuration.deterministic
        config.hartThreads = configuration.hartThreads
        config.mmuMode = configuration.mmuMode
        config.accelerator = configuration.accelerator
        config.firmware = try readWholeFile(configuration.firmwarePath)
        config.loadImagesAtStart = configuration.incoming == nil
        var kernelPath = configuration.kernelPath
        var initrdPath = configuration.initrdPath
        if kernelPath == nil {
            let guest = MachineConfiguration.defaultGuestDirectory()
            guard access(guest + "/Image", R_OK) == 0 else {
                throw MachineError("no --kernel given and no default guest at \(guest); build it with: bash guest/build.sh")
            }
            kernelPath = guest + "/Image"
            if initrdPath == nil { initrdPath = guest + "/initramfs.cpio.gz" }
        }
        config.kernel = try readWholeFile(kernelPath!)
        if let p = initrdPath { config.initrd = try readWholeFile(p) }
        if let a = configuration.kernelCommandLine { config.bootargs = a }
        try validateBootImages(config, biosPath: configuration.firmwarePath, kernelPath: kernelPath)
        // A live-migration destination shares the images with a source that still runs and holds their
        // locks; it takes them over when the stream is complete (VirtMachine.activateDiskLocks).
        for d in configuration.drives {
            // The drive records its writes while a migration copies it (blk), and a destination can
            // re-open its image when it takes it over (DirtyTrackingDisk).
            config.disks.append(DirtyTrackingDisk(try openDisk(path: d.path, format: d.format, readOnly: d.readOnly,
                                             forceShare: d.forceShare, deferLocks: configuration.receivesLiveMigration)))
        }
        config.networkCards = configuration.networkCards
        let (biosFile, kernelFile, initrdFile) = (configuration.firmwarePath, kernelPath!, initrdPath)
        config.reloadBootImages = {  // a reset reads the files again; the machine keeps no copies
            BootImages(firmware: try readWholeFile(biosFile), kernel: try readWholeFile(kernelFile),
                       initrd: try initrdFile.map { try readWholeFile($0) })
        }
        board = try VirtMachine(config: config, console: console)
        if configuration.memoryMerge { applyMemoryMerge(board) }
        board.configureDiskErrors(names: configuration.drives.map(\.path), policies: configuration.drives.map(\.errorPolicy))
        mutex = .allocate(capacity: 1)
        exited = .allocate(capacity: 1)
        directMutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(exited, nil)
        pthread_mutex_init(directMutex, nil)
        try prepareStart()
    }

    deinit {
        pthread_cond_destroy(exited)
        pthread_mutex_destroy(mutex); pthread_mutex_destroy(directMutex)
        exited.deallocate(); mutex.deallocate(); directMutex.deallocate()
    }

    /// Restores or awaits `incoming`, and pauses for `startPaused` (what `rivet run --incoming -S` does).
    func prepareStart() throws {
        let board = self.board
        if configuration.standby {
            // Failover standby (docs/failover.md): waits in inmigrate, applying checkpoints, until it takes over.
            guard let uri = configuration.incoming, uri.hasPrefix("tcp:") else { throw MachineError("--standby needs --incoming tcp:HOST:PORT") }
            guard (10...600_000).contains(configuration.standbyHeartbeatMs) else { throw MachineError("--heartbeat-ms must be 10 to 600000") }
            board.requestPause(reason: "incoming", state: .inmigrate)
            do { try board.startStandby(listenOn: uri, heartbeatMs: configuration.standbyHeartbeatMs) } catch { throw MachineError("--incoming \(uri) --standby: \(error)") }
        } else if configuration.receivesLiveMigration, let uri = configuration.incoming {
            // A live migration arrives while management is up (status inmigrate); defer waits for migrate-incoming.
            board.requestPause(reason: "incoming", state: .inmigrate)
            board.control.startAfterIncoming = !configuration.startPaused
            if uri == "defer" { board.control.awaitingIncoming = true } else {
                do { try board.acceptIncoming(uri, origin: "--incoming") } catch { throw MachineError("--incoming \(uri): \(error)") }
            }
        } else if let uri = configuration.incoming {
            do { _ = try board.restoreSnapshot(from: uri) } catch { throw MachineError("--incoming \(uri): \(error)") }
            board.pauseIfDisksStopped()   // a disk saved in its stop state waits for cont again
        }
        if configuration.startPaused && !configuration.receivesLiveMigration {
            board.requestPause(reason: "-S", state: configuration.incoming == nil ? .prelaunch : .paused)
        }
    }

    // MARK: Running

    /// Starts the machine on a new thread (the console's ``MachineConsole/start()`` is called first).
    /// A machine starts once; starting it again, or after ``powerOff()``, throws.
    public func start() throws {
        try lockedPhase { phase in
            guard case .created = phase else { throw MachineError("the machine was already started") }
            phase = .running
        }
        console.start()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 16 << 20)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let r = pthread_create(&thread, &attributes, { context in
            let machine = Unmanaged<Machine>.fromOpaque(context!).takeRetainedValue()
            machine.runLoop()
            return nil
        }, context)
        if r != 0 {
            Unmanaged<Machine>.fromOpaque(context).release()
            console.restore()
            lockedPhase { $0 = .created }
            throw MachineError("cannot start the machine's thread: \(String(cString: strerror(r)))")
        }
        lockedPhase { _ in runLoopThread = thread }
    }

    /// The run loop's thread: runs until the machine ends, then releases what it held.
    func runLoop() {
        lockedPhase { _ in runLoopThread = pthread_self() }
        let exit: MachineExit
        do {
            exit = try board.run(maxInstructions: configuration.maxInstructions, wallSeconds: configuration.timeLimitSeconds)
        } catch {
            exit = .failed("\(error)")
        }
        board.finishReplication()  // a replicating primary's last checkpoint and end message
        console.restore()
        board.shutdownNetwork()
        for d in board.config.disks { try? d.flush() }
        pthread_mutex_lock(directMutex)
        lockedPhase { $0 = .exited(exit) }
        // Requests posted while the last pass ended are answered now, with nothing running.
        board.serviceLeftoverRequests()
        pthread_mutex_unlock(directMutex)
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(exited)
        pthread_mutex_unlock(mutex)
    }

    /// Blocks until the machine has ended and returns how (at once if it already has). Call ``start()``
    /// first, or the wait lasts until another thread does and the machine ends.
    public func waitForExit() -> MachineExit {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if case .exited(let e) = phase { return e }
            pthread_cond_wait(exited, mutex)
        }
    }

    /// Like ``waitForExit()``, but gives up after `timeoutSeconds` and returns nil.
    public func waitForExit(timeoutSeconds: Double) -> MachineExit? {
        var until = timespec()
        clock_gettime(CLOCK_REALTIME, &until)
        let total = UInt64(until.tv_nsec) + UInt64(max(0, min(timeoutSeconds, 1e9)) * 1e9)
        until.tv_sec += Int(total / 1_000_000_000)
        until.tv_nsec = Int(total % 1_000_000_000)
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if case .exited(let e) = phase { return e }
            if pthread_cond_timedwait(exited, mutex, &until) == ETIMEDOUT {
                if case .exited(let e) = phase { return e }
                return nil
            }
        }
    }

    /// Runs `body` with the board on its run loop, between slices (so it never races with the harts),
    /// and returns its result; before ``start()`` and after the exit it runs on the calling thread.
    /// Blocks until done. Called from the run loop itself (a console or an event sink), it runs at once.
    public func perform<T>(_ body: @escaping (VirtMachine) -> T) -> T {
        let onRunLoop: Bool = lockedPhase { _ in runLoopThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
        if onRunLoop { return body(board) }
        // Posting happens under directMutex, which the run loop holds while it marks itself ended and
        // answers left-over requests: a request is either answered by the loop or run here, never lost.
        pthread_mutex_lock(directMutex)
        let running: Bool = lockedPhase { phase in
            if case .running = phase { return true }
            return false
        }
        if !running {
            defer { pthread_mutex_unlock(directMutex) }
            return body(board)
        }
        let reply = Reply<T>()
        board.control.post { m in reply.give(body(m)) }
        pthread_mutex_unlock(directMutex)
        return reply.wait()
    }

    /// ``perform(_:)`` for a body that throws: the error is rethrown on the calling thread.
    public func performThrowing<T>(_ body: @escaping (VirtMachine) throws -> T) throws -> T {
        try perform { m in Result(catching: { try body(m) }) }.get()
    }

    @discardableResult
    func lockedPhase<T>(_ body: (inout Phase) throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&phase)
    }

    // MARK: Control

    /// Stops every hart, the clock and device time (QMP `stop`); a paused machine uses no host CPU.
    public func pause() {
        perform { m in if m.control.runState == .running { m.requestPause(reason: "api") } }
    }

    /// Continues a paused machine (QMP `cont`); the guest's clock goes on from where it stopped.
    /// Throws when the machine has shut down.
    public func resume() throws {
        try performThrowing { m in
            if m.control.runState == .shutdown { throw MachineError("the guest has shut down; it cannot continue") }
            m.resume()
        }
    }

    /// Resets the machine (QMP `system_reset`): devices and harts to power-on state, boot images reloaded.
    public func reset() throws {
        try performThrowing { m in
            try m.reset()
            m.emit(.reset(guest: false, reason: "host-api-reset"))
        }
    }

    /// Ends the machine at once, as pulling the plug (QMP `quit`): the run ends with
    /// ``MachineExit/quitByUser``. A machine never started ends without running. For an orderly
    /// shutdown, ask the guest (`poweroff` on its console).
    public func powerOff() {
        let notStarted: Bool = lockedPhase { phase in
            guard case .created = phase else { return false }
            phase = .exited(.quitByUser)
            return true
        }
        if notStarted {
            pthread_mutex_lock(mutex); pthread_cond_broadcast(exited); pthread_mutex_unlock(mutex)
            return
        }
        perform { m in
            m.control.runStateForShutdown()
            m.requestExit(.quitByUser, event: .shutdown(guest: false, reason: "host-api-quit"))
        }
    }

    /// Where the machine is: not started, running or paused (with QEMU's run state), or ended.
    public var status: MachineStatus {
        let phase = lockedPhase { $0 }
        let runState = perform { $0.control.runState }
        switch phase {
        case .created: return MachineStatus(started: false, runState: runState, exit: nil)
        case .running: return MachineStatus(started: true, runState: runState, exit: nil)
        case .exited(let e): return MachineStatus(started: true, runState: runState, exit: e)
        }
    }

    /// The flattened device tree the machine booted with (empty for a machine restored from a stream).
    public var deviceTree: [UInt8] { perform { $0.deviceTree } }

    // MARK: Snapshots and migration

    /// Saves the whole machine (RAM, harts, devices; drives are flushed first) to `file:PATH` or
    /// `exec:COMMAND`, the stream `rivet run --incoming` and ``restore(from:)`` take. A running machine
    /// continues afterwards.
    @discardableResult
    public func snapshot(to uri: String) throws -> SnapshotStats {
        try performThrowing { m in try m.saveSnapshot(to: uri) }
    }

    /// Replaces the machine's state with a stream saved by ``snapshot(to:)`` (same configuration: RAM
    /// size, harts, drives). A failed restore leaves the machine unusable: power it off.
    @discardableResult
    public func restore(from uri: String) throws -> SnapshotStats {
        try performThrowing { m in
            let stats = try m.restoreSnapshot(from: uri)
            m.pauseIfDisksStopped()
            return stats
        }
    }

    /// Starts a live migration to a destination listening at `HOST:PORT` (`rivet run --incoming
    /// tcp:HOST:PORT`, or a ``MachineConfiguration/incoming`` of another process). Returns at once; the
    /// guest runs on while RAM is copied. Follow it with ``migrationInfo``; on success the machine ends
    /// paused in state postmigrate.
    public func migrate(to address: String) throws {
        try performThrowing { m in try m.startLiveMigration(to: address) }
    }

    /// Cancels a live migration in progress (the guest keeps running here).
    public func cancelMigration() {
        perform { m in m.cancelLiveMigration() }
    }

    /// The last migration's or snapshot's progress, as QMP query-migrate reports it (any thread).
    public var migrationInfo: MigrationInfo { board.control.migrationInfo }
}

/// One request's result, handed from the run loop to the waiting caller.
final class Reply<T> {
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let ready = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    var value: T? = nil

    init() { pthread_mutex_init(mutex, nil); pthread_cond_init(ready, nil) }
    deinit {
        pthread_mutex_destroy(mutex); pthread_cond_destroy(ready)
        mutex.deallocate(); ready.deallocate()
    }

    func give(_ v: T) {
        pthread_mutex_lock(mutex); value = v; pthread_cond_signal(ready); pthread_mutex_unlock(mutex)
    }

    func wait() -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while value == nil { pthread_cond_wait(ready, mutex) }
        return value!
    }
}

/// What ``Machine/status`` reports.
public struct MachineStatus: Equatable {
    /// ``Machine/start()`` was called.
    public var started: Bool
    /// QEMU's run state: running, paused, prelaunch (started paused), inmigrate, postmigrate, shutdown ...
    public var runState: RunState
    /// How the machine ended; nil while it has not.
    public var exit: MachineExit?
    /// Started, not ended and not paused.
    public var isRunning: Bool { started && exit == nil && runState == .running }
}
