// Time and process identity calls.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec a, b, res;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct timespec req = {0, 20 * 1000 * 1000};
    printf("nanosleep: %d\n", nanosleep(&req, NULL));
    printf("clock_nanosleep: %d\n", clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL));
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    printf("slept >= 40ms: %d\n", ms >= 40 && ms < 2000);
    printf("clock_getres: %d res>0: %d\n", clock_getres(CLOCK_MONOTONIC, &res), res.tv_nsec > 0 || res.tv_sec > 0);
    struct timeval tv;
    clock_gettime(CLOCK_REALTIME, &a);
    printf("gettimeofday: %d close to realtime: %d\n", gettimeofday(&tv, NULL), tv.tv_sec - a.tv_sec <= 1);
    printf("time() sane: %d\n", time(NULL) > 1600000000);
    printf("bad clock: %d errno=%s\n", clock_gettime(12345, &a), strerror(errno));

    printf("gettid == getpid: %d\n", (pid_t)syscall(SYS_gettid) == getpid());
    printf("getppid > 0: %d\n", getppid() > 0);
    printf("uid matches euid: %d gid matches egid: %d\n", getuid() == geteuid(), getgid() == getegid());
    struct utsname u;
    uname(&u);
    printf("uname machine: %s\n", u.machine);
    struct rlimit rl;
    printf("getrlimit NOFILE: %d cur>0: %d\n", getrlimit(RLIMIT_NOFILE, &rl), rl.rlim_cur > 0);
    struct rlimit nl = {rl.rlim_cur > 256 ? 256 : rl.rlim_cur, rl.rlim_max}, ol;
    printf("prlimit set: %d\n", prlimit(0, RLIMIT_NOFILE, &nl, &ol));
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("prlimit now: %ld\n", (long)rl.rlim_cur);
    cpu_set_t set;
    CPU_ZERO(&set);
    printf("sched_getaffinity: %d cpus>0: %d\n", sched_getaffinity(0, sizeof set, &set), CPU_COUNT(&set) > 0);
    printf("sched_yield: %d\n", sched_yield());
    unsigned char rnd[32];
    printf("getrandom: %zd\n", getrandom(rnd, sizeof rnd, 0));
    printf("unknown syscall: %ld errno=%s\n", syscall(4000), strerror(errno));
    struct rusage ru;
    printf("getrusage: %d\n", getrusage(RUSAGE_SELF, &ru));
    printf("umask: %o then %o\n", umask(022), umask(077));
    return 0;
}
