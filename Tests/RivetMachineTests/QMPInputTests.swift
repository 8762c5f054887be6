import XCTest
@testable import RivetQMP

/// The QMP input path (stream splitting and JSON parsing) faces any local client: it must answer or
/// refuse every byte sequence, never crash or hang.
final class QMPInputTests: XCTestCase {
    func testParsesWhatQMPClientsSend() throws {
        let v = try JSONParser.parse(Array(#"{"execute": "migrate", "arguments": {"uri": "file:/tmp/a\"b\u00e9"}, "id": [1, -2.5e3, true, null]}"#.utf8))
        XCTAssertEqual(v["execute"]?.stringValue, "migrate")
        XCTAssertEqual(v["arguments"]?["uri"]?.stringValue, "file:/tmp/a\"bé")
        XCTAssertEqual(v["id"]?.text, "[1, -2500.0, true, null]")
        XCTAssertEqual(JSON.object([("a", .string("x\n\u{1}"))]).text, #"{"a": "x\n\u0001"}"#)
    }

    func testSplitterFindsMessagesAcrossAndWithinWrites() {
        var s = JSONStreamSplitter()
        var pieces = s.feed(ArraySlice(Array(#"{"a": "}{"#.utf8)))
        XCTAssertTrue(pieces.isEmpty)
        pieces = s.feed(ArraySlice(Array(#""} {"b": 1}junk"#.utf8) + [10]))
        guard pieces.count == 3 else { return XCTFail("\(pieces.count) pieces") }
        if case .message(let m) = pieces[0] { XCTAssertEqual(String(decoding: m, as: UTF8.self), #"{"a": "}{"}"#) } else { XCTFail() }
        if case .garbage = pieces[2] {} else { XCTFail("junk before a newline is reported") }
    }

    func testRandomAndMutatedInputNeverCrashes() {
        var rng = SplitMix(seed: 42)
        let seeds = [#"{"execute": "qmp_capabilities"}"#, #"{"execute": "migrate", "arguments": {"uri": "exec:cat > /tmp/x"}, "id": 7}"#,
                     #"[{"a": [1, 2, {"b": "\u0041\\"}]}, 3.5e-2, false]"#].map { Array($0.utf8) }
        var messages = 0
        for n in 0..<20_000 {
            var input = seeds[n % seeds.count]
            for _ in 0..<(1 + rng.next() % 6) {
                let at = Int(rng.next() % UInt64(input.count + 1))
                switch rng.next() % 4 {
                case 0: if at < input.count { input[at] = UInt8(truncatingIfNeeded: rng.next()) }
                case 1:
                    let specials = Array(#"{}[]":,\ "#.utf8)
                    input.insert(specials[Int(rng.next() % UInt64(specials.count))], at: at)
                case 2: if at < input.count { input.remove(at: at) }
                default: input.insert(contentsOf: input.prefix(Int(rng.next() % 8)), at: at)
                }
            }
            var splitter = JSONStreamSplitter()
            let cut = Int(rng.next() % UInt64(input.count + 1))
            for piece in splitter.feed(ArraySlice(input[0..<cut])) + splitter.feed(ArraySlice(input[cut...])) {
                if case .message(let m) = piece {
                    messages += 1
                    if let v = try? JSONParser.parse(m) { _ = v.text }
                }
            }
        }
        XCTAssertGreaterThan(messages, 1000)
        // Nesting far beyond the limit is refused without recursion trouble.
        let deep = Array(repeating: UInt8(ascii: "["), count: 100_000)
        XCTAssertThrowsError(try JSONParser.parse(deep))
    }
}
