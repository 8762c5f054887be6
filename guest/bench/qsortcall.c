/* qsortcall: libc qsort() and bsearch() with comparison callbacks, so most of the time goes to
 * indirect calls into small functions and their returns. Each round fills an array of records
 * with pseudo-random keys, sorts it by one of three comparators (chosen per round), checks the
 * order, and looks keys up with bsearch(). argv[1] = rounds (default 40). */
#include "benchlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORDS 50000
#define LOOKUPS 50000

struct record { uint32_t key; uint16_t group; uint16_t tag; char name[8]; };

static int by_key(const void *a, const void *b)
{
    uint32_t x = ((const struct record *)a)->key, y = ((const struct record *)b)->key;
    return (x > y) - (x < y);
}

/* Two-level order: group ascending, then key descending. */
static int by_group_then_key_desc(const void *a, const void *b)
{
    const struct record *x = a, *y = b;
    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    return (x->key < y->key) - (x->key > y->key);
}

/* String order on the short name, then the key (a memcmp call inside the callback). */
static int by_name(const void *a, const void *b)
{
    const struct record *x = a, *y = b;
    int c = memcmp(x->name, y->name, sizeof x->name);
    if (c != 0)
        return c;
    return (x->key > y->key) - (x->key < y->key);
}

typedef int (*comparator)(const void *, const void *);

int main(int argc, char **argv)
{
    uint64_t rounds = bench_arg(argc, argv, 40, 100000, "rounds");
    static const comparator orders[] = { by_key, by_group_then_key_desc, by_name };
    struct record *recs = malloc(RECORDS * sizeof *recs);
    if (recs == NULL) {
        fprintf(stderr, "qsortcall: out of memory\n");
        return 1;
    }
    uint64_t seed = 0x6a09e667f3bcc909ULL;
    uint64_t check = 0xcbf29ce484222325ULL;

    double t0 = bench_now();
    for (uint64_t r = 0; r < rounds; r++) {
        for (int i = 0; i < RECORDS; i++) {
            uint64_t v = bench_rand(&seed);
            recs[i].key = (uint32_t)(v >> 32);
            recs[i].group = (uint16_t)(v & 63);
            recs[i].tag = (uint16_t)i;
            for (int c = 0; c < 8; c++)
                recs[i].name[c] = (char)('a' + ((v >> (8 + 3 * c)) & 7));
        }
        comparator cmp = orders[r % 3];
        qsort(recs, RECORDS, sizeof *recs, cmp);
        for (int i = 1; i < RECORDS; i++) {
            if (cmp(&recs[i - 1], &recs[i]) > 0) {
                printf("BENCH qsortcall FAIL order at %d\n", i);
                return 1;
            }
        }
        uint64_t hits = 0;
        for (int i = 0; i < LOOKUPS; i++) {
            /* Half the probes are existing records, half are random (mostly misses). */
            struct record probe;
            if (i & 1) {
                probe = recs[(bench_rand(&seed) >> 33) % RECORDS];
            } else {
                uint64_t v = bench_rand(&seed);
                probe = recs[i % RECORDS];
                probe.key = (uint32_t)(v >> 32);
            }
            const struct record *hit = bsearch(&probe, recs, RECORDS, sizeof *recs, cmp);
            if (hit != NULL)
                hits += (uint64_t)(hit - recs) + 1;
        }
        for (int i = 0; i < RECORDS; i += 97)
            check = (check ^ recs[i].tag) * 0x100000001b3ULL;
        check = (check ^ hits) * 0x100000001b3ULL;
    }
    double t1 = bench_now();

    char result[40];
    snprintf(result, sizeof result, "check:%016llx", (unsigned long long)check);
    bench_report("qsortcall", t0, t1, result);
    free(recs);
    return 0;
}
