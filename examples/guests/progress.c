/*
 * progress.c — streaming-output test guest.
 *
 * What it does: for I = 0 .. N-1 prints "tick I\n" and flushes stdout, then
 *               burns CPU (20,000,000 iterations of arithmetic accumulated into
 *               a volatile, which the compiler cannot remove) before the next
 *               tick; finally prints "done\n". Each line is flushed on its own
 *               so a streaming server delivers it before the next one exists.
 * Args:         argv[1] = N (decimal, optional, default 5).  Stdin: not read.
 * Output:       stdout "tick 0\ntick 1\n...tick N-1\ndone\n", exit code 0.
 *               A malformed argument prints "usage: progress [N]\n" on stderr,
 *               exit code 2.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BURN_ITERATIONS 20000000u

static volatile uint32_t sink;

static void burn(uint32_t salt) {
    for (uint32_t i = 0; i < BURN_ITERATIONS; i++)
        sink = sink * 31u + (i ^ salt);
}

int main(int argc, char **argv) {
    unsigned long n = 5;
    if (argc > 1) {
        char *end;
        n = strtoul(argv[1], &end, 10);
        if (end == argv[1] || *end != '\0' || argv[1][0] == '-') {
            fputs("usage: progress [N]\n", stderr);
            return 2;
        }
    }

    for (unsigned long i = 0; i < n; i++) {
        printf("tick %lu\n", i);
        fflush(stdout);
        burn((uint32_t)i);
    }
    printf("done\n");
    fflush(stdout);
    return 0;
}
