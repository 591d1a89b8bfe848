/*
 * hello.c — the smallest useful WasmWiz guest.
 *
 * What it does: prints a fixed greeting to stdout.
 * Args:         none (ignored).  Stdin: not read.
 * Output:       stdout "Hello, WasmWiz!\n", stderr empty, exit code 0.
 *
 * Build: examples/guests/build.sh (clang --target=wasm32-wasi + wasi-libc).
 */
#include <stdio.h>

int main(void) {
    fputs("Hello, WasmWiz!\n", stdout);
    return 0;
}
