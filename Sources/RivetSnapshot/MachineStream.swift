#if canImport(Glibc)
import Glibc
#endif
import CZlib

/// The machine-state stream: what snapshots, restores and (later) migration and failover send.
///
///     stream   = magic "RIVETVM\0", u32 format version, section*, end
///     section  = u8 'S', u16 name length, name, u32 section version, u64 payload length, payload, u32 crc32(payload)
///     end      = u8 'E', u32 "END!" (0x21444e45)
///
/// All integers are little-endian. The first section is always "machine" (the configuration the state
/// belongs to). Every payload is checked by its CRC-32 before anything uses it. The "ram" section holds
/// page records (see `RAMRecord`); page data inside it starts at a stream offset that is a multiple of
/// 4096, so a file can be mapped copy-on-write straight into guest RAM.
public enum StreamFormat {
    public static let magic: [UInt8] = Array("RIVETVM".utf8) + [0]
    /// Bumped when the framing (not a section) changes; a reader refuses other versions.
    public static let version: UInt32 = 1
    public static let sectionTag: UInt8 = 0x53  // 'S'
    public static let endTag: UInt8 = 0x45      // 'E'
    public static let endMarker: UInt32 = 0x2144_4e45
    public static let pageSize = 4096
    /// Largest section read into memory (everything but RAM is small).
    public static let maxSmallSection = 64 << 20
    public static let maxNameLength = 64
}

/// Records inside the "ram" section. A stream may hold several rounds of records for the same pages
/// (live migration sends dirty pages again); later records win.
public enum RAMRecord: UInt8 {
    case end = 0
    /// u64 first page, u64 page count, u32 padding length, padding (zeros), then the pages.
    case data = 1
    /// u64 first page, u64 page count: these pages are all zero.
    case zero = 2
}

public func crc32Update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
    var c = UInt(crc)
    var p = base.assumingMemoryBound(to: UInt8.self)
    var left = bytes.count
    while left > 0 {
        let n = min(left, 1 << 30)
        c = CZlib.crc32(c, p, UInt32(n))
        p += n; left -= n
    }
    return UInt32(truncatingIfNeeded: c)
}

public func crc32Of(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { crc32Update(0, $0) } }

/// Writes a stream to a file descriptor (file, pipe or socket), buffering small writes.
public final class StreamWriter {
    public let fd: Int32
    /// Bytes written so far (the absolute stream offset).
    public private(set) var offset: UInt64 = 0
    var buffer: [UInt8] = []
    var sectionCRC: UInt32 = 0
    var sectionRemaining: UInt64 = 0
    var inSection = false

    public init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(1 << 20)
    }

    public func writeHeader() throws {
        try put(StreamFormat.magic)
        var w = StateWriter(); w.u32(StreamFormat.version)
        try put(w.bytes)
    }

    /// A whole small section.
    public func writeSection(name: String, version: UInt32, payload: [UInt8]) throws {
        try beginSection(name: name, version: version, length: UInt64(payload.count))
        try payloadBytes(payload)
        try endSection()
    }

    public func writeSection(_ s: Snapshottable) throws {
        var w = StateWriter()
        s.saveState(to: &w)
        try writeSection(name: s.snapshotName, version: s.snapshotVersion, payload: w.bytes)
    }

    /// Starts a section whose payload (exactly `length` bytes) follows through `payloadBytes`/`payloadRaw`.
    public func beginSection(name: String, version: UInt32, length: UInt64) throws {
        precondition(!inSection && name.utf8.count <= StreamFormat.maxNameLength)
        var w = StateWriter()
        w.u8(StreamFormat.sectionTag)
        w.u16(UInt16(name.utf8.count))
        for b in name.utf8 { w.u8(b) }
        w.u32(version)
        w.u64(length)
        try put(w.bytes)
        inSection = true
        sectionCRC = 0
        sectionRemaining = length
    }

    public func payloadBytes(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try payloadRaw($0) }
    }

    /// Payload bytes; large ranges (guest RAM) are written straight from their memory.
    public func payloadRaw(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(inSection && UInt64(bytes.count) <= sectionRemaining, "section payload longer than announced")
        sectionCRC = crc32Update(sectionCRC, bytes)
        sectionRemaining -= UInt64(bytes.count)
        if bytes.count < 64 << 10 {
            buffer.append(contentsOf: bytes)
            offset += UInt64(bytes.count)
            if buffer.count >= 1 << 20 { try flush() }
        } else {
            try flush()
            try writeAll(bytes)
            offset += UInt64(bytes.count)
        }
    }

    public func endSection() throws {
        precondition(inSection && sectionRemaining == 0, "section payload shorter than announced")
        inSection = false
        var w = StateWriter(); w.u32(sectionCRC)
        try put(w.bytes)
    }

    public func writeEnd() throws {
        var w = StateWriter(); w.u8(StreamFormat.endTag); w.u32(StreamFormat.endMarker)
        try put(w.bytes)
        try flush()
    }

    func put(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        offset += UInt64(bytes.count)
        if buffer.count >= 1 << 20 { try flush() }
    }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, min(bytes.count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw SnapshotError("write failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw SnapshotError("write failed: no progress") }
            done += n
        }
    }
}

