// Virtual-memory test body shared by vm_sv39.S, vm_sv48.S and vm_sv57.S.
// The includer defines LEVELS (3, 4 or 5) and SATP_MODE (8, 9 or 10).
//
// Address space built here (every level above the 1 GiB table points at index 0 only):
//   VA 0x0000_0000 (1 GiB leaf)  -> PA 0x8000_0000, U R W X: the code again, for U-mode ("alias")
//   VA 0x4000_0000 (2 MiB table)
//       0x4000_0000 + i*4 KiB    -> vm_pages[i], one permission combination per page (see below)
//       0x4020_0000 (2 MiB leaf) -> PA SUPER_PA
//       0x4040_0000 (2 MiB leaf) with a misaligned PPN (page fault)
//   VA 0x8000_0000 (1 GiB leaf)  -> PA 0x8000_0000, R W X: identity for S (code, data, handlers)
//   VA 0xC000_0000 (1 GiB leaf)  -> PA 0x8000_0000, R W
//   VA 0x1_0000_0000 (1 GiB leaf) with a misaligned PPN (page fault)
//   (LEVELS >= 4) VA 0x80_0000_0000 (512 GiB leaf) -> PA 0; misaligned one at 0x100_0000_0000
#include "rivet_test.h"

#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_U 0x10
#define PTE_G 0x20
#define PTE_A 0x40
#define PTE_D 0x80

#define TEST_VA   0x40000000
#define SUPER_VA  0x40200000
#define BADSUP_VA 0x40400000
#define GIGA_VA   0xC0000000
#define BADGIG_VA 0x100000000
#define TERA_VA   0x8000000000
#define BADTER_VA 0x10000000000
#define SUPER_PA  0x80600000
#define ALIAS_OFF 0x80000000

// Test pages: index -> permissions
#define PG_RW     0   // R W A D
#define PG_RO     1   // R A
#define PG_XO     2   // X A (holds code)
#define PG_URWX   3   // U R W X A D (holds code)
#define PG_WO     4   // W only: reserved combination
#define PG_INV    5   // V = 0
#define PG_NOAD   6   // R W, A = 0, D = 0
#define PG_NOD    7   // R W A, D = 0
#define PG_RSVD   8   // R W A D with reserved bit 54 set
#define PG_PTR0   9   // a pointer (no R/W/X) at the last level
#define PG_URO    10  // U R A
#define PG_SWAP   11  // starts invalid; sfence.vma test
#define PG_PBMT   12  // R W A D with PBMT = 1 (Svpbmt not implemented: reserved)
#define PG_NAPOT  13  // R W A D with N = 1 (Svnapot not implemented: reserved)
#define NPAGES    14

#define VA(i) (TEST_VA + (i) * 4096)

// a2 = address of leaf PTE i of the 4 KiB table
#define PTE_ADDR(reg, i) la reg, pt_l0; addi reg, reg, (i) * 8
// PTE for physical address in `pa` with `flags` -> reg
#define MAKE_PTE(reg, pa, flags) srli reg, pa, 12; slli reg, reg, 10; ori reg, reg, flags
// Leaf i of the 4 KiB table -> vm_pages[i] with flags
#define SET_PAGE(i, flags) la a1, vm_pages; li a2, (i) * 4096; add a1, a1, a2; MAKE_PTE(a2, a1, flags); \
  PTE_ADDR(a3, i); sd a2, 0(a3)
// Store a pointer PTE to table `next` at table + idx*8
#define SET_PTR(table, idx, next) la a1, next; MAKE_PTE(a2, a1, PTE_V); la a3, table; sd a2, (idx) * 8(a3)
// Store a leaf for physical address `pa` (constant) at table + idx*8
#define SET_LEAF(table, idx, pa, flags) li a1, pa; MAKE_PTE(a2, a1, flags); la a3, table; sd a2, (idx) * 8(a3)

