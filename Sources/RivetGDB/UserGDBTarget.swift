import RivetCPU
import RivetUser

/// The threads of a `rivet user` process as gdb threads (thread id = the guest's tid, as qemu-user).
public final class UserGDBTarget: GDBTarget {
    let debugger: UserDebugger
    var points: [GDBPoint] = []

    public init(debugger: UserDebugger) { self.debugger = debugger }

    public var targetXML: String { GDBTargetDescription.xml(system: false) }
    public var stopHandler: (() -> Void)? {
        get { debugger.stopHandler }
        set { debugger.stopHandler = newValue }
    }
    public var wasRunningAtAttach: Bool { true }

    public func threadIDs() -> [Int] { debugger.threadIDs().map(Int.init) }
    public func threadName(_ thread: Int) -> String { "tid \(thread)" }

    public func readRegister(thread: Int, number: Int) -> UInt64? {
        debugger.readRegister(tid: Int32(truncatingIfNeeded: thread), number: number)
    }

    public func writeRegister(thread: Int, number: Int, value: UInt64) -> Bool {
        debugger.writeRegister(tid: Int32(truncatingIfNeeded: thread), number: number, value: value)
    }

    public func readMemory(thread: Int, address: UInt64, length: Int) -> [UInt8] {
        debugger.readMemory(address: address, length: length)
    }

    public func writeMemory(thread: Int, address: UInt64, bytes: [UInt8]) -> Bool {
        debugger.writeMemory(address: address, bytes: bytes)
    }

    public func setPoint(_ point: GDBPoint, inserted: Bool) -> Bool {
        if inserted { if !points.contains(point) { points.append(point) } } else { points.removeAll { $0 == point } }
        let watchpoints = points.compactMap { p -> DebugHooks.Watchpoint? in
            guard let kind = DebugHooks.WatchKind(rawValue: p.type) else { return nil }
            return DebugHooks.Watchpoint(address: p.address, length: p.length, kind: kind)
        }
        debugger.setPoints(breakpoints: Set(points.filter { $0.type <= 1 }.map(\.address)), watchpoints: watchpoints)
        return true
    }

    public func attach() -> GDBStop {
        GDBStop(thread: threadIDs().first ?? 1, reason: .signal(5))
    }

    public func resume(step: Int?) { debugger.resume(step: step.map { Int32(truncatingIfNeeded: $0) }) }

    public func takeStop() -> GDBStop? {
        guard let s = debugger.takeStop() else { return nil }
        if let code = s.exitCode { return GDBStop(thread: 1, reason: .exited(code: UInt8(truncatingIfNeeded: code))) }
        switch s.stop {
        case .watch(let kind, let address)?: return GDBStop(thread: Int(s.tid), reason: .watch(kind: kind.rawValue, address: address))
        case .breakpoint?, .step?: return GDBStop(thread: Int(s.tid), reason: .signal(5))
        case nil: return GDBStop(thread: Int(s.tid), reason: .signal(2))
        }
    }

    public func interrupt() { debugger.interrupt() }

    public func detach(resume: Bool) {
        points = []
        debugger.detach()
    }

    public func kill() { debugger.kill() }

    public func monitor(_ command: String, thread: Int) -> String? {
        command == "help" ? "rivet user has no monitor commands; use x, info registers, info threads.\n" : nil
    }
}
