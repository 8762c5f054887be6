/* smpstress: threads on several harts hammering shared memory, with exact expected results.
 *
 *   smpstress check THREADS ITERATIONS   atomics, LR/SC loops, a mutex and a spinlock; exit 0 when
 *                                        every final count is exact, 1 otherwise
 *   smpstress compute THREADS ITERATIONS independent integer work per thread (no sharing): the
 *                                        parallel workload of bench/smp.sh
 *   smpstress smc ROUNDS                 cross-hart code modification: a thread on CPU 0 rewrites a
 *                                        function, flushes the icache (riscv_flush_icache: remote fence.i)
 *                                        and a thread on CPU 1 calls it; every result must be the new one
 *
 * Each line it prints starts with SMPSTRESS (or BENCH for compute) so tests can find it. */
#define _GNU_SOURCE
#include "benchlib.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_THREADS 16

static uint64_t iterations;
static int thread_count;

/* Shared state, each on its own cache line so the tests do not measure false sharing. */
static _Alignas(64) uint64_t amo_counter;      /* __atomic_fetch_add: amoadd.d */
static _Alignas(64) uint32_t amo_counter32;    /* 32-bit amoadd.w */
static _Alignas(64) uint64_t cas_counter;      /* compare-exchange loop: lr.d/sc.d */
static _Alignas(64) uint64_t lrsc_counter;     /* hand-written lr.d/sc.d increment */
static _Alignas(64) uint32_t lrsc_counter32;   /* hand-written lr.w/sc.w increment */
static _Alignas(64) uint64_t mutex_counter;    /* plain increments under a pthread mutex (futex) */
static _Alignas(64) pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static _Alignas(64) uint32_t spin;             /* amoswap.w.aq spinlock */
static _Alignas(64) uint64_t spin_counter;     /* two plain words updated under the spinlock */
static _Alignas(64) uint64_t spin_shadow;
static _Alignas(64) uint64_t max_seen;         /* amomaxu.d */
static _Alignas(64) int start_flag;

static uint64_t cpu_masks[MAX_THREADS];

static inline void lrsc_increment64(uint64_t *p)
{
    uint64_t tmp, fail;
    __asm__ volatile("1: lr.d.aq %0, (%2)\n"
                     "   addi %0, %0, 1\n"
                     "   sc.d.rl %1, %0, (%2)\n"
                     "   bnez %1, 1b\n"
                     : "=&r"(tmp), "=&r"(fail)
                     : "r"(p)
                     : "memory");
}

static inline void lrsc_increment32(uint32_t *p)
{
    uint32_t tmp, fail;
    __asm__ volatile("1: lr.w.aq %0, (%2)\n"
                     "   addiw %0, %0, 1\n"
                     "   sc.w.rl %1, %0, (%2)\n"
                     "   bnez %1, 1b\n"
                     : "=&r"(tmp), "=&r"(fail)
                     : "r"(p)
                     : "memory");
}

static inline void amomaxu64(uint64_t *p, uint64_t v)
{
    uint64_t old;
    __asm__ volatile("amomaxu.d %0, %2, (%1)" : "=r"(old) : "r"(p), "r"(v) : "memory");
    (void)old;
}

static void note_cpu(int id)
{
    int cpu = sched_getcpu();
    if (cpu >= 0 && cpu < 64)
        cpu_masks[id] |= 1ULL << cpu;
}

static void *check_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    while (!__atomic_load_n(&start_flag, __ATOMIC_ACQUIRE))
        ;
    for (uint64_t i = 0; i < iterations; i++) {
        __atomic_fetch_add(&amo_counter, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&amo_counter32, 1, __ATOMIC_SEQ_CST);
        uint64_t old = __atomic_load_n(&cas_counter, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&cas_counter, &old, old + 1, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            ;
        lrsc_increment64(&lrsc_counter);
        lrsc_increment32(&lrsc_counter32);
        if ((i & 7) == 0) {
            pthread_mutex_lock(&mutex);
            mutex_counter++;
            pthread_mutex_unlock(&mutex);
        }
        while (__atomic_exchange_n(&spin, 1, __ATOMIC_ACQUIRE))
            while (__atomic_load_n(&spin, __ATOMIC_RELAXED))
                ;
        /* Both words move together under the lock; a broken lock shows as a difference. */
        uint64_t s = spin_counter;
        spin_shadow = s + 1;
        spin_counter = s + 1;
        __atomic_store_n(&spin, 0, __ATOMIC_RELEASE);
        amomaxu64(&max_seen, (uint64_t)id * iterations + i);
        if ((i & 1023) == 0)
            note_cpu(id);
    }
    note_cpu(id);
    return NULL;
}

static volatile uint64_t compute_sink[MAX_THREADS * 8];

static void *compute_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t state = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(id + 1);
    uint64_t acc = 0;
    for (uint64_t i = 0; i < iterations; i++) {
        uint64_t r = bench_rand(&state);
        acc += (r >> 7) ^ (acc << 3) ^ (i * 2654435761u);
        if (r & 1)
            acc = acc * 31 + (r % 1000003);
    }
    compute_sink[id * 8] = acc;
    note_cpu(id);
    return NULL;
}

static int cpus_used(void);

/* Cross-hart self-modifying code. */
typedef long (*const_fn)(void);
static uint32_t *smc_code;
static _Alignas(64) uint64_t smc_round;     /* written by the writer when round N's code is in place */
static _Alignas(64) uint64_t smc_done;      /* written by the caller when it has run round N */
static _Alignas(64) uint64_t smc_failures;

static int32_t smc_value(uint64_t round) { return (int32_t)(round * 7919u) ^ ((round & 1) ? 0x5a5a5 : -3); }

