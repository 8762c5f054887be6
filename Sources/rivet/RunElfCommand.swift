import ArgumentParser
import RivetISA
import RivetMachine
import RivetMemory
#if canImport(Glibc)
import Glibc
#endif

/// `rivet run-elf`: a bare-metal ELF on one hart, talking to the host through HTIF.
struct RunElf: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-elf",
        abstract: "Run a bare-metal RISC-V ELF (M-mode, RAM at 0x80000000) until it exits through HTIF `tohost`.",
        discussion: """
        HTIF as spike: tohost = (n<<1)|1 exits (n = 0 passes); device 1 is the console (command 1 prints a \
        byte on stdout, command 0 reads one from stdin; answers go to `fromhost`); riscv-pk's write and exit \
        syscalls work. --signature writes spike's +signature file when the program exits. See docs/firmware-and-bare-metal.md. \
        Exit status: 0 when the program writes 1 to tohost (pass); 1 when it writes (n<<1)|1 \
        (prints "FAIL: test n"); 2 when --max-instructions is reached; 3 on a bad file or an unknown HTIF \
        command; 64 on a bad option.
        """)

    @Argument(help: "The ELF file.") var file: String
    @Option(help: "Stop after this many retired instructions.") var maxInstructions: UInt64 = 1_000_000_000
    @Option(help: "RAM size (e.g. 128M, 1G).") var memory: String = "128M"
    @Flag(help: "Print each retired instruction, objdump style.") var trace = false
    @Option(help: "When the program exits through HTIF, write the memory from `begin_signature` to `end_signature` to FILE (spike's +signature).")
    var signature: String?
    @Option(help: "Bytes per line of the signature file: 4 or 8.") var signatureGranularity: Int = 4
    @Option(help: "CPU: rv64[,mmu=sv39|sv48|sv57] (the widest paging mode; default sv57).") var cpu: String?
    @Option(help: AccelOption.help) var accel: String?

    func validate() throws {
        guard signatureGranularity == 4 || signatureGranularity == 8 else {
            throw ValidationError("--signature-granularity must be 4 or 8")
        }
    }

    func run() throws {
        do {
            let size = try parseMemorySize(memory)
            let cpuOption = try cpu.map { try CPUOption($0) }
            let accelerator = try AccelOption.parse(accel)
            let threshold = try AccelOption.threshold()
            let bytes = try readFile(file)
            let elf = try ELFImage(bytes: bytes, name: file)
            var signatureRange: (UInt64, UInt64)? = nil
            if signature != nil {
                guard let b = elf.symbols["begin_signature"], let e = elf.symbols["end_signature"] else {
                    throw CLIError("\(file): --signature needs the symbols begin_signature and end_signature")
                }
                guard e >= b else { throw CLIError("\(file): end_signature lies before begin_signature") }
                signatureRange = (b, e)
            }
            let console = HTIFHostConsole()
            let runner = try BareMetalRunner(elf: elf, name: file, memorySize: size,
                                             output: { console.put($0, fd: $1) }, input: { console.get() })
            if let c = cpuOption { runner.hart.mmuMode = c.mmuMode }
            runner.hart.accelerator = accelerator
            if let t = threshold { runner.hart.translationThreshold = t }
            if let (b, e) = signatureRange, !runner.ram.contains(b, length: e - b) {
                throw CLIError("\(file): the signature 0x\(String(b, radix: 16))-0x\(String(e, radix: 16)) is outside RAM")
            }
            if trace {
                let symbols = SymbolTable(elf.symbols)
                runner.hart.traceHook = { pc, word in
                    console.flush()
                    print(symbols.objdumpStyle(Disassembler.traceLine(pc: pc, word: word)))
                }
            }
            let start = VirtualClockHost.now()
            let outcome = runner.run(maxInstructions: maxInstructions, afterSlice: { console.flush() })
            console.flush()
            let seconds = Double(VirtualClockHost.now() - start) / 1e9
            if ProcessInfoLite.environment("RIVET_STATS") != nil {
                let mips = Double(runner.hart.instret) / seconds / 1e6
                fputs("rivet: \(runner.hart.instret) instructions in \(fixed(seconds, 3)) s (\(fixed(mips, 1)) MIPS)\n", stderr)
                reportTranslation([runner.cache], seconds: seconds)
            }
            if let path = signature, let (b, e) = signatureRange {
                switch outcome {
                case .passed, .failed:
                    guard let text = signatureText(ram: runner.ram, begin: b, end: e, granularity: signatureGranularity) else {
                        throw CLIError("\(file): the signature range is outside RAM")
                    }
                    try writeFileAtomically(path, Array(text.utf8))
                default:
                    break  // the program never finished: no signature, so a stale one cannot pass for a result
                }
            }
            switch outcome {
            case .passed:
                throw ExitCode(0)
            case .failed(let n):
                print("FAIL: test \(n)")
                throw ExitCode(1)
            case .instructionLimit(let n):
                fputs("rivet: stopped after \(n) instructions (--max-instructions) without a tohost write\n", stderr)
                throw ExitCode(2)
            case .unknownHTIFCommand(let v):
                fputs("rivet: unknown HTIF command 0x\(String(v, radix: 16)) in tohost (device \(v >> 56), command \((v >> 48) & 0xff))\n", stderr)
                throw ExitCode(3)
            case .badSyscallBlock(let a):
                fputs("rivet: HTIF syscall block at 0x\(String(a, radix: 16)) is outside RAM\n", stderr)
                throw ExitCode(3)
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            fputs("rivet: \(error)\n", stderr)
            throw ExitCode(3)
        }
    }
}

