// Waiting with signals: the temporary masks of ppoll, pselect and epoll_pwait (a pending signal they unblock
// interrupts at once; one arriving during the wait runs its handler; the old mask is back afterwards), a
// blocked signal arriving during a plain poll does not interrupt it, and epoll_wait is not restarted.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int hits;
static void on_usr(int sig) { (void)sig; hits++; }

static int usr1_blocked(void) {
    sigset_t cur;
    sigprocmask(SIG_SETMASK, NULL, &cur);
    return sigismember(&cur, SIGUSR1);
}

// A child that sends `sig` to the parent after `ms` milliseconds.
static pid_t later(int sig, int ms) {
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) { usleep(ms * 1000); kill(parent, sig); _exit(0); }
    return pid;
}

static int wake_pipe[2];
static void *blocked_reader(void *arg) {
    char c;
    ssize_t r = read(wake_pipe[0], &c, 1);
    printf("thread's blocking read interrupted: %zd %s hits=%d\n", r, r < 0 ? strerror(errno) : "-", hits);
    return arg;
}

static void *restarting_reader(void *arg) {
    char c = 0;
    ssize_t r = read(wake_pipe[0], &c, 1);
    printf("thread's read restarted after the handler: %zd %c hits=%d\n", r, c, hits);
    return arg;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa = {.sa_handler = on_usr, .sa_flags = SA_RESTART};
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t block, empty;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, NULL);
    int p[2];
    pipe(p);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};

    // Already pending and unblocked by the temporary mask: EINTR at once.
    raise(SIGUSR1);
    struct timespec ts = {5, 0};
    int r = ppoll(&pf, 1, &ts, &empty);
    printf("ppoll with pending: %d %s hits=%d usr1 blocked after=%d\n", r, strerror(errno), hits, usr1_blocked());

    // Arriving during the wait.
    pid_t c = later(SIGUSR1, 100);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    r = pselect(p[0] + 1, &rs, NULL, NULL, &ts, &empty);
    printf("pselect interrupted: %d %s hits=%d usr1 blocked after=%d\n", r, strerror(errno), hits, usr1_blocked());
    waitpid(c, NULL, 0);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    c = later(SIGUSR1, 100);
    r = epoll_pwait(ep, &ev, 1, 5000, &empty);
    printf("epoll_pwait interrupted: %d %s hits=%d usr1 blocked after=%d\n", r, strerror(errno), hits, usr1_blocked());
    waitpid(c, NULL, 0);

    // A blocked signal during a plain poll: the poll times out; the signal stays pending.
    c = later(SIGUSR2, 50);
    r = poll(&pf, 1, 400);
    printf("poll with a blocked signal arriving: %d hits=%d\n", r, hits);
    waitpid(c, NULL, 0);
    sigset_t pend;
    sigpending(&pend);
    printf("SIGUSR2 pending: %d\n", sigismember(&pend, SIGUSR2));
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    printf("after unblocking: hits=%d\n", hits);

    // epoll_wait is never restarted, even with SA_RESTART.
    c = later(SIGUSR1, 100);
    r = epoll_wait(ep, &ev, 1, 5000);
    printf("epoll_wait with SA_RESTART handler: %d %s hits=%d\n", r, strerror(errno), hits);
    waitpid(c, NULL, 0);

    // A signal for a thread blocked in a host call interrupts the call (no SA_RESTART) or restarts it.
    pipe(wake_pipe);
    struct sigaction plain = {.sa_handler = on_usr};
    sigaction(SIGUSR1, &plain, NULL);
    pthread_t th;
    pthread_create(&th, NULL, blocked_reader, NULL);
    usleep(100 * 1000);
    pthread_kill(th, SIGUSR1);
    pthread_join(th, NULL);
    sigaction(SIGUSR1, &sa, NULL);  // SA_RESTART
    pthread_create(&th, NULL, restarting_reader, NULL);
    usleep(100 * 1000);
    pthread_kill(th, SIGUSR1);
    usleep(100 * 1000);
    write(wake_pipe[1], "R", 1);
    pthread_join(th, NULL);

    // kill() of the own process while the caller blocks the signal: a thread blocked in a read takes it.
    sigaction(SIGUSR1, &plain, NULL);
    pthread_create(&th, NULL, blocked_reader, NULL);
    usleep(100 * 1000);
    sigset_t just1;
    sigemptyset(&just1);
    sigaddset(&just1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &just1, NULL);
    kill(getpid(), SIGUSR1);
    pthread_join(th, NULL);
    return 0;
}
