// Shared prologue, trap handlers and check macros for Rivet's ISA tests.
//
// Environment (rivet run-elf, or QEMU `-machine spike -bios none`): RAM at 0x8000_0000, one hart
// starting at _start in M-mode. The result goes to the HTIF `tohost` word: 1 = pass,
// (n << 1) | 1 = case n failed. The current case number lives in gp (TESTNUM).
//
// Register rules for test code:
//   gp      case number; set by every TEST_* macro and CASE().
//   tp      owned by the trap handlers (clobbered on any trap); also their mailbox in vectored tests.
//   t5, t6  scratch of the check macros.
//   mscratch/sscratch  used by the handlers: only touch them where no trap can happen.
//
// Case numbers must stay in 1..255: QEMU's HTIF turns (n << 1) | 1 into exit status n, and a
// process exit status keeps only 8 bits (case 256 would look like a pass).

#ifndef RIVET_TEST_H
#define RIVET_TEST_H

#define MSTATUS_SIE   (1 << 1)
#define MSTATUS_MIE   (1 << 3)
#define MSTATUS_SPIE  (1 << 5)
#define MSTATUS_UBE   (1 << 6)
#define MSTATUS_MPIE  (1 << 7)
#define MSTATUS_SPP   (1 << 8)
#define MSTATUS_VS    (3 << 9)
#define MSTATUS_MPP   (3 << 11)
#define MSTATUS_MPP_S (1 << 11)
#define MSTATUS_FS    (3 << 13)
#define MSTATUS_FS_INITIAL (1 << 13)
#define MSTATUS_FS_CLEAN   (2 << 13)
#define MSTATUS_FS_DIRTY   (3 << 13)
#define MSTATUS_XS    (3 << 15)
#define MSTATUS_MPRV  (1 << 17)
#define MSTATUS_SUM   (1 << 18)
#define MSTATUS_MXR   (1 << 19)
#define MSTATUS_TVM   (1 << 20)
#define MSTATUS_TW    (1 << 21)
#define MSTATUS_TSR   (1 << 22)
#define MSTATUS_UXL   (3 << 32)
#define MSTATUS_SXL   (3 << 34)
#define MSTATUS_SD    (1 << 63)

#define MIP_SSIP (1 << 1)
#define MIP_MSIP (1 << 3)
#define MIP_STIP (1 << 5)
#define MIP_MTIP (1 << 7)
#define MIP_SEIP (1 << 9)

#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS     1
#define CAUSE_ILLEGAL          2
#define CAUSE_BREAKPOINT       3
#define CAUSE_MISALIGNED_LOAD  4
#define CAUSE_LOAD_ACCESS      5
#define CAUSE_MISALIGNED_STORE 6
#define CAUSE_STORE_ACCESS     7
#define CAUSE_ECALL_U          8
#define CAUSE_ECALL_S          9
#define CAUSE_ECALL_M          11
#define CAUSE_FETCH_PAGE       12
#define CAUSE_LOAD_PAGE        13
#define CAUSE_STORE_PAGE       15
#define CAUSE_INT              (1 << 63)

// Layout of trap_area (written by both handlers).
#define TR_RESUME  0   // where the next synchronous trap continues (0 = trap is unexpected -> fail)
#define TR_MODE    8   // privilege to continue in (-1 = the trapping one; M handler: 0/1/3; S handler: 0/1)
#define TR_CAUSE   16  // last synchronous trap: cause (-1 = none since TRAP_ARM)
#define TR_EPC     24
#define TR_TVAL    32
#define TR_LEVEL   40  // 3 = taken in M, 1 = taken in S
#define TR_COUNT   48  // number of synchronous traps taken
#define TR_SAVE1   56
#define TR_SAVE2   64
#define TR_ICAUSE  72  // last interrupt: cause (with bit 63)
#define TR_ICOUNT  80  // number of interrupts taken
#define TR_ILEVEL  88  // 3 = taken in M, 1 = taken in S
#define TR_IEPC    96
#define TR_STATUS  104 // mstatus (M handler) or sstatus (S handler) as seen on trap entry
#define TR_SIZE    128

