/*
 * fsreport.c — counts lines and words of every input/<name>.txt file and writes
 *              the counts to out/report.txt (stdio and dirent, as any C
 *              program would).
 *
 * What it does: opendir("/input"), and for each entry whose name ends in
 *               ".txt" (in name order), fopen()s it and counts lines ('\n')
 *               and words (runs of non-space bytes). Creates /out if needed
 *               and writes one line per file to /out/report.txt:
 *               "<name> <lines> <words>\n", then "total <lines> <words>\n".
 * Args:         none.  Stdin: unused.
 * Output:       stdout "wrote out/report.txt (N files)\n", exit code 0.
 *               On an error: "fsreport: <what>: <strerror>\n" on stderr, exit 1.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(const char *what) {
    fprintf(stderr, "fsreport: %s: %s\n", what, strerror(errno));
    return 1;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void) {
    DIR *dir = opendir("/input");
    if (!dir)
        return fail("/input");
    char *names[1024];
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) && count < 1024) {
        size_t len = strlen(entry->d_name);
        if (len > 4 && !strcmp(entry->d_name + len - 4, ".txt"))
            names[count++] = strdup(entry->d_name);
    }
    closedir(dir);
    qsort(names, count, sizeof names[0], by_name);
    if (mkdir("/out", 0755) < 0 && errno != EEXIST)
        return fail("/out");
    FILE *report = fopen("/out/report.txt", "w");
    if (!report)
        return fail("/out/report.txt");
    unsigned long total_lines = 0, total_words = 0;
    for (size_t i = 0; i < count; i++) {
        char path[1100];
        snprintf(path, sizeof path, "/input/%s", names[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            return fail(path);
        unsigned long lines = 0, words = 0;
        int c, in_word = 0;
        while ((c = fgetc(f)) != EOF) {
            if (c == '\n')
                lines++;
            if (isspace(c)) {
                in_word = 0;
            } else if (!in_word) {
                in_word = 1;
                words++;
            }
        }
        fclose(f);
        fprintf(report, "%s %lu %lu\n", names[i], lines, words);
        total_lines += lines;
        total_words += words;
    }
    fprintf(report, "total %lu %lu\n", total_lines, total_words);
    if (fclose(report) != 0)
        return fail("/out/report.txt");
    printf("wrote out/report.txt (%zu files)\n", count);
    return 0;
}
