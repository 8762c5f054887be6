#if canImport(Glibc)
import Glibc
#endif
import RivetDevices
import RivetMachine
import RivetSnapshot
import RivetStorage

/// One client's conversation: capabilities negotiation, then commands.
struct QMPSession {
    unowned let server: QMPServer
    let connection: Int
    var negotiated = false

    init(server: QMPServer, connection: Int) {
        self.server = server
        self.connection = connection
    }

    static let commands = ["qmp_capabilities", "query-version", "query-commands", "query-status", "query-name",
                           "query-cpus-fast", "query-block", "stop", "cont", "system_reset", "system_powerdown",
                           "quit", "migrate", "query-migrate", "migrate_cancel", "migrate-set-parameters",
                           "query-migrate-parameters", "migrate-incoming", "migrate-set-capabilities",
                           "query-migrate-capabilities", "query-replication", "balloon", "query-balloon",
                           "x-rivet-ram-hash"]

    static func error(_ cls: String, _ desc: String, id: JSON?) -> JSON {
        var m: [(String, JSON)] = [("error", .object([("class", .string(cls)), ("desc", .string(desc))]))]
        if let id { m.append(("id", id)) }
        return .object(m)
    }

    static func reply(_ value: JSON, id: JSON?) -> JSON {
        var m: [(String, JSON)] = [("return", value)]
        if let id { m.append(("id", id)) }
        return .object(m)
    }

    func send(_ message: JSON) { server.enqueue(message, forConnection: nil) }

    /// Handles one piece of input; true when a command went to the machine and its reply is pending.
    mutating func handle(_ piece: JSONStreamSplitter.Piece) -> Bool {
        let message: JSON
        switch piece {
        case .tooLong:
            send(QMPSession.error("GenericError", "JSON parse error, message too long", id: nil)); return false
        case .garbage:
            send(QMPSession.error("GenericError", "JSON parse error, invalid token", id: nil)); return false
        case .message(let bytes):
            do { message = try JSONParser.parse(bytes) } catch {
                send(QMPSession.error("GenericError", "JSON parse error, \(error)", id: nil)); return false
            }
        }
        guard message.isObject else { send(QMPSession.error("GenericError", "QMP input must be a JSON object", id: nil)); return false }
        let id = message["id"]
        guard let execute = message["execute"] else {
            send(QMPSession.error("GenericError", "QMP input lacks member 'execute'", id: id)); return false
        }
        guard let name = execute.stringValue else {
            send(QMPSession.error("GenericError", "QMP input member 'execute' must be a string", id: id)); return false
        }
        let args = message["arguments"] ?? .object([])
        guard args.isObject else {
            send(QMPSession.error("GenericError", "QMP input member 'arguments' must be an object", id: id)); return false
        }
        if !negotiated {
            if name == "qmp_capabilities" {
                negotiated = true
                send(QMPSession.reply(.object([]), id: id))
            } else {
                send(QMPSession.error("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'", id: id))
            }
            return false
        }
        return dispatch(name, args: args, id: id)
    }

    /// Runs `body` on the machine's run loop; its result becomes the reply.
    func onMachine(id: JSON?, _ body: @escaping (VirtMachine) -> JSON) -> Bool {
        let server = self.server, connection = self.connection
        server.machine.control.post { m in
            server.enqueue(body(m), forConnection: connection)
        }
        return true
    }