#define TESTNUM gp

// ---- check macros (clobber t5, t6; go to fail with the case number in gp) ----

#define CASE(n) li gp, n; .if (n) > 255; .error "case numbers must stay below 256"; .endif

// Fail unless register `reg` equals the 64-bit constant `val`.
#define CHECK(reg, val) li t6, val; beq reg, t6, 98f; j fail; 98:
// Fail unless two registers are equal.
#define CHECK_REG(a, b) beq a, b, 98f; j fail; 98:

#define TEST_RR(n, inst, exp, v1, v2) CASE(n); li a1, v1; li a2, v2; inst a3, a1, a2; CHECK(a3, exp)
#define TEST_RI(n, inst, exp, v1, imm) CASE(n); li a1, v1; inst a3, a1, imm; CHECK(a3, exp)
#define TEST_R(n, inst, exp, v1) CASE(n); li a1, v1; inst a3, a1; CHECK(a3, exp)
// Same, with the destination equal to the first source.
#define TEST_RR_SRC1(n, inst, exp, v1, v2) CASE(n); li a1, v1; li a2, v2; inst a1, a1, a2; CHECK(a1, exp)
#define TEST_RR_SRC2(n, inst, exp, v1, v2) CASE(n); li a1, v1; li a2, v2; inst a2, a1, a2; CHECK(a2, exp)

// ---- trap expectation ----

// The next synchronous trap continues at `label` in the privilege it came from.
#define TRAP_ARM(label) la t5, label; la t6, trap_area; sd t5, TR_RESUME(t6); li t5, -1; \
  sd t5, TR_MODE(t6); sd t5, TR_CAUSE(t6); sd t5, TR_TVAL(t6); sd zero, TR_LEVEL(t6)
// Same, but continue in privilege `mode` (0 U, 1 S, 3 M; the S handler accepts 0/1).
#define TRAP_ARM_MODE(label, mode) TRAP_ARM(label); li t5, mode; sd t5, TR_MODE(t6)
// Fail unless the armed trap happened with this cause; tval is returned in a0 for further checks.
#define TRAP_EXPECT_CAUSE(cause) la t6, trap_area; ld t5, TR_RESUME(t6); beqz t5, 97f; j fail; 97: \
  ld a0, TR_TVAL(t6); ld t5, TR_CAUSE(t6); CHECK(t5, cause)
// Either of two causes (e.g. misaligned vs access fault); tval in a0.
#define TRAP_EXPECT_EITHER(c1, c2) la t6, trap_area; ld t5, TR_RESUME(t6); beqz t5, 97f; j fail; 97: \
  ld a0, TR_TVAL(t6); ld t5, TR_CAUSE(t6); li t6, c1; beq t5, t6, 96f; li t6, c2; beq t5, t6, 96f; j fail; 96:
// Cause, tval and the privilege level that handled it (3 = M, 1 = S).
#define TRAP_EXPECT(cause, tval, level) TRAP_EXPECT_CAUSE(cause); CHECK(a0, tval); \
  la t6, trap_area; ld t5, TR_LEVEL(t6); CHECK(t5, level)
// Fail if any synchronous trap happened since TRAP_ARM; disarms.
#define TRAP_EXPECT_NONE la t6, trap_area; ld t5, TR_CAUSE(t6); sd zero, TR_RESUME(t6); CHECK(t5, -1)
// mtval of a breakpoint from ebreak: the spec lets it be 0 or the pc; Rivet writes the pc,
// QEMU 7.2 writes 0. tval in a0, pc in register `pcreg`.
#ifdef QEMU_ORACLE
#define CHECK_BREAK_TVAL(pcreg) CHECK(a0, 0)
#else
#define CHECK_BREAK_TVAL(pcreg) CHECK_REG(a0, pcreg)
#endif
// The instruction(s) given must raise illegal-instruction (taken in M) with mtval = the 32-bit
// encoding of the first one (assembled uncompressed). Works in any privilege mode.
#define TEST_ILLEGAL(n, ...) CASE(n); TRAP_ARM(1f); .option push; .option norvc; 2: __VA_ARGS__; .option pop; 1: TRAP_EXPECT_CAUSE(CAUSE_ILLEGAL); \
  la a1, 2b; lwu a1, 0(a1); CHECK_REG(a0, a1)
