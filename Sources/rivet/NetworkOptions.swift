import RivetDevices
import RivetNet

/// `--netdev`, `--device virtio-net` and `--nic` in QEMU's syntax, turned into network cards.
///
///     --netdev user,id=n0[,net=10.0.2.0/24][,host=..][,dns=..][,dhcpstart=..][,restrict=on|off][,mtu=65520]
///              [,hostname=NAME][,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...
///     --netdev socket,id=n0,listen=[HOST]:PORT | connect=HOST:PORT
///     --netdev tap,id=n0,ifname=NAME[,script=no][,downscript=no]
///     --device virtio-net,netdev=n0[,mac=52:54:00:12:34:56]      (also virtio-net-device)
///     --nic user|socket|tap|none[,BACKEND OPTIONS][,mac=..][,model=virtio]
///
/// Cards get slots in this order: every `--device`, then every `--nic`. Cards without mac= get QEMU's
/// default addresses 52:54:00:12:34:56, :57, ... in that order.
struct NetworkOptions {
    var netdevs: [String]
    var devices: [String]
    var nics: [String]

    /// One parsed `type,key=value,...` option; keys may repeat (hostfwd).
    struct Spec {
        let option: String
        let text: String
        let kind: String
        var values: [(key: String, value: String)]

        init(option: String, _ text: String) throws {
            self.option = option
            self.text = text
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard let first = parts.first, !first.isEmpty, !first.contains("=") else {
                throw CLIError("\(option) \(text): must start with a type (e.g. user)")
            }
            kind = first
            values = []
            for p in parts.dropFirst() {
                guard let eq = p.firstIndex(of: "="), eq != p.startIndex else {
                    throw CLIError("\(option) \(text): '\(p)' is not KEY=VALUE")
                }
                values.append((String(p[..<eq]), String(p[p.index(after: eq)...])))
            }
        }

        func all(_ key: String) -> [String] { values.filter { $0.key == key }.map(\.value) }

        func one(_ key: String) throws -> String? {
            let v = all(key)
            guard v.count <= 1 else { throw CLIError("\(option) \(text): \(key)= given more than once") }
            return v.first
        }

        func reject(unknownBesides known: Set<String>) throws {
            for (k, _) in values where !known.contains(k) {
                throw CLIError("\(option) \(text): unknown option '\(k)' for \(kind) (known: \(known.sorted().joined(separator: ", ")))")
            }
        }

        func fail(_ why: String) -> CLIError { CLIError("\(option) \(text): \(why)") }
    }

    static let userKeys: Set<String> = ["id", "net", "host", "dns", "dhcpstart", "restrict", "hostname", "hostfwd", "mtu"]
    static let socketKeys: Set<String> = ["id", "listen", "connect"]
    static let tapKeys: Set<String> = ["id", "ifname", "script", "downscript"]
    static let cardKeys: Set<String> = ["mac", "model"]

    /// Parses everything first (so a typo is reported before any port is bound), then opens the backends.
    func makeCards() throws -> [NetworkCard] {
        var backends: [String: Spec] = [:]
        var order: [String] = []
        for text in netdevs {
            let spec = try Spec(option: "--netdev", text)
            guard let id = try spec.one("id"), !id.isEmpty else { throw spec.fail("needs id=NAME") }
            guard backends[id] == nil else { throw spec.fail("netdev id '\(id)' is already used") }
            try NetworkOptions.checkBackend(spec, extraKeys: [])
            backends[id] = spec
            order.append(id)
        }
        // (backend spec, mac text) per card, in slot order.
        var cards: [(Spec, String?)] = []
        var used: Set<String> = []
        for text in devices {
            let spec = try Spec(option: "--device", text)
            guard spec.kind == "virtio-net" || spec.kind == "virtio-net-device" else {
                throw spec.fail("unsupported device '\(spec.kind)' (supported: virtio-net, virtio-balloon)")
            }
            try spec.reject(unknownBesides: ["netdev", "mac", "id"])
            guard let id = try spec.one("netdev") else { throw spec.fail("needs netdev=ID") }
            guard let backend = backends[id] else { throw spec.fail("no --netdev with id '\(id)'") }
            guard used.insert(id).inserted else { throw spec.fail("netdev '\(id)' is already used by another device") }
            cards.append((backend, try spec.one("mac")))
        }
        for id in order where !used.contains(id) {
            throw CLIError("--netdev \(backends[id]!.text): no --device virtio-net,netdev=\(id) uses it")
        }
        for text in nics {
            let spec = try Spec(option: "--nic", text)
            if spec.kind == "none" {
                guard spec.values.isEmpty else { throw spec.fail("'none' takes no options") }
                continue
            }
            try NetworkOptions.checkBackend(spec, extraKeys: NetworkOptions.cardKeys)
            if let model = try spec.one("model"), !["virtio", "virtio-net", "virtio-net-device"].contains(model) {
                throw spec.fail("unsupported model '\(model)' (supported: virtio-net)")
            }
            cards.append((spec, try spec.one("mac")))
        }
        var result: [NetworkCard] = []
        for (index, (spec, macText)) in cards.enumerated() {
            let mac = try macText.map { try NetworkOptions.parseMAC($0, spec) } ?? VirtioNet.defaultMAC(index: index)
            result.append(NetworkCard(backend: try NetworkOptions.openBackend(spec, index: index), mac: mac))
        }
        return result
    }

