import RivetCPU
/// What the GDB stub debugs: the harts of a `virt` machine (rivet run) or the threads of a process
/// (rivet user). Calls come from the stub's thread; implementations hand them to whoever owns the harts.

/// gdb's RISC-V register numbers: x0-x31 0-31, pc 32, f0-f31 33-64, CSR n at 65 + n, priv after the CSRs.
public enum GDBRegister {
    public static let pc = 32
    public static let firstFloat = 33
    public static let firstCSR = 65
    public static let priv = 65 + 4096
}

/// A breakpoint or watchpoint as the Z/z packets name it (type 0 software, 1 hardware, 2 write,
/// 3 read, 4 access).
public struct GDBPoint: Equatable {
    public var type: Int
    public var address: UInt64
    public var length: UInt64
    public init(type: Int, address: UInt64, length: UInt64) { self.type = type; self.address = address; self.length = length }
}

/// Why the target stopped, for the stop reply.
public enum GDBStopReason: Equatable {
    case signal(UInt8)                          // SIGINT 2 (interrupt), SIGTRAP 5 (breakpoint, step), ...
    case watch(kind: Int, address: UInt64)      // Z type 2, 3 or 4
    case exited(code: UInt8)
    case killed(signal: UInt8)
}

public struct GDBStop: Equatable {
    public var thread: Int
    public var reason: GDBStopReason
    public init(thread: Int, reason: GDBStopReason) { self.thread = thread; self.reason = reason }
}

public protocol GDBTarget: AnyObject {
    /// Thread ids (1-based, ascending).
    func threadIDs() -> [Int]
    /// What `info threads` shows beside a thread ("hart 0", "tid 1234").
    func threadName(_ thread: Int) -> String
    /// The target description (target.xml).
    var targetXML: String { get }
    /// A register's value, or nil if the thread or register does not exist.
    func readRegister(thread: Int, number: Int) -> UInt64?
    func writeRegister(thread: Int, number: Int, value: UInt64) -> Bool
    /// Virtual memory as `thread` sees it; may return fewer bytes than asked (unmapped).
    func readMemory(thread: Int, address: UInt64, length: Int) -> [UInt8]
    func writeMemory(thread: Int, address: UInt64, bytes: [UInt8]) -> Bool
    /// Breakpoints and watchpoints (shared by all threads).
    func setPoint(_ point: GDBPoint, inserted: Bool) -> Bool
    /// Stops everything (called when gdb attaches); returns the stop to report for `?`.
    func attach() -> GDBStop
    /// Whether the target was running when gdb last attached (it runs on when gdb goes away).
    var wasRunningAtAttach: Bool { get }
    /// Continues; `step` names a thread that executes one instruction and stops. Returns at once;
    /// `stopHandler` is called (any thread) when the target stops again.
    func resume(step: Int?)
    var stopHandler: (() -> Void)? { get set }
    /// The stop since the last resume, if it happened.
    func takeStop() -> GDBStop?
    /// Asks a running target to stop (Ctrl-C); a stop with SIGINT follows.
    func interrupt()
    /// Removes all points and lets the target run on without a debugger. `resume` false (gdb went away
    /// without detaching and never continued the target) leaves a paused target paused.
    func detach(resume: Bool)
    /// Ends the target (gdb's kill).
    func kill()
    /// `monitor` commands (qRcmd): the text to print, or nil for an unknown command.
    func monitor(_ command: String, thread: Int) -> String?
}

/// Builds the target description gdb-multiarch reads through qXfer:features:read:target.xml.
public enum GDBTargetDescription {
    static let abiNames = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1", "a0", "a1", "a2", "a3",
                           "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
                           "t3", "t4", "t5", "t6"]
    static let floatNames = ["ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "fs0", "fs1", "fa0", "fa1",
                             "fa2", "fa3", "fa4", "fa5", "fa6", "fa7", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7",
                             "fs8", "fs9", "fs10", "fs11", "ft8", "ft9", "ft10", "ft11"]
    /// The CSRs shown in system mode (name, number).
    public static let systemCSRs: [(String, Int)] = [
        CSR.sstatus, CSR.sie, CSR.stvec, CSR.scounteren, CSR.sscratch, CSR.sepc, CSR.scause, CSR.stval, CSR.sip, CSR.satp,
        CSR.mstatus, CSR.misa, CSR.medeleg, CSR.mideleg, CSR.mie, CSR.mtvec, CSR.mcounteren, CSR.mscratch, CSR.mepc,
        CSR.mcause, CSR.mtval, CSR.mip, CSR.mhartid, CSR.cycle, CSR.time, CSR.instret,
    ].map { (CSR.name(of: $0)!, $0) }  // names from the CSR table (RivetISA's CSRTable, generated into RivetCPU)

    /// `system`: add the CSR feature and the `priv` virtual register (rivet run); a process gets the
    /// core and FPU only (rivet user).
    public static func xml(system: Bool) -> String {
        var s = """
        <?xml version="1.0"?>
        <!DOCTYPE target SYSTEM "gdb-target.dtd">
        <target version="1.0">
        <architecture>riscv:rv64</architecture>
        <feature name="org.gnu.gdb.riscv.cpu">

        """
        for (i, n) in abiNames.enumerated() {
            let type = i == 1 ? "code_ptr" : (i == 2 || i == 8 ? "data_ptr" : "int")
            s += "<reg name=\"\(n)\" bitsize=\"64\" type=\"\(type)\" regnum=\"\(i)\"/>\n"
        }
        s += "<reg name=\"pc\" bitsize=\"64\" type=\"code_ptr\" regnum=\"32\"/>\n</feature>\n"
        s += "<feature name=\"org.gnu.gdb.riscv.fpu\">\n"
        s += "<union id=\"riscv_double\"><field name=\"float\" type=\"ieee_single\"/><field name=\"double\" type=\"ieee_double\"/></union>\n"
        for (i, n) in floatNames.enumerated() {
            s += "<reg name=\"\(n)\" bitsize=\"64\" type=\"riscv_double\" regnum=\"\(GDBRegister.firstFloat + i)\"/>\n"
        }
        s += "<reg name=\"fflags\" bitsize=\"32\" type=\"int\" regnum=\"66\"/>\n"
        s += "<reg name=\"frm\" bitsize=\"32\" type=\"int\" regnum=\"67\"/>\n"
        s += "<reg name=\"fcsr\" bitsize=\"32\" type=\"int\" regnum=\"68\"/>\n</feature>\n"
        if system {
            s += "<feature name=\"org.gnu.gdb.riscv.csr\">\n"
            for (n, number) in systemCSRs {
                s += "<reg name=\"\(n)\" bitsize=\"64\" type=\"int\" regnum=\"\(GDBRegister.firstCSR + number)\"/>\n"
            }
            s += "</feature>\n<feature name=\"org.gnu.gdb.riscv.virtual\">\n"
            s += "<reg name=\"priv\" bitsize=\"64\" type=\"int\" regnum=\"\(GDBRegister.priv)\"/>\n</feature>\n"
        }
        s += "</target>\n"
        return s
    }

    /// The size in bytes of register `number` on the wire (fflags, frm, fcsr are 32-bit; others 64).
    public static func size(of number: Int) -> Int { (66...68).contains(number) ? 4 : 8 }
}