/// The HTIF console on stdio: output is buffered and written between slices; input is read without
/// blocking, one byte at a time as the guest asks.
final class HTIFHostConsole {
    var out: [UInt8] = []
    var err: [UInt8] = []
    var inputClosed = false

    func put(_ byte: UInt8, fd: Int) {
        if fd == 2 { err.append(byte) } else { out.append(byte) }
        if out.count >= 4096 || err.count >= 4096 { flush() }
    }

    func flush() {
        if !out.isEmpty { writeAll(1, out); out.removeAll(keepingCapacity: true) }
        if !err.isEmpty { writeAll(2, err); err.removeAll(keepingCapacity: true) }
    }

    func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        fflush(stdout)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }  // output closed: drop the rest, as a terminal that went away would
            done += n
        }
    }

    func get() -> UInt8? {
        if inputClosed { return nil }
        var fds = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        guard poll(&fds, 1, 0) > 0 else { return nil }
        var byte: UInt8 = 0
        let n = read(0, &byte, 1)
        if n == 1 { return byte }
        if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) { inputClosed = true }
        return nil
    }
}

/// Writes a file beside its final name, syncs it and renames it over, so a reader never sees half of it.
func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
    let temporary = path + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw CLIError("\(path): \(String(cString: strerror(errno)))") }
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            let why = String(cString: strerror(errno))
            close(fd); unlink(temporary)
            throw CLIError("\(path): write failed: \(why)")
        }
        done += n
    }
    guard fsync(fd) == 0, close(fd) == 0 else { unlink(temporary); throw CLIError("\(path): write failed") }
    guard rename(temporary, path) == 0 else {
        let why = String(cString: strerror(errno))
        unlink(temporary)
        throw CLIError("\(path): \(why)")
    }
}

/// Rewrites branch and jump targets the way `objdump -d` prints them for an ELF: `80000010 <sym+0x4>`.
struct SymbolTable {
    let sorted: [(address: UInt64, name: String)]
    static let controlFlow: Set<String> = ["j", "jal", "beq", "bne", "blt", "bge", "bltu", "bgeu", "beqz", "bnez",
                                           "blez", "bgez", "bltz", "bgtz", "bgt", "ble", "bgtu", "bleu"]
    init(_ symbols: [String: UInt64]) {
        sorted = symbols.filter { !$0.key.hasPrefix(".L") && !$0.key.hasPrefix("$") }
            .map { (address: $0.value, name: $0.key) }
            .sorted { $0.address != $1.address ? $0.address < $1.address : $0.name < $1.name }
    }

    func objdumpStyle(_ line: String) -> String {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count >= 4, SymbolTable.controlFlow.contains(String(fields[2])) else { return line }
        var operands = fields[3].split(separator: ",").map(String.init)
        guard let last = operands.last, last.hasPrefix("0x"), let target = UInt64(last.dropFirst(2), radix: 16) else { return line }
        var text = String(target, radix: 16)
        if let sym = sorted.last(where: { $0.address <= target }) {
            let off = target - sym.address
            text += off == 0 ? " <\(sym.name)>" : " <\(sym.name)+0x\(String(off, radix: 16))>"
        }
        operands[operands.count - 1] = text
        return fields[0..<3].joined(separator: "\t") + "\t" + operands.joined(separator: ",")
    }
}
