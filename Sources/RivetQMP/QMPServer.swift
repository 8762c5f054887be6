#if canImport(Glibc)
import Glibc
#endif
import RivetMachine
import RivetSnapshot
import RivetStorage

/// Where a QMP server listens: QEMU's `unix:PATH,server=on,wait=off` or `tcp:HOST:PORT,server=on,wait=off`.
public enum QMPAddress: Equatable {
    case unix(String)
    case tcp(host: String, port: UInt16)

    public static func parse(_ spec: String) throws -> QMPAddress {
        var parts = spec.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let target = parts.removeFirst()
        for option in parts {
            switch option {
            case "server", "server=on", "wait=off", "nowait": break
            case "server=off": throw QMPError("--qmp \(spec): only server sockets are supported (server=on)")
            case "wait=on": throw QMPError("--qmp \(spec): wait=on is not supported; use wait=off")
            default: throw QMPError("--qmp \(spec): unknown option '\(option)'")
            }
        }
        if target.hasPrefix("unix:") {
            let path = String(target.dropFirst(5))
            guard !path.isEmpty, path.utf8.count < 108 else { throw QMPError("--qmp \(spec): bad socket path") }
            return .unix(path)
        }
        if target.hasPrefix("tcp:") {
            let rest = target.dropFirst(4)
            guard let colon = rest.lastIndex(of: ":"), let port = UInt16(rest[rest.index(after: colon)...]) else {
                throw QMPError("--qmp \(spec): expected tcp:HOST:PORT")
            }
            var host = String(rest[..<colon])
            if host.isEmpty { host = "127.0.0.1" }
            return .tcp(host: host, port: port)
        }
        throw QMPError("--qmp \(spec): expected unix:PATH or tcp:HOST:PORT")
    }
}

public struct QMPError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// One QMP monitor: a listening socket served by its own thread, one client at a time (others wait in
/// the backlog, as with QEMU). Commands that touch the machine are posted to the run loop and answered
/// when it has executed them; events are queued here and written by this thread, so a slow client never
/// blocks the machine.
public final class QMPServer {
    let machine: VirtMachine
    let address: QMPAddress
    let drivePaths: [String]
    let listenFD: Int32
    let wake = Wakeup()
    let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    // Shared with the run-loop thread (under mutex).
    var outbox: [UInt8] = []
    var connection = 0          // bumps on every accept; replies for an older one are dropped
    var connected = false
    var replyArrived = false
    var closing = false
    var thread = pthread_t()
    var started = false

