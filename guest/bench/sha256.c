/* sha256: SHA-256 (FIPS 180-4) over generated data, printing the digest.
 * argv[1] = MiB of data (default 64). A known-answer test runs first. */
#include "benchlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t K[64];
static uint32_t H0[8];

/* The constants are the fractional bits of square/cube roots of the first primes;
 * deriving them avoids typing 72 hex words (the known-answer test guards this). */
static void init_constants(void)
{
    int found = 0;
    for (int p = 2; found < 64; p++) {
        int prime = 1;
        for (int d = 2; d * d <= p; d++)
            if (p % d == 0) { prime = 0; break; }
        if (!prime)
            continue;
        double c = cbrt((double)p);
        K[found] = (uint32_t)((c - floor(c)) * 4294967296.0);
        if (found < 8) {
            double s = sqrt((double)p);
            H0[found] = (uint32_t)((s - floor(s)) * 4294967296.0);
        }
        found++;
    }
}

struct sha256 {
    uint32_t h[8];
    uint8_t buf[64];
    size_t used;
    uint64_t total;
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void compress(uint32_t h[8], const uint8_t *block)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
               (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

static void sha_init(struct sha256 *s)
{
    memcpy(s->h, H0, sizeof H0);
    s->used = 0;
    s->total = 0;
}

static void sha_update(struct sha256 *s, const uint8_t *p, size_t n)
{
    s->total += n;
    if (s->used > 0) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->buf + s->used, p, take);
        s->used += take; p += take; n -= take;
        if (s->used < 64)
            return;
        compress(s->h, s->buf);
        s->used = 0;
    }
    for (; n >= 64; p += 64, n -= 64)
        compress(s->h, p);
    memcpy(s->buf, p, n);
    s->used = n;
}

static void sha_final(struct sha256 *s, char hex[65])
{
    uint64_t bits = s->total * 8;
    uint8_t pad[72] = { 0x80 };
    size_t padlen = (s->used < 56 ? 56 : 120) - s->used;
    for (int i = 0; i < 8; i++)
        pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_update(s, pad, padlen + 8);
    for (int i = 0; i < 8; i++)
        sprintf(hex + 8 * i, "%08x", s->h[i]);
}

static void known_answer(const char *msg, const char *want)
{
    struct sha256 s;
    char hex[65];
    sha_init(&s);
    sha_update(&s, (const uint8_t *)msg, strlen(msg));
    sha_final(&s, hex);
    if (strcmp(hex, want) != 0) {
        fprintf(stderr, "sha256: self-test failed for \"%s\": %s\n", msg, hex);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    uint64_t mib = bench_arg(argc, argv, 64, 4096, "MiB");
    init_constants();
    known_answer("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    known_answer("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    enum { CHUNK = 1 << 20 };
    uint64_t *chunk = malloc(CHUNK);
    if (chunk == NULL) {
        fprintf(stderr, "sha256: out of memory\n");
        return 1;
    }
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    struct sha256 s;
    char hex[65];

    double t0 = bench_now();
    sha_init(&s);
    for (uint64_t m = 0; m < mib; m++) {
        for (size_t i = 0; i < CHUNK / 8; i++)
            chunk[i] = bench_rand(&seed);
        sha_update(&s, (const uint8_t *)chunk, CHUNK);
    }
    sha_final(&s, hex);
    double t1 = bench_now();

    bench_report("sha256", t0, t1, hex);
    free(chunk);
    return 0;
}
