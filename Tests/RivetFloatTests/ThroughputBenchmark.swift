// Opt-in throughput measurement (RIVET_FLOAT_BENCH=1, build with -c release for meaningful numbers).
import Foundation
import Testing
import RivetFloat

@Suite struct ThroughputBenchmark {
    static let enabled = ProcessInfo.processInfo.environment["RIVET_FLOAT_BENCH"] != nil

    /// ns per call over `n` independent ordinary operands (normal range, RNE).
    func measure(_ name: String, startFlags: UInt32, _ body: (UInt64, UInt64, UInt64, inout UInt32) -> UInt64) -> Double {
        let n = 1 << 16
        var rng = SplitMix(state: 42)
        let input = UnsafeMutablePointer<UInt64>.allocate(capacity: 3 * n)
        defer { input.deallocate() }
        for i in 0..<(3 * n) {
            // Random sign and fraction, exponent within 2^-20 ... 2^20.
            input[i] = (rng.next() & 0x800F_FFFF_FFFF_FFFF) | ((1023 - 20 + rng.below(40)) << 52)
        }
        var sink: UInt64 = 0
        var best = Double.infinity
        for _ in 0..<15 {
            var flags = startFlags
            let t0 = DispatchTime.now().uptimeNanoseconds
            if startFlags == 0 {
                // Clean fflags before every call: measures the inexact-detection path.
                for i in 0..<n {
                    flags = 0
                    sink ^= body(input[3 * i], input[3 * i + 1], input[3 * i + 2], &flags)
                }
            } else {
                for i in 0..<n { sink ^= body(input[3 * i], input[3 * i + 1], input[3 * i + 2], &flags) }
            }
            sink ^= UInt64(flags)
            let t1 = DispatchTime.now().uptimeNanoseconds
            best = min(best, Double(t1 - t0) / Double(n))
        }
        print(String(format: "RivetFloat bench %@ %@: %.2f ns/op  (sink %llx)", name, startFlags == 0 ? "fflags cleared each call" : "NX accrued", best, sink))
        return best
    }

    /// The boxed single nearest to a double operand (costs one conversion in the loop).
    @inline(__always) func single(_ x: UInt64) -> UInt64 { RVFloat.box(Float(Double(bitPattern: x)).bitPattern) }

    @Test(.enabled(if: enabled)) func rneThroughput() {
        for start: UInt32 in [0, FFlag.NX] {
            _ = measure("add_d", startFlags: start) { a, b, _, f in RVFloat.add_d(a, b, 0, &f) }
            _ = measure("mul_d", startFlags: start) { a, b, _, f in RVFloat.mul_d(a, b, 0, &f) }
            _ = measure("div_d", startFlags: start) { a, b, _, f in RVFloat.div_d(a, b, 0, &f) }
            _ = measure("madd_d", startFlags: start) { a, b, c, f in RVFloat.madd_d(a, b, c, 0, &f) }
            _ = measure("add_s", startFlags: start) { a, b, _, f in RVFloat.add_s(single(a), single(b), 0, &f) }
            _ = measure("mul_s", startFlags: start) { a, b, _, f in RVFloat.mul_s(single(a), single(b), 0, &f) }
            _ = measure("madd_s", startFlags: start) { a, b, c, f in RVFloat.madd_s(single(a), single(b), single(c), 0, &f) }
        }
        _ = measure("add_d/RTZ", startFlags: 0) { a, b, _, f in RVFloat.add_d(a, b, 1, &f) }
        _ = measure("madd_d/RTZ", startFlags: 0) { a, b, c, f in RVFloat.madd_d(a, b, c, 1, &f) }
        _ = measure("cvt_w_d", startFlags: 0) { a, _, _, f in RVFloat.cvt_w_d(a, 1, &f) }
    }
}