// Load the status register as the last trap handler saw it on entry.
#define TRAP_STATUS(reg) la t6, trap_area; ld reg, TR_STATUS(t6)
// Load the epc of the last trap into reg.
#define TRAP_EPC(reg) la t6, trap_area; ld reg, TR_EPC(t6)

// ---- privilege changes ----

// From M: continue at label in S or U.
#define GOTO_S(label) li t5, MSTATUS_MPP; csrc mstatus, t5; li t5, MSTATUS_MPP_S; csrs mstatus, t5; \
  la t5, label; csrw mepc, t5; mret
#define GOTO_U(label) li t5, MSTATUS_MPP; csrc mstatus, t5; la t5, label; csrw mepc, t5; mret
// From S: continue at label in U.
#define S_GOTO_U(label) li t5, MSTATUS_SPP; csrc sstatus, t5; la t5, label; csrw sepc, t5; sret
// From any mode (ecall not delegated): continue at label in M.
#define BACK_TO_M(label) TRAP_ARM_MODE(label, 3); ecall

// ---- floating point (results are checked as whole 64-bit registers, so single results must
// also be NaN-boxed) ----
#define FLI_S(freg, bits) li t5, bits; fmv.w.x freg, t5
#define FLI_D(freg, bits) li t5, bits; fmv.d.x freg, t5
#define FCHECK_S(freg, bits) fmv.x.d t5, freg; CHECK(t5, 0xffffffff00000000 | (bits))
#define FCHECK_D(freg, bits) fmv.x.d t5, freg; CHECK(t5, bits)
#define FFLAGS_IS(flags) csrr t5, fflags; CHECK(t5, flags)
#define FF_NV 0x10
#define FF_DZ 0x08
#define FF_OF 0x04
#define FF_UF 0x02
#define FF_NX 0x01

// fmt is S or D; rm is a rounding-mode operand (rne rtz rdn rup rmm dyn).
#define TEST_FP1(n, fmt, inst, rm, a, res, flags) CASE(n); FLI_##fmt(fa0, a); csrwi fflags, 0; \
  inst fa3, fa0, rm; FCHECK_##fmt(fa3, res); FFLAGS_IS(flags)
#define TEST_FP2(n, fmt, inst, rm, a, b, res, flags) CASE(n); FLI_##fmt(fa0, a); FLI_##fmt(fa1, b); \
  csrwi fflags, 0; inst fa3, fa0, fa1, rm; FCHECK_##fmt(fa3, res); FFLAGS_IS(flags)
// Two operands, no rounding mode (fmin/fmax/fsgnj*).
#define TEST_FP2N(n, fmt, inst, a, b, res, flags) CASE(n); FLI_##fmt(fa0, a); FLI_##fmt(fa1, b); \
  csrwi fflags, 0; inst fa3, fa0, fa1; FCHECK_##fmt(fa3, res); FFLAGS_IS(flags)
#define TEST_FP3(n, fmt, inst, rm, a, b, c, res, flags) CASE(n); FLI_##fmt(fa0, a); FLI_##fmt(fa1, b); \
  FLI_##fmt(fa2, c); csrwi fflags, 0; inst fa3, fa0, fa1, fa2, rm; FCHECK_##fmt(fa3, res); FFLAGS_IS(flags)
// Float compare -> integer.
#define TEST_FCMP(n, fmt, inst, a, b, res, flags) CASE(n); FLI_##fmt(fa0, a); FLI_##fmt(fa1, b); \
  csrwi fflags, 0; inst a3, fa0, fa1; CHECK(a3, res); FFLAGS_IS(flags)
