import RivetDevices
import RivetSnapshot

/// A host key the console passes to the machine instead of to the guest.
public enum ConsoleEvent {
    /// Nothing for the machine.
    case none
    /// End the machine (the host terminal's Ctrl-A X).
    case quit
    /// Continue after a disk error paused the machine (Ctrl-A C).
    case resume
}

/// What a machine's serial port (the `virt` board's 16550 UART) is connected to.
///
/// The machine calls every member on its run-loop thread only, so an implementation needs locks only
/// for what it shares with other threads of its own (an embedding program feeding input, for example).
/// ``HostConsole`` connects the guest to the process's terminal; ``MemoryConsole`` keeps output in memory
/// and takes input from any thread, for programs that embed machines and for tests.
public protocol MachineConsole: SerialBackend {
    /// Called once when the machine starts running: take the host resources the console needs
    /// (the host terminal enters raw mode here).
    func start()
    /// Moves input that is ready into the UART (as much as its FIFO takes) and reports host keys.
    func pump(into uart: UART16550) -> ConsoleEvent
    /// Writes out guest output buffered by `serialWrite`.
    func flush()
    /// Called once when the machine has stopped for good (and on a fatal error): flush and give back
    /// what `start` took (the terminal's settings).
    func restore()
    /// A file descriptor that becomes readable when new input arrives, so an idle machine wakes for
    /// it; -1 when there is none (input then waits for the next timer tick).
    var inputReadyFD: Int32 { get }
    /// Input already taken from the host but not yet accepted by the UART: the machine does not sleep.
    var hasPendingInput: Bool { get }
    /// The same input, for snapshots: saved with the machine and given back on restore.
    var pendingInput: [UInt8] { get set }
}

/// The console's snapshot section ("console", version 1): input read but not yet accepted by the UART.
final class ConsoleSection: Snapshottable {
    let console: MachineConsole
    init(_ console: MachineConsole) { self.console = console }

    var snapshotName: String { "console" }
    var snapshotVersion: UInt32 { 1 }
    func saveState(to w: inout StateWriter) { w.data(console.pendingInput) }
    func restoreState(from r: inout StateReader) throws {
        let bytes = try r.data(limit: 1 << 20)
        try r.expectEnd()
        console.pendingInput = bytes
    }
}
