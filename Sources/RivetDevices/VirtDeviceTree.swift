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
    /// Number of virtio-mmio slots listed (QEMU lists all 8, used or not).
    public var virtioSlots: Int = VirtioMMIO.slotCount
    public var hasRTC = true
    public var hasSyscon = true
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
    let plicPhandle = allocPhandle()
    let testPhandle = allocPhandle()
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
    fdt.property("stdout-path", string: "/soc/serial@\(hex(UART16550.defaultBase))")
    if let initrd = config.initrd {
        fdt.property("linux,initrd-start", u64: initrd.lowerBound)
        fdt.property("linux,initrd-end", u64: initrd.upperBound)
    }
    fdt.endNode()

    if config.hasSyscon {
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

    if config.hasRTC {
        fdt.beginNode("rtc@\(hex(GoldfishRTC.defaultBase))")
        fdt.property("interrupts", u32: 11)
        fdt.property("interrupt-parent", u32: plicPhandle)
        fdt.property("reg", cells: reg(GoldfishRTC.defaultBase, GoldfishRTC.windowSize))
        fdt.property("compatible", string: "google,goldfish-rtc")
        fdt.endNode()
    }

    fdt.beginNode("serial@\(hex(UART16550.defaultBase))")
    fdt.property("interrupts", u32: 10)
    fdt.property("interrupt-parent", u32: plicPhandle)
    fdt.property("clock-frequency", u32: 0x38_4000)
    fdt.property("reg", cells: reg(UART16550.defaultBase, UART16550.windowSize))
    fdt.property("compatible", string: "ns16550a")
    fdt.endNode()

    if config.hasSyscon {
        fdt.beginNode("test@\(hex(SysconPower.defaultBase))")
        fdt.property("phandle", u32: testPhandle)
        fdt.property("reg", cells: reg(SysconPower.defaultBase, SysconPower.windowSize))
        fdt.property("compatible", strings: ["sifive,test1", "sifive,test0", "syscon"])
        fdt.endNode()
    }

    // QEMU lists the slots from the highest address down; Linux numbers devices in probe order.
    for n in stride(from: min(config.virtioSlots, VirtioMMIO.slotCount) - 1, through: 0, by: -1) {
        let base = VirtioMMIO.slotBase + UInt64(n) * VirtioMMIO.slotSize
        fdt.beginNode("virtio_mmio@\(hex(base))")
        fdt.property("interrupts", u32: UInt32(1 + n))
        fdt.property("interrupt-parent", u32: plicPhandle)
        fdt.property("reg", cells: reg(base, VirtioMMIO.slotSize))
        fdt.property("compatible", string: "virtio,mmio")
        fdt.endNode()
    }

    fdt.beginNode("plic@\(hex(PLIC.defaultBase))")
    fdt.property("phandle", u32: plicPhandle)
    fdt.property("riscv,ndev", u32: UInt32(PLIC.sourceCount - 1))
    fdt.property("reg", cells: reg(PLIC.defaultBase, PLIC.windowSize))
    fdt.property("interrupts-extended", cells: intcPhandles.flatMap { [$0, 11, $0, 9] })
    fdt.property("interrupt-controller")
    fdt.property("compatible", strings: ["sifive,plic-1.0.0", "riscv,plic0"])
    fdt.property("#address-cells", u32: 0)
    fdt.property("#interrupt-cells", u32: 1)
    fdt.endNode()

    fdt.beginNode("clint@\(hex(CLINT.defaultBase))")
    fdt.property("interrupts-extended", cells: intcPhandles.flatMap { [$0, 3, $0, 7] })
    fdt.property("reg", cells: reg(CLINT.defaultBase, CLINT.windowSize))
    fdt.property("compatible", strings: ["sifive,clint0", "riscv,clint0"])
    fdt.endNode()

    fdt.endNode()  // soc
    fdt.endNode()  // root
    return fdt.finish()
}
