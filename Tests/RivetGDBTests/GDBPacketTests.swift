import XCTest
@testable import RivetGDB

/// A small in-memory target: 2 threads, 64 KiB of memory at 0x1000, for protocol tests.
final class MemoryTarget: GDBTarget {
    var registers: [[UInt64]] = [Array(repeating: 0, count: 33), Array(repeating: 0, count: 33)]
    var memory = [UInt8](repeating: 0, count: 0x10000)
    var points: [GDBPoint] = []
    var stopHandler: (() -> Void)? = nil
    var resumed: [Int?] = []
    func threadIDs() -> [Int] { [1, 2] }
    func threadName(_ thread: Int) -> String { "hart \(thread - 1)" }
    var targetXML: String { GDBTargetDescription.xml(system: true) }
    func readRegister(thread: Int, number: Int) -> UInt64? {
        guard (1...2).contains(thread), number <= 32 else { return nil }
        return registers[thread - 1][number]
    }
    func writeRegister(thread: Int, number: Int, value: UInt64) -> Bool {
        guard (1...2).contains(thread), number <= 32 else { return false }
        registers[thread - 1][number] = value; return true
    }
    func readMemory(thread: Int, address: UInt64, length: Int) -> [UInt8] {
        guard address >= 0x1000, address < 0x11000 else { return [] }
        let start = Int(address - 0x1000)
        return Array(memory[start..<min(start + length, memory.count)])
    }
    func writeMemory(thread: Int, address: UInt64, bytes: [UInt8]) -> Bool {
        guard address >= 0x1000, address - 0x1000 <= UInt64(memory.count - bytes.count) else { return false }
        let start = Int(address - 0x1000)
        memory.replaceSubrange(start..<start + bytes.count, with: bytes); return true
    }
    func setPoint(_ point: GDBPoint, inserted: Bool) -> Bool {
        if inserted { points.append(point) } else { points.removeAll { $0 == point } }
        return true
    }
    func attach() -> GDBStop { GDBStop(thread: 1, reason: .signal(5)) }
    func resume(step: Int?) { resumed.append(step) }
    func takeStop() -> GDBStop? { nil }
    func interrupt() {}
    func detach(resume: Bool) {}
    var wasRunningAtAttach: Bool { false }
    func kill() {}
    func monitor(_ command: String, thread: Int) -> String? { command == "hello" ? "hi\n" : nil }
}

final class GDBPacketTests: XCTestCase {
    func packet(_ s: String) -> [UInt8] { GDBPacketParser.frame(Array(s.utf8)) }

    func testFramingRoundTripsAndChecksums() {
        XCTAssertEqual(String(decoding: packet("OK"), as: UTF8.self), "$OK#9a")
        var p = GDBPacketParser()
        XCTAssertEqual(p.feed(Array("+$g#67".utf8)), [.ack, .packet(Array("g".utf8))])
        XCTAssertEqual(p.feed(Array("$g#68".utf8)), [.badChecksum])
        XCTAssertEqual(p.feed([0x03]), [.interrupt])
        // Escaped bytes come back unescaped; a frame of "$#}*" round-trips.
        let framed = GDBPacketParser.frame(Array("a$#}*b".utf8))
        XCTAssertEqual(p.feed(framed), [.packet(Array("a$#}*b".utf8))])
        // Split anywhere, the stream still parses.
        let stream = packet("m1000,4") + packet("qSupported:multiprocess+")
        for cut in 0...stream.count {
            var q = GDBPacketParser()
            let out = q.feed(stream[0..<cut]) + q.feed(stream[cut...])
            XCTAssertEqual(out, [.packet(Array("m1000,4".utf8)), .packet(Array("qSupported:multiprocess+".utf8))])
        }
    }

    func testOverlongPacketIsDroppedNotKept() {
        var p = GDBPacketParser()
        let big = [UInt8](repeating: UInt8(ascii: "a"), count: GDBPacketParser.maxPacket + 100)
        XCTAssertEqual(p.feed(packet(String(decoding: big, as: UTF8.self))), [.tooLong])
        XCTAssertEqual(p.feed(packet("?")), [.packet([UInt8(ascii: "?")])])
    }

