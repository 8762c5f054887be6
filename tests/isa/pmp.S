// Physical memory protection: WARL fields, no-match rules for M and S/U, OFF/TOR/NA4/NAPOT matching,
// priority, partial matches, the M-mode exemption (and MPRV), TLB flushes on PMP writes, fetches from
// pages that rules split, page-table walks and A/D updates checked as S-mode accesses, and lock bits
// (last: a lock lasts until reset). Access faults must carry the right cause and tval.
// Rivet implements 16 entries with 4-byte granularity, as QEMU's virt machine does.
#include "rivet_test.h"

#define PMP_R 0x01
#define PMP_W 0x02
#define PMP_X 0x04
#define PMP_TOR 0x08
#define PMP_NA4 0x10
#define PMP_NAPOT 0x18
#define PMP_L 0x80

// Set the configuration byte of entry n (0-7 in pmpcfg0, 8-15 in pmpcfg2).
#define CFG0(n, cfg) li t0, 0xff << (8 * (n)); csrc pmpcfg0, t0; li t0, (cfg) << (8 * (n)); csrs pmpcfg0, t0
// pmpaddr value of a NAPOT region of `size` bytes at `label` (label must be size-aligned).
#define NAPOT(reg, label, size) la reg, label; srli reg, reg, 2; ori reg, reg, ((size) / 8 - 1)
// Every entry off except entry 15: all memory, R W X, the lowest priority.
#define PMP_BASE csrw pmpcfg0, zero; li t0, PMP_NAPOT | PMP_R | PMP_W | PMP_X; slli t0, t0, 56; csrw pmpcfg2, t0; \
  li t0, -1; csrw pmpaddr15, t0
// a1 = label + offset
#define ADDR(reg, label, off) la reg, label; li t0, off; add reg, reg, t0
// The load/store must fault with `cause` and tval = the address in a1 (continues in the same mode).
#define EXPECT_FAULT(n, cause, ...) CASE(n); TRAP_ARM(1f); __VA_ARGS__; 1: TRAP_EXPECT_CAUSE(cause); CHECK_REG(a0, a1)

TEST_MAIN
        // ---- WARL fields ----
        CASE(1)                             // reserved bits 5-6 read as zero; W without R is reserved
        li t0, 0x7a                         // W, NAPOT, bits 5 and 6
        csrw pmpcfg0, t0
        csrr a2, pmpcfg0
#ifndef QEMU_ORACLE
        CHECK(a2, 0x18)                     // QEMU 7.2 keeps W without R
#endif
        CASE(2)                             // every field of an unlocked entry holds its value
        li t0, 0x1f1d1b19110f0b09
        csrw pmpcfg0, t0
        csrr a2, pmpcfg0
        CHECK(a2, 0x1f1d1b19110f0b09)
        csrw pmpcfg0, zero
        CASE(3)                             // pmpaddr holds physical address bits 55:2
        li t0, -1
        csrw pmpaddr1, t0
        csrr a2, pmpaddr1
#ifndef QEMU_ORACLE
        CHECK(a2, 0x3fffffffffffff)         // QEMU 7.2 keeps all 64 bits
#endif
        TEST_ILLEGAL(4, csrr a0, pmpcfg1)   // odd pmpcfg registers do not exist on RV64
#ifndef QEMU_ORACLE
        CASE(5)                             // entries 16-63 are not implemented: read-only zero
        li t0, -1                           // (QEMU 7.2 has no pmpaddr16-63 CSRs at all)
        csrw pmpaddr16, t0
        csrr a2, pmpaddr16
        CHECK(a2, 0)
        csrw pmpcfg4, t0
        csrr a2, pmpcfg4
        CHECK(a2, 0)
#endif

        // ---- no entry matches: M succeeds, S and U fail ----
        csrw pmpcfg0, zero
        csrw pmpcfg2, zero
        CASE(10)
        ADDR(a1, page_a, 0)
        ld a2, 0(a1)                        // M: no fault
        sd a2, 0(a1)
