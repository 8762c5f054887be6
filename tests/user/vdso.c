// The vDSO: present in the auxiliary vector and in /proc/self/maps, CLOCK_MONOTONIC read through it agrees
// with the system call and never goes backwards; the monotonic value is printed for the host to check.
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void) {
    unsigned long ehdr = getauxval(AT_SYSINFO_EHDR);
    printf("AT_SYSINFO_EHDR set: %d, ELF: %d\n", ehdr != 0, ehdr && memcmp((void *)ehdr, "\177ELF", 4) == 0);
    char maps[65536] = {0};
    FILE *f = fopen("/proc/self/maps", "r");
    fread(maps, 1, sizeof maps - 1, f);
    fclose(f);
    printf("[vdso] in maps: %d\n", strstr(maps, "[vdso]") != NULL);
    struct timespec a, b, s;
    int backwards = 0, far = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 20000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (ns(b) < ns(a)) backwards++;
        if (i % 100 == 0) {
            syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &s);  // the system call, mixed in
            if (ns(s) < ns(b)) backwards++;
            clock_gettime(CLOCK_MONOTONIC, &b);
            if (ns(b) < ns(s)) backwards++;
            if (ns(b) - ns(s) > 1000000000LL) far++;
        }
        a = b;
    }
    printf("monotonic went backwards: %d, vDSO and syscall far apart: %d\n", backwards, far);
    // An absolute deadline slept to by the host is passed when read back through the vDSO.
    int early = 0;
    for (int i = 0; i < 50; i++) {
        struct timespec d;
        clock_gettime(CLOCK_MONOTONIC, &d);
        d.tv_nsec += 1000 + i * 7919;
        if (d.tv_nsec >= 1000000000) { d.tv_sec++; d.tv_nsec -= 1000000000; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (ns(b) < ns(d)) early++;
    }
    printf("woke before an absolute deadline: %d\n", early);
    struct timespec r;
    clock_gettime(CLOCK_REALTIME, &r);
    printf("realtime sane: %d\n", r.tv_sec > 1600000000);
    clock_gettime(CLOCK_MONOTONIC, &a);
    printf("monotonic %lld\n", ns(a));
    return 0;
}