    func dispatch(_ name: String, args: JSON, id: JSON?) -> Bool {
        let ok = QMPSession.reply(.object([]), id: id)
        switch name {
        case "qmp_capabilities":
            send(QMPSession.error("CommandNotFound", "Capabilities negotiation is already complete, command ignored", id: id))
        case "query-version":
            send(QMPSession.reply(.object([
                ("qemu", .object([("micro", .int(0)), ("minor", .int(2)), ("major", .int(7))])),
                ("package", .string("rivet")),
            ]), id: id))
        case "query-commands":
            send(QMPSession.reply(.array(QMPSession.commands.map { .object([("name", .string($0))]) }), id: id))
        case "query-name":
            send(QMPSession.reply(.object([]), id: id))
        case "query-migrate":
            send(QMPSession.reply(QMPSession.migrationJSON(server.machine.control.migrationInfo), id: id))
        case "migrate_cancel":
            // file:/exec: saves run to completion inside one command; a tcp: migration stops at its next batch.
            return onMachine(id: id) { m in
                m.cancelLiveMigration()
                return ok
            }
        case "query-replication":
            send(QMPSession.reply(QMPSession.replicationJSON(server.machine.control.replicationInfo), id: id))
        case "migrate-set-parameters":
            var p = server.machine.control.migrationParameters
            var checkpointDelay: UInt64? = nil
            for (key, value) in args.objectMembers {
                switch key {
                case "x-checkpoint-delay":
                    guard let v = value.intValue, v >= 1, v <= 60_000 else {
                        send(QMPSession.error("GenericError", "Parameter 'x-checkpoint-delay' expects 1 to 60000 (ms)", id: id)); return false
                    }
                    checkpointDelay = UInt64(v)
                case "max-bandwidth", "downtime-limit", "x-rivet-throttle-after-rounds", "cpu-throttle-initial", "cpu-throttle-increment":
                    guard let v = value.intValue, v >= 0, v <= Int64(1) << 50 else {
                        send(QMPSession.error("GenericError", "Parameter '\(key)' expects a non-negative integer", id: id)); return false
                    }
                    switch key {
                    case "max-bandwidth": p.maxBandwidth = UInt64(v)
                    case "downtime-limit":
                        guard v <= 2_000_000 else {
                            send(QMPSession.error("GenericError", "Parameter 'downtime-limit' expects an integer in the range of 0 to 2000 seconds", id: id)); return false
                        }
                        p.downtimeLimitMs = UInt64(v)
                    case "cpu-throttle-initial": p.throttleInitial = Int(min(max(v, 1), 99))
                    case "cpu-throttle-increment": p.throttleIncrement = Int(min(max(v, 1), 99))
                    default: p.throttleAfterRounds = Int(min(max(v, 1), 1000))
                    }
                default:
                    send(QMPSession.error("GenericError", "Parameter '\(key)' is unexpected", id: id)); return false
                }
            }
            server.machine.control.migrationParameters = p
            if let d = checkpointDelay {
                return onMachine(id: id) { m in m.control.checkpointPeriodMs = d; return ok }
            }
            send(ok)
        case "migrate-set-capabilities":
            guard case .array(let list)? = args["capabilities"] else {
                send(QMPSession.error("GenericError", "Parameter 'capabilities' is missing", id: id)); return false
            }
            var p = server.machine.control.migrationParameters
            var colo: Bool? = nil
            for item in list {
                guard let name = item["capability"]?.stringValue, let state = item["state"]?.boolValue else {
                    send(QMPSession.error("GenericError", "Each capability needs 'capability' and 'state'", id: id)); return false
                }
                switch name {
                case "block": p.blockCapability = state
                // x-colo: `migrate tcp:` starts replication to a standby instead of a migration (docs/failover.md).
                case "x-colo": colo = state
                case "events", "auto-converge":
                    guard state else {
                        send(QMPSession.error("GenericError", "Capability '\(name)' is always on in rivet", id: id)); return false
                    }
                default:
                    send(QMPSession.error("GenericError", "Capability '\(name)' is not supported", id: id)); return false
                }
            }
            let status = server.machine.control.migrationInfo.status
            if ["setup", "active", "cancelling"].contains(status) && server.machine.control.migrationInfo.live {
                send(QMPSession.error("GenericError", "There's a migration process in progress", id: id)); return false
            }
            server.machine.control.migrationParameters = p
            return onMachine(id: id) { m in
                if let c = colo { m.control.replicationCapability = c }
                return ok
            }
        case "query-migrate-capabilities":
            let p = server.machine.control.migrationParameters
            return onMachine(id: id) { m in
                QMPSession.reply(.array([
                    .object([("capability", .string("block")), ("state", .bool(p.blockCapability))]),
                    .object([("capability", .string("events")), ("state", .bool(true))]),
                    .object([("capability", .string("auto-converge")), ("state", .bool(true))]),
                    .object([("capability", .string("x-colo")), ("state", .bool(m.control.replicationCapability))]),
                ]), id: id)
            }
        case "query-migrate-parameters":
            let p = server.machine.control.migrationParameters
            send(QMPSession.reply(.object([
                ("max-bandwidth", .int(Int64(p.maxBandwidth))), ("downtime-limit", .int(Int64(p.downtimeLimitMs))),
                ("cpu-throttle-initial", .int(Int64(p.throttleInitial))), ("cpu-throttle-increment", .int(Int64(p.throttleIncrement))),
                ("max-cpu-throttle", .int(Int64(p.throttleMax))), ("x-rivet-throttle-after-rounds", .int(Int64(p.throttleAfterRounds))),
            ]), id: id))
        case "migrate-incoming":
            guard let uri = args["uri"]?.stringValue else {
                send(QMPSession.error("GenericError", "Parameter 'uri' is missing", id: id)); return false
            }
            return onMachine(id: id) { m in
                guard m.control.awaitingIncoming else {
                    return QMPSession.error("GenericError", "'-incoming' was not specified on the command line", id: id)
                }
                do { try m.acceptIncoming(uri) } catch {
                    return QMPSession.error("GenericError", "\(error)", id: id)
                }
                m.control.awaitingIncoming = false
                return ok
            }
        case "query-status":
            return onMachine(id: id) { m in
                let state = m.control.runState
                return QMPSession.reply(.object([("status", .string(state.rawValue)), ("singlestep", .bool(false)),
                                                 ("running", .bool(state == .running))]), id: id)
            }
        case "query-cpus-fast":
            return onMachine(id: id) { m in
                let tid = QMPSession.threadID()
                return QMPSession.reply(.array(m.harts.map { h in
                    .object([("thread-id", .int(tid)),
                             ("props", .object([("core-id", .int(0)), ("thread-id", .int(0)), ("socket-id", .int(Int64(h.hartID)))])),
                             ("qom-path", .string("/machine/soc0/harts[\(h.hartID)]")),
                             ("cpu-index", .int(Int64(h.hartID))), ("target", .string("riscv64"))])
                }), id: id)
            }
        case "query-block":
            let paths = server.drivePaths
            return onMachine(id: id) { m in
                QMPSession.reply(.array(m.config.disks.enumerated().map { (i, d) in
                    let format = (d as? ImageLayer)?.format.rawValue ?? "raw"
                    let path = i < paths.count ? paths[i] : ""
                    return .object([
                        ("device", .string("virtio\(i)")), ("locked", .bool(false)), ("removable", .bool(false)),
                        ("qdev", .string("/machine/peripheral-anon/device[\(i)]/virtio-backend")),
                        ("type", .string("unknown")),
                        ("inserted", .object([
                            ("file", .string(path)), ("ro", .bool(d.isReadOnly)), ("drv", .string(format)),
                            ("encrypted", .bool(false)), ("backing_file_depth", .int(0)),
                            ("image", .object([("filename", .string(path)), ("format", .string(format)),
                                               ("virtual-size", .int(Int64(d.size)))])),
                        ])),
                    ])
                }), id: id)
            }
        case "stop":
            return onMachine(id: id) { m in
                if m.control.runState == .running { m.requestPause(reason: "qmp") }
                // Waiting for an incoming migration: stay paused when it completes (QEMU's autostart=0).
                if m.control.runState == .inmigrate { m.control.startAfterIncoming = false }
                return ok
            }
        case "cont":
            return onMachine(id: id) { m in
                if m.control.runState == .shutdown {
                    return QMPSession.error("GenericError", "the guest has shut down; it cannot continue", id: id)
                }
                if m.control.replicationInfo.role == "standby" && m.control.replicationInfo.status != "took-over" {
                    // Checkpoints keep replacing this guest's state; it runs only by taking over.
                    return QMPSession.error("GenericError", "this machine is a replication standby; it runs when it takes over", id: id)
                }
                // Waiting for an incoming migration: start the guest once it has arrived (QEMU's autostart).
                if m.control.runState == .inmigrate { m.control.startAfterIncoming = true; return ok }
                if m.control.runState == .postmigrate {
                    // The guest moved away: its images belong to the destination unless it let them go.
                    do { try m.activateDrivesAfterHandover() } catch {
                        return QMPSession.error("GenericError", "cannot continue after the migration: \(error)", id: id)
                    }
                }
                m.resume()
                return ok
            }
        case "system_reset":
            return onMachine(id: id) { m in
                if m.control.runState == .inmigrate {
                    return QMPSession.error("GenericError", "the guest is waiting for an incoming migration", id: id)
                }
                do { try m.reset() } catch {
                    return QMPSession.error("GenericError", "reset failed: \(error)", id: id)
                }
                m.emit(.reset(guest: false, reason: "host-qmp-system-reset"))
                return ok
            }
        case "system_powerdown":
            return onMachine(id: id) { m in
                m.requestPowerdown()
                return ok
            }
        case "quit":
            return onMachine(id: id) { m in
                m.control.runStateForShutdown()
                m.requestExit(.quitByUser, event: .shutdown(guest: false, reason: "host-qmp-quit"))
                return ok
            }
        case "migrate":
            guard let uri = args["uri"]?.stringValue else {
                send(QMPSession.error("GenericError", "Parameter 'uri' is missing", id: id)); return false
            }
            if args["inc"]?.boolValue == true {
                send(QMPSession.error("GenericError", "Incremental block migration (inc) is not supported; use blk", id: id)); return false
            }
            if let v = args["blk"], v.boolValue == nil {
                send(QMPSession.error("GenericError", "Parameter 'blk' expects a boolean", id: id)); return false
            }
            let copyDisks = args["blk"]?.boolValue ?? server.machine.control.migrationParameters.blockCapability
            return onMachine(id: id) { m in
                do {
                    if m.control.runState == .inmigrate {
                        return QMPSession.error("GenericError", "the guest is waiting for an incoming migration", id: id)
                    }
                    if uri.hasPrefix("tcp:") && m.isReplicating {
                        // Both would own the dirty log; replication ends when its standby is lost.
                        return QMPSession.error("GenericError", "the machine is replicating to a standby; a tcp: migration cannot start", id: id)
                    }
                    if uri.hasPrefix("tcp:") && m.control.replicationCapability {
                        if copyDisks {
                            return QMPSession.error("GenericError", "blk does not apply to replication (the primary copies its drives to the standby itself)", id: id)
                        }
                        try m.startReplication(to: String(uri.dropFirst(4)))
                        return ok
                    }
                    if uri.hasPrefix("tcp:") {
                        try m.startLiveMigration(to: String(uri.dropFirst(4)), copyDisks: copyDisks)
                        return ok
                    }
                    if copyDisks {
                        return QMPSession.error("GenericError", "copying the disks (blk) needs a tcp: migration", id: id)
                    }
                    _ = try m.saveSnapshot(to: uri)
                    return ok
                } catch {
                    return QMPSession.error("GenericError", "\(error)", id: id)
                }
            }
        case "balloon":
            // QEMU's: the guest's target memory size in bytes; the balloon takes the rest.
            guard let value = args["value"]?.intValue else {
                send(QMPSession.error("GenericError", "Parameter 'value' is missing", id: id)); return false
            }
            guard value > 0 else {
                send(QMPSession.error("GenericError", "Parameter 'value' expects a size", id: id)); return false
            }
            return onMachine(id: id) { m in
                guard let b = m.balloon else {
                    return QMPSession.error("DeviceNotActive", "No balloon device has been activated", id: id)
                }
                b.device.setTarget(bytes: UInt64(value))
                return ok
            }
        case "query-balloon":
            return onMachine(id: id) { m in
                guard let b = m.balloon else {
                    return QMPSession.error("DeviceNotActive", "No balloon device has been activated", id: id)
                }
                return QMPSession.reply(.object([("actual", .int(Int64(b.device.actualBytes)))]), id: id)
            }
        case "x-rivet-ram-hash":
            return onMachine(id: id) { m in
                QMPSession.reply(.object([("hash", .string(m.ramHash())), ("instructions", .int(Int64(bitPattern: m.totalWork)))]), id: id)
            }
        default:
            send(QMPSession.error("CommandNotFound", "The command \(name) has not been found", id: id))
        }
        return false
    }

