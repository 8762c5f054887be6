// Zicsr: csrrw/csrrs/csrrc and the immediate forms (old value returned, new value written),
// rs1 = x0 / uimm = 0 forms that must not write (legal on read-only CSRs), writes to read-only
// CSRs and accesses to nonexistent CSRs trapping with mtval = the instruction, privilege checks
// (S touching M CSRs, U touching S CSRs), misa/mhartid/mvendorid, sstatus as a view of mstatus,
// and the fcsr/frm/fflags aliases.
#include "rivet_test.h"


TEST_MAIN
        // ---- register forms on mscratch ----
        CASE(1)
        li a1, 0x0123456789abcdef
        csrw mscratch, a1
        csrr a2, mscratch
        CHECK_REG(a1, a2)
        CASE(2)
        li a3, 0xfedcba9876543210
        csrrw a2, mscratch, a3          // returns old, writes new
        CHECK(a2, 0x0123456789abcdef)
        csrr a2, mscratch
        CHECK(a2, 0xfedcba9876543210)
        CASE(3)
        li a3, 0x0f
        csrrs a2, mscratch, a3
        CHECK(a2, 0xfedcba9876543210)
        csrr a2, mscratch
        CHECK(a2, 0xfedcba987654321f)
        CASE(4)
        li a3, 0xff00000000000000
        csrrc a2, mscratch, a3
        CHECK(a2, 0xfedcba987654321f)
        csrr a2, mscratch
        CHECK(a2, 0x00dcba987654321f)
        CASE(5)                         // rd = rs1: old value out, register value in
        li a2, 5
        csrrw a2, mscratch, a2
        CHECK(a2, 0x00dcba987654321f)
        csrr a2, mscratch
        CHECK(a2, 5)
        CASE(6)                         // rd = x0: write only
        li a2, 77
        csrrw x0, mscratch, a2
        csrr a3, mscratch
        CHECK(a3, 77)

        // ---- immediate forms ----
        CASE(10)
        csrrwi a2, mscratch, 31
        CHECK(a2, 77)
        csrr a2, mscratch
        CHECK(a2, 31)
        CASE(11)
        csrrci a2, mscratch, 0x5
        CHECK(a2, 31)
        csrr a2, mscratch
        CHECK(a2, 26)
        CASE(12)
        csrrsi a2, mscratch, 0x11       // uimm is zero-extended, not sign-extended
        CHECK(a2, 26)
        csrr a2, mscratch
        CHECK(a2, 27)
        CASE(13)
        csrrwi a2, mscratch, 0
        csrr a2, mscratch
        CHECK(a2, 0)

        // ---- reads that must not write: legal on read-only CSRs ----
        CASE(20)
        csrrs a2, mhartid, x0
        CHECK(a2, 0)
        CASE(21)
        csrrc a2, mvendorid, x0
        csrrsi a2, marchid, 0
        csrrci a2, mimpid, 0
        csrr a2, cycle
        CASE(22)
        csrr a2, misa
        srli a3, a2, 62
        CHECK(a3, 2)                    // MXL = 64
        li a4, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20)
        and a3, a2, a4                  // A C D F I M S U
        CHECK_REG(a3, a4)

        // ---- writes to read-only CSRs trap, even when the value is 0 ----
        TEST_ILLEGAL(30, csrw mhartid, a1)
        TEST_ILLEGAL(31, csrrs a2, mvendorid, sp)
        TEST_ILLEGAL(32, csrrwi a2, marchid, 0)
        TEST_ILLEGAL(33, csrrsi a2, mimpid, 1)
        TEST_ILLEGAL(34, csrrc a2, mhartid, a1)
        TEST_ILLEGAL(35, csrw cycle, x0)          // csrrw always writes, even from x0
        TEST_ILLEGAL(36, csrw instret, a1)
        CASE(37)                        // a trapped write leaves rd unchanged
        li a2, 0x1234
        TRAP_ARM(1f)
        csrrw a2, mhartid, x0
