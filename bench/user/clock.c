// Cost of clock_gettime per call (through the vDSO when there is one, else a system call).
#include <stdio.h>
#include <time.h>

int main(void) {
    enum { N = 200000 };
    struct timespec a, b, t;
    clock_gettime(CLOCK_MONOTONIC, &a);
    long sum = 0;
    for (int i = 0; i < N; i++) { clock_gettime(CLOCK_MONOTONIC, &t); sum += t.tv_nsec & 1; }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / N;
    printf("%.0f\n", ns + (sum < 0));
    return 0;
}