    /// query-migrate during and after a tcp: migration, QEMU's members.
    static func liveMigrationJSON(_ info: MigrationInfo) -> JSON {
        var m: [(String, JSON)] = [("status", .string(info.status))]
        let done = info.status == "completed"
        m.append(("total-time", .int(Int64(info.totalTimeMs))))
        if done { m.append(("downtime", .int(Int64(info.downtimeMs)))) } else {
            m.append(("expected-downtime", .int(Int64(info.expectedDowntimeMs))))
        }
        m.append(("setup-time", .int(Int64(info.setupTimeMs))))
        m.append(("ram", .object([
            ("transferred", .int(Int64(info.transferred))), ("remaining", .int(Int64(info.remaining))),
            ("total", .int(Int64(info.total))), ("duplicate", .int(Int64(info.zeroPages))),
            ("normal", .int(Int64(info.normalPages))), ("normal-bytes", .int(Int64(info.normalPages) * 4096)),
            ("dirty-pages-rate", .int(Int64(info.dirtyPagesRate))), ("dirty-sync-count", .int(Int64(info.dirtySyncCount))),
            ("mbps", .double(info.mbps)), ("page-size", .int(4096)),
        ])))
        if let d = info.disk {
            m.append(("disk", .object([("transferred", .int(Int64(d.transferred))), ("remaining", .int(Int64(d.remaining))),
                                       ("total", .int(Int64(d.total)))])))
        }
        if info.throttlePercent > 0 { m.append(("cpu-throttle-percentage", .int(Int64(info.throttlePercent)))) }
        if let e = info.error { m.append(("error-desc", .string(e))) }
        return .object(m)
    }

