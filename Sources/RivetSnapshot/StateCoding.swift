/// Binary encoding of machine state for snapshots and migration.
///
/// Every device, hart and memory region writes its state through a `StateWriter` into its own named,
/// versioned section; loading reads it back through a `StateReader`, which treats every byte as untrusted:
/// reads past the end throw instead of trapping, and lengths are bounded before anything is allocated.

public struct SnapshotError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Appends little-endian values to a byte buffer.
public struct StateWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    public mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    public mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
    public mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    public mutating func int(_ v: Int) { u64(UInt64(bitPattern: Int64(v))) }
    /// A length-prefixed byte string.
    public mutating func data(_ v: [UInt8]) { u64(UInt64(v.count)); bytes.append(contentsOf: v) }
    public mutating func raw(_ v: UnsafeRawBufferPointer) { u64(UInt64(v.count)); bytes.append(contentsOf: v) }
    public mutating func string(_ v: String) { data(Array(v.utf8)) }
    public mutating func u64s(_ v: [UInt64]) { u64(UInt64(v.count)); for x in v { u64(x) } }
    public mutating func u32s(_ v: [UInt32]) { u64(UInt64(v.count)); for x in v { u32(x) } }
    public mutating func u8s(_ v: [UInt8]) { data(v) }
}

/// Reads values written by `StateWriter`; every read is bounds-checked.
public struct StateReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int = 0
    /// What is being read, for error messages ("cpu.0", "virtio-blk.0").
    public let context: String

    public init(_ bytes: [UInt8], context: String) { self.bytes = bytes; self.context = context }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    @inline(__always) mutating func take(_ n: Int) throws -> Int {
        guard n >= 0, n <= remaining else { throw SnapshotError("\(context): state is truncated (needed \(n) bytes at offset \(offset), \(remaining) left)") }
        let start = offset
        offset += n
        return start
    }
    public mutating func u8() throws -> UInt8 { bytes[try take(1)] }
    public mutating func bool() throws -> Bool {
        let v = try u8()
        guard v <= 1 else { throw SnapshotError("\(context): invalid boolean \(v) at offset \(offset - 1)") }
        return v == 1
    }
    public mutating func u16() throws -> UInt16 { let s = try take(2); return UInt16(bytes[s]) | UInt16(bytes[s + 1]) << 8 }
    public mutating func u32() throws -> UInt32 {
        let s = try take(4); var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[s + i]) << (8 * UInt32(i)) }
        return v
    }
    public mutating func u64() throws -> UInt64 {
        let s = try take(8); var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[s + i]) << (8 * UInt64(i)) }
        return v
    }
    public mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    public mutating func int() throws -> Int { Int(try i64()) }
    /// A count that must not exceed `limit` (guards allocations driven by untrusted input).
    public mutating func count(limit: Int, what: String) throws -> Int {
        let n = try u64()
        guard n <= UInt64(limit) else { throw SnapshotError("\(context): \(what) count \(n) exceeds limit \(limit)") }
        return Int(n)
    }
    public mutating func data(limit: Int = 1 << 34) throws -> [UInt8] {
        let n = try count(limit: min(limit, remaining), what: "byte string")
        let s = try take(n)
        return Array(bytes[s..<s + n])
    }
    /// Copies a length-prefixed byte string into `destination`, which must have exactly that length.
    public mutating func raw(into destination: UnsafeMutableRawBufferPointer) throws {
        let n = try count(limit: remaining, what: "byte string")
        guard n == destination.count else { throw SnapshotError("\(context): expected \(destination.count) bytes, found \(n)") }
        let s = try take(n)
        bytes.withUnsafeBytes { src in destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[s..<s + n])) }
    }
    public mutating func string(limit: Int = 4096) throws -> String {
        String(decoding: try data(limit: limit), as: UTF8.self)
    }
    public mutating func u64s(limit: Int) throws -> [UInt64] {
        let n = try count(limit: min(limit, remaining / 8), what: "u64 array")
        var a = [UInt64](); a.reserveCapacity(n)
        for _ in 0..<n { a.append(try u64()) }
        return a
    }
    public mutating func u32s(limit: Int) throws -> [UInt32] {
        let n = try count(limit: min(limit, remaining / 4), what: "u32 array")
        var a = [UInt32](); a.reserveCapacity(n)
        for _ in 0..<n { a.append(try u32()) }
        return a
    }
    public mutating func u8s(limit: Int) throws -> [UInt8] { try data(limit: limit) }
    public func expectEnd() throws {
        guard isAtEnd else { throw SnapshotError("\(context): \(remaining) unexpected trailing bytes") }
    }
}

/// A piece of machine state that is saved and restored through the snapshot mechanism.
public protocol Snapshottable: AnyObject {
    /// Section name, unique within a machine ("uart0", "plic", "cpu.0").
    var snapshotName: String { get }
    /// Bumped whenever the encoding changes; restore refuses other versions.
    var snapshotVersion: UInt32 { get }
    func saveState(to writer: inout StateWriter)
    /// Must validate every value (indices, lengths, register values) before using it.
    func restoreState(from reader: inout StateReader) throws
}
