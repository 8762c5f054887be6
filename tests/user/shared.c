// MAP_SHARED file mappings and shared anonymous memory: stores through a mapping are seen by read/pread, by a
// second mapping of the same file, by a forked child, and reach the file on msync/munmap; a read-only file
// refuses PROT_WRITE; a page past the end of the file raises SIGBUS; a process-shared mutex and semaphore
// in shared memory work across fork (host futexes on shared pages).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static sigjmp_buf jb;
static void on_bus(int sig, siginfo_t *si, void *ctx) { (void)ctx; (void)si; siglongjmp(jb, sig); }

int main(void) {
    int fd = open("shared.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
    char page[8192];
    memset(page, '.', sizeof page);
    write(fd, page, sizeof page);

    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *m2 = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 4096);
    printf("mapped: %d %d\n", m != MAP_FAILED, m2 != MAP_FAILED);
    memcpy(m, "hello through the mapping", 25);
    memcpy(m + 4096, "second page", 11);
    char buf[32] = {0};
    pread(fd, buf, 25, 0);
    printf("pread sees: %s\n", buf);
    printf("second mapping sees: %.11s\n", m2);

    // A write() to the file shows in the mapping.
    pwrite(fd, "FILE", 4, 100);
    printf("mapping sees write: %.4s\n", m + 100);

    // A forked child's stores reach the parent through the shared file pages.
    pid_t pid = fork();
    if (pid == 0) { memcpy(m + 200, "from child", 10); _exit(0); }
    waitpid(pid, NULL, 0);
    printf("parent sees child: %.10s\n", m + 200);

    // Shared anonymous memory is shared with children too.
    int *counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    *counter = 1;
    pid = fork();
    if (pid == 0) { *counter += 41; _exit(0); }
    waitpid(pid, NULL, 0);
    printf("anonymous shared counter: %d\n", *counter);

    // Process-shared mutex and semaphore in shared memory: futexes across processes.
    struct { pthread_mutex_t mu; sem_t sem; long count; } *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                                                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&sh->mu, &ma);
    sem_init(&sh->sem, 1, 0);
    pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 20000; i++) { pthread_mutex_lock(&sh->mu); sh->count++; pthread_mutex_unlock(&sh->mu); }
        usleep(50 * 1000);
        sem_post(&sh->sem);
        _exit(0);
    }
    for (int i = 0; i < 20000; i++) { pthread_mutex_lock(&sh->mu); sh->count++; pthread_mutex_unlock(&sh->mu); }
    sem_wait(&sh->sem);  // sleeps in the futex until the child posts
    waitpid(pid, NULL, 0);
    printf("process-shared mutex count: %ld\n", sh->count);

    printf("msync: %d\n", msync(m, 8192, MS_SYNC));
    memcpy(m + 300, "before munmap", 13);
    printf("munmap: %d\n", munmap(m, 8192));
    munmap(m2, 4096);
    close(fd);

    fd = open("shared.dat", O_RDONLY);
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 13, 300);
    printf("file after munmap: %s\n", buf);
    errno = 0;
    void *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("writable shared map of read-only fd: %s\n", w == MAP_FAILED ? strerror(errno) : "mapped");
    char *r = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    printf("read-only map: %.5s\n", r);
    printf("mprotect to write: %d %s\n", mprotect(r, 4096, PROT_READ | PROT_WRITE), strerror(errno));
    // A private mapping of the same file may be written; the file does not change.
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    memcpy(p, "PRIVATE", 7);
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 7, 0);
    printf("private write leaves the file: %s\n", buf);

    close(fd);

    // Many small shared mappings made and dropped (pool pages are reused), and a large one (one host mapping).
    fd = open("shared.dat", O_RDWR);
    for (int i = 0; i < 2000; i++) {
        char *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4096);
        q[i % 4096] = 'a' + i % 26;
        munmap(q, 4096);
    }
    char c1 = 0;
    pread(fd, &c1, 1, 4096 + 1999 % 4096);
    printf("after 2000 mappings: %c\n", c1);
    ftruncate(fd, 40 * 4096);
    char *large = mmap(NULL, 40 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    for (int i = 0; i < 40; i++) large[i * 4096 + 7] = '0' + i % 10;
    munmap(large, 40 * 4096);
    int same = 1;
    for (int i = 0; i < 40; i++) { pread(fd, &c1, 1, i * 4096 + 7); same &= c1 == '0' + i % 10; }
    printf("large mapping written back: %d\n", same);
    ftruncate(fd, 8192);
    close(fd);
    fd = open("shared.dat", O_RDONLY);

    // Past the end of the file: SIGBUS.
    struct sigaction sa = {0};
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, NULL);
    char *big = mmap(NULL, 4 * 4096, PROT_READ, MAP_SHARED, fd, 0);
    int sig = sigsetjmp(jb, 1);
    if (sig == 0) {
        volatile char c = big[3 * 4096];
        (void)c;
        printf("no fault past the end\n");
    } else {
        printf("past the end: signal %d\n", sig);
    }
    printf("inside the file: %c\n", big[4095]);
    close(fd);
    return 0;
}
