import RivetStorage

// Command-line number parsers, kept free of the rest of the command so the fuzz targets (Fuzz/) build
// this very file.

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Parses sizes like 128M, 2G, 4096, 64K.
func parseMemorySize(_ text: String) throws -> UInt64 {
    let t = text.trimmingCharacters(in: " ").uppercased()
    guard let last = t.last else { throw CLIError("empty size") }
    var digits = t
    var multiplier: UInt64 = 1
    switch last {
    case "K": multiplier = 1 << 10; digits.removeLast()
    case "M": multiplier = 1 << 20; digits.removeLast()
    case "G": multiplier = 1 << 30; digits.removeLast()
    case "T": multiplier = 1 << 40; digits.removeLast()
    default: break
    }
    // Plain ASCII digits only: UInt64("+4") would accept a sign (found by Fuzz/FuzzSizes).
    guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
          let n = UInt64(digits), n > 0, n <= (UInt64.max / multiplier) else { throw CLIError("invalid size '\(text)'") }
    return n * multiplier
}

extension String {
    func trimmingCharacters(in c: Character) -> String {
        var s = Substring(self)
        while s.first == c { s.removeFirst() }
        while s.last == c { s.removeLast() }
        return String(s)
    }
}

/// Sizes as qemu-img takes them: a number with an optional k/M/G/T/P/E suffix (powers of 1024).
func imgParseSize(_ s: String) -> UInt64? {
    var digits = s
    var shift: UInt64 = 0
    if let last = s.last, !(last.isASCII && last.isNumber) {
        switch last.lowercased() {
        case "b": shift = 0
        case "k": shift = 10
        case "m": shift = 20
        case "g": shift = 30
        case "t": shift = 40
        case "p": shift = 50
        case "e": shift = 60
        default: return nil
        }
        digits = String(s.dropLast())
    }
    guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = UInt64(digits) else { return nil }
    let (v, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
    return overflow || v > maxImageSize ? nil : v
}