    /// query-replication (rivet's; QEMU's COLO has query-colo-status): role, status and checkpoint counts.
    static func replicationJSON(_ i: ReplicationInfo) -> JSON {
        var m: [(String, JSON)] = [("status", .string(i.status))]
        guard i.status != "none" else { return .object(m) }
        m += [("role", .string(i.role)), ("peer", .string("tcp:" + i.peer)),
              ("committed-checkpoint", .int(Int64(i.committedEpoch))), ("checkpoints", .int(Int64(i.checkpoints))),
              ("last-checkpoint-pages", .int(Int64(i.lastCheckpointPages))), ("last-checkpoint-disk-bytes", .int(Int64(i.lastDiskBytes)))]
        if i.role == "primary" {
            m += [("period-ms", .int(Int64(i.periodMs))), ("last-checkpoint-bytes", .int(Int64(i.lastCheckpointBytes))),
                  ("last-pause-us", .int(Int64(i.lastPauseUs))), ("max-pause-us", .int(Int64(i.maxPauseUs))),
                  ("transferred", .int(Int64(i.totalBytes)))]
        }
        if let e = i.error { m.append(("error-desc", .string(e))) }
        return .object(m)
    }

    static func threadID() -> Int64 {
        typealias GetTID = @convention(c) () -> Int32
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gettid") else { return Int64(getpid()) }
        return Int64(unsafeBitCast(sym, to: GetTID.self)())
    }

