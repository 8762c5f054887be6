#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    printf("hello from riscv64, argc=%d\n", argc);
    for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
    const char msg[] = "raw write\n";
    write(1, msg, strlen(msg));
    return 3;
}
