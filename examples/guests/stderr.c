/*
 * stderr.c — output-separation test guest.
 *
 * What it does: writes one line to stdout, then one line to stderr.
 * Args:         none (ignored).  Stdin: not read.
 * Output:       stdout "to stdout\n", stderr "to stderr\n", exit code 0.
 */
#include <stdio.h>

int main(void) {
    fputs("to stdout\n", stdout);
    fflush(stdout);
    fputs("to stderr\n", stderr);
    return 0;
}
