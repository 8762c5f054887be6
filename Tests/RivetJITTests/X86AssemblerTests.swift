import XCTest
@testable import RivetJIT

/// Every encoding the block compiler will use, checked against GNU objdump's decoding of the emitted bytes.
final class X86AssemblerTests: XCTestCase {
    typealias Case = (expected: String, emit: (inout X86Assembler) -> Void)

    let cases: [Case] = [
        // Register moves and immediates (REX.W, REX.R/REX.B for r8-r15, 32-bit forms).
        ("mov rax,rbx", { $0.mov(.rax, .rbx) }),
        ("mov r8,r15", { $0.mov(.r8, .r15) }),
        ("mov eax,r9d", { $0.mov(.rax, .r9, width: .bits32) }),
        ("mov eax,0x12345678", { $0.mov(.rax, immediate: 0x1234_5678) }),
        ("mov r10d,0xffffffff", { $0.mov(.r10, immediate: 0xFFFF_FFFF) }),
        ("mov rcx,0xffffffffffffff80", { $0.mov(.rcx, immediate: UInt64(bitPattern: -128)) }),
        ("movabs r11,0x123456789abcdef0", { $0.mov(.r11, immediate: 0x1234_5678_9ABC_DEF0) }),
        // Loads of every size and extension, with the bases that need special ModRM/SIB handling.
        ("mov rax,QWORD PTR [rbx+0x10]", { $0.load(.rax, X86Memory(.rbx, 0x10), bytes: 8, signed: false) }),
        ("mov rdx,QWORD PTR [r12+0x8]", { $0.load(.rdx, X86Memory(.r12, 8), bytes: 8, signed: true) }),
        ("mov rcx,QWORD PTR [rsp]", { $0.load(.rcx, X86Memory(.rsp), bytes: 8, signed: false) }),
        ("mov rsi,QWORD PTR [r13+0x0]", { $0.load(.rsi, X86Memory(.r13), bytes: 8, signed: false) }),
        ("mov r9,QWORD PTR [rbp+0x1000]", { $0.load(.r9, X86Memory(.rbp, 0x1000), bytes: 8, signed: false) }),
        ("mov rax,QWORD PTR [rbx-0x8]", { $0.load(.rax, X86Memory(.rbx, -8), bytes: 8, signed: false) }),
        ("mov r14,QWORD PTR [r15-0x12345]", { $0.load(.r14, X86Memory(.r15, -0x12345), bytes: 8, signed: false) }),
        ("mov eax,DWORD PTR [rdi+0x4]", { $0.load(.rax, X86Memory(.rdi, 4), bytes: 4, signed: false) }),
        ("movsxd rax,DWORD PTR [rdi+0x4]", { $0.load(.rax, X86Memory(.rdi, 4), bytes: 4, signed: true) }),
        ("movzx eax,WORD PTR [rdi+0x2]", { $0.load(.rax, X86Memory(.rdi, 2), bytes: 2, signed: false) }),
        ("movsx r12,WORD PTR [rdi+0x2]", { $0.load(.r12, X86Memory(.rdi, 2), bytes: 2, signed: true) }),
        ("movzx r8d,BYTE PTR [r14+0x1]", { $0.load(.r8, X86Memory(.r14, 1), bytes: 1, signed: false) }),
        ("movsx r15,BYTE PTR [rdi]", { $0.load(.r15, X86Memory(.rdi), bytes: 1, signed: true) }),
        // Stores, including the byte registers that need an empty REX prefix.
        ("mov QWORD PTR [rdi+0x100],rax", { $0.store(X86Memory(.rdi, 0x100), .rax, bytes: 8) }),
        ("mov DWORD PTR [r12],r13d", { $0.store(X86Memory(.r12), .r13, bytes: 4) }),
        ("mov WORD PTR [rdi+0x2],cx", { $0.store(X86Memory(.rdi, 2), .rcx, bytes: 2) }),
        ("mov BYTE PTR [rdi],sil", { $0.store(X86Memory(.rdi), .rsi, bytes: 1) }),
        ("mov BYTE PTR [r8+0x7f],r9b", { $0.store(X86Memory(.r8, 0x7F), .r9, bytes: 1) }),
        ("mov BYTE PTR [rax],bl", { $0.store(X86Memory(.rax), .rbx, bytes: 1) }),
        ("mov QWORD PTR [rbp+0x200],0xfffffffffffff000", { $0.store(X86Memory(.rbp, 0x200), immediate: -4096) }),
        ("lea rax,[rbx+0x8]", { $0.lea(.rax, X86Memory(.rbx, 8)) }),
        ("lea r11,[r12-0x80]", { $0.lea(.r11, X86Memory(.r12, -128)) }),
        // BMI2 rotate into another register (the TLB index computation), every REX-extension combination.
        ("rorx rcx,rsi,0x8", { $0.rotateRightCopy(.rcx, .rsi, by: 8) }),
        ("rorx r9,r13,0x8", { $0.rotateRightCopy(.r9, .r13, by: 8) }),
        ("rorx rax,r12,0x3f", { $0.rotateRightCopy(.rax, .r12, by: 63) }),
        ("rorx r15,rdi,0x1", { $0.rotateRightCopy(.r15, .rdi, by: 1) }),
        // Register extensions.
        ("movsxd rax,ecx", { $0.movsxd(.rax, .rcx) }),
        ("movsxd r10,r11d", { $0.movsxd(.r10, .r11) }),
        ("movsx rdx,sil", { $0.movsx(.rdx, .rsi, fromBytes: 1) }),
        ("movsx r10,r11w", { $0.movsx(.r10, .r11, fromBytes: 2) }),
        ("movzx eax,dil", { $0.movzx(.rax, .rdi, fromBytes: 1) }),
        ("movzx ecx,al", { $0.movzx(.rcx, .rax, fromBytes: 1) }),
        ("movzx r9d,r10w", { $0.movzx(.r9, .r10, fromBytes: 2) }),
        // Arithmetic: register, memory and immediate forms.
        ("add rax,rbx", { $0.add(.rax, .rbx) }),
        ("sub r8,r9", { $0.sub(.r8, .r9) }),
        ("and ecx,edx", { $0.and(.rcx, .rdx, width: .bits32) }),
        ("or r15,rax", { $0.or(.r15, .rax) }),
        ("xor esi,esi", { $0.xor(.rsi, .rsi, width: .bits32) }),
        ("cmp rdi,r12", { $0.cmp(.rdi, .r12) }),
        ("add rax,QWORD PTR [rbx+0x18]", { $0.alu(.add, .rax, X86Memory(.rbx, 0x18)) }),
        ("sub r10d,DWORD PTR [rdi+0x8]", { $0.alu(.sub, .r10, X86Memory(.rdi, 8), width: .bits32) }),
        ("xor rcx,QWORD PTR [r15+0xf8]", { $0.alu(.xor, .rcx, X86Memory(.r15, 0xF8)) }),
        ("cmp rdx,QWORD PTR [rsp+0x10]", { $0.alu(.cmp, .rdx, X86Memory(.rsp, 0x10)) }),
        ("add rax,0x7f", { $0.alu(.add, .rax, immediate: 0x7F) }),
        ("sub rax,0xffffffffffffff80", { $0.alu(.sub, .rax, immediate: -128) }),
        ("and ecx,0xfffffff0", { $0.alu(.and, .rcx, immediate: -16, width: .bits32) }),
        ("add r9,0x12345", { $0.alu(.add, .r9, immediate: 0x12345) }),
        ("cmp r12d,0x1000", { $0.alu(.cmp, .r12, immediate: 0x1000, width: .bits32) }),
        ("or r13,0xffffffffffff0000", { $0.alu(.or, .r13, immediate: -0x10000) }),
        ("test rax,rax", { $0.test(.rax, .rax) }),
        ("test r8d,r9d", { $0.test(.r8, .r9, width: .bits32) }),
        ("imul rax,rcx", { $0.imul(.rax, .rcx) }),
        ("imul r12d,r13d", { $0.imul(.r12, .r13, width: .bits32) }),
        ("neg rdx", { $0.neg(.rdx) }),
        ("not r11d", { $0.not(.r11, width: .bits32) }),
        ("shl rax,0x3", { $0.shift(.shl, .rax, by: 3) }),
        ("shr r9d,0x1f", { $0.shift(.shr, .r9, by: 31, width: .bits32) }),
        ("sar r15,0x3f", { $0.shift(.sar, .r15, by: 63) }),
        ("shl rdx,cl", { $0.shiftByCL(.shl, .rdx) }),
        ("shr rsi,cl", { $0.shiftByCL(.shr, .rsi) }),
        ("sar r8d,cl", { $0.shiftByCL(.sar, .r8, width: .bits32) }),
        // Scaled-index addressing (REX.X for r8-r15 as index; rbp/r13 bases keep a displacement).
        ("mov rax,QWORD PTR [rbx+rcx*8+0x10]", { $0.load(.rax, X86Memory(.rbx, index: .rcx, scale: 8, 0x10), bytes: 8, signed: false) }),
        ("mov r8,QWORD PTR [r13+r14*1+0x0]", { $0.load(.r8, X86Memory(.r13, index: .r14, scale: 1), bytes: 8, signed: false) }),
        ("lea rdx,[rdi+r12*4-0x4]", { $0.lea(.rdx, X86Memory(.rdi, index: .r12, scale: 4, -4)) }),
        ("mov QWORD PTR [rsp+rax*2],rdx", { $0.store(X86Memory(.rsp, index: .rax, scale: 2), .rdx, bytes: 8) }),
        ("movzx ecx,BYTE PTR [r9+r10*1+0x12345]", { $0.load(.rcx, X86Memory(.r9, index: .r10, scale: 1, 0x12345), bytes: 1, signed: false) }),
        // Multiply high, divide, selects.
        ("cqo", { $0.signExtendAccumulator() }),
        ("cdq", { $0.signExtendAccumulator(width: .bits32) }),
        ("mul r8", { $0.mul(.r8) }),
        ("imul rsi", { $0.imul(.rsi) }),
        ("div rcx", { $0.div(.rcx) }),
        ("idiv r9d", { $0.idiv(.r9, width: .bits32) }),
        ("cmovl rax,rcx", { $0.cmov(.less, .rax, .rcx) }),
        ("cmovne r8d,r9d", { $0.cmov(.notEqual, .r8, .r9, width: .bits32) }),
        // Atomics and fences.
        ("lock cmpxchg QWORD PTR [rdi+0x8],rcx", { $0.lockCmpxchg(X86Memory(.rdi, 8), .rcx) }),
        ("lock cmpxchg DWORD PTR [r12+rbx*1],r11d", { $0.lockCmpxchg(X86Memory(.r12, index: .rbx, scale: 1), .r11, width: .bits32) }),
        ("lock xadd DWORD PTR [r12],eax", { $0.lockXadd(X86Memory(.r12), .rax, width: .bits32) }),
        ("lock xadd QWORD PTR [rsi],r15", { $0.lockXadd(X86Memory(.rsi), .r15) }),
        ("xchg QWORD PTR [rbx],r10", { $0.xchg(X86Memory(.rbx), .r10) }),
        ("mfence", { $0.mfence() }),
        // Flags to registers.
        ("setl al", { $0.set(.less, .rax) }),
        ("setb sil", { $0.set(.below, .rsi) }),
        ("sete r10b", { $0.set(.equal, .r10) }),
        ("setne bl", { $0.set(.notEqual, .rbx) }),
        ("setge dil", { $0.set(.greaterOrEqual, .rdi) }),
        ("setae r15b", { $0.set(.aboveOrEqual, .r15) }),
        // Indirect control flow and the stack.
        ("jmp rax", { $0.jump(.rax) }),
        ("jmp r11", { $0.jump(.r11) }),
        ("call rdx", { $0.call(.rdx) }),
        ("call r11", { $0.call(.r11) }),
        ("push rbx", { $0.push(.rbx) }),
        ("push r12", { $0.push(.r12) }),
        ("pop r15", { $0.pop(.r15) }),
        ("pop rbp", { $0.pop(.rbp) }),
        ("ret", { $0.ret() }),
    ]

