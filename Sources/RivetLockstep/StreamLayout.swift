/// Where everything of a stream lives in guest memory. RAM is small (so comparing all of it after every
/// block is cheap); with paging on, the page table maps every page at its own physical address, so a
/// virtual address in a report is also the physical one.
public enum StreamLayout {
    public static let ramBase: UInt64 = 0x8000_0000
    public static let pageCount = 17
    public static let ramSize = UInt64(pageCount) << 12

    public static func page(_ n: Int) -> UInt64 { ramBase + UInt64(n) << 12 }

    /// The M-mode trap handler (mtvec) and the S-mode one (stvec, for delegated traps).
    public static let machineHandlerPage = 0
    public static let supervisorHandlerPage = 1
    /// The stream's code (stores into these pages are the self-modifying cases).
    public static let codePages = 2..<6
    /// Read-write data.
    public static let dataPages = 6..<10
    /// With paging: readable only; not mapped at all; execute-only (readable with MXR); read-write with the
    /// A and D bits clear (the walk sets them). Without paging all four are plain RAM.
    public static let readOnlyPage = 10
    public static let unmappedPage = 11
    public static let executeOnlyPage = 12
    public static let cleanPage = 13
    /// Sv39 tables: root, middle and leaf level (not mapped for the stream).
    public static let rootTablePage = 14
    public static let middleTablePage = 15
    public static let leafTablePage = 16

    /// Addresses no access may reach: below RAM (no device there) and past its end.
    public static let outsideRAM: [UInt64] = [0x1000, 0x0800_0000, ramBase + ramSize, ramBase + ramSize + 0x1_0000]
}

/// One generated test: everything the runner writes into a fresh machine before starting it.
public struct LockstepStream {
    public enum Mode: UInt8, CaseIterable { case user = 0, supervisor = 1, machine = 3 }

    public let seed: UInt64
    public let mode: Mode
    public let paging: Bool
    /// Bytes to write into RAM (handlers, code, data, page tables).
    public let memory: [(address: UInt64, bytes: [UInt8])]
    public let entry: UInt64
    /// The stream ends when the pc reaches this self-loop (or the runner's step limit).
    public let exit: UInt64
    public let x: [UInt64]
    public let f: [UInt64]
    /// CSRs written before the start, in M-mode, in this order.
    public let csrs: [(number: Int, value: UInt64)]
    /// The instruction table rows (mnemonics) the random part used, for coverage checks.
    public let mnemonics: [String]
    /// Items of the stream by kind (for the summary).
    public let description: String
}
