/// Reads typed values from a fuzzer's input; past the end everything reads as zero.
public struct FuzzInput {
    public let bytes: UnsafeBufferPointer<UInt8>
    public var position = 0
    public init(_ data: UnsafePointer<UInt8>, _ size: Int) { bytes = UnsafeBufferPointer(start: data, count: size) }
    public var isEmpty: Bool { position >= bytes.count }
    public var remaining: Int { max(0, bytes.count - position) }

    public mutating func u8() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }
    public mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    public mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    public mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }
    public mutating func take(_ n: Int) -> [UInt8] {
        let k = max(0, min(n, remaining))
        defer { position += k }
        return Array(bytes[position..<(position + k)])
    }
    public mutating func rest() -> [UInt8] { take(remaining) }
}

/// Stops the fuzzer with a message when an oracle finds a wrong answer (libFuzzer reports the input).
public func fuzzFail(_ message: String) -> Never {
    fatalError("fuzz oracle: " + message)
}