/// What a section header says.
public struct SectionHeader {
    public let name: String
    public let version: UInt32
    public let length: UInt64
    /// Stream offset of the first payload byte.
    public let payloadOffset: UInt64
}

/// Reads a stream from a file descriptor; every length is checked and every payload's CRC verified.
public final class StreamReader {
    public let fd: Int32
    /// True when `fd` is a regular file read from offset 0 (its pages can be mapped).
    public let isMappable: Bool
    /// Size of the file behind `fd` (0 for pipes): mapping past it would fault.
    public let fileSize: UInt64
    /// Absolute stream offset of the next unread byte.
    public private(set) var offset: UInt64 = 0
    var buffer: [UInt8] = []
    var bufferStart = 0
    var sawEnd = false
    /// The running CRC of the current section's payload.
    public private(set) var payloadCRC: UInt32 = 0

    public init(fd: Int32) {
        self.fd = fd
        var st = stat()
        let regular = fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        isMappable = regular && lseek(fd, 0, SEEK_CUR) == 0
        fileSize = regular ? UInt64(st.st_size) : 0
    }

    public func readHeader() throws {
        let magic = try bytes(8, what: "stream header")
        guard magic == StreamFormat.magic else { throw SnapshotError("not a rivet machine-state stream (bad magic)") }
        var r = StateReader(try bytes(4, what: "stream header"), context: "stream")
        let v = try r.u32()
        guard v == StreamFormat.version else {
            throw SnapshotError("stream format version \(v) is not supported (this rivet reads version \(StreamFormat.version))")
        }
    }

    /// The next section's header, or nil at the end marker.
    public func nextSection() throws -> SectionHeader? {
        let tag = try bytes(1, what: "section header")[0]
        if tag == StreamFormat.endTag {
            var r = StateReader(try bytes(4, what: "end marker"), context: "stream")
            guard try r.u32() == StreamFormat.endMarker else { throw SnapshotError("stream end marker is corrupt") }
            sawEnd = true
            return nil
        }
        guard tag == StreamFormat.sectionTag else {
            throw SnapshotError("stream is corrupt at offset \(offset - 1): expected a section, found byte 0x\(String(tag, radix: 16))")
        }
        var r = StateReader(try bytes(2, what: "section header"), context: "stream")
        let nameLength = Int(try r.u16())
        guard nameLength > 0, nameLength <= StreamFormat.maxNameLength else {
            throw SnapshotError("stream is corrupt at offset \(offset - 2): section name length \(nameLength)")
        }
        let nameBytes = try bytes(nameLength, what: "section name")
        guard nameBytes.allSatisfy({ $0 >= 0x21 && $0 < 0x7f }) else {
            throw SnapshotError("stream is corrupt at offset \(offset - UInt64(nameLength)): section name is not printable")
        }
        let name = String(decoding: nameBytes, as: UTF8.self)
        var h = StateReader(try bytes(12, what: "section \(name)"), context: name)
        let version = try h.u32()
        let length = try h.u64()
        payloadCRC = 0
        return SectionHeader(name: name, version: version, length: length, payloadOffset: offset)
    }

