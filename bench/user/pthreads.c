// Two threads of independent integer work (shows parallel speed-up on two host cores).
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
static void *work(void *arg) {
    uint64_t x = (uint64_t)(uintptr_t)arg + 1;
    for (long i = 0; i < 150000000; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (void *)(uintptr_t)x;
}
int main(void) {
    pthread_t t[2];
    for (long i = 0; i < 2; i++) pthread_create(&t[i], NULL, work, (void *)i);
    uint64_t sum = 0;
    for (int i = 0; i < 2; i++) { void *r; pthread_join(t[i], &r); sum += (uintptr_t)r; }
    printf("%016llx\n", (unsigned long long)sum);
    return 0;
}
