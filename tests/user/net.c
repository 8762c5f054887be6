// Sockets and waiting: an epoll TCP echo server on 127.0.0.1 serving many connections from a forked client,
// UDP datagrams, Unix socketpair with SCM_RIGHTS and SCM_CREDENTIALS, socket options, eventfd, timerfd, pselect,
// ppoll, splice, a BPF socket filter.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLIENTS 64

static int client(int port) {
    int fds[CLIENTS];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0) return 10;
        char msg[32];
        int n = snprintf(msg, sizeof msg, "req %d", i);
        if (send(fds[i], msg, n, 0) != n) return 11;
    }
    int good = 0;
    for (int i = 0; i < CLIENTS; i++) {
        char buf[64] = {0}, want[64];
        snprintf(want, sizeof want, "echo: req %d", i);
        ssize_t n = recv(fds[i], buf, sizeof buf - 1, MSG_WAITALL);
        if (n == (ssize_t)strlen(want) && strcmp(buf, want) == 0) good++;
        close(fds[i]);
    }
    return good == CLIENTS ? 0 : 12;
}

static void epoll_server(void) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    printf("SO_REUSEADDR: %d\n", setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    printf("bind: %d listen: %d\n", bind(ls, (struct sockaddr *)&sa, sizeof sa), listen(ls, 128));
    socklen_t len = sizeof sa;
    getsockname(ls, (struct sockaddr *)&sa, &len);
    printf("getsockname: len=%u family=%d loopback=%d port>0=%d\n", len, sa.sin_family,
           sa.sin_addr.s_addr == htonl(INADDR_LOOPBACK), ntohs(sa.sin_port) > 0);
    int type = 0;
    len = sizeof type;
    getsockopt(ls, SOL_SOCKET, SO_TYPE, &type, &len);
    printf("SO_TYPE stream: %d len=%u\n", type == SOCK_STREAM, len);

    pid_t pid = fork();
    if (pid == 0) _exit(client(ntohs(sa.sin_port)));

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xfeedface00000000ull | (unsigned)ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    int served = 0, accepted = 0, peer_ok = 0, data_ok = 1;
    while (served < CLIENTS) {
        struct epoll_event evs[16];
        int n = epoll_wait(ep, evs, 16, 10000);
        if (n <= 0) { printf("epoll_wait: %d %s\n", n, strerror(errno)); break; }
        for (int i = 0; i < n; i++) {
            if ((evs[i].data.u64 >> 32) == 0xfeedface) {
                int fd = (int)(evs[i].data.u64 & 0xffffffff);
                if (fd != ls) data_ok = 0;
                for (;;) {
                    struct sockaddr_in peer;
                    socklen_t pl = sizeof peer;
                    int c = accept4(ls, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    accepted++;
                    if (pl == sizeof peer && peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) peer_ok++;
                    int nd = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &nd, sizeof nd);
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
            } else {
                int c = (int)evs[i].data.u64;
                char buf[64] = {0};
                ssize_t r = read(c, buf, sizeof buf - 1);
                if (r > 0) {
                    char out[80];
                    int m = snprintf(out, sizeof out, "echo: %s", buf);
                    write(c, out, m);
                    served++;
                }
                epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL);
                close(c);
            }
        }
    }
    int status;
    waitpid(pid, &status, 0);
    printf("epoll server: accepted=%d served=%d peers=%d data=%d client exit=%d\n", accepted, served, peer_ok, data_ok,
           WEXITSTATUS(status));
    close(ep);
    close(ls);
}

