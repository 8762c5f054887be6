import RivetMemory

/// The host side of spike's HTIF (host-target interface), as bare-metal test suites and riscv-pk use it:
/// the guest writes a command to the `tohost` word, the host carries it out, clears `tohost`, and answers
/// through `fromhost` when the command has an answer.
///
/// A command is `device << 56 | command << 48 | payload` (48 bits). Devices:
/// - 0 (syscall proxy): an odd payload ends the run with exit code `payload >> 1`; an even payload is the
///   address of a 64-byte block `[number, arg0, arg1, arg2, ...]`. `write` (64) to fd 1 or 2 and `exit` (93)
///   are carried out; other numbers answer -ENOSYS. The result goes to the block's first word and
///   `fromhost` gets 1.
/// - 1 (console): command 1 prints the payload's low byte and answers `fromhost = 1 << 56 | 1 << 48 |
///   0x100 | byte`; command 0 asks for one input byte, answered `1 << 56 | 0x100 | byte` once input is
///   available (no answer at end of input). The answers are spike's and QEMU's.
public final class HTIF {
    public enum Event: Equatable {
        /// The guest asked to end the run with this code (0 = pass).
        case exit(code: UInt64)
        /// A command this host does not know (device, command, payload): the run ends with an error.
        case unknown(UInt64)
        /// A syscall whose argument block is not in RAM.
        case badSyscallBlock(UInt64)
    }

    /// Answers the guest has not collected yet; while this many wait, new commands stay in tohost (the
    /// guest then waits, as it would for a slow host) so a guest that never reads fromhost cannot grow it.
    static let maximumQueuedAnswers = 16

    let ram: GuestRAM
    public let tohost: UInt64
    public let fromhost: UInt64?
    /// Receives console output bytes (putchar and write(2)).
    let output: (UInt8, _ fd: Int) -> Void
    /// Returns one console input byte if one is available now, nil otherwise.
    let input: () -> UInt8?
    /// Answers waiting for `fromhost` to be free (the guest clears it after reading), oldest first.
    var answers: [UInt64] = []
    /// A console read asked for and not answered yet.
    var pendingReads = 0
    /// True once the guest used the console or a syscall: the runner then polls more often.
    public private(set) var interactive = false

    public init(ram: GuestRAM, tohost: UInt64, fromhost: UInt64?, output: @escaping (UInt8, Int) -> Void, input: @escaping () -> UInt8?) {
        self.ram = ram
        self.tohost = tohost
        self.fromhost = fromhost
        self.output = output
        self.input = input
    }

    /// Handles a pending command, delivers answers; returns an event when the run must end.
    public func poll() -> Event? {
        if answers.count < HTIF.maximumQueuedAnswers, let v = ram.load64(tohost), v != 0 {
            ram.store64(tohost, 0)
            if let e = handle(v) { return e }
        }
        if pendingReads > 0, let byte = input() {
            pendingReads -= 1
            answers.append(1 << 56 | 0x100 | UInt64(byte))
        }
        deliver()
        return nil
    }

    func handle(_ value: UInt64) -> Event? {
        let device = value >> 56
        let command = (value >> 48) & 0xff
        let payload = value & 0xffff_ffff_ffff
        switch (device, command) {
        case (0, 0):
            if payload & 1 == 1 { return .exit(code: payload >> 1) }
            interactive = true
            return syscall(at: payload)
        case (1, 1):
            interactive = true
            let byte = UInt8(truncatingIfNeeded: payload)
            output(byte, 1)
            answers.append(1 << 56 | 1 << 48 | 0x100 | UInt64(byte))
        case (1, 0):
            interactive = true
            pendingReads += 1
        default:
            return .unknown(value)
        }
        return nil
    }

    /// riscv-pk's syscall proxy: the block holds the number and arguments; the result replaces the number.
    func syscall(at address: UInt64) -> Event? {
        guard ram.contains(address, length: 64), let number = ram.load64(address) else {
            return .badSyscallBlock(address)  // the guest is broken: stop rather than guess
        }
        let a0 = ram.load64(address + 8) ?? 0, a1 = ram.load64(address + 16) ?? 0, a2 = ram.load64(address + 24) ?? 0
        var result: UInt64
        switch number {
        case 64:  // write(fd, buf, len)
            if a0 != 1 && a0 != 2 {
                result = UInt64(bitPattern: -9)  // EBADF
            } else if a2 <= ram.size, let p = ram.pointer(a1, length: a2) {
                for i in 0..<Int(a2) { output(p.load(fromByteOffset: i, as: UInt8.self), Int(a0)) }
                result = a2
            } else {
                result = UInt64(bitPattern: -14)  // EFAULT: the buffer is not all RAM
            }
        case 93:  // exit(code)
            return .exit(code: a0)
        default:
            result = UInt64(bitPattern: -38)  // ENOSYS
        }
        ram.store64(address, result)
        answers.append(1)
        return nil
    }

    /// Writes the oldest answer into `fromhost` when the guest has consumed the previous one.
    func deliver() {
        guard !answers.isEmpty, let f = fromhost, let current = ram.load64(f), current == 0 else { return }
        ram.store64(f, answers.removeFirst())
    }
}

/// Spike's `+signature` file: the memory between `begin_signature` and `end_signature`, one line per
/// `granularity` bytes (4 or 8), each line that many little-endian bytes as lower-case hex, most
/// significant first; a short last line is padded with zeros.
public func signatureText(ram: GuestRAM, begin: UInt64, end: UInt64, granularity: Int) -> String? {
    guard end >= begin, ram.contains(begin, length: end - begin) else { return nil }
    let length = Int(end - begin)
    var text = ""
    text.reserveCapacity(length / granularity * (2 * granularity + 1) + 2 * granularity + 1)
    let digits = Array("0123456789abcdef".utf8)
    var line = [UInt8](repeating: 0, count: 2 * granularity + 1)
    line[2 * granularity] = UInt8(ascii: "\n")
    var offset = 0
    while offset < length {
        for j in 0..<granularity {
            let byte: UInt8 = offset + j < length ? (ram.pointer(begin + UInt64(offset + j), length: 1)?.load(as: UInt8.self) ?? 0) : 0
            let position = 2 * (granularity - 1 - j)
            line[position] = digits[Int(byte >> 4)]
            line[position + 1] = digits[Int(byte & 15)]
        }
        text += String(decoding: line, as: UTF8.self)
        offset += granularity
    }
    return text
}
