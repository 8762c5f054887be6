import ArgumentParser
import RivetISA
import RivetMachine
import RivetMemory
#if canImport(Glibc)
import Glibc
#endif

/// `rivet run-elf`: a bare-metal ELF on one hart, ending through HTIF tohost.
struct RunElf: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-elf",
        abstract: "Run a bare-metal RISC-V ELF (M-mode, RAM at 0x80000000) until it writes `tohost`.",
        discussion: """
        Exit status: 0 when the program writes 1 to tohost (pass); 1 when it writes (n<<1)|1 \
        (prints "FAIL: test n"); 2 when --max-instructions is reached; 3 on a bad file; 64 on a bad option.
        """)

    @Argument(help: "The ELF file.") var file: String
    @Option(help: "Stop after this many retired instructions.") var maxInstructions: UInt64 = 1_000_000_000
    @Option(help: "RAM size (e.g. 128M, 1G).") var memory: String = "128M"
    @Flag(help: "Print each retired instruction, objdump style.") var trace = false

    func run() throws {
        do {
            let size = try parseMemorySize(memory)
            let bytes = try readFile(file)
            let elf = try ELFImage(bytes: bytes, name: file)
            let runner = try BareMetalRunner(elf: elf, name: file, memorySize: size)
            if trace {
                let symbols = SymbolTable(elf.symbols)
                runner.hart.traceHook = { pc, word in
                    print(symbols.objdumpStyle(Disassembler.traceLine(pc: pc, word: word)))
                }
            }
            let start = VirtualClockHost.now()
            let outcome = runner.run(maxInstructions: maxInstructions)
            let seconds = Double(VirtualClockHost.now() - start) / 1e9
            if ProcessInfoLite.environment("RIVET_STATS") != nil {
                let mips = Double(runner.hart.instret) / seconds / 1e6
                fputs("rivet: \(runner.hart.instret) instructions in \(fixed(seconds, 3)) s (\(fixed(mips, 1)) MIPS)\n", stderr)
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
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            fputs("rivet: \(error)\n", stderr)
            throw ExitCode(3)
        }
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
