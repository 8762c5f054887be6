// Memory: brk, malloc, mmap (anonymous and file), munmap, mprotect, mremap, madvise.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf env;
static void on_segv(int s, siginfo_t *si, void *uc) { (void)s; (void)uc; siglongjmp(env, si->si_code); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char *b0 = sbrk(0);
    printf("sbrk grow: %d\n", sbrk(65536) == b0);
    memset(b0, 0x5a, 65536);
    printf("brk write ok: %d\n", b0[65535] == 0x5a);
    printf("sbrk shrink: %d\n", sbrk(-65536) != (void *)-1);

    // Many allocations of varied sizes, checksummed.
    unsigned long sum = 0;
    char *ptrs[500];
    for (int i = 0; i < 500; i++) {
        size_t n = 16 + (i * 7919) % 20000;
        ptrs[i] = malloc(n);
        memset(ptrs[i], i & 0xff, n);
    }
    for (int i = 0; i < 500; i++) { sum += (unsigned char)ptrs[i][0] + (unsigned char)ptrs[i][(16 + (i * 7919) % 20000) - 1]; free(ptrs[i]); }
    printf("malloc checksum: %lu\n", sum);
    char *big = malloc(64 << 20);
    for (size_t i = 0; i < (64 << 20); i += 4096) big[i] = (char)i;
    printf("big malloc: %d\n", big[4096 * 3] == (char)(4096 * 3));
    big = realloc(big, 128 << 20);
    printf("realloc keeps: %d\n", big[4096 * 3] == (char)(4096 * 3));
    free(big);

    char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap anon: %d zero=%d\n", m != MAP_FAILED, m[5000] == 0);
    strcpy(m, "mapped");
    printf("munmap middle: %d\n", munmap(m + 4096, 4096));
    printf("munmap unaligned: %d errno=%s\n", munmap(m + 1, 4096), strerror(errno));
    printf("mmap len 0: %d errno=%s\n", mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED, strerror(errno));
    printf("mmap bad fd: %d errno=%s\n", mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 77, 0) == MAP_FAILED, strerror(errno));

    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    int code = sigsetjmp(env, 1);
    if (code == 0) { m[4096] = 1; printf("no fault?\n"); }
    else printf("fault in unmapped hole: si_code=%d\n", code);
    printf("mprotect ro: %d\n", mprotect(m, 4096, PROT_READ));
    code = sigsetjmp(env, 1);
    if (code == 0) { m[0] = 1; printf("no fault?\n"); }
    else printf("write to read-only: si_code=%d still=%s\n", code, m);
    printf("mprotect rw: %d\n", mprotect(m, 4096, PROT_READ | PROT_WRITE));
    m[0] = 'M';
    printf("after mprotect rw: %s\n", m);
    printf("mprotect unmapped: %d errno=%s\n", mprotect(m + 4096, 4096, PROT_READ), strerror(errno));

    char *r = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    strcpy(r, "remap me");
    char *r2 = mremap(r, 4096, 1 << 20, MREMAP_MAYMOVE);
    printf("mremap grow: %d [%s] tail zero=%d\n", r2 != MAP_FAILED, r2, r2[(1 << 20) - 1] == 0);
    r2[(1 << 20) - 1] = 9;
    char *r3 = mremap(r2, 1 << 20, 8192, 0);
    printf("mremap shrink: %d [%s]\n", r3 == r2, r3);
    memset(r3, 7, 8192);
    printf("madvise dontneed: %d zero=%d\n", madvise(r3, 8192, MADV_DONTNEED), r3[100] == 0);

    int fd = open("mapped.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    const char *text = "file contents seen through mmap\n";
    write(fd, text, strlen(text));
    char *fm = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("file mmap: %.31s|tail zero=%d\n", fm, fm[4000] == 0);
    char *fixed = mmap(r3, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("MAP_FIXED replaces: %d zero=%d\n", fixed == r3, fixed[0] == 0);
    // (MAP_FIXED_NOREPLACE is left out: qemu-user 7.2 treats it as a hint, Linux returns EEXIST.)
    close(fd);
    return 0;
}
