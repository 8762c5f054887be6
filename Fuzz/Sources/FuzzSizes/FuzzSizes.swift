/// The input is a command-line word. Both size parsers must return a value or an error; a value must be
/// the number times its suffix, and within the limits each promises.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSizes(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let v = imgParseSize(text) {
        if v > UInt64(Int64.max) { fatalError("imgParseSize(\(text.debugDescription)) = \(v) beyond 8 EiB") }
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        guard let n = UInt64(digits) else { fatalError("imgParseSize accepted \(text.debugDescription)") }
        if v != 0 && v % n != 0 { fatalError("imgParseSize(\(text.debugDescription)) = \(v) not a multiple of \(n)") }
    }
    if let v = try? parseMemorySize(text) {
        if v == 0 { fatalError("parseMemorySize(\(text.debugDescription)) = 0") }
    }
    return 0
}
