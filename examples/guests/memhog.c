/*
 * memhog.c — memory-limit test guest.
 *
 * What it does: malloc()s argv[1] MiB (default 64) in one block and writes one
 *               byte into every 4 KiB page of it (so the memory is really
 *               used; each 64 KiB wasm page is touched 16 times).
 * Args:         argv[1] = MiB to allocate (decimal, optional, default 64).
 *               Stdin: not read.
 * Output:       success: stdout "allocated N MiB\n", exit code 0.
 *               failure: stderr "malloc failed\n", exit code 1 (this is what a
 *               sandbox memory limit turns memory.grow failure into; sizes of
 *               4096 MiB or more can never fit in wasm32 and fail the same way).
 *               A malformed argument prints "usage: memhog [MiB]\n" on stderr,
 *               exit code 2.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PAGE 4096

int main(int argc, char **argv) {
    unsigned long mib = 64;
    if (argc > 1) {
        char *end;
        mib = strtoul(argv[1], &end, 10);
        if (end == argv[1] || *end != '\0' || argv[1][0] == '-') {
            fputs("usage: memhog [MiB]\n", stderr);
            return 2;
        }
    }

    uint64_t bytes = (uint64_t)mib * 1024 * 1024;
    volatile unsigned char *p = NULL;
    if (bytes < SIZE_MAX)
        p = malloc((size_t)bytes);
    if (p == NULL && bytes != 0) {
        fputs("malloc failed\n", stderr);
        return 1;
    }

    /* volatile stores: the compiler may not drop the allocation or the writes */
    for (uint64_t off = 0; off < bytes; off += PAGE)
        p[off] = (unsigned char)(off >> 12);
    if (bytes != 0)
        p[bytes - 1] = 1;

    printf("allocated %lu MiB\n", mib);
    return 0;
}