    static func checkBackend(_ spec: Spec, extraKeys: Set<String>) throws {
        switch spec.kind {
        case "user":
            try spec.reject(unknownBesides: userKeys.union(extraKeys))
            _ = try slirpOptions(spec)
        case "socket":
            try spec.reject(unknownBesides: socketKeys.union(extraKeys))
            _ = try socketEndpoint(spec)
        case "tap":
            try spec.reject(unknownBesides: tapKeys.union(extraKeys))
            guard let name = try spec.one("ifname"), !name.isEmpty else { throw spec.fail("needs ifname=NAME (an existing tap device)") }
            for key in ["script", "downscript"] {
                if let v = try spec.one(key), v != "no" { throw spec.fail("\(key)=\(v) is not supported (configure the tap device beforehand; use \(key)=no)") }
            }
        default:
            throw spec.fail("unsupported netdev type '\(spec.kind)' (supported: user, socket, tap)")
        }
    }

    static func openBackend(_ spec: Spec, index: Int) throws -> NetworkBackend {
        let id = try spec.one("id") ?? "nic\(index)"
        switch spec.kind {
        case "user": return try SlirpBackend(id: id, options: try slirpOptions(spec))
        case "socket":
            let (mode, host, port) = try socketEndpoint(spec)
            return try SocketBackend(id: id, mode: mode, host: host, port: port)
        default: return try TapBackend(id: id, interfaceName: try spec.one("ifname") ?? "")
        }
    }

    static func slirpOptions(_ spec: Spec) throws -> SlirpOptions {
        var o = SlirpOptions()
        if let net = try spec.one("net") {
            let parts = net.split(separator: "/", maxSplits: 1).map(String.init)
            guard let a = parseIPv4(parts[0]) else { throw spec.fail("net=\(net): '\(parts[0])' is not an IPv4 address") }
            o.network = a
            if parts.count == 2 {
                if let bits = Int(parts[1]), (0...32).contains(bits) { o.prefixLength = bits }
                else if let mask = parseIPv4(parts[1]), (~mask) & ((~mask) &+ 1) == 0 { o.prefixLength = mask.nonzeroBitCount }
                else { throw spec.fail("net=\(net): '\(parts[1])' is neither a prefix length nor a netmask") }
            }
        }
        for key in ["host", "dns", "dhcpstart"] {
            guard let text = try spec.one(key) else { continue }
            guard let a = parseIPv4(text) else { throw spec.fail("\(key)=\(text) is not an IPv4 address") }
            switch key {
            case "host": o.host = a
            case "dns": o.dns = a
            default: o.dhcpStart = a
            }
        }
        if let r = try spec.one("restrict") {
            switch r {
            case "on", "yes", "y": o.restricted = true
            case "off", "no", "n": o.restricted = false
            default: throw spec.fail("restrict=\(r) must be on or off")
            }
        }
        o.hostname = try spec.one("hostname")
        if let m = try spec.one("mtu") {
            guard let v = Int(m) else { throw spec.fail("mtu=\(m) is not a number") }
            o.mtu = v
        }
        for text in spec.all("hostfwd") { o.forwards.append(try parseForward(text, spec)) }
        do { try o.validate() } catch { throw spec.fail("\(error)") }
        return o
    }

    /// `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`
    static func parseForward(_ text: String, _ spec: Spec) throws -> PortForward {
        let bad = spec.fail("hostfwd=\(text) is not [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT")
        guard let colon = text.firstIndex(of: ":") else { throw bad }
        var f = PortForward()
        switch text[..<colon] {
        case "", "tcp": f.udp = false
        case "udp": f.udp = true
        default: throw bad
        }
        let ends = text[text.index(after: colon)...].split(separator: "-", omittingEmptySubsequences: false)
        guard ends.count == 2 else { throw bad }
        func endpoint(_ s: Substring) throws -> (IPv4, UInt16) {
            guard let c = s.lastIndex(of: ":") else { throw bad }
            let addr = s[..<c], portText = s[s.index(after: c)...]
            guard let port = UInt16(portText) else { throw spec.fail("hostfwd=\(text): '\(portText)' is not a port number") }
            if addr.isEmpty { return (0, port) }
            guard let a = parseIPv4(String(addr)) else { throw spec.fail("hostfwd=\(text): '\(addr)' is not an IPv4 address") }
            return (a, port)
        }
        (f.hostAddress, f.hostPort) = try endpoint(ends[0])
        (f.guestAddress, f.guestPort) = try endpoint(ends[1])
        guard f.guestPort != 0 else { throw spec.fail("hostfwd=\(text): the guest port must not be 0") }
        return f
    }

    static func socketEndpoint(_ spec: Spec) throws -> (SocketBackend.Mode, String, UInt16) {
        let listen = try spec.one("listen"), connect = try spec.one("connect")
        guard (listen == nil) != (connect == nil) else { throw spec.fail("needs exactly one of listen=[HOST]:PORT and connect=HOST:PORT") }
        let text = listen ?? connect!
        guard let c = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: c)...]), port != 0 else {
            throw spec.fail("'\(text)' is not [HOST]:PORT")
        }
        let host = String(text[..<c])
        guard host.isEmpty || parseIPv4(host) != nil else { throw spec.fail("'\(host)' is not an IPv4 address") }
        guard listen != nil || !host.isEmpty else { throw spec.fail("connect= needs a host address") }
        return (listen != nil ? .listen : .connect, host, port)
    }

    static func parseMAC(_ text: String, _ spec: Spec) throws -> [UInt8] {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
        guard parts.count == 6, bytes.count == 6 else { throw spec.fail("mac=\(text) is not six hex bytes like 52:54:00:12:34:56") }
        guard bytes[0] & 1 == 0 else { throw spec.fail("mac=\(text) is a multicast address (the first byte must be even)") }
        return bytes
    }

    static func parseIPv4(_ text: String) -> IPv4? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var a: IPv4 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, let v = UInt8(p) else { return nil }
            a = a << 8 | IPv4(v)
        }
        return a
    }
}