    /// The whole payload of a small section, CRC verified (the section's trailer is consumed).
    public func payload(of s: SectionHeader) throws -> [UInt8] {
        guard s.length <= UInt64(StreamFormat.maxSmallSection) else {
            throw SnapshotError("section \(s.name): length \(s.length) is implausible")
        }
        let p = try bytes(Int(s.length), what: "section \(s.name)")
        payloadCRC = crc32Of(p)
        try checkTrailer(of: s)
        return p
    }

    /// Payload bytes read piecewise (the caller keeps count); folded into the running CRC.
    public func payloadBytes(_ n: Int, of s: SectionHeader) throws -> [UInt8] {
        let p = try bytes(n, what: "section \(s.name)")
        payloadCRC = p.withUnsafeBytes { crc32Update(payloadCRC, $0) }
        return p
    }

    /// Reads payload bytes straight into memory (guest RAM).
    public func payloadRead(into dest: UnsafeMutableRawBufferPointer, of s: SectionHeader) throws {
        var done = 0
        let fromBuffer = min(buffer.count - bufferStart, dest.count)
        if fromBuffer > 0 {
            buffer.withUnsafeBytes { dest.baseAddress!.copyMemory(from: $0.baseAddress! + bufferStart, byteCount: fromBuffer) }
            bufferStart += fromBuffer
            done = fromBuffer
        }
        while done < dest.count {
            let n = read(fd, dest.baseAddress! + done, dest.count - done)
            if n < 0 { if errno == EINTR { continue }; throw SnapshotError("read failed: \(String(cString: strerror(errno)))") }
            if n == 0 { throw SnapshotError("stream is truncated in section \(s.name)") }
            done += n
        }
        offset += UInt64(dest.count)
        payloadCRC = crc32Update(payloadCRC, UnsafeRawBufferPointer(dest))
    }

    /// Skips payload bytes the caller has already accounted for (mapped from the file), with their CRC.
    public func payloadSkip(_ n: Int, crc: UInt32, combinedWith mapped: UnsafeRawBufferPointer, of s: SectionHeader) throws {
        precondition(isMappable)
        let buffered = buffer.count - bufferStart
        if n <= buffered { bufferStart += n } else {
            bufferStart = buffer.count
            guard lseek(fd, off_t(offset) + off_t(n), SEEK_SET) >= 0 else { throw SnapshotError("seek failed in section \(s.name)") }
        }
        offset += UInt64(n)
        payloadCRC = crc32Update(payloadCRC, mapped)
    }

    /// Checks the section's CRC trailer against what was read of its payload.
    public func checkTrailer(of s: SectionHeader) throws {
        guard offset == s.payloadOffset + s.length else {
            throw SnapshotError("section \(s.name): payload length does not match its contents")
        }
        var r = StateReader(try bytes(4, what: "section \(s.name) checksum"), context: s.name)
        let stored = try r.u32()
        guard stored == payloadCRC else { throw SnapshotError("section \(s.name): checksum mismatch (the stream is corrupt)") }
    }

    /// Exactly `n` bytes or a "truncated" error.
    public func bytes(_ n: Int, what: String) throws -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(min(n, 1 << 20))
        while out.count < n {
            if bufferStart == buffer.count {
                // Refill: a regular file may be mapped later, so never read far beyond what is asked for
                // when the request is large; small requests read ahead 64 KiB.
                buffer = [UInt8](repeating: 0, count: 64 << 10)
                bufferStart = 0
                var got = 0
                while true {
                    got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                    if got < 0 && errno == EINTR { continue }
                    break
                }
                if got < 0 { throw SnapshotError("read failed: \(String(cString: strerror(errno)))") }
                buffer.removeLast(buffer.count - got)
                if got == 0 { throw SnapshotError("stream is truncated (in \(what) at offset \(offset + UInt64(out.count)))") }
            }
            let take = min(n - out.count, buffer.count - bufferStart)
            out.append(contentsOf: buffer[bufferStart..<bufferStart + take])
            bufferStart += take
        }
        offset += UInt64(n)
        return out
    }
}
