// Threads: a contended mutex, a condition variable, atomics, thread-local storage, join, detached exit.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define THREADS 4
#define ITER 200000
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static atomic_long acounter;
static __thread int tls_value;
static pthread_mutex_t cm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready;

static void *worker(void *arg) {
    long id = (long)arg;
    tls_value = (int)id * 10;
    for (int i = 0; i < ITER; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        atomic_fetch_add(&acounter, 1);
    }
    pthread_mutex_lock(&cm);
    ready++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&cm);
    return (void *)(long)(tls_value + 1);
}

static void *short_worker(void *arg) {
    for (int i = 0; i < 1000; i++) { pthread_mutex_lock(&lock); counter++; pthread_mutex_unlock(&lock); }
    return arg;
}

int main(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    pthread_mutex_lock(&cm);
    while (ready < THREADS) pthread_cond_wait(&cv, &cm);
    pthread_mutex_unlock(&cm);
    long sum = 0;
    for (int i = 0; i < THREADS; i++) { void *r; pthread_join(t[i], &r); sum += (long)r; }
    printf("mutex counter: %ld (expected %d)\n", counter, THREADS * ITER);
    printf("atomic counter: %ld\n", (long)atomic_load(&acounter));
    printf("join results sum: %ld\n", sum);
    printf("main tls untouched: %d\n", tls_value);
    // Thread churn: 80 threads created and joined in rounds (each exit frees its hart).
    counter = 0;
    for (int round = 0; round < 10; round++) {
        pthread_t s[8];
        for (long i = 0; i < 8; i++) pthread_create(&s[i], NULL, short_worker, NULL);
        for (int i = 0; i < 8; i++) pthread_join(s[i], NULL);
    }
    printf("churn counter: %ld\n", counter);
    return 0;
}
