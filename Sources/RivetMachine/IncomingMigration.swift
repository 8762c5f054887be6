#if canImport(Glibc)
import Glibc
#endif
import RivetMemory
import RivetSnapshot
import RivetStorage

/// The destination of a live migration (`--incoming tcp:`, or `defer` + QMP migrate-incoming).
///
/// A thread accepts the source's connection and reads the stream: RAM pages go straight into place, disk
/// contents are checked there and written on the run loop (which owns the drives), and the run loop is
/// otherwise free, so QMP answers throughout (query-status: inmigrate;
/// query-migrate: setup while listening, active with the bytes received so far). Once the whole stream was
/// read and checked, the device state is applied and the drives are taken over on the run loop, the source
/// is told, and the guest continues - unless the source was paused at the switch-over or -S was given
/// (`cont` then starts it). Nothing runs and no shared image is written before that.
final class IncomingMigration {
    let machine: VirtMachine
    let endpoint: TCPEndpoint
    let listenFD: Int32
    /// How the user asked for it, for error lines ("--incoming tcp:0.0.0.0:4444").
    let what: String
    var info = MigrationInfo()
    let start = VirtualClock.hostNanoseconds()
    var lastPublished: UInt64 = 0

    init(machine: VirtMachine, endpoint: TCPEndpoint, listenFD: Int32, what: String) {
        self.machine = machine
        self.endpoint = endpoint
        self.listenFD = listenFD
        self.what = what
    }

    func now() -> UInt64 { VirtualClock.hostNanoseconds() }

    func publish() {
        info.totalTimeMs = (now() - start) / 1_000_000
        machine.control.migrationInfo = info
    }

    func setStatus(_ s: String) {
        info.status = s
        publish()
        machine.control.post { m in m.emit(.migration(status: s)) }
    }

    func begin() {
        info.live = true
        info.total = machine.ram.size
        info.remaining = machine.ram.size
        setStatus("setup")
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let m = Unmanaged<IncomingMigration>.fromOpaque(raw!).takeRetainedValue()
            m.receive()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        pthread_detach(thread)
    }

    /// Bytes read so far, for query-migrate (a few times a second at most).
    func progressed(_ offset: UInt64) {
        info.transferred = offset
        if now() - lastPublished > 50_000_000 { lastPublished = now(); publish() }
    }

    /// The receiving thread.
    func receive() {
        do {
            let fd = try endpoint.acceptOne(listenFD)
            defer { close(fd) }
            info.setupTimeMs = (now() - start) / 1_000_000
            setStatus("active")
            let reader = StreamReader(fd: fd)
            let machine = self.machine
            let state = try machine.readState(from: reader, mapFile: false, live: true, onRunLoop: { body in
                _ = RunLoopCall.run(machine) { m -> Bool in
                    body(m)
                    return true
                }
            }, progress: { self.progressed($0) })
            let failure = RunLoopCall.run(machine) { m -> String? in
                do {
                    try m.applyState(state)
                    try m.takeOverDrives(copied: state.copiedDrives)
                    return nil
                } catch { return "\(error)" }
            }
            if let reason = failure { throw SnapshotError(reason) }
            // The source gave its images up before the end of the stream; this process holds them now.
            var ack = migrationAck
            guard write(fd, &ack, 1) == 1 else {
                throw SnapshotError("the source went away before the switch-over was confirmed")
            }
            info.transferred = reader.offset
            info.remaining = 0
            // The destination takes the source's run state (QEMU's global state): a paused source stays paused.
            let sourceRunning = (state.sourceRunState ?? RunState.running.rawValue) == RunState.running.rawValue
            machine.control.post { m in
                self.setStatus("completed")
                m.control.runState = .paused
                if sourceRunning && m.control.startAfterIncoming { m.resume() }
            }
        } catch {
            let reason = "\(error)"
            info.error = reason
            info.status = "failed"
            publish()
            machine.control.post { m in
                m.console.restore()
                fputs("rivet: \(self.what): \(reason)\n", stderr)
                exit(1)
            }
        }
    }
}

/// The source's run state at the switch-over, sent at the end of a live-migration stream ("runstate"
/// section, version 1: the state's QMP name), as QEMU sends its global state.
enum MigrationRunState {
    static let sectionName = "runstate"
    static let version: UInt32 = 1

    static func encode(_ state: RunState) -> [UInt8] {
        var w = StateWriter()
        w.string(state.rawValue)
        return w.bytes
    }

    static func decode(_ s: SectionHeader, from reader: StreamReader) throws -> String {
        guard s.version == version else {
            throw SnapshotError("section runstate version \(s.version) is not supported (this rivet reads \(version))")
        }
        var r = StateReader(try reader.payload(of: s), context: sectionName)
        let name = try r.string(limit: 32)
        try r.expectEnd()
        guard RunState(rawValue: name) != nil else { throw SnapshotError("section runstate: unknown run state '\(name)'") }
        return name
    }
}

extension VirtMachine {
    /// End of an incoming migration (run-loop thread): drives whose contents came in the stream are flushed;
    /// every drive is then taken over - qcow2 images the source wrote are opened afresh (their tables
    /// re-read), all images locked. An error leaves the source running.
    func takeOverDrives(copied: Set<Int>) throws {
        for i in copied.sorted() {
            do { try config.disks[i].flush() } catch { throw SnapshotError("drive \(i): flush failed: \(error)") }
        }
        try activateDrivesAfterHandover()
    }

    /// Takes the drives over after another process had them (incoming migration, or `cont` on a source
    /// after a completed one): see DirtyTrackingDisk.activateAfterHandover.
    public func activateDrivesAfterHandover() throws {
        for (i, d) in config.disks.enumerated() {
            do {
                if let tracked = decoratorChain(d, find: DirtyTrackingDisk.self) { try tracked.activateAfterHandover() }
                else { try (d as? ImageLockHandover)?.activateLocks() }
            } catch { throw SnapshotError("drive \(i): \(error)") }
        }
    }

    /// Writes back every drive so another process can take it over (a live-migration source at switch-over).
    func flushDrivesForHandover() throws {
        for (i, d) in config.disks.enumerated() where !d.isReadOnly {
            do { try flushForHandover(d) } catch { throw SnapshotError("drive \(i): flush failed: \(error)") }
        }
    }
}
