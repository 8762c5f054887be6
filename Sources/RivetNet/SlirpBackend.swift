#if canImport(Glibc)
import Glibc
#endif
import CSlirp

/// An IPv4 address in host byte order (10.0.2.15 = 0x0a00020f).
public typealias IPv4 = UInt32

public func formatIPv4(_ a: IPv4) -> String {
    "\(a >> 24).\((a >> 16) & 255).\((a >> 8) & 255).\(a & 255)"
}

/// A `hostfwd=` rule: connections to the host address and port reach the guest address and port.
public struct PortForward: Equatable {
    public var udp = false
    public var hostAddress: IPv4 = 0          // 0 = every host address
    public var hostPort: UInt16 = 0
    public var guestAddress: IPv4 = 0         // 0 = the first DHCP address
    public var guestPort: UInt16 = 0
    public init() {}

    public var description: String {
        "\(udp ? "udp" : "tcp"):\(hostAddress == 0 ? "" : formatIPv4(hostAddress)):\(hostPort)-\(guestAddress == 0 ? "" : formatIPv4(guestAddress)):\(guestPort)"
    }
}

/// User-mode networking (`--netdev user`): libslirp's NAT, DHCP and DNS forwarding, as in QEMU.
public struct SlirpOptions {
    public var network: IPv4 = 0x0a00_0200     // 10.0.2.0
    public var prefixLength = 24
    public var host: IPv4? = nil                // default network + 2
    public var dns: IPv4? = nil                 // default network + 3
    public var dhcpStart: IPv4? = nil           // default network + 15
    /// Isolate the guest: no connections out, only port forwards in.
    public var restricted = false
    public var hostname: String? = nil
    /// The link MTU (and MRU): 65520, libslirp's largest, unless the user asks for another. The host side
    /// is made of sockets, so a large MTU costs nothing and lets the guest move 64 KiB per frame.
    public var mtu = SlirpOptions.defaultMTU
    public static let defaultMTU = 65520
    public static let mtuRange = 576...65520
    public var forwards: [PortForward] = []
    public init() {}

    public var netmask: IPv4 { prefixLength == 0 ? 0 : ~IPv4(0) << IPv4(32 - prefixLength) }
    public var hostAddress: IPv4 { host ?? (network | 2) }
    public var dnsAddress: IPv4 { dns ?? (network | 3) }
    public var dhcpStartAddress: IPv4 { dhcpStart ?? (network | 15) }

    /// Checks that the addresses belong to the network (as QEMU does), with a one-line reason.
    public func validate() throws {
        guard (0...30).contains(prefixLength) else { throw NetworkError("net= prefix length \(prefixLength) must be 0...30") }
        guard network & ~netmask == 0 else { throw NetworkError("net=\(formatIPv4(network))/\(prefixLength) has host bits set") }
        for (name, a) in [("host", hostAddress), ("dns", dnsAddress), ("dhcpstart", dhcpStartAddress)] {
            guard a & netmask == network, a != network, a & ~netmask != ~netmask & ~IPv4(0) else {
                throw NetworkError("\(name)=\(formatIPv4(a)) is not a host address in \(formatIPv4(network))/\(prefixLength)")
            }
        }
        guard hostAddress != dnsAddress else { throw NetworkError("host and dns addresses must differ") }
        guard SlirpOptions.mtuRange.contains(mtu) else { throw NetworkError("mtu=\(mtu) must be in \(SlirpOptions.mtuRange)") }
    }
}

/// One libslirp instance served on its own thread: a poll loop over libslirp's sockets, its timers, and
/// the eventfd that says the guest sent frames (libslirp is not thread-safe, so every call into it
/// happens on this thread after `start`).
public final class SlirpBackend: ThreadedBackend {
    /// A libslirp timer: the callback and when it is due (milliseconds on `monotonicNanoseconds / 1e6`).
    final class Timer {
        let callback: SlirpTimerCb
        let argument: UnsafeMutableRawPointer?
        var expireMs: Int64 = -1
        init(callback: SlirpTimerCb, argument: UnsafeMutableRawPointer?) { self.callback = callback; self.argument = argument }
    }