// Expect a page fault of `cause` at address `va` (handled in M, continue in the same mode).
#define TEST_PF_LOAD(n, va) CASE(n); li a1, va; TRAP_ARM(1f); ld a2, 0(a1); 1: TRAP_EXPECT(CAUSE_LOAD_PAGE, va, 3)
#define TEST_PF_STORE(n, va) CASE(n); li a1, va; TRAP_ARM(1f); sd a2, 0(a1); 1: TRAP_EXPECT(CAUSE_STORE_PAGE, va, 3)
#define TEST_PF_AMO(n, va) CASE(n); li a1, va; TRAP_ARM(1f); amoor.d a2, x0, (a1); 1: TRAP_EXPECT(CAUSE_STORE_PAGE, va, 3)
#define TEST_PF_FETCH(n, va) CASE(n); li a1, va; TRAP_ARM(1f); jalr ra, 0(a1); 1: TRAP_EXPECT(CAUSE_FETCH_PAGE, va, 3); \
  TRAP_EPC(a2); CHECK(a2, va)
// Expect an access to work (value check for loads).
#define TEST_LOAD_OK(n, va, exp) CASE(n); li a1, va; TRAP_ARM(1f); ld a2, 0(a1); 1: TRAP_EXPECT_NONE; CHECK(a2, exp)
#define TEST_STORE_OK(n, va) CASE(n); li a1, va; li a2, 0x5a5a0000 + (n); TRAP_ARM(1f); sd a2, 0(a1); 1: TRAP_EXPECT_NONE; \
  ld a3, 0(a1); CHECK_REG(a3, a2)
#define TEST_FETCH_OK(n, va, exp) CASE(n); li a0, 0; li a1, va; TRAP_ARM(1f); jalr ra, 0(a1); 1: TRAP_EXPECT_NONE; CHECK(a0, exp)

// Privilege changes to/from the U alias of the code (VA = PA - 0x8000_0000).
#define GOTO_U_ALIAS(label) li t5, MSTATUS_MPP; csrc mstatus, t5; la t5, label; li t6, ALIAS_OFF; sub t5, t5, t6; \
  csrw mepc, t5; mret
#define ALIAS_BACK_TO_M(label) TRAP_ARM_MODE(label, 3); la t5, label; li t6, ALIAS_OFF; add t5, t5, t6; \
  la t6, trap_area; sd t5, TR_RESUME(t6); ecall

TEST_MAIN
        // ---- recognisable data in every test page: page i holds 0x1000 + i at offset 0 ----
        la a1, vm_pages
        li a3, 0
1:      li a2, 0x1000
        add a2, a2, a3
        sd a2, 0(a1)
        li a4, 4096
        add a1, a1, a4
        addi a3, a3, 1
        li a4, NPAGES
        blt a3, a4, 1b
        // ---- code for the executable test pages: a0 = 0x55 (X page) / 0x66 (U page); ret ----
        la a1, vm_pages
        li a2, 0x05500513                   // addi a0, x0, 0x55
        li a3, PG_XO * 4096
        add a4, a1, a3
        sw a2, 0(a4)
        li a2, 0x00008067                   // ret
        sw a2, 4(a4)
        li a2, 0x06600513                   // addi a0, x0, 0x66
        li a3, PG_URWX * 4096
        add a4, a1, a3
        sw a2, 0(a4)
        li a2, 0x00008067
        sw a2, 4(a4)
        fence.i
        li a1, SUPER_PA + 0x1008
        li a2, 0x2222
        sd a2, 0(a1)

        // ---- page tables ----