    func testEncodingsMatchObjdump() throws {
        var assembler = X86Assembler()
        var starts: [Int] = []
        for entry in cases {
            starts.append(assembler.offset)
            entry.emit(&assembler)
        }
        let code = assembler.finish()
        let decoded = try objdump(code)
        // objdump must find exactly our instruction boundaries: a wrong length would shift every later line.
        XCTAssertEqual(decoded.map(\.offset), starts)
        for (index, entry) in cases.enumerated() where index < decoded.count {
            let end = index + 1 < starts.count ? starts[index + 1] : code.count
            XCTAssertEqual(decoded[index].text, entry.expected, "instruction \(index) at offset \(starts[index])")
            XCTAssertEqual(decoded[index].length, end - starts[index], "length of \(entry.expected)")
        }
    }

    /// Padding to a loop head: every length from 1 to 63 bytes decodes as whole NOPs ending on the boundary.
    func testAlignmentPaddingIsWholeNops() throws {
        for start in 1..<64 {
            var assembler = X86Assembler()
            for _ in 0..<start { assembler.ret() }
            assembler.alignWithNops(to: 64)
            XCTAssertEqual(assembler.offset, 64, "padding from \(start)")
            let decoded = try objdump(assembler.finish()).dropFirst(start)
            XCTAssertEqual(decoded.map(\.length).reduce(0, +), assembler.offset - start)
            for line in decoded { XCTAssertTrue(line.text.hasPrefix("nop") || line.text.hasPrefix("xchg ax,ax"), "\(line.text) at padding from \(start)") }
        }
    }

