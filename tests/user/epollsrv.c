// An epoll echo server for clients on the host: listens on 127.0.0.1 (port printed), serves N connections
// (argv[1]) with non-blocking sockets and edge-triggered reads, then reports and exits.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int want = argc > 1 ? atoi(argv[1]) : 100;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 1024)) { perror("listen"); return 1; }
    socklen_t len = sizeof sa;
    getsockname(ls, (struct sockaddr *)&sa, &len);
    printf("port %d\n", ntohs(sa.sin_port));
    fflush(stdout);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    int accepted = 0, served = 0, open_now = 0, max_open = 0;
    while (served < want) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 30000);
        if (n <= 0) { printf("epoll_wait: %d %s\n", n, strerror(errno)); return 1; }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    accepted++;
                    if (++open_now > max_open) max_open = open_now;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLET, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            char buf[256];
            for (;;) {  // edge-triggered: drain
                ssize_t r = read(fd, buf, sizeof buf);
                if (r > 0) {
                    char out[300];
                    int m = snprintf(out, sizeof out, "echo %.*s", (int)r, buf);
                    write(fd, out, m);
                    continue;
                }
                if (r == 0) { close(fd); open_now--; served++; }
                break;  // EAGAIN: wait for more
            }
        }
    }
    printf("accepted %d served %d all open at once %d\n", accepted, served, max_open == want);
    return 0;
}
