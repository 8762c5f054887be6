// Loads in hot loops from memory the program may not read. Under `rivet user` translated loads read guest
// memory without a TLB check (the host's page protections stand in for it), so every case here must still
// raise SIGSEGV at the right address, and every readable page must still read what was written.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf recovery;
static volatile uintptr_t faultAddress;

static void onSegv(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)context;
    faultAddress = (uintptr_t)info->si_addr;
    siglongjmp(recovery, 1);
}

__attribute__((noinline)) static long sumWords(const volatile long *p, long n) {
    long s = 0;
    for (long i = 0; i < n; i++) s += p[i];
    return s;
}

__attribute__((noinline)) static long sumBytes(const volatile unsigned char *p, long n) {
    long s = 0;
    for (long i = 0; i < n; i++) s += p[i];
    return s;
}

// Sums n words at p; returns 1 and the fault address (relative to `origin`) if it faulted.
static int probe(const void *p, long n, long *sum, const void *origin, long *offset) {
    faultAddress = 0;
    if (sigsetjmp(recovery, 1)) {
        *offset = (long)(faultAddress - (uintptr_t)origin);
        return 1;
    }
    *sum = sumWords(p, n);
    *offset = 0;
    return 0;
}

static void report(const char *what, const void *p, long n, const void *origin) {
    long sum = 0, offset = 0;
    int faulted = probe(p, n, &sum, origin, &offset);
    if (faulted) printf("%s: SIGSEGV at origin%+ld\n", what, offset);
    else printf("%s: read, sum %ld\n", what, sum);
}

static void *idle(void *arg) { return arg; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = onSegv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    long page = sysconf(_SC_PAGESIZE);

    // Warm the loops up so they run as translated code.
    static long warm[512];
    static unsigned char warmBytes[4096];
    for (int i = 0; i < 512; i++) warm[i] = i;
    long total = 0;
    for (int round = 0; round < 2000; round++) total += sumWords(warm, 512) + sumBytes(warmBytes, 64);
    printf("warm: %ld\n", total);

    char *m = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (long i = 0; i < 4 * page / 8; i++) ((long *)m)[i] = i + 1;
    report("touched page", m, page / 8, m);
    mprotect(m + page, page, PROT_NONE);
    report("after PROT_NONE", m + page, page / 8, m);
    report("run into PROT_NONE", m, 2 * page / 8, m);
    mprotect(m + page, page, PROT_READ);
    report("PROT_READ again", m + page, page / 8, m);
    munmap(m + 2 * page, page);
    report("unmapped page", m + 2 * page, page / 8, m);
    report("page after the hole", m + 3 * page, page / 8, m);

    char *fresh = mmap(NULL, 2 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    report("never touched, read-only", fresh, 2 * page / 8, fresh);
    munmap(fresh, 2 * page);
    report("never touched, unmapped", fresh, 1, fresh);

    // Wild addresses: the null page, above the 39-bit user space, the top of the 64-bit space.
    report("null page", (void *)16, 1, (void *)0);
    report("above user space", (void *)(1UL << 40), 1, (void *)(1UL << 40));
    report("negative", (void *)-4096L, 1, (void *)-4096L);

    // Moved memory: the old range faults, the new one reads the data.
    char *big = mmap(NULL, 64 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (long i = 0; i < 64 * page / 8; i++) ((long *)big)[i] = 3 * i;
    char *moved = mremap(big, 64 * page, 128 * page, MREMAP_MAYMOVE);
    report("moved, new range", moved, 64 * page / 8, moved);
    if (moved != big) report("moved, old range", big, 1, big);
    else printf("moved, old range: SIGSEGV at origin+0\n");  // grown in place: as if moved
    munmap(moved, 128 * page);

    // A private file mapping made readable after it was mapped PROT_NONE keeps the file's bytes.
    char path[] = "/tmp/rivet-guard-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    unsigned char bytes[8192];
    for (int i = 0; i < 8192; i++) bytes[i] = (unsigned char)(i * 7);
    if (write(fd, bytes, sizeof bytes) != (ssize_t)sizeof bytes) return 1;
    unsigned char *file = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE, fd, 0);
    report("file, PROT_NONE", file, 1, file);
    mprotect(file, 8192, PROT_READ);
    printf("file, PROT_READ: sum %ld\n", sumBytes(file, 8192));
    unsigned char *shared = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
    printf("file, shared: sum %ld\n", sumBytes(shared, 8192));
    munmap(shared, 8192);
    report("file, shared, unmapped", shared, 1, shared);
    close(fd);

    // After a second thread exists the same faults still arrive.
    pthread_t thread;
    pthread_create(&thread, NULL, idle, NULL);
    pthread_join(thread, NULL);
    report("with threads, first page", m, 1, m);
    mprotect(m, page, PROT_NONE);
    report("with threads, new PROT_NONE", m, 1, m);
    report("with threads, readable", m + page, page / 8, m);
    return 0;
}
