// Signals from outside that the program blocks: they wait (the default action of SIGTERM does not end the
// process), show in sigpending, are taken by signalfd and sigwaitinfo, and act when unblocked.
// The test sends SIGUSR1, SIGTERM, SIGTERM after each "ready" line.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <unistd.h>

int main(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    int fd = signalfd(-1, &usr1, SFD_CLOEXEC);
    printf("ready 1\n");
    fflush(stdout);
    struct signalfd_siginfo si;
    ssize_t n = read(fd, &si, sizeof si);
    printf("signalfd: %zd bytes, signal %u, from a user process: %d\n", n, si.ssi_signo, si.ssi_code == SI_USER);
    printf("ready 2\n");
    fflush(stdout);
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    siginfo_t info;
    int s = sigwaitinfo(&term, &info);
    printf("sigwaitinfo: %d, from a user process: %d\n", s, info.si_code == SI_USER);
    printf("ready 3\n");
    fflush(stdout);
    sigset_t pend;
    do { usleep(10000); sigpending(&pend); } while (!sigismember(&pend, SIGTERM));
    printf("SIGTERM pending while blocked; unblocking\n");
    fflush(stdout);
    sigprocmask(SIG_UNBLOCK, &term, NULL);
    printf("not reached\n");
    return 0;
}
