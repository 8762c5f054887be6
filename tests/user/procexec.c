// exec everywhere and the process's view of itself: execve of /proc/self/exe, of a relative path, of a #!
// script, execveat (relative to a directory, and AT_EMPTY_PATH); /proc/self/{exe,cmdline,auxv,maps},
// /proc/cpuinfo; prctl names (seen by the host in /proc/PID/task/TID/comm); fork while another thread runs.
// Expected output is fixed (qemu-user cannot exec a RISC-V file without binfmt_misc).
#define _GNU_SOURCE
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int slurp(const char *path, char *buf, int cap) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int n = 0, r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0) n += r;
    buf[n] = 0;
    close(fd);
    return n;
}

static int run_child(const char *how, char *const argv[]) {
    pid_t pid = fork();
    if (pid == 0) {
        if (strcmp(how, "self") == 0) execve("/proc/self/exe", argv, environ);
        else if (strcmp(how, "relative") == 0) execve("./procexec", argv, environ);
        else if (strcmp(how, "script") == 0) execve("./script.sh", argv, environ);
        else if (strcmp(how, "at") == 0) {
            int dir = open(".", O_RDONLY | O_DIRECTORY);
            syscall(SYS_execveat, dir, "procexec", argv, environ, 0);
        } else if (strcmp(how, "empty") == 0) {
            int fd = open("procexec", O_RDONLY);
            syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
        }
        printf("%s: exec failed: %s\n", how, strerror(errno));
        _exit(99);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void *sleeper(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "sleeper-thr");
    for (;;) pause();
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        printf("child argv:");
        for (int i = 0; i < argc; i++) printf(" [%s]", i == 0 ? (strrchr(argv[0], '/') ? "path" : argv[0]) : argv[i]);
        printf("\n");
        return 7;
    }

    // Names: the guest thread is a host thread, so the host sees the name too.
    printf("PR_SET_NAME: %d\n", prctl(PR_SET_NAME, "guest-main-name"));
    char name[16] = {0};
    prctl(PR_GET_NAME, name);
    printf("PR_GET_NAME: %s\n", name);
    char path[64], buf[65536];
    snprintf(path, sizeof path, "/proc/%d/task/%d/comm", getpid(), gettid());
    slurp(path, buf, sizeof buf);
    printf("comm: %s", buf);
    pthread_t th;
    pthread_create(&th, NULL, sleeper, NULL);
    usleep(100 * 1000);
    char tname[16] = {0};
    pthread_getname_np(th, tname, sizeof tname);
    printf("thread name: %s\n", tname);

    // fork while another thread runs: the child has only the caller.
    pid_t pid = fork();
    if (pid == 0) {
        int n = 0;
        DIR *d = opendir("/proc/self/task");
        struct dirent *e;
        while (d && (e = readdir(d))) if (e->d_name[0] != '.') n++;
        printf("threads in forked child: %d\n", n);
        _exit(0);
    }
    waitpid(pid, NULL, 0);

    int n = slurp("/proc/self/cmdline", buf, sizeof buf);
    printf("cmdline:");
    for (int i = 0; i < n; i += strlen(buf + i) + 1) printf(" [%s]", i == 0 ? "prog" : buf + i);
    printf("\n");

    n = slurp("/proc/self/auxv", buf, sizeof buf);
    int pagesz = 0, entry = 0;
    for (int i = 0; i + 16 <= n; i += 16) {
        uint64_t k, v;
        memcpy(&k, buf + i, 8);
        memcpy(&v, buf + i + 8, 8);
        if (k == AT_PAGESZ) pagesz = v == 4096;
        if (k == AT_ENTRY) entry = v == getauxval(AT_ENTRY);
    }
    printf("auxv: pagesz=%d entry=%d\n", pagesz, entry);

    slurp("/proc/self/maps", buf, sizeof buf);
    int stack = strstr(buf, "[stack]") != NULL, code = 0;
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        unsigned long lo, hi;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && (unsigned long)&main >= lo && (unsigned long)&main < hi)
            code = perms[0] == 'r' && perms[2] == 'x';
    }
    printf("maps: stack=%d main in r-x=%d program named=%d\n", stack, code, strstr(buf, "/procexec\n") != NULL);

    slurp("/proc/cpuinfo", buf, sizeof buf);
    printf("cpuinfo isa rv64: %d\n", strstr(buf, "isa\t\t: rv64") != NULL);
    char exe[4096] = {0}, real[4096];
    readlink("/proc/self/exe", exe, sizeof exe - 1);
    realpath("procexec", real);
    printf("exe is the program: %d\n", strcmp(exe, real) == 0);

    struct rusage ru;
    printf("getrusage: %d\n", getrusage(RUSAGE_SELF, &ru));
    printf("sched_getscheduler: %d max fifo prio: %d\n", sched_getscheduler(0), sched_get_priority_max(SCHED_FIFO));
    printf("rseq: %ld errno=%s\n", syscall(293, NULL, 0, 0, 0), strerror(errno));

    char *args[] = {"renamed", "child", "a b", NULL};
    printf("exec /proc/self/exe: %d\n", run_child("self", args));
    printf("exec relative path: %d\n", run_child("relative", args));
    FILE *f = fopen("script.sh", "w");
    fprintf(f, "#!%s child\necho not a shell\n", real);
    fclose(f);
    chmod("script.sh", 0755);
    char *sargs[] = {"script-name", "extra", NULL};
    printf("exec #! script: %d\n", run_child("script", sargs));
    printf("execveat dir: %d\n", run_child("at", args));
    printf("execveat AT_EMPTY_PATH: %d\n", run_child("empty", args));
    char *none[] = {"x", NULL};
    printf("exec directory: %d %s\n", execve(".", none, environ), strerror(errno));
    return 0;
}
