extension VirtMachine {
    /// Answers requests posted after the run loop's last pass (call on the thread that ran it, after
    /// `run` returned): their callers are waiting, and nothing runs the harts any more.
    public func serviceLeftoverRequests() {
        for request in control.takeRequests() { request(self) }
    }
}
