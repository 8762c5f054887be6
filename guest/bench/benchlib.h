/* Shared helpers for the guest bench programs: timing, argument parsing, a PRNG. */
#ifndef RIVET_BENCHLIB_H
#define RIVET_BENCHLIB_H

#include <stdint.h>

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* argv[1] as a positive count, or fallback when absent; exits with a message if malformed
 * or outside [1, max]. */
uint64_t bench_arg(int argc, char **argv, uint64_t fallback, uint64_t max, const char *what);

/* Prints the one result line: "BENCH <name> <seconds, 3 decimals> <result>". */
void bench_report(const char *name, double start, double end, const char *result);

/* xorshift64*: deterministic, fast, good enough to make data. State must be nonzero. */
static inline uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#endif