static void udp(void) {
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(b, (struct sockaddr *)&sa, sizeof sa);
    socklen_t len = sizeof sa;
    getsockname(b, (struct sockaddr *)&sa, &len);
    printf("sendto: %zd\n", sendto(a, "datagram", 8, 0, (struct sockaddr *)&sa, sizeof sa));
    char buf[16] = {0};
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    printf("recvfrom: %zd %s from loopback=%d\n", recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl), buf,
           from.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    // sendmmsg / recvmmsg: two datagrams in one call each.
    struct iovec iv[2] = {{"one", 3}, {"two!", 4}};
    struct mmsghdr mm[2] = {0};
    for (int i = 0; i < 2; i++) {
        mm[i].msg_hdr.msg_name = &sa;
        mm[i].msg_hdr.msg_namelen = sizeof sa;
        mm[i].msg_hdr.msg_iov = &iv[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    printf("sendmmsg: %d lens %u %u\n", sendmmsg(a, mm, 2, 0), mm[0].msg_len, mm[1].msg_len);
    char r1[8] = {0}, r2[8] = {0};
    struct iovec ri[2] = {{r1, 7}, {r2, 7}};
    struct mmsghdr rm[2] = {0};
    for (int i = 0; i < 2; i++) { rm[i].msg_hdr.msg_iov = &ri[i]; rm[i].msg_hdr.msg_iovlen = 1; }
    int got = recvmmsg(b, rm, 2, 0, NULL);
    if (got == 1) got += recvmmsg(b, rm + 1, 1, 0, NULL);
    printf("recvmmsg: %d %s/%u %s/%u\n", got, r1, rm[0].msg_len, r2, rm[1].msg_len);
    close(a);
    close(b);
}

static void unix_rights(void) {
    int sv[2];
    printf("socketpair: %d\n", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int one = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
    int p[2];
    pipe(p);
    write(p[1], "through a passed fd", 19);
    char data[] = "payload";
    struct iovec iov = {data, 7};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[0], sizeof(int));
    printf("sendmsg: %zd\n", sendmsg(sv[0], &msg, 0));
    close(p[0]);

    char rbuf[16] = {0};
    struct iovec riov = {rbuf, sizeof rbuf - 1};
    union { char buf[256]; struct cmsghdr align; } ru;
    struct msghdr rmsg = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = ru.buf, .msg_controllen = sizeof ru.buf};
    ssize_t n = recvmsg(sv[1], &rmsg, 0);
    int passed = -1, cred_pid = 0;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&rmsg); h; h = CMSG_NXTHDR(&rmsg, h)) {
        if (h->cmsg_type == SCM_RIGHTS) memcpy(&passed, CMSG_DATA(h), sizeof(int));
        if (h->cmsg_type == SCM_CREDENTIALS) { struct ucred cr; memcpy(&cr, CMSG_DATA(h), sizeof cr); cred_pid = cr.pid; }
    }
    char via[32] = {0};
    if (passed >= 0) read(passed, via, 19);
    printf("recvmsg: %zd %s; fd passed: %s; credentials pid matches: %d\n", n, rbuf, via, cred_pid == getpid());
    printf("shutdown: %d\n", shutdown(sv[0], SHUT_WR));
    printf("read after peer shutdown: %zd\n", read(sv[1], rbuf, 4));
    struct sockaddr_un un;
    socklen_t ul = sizeof un;
    printf("getpeername on socketpair: %d family=%d\n", getpeername(sv[0], (struct sockaddr *)&un, &ul), un.sun_family);
    printf("connect bad len: %d %s\n", connect(sv[0], (struct sockaddr *)&un, 4096), strerror(errno));
    close(sv[0]);
    close(sv[1]);
}

static void events(void) {
    int e = eventfd(3, EFD_CLOEXEC);
    uint64_t v = 4;
    write(e, &v, 8);
    read(e, &v, 8);
    printf("eventfd: %llu\n", (unsigned long long)v);
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec its = {.it_value = {0, 20 * 1000 * 1000}, .it_interval = {0, 10 * 1000 * 1000}};
    printf("timerfd_settime: %d\n", timerfd_settime(t, 0, &its, NULL));
    struct itimerspec cur;
    timerfd_gettime(t, &cur);
    printf("timerfd_gettime interval: %ld\n", cur.it_interval.tv_nsec);
    struct pollfd pf = {.fd = t, .events = POLLIN};
    printf("poll on timerfd: %d revents=%d\n", poll(&pf, 1, 5000), pf.revents);
    read(t, &v, 8);
    printf("expirations >= 1: %d\n", v >= 1);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(e, &rs);
    struct timeval tv = {0, 1000};
    printf("select on drained eventfd: %d\n", select(e + 1, &rs, NULL, NULL, &tv));
    v = 1;
    write(e, &v, 8);
    FD_ZERO(&rs);
    FD_SET(e, &rs);
    struct timespec ts = {1, 0};
    printf("pselect on ready eventfd: %d isset=%d\n", pselect(e + 1, &rs, NULL, NULL, &ts, NULL), FD_ISSET(e, &rs));
    int p[2], q[2];
    pipe(p);
    pipe(q);
    write(p[1], "spliced", 7);
    printf("splice: %zd\n", splice(p[0], NULL, q[1], NULL, 7, 0));
    char buf[8] = {0};
    read(q[0], buf, 7);
    printf("after splice: %s\n", buf);
    close(e);
    close(t);
}

// SO_ATTACH_FILTER: the option holds a pointer to BPF code, which must be the guest's copy, never its address.
static void bpf_filter(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    struct sock_filter code[] = {  // accept only 3-byte datagrams
        BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 3, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog prog = {4, code};
    printf("SO_ATTACH_FILTER: %d\n", setsockopt(sv[1], SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog));
    send(sv[0], "toolong", 7, 0);
    send(sv[0], "abc", 3, 0);
    char buf[16] = {0};
    printf("filtered recv: %zd %s\n", recv(sv[1], buf, sizeof buf, 0), buf);
    struct sock_fprog bad = {4, (struct sock_filter *)0x10};
    printf("filter at a bad address: %d %s\n", setsockopt(sv[1], SOL_SOCKET, SO_ATTACH_FILTER, &bad, sizeof bad),
           strerror(errno));
    close(sv[0]);
    close(sv[1]);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    epoll_server();
    udp();
    unix_rights();
    events();
    bpf_filter();
    return 0;
}
