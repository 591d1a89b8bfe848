/*
 * exitcode.c — exit-status test guest.
 *
 * What it does: prints which status it is about to exit with, then exits with
 *               it (WASI proc_exit).
 * Args:         argv[1] = exit status N (decimal integer, optional, default 0;
 *               parsed with atoi, so a non-number means 0). WASI exit codes
 *               are unsigned 32-bit; use 0..125 for portable results.
 *               Stdin: not read.
 * Output:       stdout "exiting with N\n", exit code N.
 *               e.g. `exitcode 3` -> "exiting with 3\n", exit code 3.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 0;
    printf("exiting with %d\n", code);
    fflush(stdout);
    exit(code);
}