#ifndef QEMU_ORACLE
        // QEMU 7.2 lets S and U through when every entry is OFF
        CASE(11)
        TRAP_ARM_MODE(1f, 3)
        GOTO_S(2f)
2:      nop
1:      TRAP_EXPECT_CAUSE(CAUSE_FETCH_ACCESS)
        la a1, 2b
        CHECK_REG(a0, a1)
        TRAP_EPC(a2)
        CHECK_REG(a2, a1)
        CASE(12)
        TRAP_ARM_MODE(1f, 3)
        GOTO_U(2f)
2:      nop
1:      TRAP_EXPECT_CAUSE(CAUSE_FETCH_ACCESS)
        la a1, 2b
        CHECK_REG(a0, a1)
#endif

        // ---- NAPOT, one page, R only ----
        PMP_BASE
        NAPOT(t1, page_a, 4096)
        csrw pmpaddr0, t1
        CFG0(0, PMP_NAPOT | PMP_R)
        GOTO_S(3f)
3:      CASE(20)
        ADDR(a1, page_a, 0)
        ld a2, 0(a1)                        // S may read
        ADDR(a1, page_a, 4095)
        lbu a2, 0(a1)
        ADDR(a1, page_a, 8)
        EXPECT_FAULT(21, CAUSE_STORE_ACCESS, sd zero, 0(a1))
        ADDR(a1, page_a, 4095)
        EXPECT_FAULT(22, CAUSE_STORE_ACCESS, sb zero, 0(a1))
        ADDR(a1, page_a, 0)
        EXPECT_FAULT(23, CAUSE_FETCH_ACCESS, jalr zero, 0(a1))
        ADDR(a1, page_a, 16)
        EXPECT_FAULT(24, CAUSE_STORE_ACCESS, amoadd.d zero, zero, (a1))
        CASE(25)
        lr.d a2, (a1)                       // LR only reads
        EXPECT_FAULT(26, CAUSE_STORE_ACCESS, sc.d a2, zero, (a1))  // SC holding a reservation writes
        ADDR(a1, page_b, 0)                 // the next page falls through to entry 15
        sd zero, 0(a1)
        ld a2, 0(a1)
        BACK_TO_M(4f)
4:      CASE(27)                            // M ignores an unlocked entry
        ADDR(a1, page_a, 8)
        sd zero, 0(a1)
        CASE(28)                            // ... unless MPRV makes the access an S access
        TRAP_ARM(1f)
        li t0, MSTATUS_MPP
        csrc mstatus, t0
        li t0, MSTATUS_MPP_S | MSTATUS_MPRV
        csrs mstatus, t0
        sd zero, 0(a1)
1:      li t0, MSTATUS_MPRV
        csrc mstatus, t0
        TRAP_EXPECT_CAUSE(CAUSE_STORE_ACCESS)
        CHECK_REG(a0, a1)

        // ---- a PMP write takes effect at once (no stale translation) ----
        CASE(30)
        PMP_BASE
        GOTO_S(3f)
3:      ADDR(a1, page_c, 0)
        ld a2, 0(a1)                        // cached now
        BACK_TO_M(4f)
4:      NAPOT(t1, page_c, 4096)
        csrw pmpaddr1, t1
        CFG0(1, PMP_NAPOT)                  // no permissions
        GOTO_S(3f)
3:      EXPECT_FAULT(31, CAUSE_LOAD_ACCESS, ld a2, 0(a1))
        BACK_TO_M(4f)
4:      CFG0(1, 0)                          // off again: readable again
        GOTO_S(3f)
3:      CASE(32)
        ld a2, 0(a1)

        // ---- TOR: entry 0 is [0, pmpaddr0), entry i is [pmpaddr(i-1), pmpaddr(i)) ----
        BACK_TO_M(4f)
4:      PMP_BASE
        ADDR(t1, page_c, 0x100)
        srli t1, t1, 2
        csrw pmpaddr0, t1
        ADDR(t1, page_c, 0x200)
        srli t1, t1, 2
        csrw pmpaddr1, t1
        ADDR(t1, page_c, 0x180)             // entry 2: top below its bottom, matches nothing
        srli t1, t1, 2
        csrw pmpaddr2, t1
        CFG0(0, PMP_TOR | PMP_R | PMP_W | PMP_X)
        CFG0(1, PMP_TOR)
        CFG0(2, PMP_TOR)
        GOTO_S(3f)
