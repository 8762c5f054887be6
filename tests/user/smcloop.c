/* Self-modifying code in a hot loop: a small function (a branch over a one-block loop) is written into an
 * executable page, run until it is translated, then patched (the loop's constant, and which way its first
 * branch goes) with fence.i, many times. Every call must see the code as last written: stores to code pages
 * and fence.i drop exactly the stale translations, including blocks compiled together with others.
 * tests/integration/test_translator.py compares rivet in both modes with qemu-riscv64. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

static uint32_t addi(int rd, int rs1, int imm) { return (uint32_t)(imm & 0xfff) << 20 | rs1 << 15 | rd << 7 | 0x13; }
static uint32_t branch(int funct3, int rs1, int rs2, int off) {
    return (uint32_t)((off >> 12) & 1) << 31 | ((off >> 5) & 0x3f) << 25 | rs2 << 20 | rs1 << 15 | funct3 << 12 |
           ((off >> 1) & 0xf) << 8 | ((off >> 11) & 1) << 7 | 0x63;
}
enum { ZERO = 0, RA = 1, T0 = 5, A0 = 10, A1 = 11 };

int main(void) {
    uint32_t *code = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) { perror("mmap"); return 1; }
    /* f(a0 = n, a1 = flag): t0 = 0; if (a1 == 0) goto out; do { t0 += K; n--; } while (n); out: return t0 + n */
    code[0] = addi(T0, ZERO, 0);
    code[1] = branch(0, A1, ZERO, 16);           /* beq a1, zero, out (patched to bne below) */
    code[2] = addi(T0, T0, 1);                    /* the loop: K patched */
    code[3] = addi(A0, A0, -1);
    code[4] = branch(1, A0, ZERO, -8);           /* bnez a0, loop */
    code[5] = 0x00a28533;                         /* out: add a0, t0, a0 */
    code[6] = 0x00008067;                         /* ret */
    __asm__ volatile("fence.i" ::: "memory");
    long (*f)(long, long) = (long (*)(long, long))code;
    uint64_t hash = 14695981039346656037ull;
    for (int round = 0; round < 400; round++) {
        int k = round % 1500 - 700;
        code[2] = addi(T0, T0, k);
        code[1] = branch(round % 3 == 0 ? 1 : 0, A1, ZERO, 16);
        __asm__ volatile("fence.i" ::: "memory");
        for (int call = 0; call < 40; call++) {
            long r = f(30 + call, call & 1);
            hash = (hash ^ (uint64_t)r) * 1099511628211ull;
        }
    }
    printf("smcloop %016llx\n", (unsigned long long)hash);
    return 0;
}
