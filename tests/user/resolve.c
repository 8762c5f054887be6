// Name resolution as a program does it (getaddrinfo): /etc/hosts, /etc/nsswitch.conf and /etc/resolv.conf
// come from the sysroot, and DNS queries go out through the socket calls.
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    int status = 0;
    for (int i = 1; i < argc; i++) {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
        int r = getaddrinfo(argv[i], "80", &hints, &res);
        if (r != 0) {
            printf("%s: %s\n", argv[i], gai_strerror(r));
            status = 1;
            continue;
        }
        char buf[64];
        inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, buf, sizeof buf);
        printf("%s: %s\n", argv[i], buf);
        freeaddrinfo(res);
    }
    return status;
}