    /// Every register in every operand slot: the REX bits and ModRM fields for all 16x16 pairs.
    func testAllRegisterPairs() throws {
        let names64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]
        var assembler = X86Assembler()
        var expected: [String] = []
        for dst in X86Register.allCases {
            for src in X86Register.allCases {
                assembler.add(dst, src)
                expected.append("add \(names64[Int(dst.rawValue)]),\(names64[Int(src.rawValue)])")
                assembler.load(dst, X86Memory(src, 0x40), bytes: 8, signed: false)
                expected.append("mov \(names64[Int(dst.rawValue)]),QWORD PTR [\(names64[Int(src.rawValue)])+0x40]")
            }
        }
        let decoded = try objdump(assembler.finish()).map(\.text)
        XCTAssertEqual(decoded.count, expected.count)
        // Element by element, so a failure names the few wrong encodings rather than printing 512 lines twice.
        for (got, want) in zip(decoded, expected) where got != want { XCTFail("objdump decoded \(got), expected \(want)") }
    }

    /// Jumps and calls to labels bound before and after them get rel32 displacements that reach the label.
    func testLabelsResolveForwardAndBackward() throws {
        var assembler = X86Assembler()
        let back = assembler.makeLabel()
        let forward = assembler.makeLabel()
        assembler.bind(back)                           // 0x0
        assembler.jump(if: .notEqual, to: forward)     // 0x0, 6 bytes
        assembler.jump(to: forward)                    // 0x6, 5 bytes
        assembler.call(forward)                        // 0xb, 5 bytes
        assembler.jump(if: .less, to: back)            // 0x10, 6 bytes
        assembler.bind(forward)                        // 0x16
        assembler.jump(to: back)                       // 0x16
        assembler.call(back)                           // 0x1b
        assembler.jump(displacement: 0x100)            // 0x20 -> 0x25 + 0x100
        assembler.call(displacement: -0x25 - 5)        // 0x25 -> 0x0
        assembler.ret()
        let text = try objdump(assembler.finish()).map(\.text)
        XCTAssertEqual(text, ["jne 0x16", "jmp 0x16", "call 0x16", "jl 0x0", "jmp 0x0", "call 0x0", "jmp 0x125", "call 0x0", "ret"])
    }
}
