#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RivetDevices

@Suite struct MiscDeviceTests {
    @Test func sysconRequests() throws {
        let s = SysconPower()
        s.mmioWrite(offset: 0, size: 4, value: 0x1234)
        #expect(s.request == nil)
        s.mmioWrite(offset: 0, size: 4, value: 0x5555)
        #expect(s.request == .powerOff(exitCode: 0))
        s.request = nil
        s.mmioWrite(offset: 0, size: 4, value: 0x3333 | (42 << 16))
        #expect(s.request == .powerOff(exitCode: 42))
        s.mmioWrite(offset: 0, size: 4, value: 0x3333)
        #expect(s.request == .powerOff(exitCode: 1))
        s.mmioWrite(offset: 0, size: 4, value: 0x7777)
        #expect(s.request == .reset)
        s.request = nil
        s.mmioWrite(offset: 4, size: 4, value: 0x5555)  // other offsets do nothing
        s.mmioWrite(offset: 0, size: 1, value: 0x55)
        #expect(s.request == nil)
        s.mmioWrite(offset: 0, size: 4, value: 0x3333 | (7 << 16))
        let state = saved(s)
        let t = SysconPower()
        try restore(t, state)
        #expect(t.request == .powerOff(exitCode: 7))
        try expectTruncationsThrow(state) { SysconPower() }
        #expect(throws: (any Error).self) { try restore(t, [9]) }
    }

    @Test func rtcTimeIsPlausibleAndLatched() throws {
        let sink = RecordingSink()
        let rtc = GoldfishRTC(irq: sink, source: 11)
        let host = GoldfishRTC.realtimeNanoseconds()
        let lo = rtc.mmioRead(offset: 0, size: 4), hi = rtc.mmioRead(offset: 4, size: 4)
        let t = hi << 32 | lo
        #expect(t >= host && t - host < 5_000_000_000)
        #expect(t > 1_600_000_000 * 1_000_000_000)  // after 2020
        // Latching: HIGH is the value captured by the LOW read, even if time moves on.
        var fake: UInt64 = 0x1_ffff_fff0
        rtc.hostNanoseconds = { fake }
        _ = rtc.mmioRead(offset: 0, size: 4)
        fake = 0x2_0000_0010
        #expect(rtc.mmioRead(offset: 4, size: 4) == 1)  // not 2: latched by the LOW read
        // Setting the time: HIGH then LOW.
        rtc.mmioWrite(offset: 4, size: 4, value: 0x10)
        rtc.mmioWrite(offset: 0, size: 4, value: 0)
        #expect(rtc.now == 0x10_0000_0000)
        fake += 1000
        #expect(rtc.now == 0x10_0000_0000 + 1000)
    }

    @Test func rtcAlarmRaisesInterrupt() throws {
        let sink = RecordingSink()
        let rtc = GoldfishRTC(irq: sink, source: 11)
        var fake: UInt64 = 1_000
        rtc.hostNanoseconds = { fake }
        rtc.mmioWrite(offset: 0x10, size: 4, value: 1)
        rtc.mmioWrite(offset: 0x0c, size: 4, value: 0)
        rtc.mmioWrite(offset: 0x08, size: 4, value: 5_000)
        #expect(rtc.mmioRead(offset: 0x18, size: 4) == 1)
        #expect(!sink.level(11))
        fake = 6_000
        rtc.updateAlarm()
        #expect(sink.level(11))
        #expect(rtc.mmioRead(offset: 0x18, size: 4) == 0)
        rtc.mmioWrite(offset: 0x1c, size: 4, value: 1)
        #expect(!sink.level(11))
        let state = saved(rtc)
        let r2 = GoldfishRTC(irq: RecordingSink(), source: 11)
        try restore(r2, state)
        #expect(saved(r2) == state)
        try expectTruncationsThrow(state) { GoldfishRTC(irq: RecordingSink(), source: 11) }
    }
}
