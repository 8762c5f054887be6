#if canImport(Glibc)
import Glibc
#endif
import Atomics
import RivetCPU
import RivetDevices
import RivetMemory

/// How the harts of a machine with more than one hart share host threads (`rivet run --hart-threads`).
public enum HartThreading: String, CaseIterable {
    /// All harts round-robin on the machine's thread, in slices (deterministic; always so with --icount).
    case single
    /// One host thread per hart (QEMU's MTTCG); the machine's thread serves devices and requests.
    case multi
}

/// A mutex and a condition variable whose timed waits use the monotonic clock.
final class Monitor {
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition); condition.deallocate()
        pthread_mutex_destroy(mutex); mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits at most `nanoseconds`; false when the time ran out.
    func wait(nanoseconds: UInt64) -> Bool {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let total = UInt64(ts.tv_nsec) + nanoseconds
        ts.tv_sec += Int(total / 1_000_000_000)
        ts.tv_nsec = Int(total % 1_000_000_000)
        return pthread_cond_timedwait(condition, mutex, &ts) == 0
    }
}

/// One hart's host thread: runs slices of the hart, sleeps while it waits for an interrupt, parks when
/// the machine's thread stops the world.
final class HartThread {
    let hart: Hart
    unowned let group: HartThreadGroup
    /// Guards `kicked`; the thread sleeps on it in wfi.
    let sleeper = Monitor()
    var kicked = false
    var thread = pthread_t()

    init(hart: Hart, group: HartThreadGroup) {
        self.hart = hart
        self.group = group
    }

    /// Wakes the thread from wfi (an interrupt pin rose, or the world stops). Any thread.
    func kick() {
        sleeper.lock()
        kicked = true
        pthread_cond_signal(sleeper.condition)
        sleeper.unlock()
    }

    func body() {
        let machine = group.machine
        let cache = hart.cache
        while true {
            if group.stopRequested.load(ordering: .acquiring) {
                if group.park() { return }
                continue
            }
            cache.applyForeignInvalidations()
            let stop = hart.run(budget: machine.sliceInstructions)
            machine.afterHartSlice()
            switch stop {
            case .waitingForInterrupt: sleepUntilInterrupt()
            case .budgetExhausted: cache.noteBusy()
            case .debugStop:
                // gdb stops are handled on the machine's thread; wait there until it stops the world.
                group.debugStop.store(true, ordering: .releasing)
                machine.wakeup.signal()
                sleeper.lock()
                while !kicked && !group.stopRequested.load(ordering: .acquiring) { _ = sleeper.wait(nanoseconds: 100_000_000) }
                kicked = false
                sleeper.unlock()
            }
        }
    }

    /// wfi: sleeps (no host CPU) until a pin rises (kick), this hart's timer deadline passes or the world
    /// stops. A deadline that passes raises MTIP through `updateTimers` on the next slice.
    func sleepUntilInterrupt() {
        let machine = group.machine
        let deadline: UInt64 = machine.bus.deviceLock!.withLock {
            machine.clint.updateTimers()
            return machine.clint.mtimecmp[hart.hartID]
        }
        // A compare value already passed keeps MTIP high (masked, or the hart would not sleep): only a
        // kick can wake it then. The 100 ms cap is a safety net, not a poll.
        let remaining = machine.clock.nanoseconds(until: deadline) ?? 0
        let timeout = remaining == 0 ? 100_000_000 : min(remaining, 100_000_000)
        let started = VirtualClock.hostNanoseconds()
        sleeper.lock()
        if !kicked && !group.stopRequested.load(ordering: .acquiring) && !hart.hasWakeupInterrupt {
            _ = sleeper.wait(nanoseconds: timeout)  // a kick, or time is up: the caller checks the timers again
        }
        kicked = false
        sleeper.unlock()
        hart.cache.noteIdle(nanoseconds: VirtualClock.hostNanoseconds() &- started)
    }
}

/// The hart threads of a machine and the stop-the-world protocol: the machine's thread sets
/// `stopRequested` and wakes every hart; each parks at its next slice boundary (a block boundary); the
/// machine's thread then owns all machine state (snapshots, migration, reset, gdb, QMP) until `resume`.
final class HartThreadGroup {
    unowned let machine: VirtMachine
    var threads: [HartThread] = []
    /// Guards `parkedCount` and `exiting`; parked harts and the stopping thread wait on it.
    let parking = Monitor()
    var parkedCount = 0
    var exiting = false
    let stopRequested = UnsafeAtomic<Bool>.create(true)
    /// A hart hit a debugger stop (breakpoint, watchpoint) and waits for the machine's thread.
    let debugStop = UnsafeAtomic<Bool>.create(false)
    /// Hart threads are running (machine's thread only).
    private(set) var running = false

