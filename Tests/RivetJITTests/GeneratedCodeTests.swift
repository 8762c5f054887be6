import XCTest
@testable import RivetJIT

/// Code emitted by X86Assembler into ExecutableMemory, called from Swift through a C function pointer.
final class GeneratedCodeTests: XCTestCase {
    typealias BlockFunction = @convention(c) (UnsafeMutableRawPointer) -> UInt64

    /// The proof that generated code runs: x3 = x1 + x2 on a guest register file at fixed offsets from the
    /// base pointer passed in rdi (the System V first argument), returning the sum in rax.
    func testGeneratedCodeAddsTwoGuestRegisters() throws {
        let memory = try ExecutableMemory(capacity: 4096)
        var assembler = X86Assembler()
        assembler.load(.rax, X86Memory(.rdi, 1 * 8), bytes: 8, signed: false)
        assembler.alu(.add, .rax, X86Memory(.rdi, 2 * 8))
        assembler.store(X86Memory(.rdi, 3 * 8), .rax, bytes: 8)
        assembler.ret()
        let entry = try XCTUnwrap(memory.install(assembler.finish()))
        let block = unsafeBitCast(entry, to: BlockFunction.self)

        var registers = [UInt64](repeating: 0, count: 32)
        registers[1] = 0xFFFF_FFFF_FFFF_FFF0
        registers[2] = 0x25
        let result = registers.withUnsafeMutableBytes { block($0.baseAddress!) }
        XCTAssertEqual(result, 0x15, "the sum wraps modulo 2^64 as RISC-V add does")
        XCTAssertEqual(registers[3], 0x15)
        XCTAssertEqual(registers[1], 0xFFFF_FFFF_FFFF_FFF0)
        XCTAssertEqual(registers[2], 0x25)
    }

    /// Labels, a conditional branch and callee-saved registers in running code: x10 = 1 + 2 + ... + x11,
    /// then the cache is flushed and different code installed at the same address runs.
    func testGeneratedLoopRunsAndCodeIsReplacedAfterReset() throws {
        let memory = try ExecutableMemory(capacity: 4096)
        var assembler = X86Assembler()
        let loop = assembler.makeLabel()
        let done = assembler.makeLabel()
        assembler.push(.rbx)
        assembler.push(.r12)
        assembler.load(.rbx, X86Memory(.rdi, 11 * 8), bytes: 8, signed: false)
        assembler.xor(.r12, .r12)
        assembler.bind(loop)
        assembler.test(.rbx, .rbx)
        assembler.jump(if: .equal, to: done)
        assembler.add(.r12, .rbx)
        assembler.alu(.sub, .rbx, immediate: 1)
        assembler.jump(to: loop)
        assembler.bind(done)
        assembler.store(X86Memory(.rdi, 10 * 8), .r12, bytes: 8)
        assembler.mov(.rax, .r12)
        assembler.pop(.r12)
        assembler.pop(.rbx)
        assembler.ret()
        let entry = try XCTUnwrap(memory.install(assembler.finish()))
        var registers = [UInt64](repeating: 0, count: 32)
        registers[11] = 1000
        let sum = registers.withUnsafeMutableBytes { unsafeBitCast(entry, to: BlockFunction.self)($0.baseAddress!) }
        XCTAssertEqual(sum, 500_500)
        XCTAssertEqual(registers[10], 500_500)

        memory.reset()
        var replacement = X86Assembler()
        replacement.mov(.rax, immediate: 0x1234_5678_9ABC_DEF0)
        replacement.ret()
        let again = try XCTUnwrap(memory.install(replacement.finish()))
        XCTAssertEqual(again, entry)
        XCTAssertEqual(registers.withUnsafeMutableBytes { unsafeBitCast(again, to: BlockFunction.self)($0.baseAddress!) },
                       0x1234_5678_9ABC_DEF0)
    }

    /// The one-operand multiply's high half (RISC-V mulh) and an atomic add (amoadd.d) in running code:
    /// x5 = mulh(x6, x7), x8 = the old value of x9 after x9 += x10 under lock.
    func testGeneratedMultiplyHighAndAtomicAdd() throws {
        let memory = try ExecutableMemory(capacity: 4096)
        var assembler = X86Assembler()
        assembler.load(.rax, X86Memory(.rdi, 6 * 8), bytes: 8, signed: false)
        assembler.load(.rcx, X86Memory(.rdi, 7 * 8), bytes: 8, signed: false)
        assembler.imul(.rcx)
        assembler.store(X86Memory(.rdi, 5 * 8), .rdx, bytes: 8)
        assembler.load(.rax, X86Memory(.rdi, 10 * 8), bytes: 8, signed: false)
        assembler.mov(.rdx, immediate: 9 * 8)
        assembler.lockXadd(X86Memory(.rdi, index: .rdx, scale: 1), .rax)
        assembler.store(X86Memory(.rdi, 8 * 8), .rax, bytes: 8)
        assembler.ret()
        let entry = try XCTUnwrap(memory.install(assembler.finish()))
        var registers = [UInt64](repeating: 0, count: 32)
        registers[6] = UInt64(bitPattern: -3)
        registers[7] = 0x8000_0000_0000_0000
        registers[9] = 100
        registers[10] = 23
        _ = registers.withUnsafeMutableBytes { unsafeBitCast(entry, to: BlockFunction.self)($0.baseAddress!) }
        XCTAssertEqual(registers[5], 1, "(-3) * (-2^63) = 3 * 2^63: high 64 bits are 1")
        XCTAssertEqual(registers[8], 100)
        XCTAssertEqual(registers[9], 123)
    }
}
