/// The GDB remote protocol's commands, answered against a `GDBTarget`. One session per connection.
/// Every packet gets a reply; a malformed one gets `E xx` (or the empty reply for unknown commands, as
/// the protocol asks), never a crash.
public final class GDBSession {
    /// What the connection must do after a packet.
    public enum Action: Equatable {
        case reply(String)
        case resume(step: Int?)     // the stop reply is sent when the target stops
        case detach                 // reply OK, let the target run, close
        case kill                   // no reply; end the target, close
    }

    let target: GDBTarget
    public private(set) var noAckMode = false
    /// Thread for register and memory access (Hg) and for steps (Hc / vCont without a thread).
    var registerThread: Int
    var continueThread: Int
    var lastStop: GDBStop
    let maxPacketHex = String(GDBPacketParser.maxPacket, radix: 16)

    public init(target: GDBTarget, initialStop: GDBStop) {
        self.target = target
        lastStop = initialStop
        registerThread = initialStop.thread
        continueThread = initialStop.thread
    }

    static let errorBadPacket = "E01"
    static let errorMemory = "E14"
    static let errorThread = "E02"

    /// The stop reply packet, e.g. `T05thread:01;` or `T05watch:80200000;thread:01;`.
    public func stopReply(_ stop: GDBStop) -> String {
        lastStop = stop
        registerThread = stop.thread
        continueThread = stop.thread
        let thread = "thread:\(String(stop.thread, radix: 16));"
        switch stop.reason {
        case .signal(let s): return "T" + GDBHex.byte(s) + thread
        case .watch(let kind, let address):
            let name = kind == 2 ? "watch" : (kind == 3 ? "rwatch" : "awatch")
            return "T05" + name + ":" + String(address, radix: 16) + ";" + thread
        case .exited(let code): return "W" + GDBHex.byte(code)
        case .killed(let s): return "X" + GDBHex.byte(s)
        }
    }