    init(machine: VirtMachine) {
        self.machine = machine
        threads = machine.harts.map { HartThread(hart: $0, group: self) }
    }

    deinit {
        stopRequested.destroy()
        debugStop.destroy()
    }

    /// Starts one thread per hart, parked until `resume`.
    func start() throws {
        let threads = self.threads
        machine.wires.onRaise = { hart in
            threads[hart].hart.requestAttention()  // out of a chain of translated blocks
            threads[hart].kick()  // out of wfi
        }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 16 << 20)
        for t in threads {
            let context = Unmanaged.passRetained(t).toOpaque()
            let r = pthread_create(&t.thread, &attributes, { context in
                let t = Unmanaged<HartThread>.fromOpaque(context!).takeRetainedValue()
                t.body()
                return nil
            }, context)
            if r != 0 {
                Unmanaged<HartThread>.fromOpaque(context).release()
                shutdown(startedBefore: t)
                throw MachineError("cannot start a hart thread: \(String(cString: strerror(r)))")
            }
        }
    }

    /// A hart thread parks until resumed; true when the machine is ending.
    func park() -> Bool {
        parking.lock()
        parkedCount += 1
        parking.broadcast()
        while stopRequested.load(ordering: .acquiring) && !exiting { parking.wait() }
        parkedCount -= 1
        let ending = exiting
        parking.unlock()
        return ending
    }

    /// Stops the world: returns once every hart thread is parked at a block boundary.
    func stop() {
        guard running else { return }
        stopRequested.store(true, ordering: .releasing)
        for t in threads {
            t.hart.requestAttention()  // out of translated code at its next block boundary, not its slice's end
            t.kick()
        }
        parking.lock()
        while parkedCount < threads.count { parking.wait() }
        parking.unlock()
        running = false
    }

    /// Lets the hart threads run again. Each hart's cache is owned by its thread from here on.
    func resume() {
        guard !running else { return }
        for t in threads { t.hart.cache.assignOwner(t.thread) }
        parking.lock()
        stopRequested.store(false, ordering: .releasing)
        parking.broadcast()
        parking.unlock()
        running = true
    }

    /// The machine's thread runs the harts itself (gdb, --x-pause-at): caches owned by no thread.
    func runHartsHere() {
        stop()
        for t in threads { t.hart.cache.assignOwner(nil) }
    }

    /// Ends every thread (those before `startedBefore` only, if creation failed) and waits for them.
    func shutdown(startedBefore: HartThread? = nil) {
        stop()
        parking.lock()
        exiting = true
        parking.broadcast()
        parking.unlock()
        for t in threads {
            if t === startedBefore { break }
            pthread_join(t.thread, nil)
        }
        for t in threads { t.hart.cache.assignOwner(nil) }
        machine.wires.onRaise = nil
    }
}

