/// What the virt board's device tree describes.
public struct VirtBoardConfig {
    public var hartCount: Int
    public var ramBase: UInt64 = 0x8000_0000
    public var ramSize: UInt64
    public var bootargs: String = ""
    /// Guest-physical [start, end) of the initrd, if one is loaded.
    public var initrd: Range<UInt64>?
    /// Linux 6.1 parses single letters and `_`-separated multi-letter extensions; OpenSBI probes CSRs.
    public var isa: String = "rv64imafdc_zicsr_zifencei"
    /// "riscv,sv39", "riscv,sv48" or "riscv,sv57".
    public var mmuType: String = "riscv,sv57"
    public var timebaseFrequency: UInt32 = 10_000_000
    /// The board's devices in node order (QEMU lists all 8 virtio-mmio slots, used or not).
    public var devices: [BoardDevice] = VirtBoard.devices
    public var model = "riscv-virtio,qemu"

    public init(hartCount: Int, ramSize: UInt64) {
        self.hartCount = hartCount
        self.ramSize = ramSize
    }
}

/// Builds the flattened device tree of the virt board, laid out like QEMU 7.2's `virt` tree.
///
/// One deviation: the per-hart interrupt controllers carry `#address-cells = <0>`, which QEMU omits and
/// `dtc` warns about.
public func makeVirtDeviceTree(_ config: VirtBoardConfig) -> [UInt8] {
    var fdt = FDTBuilder()
    var nextPhandle: UInt32 = 1
    func allocPhandle() -> UInt32 { defer { nextPhandle += 1 }; return nextPhandle }
    let harts = max(1, config.hartCount)
    let cpuPhandles = (0..<harts).map { _ in allocPhandle() }
    let intcPhandles = (0..<harts).map { _ in allocPhandle() }
    // The interrupt controller first, then every other node that others refer to, in table order.
    var phandles: [String: UInt32] = [:]
    let plicPhandle = allocPhandle()
    phandles[VirtBoard.interruptController.name] = plicPhandle
    for device in config.devices where device.nodeProperties.contains(.phandle) && phandles[device.name] == nil {
        phandles[device.name] = allocPhandle()
    }
    func reg(_ base: UInt64, _ size: UInt64) -> [UInt32] {
        [UInt32(base >> 32), UInt32(truncatingIfNeeded: base), UInt32(size >> 32), UInt32(truncatingIfNeeded: size)]
    }
    func hex(_ v: UInt64) -> String { String(v, radix: 16) }

    fdt.beginNode("")
    fdt.property("#address-cells", u32: 2)
    fdt.property("#size-cells", u32: 2)
    fdt.property("compatible", string: "riscv-virtio")
    fdt.property("model", string: config.model)

    fdt.beginNode("chosen")
    if !config.bootargs.isEmpty { fdt.property("bootargs", string: config.bootargs) }
    fdt.property("stdout-path", string: "/soc/" + VirtBoard.console.nodeNameWithAddress)
    if let initrd = config.initrd {
        fdt.property("linux,initrd-start", u64: initrd.lowerBound)
        fdt.property("linux,initrd-end", u64: initrd.upperBound)
    }
    fdt.endNode()

    // Power-off and reboot go through the syscon's register (OpenSBI's syscon-poweroff/-reboot drivers).
    if let testPhandle = phandles[VirtBoard.syscon.name] {
        fdt.beginNode("poweroff")
        fdt.property("value", u32: SysconPower.pass)
        fdt.property("offset", u32: 0)
        fdt.property("regmap", u32: testPhandle)
        fdt.property("compatible", string: "syscon-poweroff")
        fdt.endNode()
        fdt.beginNode("reboot")
        fdt.property("value", u32: SysconPower.resetValue)
        fdt.property("offset", u32: 0)
        fdt.property("regmap", u32: testPhandle)
        fdt.property("compatible", string: "syscon-reboot")
        fdt.endNode()
    }

    fdt.beginNode("memory@\(hex(config.ramBase))")
    fdt.property("device_type", string: "memory")
    fdt.property("reg", cells: reg(config.ramBase, config.ramSize))
    fdt.endNode()

    fdt.beginNode("cpus")
    fdt.property("#address-cells", u32: 1)
    fdt.property("#size-cells", u32: 0)
    fdt.property("timebase-frequency", u32: config.timebaseFrequency)
    for h in 0..<harts {
        fdt.beginNode("cpu@\(hex(UInt64(h)))")
        fdt.property("phandle", u32: cpuPhandles[h])
        fdt.property("device_type", string: "cpu")
        fdt.property("reg", u32: UInt32(h))
        fdt.property("status", string: "okay")
        fdt.property("compatible", string: "riscv")
        fdt.property("riscv,isa", string: config.isa)
        fdt.property("mmu-type", string: config.mmuType)
        fdt.beginNode("interrupt-controller")
        fdt.property("#address-cells", u32: 0)
        fdt.property("#interrupt-cells", u32: 1)
        fdt.property("interrupt-controller")
        fdt.property("compatible", string: "riscv,cpu-intc")
        fdt.property("phandle", u32: intcPhandles[h])
        fdt.endNode()
        fdt.endNode()
    }
    fdt.beginNode("cpu-map")
    fdt.beginNode("cluster0")
    for h in 0..<harts {
        fdt.beginNode("core\(h)")
        fdt.property("cpu", u32: cpuPhandles[h])
        fdt.endNode()
    }
    fdt.endNode()
    fdt.endNode()
    fdt.endNode()  // cpus

    fdt.beginNode("soc")
    fdt.property("#address-cells", u32: 2)
    fdt.property("#size-cells", u32: 2)
    fdt.property("compatible", string: "simple-bus")
    fdt.property("ranges")

    for device in config.devices {
        fdt.beginNode(device.nodeNameWithAddress)
        for property in device.nodeProperties {
            switch property {
            case .phandle:
                fdt.property("phandle", u32: phandles[device.name] ?? 0)
            case .interrupts:
                if case .plic(let sources) = device.interrupts {
                    fdt.property("interrupts", cells: sources)
                    fdt.property("interrupt-parent", u32: plicPhandle)
                }
            case .interruptsExtended:
                if case .perHart(let local) = device.interrupts {
                    fdt.property("interrupts-extended", cells: intcPhandles.flatMap { intc in local.flatMap { [intc, $0] } })
                }
            case .reg:
                fdt.property("reg", cells: reg(device.base, device.size))
            case .compatible:
                fdt.property("compatible", strings: device.compatible)
            case .u32(let name, let value):
                fdt.property(name, u32: value)
            case .flag(let name):
                fdt.property(name)
            }
        }
        fdt.endNode()
    }

    fdt.endNode()  // soc
    fdt.endNode()  // root
    return fdt.finish()
}
