// A deliberate segfault with no handler: the process dies of SIGSEGV.
#include <stdio.h>
int main(void) {
    printf("about to fault\n");
    fflush(stdout);
    *(volatile int *)0 = 42;
    printf("not reached\n");
    return 0;
}
