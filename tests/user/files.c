// Files and directories: every call prints its result so rivet and qemu-user can be compared.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

int main(void) {
    char buf[256];
    setvbuf(stdout, NULL, _IONBF, 0);
    if (mkdir("work", 0755) != 0) { perror("mkdir"); return 1; }
    if (chdir("work") != 0) { perror("chdir"); return 1; }
    char *cwd = getcwd(buf, sizeof buf);
    printf("getcwd ends with /work: %d\n", cwd && strcmp(cwd + strlen(cwd) - 5, "/work") == 0);
    printf("getcwd small buffer: %s\n", getcwd(buf, 3) == NULL && errno == ERANGE ? "ERANGE" : "?");

    int fd = openat(AT_FDCWD, "a.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    printf("openat: %d\n", fd >= 0);
    printf("write: %zd\n", write(fd, "hello, file\n", 12));
    struct iovec iov[2] = {{"vec-one ", 8}, {"vec-two\n", 8}};
    printf("writev: %zd\n", writev(fd, iov, 2));
    printf("lseek: %ld\n", (long)lseek(fd, 0, SEEK_SET));
    memset(buf, 0, sizeof buf);
    printf("read: %zd [%s]\n", read(fd, buf, 12), buf);
    char a[8] = {0}, b[9] = {0};
    struct iovec riov[2] = {{a, 7}, {b, 8}};
    printf("readv: %zd [%s|%s]\n", readv(fd, riov, 2), a, b);
    printf("pwrite: %zd\n", pwrite(fd, "HELLO", 5, 0));
    memset(buf, 0, sizeof buf);
    printf("pread: %zd [%s]\n", pread(fd, buf, 5, 0), buf);
    struct stat st;
    printf("fstat: %d size=%ld mode=%o\n", fstat(fd, &st), (long)st.st_size, st.st_mode & 0777);
    printf("ftruncate: %d\n", ftruncate(fd, 5));
    printf("fsync: %d fdatasync: %d\n", fsync(fd), fdatasync(fd));
    printf("stat: %d size=%ld isreg=%d\n", stat("a.txt", &st), (long)st.st_size, S_ISREG(st.st_mode));
    printf("lstat missing: %d errno=%s\n", lstat("nope", &st), strerror(errno));
    struct statx sx;
    printf("statx: %d size=%llu\n", statx(AT_FDCWD, "a.txt", 0, STATX_SIZE, &sx), (unsigned long long)sx.stx_size);

    int flags = fcntl(fd, F_GETFD);
    printf("fcntl F_GETFD: %d\n", flags);
    printf("fcntl F_SETFD: %d -> %d\n", fcntl(fd, F_SETFD, FD_CLOEXEC), fcntl(fd, F_GETFD));
    printf("fcntl F_GETFL accmode: %d\n", fcntl(fd, F_GETFL) & O_ACCMODE);
    int d = dup(fd);
    printf("dup: %d\n", d > fd);
    printf("dup3: %d\n", dup3(fd, 40, O_CLOEXEC));
    printf("dup3 same fd: %d errno=%s\n", dup3(fd, fd, 0), strerror(errno));
    printf("close: %d %d %d\n", close(d), close(40), close(fd));
    printf("close again: %d errno=%s\n", close(fd), strerror(errno));

    int p[2];
    printf("pipe2: %d\n", pipe2(p, O_CLOEXEC));
    write(p[1], "through pipe", 12);
    memset(buf, 0, sizeof buf);
    printf("pipe read: %zd [%s]\n", read(p[0], buf, sizeof buf), buf);
    close(p[0]); close(p[1]);

    printf("symlink: %d\n", symlink("a.txt", "link"));
    memset(buf, 0, sizeof buf);
    printf("readlink: %zd [%s]\n", readlink("link", buf, sizeof buf), buf);
    printf("access R_OK: %d, missing: %d errno=%s\n", access("a.txt", R_OK), access("zzz", F_OK), strerror(errno));
    printf("faccessat W_OK: %d\n", faccessat(AT_FDCWD, "a.txt", W_OK, 0));
    printf("mkdirat: %d\n", mkdirat(AT_FDCWD, "sub", 0700));
    printf("mkdirat again: %d errno=%s\n", mkdirat(AT_FDCWD, "sub", 0700), strerror(errno));
    printf("rename: %d\n", rename("a.txt", "sub/b.txt"));
    printf("renameat2 noreplace: %d\n", renameat2(AT_FDCWD, "sub/b.txt", AT_FDCWD, "c.txt", RENAME_NOREPLACE));
    int f2 = open("d.txt", O_CREAT | O_WRONLY, 0600);
    write(f2, "kept\n", 5);
    close(f2);

    DIR *dir = opendir(".");
    char *names[16]; int n = 0; struct dirent *e;
    while ((e = readdir(dir)) && n < 16) names[n++] = strdup(e->d_name);
    closedir(dir);
    qsort(names, n, sizeof *names, cmp);
    printf("getdents:");
    for (int i = 0; i < n; i++) printf(" %s", names[i]);
    printf("\n");
    printf("unlink link: %d\n", unlink("link"));
    printf("unlinkat dir: %d\n", unlinkat(AT_FDCWD, "sub", AT_REMOVEDIR));
    printf("rmdir nonempty .: %d errno=%s\n", rmdir("../work"), strerror(errno));
    printf("open missing: %d errno=%s\n", open("missing/file", O_RDONLY), strerror(errno));
    printf("open dir for write: %d errno=%s\n", open(".", O_WRONLY), strerror(errno));

    struct termios t;
    int devnull = open("/dev/null", O_RDWR);
    printf("ioctl TCGETS on /dev/null: %d errno=%s\n", ioctl(devnull, TCGETS, &t), strerror(errno));
    printf("isatty(devnull)=%d\n", isatty(devnull));
    printf("lseek on pipe: ");
    pipe(p);
    printf("%ld errno=%s\n", (long)lseek(p[0], 0, SEEK_SET), strerror(errno));
    printf("read bad fd: %zd errno=%s\n", read(99, buf, 1), strerror(errno));
    printf("write bad address: %zd errno=%s\n", write(1, (void *)(long)(getpagesize() / 512), 4), strerror(errno));
    printf("chdir ..: %d\n", chdir(".."));
    return 0;
}
