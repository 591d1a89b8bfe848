/*
 * echo.c — copies stdin to stdout (like `cat`).
 *
 * What it does: read()s stdin in 64 KiB chunks until EOF and write()s each
 *               chunk to stdout (retrying short writes). One static 64 KiB
 *               buffer, no stdio, so 64 MiB of input streams through cheaply.
 * Args:         none (ignored).  Stdin: any bytes.
 * Output:       stdout is byte-identical to stdin, exit code 0.
 *               On a read/write error: "echo: read failed\n" or
 *               "echo: write failed\n" on stderr, exit code 1.
 */
#include <errno.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static unsigned char buf[CHUNK];

static void fail(const char *msg, size_t len) {
    (void)!write(2, msg, len);
    _exit(1);
}

int main(void) {
    for (;;) {
        ssize_t n = read(0, buf, CHUNK);
        if (n == 0)
            break; /* EOF */
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            fail("echo: read failed\n", 18);
        }
        size_t off = 0;
        while (off < (size_t)n) {
            ssize_t w = write(1, buf + off, (size_t)n - off);
            if (w < 0) {
                if (errno == EINTR || errno == EAGAIN)
                    continue;
                fail("echo: write failed\n", 19);
            }
            off += (size_t)w;
        }
    }
    return 0;
}
