// fork, pipes between processes, exit statuses through wait4, execve of another program, and a child killed by a signal.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        printf("exec'd child: argv[0]=%s argc=%d env RIVET_T=%s\n", argv[0], argc, getenv("RIVET_T"));
        return 42;
    }
    int p[2];
    pipe(p);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        const char *m = "message from child";
        write(p[1], m, strlen(m));
        _exit(7);
    }
    close(p[1]);
    char buf[64] = {0};
    read(p[0], buf, sizeof buf - 1);
    int status;
    struct rusage ru;
    pid_t w = wait4(pid, &status, 0, &ru);
    printf("parent read: %s\n", buf);
    printf("wait4 matched: %d exited=%d code=%d\n", w == pid, WIFEXITED(status), WEXITSTATUS(status));

    pid = fork();
    if (pid == 0) {
        char *args[] = {"renamed-child", "child", "x", NULL};
        char *envp[] = {"RIVET_T=hello", NULL};
        // The oracle (qemu-user without binfmt_misc) cannot exec a RISC-V file itself; the test points
        // RIVET_EXEC_PATH at a host wrapper that runs the same program under qemu for it.
        const char *path = getenv("RIVET_EXEC_PATH") ? getenv("RIVET_EXEC_PATH") : argv[0];
        execve(path, args, envp);
        printf("execve failed: %s\n", strerror(errno));
        _exit(1);
    }
    waitpid(pid, &status, 0);
    printf("exec child status: exited=%d code=%d\n", WIFEXITED(status), WEXITSTATUS(status));

    pid = fork();
    if (pid == 0) { *(volatile int *)0 = 1; _exit(0); }
    waitpid(pid, &status, 0);
    printf("segv child: signaled=%d sig=%d\n", WIFSIGNALED(status), WTERMSIG(status));

    pid = fork();
    if (pid == 0) { pause(); _exit(0); }
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    printf("killed child: signaled=%d sig=%d\n", WIFSIGNALED(status), WTERMSIG(status));

    char *bad[] = {"x", NULL};
    printf("execve missing: %d errno=%s\n", execve("/nonexistent/prog", bad, bad + 1), strerror(errno));
    printf("wait with no children: %d errno=%s\n", wait(&status), strerror(errno));
    return 5;
}