    public init(address: QMPAddress, machine: VirtMachine, drivePaths: [String]) throws {
        self.machine = machine
        self.address = address
        self.drivePaths = drivePaths
        listenFD = try QMPServer.listen(address)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    static func listen(_ address: QMPAddress) throws -> Int32 {
        switch address {
        case .unix(let path):
            // The socket is bound under a temporary name and renamed once it listens, so a client that sees
            // the path never finds it refusing connections (bind creates the file before listen).
            let staging = path + ".\(getpid()).new"
            let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
            guard path.utf8.count < capacity else {
                throw QMPError("--qmp unix:\(path): the path is \(path.utf8.count) bytes, at most \(capacity - 1) fit in a socket address")
            }
            let bindPath = staging.utf8.count < capacity ? staging : path
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw QMPError("--qmp: socket failed") }
            unlink(bindPath)
            var sa = sockaddr_un()
            sa.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &sa.sun_path) { dst in
                for (i, b) in bindPath.utf8.enumerated() { dst[i] = b }
            }
            let ok = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard ok == 0, Glibc.listen(fd, 8) == 0, bindPath == path || rename(bindPath, path) == 0 else {
                let e = String(cString: strerror(errno)); close(fd)
                if bindPath != path { unlink(bindPath) }
                throw QMPError("--qmp unix:\(path): cannot listen: \(e)")
            }
            return fd
        case .tcp(let host, let port):
            guard let address = ipv4SocketAddress(host: host, port: port) else {
                throw QMPError("--qmp tcp:\(host):\(port): host must be an IPv4 address")
            }
            do { return try listenTCP(address, backlog: 8) } catch {
                throw QMPError("--qmp tcp:\(host):\(port): cannot listen: \(error)")
            }
        }
    }

    /// Starts the server thread and subscribes to the machine's events.
    public func start() {
        let previous = machine.control.eventSink
        machine.control.eventSink = { [unowned self] event in
            previous?(event)
            self.queueEvent(event)
        }
        started = true
        pthread_create(&thread, nil, { raw in
            let s = Unmanaged<QMPServer>.fromOpaque(raw!).takeUnretainedValue()
            s.serve()
            return nil
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Writes what is queued (the reply to quit, the SHUTDOWN event) and stops the thread.
    public func stop() {
        guard started else { return }
        pthread_mutex_lock(mutex); closing = true; pthread_mutex_unlock(mutex)
        wake.signal()
        pthread_join(thread, nil)
        close(listenFD)
        if case .unix(let path) = address { unlink(path) }
    }

    // MARK: Output (any thread)

    func enqueue(_ message: JSON, forConnection id: Int?) {
        pthread_mutex_lock(mutex)
        if connected && (id == nil || id == connection) {
            outbox.append(contentsOf: Array((message.text + "\r\n").utf8))
        }
        if let id, id == connection { replyArrived = true }
        pthread_mutex_unlock(mutex)
        wake.signal()
    }

    static func timestamp() -> JSON {
        var tv = timeval()
        gettimeofday(&tv, nil)
        return .object([("seconds", .int(Int64(tv.tv_sec))), ("microseconds", .int(Int64(tv.tv_usec)))])
    }

    func queueEvent(_ e: MachineEvent) {
        var name = ""
        var data: JSON? = nil
        switch e {
        case .stop: name = "STOP"
        case .resume: name = "RESUME"
        case .powerdown: name = "POWERDOWN"
        case .reset(let guest, let reason):
            name = "RESET"; data = .object([("guest", .bool(guest)), ("reason", .string(reason))])
        case .shutdown(let guest, let reason):
            name = "SHUTDOWN"; data = .object([("guest", .bool(guest)), ("reason", .string(reason))])
        case .migration(let status):
            name = "MIGRATION"; data = .object([("status", .string(status))])
        case .custom(let n, let json):
            name = n; data = (try? JSONParser.parse(Array(json.utf8))) ?? .object([])
        }
        var members: [(String, JSON)] = [("event", .string(name))]
        if let data { members.append(("data", data)) }
        members.append(("timestamp", QMPServer.timestamp()))
        enqueue(.object(members), forConnection: nil)
    }

    // MARK: The server thread

    func serve() {
        while true {
            pthread_mutex_lock(mutex); let stop = closing; pthread_mutex_unlock(mutex)
            if stop { return }
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, 1000) <= 0 { continue }
            if fds[1].revents != 0 { wake.drain() }
            guard fds[0].revents != 0 else { continue }
            let client = accept(listenFD, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            // A client that stops reading must not hold this thread (and rivet's exit) forever.
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            serveClient(client)
            close(client)
        }
    }

    func serveClient(_ fd: Int32) {
        pthread_mutex_lock(mutex)
        connection += 1
        let id = connection
        connected = true
        outbox = []
        pthread_mutex_unlock(mutex)
        defer {
            pthread_mutex_lock(mutex); connected = false; outbox = []; pthread_mutex_unlock(mutex)
        }
        let greeting = JSON.object([("QMP", .object([
            ("version", .object([("qemu", .object([("micro", .int(0)), ("minor", .int(2)), ("major", .int(7))])),
                                 ("package", .string("rivet"))])),
            ("capabilities", .array([])),
        ]))])
        enqueue(greeting, forConnection: nil)
        var session = QMPSession(server: self, connection: id)
        var splitter = JSONStreamSplitter()
        var queued: [JSONStreamSplitter.Piece] = []
        var awaiting = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        var peerClosed = false
        while true {
            // Write what is queued.
            pthread_mutex_lock(mutex)
            let out = outbox; outbox = []
            let stop = closing
            if replyArrived { replyArrived = false; awaiting = false }
            pthread_mutex_unlock(mutex)
            if !out.isEmpty && !QMPServer.sendAll(fd, out) { return }
            if stop || (peerClosed && !awaiting && queued.isEmpty) { return }
            // Handle the next command once the previous one is answered (QMP answers in order).
            while !awaiting, !queued.isEmpty {
                let piece = queued.removeFirst()
                awaiting = session.handle(piece)
            }
            if awaiting || peerClosed {
                var fds = [pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0)]
                if poll(&fds, 1, 1000) > 0 { wake.drain() }
                if peerClosed { pthread_mutex_lock(mutex); connected = false; pthread_mutex_unlock(mutex) }
                continue
            }
            pthread_mutex_lock(mutex); let more = !outbox.isEmpty; pthread_mutex_unlock(mutex)
            if more { continue }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, 1000) <= 0 { continue }
            if fds[1].revents != 0 { wake.drain() }
            if fds[0].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { peerClosed = true; continue }
                queued += splitter.feed(buffer[0..<n])
            }
        }
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; return false }
            done += n
        }
        return true
    }
}
