/*
 * fscopy.c — copies one file of the guest's filesystem to another.
 *
 * What it does: open()s argv[1] for reading and argv[2] for writing
 *               (created or truncated), then read()s and write()s 64 KiB
 *               chunks until end of file. Paths are in the guest's
 *               filesystem (the preopen "/"), e.g. `in/big.bin out/copy.bin`.
 * Args:         argv[1] = source, argv[2] = destination.  Stdin: unused.
 * Output:       stdout "copied N bytes\n", exit code 0. On an error:
 *               "fscopy: <what>: <strerror>\n" on stderr, exit code 1
 *               (2 on missing args).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static unsigned char buf[CHUNK];

static int fail(const char *what) {
    fprintf(stderr, "fscopy: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fscopy SOURCE DESTINATION\n");
        return 2;
    }
    int in = open(argv[1], O_RDONLY);
    if (in < 0)
        return fail(argv[1]);
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0)
        return fail(argv[2]);
    unsigned long long total = 0;
    for (;;) {
        ssize_t n = read(in, buf, CHUNK);
        if (n == 0)
            break;
        if (n < 0)
            return fail("read");
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0)
                return fail("write");
            off += w;
        }
        total += (unsigned long long)n;
    }
    if (close(out) < 0)
        return fail("close");
    printf("copied %llu bytes\n", total);
    return 0;
}
