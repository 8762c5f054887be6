#include "benchlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime");
        exit(2);
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t bench_arg(int argc, char **argv, uint64_t fallback, uint64_t max, const char *what)
{
    if (argc < 2)
        return fallback;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(argv[1], &end, 10);
    if (errno != 0 || end == argv[1] || *end != '\0' || v == 0 || v > max) {
        fprintf(stderr, "%s: %s must be an integer in 1..%llu, got '%s'\n",
                argv[0], what, (unsigned long long)max, argv[1]);
        exit(2);
    }
    return v;
}

void bench_report(const char *name, double start, double end, const char *result)
{
    printf("BENCH %s %.3f %s\n", name, end - start, result);
    fflush(stdout);
}