#if LEVELS == 3
#define PT_GIGA pt_root
#elif LEVELS == 4
#define PT_GIGA pt_l2
        SET_PTR(pt_root, 0, pt_l2)
        SET_LEAF(pt_root, 1, 0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
        SET_LEAF(pt_root, 2, 0x80000000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
#else
#define PT_GIGA pt_l2
        SET_PTR(pt_root, 0, pt_l3)
        SET_PTR(pt_l3, 0, pt_l2)
        SET_LEAF(pt_l3, 1, 0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
        SET_LEAF(pt_l3, 2, 0x80000000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
#endif
        SET_LEAF(PT_GIGA, 0, 0x80000000, PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D)
        SET_PTR(PT_GIGA, 1, pt_l1)
        SET_LEAF(PT_GIGA, 2, 0x80000000, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)
        SET_LEAF(PT_GIGA, 3, 0x80000000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
        SET_LEAF(PT_GIGA, 4, 0x80200000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
        SET_PTR(pt_l1, 0, pt_l0)
        SET_LEAF(pt_l1, 1, SUPER_PA, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
        SET_LEAF(pt_l1, 2, SUPER_PA + 0x1000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
        SET_PAGE(PG_RW, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
        SET_PAGE(PG_RO, PTE_V | PTE_R | PTE_A)
        SET_PAGE(PG_XO, PTE_V | PTE_X | PTE_A)
        SET_PAGE(PG_URWX, PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D)
        SET_PAGE(PG_WO, PTE_V | PTE_W | PTE_A | PTE_D)
        SET_PAGE(PG_INV, PTE_R | PTE_W | PTE_A | PTE_D)
        SET_PAGE(PG_NOAD, PTE_V | PTE_R | PTE_W)
        SET_PAGE(PG_NOD, PTE_V | PTE_R | PTE_W | PTE_A)
        SET_PAGE(PG_RSVD, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
        PTE_ADDR(a3, PG_RSVD)
        ld a2, 0(a3)
        li a4, 1 << 54
        or a2, a2, a4
        sd a2, 0(a3)
        SET_PAGE(PG_PTR0, PTE_V)
        SET_PAGE(PG_URO, PTE_V | PTE_R | PTE_U | PTE_A)
        SET_PAGE(PG_SWAP, 0)
        SET_PAGE(PG_PBMT, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
        PTE_ADDR(a3, PG_PBMT)
        ld a2, 0(a3)
        li a4, 1 << 61
        or a2, a2, a4
        sd a2, 0(a3)
        SET_PAGE(PG_NAPOT, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
        PTE_ADDR(a3, PG_NAPOT)
        ld a2, 0(a3)
        li a4, 1 << 63
        or a2, a2, a4
        sd a2, 0(a3)

        // ---- satp: the mode is accepted; an unsupported mode leaves satp unchanged ----
        CASE(1)
        la a1, pt_root
        srli a1, a1, 12
        li a2, SATP_MODE << 60
        or s1, a1, a2                       // s1 = our satp value for the whole test
        csrw satp, s1
        csrr a3, satp
        CHECK_REG(a3, s1)
        CASE(2)
        li a2, 15 << 60                     // reserved mode
        or a2, a2, a1
        csrw satp, a2
        csrr a3, satp
        CHECK_REG(a3, s1)
        sfence.vma

        // ---- M-mode ignores satp ----
        CASE(3)
        la a1, vm_pages
        ld a2, 0(a1)
        CHECK(a2, 0x1000)

        // ---- S-mode: permissions ----
        GOTO_S(1f)
1:      CASE(4)                             // identity mapping works (we are running on it)
        la a1, vm_pages
        ld a2, 0(a1)
        CHECK(a2, 0x1000)
        TEST_LOAD_OK(5, VA(PG_RW), 0x1000)
        TEST_STORE_OK(6, VA(PG_RW))
        TEST_PF_FETCH(7, VA(PG_RW))
        TEST_LOAD_OK(8, VA(PG_RO), 0x1001)
        TEST_PF_STORE(9, VA(PG_RO))
        TEST_PF_AMO(10, VA(PG_RO))
        TEST_FETCH_OK(11, VA(PG_XO), 0x55)
        TEST_PF_LOAD(12, VA(PG_XO))
        TEST_PF_STORE(13, VA(PG_XO))
        TEST_PF_LOAD(14, VA(PG_URWX))       // U page from S, SUM = 0
        TEST_PF_STORE(15, VA(PG_URWX))
        TEST_PF_FETCH(16, VA(PG_URWX))      // S never executes U pages
        TEST_PF_LOAD(17, VA(PG_WO))         // W without R is reserved
        TEST_PF_STORE(18, VA(PG_WO))
        TEST_PF_LOAD(19, VA(PG_INV))
        TEST_PF_STORE(20, VA(PG_INV))
        TEST_PF_FETCH(21, VA(PG_INV))
        TEST_PF_LOAD(22, VA(PG_RSVD))       // reserved PTE bits
        TEST_PF_STORE(23, VA(PG_RSVD))
        TEST_PF_LOAD(24, VA(PG_PTR0))       // pointer at the last level
        TEST_PF_LOAD(25, VA(PG_URO))
        TEST_PF_LOAD(26, VA(NPAGES + 3))    // beyond the populated entries: invalid
        TEST_PF_LOAD(27, 0x40000000 + 0x600000)   // 2 MiB entry never set
        CASE(28)                            // tval is the exact faulting address, not the page
        li a1, VA(PG_RO) + 0x123
        TRAP_ARM(1f)
        sb a2, 0(a1)
1:      TRAP_EXPECT(CAUSE_STORE_PAGE, VA(PG_RO) + 0x123, 3)

        // ---- SUM lets S read/write U pages, but never execute them ----
        li a1, MSTATUS_SUM
        csrs sstatus, a1
        TEST_LOAD_OK(30, VA(PG_URWX), 0x0000806706600513)
        TEST_STORE_OK(31, VA(PG_URWX) + 8)
#ifndef QEMU_ORACLE
        // QEMU 7.2 differs: with SUM = 1 it lets S execute a U page it has just read.
        TEST_PF_FETCH(32, VA(PG_URWX))
#endif
        TEST_LOAD_OK(33, VA(PG_URO), 0x100a)
        TEST_PF_STORE(34, VA(PG_URO))
        li a1, MSTATUS_SUM
        csrc sstatus, a1
        TEST_PF_LOAD(35, VA(PG_URO))

        // ---- MXR makes executable pages readable ----
        li a1, MSTATUS_MXR
        csrs sstatus, a1
        TEST_LOAD_OK(40, VA(PG_XO), 0x0000806705500513)
        TEST_PF_STORE(41, VA(PG_XO))
        TEST_LOAD_OK(42, VA(PG_RO), 0x1001)
        li a1, MSTATUS_MXR
        csrc sstatus, a1
        TEST_PF_LOAD(43, VA(PG_XO))

        // ---- A and D: Rivet updates them in hardware ----
        CASE(50)
        TEST_LOAD_OK(51, VA(PG_NOAD), 0x1006)
        CASE(52)
        PTE_ADDR(a3, PG_NOAD)
        ld a2, 0(a3)
        andi a4, a2, PTE_A
        CHECK(a4, PTE_A)                    // load set A
        andi a4, a2, PTE_D
        CHECK(a4, 0)                        // but not D
        TEST_STORE_OK(53, VA(PG_NOAD) + 16)
        CASE(54)
        PTE_ADDR(a3, PG_NOAD)
        ld a2, 0(a3)
        andi a4, a2, PTE_D | PTE_A
        CHECK(a4, PTE_D | PTE_A)            // store set D
        TEST_STORE_OK(55, VA(PG_NOD) + 16)  // A already set, D clear: store sets D
        CASE(56)
        PTE_ADDR(a3, PG_NOD)
        ld a2, 0(a3)
        andi a4, a2, PTE_D
        CHECK(a4, PTE_D)
        CASE(57)                            // a store to a page with A = 0, D = 0 sets both at once
        SET_PAGE(PG_NOAD, PTE_V | PTE_R | PTE_W)
        sfence.vma
        TEST_STORE_OK(58, VA(PG_NOAD) + 24)
        CASE(59)
        PTE_ADDR(a3, PG_NOAD)
        ld a2, 0(a3)
        andi a4, a2, PTE_D | PTE_A
        CHECK(a4, PTE_D | PTE_A)
        CASE(60)                            // a faulting access sets neither
        SET_PAGE(PG_NOAD, PTE_V | PTE_R)
        sfence.vma
        TEST_PF_STORE(61, VA(PG_NOAD))
        CASE(62)
        PTE_ADDR(a3, PG_NOAD)
        ld a2, 0(a3)
        andi a4, a2, PTE_D | PTE_A
        CHECK(a4, 0)

        // ---- superpages ----
        TEST_LOAD_OK(70, SUPER_VA + 0x1008, 0x2222)
        TEST_STORE_OK(71, SUPER_VA + 0x1ff000)
        CASE(72)                            // the same bytes through the identity map
        li a1, SUPER_PA + 0x1ff000
        ld a3, 0(a1)
        CHECK(a3, 0x5a5a0000 + 71)
        TEST_PF_LOAD(73, BADSUP_VA)         // misaligned 2 MiB superpage
        TEST_PF_STORE(74, BADSUP_VA + 0x1000)
        CASE(75)                            // 1 GiB page to RAM
        la a1, vm_pages + PG_RO * 4096
        li a2, GIGA_VA - 0x80000000
        add a1, a1, a2
        ld a3, 0(a1)
        CHECK(a3, 0x1001)
        TEST_PF_FETCH(76, GIGA_VA + 0x1000) // not executable
        TEST_PF_LOAD(77, BADGIG_VA)         // misaligned 1 GiB page
        TEST_PF_LOAD(78, BADGIG_VA + 0x12345678)
#if LEVELS >= 4
        CASE(79)                            // 512 GiB page
        la a1, vm_pages + PG_RO * 4096
        li a2, TERA_VA
        add a1, a1, a2
        ld a3, 0(a1)
        CHECK(a3, 0x1001)
        TEST_PF_LOAD(80, BADTER_VA)         // misaligned 512 GiB page
#endif

        // ---- non-canonical addresses ----
        TEST_PF_LOAD(85, 1 << (LEVELS * 9 + 12 - 1))
        TEST_PF_STORE(86, 0x8000000000000000)
        TEST_PF_FETCH(87, 1 << (LEVELS * 9 + 12 - 1))

        // ---- sfence.vma: a changed PTE takes effect after the fence ----
        TEST_PF_LOAD(90, VA(PG_SWAP))
        CASE(91)
        SET_PAGE(PG_SWAP, PTE_V | PTE_R | PTE_A)
        sfence.vma
        TEST_LOAD_OK(92, VA(PG_SWAP), 0x100b)
        CASE(93)                            // retarget the page: read the new frame
        la a1, vm_pages + PG_RO * 4096
        MAKE_PTE(a2, a1, PTE_V | PTE_R | PTE_A)
        PTE_ADDR(a3, PG_SWAP)
        sd a2, 0(a3)
        li a4, VA(PG_SWAP)
        sfence.vma a4, x0                   // address-specific fence
        TEST_LOAD_OK(94, VA(PG_SWAP), 0x1001)
        CASE(95)                            // removed again: faults
        PTE_ADDR(a3, PG_SWAP)
        sd x0, 0(a3)
        sfence.vma x0, x0
        TEST_PF_LOAD(96, VA(PG_SWAP))

        // ---- reserved PBMT / N bits (Svpbmt, Svnapot not implemented) ----
        TEST_PF_LOAD(100, VA(PG_PBMT))
        TEST_PF_LOAD(101, VA(PG_NAPOT))

        // ---- page faults delegated to S ----
        BACK_TO_M(1f)
1:      li a1, (1 << CAUSE_FETCH_PAGE) | (1 << CAUSE_LOAD_PAGE) | (1 << CAUSE_STORE_PAGE)
        csrw medeleg, a1
        GOTO_S(1f)
1:      CASE(110)
        li a1, VA(PG_RO)
        TRAP_ARM(2f)
        sd a2, 0(a1)
2:      TRAP_EXPECT(CAUSE_STORE_PAGE, VA(PG_RO), 1)
        CASE(111)
        li a1, VA(PG_INV)
        TRAP_ARM(2f)
        jalr ra, 0(a1)
2:      TRAP_EXPECT(CAUSE_FETCH_PAGE, VA(PG_INV), 1)
        BACK_TO_M(1f)
1:      csrw medeleg, zero

        // ---- U-mode through the U alias of the code ----
        GOTO_U_ALIAS(1f)
1:      CASE(120)                           // U runs from a U page and uses U data
        la a1, vm_pages + PG_RO * 4096      // (alias address)
        ld a2, 0(a1)
        CHECK(a2, 0x1001)
        TEST_LOAD_OK(121, VA(PG_URWX), 0x0000806706600513)
        TEST_STORE_OK(122, VA(PG_URWX) + 32)
        TEST_FETCH_OK(123, VA(PG_URWX), 0x66)
        TEST_LOAD_OK(124, VA(PG_URO), 0x100a)
        TEST_PF_STORE(125, VA(PG_URO))
        TEST_PF_LOAD(126, VA(PG_RW))        // S pages are off limits to U
        TEST_PF_STORE(127, VA(PG_RW))
        TEST_PF_FETCH(128, VA(PG_XO))
        TEST_PF_LOAD(129, 0x80000000 + 0x1000)   // identity map is S only
        TEST_PF_FETCH(130, 0x80000000 + 0x1000)
        CASE(131)                           // SUM does not matter to U
        ALIAS_BACK_TO_M(1f)
1:      li a1, MSTATUS_SUM
        csrs mstatus, a1
        GOTO_U_ALIAS(1f)
1:      TEST_PF_LOAD(132, VA(PG_RW))
        CASE(133)                           // MXR lets U read its execute-only pages
        ALIAS_BACK_TO_M(1f)
1:      li a1, MSTATUS_SUM
        csrc mstatus, a1
        SET_PAGE(PG_XO, PTE_V | PTE_X | PTE_U | PTE_A)
        sfence.vma
        li a1, MSTATUS_MXR
        csrs mstatus, a1
        GOTO_U_ALIAS(1f)
1:      TEST_LOAD_OK(134, VA(PG_XO), 0x0000806705500513)
        TEST_FETCH_OK(135, VA(PG_XO), 0x55)
        ALIAS_BACK_TO_M(1f)
1:      li a1, MSTATUS_MXR
        csrc mstatus, a1

        // ---- MPRV: M-mode loads and stores translated with MPP's privilege ----
        CASE(140)
        li a1, MSTATUS_MPP
        csrc mstatus, a1
        li a1, MSTATUS_MPP_S | MSTATUS_MPRV
        csrs mstatus, a1
        li a1, VA(PG_RO)
        ld a2, 0(a1)
        li a1, MSTATUS_MPRV
        csrc mstatus, a1
        CHECK(a2, 0x1001)
        CASE(141)                           // ... and faults like S would (handler clears MPRV)
        li a1, MSTATUS_MPRV
        csrs mstatus, a1
        li a1, VA(PG_RO)
        TRAP_ARM(1f)
        sd a2, 0(a1)
1:      li a1, MSTATUS_MPRV
        csrc mstatus, a1
        TRAP_EXPECT(CAUSE_STORE_PAGE, VA(PG_RO), 3)
        CASE(142)                           // instruction fetch is not affected by MPRV
        csrr a3, mstatus
        li a1, MSTATUS_MPRV
        csrs mstatus, a1
        nop
        csrc mstatus, a1

        // ---- back to bare ----
        CASE(150)
        csrw satp, zero
        csrr a2, satp
        CHECK(a2, 0)
        GOTO_S(1f)
1:      li a1, VA(PG_RW)                    // bare: 0x4000_0000 is not RAM any more
        TRAP_ARM(2f)
        ld a2, 0(a1)
2:      TRAP_EXPECT(CAUSE_LOAD_ACCESS, VA(PG_RW), 3)
        BACK_TO_M(1f)
1:
        j pass

        .bss
        .align 12
pt_root: .skip 4096
pt_l3:  .skip 4096
pt_l2:  .skip 4096
pt_l1:  .skip 4096
pt_l0:  .skip 4096
vm_pages: .skip 4096 * NPAGES