    func testSessionCommands() {
        let t = MemoryTarget()
        t.registers[0][32] = 0x8020_0000
        t.registers[1][10] = 0x1234
        t.memory[0] = 0xde; t.memory[1] = 0xad
        let s = GDBSession(target: t, initialStop: t.attach())
        func reply(_ text: String) -> GDBSession.Action { s.handle(Array(text.utf8)) }
        XCTAssertEqual(reply("?"), .reply("T05thread:1;"))
        XCTAssertEqual(reply("p20"), .reply("0000208000000000"))
        XCTAssertEqual(reply("Hg2"), .reply("OK"))
        XCTAssertEqual(reply("pa"), .reply("3412000000000000"))
        XCTAssertEqual(reply("Hg9"), .reply("E02"))
        XCTAssertEqual(reply("P5=efbeadde00000000"), .reply("OK"))
        XCTAssertEqual(t.registers[1][5], 0xdead_beef)
        XCTAssertEqual(reply("m1000,2"), .reply("dead"))
        XCTAssertEqual(reply("m0,2"), .reply("E14"))
        XCTAssertEqual(reply("M1002,2:0102"), .reply("OK"))
        XCTAssertEqual(t.memory[2...3], [1, 2])
        XCTAssertEqual(reply("Z0,80200000,2"), .reply("OK"))
        XCTAssertEqual(reply("Z2,1000,8"), .reply("OK"))
        XCTAssertEqual(t.points, [GDBPoint(type: 0, address: 0x8020_0000, length: 2), GDBPoint(type: 2, address: 0x1000, length: 8)])
        XCTAssertEqual(reply("Z9,0,1"), .reply("E01"))
        XCTAssertEqual(reply("qfThreadInfo"), .reply("m1,2"))
        XCTAssertEqual(reply("qsThreadInfo"), .reply("l"))
        XCTAssertEqual(reply("vCont;s:2;c"), .resume(step: 2))
        XCTAssertEqual(reply("vCont;c"), .resume(step: nil))
        XCTAssertEqual(reply("vCont;s:7"), .reply("E02"))
        XCTAssertEqual(reply("qRcmd," + GDBHex.encode(Array("hello".utf8))), .reply(GDBHex.encode(Array("hi\n".utf8))))
        XCTAssertEqual(reply("D"), .detach)
        XCTAssertEqual(reply("k"), .kill)
        XCTAssertEqual(s.stopReply(GDBStop(thread: 2, reason: .watch(kind: 2, address: 0x1000))), "T05watch:1000;thread:2;")
        // target.xml arrives in pieces and in full.
        var xml = ""
        var offset = 0
        while true {
            guard case .reply(let r) = reply("qXfer:features:read:target.xml:\(String(offset, radix: 16)),100") else { return XCTFail() }
            xml += r.dropFirst(); offset += r.count - 1
            if r.hasPrefix("l") { break }
        }
        XCTAssertEqual(xml, t.targetXML)
        XCTAssertTrue(xml.contains("org.gnu.gdb.riscv.csr"))
    }

    /// Thousands of seeded mutations of a valid session's byte stream: every packet gets an answer, and
    /// nothing traps (bounds, overflow, bad hex).
    func testFuzzedStreamsNeverCrash() {
        let valid = ["qSupported:multiprocess+;xmlRegisters=i386", "QStartNoAckMode", "?", "g", "p20", "p1041",
                     "P1=0102030405060708", "m1000,40", "M1000,4:01020304", "X1000,2:ab", "Z0,1000,4", "z0,1000,4",
                     "Z2,1004,8", "Hg1", "Hc-1", "T2", "vCont?", "vCont;s:1;c", "c", "s", "qfThreadInfo",
                     "qXfer:features:read:target.xml:0,ffb", "qRcmd,68656c6c6f", "qC", "qAttached",
                     "G" + String(repeating: "00", count: 264)]
        var stream: [UInt8] = []
        for v in valid { stream += packet(v) + [UInt8(ascii: "+")] }
        var rng = SplitMix(seed: 15)
        for _ in 0..<5000 {
            var s = stream
            for _ in 0..<(1 + Int(rng.next() % 8)) {
                let i = Int(rng.next() % UInt64(s.count))
                switch rng.next() % 4 {
                case 0: s[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: s.remove(at: i)
                case 2: s.insert(UInt8(truncatingIfNeeded: rng.next()), at: i)
                default: s.insert(contentsOf: s[i..<min(i + 20, s.count)], at: i)
                }
            }
            let t = MemoryTarget()
            let session = GDBSession(target: t, initialStop: t.attach())
            var parser = GDBPacketParser()
            for case .packet(let p) in parser.feed(s) {
                _ = session.handle(p)
                // Also the packet with a mutated checksum-correct body: random garbage after a valid first letter.
                var q = p
                if !q.isEmpty { q[Int(rng.next() % UInt64(q.count))] = UInt8(truncatingIfNeeded: rng.next()) }
                _ = session.handle(q)
            }
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
