/// A writer for flattened device trees (DTB, FDT version 17, big-endian).
///
/// Usage: `beginNode("")` for the root, properties, child nodes, `endNode()`s, then `finish()`.
/// Property names are deduplicated in the strings block.
public struct FDTBuilder {
    static let magic: UInt32 = 0xd00d_feed
    static let tokenBeginNode: UInt32 = 1, tokenEndNode: UInt32 = 2, tokenProp: UInt32 = 3, tokenEnd: UInt32 = 9

    private var structure: [UInt8] = []
    private var strings: [UInt8] = []
    private var stringOffsets: [String: Int] = [:]
    private var depth = 0
    public var reservations: [(address: UInt64, size: UInt64)] = []
    public var bootCPU: UInt32 = 0

    public init() {}

    private static func appendBE32(_ v: UInt32, to a: inout [UInt8]) {
        a.append(UInt8(v >> 24)); a.append(UInt8(truncatingIfNeeded: v >> 16))
        a.append(UInt8(truncatingIfNeeded: v >> 8)); a.append(UInt8(truncatingIfNeeded: v))
    }
    private static func appendBE64(_ v: UInt64, to a: inout [UInt8]) {
        appendBE32(UInt32(v >> 32), to: &a); appendBE32(UInt32(truncatingIfNeeded: v), to: &a)
    }
    private mutating func pad() { while structure.count % 4 != 0 { structure.append(0) } }

    public mutating func beginNode(_ name: String) {
        FDTBuilder.appendBE32(FDTBuilder.tokenBeginNode, to: &structure)
        structure.append(contentsOf: Array(name.utf8)); structure.append(0)
        pad()
        depth += 1
    }

    public mutating func endNode() {
        precondition(depth > 0, "FDT: endNode without beginNode")
        FDTBuilder.appendBE32(FDTBuilder.tokenEndNode, to: &structure)
        depth -= 1
    }

    public mutating func property(_ name: String, _ value: [UInt8]) {
        let nameOffset: Int
        if let o = stringOffsets[name] { nameOffset = o } else {
            nameOffset = strings.count
            strings.append(contentsOf: Array(name.utf8)); strings.append(0)
            stringOffsets[name] = nameOffset
        }
        FDTBuilder.appendBE32(FDTBuilder.tokenProp, to: &structure)
        FDTBuilder.appendBE32(UInt32(value.count), to: &structure)
        FDTBuilder.appendBE32(UInt32(nameOffset), to: &structure)
        structure.append(contentsOf: value)
        pad()
    }

    /// An empty (boolean) property.
    public mutating func property(_ name: String) { property(name, []) }
    public mutating func property(_ name: String, string: String) { property(name, strings: [string]) }
    /// A string list: each string NUL-terminated.
    public mutating func property(_ name: String, strings list: [String]) {
        var v: [UInt8] = []
        for s in list { v.append(contentsOf: Array(s.utf8)); v.append(0) }
        property(name, v)
    }
    public mutating func property(_ name: String, u32: UInt32) { property(name, cells: [u32]) }
    public mutating func property(_ name: String, cells: [UInt32]) {
        var v: [UInt8] = []
        for c in cells { FDTBuilder.appendBE32(c, to: &v) }
        property(name, v)
    }
    /// A 64-bit value as two cells.
    public mutating func property(_ name: String, u64: UInt64) { property(name, cells: [UInt32(u64 >> 32), UInt32(truncatingIfNeeded: u64)]) }

    /// Serializes the tree: header, memory reservation block, structure block, strings block.
    public func finish() -> [UInt8] {
        precondition(depth == 0, "FDT: \(depth) nodes left open")
        var structBlock = structure
        FDTBuilder.appendBE32(FDTBuilder.tokenEnd, to: &structBlock)
        let headerSize = 40
        let rsvOffset = (headerSize + 7) & ~7
        var rsv: [UInt8] = []
        for r in reservations { FDTBuilder.appendBE64(r.address, to: &rsv); FDTBuilder.appendBE64(r.size, to: &rsv) }
        FDTBuilder.appendBE64(0, to: &rsv); FDTBuilder.appendBE64(0, to: &rsv)
        let structOffset = rsvOffset + rsv.count
        let stringsOffset = structOffset + structBlock.count
        let total = stringsOffset + strings.count
        var out: [UInt8] = []
        out.reserveCapacity(total)
        for v in [FDTBuilder.magic, UInt32(total), UInt32(structOffset), UInt32(stringsOffset), UInt32(rsvOffset),
                  17, 16, bootCPU, UInt32(strings.count), UInt32(structBlock.count)] {
            FDTBuilder.appendBE32(v, to: &out)
        }
        while out.count < rsvOffset { out.append(0) }
        out += rsv
        out += structBlock
        out += strings
        return out
    }
}