    private var slirp: OpaquePointer?
    /// libslirp keeps a pointer to its callback table, so it lives at a fixed address.
    private let callbacks = UnsafeMutablePointer<SlirpCb>.allocate(capacity: 1)
    private var timers: [Timer] = []
    private var pollSet: [pollfd] = []
    private var guestErrors = 0
    private let hostname: UnsafeMutablePointer<CChar>?
    private let linkMTU: Int
    public override var mtu: Int? { linkMTU }
    public override var deliversValidChecksums: Bool { true }

    public init(id: String, options: SlirpOptions) throws {
        try options.validate()
        hostname = options.hostname.map { strdup($0) }
        linkMTU = options.mtu
        callbacks.initialize(to: SlirpCb())
        try super.init(label: "netdev \(id) (user)")
        callbacks.pointee.send_packet = { buffer, length, opaque in
            let me = Unmanaged<SlirpBackend>.fromOpaque(opaque!).takeUnretainedValue()
            me.deliver(Array(UnsafeRawBufferPointer(start: buffer, count: length)))
            return length
        }
        callbacks.pointee.guest_error = { message, opaque in
            let me = Unmanaged<SlirpBackend>.fromOpaque(opaque!).takeUnretainedValue()
            me.guestErrors += 1
            if me.guestErrors <= 5 { fputs("rivet: \(me.label): guest error: \(String(cString: message!))\n", stderr) }
        }
        callbacks.pointee.clock_get_ns = { _ in SlirpBackend.monotonicNanoseconds() }
        callbacks.pointee.timer_new = { callback, argument, opaque in
            let me = Unmanaged<SlirpBackend>.fromOpaque(opaque!).takeUnretainedValue()
            let timer = Timer(callback: callback!, argument: argument)
            me.timers.append(timer)
            return Unmanaged.passUnretained(timer).toOpaque()
        }
        callbacks.pointee.timer_free = { timer, opaque in
            let me = Unmanaged<SlirpBackend>.fromOpaque(opaque!).takeUnretainedValue()
            me.timers.removeAll { Unmanaged.passUnretained($0).toOpaque() == timer }
        }
        callbacks.pointee.timer_mod = { timer, expire, opaque in
            let me = Unmanaged<SlirpBackend>.fromOpaque(opaque!).takeUnretainedValue()
            me.timers.first { Unmanaged.passUnretained($0).toOpaque() == timer }?.expireMs = expire
        }
        callbacks.pointee.register_poll_fd = { _, _ in }
        callbacks.pointee.unregister_poll_fd = { _, _ in }
        callbacks.pointee.notify = { opaque in
            Unmanaged<SlirpBackend>.fromOpaque(opaque!).takeUnretainedValue().wakeThread()
        }

        var config = SlirpConfig()
        config.version = 3
        config.restricted = options.restricted ? 1 : 0
        config.in_enabled = true
        config.vnetwork = in_addr(s_addr: options.network.bigEndian)
        config.vnetmask = in_addr(s_addr: options.netmask.bigEndian)
        config.vhost = in_addr(s_addr: options.hostAddress.bigEndian)
        config.in6_enabled = false
        config.vhostname = UnsafePointer(hostname)
        config.vdhcp_start = in_addr(s_addr: options.dhcpStartAddress.bigEndian)
        config.vnameserver = in_addr(s_addr: options.dnsAddress.bigEndian)
        config.if_mtu = options.mtu
        config.if_mru = options.mtu
        let opaque = Unmanaged.passUnretained(self).toOpaque()
        slirp = slirp_new(&config, callbacks, opaque)
        guard slirp != nil else { throw NetworkError("\(label): libslirp refused the configuration") }
        for f in options.forwards {
            let guest = f.guestAddress == 0 ? options.dhcpStartAddress : f.guestAddress
            let r = slirp_add_hostfwd(slirp, f.udp ? 1 : 0, in_addr(s_addr: f.hostAddress.bigEndian), Int32(f.hostPort),
                                      in_addr(s_addr: guest.bigEndian), Int32(f.guestPort))
            if r < 0 {
                let why = errno != 0 ? errnoText() : "refused"
                slirp_cleanup(slirp); slirp = nil
                throw NetworkError("\(label): hostfwd=\(f.description): cannot listen on the host port (\(why))")
            }
        }
    }

    deinit {
        closeResources()
        callbacks.deallocate()
        free(hostname)
    }

    override func closeResources() {
        if let slirp { slirp_cleanup(slirp) }
        slirp = nil
    }