    public func handle(_ packet: [UInt8]) -> Action {
        guard let first = packet.first else { return .reply("") }
        let body = packet.dropFirst()
        let text = String(decoding: packet, as: UTF8.self)
        switch first {
        case UInt8(ascii: "?"): return .reply(stopReply(lastStop))
        case UInt8(ascii: "g"): return .reply(readAllRegisters())
        case UInt8(ascii: "G"): return .reply(writeAllRegisters(body))
        case UInt8(ascii: "p"):
            guard let n = GDBHex.number(body), n < 0x10000 else { return .reply(GDBSession.errorBadPacket) }
            guard let v = target.readRegister(thread: registerThread, number: Int(n)) else {
                return .reply(String(repeating: "x", count: 2 * GDBTargetDescription.size(of: Int(n))))
            }
            return .reply(GDBHex.littleEndian(v, bytes: GDBTargetDescription.size(of: Int(n))))
        case UInt8(ascii: "P"):
            let parts = body.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let n = GDBHex.number(parts[0]), n < 0x10000,
                  let bytes = GDBHex.decode(parts[1]), bytes.count >= 1, bytes.count <= 8 else { return .reply(GDBSession.errorBadPacket) }
            let v = bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) }
            return .reply(target.writeRegister(thread: registerThread, number: Int(n), value: v) ? "OK" : GDBSession.errorBadPacket)
        case UInt8(ascii: "m"):
            guard let (address, length) = addressLength(body), length <= UInt64(GDBPacketParser.maxPacket / 2) else {
                return .reply(GDBSession.errorBadPacket)
            }
            let bytes = target.readMemory(thread: registerThread, address: address, length: Int(length))
            if bytes.isEmpty && length > 0 { return .reply(GDBSession.errorMemory) }
            return .reply(GDBHex.encode(bytes))
        case UInt8(ascii: "M"):
            let parts = body.split(separator: UInt8(ascii: ":"), maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let (address, length) = addressLength(parts[0]),
                  let bytes = GDBHex.decode(parts[1]), UInt64(bytes.count) == length else { return .reply(GDBSession.errorBadPacket) }
            return .reply(target.writeMemory(thread: registerThread, address: address, bytes: bytes) ? "OK" : GDBSession.errorMemory)
        case UInt8(ascii: "X"):
            guard let colon = body.firstIndex(of: UInt8(ascii: ":")), let (address, length) = addressLength(body[..<colon]) else {
                return .reply(GDBSession.errorBadPacket)
            }
            let bytes = Array(body[body.index(after: colon)...])  // already unescaped by the parser
            guard UInt64(bytes.count) == length else { return .reply(GDBSession.errorBadPacket) }
            if bytes.isEmpty { return .reply("OK") }
            return .reply(target.writeMemory(thread: registerThread, address: address, bytes: bytes) ? "OK" : GDBSession.errorMemory)
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            let fields = body.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
            guard fields.count >= 3, fields[0].count == 1, let type = GDBHex.number(fields[0]), type <= 4,
                  let address = GDBHex.number(fields[1]), let kind = GDBHex.number(fields[2].prefix { $0 != UInt8(ascii: ";") }),
                  kind >= 1, kind <= 8 else { return .reply(GDBSession.errorBadPacket) }
            let point = GDBPoint(type: Int(type), address: address, length: kind)
            return .reply(target.setPoint(point, inserted: first == UInt8(ascii: "Z")) ? "OK" : GDBSession.errorBadPacket)
        case UInt8(ascii: "c"):
            if !body.isEmpty { guard let a = GDBHex.number(body) else { return .reply(GDBSession.errorBadPacket) }
                _ = target.writeRegister(thread: continueThread, number: GDBRegister.pc, value: a) }
            return .resume(step: nil)
        case UInt8(ascii: "s"):
            if !body.isEmpty { guard let a = GDBHex.number(body) else { return .reply(GDBSession.errorBadPacket) }
                _ = target.writeRegister(thread: continueThread, number: GDBRegister.pc, value: a) }
            return .resume(step: continueThread)
        case UInt8(ascii: "H"):
            guard body.count >= 2, let op = body.first, op == UInt8(ascii: "g") || op == UInt8(ascii: "c"),
                  let t = parseThread(body.dropFirst()) else { return .reply(GDBSession.errorBadPacket) }
            let chosen = t <= 0 ? (target.threadIDs().first ?? 1) : t
            guard t <= 0 || target.threadIDs().contains(t) else { return .reply(GDBSession.errorThread) }
            if op == UInt8(ascii: "g") { registerThread = chosen } else { continueThread = chosen }
            return .reply("OK")
        case UInt8(ascii: "T"):
            guard let t = parseThread(body) else { return .reply(GDBSession.errorBadPacket) }
            return .reply(target.threadIDs().contains(t) ? "OK" : GDBSession.errorThread)
        case UInt8(ascii: "D"): return .detach
        case UInt8(ascii: "k"): return .kill
        case UInt8(ascii: "q"), UInt8(ascii: "Q"): return .reply(query(text))
        case UInt8(ascii: "v"): return vPacket(text)
        default: return .reply("")
        }
    }

    func addressLength<S: Collection>(_ s: S) -> (UInt64, UInt64)? where S.Element == UInt8, S.SubSequence: Collection, S.SubSequence.Element == UInt8 {
        let parts = s.split(separator: UInt8(ascii: ","), maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let a = GDBHex.number(parts[0]), let l = GDBHex.number(parts[1]) else { return nil }
        return (a, l)
    }

    /// A thread id: hex, or -1 (all), 0 (any).
    func parseThread<S: Collection>(_ s: S) -> Int? where S.Element == UInt8 {
        if s.elementsEqual("-1".utf8) { return -1 }
        guard let v = GDBHex.number(s), v < 0x1_0000_0000 else { return nil }
        return Int(v)
    }

    func readAllRegisters() -> String {
        var s = ""
        for n in 0...GDBRegister.pc {
            guard let v = target.readRegister(thread: registerThread, number: n) else { return GDBSession.errorThread }
            s += GDBHex.littleEndian(v, bytes: 8)
        }
        return s
    }

    func writeAllRegisters(_ body: ArraySlice<UInt8>) -> String {
        guard let bytes = GDBHex.decode(body), bytes.count >= 33 * 8 else { return GDBSession.errorBadPacket }
        for n in 0...GDBRegister.pc {
            let v = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[n * 8 + $1]) << UInt64(8 * $1) }
            guard target.writeRegister(thread: registerThread, number: n, value: v) else { return GDBSession.errorThread }
        }
        return "OK"
    }

    func query(_ text: String) -> String {
        if text.hasPrefix("qSupported") {
            return "PacketSize=\(maxPacketHex);qXfer:features:read+;QStartNoAckMode+;vContSupported+;swbreak+;hwbreak+"
        }
        if text == "QStartNoAckMode" { noAckMode = true; return "OK" }
        if text.hasPrefix("qXfer:features:read:") {
            // qXfer:features:read:ANNEX:OFFSET,LENGTH
            let rest = text.dropFirst("qXfer:features:read:".count)
            let parts = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == "target.xml" else { return "E00" }
            guard let (offset, length) = addressLength(Array(parts[1].utf8)) else { return GDBSession.errorBadPacket }
            let xml = Array(target.targetXML.utf8)
            if offset >= UInt64(xml.count) { return "l" }
            let end = Int(offset) + Int(min(length, UInt64(GDBPacketParser.maxPacket - 16), UInt64(xml.count) - offset))
            let chunk = String(decoding: xml[Int(offset)..<end], as: UTF8.self)
            return (end >= xml.count ? "l" : "m") + chunk
        }
        if text == "qfThreadInfo" { return "m" + target.threadIDs().map { String($0, radix: 16) }.joined(separator: ",") }
        if text == "qsThreadInfo" { return "l" }
        if text == "qC" { return "QC" + String(registerThread, radix: 16) }
        if text == "qAttached" { return "1" }
        if text.hasPrefix("qThreadExtraInfo,") {
            guard let t = parseThread(Array(text.utf8).dropFirst("qThreadExtraInfo,".count)) else { return GDBSession.errorBadPacket }
            return GDBHex.encode(Array(threadName(t).utf8))
        }
        if text.hasPrefix("qRcmd,") {
            guard let bytes = GDBHex.decode(Array(text.utf8).dropFirst(6)) else { return GDBSession.errorBadPacket }
            let command = String(decoding: bytes, as: UTF8.self)
            guard let output = target.monitor(command, thread: registerThread) else {
                return GDBHex.encode(Array("unknown monitor command '\(command)'; try: monitor help\n".utf8))
            }
            return output.isEmpty ? "OK" : GDBHex.encode(Array(output.utf8))
        }
        return ""
    }

    func threadName(_ t: Int) -> String { target.threadName(t) }

    func vPacket(_ text: String) -> Action {
        if text == "vCont?" { return .reply("vCont;c;C;s;S") }
        if text.hasPrefix("vCont;") {
            // Actions are tried left to right for each thread; we run everything and step the thread
            // whose first matching action is a step.
            var step: Int? = nil
            for action in text.dropFirst(6).split(separator: ";") {
                let parts = action.split(separator: ":", maxSplits: 1)
                guard let kind = parts.first?.first, "cCsS".contains(kind) else { return .reply(GDBSession.errorBadPacket) }
                var thread: Int? = nil
                if parts.count == 2 {
                    guard let t = parseThread(Array(parts[1].utf8)) else { return .reply(GDBSession.errorBadPacket) }
                    thread = t
                }
                if (kind == "s" || kind == "S") && step == nil {
                    step = (thread == nil || thread! <= 0) ? continueThread : thread!
                }
            }
            if let s = step, !target.threadIDs().contains(s) { return .reply(GDBSession.errorThread) }
            return .resume(step: step)
        }
        if text.hasPrefix("vKill") { return .kill }
        if text.hasPrefix("vMustReplyEmpty") { return .reply("") }
        return .reply("")
    }
}
