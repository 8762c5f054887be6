// CPU-bound integer hashing with function calls and memory traffic (FNV-1a over a buffer, many passes).
#include <stdint.h>
#include <stdio.h>
static uint8_t buf[1 << 16];
static uint64_t fnv(const uint8_t *p, int n, uint64_t h) {
    for (int i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
    return h;
}
int main(void) {
    for (int i = 0; i < (int)sizeof buf; i++) buf[i] = (uint8_t)(i * 31 + 7);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int r = 0; r < 600; r++) { h = fnv(buf, sizeof buf, h); buf[r & 0xffff] ^= (uint8_t)h; }
    printf("%016llx\n", (unsigned long long)h);
    return 0;
}