3:      CASE(40)
        ADDR(a1, page_c, 0xfc)
        lw a2, 0(a1)                        // entry 0
        sw a2, 0(a1)
        ADDR(a1, page_c, 0x100)
        EXPECT_FAULT(41, CAUSE_LOAD_ACCESS, lw a2, 0(a1))
        ADDR(a1, page_c, 0x1fc)
        EXPECT_FAULT(42, CAUSE_STORE_ACCESS, sw a2, 0(a1))
        CASE(43)
        ADDR(a1, page_c, 0x200)             // past the top: entry 15
        lw a2, 0(a1)
        ADDR(a1, page_c, 0x300)             // entry 2 matches nothing
        sw a2, 0(a1)
        ADDR(a1, page_c, 0x100)
        EXPECT_FAULT(44, CAUSE_LOAD_ACCESS, ld a2, 0(a1))

        // ---- NA4 and partial matches ----
        BACK_TO_M(4f)
4:      PMP_BASE
        ADDR(t1, page_b, 0x40)
        srli t1, t1, 2
        csrw pmpaddr0, t1
        CFG0(0, PMP_NA4)
        GOTO_S(3f)
3:      ADDR(a1, page_b, 0x40)
        EXPECT_FAULT(50, CAUSE_LOAD_ACCESS, lw a2, 0(a1))
        CASE(51)
        ADDR(a1, page_b, 0x44)              // the next word: entry 15 (twice: nothing cached wrongly)
        lw a2, 0(a1)
        sw a2, 0(a1)
        lw a2, 0(a1)
        ADDR(a1, page_b, 0x38)
        ld a2, 0(a1)
        ADDR(a1, page_b, 0x40)
        EXPECT_FAULT(52, CAUSE_LOAD_ACCESS, lw a2, 0(a1))
        EXPECT_FAULT(53, CAUSE_LOAD_ACCESS, ld a2, 0(a1))   // partly in the NA4 word
        BACK_TO_M(4f)
4:      CFG0(0, PMP_NA4 | PMP_R | PMP_W | PMP_X)
        GOTO_S(3f)
3:      CASE(54)
        ADDR(a1, page_b, 0x40)
        lw a2, 0(a1)                        // all bytes in entry 0: allowed
        EXPECT_FAULT(55, CAUSE_LOAD_ACCESS, ld a2, 0(a1))   // entry 0 matches only part: fails
        BACK_TO_M(4f)
4:      ADDR(a1, page_b, 0x40)
        EXPECT_FAULT(56, CAUSE_LOAD_ACCESS, ld a2, 0(a1))   // even in M, unlocked

        // ---- priority: the lowest-numbered matching entry decides ----
        PMP_BASE
        NAPOT(t1, page_a, 4096)
        csrw pmpaddr0, t1
        csrw pmpaddr1, t1
        CFG0(0, PMP_NAPOT | PMP_R | PMP_W)
        CFG0(1, PMP_NAPOT)
        GOTO_S(3f)
3:      CASE(60)
        ADDR(a1, page_a, 0)
        sd zero, 0(a1)
        BACK_TO_M(4f)
4:      CFG0(0, PMP_NAPOT)
        CFG0(1, PMP_NAPOT | PMP_R | PMP_W)
        GOTO_S(3f)
3:      ADDR(a1, page_a, 0)
        EXPECT_FAULT(61, CAUSE_LOAD_ACCESS, ld a2, 0(a1))
        BACK_TO_M(4f)
4:      PMP_BASE                            // NAPOT of 8 KiB: pages a and b
        NAPOT(t1, page_a, 8192)
        csrw pmpaddr0, t1
        CFG0(0, PMP_NAPOT | PMP_R)
        GOTO_S(3f)
