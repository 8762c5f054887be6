/* memwalk: memory-latency bound pointer chasing over a 64 MiB buffer.
 * Slot i holds the index of the next slot, (A*i + C) mod n: with n a power of two,
 * A = 1 mod 4 and C odd this is one cycle through every slot (Hull-Dobell), visited in
 * a scattered order. Filling is sequential (cheap, untimed); the timed part is argv[1]
 * dependent loads (default 4 Mi), checked afterwards against the formula. */
#include "benchlib.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    uint64_t steps = bench_arg(argc, argv, 4u << 20, 1ULL << 40, "steps");
    const uint64_t n = 64u << 20 >> 2;            /* 64 MiB of 32-bit slots, a power of two */
    const uint64_t A = 2862933555777941757ULL;    /* = 1 mod 4 */
    const uint64_t C = 3037000493ULL;             /* odd */
    uint32_t *next = malloc(n * sizeof *next);
    if (next == NULL) {
        fprintf(stderr, "memwalk: cannot allocate 64 MiB\n");
        return 1;
    }
    for (uint64_t i = 0; i < n; i++)
        next[i] = (uint32_t)((A * i + C) & (n - 1));

    double t0 = bench_now();
    uint32_t p = 0;
    uint64_t acc = 0xcbf29ce484222325ULL;
    for (uint64_t s = 0; s < steps; s++) {
        p = next[p];
        acc = (acc ^ p) * 0x100000001b3ULL;
    }
    double t1 = bench_now();

    /* Recompute the walk without memory: the loads must have returned the formula's values. */
    uint64_t q = 0;
    for (uint64_t s = 0; s < steps; s++)
        q = (A * q + C) & (n - 1);
    if (q != p) {
        printf("BENCH memwalk FAIL ended at slot %u, expected %llu\n", p, (unsigned long long)q);
        return 1;
    }
    char result[48];
    snprintf(result, sizeof result, "%016llx", (unsigned long long)acc);
    bench_report("memwalk", t0, t1, result);
    free(next);
    return 0;
}
