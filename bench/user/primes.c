// CPU-bound integer work: a sieve of Eratosthenes, repeated.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    const int n = 4000000;
    char *s = malloc(n + 1);
    long total = 0;
    for (int round = 0; round < 6; round++) {
        memset(s, 1, n + 1);
        for (long i = 2; i * i <= n; i++)
            if (s[i]) for (long j = i * i; j <= n; j += i) s[j] = 0;
        for (int i = 2; i <= n; i++) total += s[i];
    }
    printf("%ld\n", total);
    return 0;
}