3:      CASE(62)
        ADDR(a1, page_b, 4088)
        ld a2, 0(a1)
        EXPECT_FAULT(63, CAUSE_STORE_ACCESS, sd a2, 0(a1))
        CASE(64)
        ADDR(a1, page_c, 0)
        sd a2, 0(a1)                        // page c is outside

        // ---- instruction fetch from a page that a rule splits ----
        BACK_TO_M(4f)
4:      PMP_BASE
        la t1, hole
        srli t1, t1, 2
        csrw pmpaddr0, t1
        CFG0(0, PMP_NA4 | PMP_R)
        la t1, straddle_code
        addi t1, t1, 4
        srli t1, t1, 2
        csrw pmpaddr1, t1
        CFG0(1, PMP_NA4 | PMP_R)
        GOTO_S(3f)
3:
#ifndef QEMU_ORACLE
        // QEMU 7.2 runs through a word without X inside a page it has translated code from
        CASE(70)                            // stops exactly at the word without X
        li a2, 0
        la a1, hole
        TRAP_ARM(1f)
        jal split_code
1:      TRAP_EXPECT_CAUSE(CAUSE_FETCH_ACCESS)
        CASE(74)
        CHECK_REG(a0, a1)
        CASE(75)
        TRAP_EPC(a3)
        CHECK_REG(a3, a1)
        CASE(76)
        CHECK(a2, 3)
        CASE(71)                            // and again (nothing cached)
        li a2, 0
        TRAP_ARM(1f)
        jal split_code
1:      TRAP_EXPECT_CAUSE(CAUSE_FETCH_ACCESS)
        CHECK_REG(a0, a1)
        CHECK(a2, 3)
#endif
        CASE(72)                            // code after the hole in the same page runs
        li a2, 0
        jal after_hole
        CHECK(a2, 2)
#ifndef QEMU_ORACLE
        // QEMU 7.2: as case 70
        CASE(73)                            // a 4-byte instruction whose upper half has no X
        la a1, straddle_code
        addi a1, a1, 4
        TRAP_ARM(1f)
        jal straddle_code
1:      TRAP_EXPECT_CAUSE(CAUSE_FETCH_ACCESS)
        CHECK_REG(a0, a1)                   // tval: the part that faulted
        TRAP_EPC(a3)
        addi a1, a1, -2
        CHECK_REG(a3, a1)                   // epc: the instruction
#endif

        // ---- page-table walks are S-mode accesses ----
        BACK_TO_M(4f)
4:      la t1, pt_root                      // root[2]: 1 GiB identity at 0x8000_0000; root[0] -> pt_l1
        li t2, (0x80000000 >> 12) << 10 | 0xcf
        sd t2, 16(t1)
        la t2, pt_l1
        srli t2, t2, 12
        slli t2, t2, 10
        ori t2, t2, 1
        sd t2, 0(t1)
        la t1, pt_l1                        // pt_l1[0]: 2 MiB at VA 0 -> PA 0x8000_0000, R W A D
        li t2, (0x80000000 >> 12) << 10 | 0xc7
        sd t2, 0(t1)
        li t2, (0x80000000 >> 12) << 10 | 0x07  // pt_l1[1]: VA 0x200000, R W, A and D clear
        sd t2, 8(t1)
        la t1, pt_root
        srli t1, t1, 12
        li t2, 8 << 60
        or t1, t1, t2
        csrw satp, t1
        sfence.vma
        PMP_BASE
        NAPOT(t1, pt_l1, 4096)
        csrw pmpaddr0, t1
        CFG0(0, PMP_NAPOT | PMP_R)          // the table is readable, not writable
        GOTO_S(3f)
3:      CASE(80)
        li a1, 0
        ld a2, 0(a1)                        // A already set: the walk only reads
        la t1, _start
        ld t1, 0(t1)
        CHECK_REG(a2, t1)
#ifndef QEMU_ORACLE
        li a1, 0x200000                     // setting A needs a write the rule forbids
        EXPECT_FAULT(81, CAUSE_LOAD_ACCESS, ld a2, 0(a1))   // (QEMU 7.2 sets A without a PMP check)