    static func monotonicNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    override func serve() {
        guard let slirp else { return }
        let opaque = Unmanaged.passUnretained(self).toOpaque()
        while !stopping {
            // Frames from the guest first, then due timers, then the host sockets.
            while let frame = outgoing.pop() {
                if SlirpBackend.isIPv4Fragment(frame) { noteDroppedFragment(); continue }
                frame.withUnsafeBufferPointer { slirp_input(slirp, $0.baseAddress, Int32($0.count)) }
            }
            let now = SlirpBackend.monotonicNanoseconds() / 1_000_000
            for t in timers where t.expireMs >= 0 && t.expireMs <= now {
                t.expireMs = -1
                t.callback(t.argument)
            }
            var timeout: UInt32 = 1000
            if let next = timers.lazy.filter({ $0.expireMs >= 0 }).map(\.expireMs).min() {
                timeout = UInt32(clamping: max(0, min(Int64(timeout), next - now)))
            }
            pollSet.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            slirp_pollfds_fill(slirp, &timeout, { fd, events, opaque in
                let me = Unmanaged<SlirpBackend>.fromOpaque(opaque!).takeUnretainedValue()
                me.pollSet.append(pollfd(fd: fd, events: SlirpBackend.pollEvents(events), revents: 0))
                return Int32(me.pollSet.count - 1)
            }, opaque)
            if !outgoing.isEmpty { timeout = 0 }
            let r = pollFDs(&pollSet, timeoutMs: Int32(clamping: timeout))
            if pollSet[0].revents != 0 { drainWake() }
            slirp_pollfds_poll(slirp, r < 0 ? 1 : 0, { index, opaque in
                let me = Unmanaged<SlirpBackend>.fromOpaque(opaque!).takeUnretainedValue()
                guard index > 0, Int(index) < me.pollSet.count else { return 0 }
                return SlirpBackend.slirpEvents(me.pollSet[Int(index)].revents)
            }, opaque)
        }
    }

    /// IPv4 fragments from the guest never reach libslirp: Debian's libslirp 4.7.0 (also QEMU 7.2's)
    /// corrupts its heap reassembling crafted fragments (two fragments at offset 65528 kill the process;
    /// random overlapping ones too). A Linux guest fragments only UDP datagrams larger than the MTU.
    static func isIPv4Fragment(_ frame: [UInt8]) -> Bool {
        guard frame.count >= 34, frame[12] == 0x08, frame[13] == 0x00 else { return false }
        let moreFragments = frame[20] & 0x20 != 0
        let offset = Int(frame[20] & 0x1f) << 8 | Int(frame[21])
        return moreFragments || offset != 0
    }

    private var droppedFragments: UInt64 = 0
    private func noteDroppedFragment() {
        droppedFragments &+= 1
        if droppedFragments == 1 {
            fputs("rivet: \(label): dropping IPv4 fragments from the guest (libslirp 4.7 cannot reassemble them safely)\n", stderr)
        }
    }

    static func pollEvents(_ slirpEvents: Int32) -> Int16 {
        var e: Int32 = 0
        if slirpEvents & Int32(SLIRP_POLL_IN) != 0 { e |= Int32(POLLIN) }
        if slirpEvents & Int32(SLIRP_POLL_OUT) != 0 { e |= Int32(POLLOUT) }
        if slirpEvents & Int32(SLIRP_POLL_PRI) != 0 { e |= Int32(POLLPRI) }
        if slirpEvents & Int32(SLIRP_POLL_ERR) != 0 { e |= Int32(POLLERR) }
        if slirpEvents & Int32(SLIRP_POLL_HUP) != 0 { e |= Int32(POLLHUP) }
        return Int16(e)
    }

    static func slirpEvents(_ revents: Int16) -> Int32 {
        let r = Int32(revents)
        var e: Int32 = 0
        if r & Int32(POLLIN) != 0 { e |= Int32(SLIRP_POLL_IN) }
        if r & Int32(POLLOUT) != 0 { e |= Int32(SLIRP_POLL_OUT) }
        if r & Int32(POLLPRI) != 0 { e |= Int32(SLIRP_POLL_PRI) }
        if r & Int32(POLLERR) != 0 { e |= Int32(SLIRP_POLL_ERR) }
        if r & Int32(POLLHUP) != 0 { e |= Int32(SLIRP_POLL_HUP) }
        return e
    }
}
