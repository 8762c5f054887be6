import FuzzSupport
import RivetDevices

/// The input chooses a board (harts, RAM, bootargs, initrd, which devices, ISA and model strings); the writer's output
/// must be a well-formed flattened device tree: header sizes and offsets consistent, every token of the
/// structure block valid, every property's name inside the strings block.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeviceTree(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    var config = VirtBoardConfig(hartCount: Int(input.u8() % 9), ramSize: input.u64())
    config.ramBase = input.u8() & 1 == 0 ? 0x8000_0000 : input.u64()
    if input.u8() & 1 == 1 {
        let a = input.u64(), b = input.u64()
        config.initrd = min(a, b)..<max(a, b)
    }
    // Any subset of the board's devices (the table's order kept).
    let keep = input.u64()
    config.devices = VirtBoard.devices.enumerated().filter { keep >> UInt64($0.offset % 64) & 1 == 1 }.map(\.element)
    config.timebaseFrequency = input.u32()
    let strings = input.rest().split(separator: 0xff, maxSplits: 3, omittingEmptySubsequences: false)
    func text(_ i: Int) -> String? { i < strings.count ? String(decoding: strings[i], as: UTF8.self) : nil }
    if let s = text(0) { config.bootargs = s }
    if let s = text(1) { config.isa = s }
    if let s = text(2) { config.mmuType = s }
    if let s = text(3) { config.model = s }
    let blob = makeVirtDeviceTree(config)
    if let problem = fdtProblem(blob) { fatalError("malformed device tree: \(problem)") }
    return 0
}

func be32(_ b: [UInt8], _ o: Int) -> UInt32? {
    guard o >= 0, o + 4 <= b.count else { return nil }
    return UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
}

/// nil when `b` is a well-formed FDT (version 17), else what is wrong.
func fdtProblem(_ b: [UInt8]) -> String? {
    guard be32(b, 0) == 0xd00d_feed else { return "bad magic" }
    guard let total = be32(b, 4), Int(total) == b.count else { return "totalsize does not match" }
    guard let structOff = be32(b, 8), let stringsOff = be32(b, 12), let structSize = be32(b, 36),
          let stringsSize = be32(b, 32) else { return "short header" }
    guard Int(structOff) + Int(structSize) <= b.count, Int(stringsOff) + Int(stringsSize) <= b.count else {
        return "blocks past the end"
    }
    var p = Int(structOff)
    let end = Int(structOff) + Int(structSize)
    var depth = 0
    while p < end {
        guard let token = be32(b, p) else { return "truncated token" }
        p += 4
        switch token {
        case 1:   // BEGIN_NODE: NUL-terminated name, padded to 4
            guard let nul = b[p..<end].firstIndex(of: 0) else { return "unterminated node name" }
            p = (nul + 4) & ~3
            depth += 1
        case 2:
            depth -= 1
            if depth < 0 { return "END_NODE without BEGIN_NODE" }
        case 3:   // PROP: len, nameoff, value padded to 4
            guard let len = be32(b, p), let nameoff = be32(b, p + 4) else { return "truncated property" }
            guard Int(nameoff) < Int(stringsSize),
                  b[(Int(stringsOff) + Int(nameoff))..<(Int(stringsOff) + Int(stringsSize))].contains(0) else {
                return "property name offset \(nameoff) outside the strings block"
            }
            p += 8 + ((Int(len) + 3) & ~3)
            if p > end { return "property value past the structure block" }
        case 4: continue
        case 9:
            return depth == 0 && p == end ? nil : "END at depth \(depth), \(end - p) bytes left"
        default: return "unknown token \(token)"
        }
    }
    return "no END token"
}
