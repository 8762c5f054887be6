/* Double-precision arithmetic on special and random operands, in every rounding mode, with the accrued
 * flags read after each operation and cleared now and then: prints a hash of every result and flag word.
 * tests/integration/test_translator.py runs it under qemu-riscv64 (the oracle) and rivet in both modes. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint64_t state = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }

static const uint64_t specials[] = {
    0, 0x8000000000000000ull, 0x3ff0000000000000ull, 0xbff0000000000000ull, 0x7ff0000000000000ull,
    0xfff0000000000000ull, 0x7ff8000000000000ull, 0x7ff4000000000000ull, 0xfff8dead00000001ull,
    0x0000000000000001ull, 0x000fffffffffffffull, 0x0010000000000000ull, 0x0010000000000001ull,
    0x8010000000000000ull, 0x7fefffffffffffffull, 0xffefffffffffffffull, 0x3cb0000000000000ull,
    0x4340000000000000ull, 0x3fe0000000000000ull, 0x0020000000000000ull, 0x001fffffffffffffull,
    0x3ff0000000000001ull, 0x3fefffffffffffffull, 0x7fe0000000000000ull, 0x0008000000000000ull,
};

static uint64_t operand(void) {
    uint64_t r = next();
    switch (r & 7) {
    case 0: case 1: return specials[(r >> 8) % (sizeof specials / sizeof specials[0])];
    case 2: return r;                                          /* any bits */
    case 3: return (r & 0x800fffffffffffffull) | 0x0010000000000000ull * ((r >> 20) % 3);  /* tiny */
    case 4: return (r & 0x800fffffffffffffull) | 0x7fd0000000000000ull;                    /* huge */
    default: {                                                  /* exact: small integers and halves */
        double d = (double)(int)((r >> 16) % 2001 - 1000) * 0.25;
        uint64_t u; memcpy(&u, &d, 8); return u;
    }
    }
}

static double D(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
static uint64_t U(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }

int main(void) {
    uint64_t hash = 1469598103934665603ull, inexact = 0, invalid = 0;
    for (int i = 0; i < 300000; i++) {
        uint64_t r = next();
        if ((r & 63) == 0) { unsigned rm = (r >> 6) & 7; rm = rm > 4 ? 0 : rm; __asm__ volatile("fsrm %0" :: "r"(rm)); }
        if ((r & 0x300) == 0) __asm__ volatile("csrw fflags, zero");
        double a = D(operand()), b = D(operand()), c = D(operand()), x;
        switch ((r >> 10) % 16) {
        case 0: __asm__ volatile("fadd.d %0, %1, %2" : "=f"(x) : "f"(a), "f"(b)); break;
        case 1: __asm__ volatile("fsub.d %0, %1, %2" : "=f"(x) : "f"(a), "f"(b)); break;
        case 2: __asm__ volatile("fmul.d %0, %1, %2" : "=f"(x) : "f"(a), "f"(b)); break;
        case 3: __asm__ volatile("fdiv.d %0, %1, %2" : "=f"(x) : "f"(a), "f"(b)); break;
        case 4: __asm__ volatile("fsqrt.d %0, %1" : "=f"(x) : "f"(a)); break;
        case 5: __asm__ volatile("fmadd.d %0, %1, %2, %3" : "=f"(x) : "f"(a), "f"(b), "f"(c)); break;
        case 6: __asm__ volatile("fmsub.d %0, %1, %2, %3" : "=f"(x) : "f"(a), "f"(b), "f"(c)); break;
        case 7: __asm__ volatile("fnmsub.d %0, %1, %2, %3" : "=f"(x) : "f"(a), "f"(b), "f"(c)); break;
        case 8: __asm__ volatile("fnmadd.d %0, %1, %2, %3" : "=f"(x) : "f"(a), "f"(b), "f"(c)); break;
        case 9: __asm__ volatile("fsgnj.d %0, %1, %2" : "=f"(x) : "f"(a), "f"(b)); break;
        case 10: __asm__ volatile("fsgnjn.d %0, %1, %2" : "=f"(x) : "f"(a), "f"(b)); break;
        case 11: __asm__ volatile("fsgnjx.d %0, %1, %2" : "=f"(x) : "f"(a), "f"(b)); break;
        case 12: __asm__ volatile("fadd.d %0, %1, %2, rne" : "=f"(x) : "f"(a), "f"(b)); break;
        case 13: __asm__ volatile("fmul.d %0, %1, %2, rtz" : "=f"(x) : "f"(a), "f"(b)); break;
        case 14: __asm__ volatile("fmadd.d %0, %1, %2, %3, rne" : "=f"(x) : "f"(a), "f"(b), "f"(c)); break;
        default: { uint64_t bits; __asm__ volatile("fmv.x.d %0, %1" : "=r"(bits) : "f"(a));
                   __asm__ volatile("fmv.d.x %0, %1" : "=f"(x) : "r"(bits ^ (r & 0x8000000000000000ull))); }
        }
        unsigned flags;
        __asm__ volatile("frflags %0" : "=r"(flags));
        inexact += flags & 1;
        invalid += (flags >> 4) & 1;
        hash = (hash ^ U(x)) * 1099511628211ull;
        hash = (hash ^ flags) * 1099511628211ull;
    }
    printf("fpmix %016llx inexact %llu invalid %llu\n", (unsigned long long)hash, (unsigned long long)inexact,
           (unsigned long long)invalid);
    return 0;
}
