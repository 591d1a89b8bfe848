/*
 * hash.c — CPU-bound benchmark guest.
 *
 * What it does: generates argv[1] MiB (default 40) of pseudo-random bytes with
 *               a fixed xorshift64 generator (seed 0x9E3779B97F4A7C15, shifts
 *               13/7/17, 8 little-endian bytes per step), refilling one static
 *               64 KiB buffer over and over (no big allocation), and computes
 *               the 64-bit FNV-1a hash of the whole byte stream.
 * Args:         argv[1] = size in MiB (decimal, optional, default 40; 0 allowed).
 *               Stdin: not read.
 * Output:       stdout "fnv1a64=<16 lowercase hex digits>\n", exit code 0.
 *               A malformed argument prints "usage: hash [MiB]\n" on stderr,
 *               exit code 2.
 *               Deterministic: the same argument always prints the same hash
 *               (argv[1]=0 prints the FNV-1a offset basis, cbf29ce484222325).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNK (64 * 1024)

static unsigned char buf[CHUNK];

int main(int argc, char **argv) {
    unsigned long mib = 40;
    if (argc > 1) {
        char *end;
        mib = strtoul(argv[1], &end, 10);
        if (end == argv[1] || *end != '\0' || argv[1][0] == '-') {
            fputs("usage: hash [MiB]\n", stderr);
            return 2;
        }
    }

    uint64_t x = 0x9E3779B97F4A7C15ull;   /* xorshift64 state (never 0) */
    uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a 64-bit offset basis */
    const uint64_t prime = 0x100000001b3ull;

    uint64_t chunks = (uint64_t)mib * (1024 * 1024 / CHUNK);
    for (uint64_t c = 0; c < chunks; c++) {
        for (size_t i = 0; i < CHUNK; i += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for (int b = 0; b < 8; b++)
                buf[i + b] = (unsigned char)(x >> (8 * b));
        }
        for (size_t i = 0; i < CHUNK; i++) {
            h ^= buf[i];
            h *= prime;
        }
    }

    printf("fnv1a64=%016llx\n", (unsigned long long)h);
    return 0;
}