static void emit_const(uint32_t *code, int32_t value)
{
    /* lui a0, upper; addiw a0, a0, low; ret (hand-encoded, no assembler needed) */
    uint32_t upper = ((uint32_t)value + 0x800u) >> 12;
    int32_t low = (int32_t)((uint32_t)value << 20) >> 20;
    code[0] = (upper & 0xfffff) << 12 | 10u << 7 | 0x37;
    code[1] = ((uint32_t)low & 0xfff) << 20 | 10u << 15 | 10u << 7 | 0x1b;
    code[2] = 1u << 15 | 0x67;
}

static void pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *smc_writer(void *arg)
{
    (void)arg;
    pin_to(0);
    for (uint64_t r = 1; r <= iterations; r++) {
        while (__atomic_load_n(&smc_done, __ATOMIC_ACQUIRE) != r - 1)
            ;
        emit_const(smc_code, smc_value(r));
        __builtin___clear_cache((char *)smc_code, (char *)(smc_code + 3));
        __atomic_store_n(&smc_round, r, __ATOMIC_RELEASE);
    }
    note_cpu(0);
    return NULL;
}

static void *smc_caller(void *arg)
{
    (void)arg;
    pin_to(1);
    for (uint64_t r = 1; r <= iterations; r++) {
        while (__atomic_load_n(&smc_round, __ATOMIC_ACQUIRE) != r)
            ;
        long got = ((const_fn)(uintptr_t)smc_code)();
        if (got != (long)smc_value(r) && smc_failures++ < 5)
            printf("SMPSTRESS smc round %llu: got %ld, wanted %ld\n", (unsigned long long)r, got, (long)smc_value(r));
        __atomic_store_n(&smc_done, r, __ATOMIC_RELEASE);
    }
    note_cpu(1);
    return NULL;
}

static int run_smc(void)
{
    smc_code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (smc_code == MAP_FAILED) {
        perror("smpstress: mmap RWX");
        return 1;
    }
    emit_const(smc_code, 0);
    __builtin___clear_cache((char *)smc_code, (char *)(smc_code + 3));
    pthread_t writer, caller;
    thread_count = 2;
    pthread_create(&caller, NULL, smc_caller, NULL);
    pthread_create(&writer, NULL, smc_writer, NULL);
    pthread_join(writer, NULL);
    pthread_join(caller, NULL);
    printf("SMPSTRESS smc rounds=%llu failures=%llu cpus-used=%d\n", (unsigned long long)iterations,
           (unsigned long long)smc_failures, cpus_used());
    printf("SMPSTRESS %s\n", smc_failures == 0 ? "PASS" : "FAIL");
    return smc_failures == 0 ? 0 : 1;
}

static int run_threads(void *(*body)(void *))
{
    pthread_t threads[MAX_THREADS];
    for (int t = 0; t < thread_count; t++) {
        if (pthread_create(&threads[t], NULL, body, (void *)(intptr_t)t) != 0) {
            fprintf(stderr, "smpstress: pthread_create failed\n");
            return 0;
        }
    }
    __atomic_store_n(&start_flag, 1, __ATOMIC_RELEASE);
    for (int t = 0; t < thread_count; t++)
        pthread_join(threads[t], NULL);
    return 1;
}

static int cpus_used(void)
{
    uint64_t all = 0;
    for (int t = 0; t < thread_count; t++)
        all |= cpu_masks[t];
    return __builtin_popcountll(all);
}

static int expect(const char *what, uint64_t got, uint64_t want)
{
    printf("SMPSTRESS %s %llu (expected %llu)%s\n", what, (unsigned long long)got, (unsigned long long)want,
           got == want ? "" : " MISMATCH");
    return got == want;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "smc") == 0) {
        iterations = bench_arg(argc - 1, argv + 1, 1000, 1ULL << 32, "rounds");
        return run_smc();
    }
    if (argc < 2 || (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "compute") != 0)) {
        fprintf(stderr, "usage: smpstress check|compute [THREADS [ITERATIONS]] | smc [ROUNDS]\n");
        return 2;
    }
    thread_count = (int)bench_arg(argc - 1, argv + 1, 4, MAX_THREADS, "threads");
    iterations = bench_arg(argc - 2, argv + 2, 100000, 1ULL << 40, "iterations");

    if (strcmp(argv[1], "compute") == 0) {
        double start = bench_now();
        if (!run_threads(compute_thread))
            return 1;
        double end = bench_now();
        char result[96];
        uint64_t sum = 0;
        for (int t = 0; t < thread_count; t++)
            sum ^= compute_sink[t * 8];
        snprintf(result, sizeof result, "threads=%d cpus=%d sum=%016llx", thread_count, cpus_used(),
                 (unsigned long long)sum);
        bench_report("smp-parallel", start, end, result);
        return 0;
    }

    if (!run_threads(check_thread))
        return 1;
    uint64_t total = (uint64_t)thread_count * iterations;
    int ok = 1;
    ok &= expect("amoadd.d", amo_counter, total);
    ok &= expect("amoadd.w", amo_counter32, (uint32_t)total);
    ok &= expect("cas-loop", cas_counter, total);
    ok &= expect("lr/sc.d", lrsc_counter, total);
    ok &= expect("lr/sc.w", lrsc_counter32, (uint32_t)total);
    ok &= expect("mutex", mutex_counter, (uint64_t)thread_count * ((iterations + 7) / 8));
    ok &= expect("spinlock", spin_counter, total);
    ok &= expect("spinlock-shadow", spin_shadow, total);
    ok &= expect("amomaxu.d", max_seen, total - 1);
    printf("SMPSTRESS threads=%d iterations=%llu cpus-used=%d\n", thread_count, (unsigned long long)iterations,
           cpus_used());
    printf("SMPSTRESS %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
