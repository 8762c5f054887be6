/// The framing of the GDB remote serial protocol: `$data#cc` packets with a modulo-256 checksum,
/// `+`/`-` acknowledgements, and the 0x03 interrupt byte. Everything here is pure, so it can be fuzzed.

/// What the byte stream from gdb contained.
public enum GDBInput: Equatable {
    case packet([UInt8])        // the unescaped payload of a packet with a valid checksum
    case badChecksum            // answer with '-' so gdb resends
    case tooLong                // a packet over the size limit, dropped (answered with an error)
    case interrupt              // 0x03 outside a packet (Ctrl-C)
    case ack, nak
}

/// Splits a byte stream into packets; bounded memory whatever the input.
public struct GDBPacketParser {
    public static let maxPacket = 16384
    enum State { case idle, data, checksumHigh, checksumLow }
    var state = State.idle
    var payload: [UInt8] = []
    var sum: UInt8 = 0
    var escaped = false
    var overflow = false
    var receivedSum: UInt8 = 0

    public init() {}

    public mutating func feed<S: Sequence>(_ bytes: S) -> [GDBInput] where S.Element == UInt8 {
        var out: [GDBInput] = []
        for b in bytes {
            switch state {
            case .idle:
                switch b {
                case UInt8(ascii: "$"):
                    state = .data; payload = []; sum = 0; escaped = false; overflow = false
                case 0x03: out.append(.interrupt)
                case UInt8(ascii: "+"): out.append(.ack)
                case UInt8(ascii: "-"): out.append(.nak)
                default: break  // noise between packets is ignored, as gdbserver does
                }
            case .data:
                if b == UInt8(ascii: "#") && !escaped { state = .checksumHigh; continue }
                if b == UInt8(ascii: "$") && !escaped {  // a new packet start: the old one was cut off
                    payload = []; sum = 0; overflow = false; continue
                }
                sum &+= b
                if escaped { escaped = false; append(b ^ 0x20) }
                else if b == UInt8(ascii: "}") { escaped = true }
                else { append(b) }
            case .checksumHigh:
                guard let v = GDBPacketParser.hexValue(b) else { state = .idle; out.append(.badChecksum); continue }
                receivedSum = v << 4
                state = .checksumLow
            case .checksumLow:
                state = .idle
                guard let v = GDBPacketParser.hexValue(b) else { out.append(.badChecksum); continue }
                if receivedSum | v != sum { out.append(.badChecksum) }
                else if overflow { out.append(.tooLong) }
                else { out.append(.packet(payload)) }
                payload = []
            }
        }
        return out
    }

    mutating func append(_ b: UInt8) {
        if payload.count < GDBPacketParser.maxPacket { payload.append(b) } else { overflow = true }
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Frames a reply: `$`, the payload with `$ # } *` escaped, `#`, the checksum.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "$")]
        var sum: UInt8 = 0
        for b in payload {
            if b == UInt8(ascii: "$") || b == UInt8(ascii: "#") || b == UInt8(ascii: "}") || b == UInt8(ascii: "*") {
                out.append(UInt8(ascii: "}")); out.append(b ^ 0x20)
                sum &+= UInt8(ascii: "}") &+ (b ^ 0x20)
            } else {
                out.append(b); sum &+= b
            }
        }
        out.append(UInt8(ascii: "#"))
        out += Array(GDBHex.byte(sum).utf8)
        return out
    }
}

/// Hex helpers for the protocol's encodings.
public enum GDBHex {
    static let digits = Array("0123456789abcdef".utf8)

    public static func byte(_ b: UInt8) -> String {
        String(decoding: [digits[Int(b >> 4)], digits[Int(b & 15)]], as: UTF8.self)
    }

    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out: [UInt8] = []
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Hex text to bytes; nil for an odd length or a non-hex digit.
    public static func decode<S: Collection>(_ text: S) -> [UInt8]? where S.Element == UInt8 {
        guard text.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var high: UInt8? = nil
        for c in text {
            guard let v = GDBPacketParser.hexValue(c) else { return nil }
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        return out
    }

    /// A big-endian hex number (addresses, lengths); nil if empty, not hex, or over 64 bits.
    public static func number<S: Collection>(_ text: S) -> UInt64? where S.Element == UInt8 {
        guard !text.isEmpty, text.count <= 16 else { return nil }
        var v: UInt64 = 0
        for c in text {
            guard let d = GDBPacketParser.hexValue(c) else { return nil }
            v = v << 4 | UInt64(d)
        }
        return v
    }

    /// A register value as gdb sends it: little-endian target bytes.
    public static func littleEndian(_ value: UInt64, bytes: Int) -> String {
        encode((0..<bytes).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) })
    }
}