// fclass -> integer.
#define TEST_FCLASS(n, fmt, inst, a, res) CASE(n); FLI_##fmt(fa0, a); inst a3, fa0; CHECK(a3, res)
// Float -> integer conversion.
#define TEST_FCVT_XF(n, fmt, inst, rm, a, res, flags) CASE(n); FLI_##fmt(fa0, a); csrwi fflags, 0; \
  inst a3, fa0, rm; CHECK(a3, res); FFLAGS_IS(flags)
// Integer -> float conversion (result format tofmt).
#define TEST_FCVT_FX(n, tofmt, inst, rm, x, res, flags) CASE(n); li a1, x; csrwi fflags, 0; \
  inst fa3, a1, rm; FCHECK_##tofmt(fa3, res); FFLAGS_IS(flags)
// Exact integer -> float conversion (fcvt.d.w/wu take no rounding mode).
#define TEST_FCVT_FX_EXACT(n, tofmt, inst, x, res, flags) CASE(n); li a1, x; csrwi fflags, 0; \
  inst fa3, a1; FCHECK_##tofmt(fa3, res); FFLAGS_IS(flags)
// Float -> float conversion.
#define TEST_FCVT_FF_EXACT(n, fromfmt, tofmt, inst, a, res, flags) CASE(n); FLI_##fromfmt(fa0, a); \
  csrwi fflags, 0; inst fa3, fa0; FCHECK_##tofmt(fa3, res); FFLAGS_IS(flags)
#define TEST_FCVT_FF(n, fromfmt, tofmt, inst, rm, a, res, flags) CASE(n); FLI_##fromfmt(fa0, a); \
  csrwi fflags, 0; inst fa3, fa0, rm; FCHECK_##tofmt(fa3, res); FFLAGS_IS(flags)

#define TEST_MAIN .text; .globl test_main; test_main:

// ---- prologue, handlers, pass/fail, mailbox ----

        .section .text.init, "ax"
        .globl _start
_start:
        la t0, m_trap_handler
        csrw mtvec, t0
        // Let S and U reach all of memory (PMP must grant something before lower modes run).
        li t0, -1
        csrw pmpaddr0, t0
        li t0, 0x1f                 // NAPOT, R W X
        csrw pmpcfg0, t0
        csrw satp, zero
        csrw medeleg, zero
        csrw mideleg, zero
        csrw mie, zero
        csrw mip, zero
        li t0, -1
        csrw mcounteren, t0
        csrw scounteren, t0
        la t0, s_trap_handler
        csrw stvec, t0
        li t0, MSTATUS_MPP | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR | MSTATUS_MIE | MSTATUS_SIE
        csrc mstatus, t0
        li t0, MSTATUS_FS_INITIAL
        csrs mstatus, t0
        csrwi fcsr, 0
        la t0, trap_area
        sd zero, TR_RESUME(t0)
        li t1, -1
        sd t1, TR_MODE(t0)
        sd t1, TR_CAUSE(t0)
        sd zero, TR_COUNT(t0)
        sd zero, TR_ICOUNT(t0)
        la sp, stack_top
        li gp, 0
        j test_main

        // Machine-mode trap handler. Synchronous traps: record cause/epc/tval and continue at
        // trap_area.resume (fail if none armed). Interrupts: record, silence the source, return.
        .align 6
        .globl m_trap_handler
m_trap_handler:
        csrw mscratch, t0
        li t0, MSTATUS_MPRV         // our own stores must not be translated
        csrrc t0, mstatus, t0
        la tp, trap_area
        sd t0, TR_STATUS(tp)
        sd t1, TR_SAVE1(tp)
        sd t2, TR_SAVE2(tp)
        csrr t0, mcause
        bltz t0, 2f
        sd t0, TR_CAUSE(tp)
        csrr t1, mepc
        sd t1, TR_EPC(tp)
        csrr t1, mtval
        sd t1, TR_TVAL(tp)
        li t1, 3
        sd t1, TR_LEVEL(tp)
        ld t1, TR_COUNT(tp)
        addi t1, t1, 1
        sd t1, TR_COUNT(tp)
        ld t0, TR_RESUME(tp)
        beqz t0, m_unexpected
        csrw mepc, t0
        sd zero, TR_RESUME(tp)
        ld t1, TR_MODE(tp)
        bltz t1, 1f
        li t2, MSTATUS_MPP
        csrc mstatus, t2
        slli t1, t1, 11
        csrs mstatus, t1
        li t1, -1
        sd t1, TR_MODE(tp)