1:      TRAP_EXPECT_CAUSE(CAUSE_ILLEGAL)
        CHECK(a2, 0x1234)

        // ---- nonexistent CSRs trap (read or write) ----
        TEST_ILLEGAL(40, csrr a2, 0x0ff)
        TEST_ILLEGAL(41, csrr a2, 0x3ff)
        TEST_ILLEGAL(42, csrw 0x0ff, a1)
        TEST_ILLEGAL(43, csrrs a2, 0x7ff, x0)

        // ---- sstatus is a restricted view of mstatus ----
        CASE(50)
        li a1, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR
        csrs sstatus, a1
        csrr a2, mstatus
        and a2, a2, a1
        CHECK_REG(a2, a1)
        csrc mstatus, a1
        csrr a2, sstatus
        and a2, a2, a1
        CHECK(a2, 0)
        CASE(51)                        // M-only fields are invisible and unwritable through sstatus
        li a1, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP | MSTATUS_MPRV | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR
        csrs mstatus, a1
        csrr a2, sstatus
        and a2, a2, a1
        CHECK(a2, 0)
        csrc sstatus, a1                // no effect on the M fields
        csrr a2, mstatus
        li a3, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR | MSTATUS_MPRV
        and a2, a2, a3
        CHECK_REG(a2, a3)
        csrc mstatus, a1
        CASE(52)                        // sie/sip are views of mie/mip through mideleg
        li a1, MIP_SSIP
        csrs mideleg, a1
        csrs sie, a1
        csrr a2, mie
        andi a2, a2, MIP_SSIP
        CHECK(a2, MIP_SSIP)
        csrc mie, a1
        csrr a2, sie
        CHECK(a2, 0)
        csrc mideleg, a1
        CASE(53)                        // mstatus.FS: dirty after an FP write, SD set
        li a1, MSTATUS_FS
        csrc mstatus, a1
        li a1, MSTATUS_FS_INITIAL
        csrs mstatus, a1
        fmv.w.x fa0, x0
        csrr a2, mstatus
        li a3, MSTATUS_FS
        and a3, a2, a3
        CHECK(a3, MSTATUS_FS_DIRTY)
        bltz a2, 1f                     // SD is bit 63
        j fail
1:      csrr a2, sstatus
        bltz a2, 2f                     // also visible in sstatus
        j fail
2:
        // ---- fcsr = frm << 5 | fflags ----
        CASE(60)
        li a1, 0xff
        csrw fcsr, a1
        csrr a2, fflags
        CHECK(a2, 0x1f)
        csrr a2, frm
        CHECK(a2, 7)
        CASE(61)
        csrwi frm, 3
        csrr a2, fcsr
        CHECK(a2, 0x7f)
        csrwi fflags, 0x5
        csrr a2, fcsr
        CHECK(a2, 0x65)
        CASE(62)
        li a1, -1                       // bits above 7 are read-only zero
        csrw fcsr, a1
        csrr a2, fcsr
        CHECK(a2, 0xff)
        csrrci a2, fflags, 0x1f
        CHECK(a2, 0x1f)
        csrr a2, fcsr
        CHECK(a2, 0xe0)
        csrwi fcsr, 0

        // ---- privilege: S cannot touch M CSRs, U cannot touch S CSRs ----
        GOTO_S(1f)
1:      TEST_ILLEGAL(70, csrr a2, mstatus)
        TEST_ILLEGAL(71, csrw mscratch, a1)
        TEST_ILLEGAL(72, csrr a2, mhartid)
        TEST_ILLEGAL(73, csrr a2, misa)
        CASE(74)                        // S can use its own CSRs
        li a1, 0x5a5a
        csrw sscratch, a1
        csrr a2, sscratch
        CHECK(a2, 0x5a5a)
        csrr a2, sstatus
        S_GOTO_U(1f)
1:      TEST_ILLEGAL(75, csrr a2, sstatus)
        TEST_ILLEGAL(76, csrw sscratch, a1)
        TEST_ILLEGAL(77, csrr a2, mscratch)
        TEST_ILLEGAL(78, csrr a2, satp)
        CASE(79)                        // U can use fcsr and the counters (mcounteren/scounteren = all)
        csrr a2, fcsr
        csrr a2, cycle
        csrr a2, instret
        BACK_TO_M(1f)
1:      TRAP_EXPECT_CAUSE(CAUSE_ECALL_U)

        j pass
