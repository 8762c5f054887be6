#if canImport(Glibc)
import Glibc
#endif
import RivetDevices

/// Output commit for replication (docs/failover.md): while a primary replicates, whatever the guest
/// makes visible outside (console bytes, transmitted frames, guest-caused QMP events) is held per epoch
/// and released only when the standby has acknowledged the checkpoint that ends the epoch. So the
/// outside never sees an effect the standby could not reproduce after a takeover.
///
/// Run-loop thread only: the console, the network cards and the event sink all call in on the run loop,
/// and the replication thread posts releases there too, so output keeps its order without locks.
final class OutputCommit {
    /// What one epoch produced, in the order it was produced within each kind.
    struct Held {
        var console: [UInt8] = []
        var frames: [(backend: CommittedNetworkBackend, frame: [UInt8])] = []
        var events: [MachineEvent] = []
        var isEmpty: Bool { console.isEmpty && frames.isEmpty && events.isEmpty }
        var byteCount: Int { console.count + frames.reduce(0) { $0 + $1.frame.count } }
    }

    var current = Held()
    /// Sealed epochs waiting for their checkpoint's acknowledgement, oldest first.
    var sealed: [(epoch: UInt64, held: Held)] = []
    let releaseConsole: ([UInt8]) -> Void
    /// Where released events go (the management sink that was installed before replication began).
    var releaseEventSink: ((MachineEvent) -> Void)? = nil

    init(releaseConsole: @escaping ([UInt8]) -> Void) {
        self.releaseConsole = releaseConsole
    }

    /// Ends the current epoch (at a checkpoint's capture): its output waits for that checkpoint's ack.
    func seal(epoch: UInt64) {
        sealed.append((epoch, current))
        current = Held()
    }

    /// The standby acknowledged checkpoint `epoch`: everything up to it goes out, in order.
    func release(through epoch: UInt64) {
        while let first = sealed.first, first.epoch <= epoch {
            sealed.removeFirst()
            emit(first.held)
        }
    }

    /// Replication ended (standby lost or replication stopped): nothing is protected any more, so all
    /// that is held goes out now, oldest first.
    func releaseAll() {
        for s in sealed { emit(s.held) }
        sealed = []
        emit(current)
        current = Held()
    }

    var heldBytes: Int { sealed.reduce(current.byteCount) { $0 + $1.held.byteCount } }

    func emit(_ h: Held) {
        if !h.console.isEmpty { releaseConsole(h.console) }
        for f in h.frames { f.frame.withUnsafeBytes { f.backend.inner.transmit($0) } }
        for e in h.events { releaseEventSink?(e) }
    }
}

/// A network backend decorator that gives transmitted frames to the output commit while a primary
/// replicates (and passes them straight on otherwise). Received frames are not held: input may reach
/// the guest at any time (a frame lost with an uncommitted epoch is a frame lost on the wire).
final class CommittedNetworkBackend: NetworkBackend {
    let inner: NetworkBackend
    /// Set by the replication (run-loop thread).
    var commit: OutputCommit? = nil

    init(_ inner: NetworkBackend) { self.inner = inner }

    var label: String { inner.label }
    var mtu: Int? { inner.mtu }
    var deliversValidChecksums: Bool { inner.deliversValidChecksums }
    func start(framesAvailable: @escaping () -> Void) { inner.start(framesAvailable: framesAvailable) }
    func transmit(_ frame: UnsafeRawBufferPointer) {
        if let c = commit { c.current.frames.append((self, Array(frame))) } else { inner.transmit(frame) }
    }
    func peekReceived() -> [UInt8]? { inner.peekReceived() }
    func dropReceived() { inner.dropReceived() }
    var hasReceived: Bool { inner.hasReceived }
    func shutdown() { inner.shutdown() }
}

extension MachineEvent {
    /// Events the guest causes (and the outside would act on): held by output commit while replicating.
    /// Events answering a host request (stop, cont, quit, migrate) go out at once.
    var isGuestCaused: Bool {
        switch self {
        case .reset(let guest, _), .shutdown(let guest, _): return guest
        case .custom(let name, _): return name == "BLOCK_IO_ERROR" || name == "NIC_RX_FILTER_CHANGED"
        default: return false
        }
    }
}

/// Sits between the UART and the machine's console: while a primary replicates, guest output goes to the
/// output commit (held until its checkpoint is acknowledged) instead of straight to the console. Any
/// console (host terminal, in-memory) is gated the same way.
final class ConsoleOutputGate: SerialBackend {
    let console: MachineConsole
    /// Set while a primary replicates (run-loop thread).
    var hold: OutputCommit? = nil

    init(_ console: MachineConsole) { self.console = console }

    func serialWrite(_ byte: UInt8) {
        if let h = hold { h.current.console.append(byte) } else { console.serialWrite(byte) }
    }

    /// Committed output, passed on to the console.
    func writeReleased(_ bytes: [UInt8]) {
        for b in bytes { console.serialWrite(b) }
        console.flush()
    }
}
