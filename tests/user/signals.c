// Signals: handlers for raise/kill/tgkill, masks and pending signals, faults delivered to handlers
// (SIGSEGV, SIGILL, SIGBUS-free), sigaltstack, SA_RESETHAND, ucontext pc editing and rt_sigreturn.
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static volatile int got[65];
static volatile int last_code;
static void handler(int s) { got[s]++; }
static void info_handler(int s, siginfo_t *si, void *uc) { (void)uc; got[s]++; last_code = si->si_code; }
static sigjmp_buf env;
static void jump_handler(int s, siginfo_t *si, void *uc) { (void)uc; got[s]++; last_code = si->si_code; siglongjmp(env, s); }
static void skip_handler(int s, siginfo_t *si, void *ucv) {
    ucontext_t *uc = ucv;
    (void)si;
    got[s]++;
    uc->uc_mcontext.__gregs[REG_PC] += 4;  // skip the faulting 4-byte instruction
}
static volatile int on_alt;
static char altstack[65536];
static void alt_handler(int s) {
    char here;
    got[s]++;
    on_alt = &here >= altstack && &here < altstack + sizeof altstack;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGUSR1, handler);
    printf("raise: %d got=%d\n", raise(SIGUSR1), got[SIGUSR1]);
    printf("kill self: %d got=%d\n", kill(getpid(), SIGUSR1), got[SIGUSR1]);
    printf("tgkill: %ld got=%d\n", syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1), got[SIGUSR1]);

    struct sigaction sa = {0}, old;
    sa.sa_sigaction = info_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, &old);
    printf("old handler was default: %d\n", old.sa_handler == SIG_DFL);
    sigset_t block, prev, pend;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, &prev);
    raise(SIGUSR2);
    sigpending(&pend);
    printf("blocked: got=%d pending=%d\n", got[SIGUSR2], sigismember(&pend, SIGUSR2));
    sigprocmask(SIG_SETMASK, &prev, NULL);
    printf("unblocked: got=%d si_code=%d\n", got[SIGUSR2], last_code);
    printf("sigaction SIGKILL: %d errno=%s\n", sigaction(SIGKILL, &sa, NULL), strerror(errno));
    printf("kill bad signal: %d errno=%s\n", kill(getpid(), 99), strerror(errno));

    signal(SIGTERM, SIG_IGN);
    raise(SIGTERM);
    printf("ignored SIGTERM: still here\n");

    sa.sa_sigaction = jump_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(env, 1) == 0) { *(volatile int *)16 = 1; printf("no fault?\n"); }
    printf("SIGSEGV handled: got=%d si_code=%d\n", got[SIGSEGV], last_code);
    if (sigsetjmp(env, 1) == 0) { *(volatile int *)16 = 1; printf("no fault?\n"); }
    printf("SIGSEGV again (mask restored by siglongjmp): got=%d\n", got[SIGSEGV]);

    sa.sa_sigaction = skip_handler;
    sigaction(SIGILL, &sa, NULL);
    __asm__ volatile(".word 0xffffffff");
    printf("SIGILL skipped via ucontext: got=%d\n", got[SIGILL]);

    signal(SIGFPE, handler);
    raise(SIGFPE);
    printf("SIGFPE raised: got=%d\n", got[SIGFPE]);

    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    printf("sigaltstack: %d\n", sigaltstack(&ss, NULL));
    struct sigaction as = {0};
    as.sa_handler = alt_handler;
    as.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigaction(SIGWINCH, &as, NULL);
    raise(SIGWINCH);
    printf("altstack handler: got=%d on_alt=%d\n", got[SIGWINCH], on_alt);
    sigaction(SIGWINCH, NULL, &old);
    printf("SA_RESETHAND reset to default: %d\n", old.sa_handler == SIG_DFL);

    signal(SIGALRM, handler);
    alarm(1);
    pause();
    printf("alarm then pause: got=%d\n", got[SIGALRM]);
    return 0;
}
