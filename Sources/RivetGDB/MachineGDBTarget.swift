#if canImport(Glibc)
import Glibc
#endif
import RivetCPU
import RivetMachine

/// A result handed from the run-loop thread to the stub's thread.
final class ResultBox<T> { var value: T? = nil }

/// The harts of a `virt` machine as gdb threads (thread N is hart N-1).
///
/// Every access to the machine is posted to its run loop (`control.post`) and waited for, so it never
/// races with the harts; gdb's stop and continue are the machine's pause and resume, so gdb and QMP
/// agree on whether the guest runs.
public final class MachineGDBTarget: GDBTarget {
    let machine: VirtMachine
    let hooks: [DebugHooks]
    let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    // Shared between the stub's thread and the run loop (under mutex).
    var waitingForStop = false
    var pendingStop: GDBStop? = nil
    var interruptRequested = false
    var ended = false
    public var stopHandler: (() -> Void)? = nil
    // Run-loop thread only.
    var points: [GDBPoint] = []

    public init(machine: VirtMachine) {
        self.machine = machine
        hooks = machine.harts.map { _ in DebugHooks() }
        let previous = machine.control.eventSink
        machine.control.eventSink = { [unowned self] event in
            previous?(event)
            self.machineEvent(event)
        }
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public var targetXML: String { GDBTargetDescription.xml(system: true) }

    public func threadIDs() -> [Int] { Array(1...machine.harts.count) }
    public func threadName(_ thread: Int) -> String { "hart \(thread - 1)" }

    /// Runs `body` on the run-loop thread and waits for its result (nil if the machine has ended).
    func sync<T>(_ body: @escaping (VirtMachine) -> T) -> T? {
        let box = ResultBox<T>()
        let done = Wakeup()
        machine.control.post { m in box.value = body(m); done.signal() }
        var fds = pollfd(fd: done.fd, events: Int16(POLLIN), revents: 0)
        while true {
            if poll(&fds, 1, 200) > 0 { return box.value }
            pthread_mutex_lock(mutex); let gone = ended; pthread_mutex_unlock(mutex)
            if gone { return nil }
        }
    }

    func hart(_ thread: Int, _ m: VirtMachine) -> Hart? {
        thread >= 1 && thread <= m.harts.count ? m.harts[thread - 1] : nil
    }

    // MARK: Events from the machine (run-loop thread)

    func machineEvent(_ event: MachineEvent) {
        var stop: GDBStop? = nil
        switch event {
        case .stop:
            var found: GDBStop? = nil
            for (i, h) in hooks.enumerated() {
                guard let s = h.stop else { continue }
                switch s {
                case .breakpoint, .step: found = GDBStop(thread: i + 1, reason: .signal(5))
                case .watch(let kind, let address): found = GDBStop(thread: i + 1, reason: .watch(kind: kind.rawValue, address: address))
                }
                break
            }
            stop = found ?? GDBStop(thread: 1, reason: .signal(2))
        case .shutdown:
            stop = GDBStop(thread: 1, reason: .exited(code: 0))
        default: return
        }
        pthread_mutex_lock(mutex)
        let deliver = waitingForStop
        if deliver { pendingStop = stop; waitingForStop = false }
        if case .shutdown = event { ended = true }
        pthread_mutex_unlock(mutex)
        if deliver { stopHandler?() }
    }

    // MARK: GDBTarget

    /// True when the machine was running when gdb last attached.
    public private(set) var wasRunningAtAttach = false

    public func attach() -> GDBStop {
        wasRunningAtAttach = sync { m -> Bool in
            guard m.control.runState == .running else { return false }
            m.requestPause(reason: "gdb")
            return true
        } ?? false
        return GDBStop(thread: 1, reason: .signal(5))
    }

    public func readRegister(thread: Int, number: Int) -> UInt64? {
        sync { [self] m -> UInt64? in
            guard let h = hart(thread, m) else { return nil }
            return MachineGDBTarget.read(h, number)
        } ?? nil
    }

    static func read(_ h: Hart, _ n: Int) -> UInt64? {
        switch n {
        case 0..<32: return h.x[n]
        case GDBRegister.pc: return h.pc
        case 33...64: return h.f[n - 33]
        case 66: return h.csr.fflags
        case 67: return h.csr.frm
        case 68: return (h.csr.frm << 5) | h.csr.fflags
        case GDBRegister.priv: return h.debugPrivilege
        case GDBRegister.firstCSR..<GDBRegister.priv:
            return h.readCSR(n - GDBRegister.firstCSR) ?? (h.privilege == .machine ? nil : 0)
        default: return nil
        }
    }

    public func writeRegister(thread: Int, number n: Int, value: UInt64) -> Bool {
        sync { [self] m -> Bool in
            guard let h = hart(thread, m) else { return false }
            switch n {
            case 0: return true
            case 1..<32: h.x[n] = value
            case GDBRegister.pc: h.pc = value
            case 33...64: h.f[n - 33] = value
            case 66: h.csr.fflags = value & 0x1f
            case 67: h.csr.frm = value & 7
            case 68: h.csr.fflags = value & 0x1f; h.csr.frm = (value >> 5) & 7
            case GDBRegister.priv: h.debugPrivilege = value
            case GDBRegister.firstCSR..<GDBRegister.priv:
                let ok = h.writeCSR(n - GDBRegister.firstCSR, value)
                h.flushTLB()
                return ok
            default: return false
            }
            return true
        } ?? false
    }

    public func readMemory(thread: Int, address: UInt64, length: Int) -> [UInt8] {
        sync { [self] m in hart(thread, m)?.debugReadVirtual(address, length: length) ?? [] } ?? []
    }

    public func writeMemory(thread: Int, address: UInt64, bytes: [UInt8]) -> Bool {
        sync { [self] m in hart(thread, m)?.debugWriteVirtual(address, bytes: bytes) ?? false } ?? false
    }

    public func setPoint(_ point: GDBPoint, inserted: Bool) -> Bool {
        sync { [self] _ -> Bool in
            if inserted {
                if !points.contains(point) { points.append(point) }
            } else {
                guard let i = points.firstIndex(of: point) else { return point.type <= 4 }
                points.remove(at: i)
            }
            let breakpoints = Set(points.filter { $0.type <= 1 }.map(\.address))
            let watchpoints = points.compactMap { p -> DebugHooks.Watchpoint? in
                guard let kind = DebugHooks.WatchKind(rawValue: p.type) else { return nil }
                return DebugHooks.Watchpoint(address: p.address, length: p.length, kind: kind)
            }
            for h in hooks { h.breakpoints = breakpoints; h.watchpoints = watchpoints }
            return true
        } ?? false
    }

    public func resume(step: Int?) {
        pthread_mutex_lock(mutex); waitingForStop = true; pendingStop = nil; pthread_mutex_unlock(mutex)
        let accepted = sync { [self] m -> Bool in
            for (i, h) in m.harts.enumerated() {
                let d = hooks[i]
                d.stop = nil
                d.singleStep = step == i + 1
                h.setDebugHooks(d.isEmpty ? nil : d)
            }
            guard m.control.runState != .shutdown else { return false }
            if m.control.runState == .running { return true }
            m.resume()
            return true
        }
        if accepted != true {
            pthread_mutex_lock(mutex); waitingForStop = false; pendingStop = GDBStop(thread: 1, reason: .exited(code: 0)); pthread_mutex_unlock(mutex)
            stopHandler?()
        }
    }

    public func takeStop() -> GDBStop? {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        let s = pendingStop
        pendingStop = nil
        return s
    }

    public func interrupt() {
        machine.control.post { m in
            if m.control.runState == .running { m.requestPause(reason: "gdb") }
        }
    }

    public func detach(resume: Bool) {
        _ = sync { [self] m in
            points = []
            for (i, h) in m.harts.enumerated() {
                hooks[i].breakpoints = []; hooks[i].watchpoints = []; hooks[i].singleStep = false; hooks[i].stop = nil
                h.setDebugHooks(nil)
            }
            if resume { m.resume() }
        }
        pthread_mutex_lock(mutex); waitingForStop = false; pthread_mutex_unlock(mutex)
    }

    public func kill() {
        _ = sync { m in
            m.control.runStateForShutdown()
            m.requestExit(.quitByUser)
        }
    }

    public func monitor(_ command: String, thread: Int) -> String? {
        let words = command.split(separator: " ").map(String.init)
        guard let verb = words.first else { return MachineGDBTarget.monitorHelp }
        func number(_ s: String) -> UInt64? {
            s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
        }
        switch verb {
        case "help": return MachineGDBTarget.monitorHelp
        case "xp", "phys":
            guard words.count >= 2, let address = number(words[1]) else { return "usage: monitor xp PHYSADDR [LENGTH]\n" }
            let length = words.count >= 3 ? Int(min(number(words[2]) ?? 16, 4096)) : 16
            guard let bytes = sync({ m in m.harts[0].debugReadPhysical(address, length: length) }) ?? nil else {
                return "cannot read \(length) bytes at physical 0x\(String(address, radix: 16)) (not RAM)\n"
            }
            return MachineGDBTarget.hexDump(bytes, at: address)
        case "translate":
            guard words.count == 2, let va = number(words[1]) else { return "usage: monitor translate VIRTADDR\n" }
            let pa = sync { [self] m in hart(thread, m)?.debugTranslate(va) } ?? nil
            guard let pa else { return "0x\(String(va, radix: 16)) is not mapped\n" }
            return "virtual 0x\(String(va, radix: 16)) -> physical 0x\(String(pa, radix: 16))\n"
        case "harts", "info":
            return sync { m in
                m.harts.map { h in
                    "hart \(h.hartID): pc=0x\(String(h.pc, radix: 16)) mode=\(h.privilege) instret=\(h.instret)\(h.waitingForInterrupt ? " (wfi)" : "")\n"
                }.joined()
            } ?? ""
        default: return nil
        }
    }

    static let monitorHelp = """
    rivet monitor commands:
      monitor xp PHYSADDR [LENGTH]   hex dump of guest-physical memory (LENGTH up to 4096, default 16)
      monitor translate VIRTADDR     the physical address the current hart's page tables give VIRTADDR
      monitor harts                  pc, privilege and retired instructions of every hart

    """

    static func hexDump(_ bytes: [UInt8], at address: UInt64) -> String {
        var s = ""
        var i = 0
        while i < bytes.count {
            let line = bytes[i..<min(i + 16, bytes.count)]
            s += String(address &+ UInt64(i), radix: 16) + ": " + line.map { GDBHex.byte($0) }.joined(separator: " ") + "\n"
            i += 16
        }
        return s
    }
}