extension VirtMachine {
    /// The run loop with one host thread per hart. This thread serves the console, the network, requests
    /// (QMP, snapshots, migration: all with the world stopped), power-off and reset, and limits.
    func runOnHartThreads(maxInstructions: UInt64?, wallSeconds: Double?) throws -> MachineExit {
        let group = HartThreadGroup(machine: self)
        try group.start()
        defer { group.shutdown() }
        let lock = bus.deviceLock!
        var wallDeadline = wallSeconds.map { VirtualClock.hostNanoseconds() &+ UInt64($0 * 1e9) }
        var lastService: UInt64 = 0
        while true {
            if diskStop.isPaused {
                group.stop()
                if let exit = waitWhileDiskStopped(wallDeadline: wallDeadline, wallSeconds: wallSeconds) { return exit }
            }
            let now = VirtualClock.hostNanoseconds()
            if let d = wallDeadline, now >= d {
                group.stop()
                return .stopped("time limit of \(wallSeconds!) s reached")
            }
            // Requests run with the world stopped; one that re-posts itself (migration throttling) still
            // leaves the harts a millisecond between turns.
            if control.hasRequests, !group.running || now &- lastService >= 1_000_000 {
                group.stop()
                if let exit = serviceRequests() { return exit }
                lastService = VirtualClock.hostNanoseconds()
            }
            if !control.isRunning {
                group.stop()
                if control.runState == .inmigrate, let s = wallSeconds { wallDeadline = VirtualClock.hostNanoseconds() &+ UInt64(s * 1e9) }
                waitWhilePaused(deadline: wallDeadline); continue
            }
            if group.debugStop.exchange(false, ordering: .acquiringAndReleasing) {
                group.stop()
                requestPause(reason: "debug")
                continue
            }
            // A debugger's hooks and --x-pause-at count work exactly: the harts then run here, round-robin.
            if control.pauseAtWork != nil || harts.contains(where: { $0.debug != nil }) {
                group.runHartsHere()
                if let exit = try runOnePass(maxInstructions: maxInstructions) { return exit }
                continue
            }
            group.resume()
            let (power, input) = lock.withLock { () -> (PowerRequest?, ConsoleEvent) in
                let power = syscon.request
                syscon.request = nil
                let input = console.pump(into: uart)
                pollNetwork()
                console.flush()
                return (power, input)
            }
            if let power {
                group.stop()
                if let exit = try handlePowerRequest(power) { return exit }
                continue
            }
            switch input {
            case .quit: group.stop(); return .quitByUser
            case .resume: group.stop(); continueAfterDiskStop()
            case .none: break
            }
            if let limit = maxInstructions, totalWork >= limit {
                group.stop()
                return .stopped("instruction limit \(limit) reached")
            }
            // Requests held back by the 1 ms spacing above, and instruction limits, are looked at again soon.
            waitForEvents(milliseconds: maxInstructions == nil && !control.hasRequests ? 10 : 1)
        }
    }

    /// A hart thread between slices: raises due timer interrupts, and wakes the machine's thread when the
    /// guest asked for power-off or reset or a device paused the machine.
    func afterHartSlice() {
        let lock = bus.deviceLock!
        lock.lock()
        clint.updateTimers()
        let attention = syscon.request != nil || diskStop.isPaused || !control.isRunning
        lock.unlock()
        if attention { wakeup.signal() }
    }

    /// Sleeps until console input, a posted request or a network frame, or `milliseconds`.
    func waitForEvents(milliseconds: Int32) {
        if console.hasPendingInput { return }
        var fds = (pollfd(fd: wakeup.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: console.inputReadyFD, events: Int16(POLLIN), revents: 0))
        let woken = withUnsafeMutableBytes(of: &fds) { raw -> Bool in
            let p = raw.baseAddress!.assumingMemoryBound(to: pollfd.self)
            return poll(p, 2, milliseconds) > 0 && p[0].revents != 0
        }
        if woken { wakeup.drain() }
    }

    /// syscon's power-off or reset (world stopped): the exit, or nil after a reset.
    func handlePowerRequest(_ request: PowerRequest) throws -> MachineExit? {
        switch request {
        case .powerOff(let code):
            control.runState = .shutdown
            emit(.shutdown(guest: true, reason: "guest-shutdown"))
            return .powerOff(exitCode: code)
        case .reset:
            try reset()
            emit(.reset(guest: true, reason: "guest-reset"))
            return nil
        }
    }

    /// One round-robin pass of every hart on this thread (the single-thread loop's pass), for runs whose
    /// work must be counted exactly (a debugger, --x-pause-at).
    func runOnePass(maxInstructions: UInt64?) throws -> MachineExit? {
        clint.updateTimers()
        var allWaiting = true
        for h in harts {
            let stop = h.run(budget: sliceInstructions)
            if stop != .waitingForInterrupt { allWaiting = false }
            if stop == .debugStop { requestPause(reason: "debug"); break }
        }
        if let request = syscon.request {
            syscon.request = nil
            return try handlePowerRequest(request)
        }
        switch console.pump(into: uart) {
        case .quit: return .quitByUser
        case .resume: continueAfterDiskStop()
        case .none: break
        }
        pollNetwork()
        console.flush()
        if let limit = maxInstructions, totalWork >= limit { return .stopped("instruction limit \(limit) reached") }
        if allWaiting && !harts.contains(where: { $0.hasWakeupInterrupt }) { idle() }
        if let at = control.pauseAtWork, totalWork >= at {
            control.pauseAtWork = nil
            requestPause(reason: "debug")
        }
        return nil
    }

    /// Drops every hart's decoded blocks (reset, restore; the world is stopped).
    public func flushDecodedCode() {
        for c in hartCaches { c.flushAll() }
    }
}
