/*
 * argsenv.c — argument and environment test guest.
 *
 * What it does: prints every argv element (argv[0] included), then every
 *               environment entry, in the order the host passed them
 *               (not sorted).
 * Args:         any.  Env: any.  Stdin: not read.
 * Output:       stdout, exit code 0:
 *                   argv[0]=<program name>
 *                   argv[1]=<first arg>
 *                   ...
 *                   env:KEY=VALUE        (one line per environment entry)
 *               e.g. program_name "main.wasm", args ["a", "b c"], env {X: 1}:
 *                   argv[0]=main.wasm
 *                   argv[1]=a
 *                   argv[2]=b c
 *                   env:X=1
 */
#include <stdio.h>

extern char **environ;

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    if (environ != NULL)
        for (char **e = environ; *e != NULL; e++)
            printf("env:%s\n", *e);
    return 0;
}
