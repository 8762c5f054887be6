/// The `virt` board as data: one entry per device, from which the machine maps its bus and the device tree
/// describes the board. Adding a device is one entry here plus its model (and the line that builds the model
/// in `VirtMachine`).
///
/// Addresses and interrupt numbers are QEMU 7.2's `virt` map, so Debian's OpenSBI and Linux run unchanged.

/// One memory-mapped device of the board.
public struct BoardDevice {
    /// How the device signals interrupts.
    public enum Interrupts: Equatable {
        case none
        /// Sources on the PLIC (`interrupts` with the PLIC as `interrupt-parent`).
        case plic([UInt32])
        /// Local interrupts on every hart's interrupt controller (`interrupts-extended`), e.g. the CLINT's
        /// software (3) and timer (7) interrupts.
        case perHart([UInt32])
    }

    /// One property of the device's tree node, in the order QEMU writes them.
    public enum NodeProperty: Equatable {
        /// `phandle` (other nodes refer to this one).
        case phandle
        /// `interrupts` and `interrupt-parent` from `.plic` interrupts.
        case interrupts
        /// `interrupts-extended` from `.perHart` interrupts, for every hart.
        case interruptsExtended
        /// `reg` from base and size.
        case reg
        /// `compatible` from the compatible strings.
        case compatible
        /// A fixed 32-bit value.
        case u32(String, UInt32)
        /// A property without a value (`interrupt-controller`).
        case flag(String)
    }

    /// Name on the bus (and in error messages): "uart0", "virtio3".
    public var name: String
    /// Device-tree node name; the node is `<nodeName>@<base in hex>`.
    public var nodeName: String
    public var base: UInt64
    public var size: UInt64
    public var interrupts: Interrupts
    public var compatible: [String]
    /// The node's properties in order.
    public var nodeProperties: [NodeProperty]

    public init(name: String, nodeName: String, base: UInt64, size: UInt64, interrupts: Interrupts = .none,
                compatible: [String], nodeProperties: [NodeProperty]? = nil) {
        self.name = name; self.nodeName = nodeName; self.base = base; self.size = size
        self.interrupts = interrupts; self.compatible = compatible
        self.nodeProperties = nodeProperties ?? (interrupts == .none ? [.reg, .compatible] : [.interrupts, .reg, .compatible])
    }

    /// The first PLIC source of the device (0 when it has none).
    public var plicSource: Int {
        if case .plic(let sources) = interrupts, let first = sources.first { return Int(first) }
        return 0
    }

    /// The device-tree node name with its unit address, e.g. "serial@10000000".
    public var nodeNameWithAddress: String { nodeName + "@" + String(base, radix: 16) }
}

public enum VirtBoard {
    public static let syscon = BoardDevice(
        name: "syscon", nodeName: "test", base: 0x0010_0000, size: 0x1000,
        compatible: ["sifive,test1", "sifive,test0", "syscon"], nodeProperties: [.phandle, .reg, .compatible])
    public static let rtc = BoardDevice(
        name: "rtc", nodeName: "rtc", base: 0x0010_1000, size: 0x1000, interrupts: .plic([11]),
        compatible: ["google,goldfish-rtc"])
    public static let clint = BoardDevice(
        name: "clint", nodeName: "clint", base: 0x0200_0000, size: 0x1_0000, interrupts: .perHart([3, 7]),
        compatible: ["sifive,clint0", "riscv,clint0"], nodeProperties: [.interruptsExtended, .reg, .compatible])
    public static let plic = BoardDevice(
        name: "plic", nodeName: "plic", base: 0x0c00_0000, size: 0x60_0000, interrupts: .perHart([11, 9]),
        compatible: ["sifive,plic-1.0.0", "riscv,plic0"],
        nodeProperties: [.phandle, .u32("riscv,ndev", UInt32(PLIC.sourceCount - 1)), .reg, .interruptsExtended,
                         .flag("interrupt-controller"), .compatible, .u32("#address-cells", 0), .u32("#interrupt-cells", 1)])
    public static let uart0 = BoardDevice(
        name: "uart0", nodeName: "serial", base: 0x1000_0000, size: 0x100, interrupts: .plic([10]),
        compatible: ["ns16550a"], nodeProperties: [.interrupts, .u32("clock-frequency", 0x38_4000), .reg, .compatible])

    /// virtio-mmio slots: 8 windows of 4 KiB from 0x10001000, PLIC sources 1...8.
    public static let virtioSlotCount = 8
    public static func virtio(_ slot: Int) -> BoardDevice {
        BoardDevice(name: "virtio\(slot)", nodeName: "virtio_mmio", base: 0x1000_1000 + UInt64(slot) * 0x1000, size: 0x1000,
                    interrupts: .plic([UInt32(1 + slot)]), compatible: ["virtio,mmio"])
    }

    /// The interrupt parent of every `.plic` device.
    public static let interruptController = plic
    /// Where the console is (the tree's `stdout-path`).
    public static let console = uart0

    /// Every device in device-tree order (QEMU's): virtio slots from the highest address down, because Linux
    /// numbers devices in probe order.
    public static let devices: [BoardDevice] =
        [rtc, uart0, syscon] + (0..<virtioSlotCount).reversed().map(virtio) + [plic, clint]

    /// The device mapped at `name`.
    public static func device(named name: String) -> BoardDevice? { devices.first { $0.name == name } }
}
