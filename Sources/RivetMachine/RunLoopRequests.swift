#if canImport(Glibc)
import Glibc
#endif

/// Posts a request to a machine's run loop and waits for its result (for callers on other threads).
public enum RunLoopRequest {
    /// Runs `body` on `machine`'s run loop at its next pass and returns the result. The loop must be
    /// running (or about to answer left-over requests, see ``VirtMachine/serviceLeftoverRequests()``).
    public static func run<T>(_ machine: VirtMachine, _ body: @escaping (VirtMachine) -> T) -> T {
        RunLoopCall.run(machine, body)
    }
}

extension VirtMachine {
    /// Answers requests posted after the run loop's last pass (call on the thread that ran it, after
    /// `run` returned): their callers are waiting, and nothing runs the harts any more.
    public func serviceLeftoverRequests() {
        for request in control.takeRequests() { request(self) }
    }
}