    static func migrationJSON(_ info: MigrationInfo) -> JSON {
        guard info.status != "none" else { return .object([]) }
        if info.live { return liveMigrationJSON(info) }
        var m: [(String, JSON)] = [("status", .string(info.status))]
        if info.status == "completed" || info.status == "failed" {
            m.append(("total-time", .int(Int64(info.totalTimeMs))))
            m.append(("downtime", .int(Int64(info.totalTimeMs))))
            m.append(("setup-time", .int(0)))
        }
        let ms = max(info.totalTimeMs, 1)
        m.append(("ram", .object([
            ("transferred", .int(Int64(info.transferred))), ("remaining", .int(info.status == "completed" ? 0 : Int64(info.total))),
            ("total", .int(Int64(info.total))), ("duplicate", .int(Int64(info.zeroPages))),
            ("normal", .int(Int64(info.normalPages))), ("normal-bytes", .int(Int64(info.normalPages) * 4096)),
            ("dirty-sync-count", .int(1)), ("mbps", .double(Double(info.transferred) * 8 / 1000 / Double(ms))),
        ])))
        if let e = info.error { m.append(("error-desc", .string(e))) }
        return .object(m)
    }
}

extension JSON {
    /// The members of an object (empty for anything else).
    var objectMembers: [(String, JSON)] { if case .object(let m) = self { return m }; return [] }
}
