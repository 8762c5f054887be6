// Hostile arguments to the calls added for real programs: huge offsets and lengths, bad pointers, bad
// descriptors. Every call must fail cleanly with the errno Linux gives, never crash rivet.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    int fd = open("/etc/hostname", O_RDONLY);
    long r;
    r = syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE, fd, 0x8000000000000000ul); printf("mmap huge off: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_SHARED, fd, 0xfffffffffffff000ul); printf("mmap huge off shared: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_mmap, 0, 0xfffffffffffff000ul, PROT_READ, MAP_SHARED|MAP_ANONYMOUS, -1, 0); printf("mmap huge len: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_mmap, 0, 1ul << 36, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0); printf("mmap 64G shared: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_sendto, 0, (void*)1, 100, 0, (void*)8, 1000); printf("sendto bad: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_recvmsg, 0, (void*)8, 0); printf("recvmsg bad: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_epoll_pwait, 0, (void*)8, -1, 0, 0, 8); printf("epoll_pwait bad: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_pselect6, 1 << 30, (void*)8, 0, 0, 0, 0); printf("pselect huge n: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_execve, (void*)8, 0, 0); printf("execve bad: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_mincore, 0x10000, 0xfffffffffffff000ul, (void*)8); printf("mincore bad: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_msync, 0x10000, 0xfffffffffffff000ul, MS_SYNC); printf("msync bad: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_prctl, 15, (void*)8); printf("prctl bad: %ld %s\n", r, strerror(errno));
    return 0;
}
