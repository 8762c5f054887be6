#if canImport(Glibc)
import Glibc
#endif
import RivetMachine
import RivetGDB
import RivetQMP

/// What `rivet run` adds around the machine for management: QMP sockets, the GDB stub, and the hidden
/// test hooks (`--x-pause-at`, `--x-ram-hash`). (Restoring from `--incoming` and `-S` are the library's,
/// through MachineConfiguration.)
final class MachineManagement {
    let machine: VirtMachine
    var servers: [QMPServer] = []
    var gdbServer: GDBServer? = nil
    let printRAMHash: Bool

    init(machine: VirtMachine, options: Run) throws {
        self.machine = machine
        printRAMHash = options.xRamHash
        // A QMP client or a migrate exec: command that goes away must not kill rivet (QEMU ignores
        // SIGPIPE too); without --qmp a closed stdout still ends rivet as before.
        if !options.qmp.isEmpty { signal(SIGPIPE, SIG_IGN) }
        machine.control.pauseAtWork = options.xPauseAt
        let paths = options.drive.map { String($0.split(separator: ",").first ?? "") }
        for spec in options.qmp {
            let server = try QMPServer(address: try QMPAddress.parse(spec), machine: machine, drivePaths: paths)
            servers.append(server)
        }
        if let spec = options.gdb ?? (options.gdbDefault ? "tcp::1234" : nil) {
            let (host, port) = try GDBServer.parseAddress(spec)
            gdbServer = try GDBServer(host: host, port: port, target: MachineGDBTarget(machine: machine))
        }
        if let spec = options.replicate {
            guard spec.hasPrefix("tcp:") else { throw CLIError("--replicate needs tcp:HOST:PORT[,period-ms=N]") }
            // Posted, so it begins once an --incoming restore has happened and the run loop is going.
            let target = String(spec.dropFirst(4))
            _ = try Replication.validate(target)
            machine.control.post { m in
                do { try m.startReplication(to: target) } catch {
                    fputs("rivet: --replicate \(spec): \(error)\n", stderr)
                }
            }
        }
        for s in servers { s.start() }
        gdbServer?.start()
    }

    /// After the run loop ended: the hidden RAM hash for exactness tests.
    func finish() {
        if printRAMHash { fputs("rivet: ram-hash \(machine.ramHash()) work \(machine.totalWork)\n", stderr) }
    }

    /// Sends what QMP clients are owed (the reply to quit, SHUTDOWN) and closes the sockets.
    func stop() {
        for s in servers { s.stop() }
        servers = []
        gdbServer?.stop()
        gdbServer = nil
    }
}
