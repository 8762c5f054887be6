#if canImport(Glibc)
import Glibc
#endif
import RivetDevices

/// The terminal settings to restore from a signal handler (a C function pointer cannot capture).
/// Only a ``HostConsole`` on a terminal sets it; a process has one controlling terminal, so at most
/// one machine at a time should use a terminal console (others use ``MemoryConsole`` or pipes).
nonisolated(unsafe) var terminalToRestore = termios()

/// The serial console on the host's stdin/stdout (what `rivet run` uses).
///
/// When stdin is a terminal it is put in raw mode while the machine runs (from ``start()`` to
/// ``restore()``), with handlers for SIGTERM, SIGHUP and SIGQUIT that give the terminal back before the
/// process dies, and Ctrl-A is an escape key (Ctrl-A X quits, Ctrl-A C continues after a disk error
/// stop, Ctrl-A H lists the keys, Ctrl-A Ctrl-A sends Ctrl-A). Otherwise bytes pass through unchanged,
/// which is what tests and pipes want. Output is buffered and flushed by the run loop. Creating one
/// changes nothing on the host; only ``start()`` does.
public final class HostConsole: MachineConsole {
    public typealias Event = ConsoleEvent

    let inputFD: Int32
    let outputFD: Int32
    public let isTerminal: Bool
    var savedTermios = termios()
    var started = false
    /// The signals whose default action ends the process, and the handlers `start` replaced.
    static let fatalSignals = [SIGTERM, SIGHUP, SIGQUIT]
    var previousHandlers: [__sighandler_t?] = []
    var escapePending = false
    var outBuffer: [UInt8] = []
    /// Input read from the host but not yet accepted by the UART.
    public var pendingInput: [UInt8] = []
    public private(set) var inputClosed = false
    var readBuffer = [UInt8](repeating: 0, count: 256)

    public init(inputFD: Int32 = 0, outputFD: Int32 = 1, interactive: Bool = true) {
        self.inputFD = inputFD
        self.outputFD = outputFD
        isTerminal = interactive && isatty(inputFD) == 1
        outBuffer.reserveCapacity(4096)
    }

    /// Puts the terminal in raw mode (with the signal handlers that undo it) and stdin in non-blocking mode.
    public func start() {
        if started { return }
        started = true
        if isTerminal {
            tcgetattr(inputFD, &savedTermios)
            terminalToRestore = savedTermios
            // Killed from outside (SIGTERM, SIGHUP): give the user their terminal back before dying.
            for sig in HostConsole.fatalSignals {
                previousHandlers.append(signal(sig) { sig in
                    tcsetattr(0, TCSANOW, &terminalToRestore)
                    signal(sig, SIG_DFL)
                    raise(sig)
                })
            }
            var raw = savedTermios
            cfmakeraw(&raw)
            raw.c_oflag |= tcflag_t(OPOST | ONLCR)
            tcsetattr(inputFD, TCSANOW, &raw)
        }
        let flags = fcntl(inputFD, F_GETFL)
        _ = fcntl(inputFD, F_SETFL, flags | O_NONBLOCK)
    }

    /// Flushes output and gives back the terminal's settings, stdin's blocking mode and the signal
    /// handlers that ``start()`` changed.
    public func restore() {
        flush()
        guard started else { return }
        started = false
        if isTerminal {
            tcsetattr(inputFD, TCSANOW, &savedTermios)
            for (sig, handler) in zip(HostConsole.fatalSignals, previousHandlers) { signal(sig, handler) }
            previousHandlers = []
        }
        let flags = fcntl(inputFD, F_GETFL)
        _ = fcntl(inputFD, F_SETFL, flags & ~O_NONBLOCK)
    }

    public var inputReadyFD: Int32 { inputClosed ? -1 : inputFD }

    public func serialWrite(_ byte: UInt8) {
        outBuffer.append(byte)
        if outBuffer.count >= 4096 { flush() }
    }

    public func flush() {
        writeOut(outBuffer)
        outBuffer.removeAll(keepingCapacity: true)
    }

    func writeOut(_ bytes: [UInt8]) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(outputFD, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { usleep(1000); continue }
                break
            }
            done += n
        }
    }

    func message(_ s: String) {
        flush()
        let text = isTerminal ? s.replacingNewlines() : s
        _ = text.withCString { write(2, $0, strlen($0)) }
    }

    /// Reads what stdin has (without blocking) and feeds the UART. Returns .quit for Ctrl-A X.
    public func pump(into uart: UART16550) -> ConsoleEvent {
        while let b = pendingInput.first {
            guard uart.receive(b) else { return .none }
            pendingInput.removeFirst()
        }
        if inputClosed { return .none }
        let n = readBuffer.withUnsafeMutableBytes { read(inputFD, $0.baseAddress!, 256) }
        let buf = readBuffer
        if n == 0 { inputClosed = true; return .none }
        if n < 0 { return .none }
        for i in 0..<n {
            let b = buf[i]
            if isTerminal {
                if escapePending {
                    escapePending = false
                    switch b {
                    case UInt8(ascii: "x"), UInt8(ascii: "X"): return .quit
                    case UInt8(ascii: "c"), UInt8(ascii: "C"): return .resume
                    case UInt8(ascii: "h"), UInt8(ascii: "H"), UInt8(ascii: "?"):
                        message("\nC-a h    print this help\nC-a x    exit rivet\nC-a c    continue after a disk error paused the machine\nC-a C-a  send C-a\n")
                        continue
                    case 1: break
                    default: continue
                    }
                } else if b == 1 {
                    escapePending = true
                    continue
                }
            }
            pendingInput.append(b)
        }
        while let b = pendingInput.first {
            guard uart.receive(b) else { break }
            pendingInput.removeFirst()
        }
        return .none
    }

    public var hasPendingInput: Bool { !pendingInput.isEmpty }
}

extension String {
    func replacingNewlines() -> String {
        var out = ""
        for c in self { if c == "\n" { out += "\r\n" } else { out.append(c) } }
        return out
    }
}
