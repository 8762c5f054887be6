/* smc: self-modifying code. Writes a function returning a constant into an RWX page,
 * calls it, rewrites it in place to return other constants (short and long encodings,
 * many rounds), and checks every result. Prints "SMC OK" or "SMC FAIL ...". */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

typedef long (*const_fn)(void);

#define REG_A0 10
#define REG_RA 1

/* RV64I encodings built by hand so the test does not depend on an assembler. */
static uint32_t enc_addi(int rd, int rs1, int32_t imm)
{
    return ((uint32_t)imm & 0xfff) << 20 | (uint32_t)rs1 << 15 | 0u << 12 | (uint32_t)rd << 7 | 0x13;
}
static uint32_t enc_lui(int rd, uint32_t upper20) { return upper20 << 12 | (uint32_t)rd << 7 | 0x37; }
static uint32_t enc_addiw(int rd, int rs1, int32_t imm)
{
    return ((uint32_t)imm & 0xfff) << 20 | (uint32_t)rs1 << 15 | 0u << 12 | (uint32_t)rd << 7 | 0x1b;
}
static uint32_t enc_ret(void) { return 0u << 20 | (uint32_t)REG_RA << 15 | 0u << 12 | 0u << 7 | 0x67; }

/* Writes "a0 = value; ret" at code (value is a sign-extended 32-bit constant). */
static size_t emit_const(uint32_t *code, int32_t value)
{
    size_t n = 0;
    if (value >= -2048 && value < 2048) {
        code[n++] = enc_addi(REG_A0, 0, value);
    } else {
        /* lui takes the upper 20 bits, rounded so the signed low 12 bits add back. */
        uint32_t upper = ((uint32_t)value + 0x800u) >> 12;
        int32_t low = (int32_t)((uint32_t)value << 20) >> 20;
        code[n++] = enc_lui(REG_A0, upper & 0xfffff);
        code[n++] = enc_addiw(REG_A0, REG_A0, low);
    }
    code[n++] = enc_ret();
    return n;
}

static int check(const char *what, uint32_t *code, int32_t value)
{
    size_t n = emit_const(code, value);
    /* Makes the new bytes visible to instruction fetch on every hart (fence.i via the
     * riscv_flush_icache syscall, since this thread may migrate). */
    __builtin___clear_cache((char *)code, (char *)(code + n));
    long got = ((const_fn)(uintptr_t)code)();
    if (got != (long)value) {
        printf("SMC FAIL %s: wanted %ld, got %ld\n", what, (long)value, got);
        return 0;
    }
    return 1;
}

int main(void)
{
    size_t page = 4096;
    uint32_t *code = mmap(NULL, page, PROT_READ | PROT_WRITE | PROT_EXEC,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) {
        perror("smc: mmap RWX");
        printf("SMC FAIL mmap\n");
        return 1;
    }
    memset(code, 0, page);

    int ok = check("first", code, 42) && check("rewrite", code, 1337) &&
             check("long form", code, 0x12345678) && check("negative", code, -77777);
    /* Many rewrites of the same address catch stale decoded-instruction caches. */
    for (int32_t i = 0; ok && i < 1000; i++)
        ok = check("loop", code, (i & 1) ? i * 7919 : -i);

    /* The same after an mprotect round trip (W^X style: write while RW, run while RX). */
    if (ok && mprotect(code, page, PROT_READ | PROT_WRITE) == 0) {
        emit_const(code, 2024);
        if (mprotect(code, page, PROT_READ | PROT_EXEC) != 0) {
            perror("smc: mprotect RX");
            ok = 0;
        } else {
            __builtin___clear_cache((char *)code, (char *)(code + 3));
            long got = ((const_fn)(uintptr_t)code)();
            if (got != 2024) {
                printf("SMC FAIL mprotect: wanted 2024, got %ld\n", got);
                ok = 0;
            }
        }
    }
    if (ok)
        printf("SMC OK\n");
    return ok ? 0 : 1;
}
