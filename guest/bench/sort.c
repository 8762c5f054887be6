/* sort: sorts pseudo-random 32-bit ints (argv[1] = count, default 10 million) with an
 * in-place quicksort (median of three, insertion sort for short runs), then checks order. */
#include "benchlib.h"

#include <stdio.h>
#include <stdlib.h>

static void insertion_sort(uint32_t *a, long n)
{
    for (long i = 1; i < n; i++) {
        uint32_t v = a[i];
        long j = i - 1;
        while (j >= 0 && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

static inline void swap(uint32_t *x, uint32_t *y) { uint32_t t = *x; *x = *y; *y = t; }

/* Recurses on the smaller side only, so depth stays O(log n). */
static void quick_sort(uint32_t *a, long n)
{
    while (n > 24) {
        long mid = n / 2;
        if (a[mid] < a[0]) swap(&a[mid], &a[0]);
        if (a[n - 1] < a[0]) swap(&a[n - 1], &a[0]);
        if (a[n - 1] < a[mid]) swap(&a[n - 1], &a[mid]);
        uint32_t pivot = a[mid];
        long i = 0, j = n - 1;
        for (;;) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i >= j) break;
            swap(&a[i], &a[j]);
            i++; j--;
        }
        long left = j + 1;   /* a[0..j] <= pivot <= a[j+1..n-1] */
        if (left < n - left) {
            quick_sort(a, left);
            a += left; n -= left;
        } else {
            quick_sort(a + left, n - left);
            n = left;
        }
    }
    insertion_sort(a, n);
}

int main(int argc, char **argv)
{
    uint64_t count = bench_arg(argc, argv, 10000000, 200000000, "count");
    uint32_t *a = malloc(count * sizeof *a);
    if (a == NULL) {
        fprintf(stderr, "sort: cannot allocate %llu ints\n", (unsigned long long)count);
        return 1;
    }
    uint64_t seed = 0x2545f4914f6cdd1dULL;
    uint64_t sum_before = 0;

    double t0 = bench_now();
    for (uint64_t i = 0; i < count; i++) {
        a[i] = (uint32_t)(bench_rand(&seed) >> 32);
        sum_before += a[i];
    }
    quick_sort(a, (long)count);
    uint64_t sum_after = 0, weighted = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (i > 0 && a[i - 1] > a[i]) {
            printf("BENCH sort FAIL unsorted at %llu\n", (unsigned long long)i);
            return 1;
        }
        sum_after += a[i];
        weighted = weighted * 31 + a[i];
    }
    double t1 = bench_now();

    if (sum_after != sum_before) {
        printf("BENCH sort FAIL elements changed\n");
        return 1;
    }
    char result[48];
    snprintf(result, sizeof result, "sorted:%016llx", (unsigned long long)weighted);
    bench_report("sort", t0, t1, result);
    free(a);
    return 0;
}
