/*
 * guess.c — a number-guessing game for interactive runs.
 *
 * What it does: picks a secret number from 1 to 100 (getentropy, so it is
 *               fixed by the run's random_seed), then asks for guesses one
 *               line at a time and answers "higher", "lower" or "correct",
 *               flushing each answer at once.
 * Args:         none.  Stdin: one guess per line.
 * Output:       "Guess a number from 1 to 100." then, per line, "> " and
 *               "higher\n" / "lower\n" / "not a number\n", and finally
 *               "correct! N guesses\n" (exit 0). EOF before the right answer:
 *               "the number was N\n", exit 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    unsigned char r[4] = {0};
    if (getentropy(r, sizeof r) != 0)
        return 2;
    unsigned secret = ((unsigned)r[0] | (unsigned)r[1] << 8 | (unsigned)r[2] << 16 |
                       (unsigned)r[3] << 24) % 100 + 1;
    puts("Guess a number from 1 to 100.");
    char line[128];
    int guesses = 0;
    for (;;) {
        fputs("> ", stdout);
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin)) {
            printf("the number was %u\n", secret);
            return 1;
        }
        char *end;
        long g = strtol(line, &end, 10);
        if (end == line) {
            puts("not a number");
            continue;
        }
        guesses++;
        if ((unsigned long)g == secret) {
            printf("correct! %d guesses\n", guesses);
            return 0;
        }
        puts((unsigned long)g < secret ? "higher" : "lower");
        fflush(stdout);
    }
}
