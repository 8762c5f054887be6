/* abwalk: the live-migration A-B workload (QEMU's migration-test idea).
 * Walks a buffer (argv[1] MiB, default 64) incrementing one byte per 4 KiB page in a fixed
 * order, forever. At any instant the pages before the cursor hold v+1 and the rest hold v, so
 * each increment checks that its page still holds v: a page lost or restored stale by a
 * migration shows up as "ABWALK FAIL". Prints "ABWALK pass N" about once a second. With
 * argv[2] = N it stops after N passes (exit 0), for use outside migration tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    unsigned long long limit = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    if (mib < 1 || mib > 4096) {
        fprintf(stderr, "abwalk: size must be 1..4096 MiB\n");
        return 2;
    }
    size_t pages = mib << 8;
    volatile uint8_t *buf = malloc(pages << 12);
    if (buf == NULL) {
        fprintf(stderr, "abwalk: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    memset((void *)buf, 0, pages << 12);
    printf("ABWALK start %zu MiB\n", mib);
    fflush(stdout);
    uint8_t v = 0;
    double last = now();
    for (unsigned long long pass = 1;; pass++) {
        for (size_t i = 0; i < pages; i++) {
            uint8_t got = buf[i << 12];
            if (got != v) {
                printf("ABWALK FAIL pass %llu page %zu holds %u, expected %u\n", pass, i, got, v);
                fflush(stdout);
                return 1;
            }
            buf[i << 12] = (uint8_t)(v + 1);
        }
        v++;
        double t = now();
        if (t - last >= 1.0) {
            printf("ABWALK pass %llu\n", pass);
            fflush(stdout);
            last = t;
        }
        if (limit && pass >= limit) {
            printf("ABWALK done %llu passes\n", pass);
            return 0;
        }
    }
}
