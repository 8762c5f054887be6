/* intloop: a Dhrystone-flavoured integer loop: record copies, short string
 * compares, switch dispatch, array updates and small calls. argv[1] = iterations. */
#include "benchlib.h"

#include <stdio.h>
#include <string.h>

struct record {
    struct record *next;
    int kind;
    int value;
    char name[32];
};

static int glob_int;
static char glob_char;
static int arr1[64];
static int arr2[64][64];

/* noinline keeps the call overhead that Dhrystone measures. */
__attribute__((noinline)) static int step_kind(int kind, int v)
{
    switch (kind & 3) {
    case 0: return v + 7;
    case 1: return v ^ 0x5a5a;
    case 2: return (v << 1) - kind;
    default: return v - (v >> 3);
    }
}

__attribute__((noinline)) static int compare_names(const char *a, const char *b)
{
    int i = 0;
    while (a[i] != '\0' && a[i] == b[i])
        i++;
    return (unsigned char)a[i] - (unsigned char)b[i];
}

__attribute__((noinline)) static void update_arrays(int idx, int val)
{
    int loc = idx + 5;
    arr1[loc & 63] = val;
    arr1[(loc + 1) & 63] = arr1[loc & 63];
    arr1[(loc + 30) & 63] = loc;
    for (int i = loc; i <= loc + 1; i++)
        arr2[loc & 63][i & 63] = loc;
    arr2[loc & 63][(loc - 1) & 63] += 1;
    arr2[(loc + 20) & 63][loc & 63] = arr1[loc & 63];
    glob_int = 5;
}

int main(int argc, char **argv)
{
    uint64_t iters = bench_arg(argc, argv, 16000000, 1000000000000ULL, "iterations");
    struct record a, b;
    char str1[32], str2[32];
    uint64_t sum = 0;

    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.next = &b;
    strcpy(a.name, "RIVET PROGRAM, SOME STRING");
    strcpy(str1, "RIVET PROGRAM, 1'ST STRING");

    double t0 = bench_now();
    for (uint64_t i = 0; i < iters; i++) {
        int n = (int)(i & 0xffff);
        strcpy(str2, "RIVET PROGRAM, 2'ND STRING");
        str2[15] = (char)('0' + (n % 10));
        *a.next = a;                       /* record copy */
        a.next->kind = n;
        a.next->value = step_kind(n, a.value);
        a.value = a.next->value & 0xffff;
        if (compare_names(str1, str2) > 0)
            glob_char = 'A';
        else
            glob_char = 'B';
        update_arrays(n & 31, a.value);
        int q = (n * 3 + 7) / (n % 5 + 1);
        sum += (uint64_t)(q + glob_int + glob_char + a.value);
        a.next = &b;
    }
    double t1 = bench_now();

    sum += (uint64_t)arr1[8] + (uint64_t)arr2[8][7];
    char result[32];
    snprintf(result, sizeof result, "%016llx", (unsigned long long)sum);
    bench_report("intloop", t0, t1, result);
    return 0;
}