1:      ld t1, TR_SAVE1(tp)
        ld t2, TR_SAVE2(tp)
        csrr t0, mscratch
        mret
2:      // interrupt
        sd t0, TR_ICAUSE(tp)
        csrr t1, mepc
        sd t1, TR_IEPC(tp)
        li t1, 3
        sd t1, TR_ILEVEL(tp)
        ld t1, TR_ICOUNT(tp)
        addi t1, t1, 1
        sd t1, TR_ICOUNT(tp)
        slli t0, t0, 1
        srli t0, t0, 1
        li t1, 1
        sll t1, t1, t0
        li t2, MIP_SSIP | MIP_STIP
        and t2, t2, t1
        beqz t2, 3f
        csrc mip, t2                // software-writable pending bit: clear it
        j 1b
3:      csrc mie, t1                // any other source: mask it so it cannot storm
        j 1b
m_unexpected:
        csrr t0, mscratch
        j fail

        // Supervisor-mode trap handler: same contract through sepc/scause/stval.
        .align 6
        .globl s_trap_handler
s_trap_handler:
        csrw sscratch, t0
        csrr t0, sstatus
        la tp, trap_area
        sd t0, TR_STATUS(tp)
        sd t1, TR_SAVE1(tp)
        sd t2, TR_SAVE2(tp)
        csrr t0, scause
        bltz t0, 2f
        sd t0, TR_CAUSE(tp)
        csrr t1, sepc
        sd t1, TR_EPC(tp)
        csrr t1, stval
        sd t1, TR_TVAL(tp)
        li t1, 1
        sd t1, TR_LEVEL(tp)
        ld t1, TR_COUNT(tp)
        addi t1, t1, 1
        sd t1, TR_COUNT(tp)
        ld t0, TR_RESUME(tp)
        beqz t0, s_unexpected
        csrw sepc, t0
        sd zero, TR_RESUME(tp)
        ld t1, TR_MODE(tp)
        bltz t1, 1f
        li t2, MSTATUS_SPP
        csrc sstatus, t2
        slli t1, t1, 8
        csrs sstatus, t1
        li t1, -1
        sd t1, TR_MODE(tp)
1:      ld t1, TR_SAVE1(tp)
        ld t2, TR_SAVE2(tp)
        csrr t0, sscratch
        sret
2:      sd t0, TR_ICAUSE(tp)
        csrr t1, sepc
        sd t1, TR_IEPC(tp)
        li t1, 1
        sd t1, TR_ILEVEL(tp)
        ld t1, TR_ICOUNT(tp)
        addi t1, t1, 1
        sd t1, TR_ICOUNT(tp)
        slli t0, t0, 1
        srli t0, t0, 1
        li t1, 1
        sll t1, t1, t0
        li t2, MIP_SSIP
        and t2, t2, t1
        beqz t2, 3f
        csrc sip, t2
        j 1b
3:      csrc sie, t1
        j 1b
s_unexpected:
        csrr t0, sscratch
        j fail

        .globl pass
pass:
        li a0, 1
        la t0, tohost
        sd a0, 0(t0)
1:      j 1b

        .globl fail
fail:
        bnez gp, 1f
        li gp, 255                  // never report "case 0": that would read as pass
1:      slli a0, gp, 1
        ori a0, a0, 1
        la t0, tohost
        sd a0, 0(t0)
2:      j 2b

        .section .tohost, "aw", @progbits
        .align 6
        .globl tohost
tohost: .dword 0
        .size tohost, 8
        .type tohost, @object
        .align 6
        .globl fromhost
fromhost: .dword 0
        .size fromhost, 8
        .type fromhost, @object

        .bss
        .align 6
        .globl trap_area
trap_area: .skip TR_SIZE
        .align 4
stack:  .skip 4096
stack_top:

        .text
#endif
