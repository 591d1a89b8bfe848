/*
 * calc.c — a small REPL: a calculator that answers one line at a time.
 *
 * What it does: prints "> ", reads a line from stdin, evaluates it as an
 *               integer expression (+ - * / % and parentheses, unary minus,
 *               64-bit, usual precedence) and prints the result, until EOF
 *               or a line "quit". Meant for interactive runs (`wasmwiz run -i`,
 *               the playground terminal): each answer is flushed at once.
 * Args:         none.  Stdin: lines of expressions.
 * Output:       "> " prompts; "= N" per line, or "error: ..." for a bad
 *               expression or a division by zero; "bye" at the end. Exit 0.
 */
#include <stdio.h>
#include <string.h>

static const char *p;
static int failed;
static const char *why;

static void fail(const char *msg) {
    if (!failed) {
        failed = 1;
        why = msg;
    }
}

static void skip(void) {
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
}

static long long expr(void);

static long long primary(void) {
    skip();
    if (*p == '(') {
        p++;
        long long v = expr();
        skip();
        if (*p != ')')
            fail("expected )");
        else
            p++;
        return v;
    }
    if (*p == '-') {
        p++;
        return -primary();
    }
    if (*p < '0' || *p > '9') {
        fail("expected a number");
        return 0;
    }
    long long v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    return v;
}

static long long term(void) {
    long long v = primary();
    for (;;) {
        skip();
        char op = *p;
        if (op != '*' && op != '/' && op != '%')
            return v;
        p++;
        long long r = primary();
        if (op == '*')
            v *= r;
        else if (r == 0)
            fail("division by zero");
        else
            v = op == '/' ? v / r : v % r;
    }
}

static long long expr(void) {
    long long v = term();
    for (;;) {
        skip();
        char op = *p;
        if (op != '+' && op != '-')
            return v;
        p++;
        long long r = term();
        v = op == '+' ? v + r : v - r;
    }
}

int main(void) {
    char line[1024];
    for (;;) {
        fputs("> ", stdout);
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            break;
        line[strcspn(line, "\n")] = 0;
        if (strcmp(line, "quit") == 0)
            break;
        p = line;
        skip();
        if (*p == 0)
            continue;
        failed = 0;
        long long v = expr();
        skip();
        if (!failed && *p != 0)
            fail("unexpected input");
        if (failed)
            printf("error: %s\n", why);
        else
            printf("= %lld\n", v);
        fflush(stdout);
    }
    puts("bye");
    return 0;
}
