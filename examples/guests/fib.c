/*
 * fib.c — batch test-case guest (reads its input from stdin).
 *
 * What it does: reads one decimal integer n from stdin (leading/trailing
 *               whitespace allowed) and prints fib(n), computed with the naive
 *               exponential recursion fib(n) = fib(n-1) + fib(n-2),
 *               fib(0) = 0, fib(1) = 1, so larger n costs much more fuel
 *               (n = 30 is ~2.7 million calls; n = 40 is ~330 million).
 * Args:         none (ignored).  Stdin: "n\n", 0 <= n <= 93 (fib(93) is the
 *               largest that fits in 64 bits).
 * Output:       stdout "fib(n)\n", exit code 0.
 *               e.g. stdin "10\n" -> stdout "55\n"; "0\n" -> "0\n";
 *               "20\n" -> "6765\n".
 *               Bad or missing input: stderr "fib: expected an integer
 *               0..93 on stdin\n", exit code 1.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>

static uint64_t fib(unsigned n) {
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static int bad_input(void) {
    fputs("fib: expected an integer 0..93 on stdin\n", stderr);
    return 1;
}

int main(void) {
    char line[64];
    size_t len = fread(line, 1, sizeof line - 1, stdin);
    line[len] = '\0';

    const char *p = line;
    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p))
        return bad_input();
    unsigned n = 0;
    while (isdigit((unsigned char)*p)) {
        n = n * 10 + (unsigned)(*p - '0');
        if (n > 93)
            return bad_input();
        p++;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '\0')
        return bad_input();

    printf("%llu\n", (unsigned long long)fib(n));
    return 0;
}
