import Foundation
import Testing
@testable import RivetDevices

/// Runs a host tool and returns (status, stdout, stderr).
func runTool(_ path: String, _ args: [String]) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

func tempPath(_ name: String) -> String {
    NSTemporaryDirectory() + "rivet-devtest-\(getpid())-\(name)"
}

/// Node paths of a dts listing ("/soc/serial@10000000").
func nodePaths(_ dts: String) -> Set<String> {
    var stack: [String] = [], paths = Set<String>()
    for raw in dts.split(separator: "\n") {
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.hasSuffix("{") {
            let name = line.dropLast().trimmingCharacters(in: .whitespaces)
            stack.append(name == "/" ? "" : name)
            paths.insert(stack.joined(separator: "/").isEmpty ? "/" : stack.joined(separator: "/"))
        } else if line.hasPrefix("};") {
            stack.removeLast()
        }
    }
    return paths
}

@Suite struct DeviceTreeTests {
    func decompile(_ blob: [UInt8], _ name: String) throws -> (String, String) {
        let path = tempPath(name)
        try Data(blob).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (status, out, err) = try runTool("/usr/bin/dtc", ["-I", "dtb", "-O", "dts", path])
        #expect(status == 0)
        return (out, err)
    }

    @Test func headerLayout() {
        let blob = makeVirtDeviceTree(VirtBoardConfig(hartCount: 1, ramSize: 128 << 20))
        func be32(_ o: Int) -> UInt32 { blob[o..<o + 4].reduce(0) { $0 << 8 | UInt32($1) } }
        #expect(be32(0) == 0xd00d_feed)
        #expect(Int(be32(4)) == blob.count)
        #expect(be32(20) == 17 && be32(24) == 16)
        #expect(be32(16) % 8 == 0)  // reservation block aligned
        #expect(Int(be32(12)) + Int(be32(32)) == blob.count)  // strings block ends the blob
    }

    @Test func dtcAcceptsTheTreeWithoutWarnings() throws {
        var c = VirtBoardConfig(hartCount: 2, ramSize: 256 << 20)
        c.bootargs = "console=ttyS0 earlycon"
        c.initrd = 0x8800_0000..<0x8820_0000
        let (dts, err) = try decompile(makeVirtDeviceTree(c), "virt.dtb")
        #expect(err.isEmpty, "dtc warnings: \(err)")
        for s in ["compatible = \"riscv-virtio\"", "timebase-frequency = <0x989680>", "riscv,isa = \"rv64imafdc_zicsr_zifencei\"",
                  "mmu-type = \"riscv,sv57\"", "riscv,ndev = <0x5f>", "compatible = \"sifive,plic-1.0.0\\0riscv,plic0\"",
                  "compatible = \"sifive,clint0\\0riscv,clint0\"", "compatible = \"ns16550a\"", "clock-frequency = \"\\08@\"",  // 0x00384000, which dtc shows as a string like QEMU's
                 
                  "compatible = \"google,goldfish-rtc\"", "compatible = \"sifive,test1\\0sifive,test0\\0syscon\"",
                  "compatible = \"syscon-poweroff\"", "value = <0x5555>", "value = <0x7777>",
                  "bootargs = \"console=ttyS0 earlycon\"", "stdout-path = \"/soc/serial@10000000\"",
                  "linux,initrd-start = <0x00 0x88000000>", "linux,initrd-end = <0x00 0x88200000>",
                  "reg = <0x00 0x80000000 0x00 0x10000000>", "compatible = \"riscv,cpu-intc\""] {
            #expect(dts.contains(s), "missing: \(s)")
        }
        let paths = nodePaths(dts)
        for n in 1...8 { #expect(paths.contains("/soc/virtio_mmio@1000\(n)000")) }
        #expect(paths.contains("/cpus/cpu@1/interrupt-controller"))
        // Per-hart wiring: CLINT <intc 3 intc 7>, PLIC <intc 11 intc 9>.
        let clint = dts.components(separatedBy: "clint@2000000 {")[1]
        #expect(clint.contains("interrupts-extended = <0x03 0x03 0x03 0x07 0x04 0x03 0x04 0x07>"))
        let plic = dts.components(separatedBy: "plic@c000000 {")[1]
        #expect(plic.contains("interrupts-extended = <0x03 0x0b 0x03 0x09 0x04 0x0b 0x04 0x09>"))
    }

    /// Every node of QEMU 7.2's own virt tree that rivet implements is present at the same path.
    @Test func matchesQEMUNodeLayout() throws {
        let qemu = "/usr/bin/qemu-system-riscv64"
        // A missing tool is a failure, not a silent pass (scripts/setup.sh installs qemu-system-misc).
        try #require(FileManager.default.fileExists(atPath: qemu), "\(qemu) is required (apt-get install qemu-system-misc)")
        let q = tempPath("qemu.dtb")
        defer { try? FileManager.default.removeItem(atPath: q) }
        _ = try runTool(qemu, ["-machine", "virt,dumpdtb=\(q)", "-smp", "2", "-m", "256M", "-nographic"])
        let (_, qdts, _) = try runTool("/usr/bin/dtc", ["-I", "dtb", "-O", "dts", q])
        let (rdts, _) = try decompile(makeVirtDeviceTree(VirtBoardConfig(hartCount: 2, ramSize: 256 << 20)), "cmp.dtb")
        let unimplemented = ["pmu", "fw-cfg", "flash", "platform-bus", "pci@"]
        let expected = nodePaths(qdts).filter { p in !unimplemented.contains { p.contains($0) } }
        #expect(!expected.isEmpty)
        let missing = expected.subtracting(nodePaths(rdts))
        #expect(missing.isEmpty, "missing nodes: \(missing.sorted())")
    }
}
