import Foundation
import Testing
@testable import RivetDevices

/// The board table (VirtBoard) against itself, the device tree built from it, and QEMU's own `virt` tree.
@Suite struct VirtBoardTests {
    /// The body of node `path` ("/soc/serial@10000000") in a dts listing, without its child nodes' bodies.
    func nodeBody(_ dts: String, _ name: String) -> String? {
        guard let start = dts.range(of: "\t" + name + " {\n") else { return nil }
        guard let end = dts.range(of: "\n\t\t};", range: start.upperBound..<dts.endIndex) else { return nil }
        return String(dts[start.upperBound..<end.lowerBound])
    }

    func cells(_ v: UInt64) -> String { "0x" + String(v >> 32, radix: 16).leftPadded2 + " 0x" + String(v & 0xffff_ffff, radix: 16).leftPadded2 }

    func dts(_ blob: [UInt8], _ name: String) throws -> String {
        let path = tempPath(name)
        try Data(blob).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (status, out, err) = try runTool("/usr/bin/dtc", ["-I", "dtb", "-O", "dts", path])
        #expect(status == 0, "dtc failed: \(err)")
        return out
    }

    @Test func windowsAreDistinctAndDoNotOverlap() {
        let devices = VirtBoard.devices.sorted { $0.base < $1.base }
        #expect(Set(devices.map(\.name)).count == devices.count)
        for (a, b) in zip(devices, devices.dropFirst()) {
            #expect(a.base + a.size <= b.base, "\(a.name) overlaps \(b.name)")
        }
        let sources = devices.flatMap { d -> [UInt32] in if case .plic(let s) = d.interrupts { return s } else { return [] } }
        #expect(Set(sources).count == sources.count, "two devices share a PLIC source")
        #expect(sources.allSatisfy { $0 >= 1 && Int($0) < PLIC.sourceCount })
        #expect(VirtBoard.device(named: "uart0")?.base == 0x1000_0000)
    }

    /// Every table entry becomes a node at its address with its reg, interrupts and compatible strings.
    @Test func treeNodesComeFromTheTable() throws {
        let tree = try dts(makeVirtDeviceTree(VirtBoardConfig(hartCount: 1, ramSize: 128 << 20)), "board.dtb")
        for device in VirtBoard.devices {
            let body = try #require(nodeBody(tree, device.nodeNameWithAddress), "no node \(device.nodeNameWithAddress)")
            #expect(body.contains("reg = <\(cells(device.base)) \(cells(device.size))>"), "\(device.name): \(body)")
            if case .plic(let sources) = device.interrupts {
                #expect(body.contains("interrupts = <" + sources.map { "0x" + String($0, radix: 16).leftPadded2 }.joined(separator: " ") + ">"))
            }
            #expect(body.contains("compatible = \"" + device.compatible.joined(separator: "\\0") + "\""))
        }
    }

    /// A new device is one entry: it shows up in the tree with its interrupt wired to the PLIC.
    @Test func anExtraEntryAppearsInTheTree() throws {
        var config = VirtBoardConfig(hartCount: 1, ramSize: 128 << 20)
        let extra = BoardDevice(name: "extra", nodeName: "widget", base: 0x1010_0000, size: 0x100, interrupts: .plic([42]),
                                compatible: ["rivet,widget"])
        config.devices.append(extra)
        config.devices.removeAll { $0.name == VirtBoard.rtc.name }
        let tree = try dts(makeVirtDeviceTree(config), "extra.dtb")
        let body = try #require(nodeBody(tree, "widget@10100000"))
        #expect(body.contains("interrupts = <0x2a>") && body.contains("interrupt-parent = <"))
        #expect(body.contains("compatible = \"rivet,widget\""))
        #expect(nodeBody(tree, VirtBoard.rtc.nodeNameWithAddress) == nil)
    }

    /// QEMU 7.2's own virt tree puts each device of the table at the same address with the same interrupts.
    @Test func tableMatchesQEMUsVirtBoard() throws {
        let qemu = "/usr/bin/qemu-system-riscv64"
        try #require(FileManager.default.fileExists(atPath: qemu), "\(qemu) is required (apt-get install qemu-system-misc)")
        let q = tempPath("qemu-board.dtb")
        defer { try? FileManager.default.removeItem(atPath: q) }
        _ = try runTool(qemu, ["-machine", "virt,dumpdtb=\(q)", "-smp", "1", "-m", "256M", "-nographic"])
        let (status, tree, _) = try runTool("/usr/bin/dtc", ["-I", "dtb", "-O", "dts", q])
        try #require(status == 0)
        for device in VirtBoard.devices {
            let body = try #require(nodeBody(tree, device.nodeNameWithAddress), "QEMU has no \(device.nodeNameWithAddress)")
            #expect(body.contains("reg = <\(cells(device.base)) \(cells(device.size))>"), "\(device.name) window differs from QEMU's")
            if case .plic(let sources) = device.interrupts {
                #expect(body.contains("interrupts = <" + sources.map { "0x" + String($0, radix: 16).leftPadded2 }.joined(separator: " ") + ">"),
                        "\(device.name) interrupt differs from QEMU's")
            }
        }
    }
}

extension String {
    /// dtc prints cells with at least two hex digits.
    fileprivate var leftPadded2: String { count < 2 ? String(repeating: "0", count: 2 - count) + self : self }
}
