// Memory that moves, is reused or is shared, touched by hot loops (so translated code does the accesses):
// realloc through mremap, mremap onto a fixed address, munmap then a new mapping at the same place (must
// read zero), MAP_SHARED file pages seen at two addresses, a moved shared mapping, and shared anonymous
// memory written by a forked child.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sched.h>
#include <unistd.h>

static void fill_range(uint32_t *p, size_t from, size_t to, uint32_t seed) {
    for (size_t i = from; i < to; i++) p[i] = seed + (uint32_t)i * 2654435761u;
}

static void fill(uint32_t *p, size_t n, uint32_t seed) { fill_range(p, 0, n, seed); }

static uint64_t sum(const uint32_t *p, size_t n) {
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h = h * 31 + p[i];
    return h;
}

static size_t bad(const uint32_t *p, size_t n, uint32_t seed) {
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) wrong += p[i] != seed + (uint32_t)i * 2654435761u;
    return wrong;
}

static size_t nonzero(const uint32_t *p, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += p[i] != 0;
    return count;
}

// Threads that map, fill, check and unmap private memory at once: no two may get the same range.
static void *churn(void *arg) {
    uint32_t id = (uint32_t)(uintptr_t)arg;
    size_t wrong = 0, n = (64 << 10) / 4;
    for (int round = 0; round < 300; round++) {
        uint32_t *p = mmap(NULL, n * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return (void *)(uintptr_t)-1;
        wrong += nonzero(p, n);
        fill(p, n, id * 1000 + (uint32_t)round);
        sched_yield();
        wrong += bad(p, n, id * 1000 + (uint32_t)round);
        munmap(p, n * 4);
    }
    return (void *)wrong;
}

int main(void) {
    // 1. realloc grows a large block: glibc moves it with mremap.
    size_t n = (4 << 20) / 4;
    uint32_t *a = malloc(n * 4);
    fill(a, n, 1);
    uint64_t before = sum(a, n);
    for (int round = 0; round < 4; round++) {
        a = realloc(a, n * 4 * 2);
        fill_range(a, n, n * 2, 1);
        n *= 2;
        printf("realloc to %zu KiB: first half kept=%d wrong=%zu\n", n * 4 >> 10, sum(a, n / 2) != 0, bad(a, n, 1));
    }
    printf("sum of first 4 MiB unchanged: %d\n", sum(a, (4 << 20) / 4) == before);
    free(a);

    // 2. mremap onto a fixed address that held another mapping, then reuse the old range.
    size_t len = 1 << 20;
    uint32_t *src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t *dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(src, len / 4, 7);
    fill(dst, len / 4, 99);
    uint32_t *moved = mremap(src, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    printf("mremap fixed: at dst=%d wrong=%zu\n", moved == dst, bad(moved, len / 4, 7));
    uint32_t *again = mmap(src, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("old range mapped again: same=%d nonzero=%zu\n", again == src, nonzero(again, len / 4));
    fill(again, len / 4, 5);
    printf("both written: wrong=%zu,%zu\n", bad(again, len / 4, 5), bad(moved, len / 4, 7));
    void *overlap = mremap(moved, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (char *)moved + 4096);
    printf("overlapping mremap refused: %d errno EINVAL=%d kept=%zu\n", overlap == MAP_FAILED, errno == EINVAL,
           bad(moved, len / 4, 7));
    munmap(again, len);
    munmap(moved, len);

    // 3. unmap, map again at the same address: fresh zero pages every time.
    for (int round = 0; round < 5; round++) {
        uint32_t *p = mmap(src, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        size_t z = nonzero(p, len / 4);
        fill(p, len / 4, (uint32_t)round);
        printf("round %d: nonzero before=%zu wrong after=%zu\n", round, z, bad(p, len / 4, (uint32_t)round));
        munmap(p, len);
    }

    // 4. One file mapped shared at two addresses: stores through one are loads through the other.
    int fd = open("remap.bin", O_CREAT | O_RDWR | O_TRUNC, 0644);
    size_t flen = 256 << 10;
    if (ftruncate(fd, (off_t)flen) != 0) return 1;
    uint32_t *m1 = mmap(NULL, flen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    uint32_t *m2 = mmap(NULL, flen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    fill(m1, flen / 4, 3);
    printf("shared file, second view: wrong=%zu\n", bad(m2, flen / 4, 3));
    fill(m2 + 100, 1000, 11);
    printf("shared file, first view: wrong=%zu\n", bad(m1 + 100, 1000, 11));

    // 5. A shared mapping moved by mremap keeps its contents and its sharing.
    uint32_t *m3 = mremap(m2, flen, flen, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    fill(m3, flen / 4, 21);
    printf("moved shared view: at dst=%d wrong=%zu seen by first=%zu\n", m3 == dst, bad(m3, flen / 4, 21),
           bad(m1, flen / 4, 21));
    munmap(m1, flen);
    munmap(m3, flen);
    uint32_t word = 0;
    pread(fd, &word, 4, 400);
    printf("file agrees: %d\n", word == 21 + 100u * 2654435761u);
    close(fd);
    unlink("remap.bin");

    // 6. Shared anonymous memory written by a forked child.
    uint32_t *sh = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    fill(sh, len / 4, 1);
    pid_t pid = fork();
    if (pid == 0) {
        fill(sh, len / 4, 42);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child's stores seen: wrong=%zu status=%d\n", bad(sh, len / 4, 42), status);

    // 7. Four threads mapping and unmapping at the same time.
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++) pthread_create(&th[i], NULL, churn, (void *)(i + 1));
    size_t churned = 0;
    for (int i = 0; i < 4; i++) { void *r; pthread_join(th[i], &r); churned += (size_t)r; }
    printf("concurrent mmap: wrong=%zu\n", churned);
    return 0;
}
