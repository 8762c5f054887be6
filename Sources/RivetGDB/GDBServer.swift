#if canImport(Glibc)
import Glibc
#endif
import RivetMachine

public struct GDBError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A GDB remote stub listening on a TCP port, served by its own thread, one gdb at a time.
///
/// Packets are answered in order; while the target runs, the thread waits for its stop (reported
/// through `GDBTarget.stopHandler`) or for Ctrl-C from gdb. When gdb goes away, the target runs on.
public final class GDBServer {
    let target: GDBTarget
    let listenFD: Int32
    public let port: UInt16
    let wake = Wakeup()
    let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    var closing = false
    var thread = pthread_t()
    var started = false

    /// Parses QEMU's `tcp:HOST:PORT` (`tcp::PORT` listens on 127.0.0.1) or a bare port number.
    public static func parseAddress(_ spec: String) throws -> (host: String, port: UInt16) {
        var rest = Substring(spec)
        if rest.hasPrefix("tcp:") { rest = rest.dropFirst(4) }
        else if UInt16(rest) == nil { throw GDBError("--gdb \(spec): expected tcp:HOST:PORT or tcp::PORT") }
        var host = "127.0.0.1"
        if let colon = rest.lastIndex(of: ":") {
            if colon != rest.startIndex { host = String(rest[..<colon]) }
            rest = rest[rest.index(after: colon)...]
        }
        guard let port = UInt16(rest) else { throw GDBError("--gdb \(spec): bad port '\(rest)'") }
        return (host == "localhost" ? "127.0.0.1" : host, port)
    }

    public init(host: String, port: UInt16, target: GDBTarget) throws {
        self.target = target
        guard let address = ipv4SocketAddress(host: host, port: port) else {
            throw GDBError("gdb stub: host must be an IPv4 address, not '\(host)'")
        }
        let fd: Int32
        do { fd = try listenTCP(address, backlog: 4) } catch {
            throw GDBError("gdb stub: cannot listen on \(host):\(port): \(error)")
        }
        listenFD = fd
        self.port = port
        target.stopHandler = { [wake] in wake.signal() }
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func start() {
        started = true
        pthread_create(&thread, nil, { raw in
            let s = Unmanaged<GDBServer>.fromOpaque(raw!).takeUnretainedValue()
            s.serve()
            return nil
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    public func stop() {
        guard started else { return }
        started = false
        pthread_mutex_lock(mutex); closing = true; pthread_mutex_unlock(mutex)
        wake.signal()
        pthread_join(thread, nil)
        close(listenFD)
    }

    var isClosing: Bool { pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }; return closing }

    func serve() {
        while !isClosing {
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, 1000) <= 0 { continue }
            if fds[1].revents != 0 { wake.drain() }
            guard fds[0].revents != 0 else { continue }
            let client = accept(listenFD, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(4))
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            serveClient(client)
            close(client)
        }
    }

    func serveClient(_ fd: Int32) {
        let session = GDBSession(target: target, initialStop: target.attach())
        var parser = GDBPacketParser()
        var running = false
        var everResumed = false
        var lastSent: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        func send(_ reply: String) -> Bool {
            lastSent = GDBPacketParser.frame(Array(reply.utf8))
            return GDBServer.sendAll(fd, lastSent)
        }
        while !isClosing {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, 1000) <= 0 { continue }
            if fds[1].revents != 0 {
                wake.drain()
                if running, let stop = target.takeStop() {
                    running = false
                    if !send(session.stopReply(stop)) { break }
                    if case .exited = stop.reason { return }
                    if case .killed = stop.reason { return }
                }
            }
            guard fds[0].revents != 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            for input in parser.feed(buffer[0..<n]) {
                switch input {
                case .ack: break
                case .nak: if !lastSent.isEmpty && !GDBServer.sendAll(fd, lastSent) { return }
                case .badChecksum: if !session.noAckMode && !GDBServer.sendAll(fd, [UInt8(ascii: "-")]) { return }
                case .interrupt: if running { target.interrupt() }
                case .tooLong:
                    if !session.noAckMode { _ = GDBServer.sendAll(fd, [UInt8(ascii: "+")]) }
                    if !send(GDBSession.errorBadPacket) { return }
                case .packet(let p):
                    if !session.noAckMode && !GDBServer.sendAll(fd, [UInt8(ascii: "+")]) { return }
                    if running { continue }  // all-stop: gdb sends nothing but Ctrl-C while the target runs
                    switch session.handle(p) {
                    case .reply(let r): if !send(r) { return }
                    case .resume(let step):
                        running = true
                        everResumed = true
                        target.resume(step: step)
                    case .detach:
                        _ = send("OK")
                        target.detach(resume: true)
                        return
                    case .kill:
                        target.kill()
                        return
                    }
                }
            }
        }
        // gdb went away (or rivet is ending): the target runs on without a debugger, unless it was
        // paused and gdb never continued it (a port probe must not start a -S machine).
        if !isClosing { target.detach(resume: everResumed || target.wasRunningAtAttach) }
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
