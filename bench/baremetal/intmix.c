/* intmix: a CoreMark-like integer workload for bare-metal timing.
 *
 * Each iteration runs four kernels on data derived from the iteration number and folds their results
 * into a running CRC-32: an in-place heap sort of 512 words, a bitwise CRC-32 over 1 KiB, a 16x16 integer
 * matrix multiply, and a small state machine that classifies the characters of a generated text.
 *
 * Built twice by bench/baremetal/build.sh: for the host (-DHOST, prints the final checksum) and for RV64
 * bare metal with -DEXPECTED=<that checksum>, where main returns 0 (pass through tohost) only when the
 * guest computed the same value. So a wrong emulator result shows up as a failure, not as a fast time.
 * Only fixed-width unsigned arithmetic is used, so host and guest agree exactly.
 */
#include <stdint.h>

#ifndef ITERATIONS
#define ITERATIONS 1000
#endif

#define SORT_N 512
#define CRC_BYTES 1024
#define MAT_N 16
#define TEXT_N 1024

static uint32_t sort_buf[SORT_N];
static uint8_t crc_buf[CRC_BYTES];
static uint32_t mat_a[MAT_N * MAT_N], mat_b[MAT_N * MAT_N], mat_c[MAT_N * MAT_N];
static uint8_t text[TEXT_N];

static uint32_t rng_state;

static uint32_t rng(void) {
    /* xorshift32 */
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x;
}

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, uint32_t n) {
    crc = ~crc;
    for (uint32_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint32_t crc32_word(uint32_t crc, uint32_t w) {
    uint8_t b[4] = {(uint8_t)w, (uint8_t)(w >> 8), (uint8_t)(w >> 16), (uint8_t)(w >> 24)};
    return crc32_update(crc, b, 4);
}

static void sift_down(uint32_t *a, uint32_t root, uint32_t n) {
    for (;;) {
        uint32_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && a[child + 1] > a[child]) child++;
        if (a[root] >= a[child]) return;
        uint32_t t = a[root]; a[root] = a[child]; a[child] = t;
        root = child;
    }
}

static uint32_t kernel_sort(void) {
    for (uint32_t i = 0; i < SORT_N; i++) sort_buf[i] = rng();
    for (uint32_t i = SORT_N / 2; i-- > 0;) sift_down(sort_buf, i, SORT_N);
    for (uint32_t n = SORT_N - 1; n > 0; n--) {
        uint32_t t = sort_buf[0]; sort_buf[0] = sort_buf[n]; sort_buf[n] = t;
        sift_down(sort_buf, 0, n);
    }
    uint32_t h = 0;
    for (uint32_t i = 0; i < SORT_N; i++) {
        if (i > 0 && sort_buf[i - 1] > sort_buf[i]) return 0xdeadu;  /* not sorted: poison the checksum */
        h = h * 31u + sort_buf[i];
    }
    return h;
}

static uint32_t kernel_crc(uint32_t seed) {
    for (uint32_t i = 0; i < CRC_BYTES; i++) crc_buf[i] = (uint8_t)(rng() >> 24);
    return crc32_update(seed, crc_buf, CRC_BYTES);
}

static uint32_t kernel_matrix(void) {
    for (uint32_t i = 0; i < MAT_N * MAT_N; i++) {
        mat_a[i] = rng() & 0xffffu;
        mat_b[i] = rng() & 0xffffu;
    }
    for (uint32_t i = 0; i < MAT_N; i++)
        for (uint32_t j = 0; j < MAT_N; j++) {
            uint32_t s = 0;
            for (uint32_t k = 0; k < MAT_N; k++) s += mat_a[i * MAT_N + k] * mat_b[k * MAT_N + j];
            mat_c[i * MAT_N + j] = s;
        }
    uint32_t h = 0;
    for (uint32_t i = 0; i < MAT_N * MAT_N; i++) h ^= mat_c[i] + (h << 6) + (h >> 2);
    return h;
}

/* States of a tiny number scanner, as in CoreMark's state kernel. */
enum { S_START, S_INT, S_FLOAT, S_EXP, S_SCI, S_INVALID, S_COUNT };

static uint32_t kernel_state(void) {
    static const char alphabet[] = "0123456789+-.eE ,x";
    for (uint32_t i = 0; i < TEXT_N; i++) text[i] = (uint8_t)alphabet[rng() % (sizeof alphabet - 1)];
    uint32_t counts[S_COUNT] = {0};
    uint32_t state = S_START;
    for (uint32_t i = 0; i < TEXT_N; i++) {
        uint8_t c = text[i];
        int digit = c >= '0' && c <= '9';
        if (c == ',' || c == ' ') {
            counts[state]++;
            state = S_START;
            continue;
        }
        switch (state) {
        case S_START:
            state = digit ? S_INT : (c == '+' || c == '-') ? S_INT : (c == '.') ? S_FLOAT : S_INVALID;
            break;
        case S_INT:
            state = digit ? S_INT : (c == '.') ? S_FLOAT : (c == 'e' || c == 'E') ? S_EXP : S_INVALID;
            break;
        case S_FLOAT:
            state = digit ? S_FLOAT : (c == 'e' || c == 'E') ? S_EXP : S_INVALID;
            break;
        case S_EXP:
            state = (digit || c == '+' || c == '-') ? S_SCI : S_INVALID;
            break;
        case S_SCI:
            state = digit ? S_SCI : S_INVALID;
            break;
        default:
            break;
        }
    }
    counts[state]++;
    uint32_t h = 0;
    for (uint32_t s = 0; s < S_COUNT; s++) h = h * 1000003u + counts[s];
    return h;
}

static uint32_t run(uint32_t iterations) {
    uint32_t check = 0;
    for (uint32_t it = 0; it < iterations; it++) {
        rng_state = 0x9e3779b9u ^ (it * 0x85ebca6bu);
        if (rng_state == 0) rng_state = 1;
        check = crc32_word(check, kernel_sort());
        check = crc32_word(check, kernel_crc(check));
        check = crc32_word(check, kernel_matrix());
        check = crc32_word(check, kernel_state());
    }
    return check;
}

#ifdef HOST
#include <stdio.h>
int main(void) {
    printf("0x%08x\n", run(ITERATIONS));
    return 0;
}
#else
int main(void) {
#ifndef EXPECTED
#error "EXPECTED (the host-computed checksum) must be defined"
#endif
    return run(ITERATIONS) == (uint32_t)(EXPECTED) ? 0 : 1;
}
#endif