#endif
        BACK_TO_M(4f)
4:      CFG0(0, PMP_NAPOT)                  // the table is out of reach
        GOTO_S(3f)
3:      li a1, 8
        EXPECT_FAULT(82, CAUSE_LOAD_ACCESS, ld a2, 0(a1))
        EXPECT_FAULT(83, CAUSE_STORE_ACCESS, sd a2, 0(a1))
        li a1, 0x100
        EXPECT_FAULT(84, CAUSE_FETCH_ACCESS, jalr zero, 0(a1))
        BACK_TO_M(4f)
4:      csrw satp, zero
        sfence.vma

        // ---- locks (they last until reset, so these come last) ----
        PMP_BASE
        NAPOT(t1, page_a, 4096)
        csrw pmpaddr3, t1
        CFG0(3, PMP_NAPOT | PMP_R | PMP_L)
        CASE(90)
        ADDR(a1, page_a, 0)
        ld a2, 0(a1)                        // R applies to M now
        EXPECT_FAULT(91, CAUSE_STORE_ACCESS, sd a2, 0(a1))
        EXPECT_FAULT(92, CAUSE_FETCH_ACCESS, jalr zero, 0(a1))
        CASE(93)                            // the locked byte and address ignore writes
        csrw pmpcfg0, zero
        csrr a2, pmpcfg0
        CHECK(a2, (PMP_NAPOT | PMP_R | PMP_L) << 24)
        csrw pmpaddr3, zero
        csrr a2, pmpaddr3
        NAPOT(t1, page_a, 4096)
        CHECK_REG(a2, t1)
        CASE(94)                            // a locked TOR entry locks the address below it too
        ADDR(t1, page_c, 0)
        srli t1, t1, 2
        csrw pmpaddr4, t1
        ADDR(t1, page_c, 0x100)
        srli t1, t1, 2
        csrw pmpaddr5, t1
        CFG0(5, PMP_TOR | PMP_L)
        csrw pmpaddr4, zero
        csrr a2, pmpaddr4
        ADDR(t1, page_c, 0)
        srli t1, t1, 2
        CHECK_REG(a2, t1)
        csrw pmpaddr5, zero
        csrr a2, pmpaddr5
        ADDR(t1, page_c, 0x100)
        srli t1, t1, 2
        CHECK_REG(a2, t1)
        ADDR(a1, page_c, 0x80)
        EXPECT_FAULT(95, CAUSE_LOAD_ACCESS, ld a2, 0(a1))
        CASE(96)
        ADDR(a1, page_c, 0x100)
        ld a2, 0(a1)
        CASE(97)                            // the unlocked entry 4 (OFF) keeps a writable byte
        CFG0(4, PMP_NA4 | PMP_R)
        csrr a2, pmpcfg0
        srli a2, a2, 32
        andi a2, a2, 0xff
        CHECK(a2, PMP_NA4 | PMP_R)
        CFG0(4, 0)
        GOTO_S(3f)
3:      CASE(98)                            // locked rules bind S too
        ADDR(a1, page_a, 0)
        ld a2, 0(a1)
        EXPECT_FAULT(99, CAUSE_STORE_ACCESS, sd a2, 0(a1))
        BACK_TO_M(4f)
4:      j pass

        // S-mode code with a word that has no X permission ("hole") in the middle of its page.
        .align 12
        .option push
        .option norvc
split_code:
        addi a2, a2, 1
        addi a2, a2, 1
        addi a2, a2, 1
hole:   addi a2, a2, 1
after_hole:
        addi a2, a2, 1
        addi a2, a2, 1
        ret
        .option pop
        .align 4
straddle_code:
        .option push
        .option rvc
        c.nop                               // now at a 4-byte boundary + 2
        .option norvc
        addi a2, a2, 1                      // bytes 2-5: the upper half lies in the hole
        ret
        .option pop

        .data
        .align 14
page_a: .skip 4096
page_b: .skip 4096
page_c: .skip 4096
pt_root: .skip 4096
pt_l1:  .skip 4096
