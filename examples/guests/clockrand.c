/*
 * clockrand.c — clock and randomness test guest.
 *
 * What it does: reads CLOCK_REALTIME and CLOCK_MONOTONIC (clock_gettime),
 *               sleeps 1 second (nanosleep), reads both clocks again, then
 *               draws 16 bytes with getentropy() (WASI random_get).
 * Args:         none (ignored).  Stdin: not read.
 * Output:       stdout, five lines, exit code 0:
 *                   realtime=<ns>
 *                   monotonic=<ns>
 *                   realtime=<ns>
 *                   monotonic=<ns>
 *                   random=<32 lowercase hex digits>
 *               <ns> is the clock value in nanoseconds as a decimal integer.
 *               The second reading of each clock is at least 1e9 ns past the
 *               first. On WasmWiz the clocks are virtual and random_get is a
 *               PRNG seeded by the request's random_seed, so the whole output
 *               is deterministic for a given seed (on a real WASI runtime it
 *               is not). A failing call prints "clockrand: <call> failed\n"
 *               on stderr and exits 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now_ns(clockid_t id, const char *name) {
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        fprintf(stderr, "clockrand: clock_gettime(%s) failed\n", name);
        _exit(1);
    }
    return (unsigned long long)ts.tv_sec * 1000000000ull +
           (unsigned long long)ts.tv_nsec;
}

static void print_clocks(void) {
    unsigned long long rt = now_ns(CLOCK_REALTIME, "CLOCK_REALTIME");
    unsigned long long mono = now_ns(CLOCK_MONOTONIC, "CLOCK_MONOTONIC");
    printf("realtime=%llu\n", rt);
    printf("monotonic=%llu\n", mono);
}

int main(void) {
    print_clocks();

    struct timespec one_second = {.tv_sec = 1, .tv_nsec = 0};
    if (nanosleep(&one_second, NULL) != 0) {
        fputs("clockrand: nanosleep failed\n", stderr);
        return 1;
    }

    print_clocks();

    unsigned char rnd[16];
    if (getentropy(rnd, sizeof rnd) != 0) {
        fputs("clockrand: getentropy failed\n", stderr);
        return 1;
    }
    fputs("random=", stdout);
    for (size_t i = 0; i < sizeof rnd; i++)
        printf("%02x", rnd[i]);
    fputs("\n", stdout);
    return 0;
}
