#if canImport(Glibc)
import Glibc
#endif
import RivetMachine
import RivetGDB
import RivetQMP

/// What `rivet run` adds around the machine for management: restoring from `--incoming`, starting
/// paused (`-S`), QMP sockets, and the hidden test hooks (`--x-pause-at`, `--x-ram-hash`).
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
        if options.incoming != nil && options.dtbOut != nil {
            throw CLIError("--dtb-out cannot be combined with --incoming (a restored machine's device tree is in its RAM)")
        }
        let live = options.incoming == "defer" || options.incoming?.hasPrefix("tcp:") == true
        if options.standby {
            // Failover standby (docs/failover.md): waits in inmigrate, applying checkpoints, until it takes over.
            guard let uri = options.incoming, uri.hasPrefix("tcp:") else { throw CLIError("--standby needs --incoming tcp:HOST:PORT") }
            guard options.replicate == nil else { throw CLIError("--standby and --replicate cannot be combined") }
            guard (10...600_000).contains(options.heartbeatMs) else { throw CLIError("--heartbeat-ms must be 10 to 600000") }
            machine.requestPause(reason: "incoming", state: .inmigrate)
            do { try machine.startStandby(listenOn: uri, heartbeatMs: options.heartbeatMs) } catch { throw CLIError("--incoming \(uri) --standby: \(error)") }
        } else if live, let uri = options.incoming {
            // A live migration arrives while QMP is up (status inmigrate); defer waits for migrate-incoming.
            machine.requestPause(reason: "incoming", state: .inmigrate)
            machine.control.startAfterIncoming = !options.noStart
            if uri == "defer" { machine.control.awaitingIncoming = true } else {
                do { try machine.acceptIncoming(uri, origin: "--incoming") } catch { throw CLIError("--incoming \(uri): \(error)") }
            }
        } else if let uri = options.incoming {
            do { try machine.restoreSnapshot(from: uri) } catch { throw CLIError("--incoming \(uri): \(error)") }
            machine.pauseIfDisksStopped()   // a disk saved in its stop state waits for cont again
        }
        machine.control.pauseAtWork = options.xPauseAt
        if options.noStart && !live { machine.requestPause(reason: "-S", state: options.incoming == nil ? .prelaunch : .paused) }
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
