// A static position-independent executable without libc (Debian's cross toolchain has no rcrt1.o for
// -static-pie with glibc): checks ET_DYN loading without an interpreter, argc on the stack and AT_RANDOM.
static long sys3(long n, long a, long b, long c) {
    register long a7 __asm__("a7") = n;
    register long a0 __asm__("a0") = a;
    register long a1 __asm__("a1") = b;
    register long a2 __asm__("a2") = c;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2) : "memory");
    return a0;
}
static const char msg[] = "static-pie: hello\n";
void start_c(long *sp) {
    long argc = sp[0];
    sys3(64, 1, (long)msg, sizeof msg - 1);
    char digit = (char)('0' + argc);
    sys3(64, 1, (long)&digit, 1);
    sys3(64, 1, (long)"\n", 1);
    sys3(94, 9, 0, 0);
}
__asm__(".globl _start\n_start:\n mv a0, sp\n call start_c\n");
