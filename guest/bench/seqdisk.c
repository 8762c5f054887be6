/* seqdisk: the failover workload (docs/failover.md). Writes sequence number n to record n (512 bytes
 * at offset n*512) of a block device or a file (created if missing), fsyncs, and only then prints "ACK n". So every n printed is on the
 * disk for good, and a standby that took over must hold every n the primary's released output showed.
 * On start it finds the first missing record and continues from there ("SEQDISK start n").
 * Usage: seqdisk DEVICE [wait] [COUNT]; with "wait" it prints "SEQDISK ready" and waits for a line on
 * stdin before writing (so a test can snapshot it first). With COUNT it stops after COUNT records. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORD 512
#define MAGIC 0x44514553u /* "SEQD" */

struct record {
    uint32_t magic;
    uint32_t pad;
    uint64_t n;
    uint64_t check;
};

static uint64_t check_of(uint64_t n) { return (n * 0x9E3779B97F4A7C15ULL) ^ 0xA5A5A5A5A5A5A5A5ULL; }

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: seqdisk DEVICE|FILE [wait] [COUNT]\n");
        return 2;
    }
    int wait = argc > 2 && strcmp(argv[2], "wait") == 0;
    unsigned long long limit = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
    int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 1;
    }
    /* A device holds as many records as fit; a file grows. */
    off_t size = lseek(fd, 0, SEEK_END);
    uint64_t max = S_ISBLK(st.st_mode) ? (size > 0 ? (uint64_t)size / RECORD : 0) : (uint64_t)1 << 40;
    if (wait) {
        printf("SEQDISK ready\n");
        fflush(stdout);
        char line[64];
        if (fgets(line, sizeof line, stdin) == NULL) return 1;
    }
    unsigned char block[RECORD];
    uint64_t n = 1;
    for (; n < max; n++) {
        struct record r;
        if (pread(fd, block, RECORD, (off_t)(n * RECORD)) != RECORD) break;
        memcpy(&r, block, sizeof r);
        if (r.magic != MAGIC || r.n != n || r.check != check_of(n)) break;
    }
    printf("SEQDISK start %llu\n", (unsigned long long)n);
    fflush(stdout);
    for (unsigned long long done = 0; n < max && (!limit || done < limit); n++, done++) {
        struct record r = { MAGIC, 0, n, check_of(n) };
        memset(block, 0, sizeof block);
        memcpy(block, &r, sizeof r);
        if (pwrite(fd, block, RECORD, (off_t)(n * RECORD)) != RECORD || fsync(fd) != 0) {
            perror("seqdisk: write");
            return 1;
        }
        printf("ACK %llu\n", (unsigned long long)n);
        fflush(stdout);
    }
    printf("SEQDISK done %llu\n", (unsigned long long)n);
    return 0;
}
