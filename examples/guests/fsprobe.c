/*
 * fsprobe.c — runs raw WASI preview1 filesystem calls named on its command
 *             line and prints what each returned (a probe for testing the
 *             in-memory filesystem; no libc path handling in between).
 *
 * Args:   a script of operations, each a word followed by its arguments:
 *           open PATH OFLAGS FDFLAGS RIGHTS LOOKUP  -> "fd=N"  (RIGHTS: 1 read, 2 write, 3 both;
 *                                                   LOOKUP 1 follows symlinks)
 *           mkdir PATH | rmdir PATH | unlink PATH | rename FROM TO | link FROM TO
 *           symlink TARGET PATH | readlink PATH     -> "target=..."
 *           stat PATH LOOKUP | fstat FD             -> "type=T size=S nlink=L ino=I mtim=M"
 *           write FD TEXT | pwrite FD OFFSET TEXT   -> "n=N"
 *           read FD N | pread FD N OFFSET           -> "data=..."
 *           seek FD OFFSET WHENCE | tell FD         -> "pos=N"
 *           truncate FD SIZE | close FD | sync FD | advise FD | allocate FD LEN
 *           setflags FD FLAGS | fdstat FD           -> "type=T flags=F"
 *           readdir FD BUFLEN COOKIE                -> "NAME@NEXT:TYPE,..." (as many as fit)
 *           renumber FROM TO | prestat FD           -> "name=..."
 *           settimes PATH ATIM MTIM | spin N PATH   (N path_filestat_get calls)
 *         PATH is relative to fd 3, or to fd N when written "N:PATH".
 * Output: one line per operation, "<op>: ok", "<op>: <value>" or "<op>: errno=N".
 * Exit:   0 (2 on an unknown operation).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

static char buf[65536];

static int dirfd_of(const char **path) {
    const char *colon = strchr(*path, ':');
    if (colon && colon != *path && strspn(*path, "0123456789") == (size_t)(colon - *path)) {
        int fd = atoi(*path);
        *path = colon + 1;
        return fd;
    }
    return 3;
}

static int report(const char *op, __wasi_errno_t e) {
    if (e)
        printf("%s: errno=%d\n", op, e);
    else
        printf("%s: ok\n", op);
    return e;
}

static void print_stat(const char *op, const __wasi_filestat_t *st) {
    printf("%s: type=%d size=%llu nlink=%llu ino=%llu mtim=%llu\n", op, st->filetype,
           (unsigned long long)st->size, (unsigned long long)st->nlink,
           (unsigned long long)st->ino, (unsigned long long)st->mtim);
}

int main(int argc, char **argv) {
    int i = 1;
#define ARG() (i < argc ? argv[i++] : "")
#define NUM() strtoull(ARG(), NULL, 0)
    while (i < argc) {
        const char *op = ARG();
        __wasi_errno_t e = 0;
        if (!strcmp(op, "open")) {
            const char *path = ARG();
            int dfd = dirfd_of(&path);
            __wasi_oflags_t of = NUM();
            __wasi_fdflags_t ff = NUM();
            int r = NUM();
            __wasi_lookupflags_t lf = NUM();
            __wasi_rights_t rights = (r & 1 ? __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_READDIR : 0) |
                                     (r & 2 ? __WASI_RIGHTS_FD_WRITE : 0);
            __wasi_fd_t fd;
            e = __wasi_path_open(dfd, lf, path, of, rights, rights, ff, &fd);
            if (!e) { printf("open: fd=%d\n", fd); continue; }
        } else if (!strcmp(op, "mkdir")) {
            const char *p = ARG(); int d = dirfd_of(&p);
            e = __wasi_path_create_directory(d, p);
        } else if (!strcmp(op, "rmdir")) {
            const char *p = ARG(); int d = dirfd_of(&p);
            e = __wasi_path_remove_directory(d, p);
        } else if (!strcmp(op, "unlink")) {
            const char *p = ARG(); int d = dirfd_of(&p);
            e = __wasi_path_unlink_file(d, p);
        } else if (!strcmp(op, "rename") || !strcmp(op, "link")) {
            const char *a = ARG(); int da = dirfd_of(&a);
            const char *b = ARG(); int db = dirfd_of(&b);
            e = op[0] == 'r' ? __wasi_path_rename(da, a, db, b) : __wasi_path_link(da, 0, a, db, b);
        } else if (!strcmp(op, "symlink")) {
            const char *t = ARG();
            const char *p = ARG(); int d = dirfd_of(&p);
            e = __wasi_path_symlink(t, d, p);
        } else if (!strcmp(op, "readlink")) {
            const char *p = ARG(); int d = dirfd_of(&p);
            __wasi_size_t n;
            e = __wasi_path_readlink(d, p, (uint8_t *)buf, sizeof buf - 1, &n);
            if (!e) { buf[n] = 0; printf("readlink: target=%s\n", buf); continue; }
        } else if (!strcmp(op, "stat")) {
            const char *p = ARG(); int d = dirfd_of(&p);
            __wasi_lookupflags_t lf = NUM();
            __wasi_filestat_t st;
            e = __wasi_path_filestat_get(d, lf, p, &st);
            if (!e) { print_stat(op, &st); continue; }
        } else if (!strcmp(op, "fstat")) {
            __wasi_filestat_t st;
            e = __wasi_fd_filestat_get(NUM(), &st);
            if (!e) { print_stat(op, &st); continue; }
        } else if (!strcmp(op, "write") || !strcmp(op, "pwrite")) {
            int fd = NUM();
            unsigned long long off = op[0] == 'p' ? NUM() : 0;
            const char *t = ARG();
            __wasi_ciovec_t iov = {(const uint8_t *)t, strlen(t)};
            __wasi_size_t n;
            e = op[0] == 'p' ? __wasi_fd_pwrite(fd, &iov, 1, off, &n) : __wasi_fd_write(fd, &iov, 1, &n);
            if (!e) { printf("%s: n=%lu\n", op, (unsigned long)n); continue; }
        } else if (!strcmp(op, "read") || !strcmp(op, "pread")) {
            int fd = NUM();
            size_t len = NUM();
            if (len > sizeof buf - 1) len = sizeof buf - 1;
            unsigned long long off = op[0] == 'p' ? NUM() : 0;
            __wasi_iovec_t iov = {(uint8_t *)buf, len};
            __wasi_size_t n;
            e = op[0] == 'p' ? __wasi_fd_pread(fd, &iov, 1, off, &n) : __wasi_fd_read(fd, &iov, 1, &n);
            if (!e) { buf[n] = 0; printf("%s: data=%s\n", op, buf); continue; }
        } else if (!strcmp(op, "seek") || !strcmp(op, "tell")) {
            int fd = NUM();
            __wasi_filesize_t pos;
            if (op[0] == 's') {
                long long off = strtoll(ARG(), NULL, 0);
                __wasi_whence_t w = NUM();
                e = __wasi_fd_seek(fd, off, w, &pos);
            } else {
                e = __wasi_fd_tell(fd, &pos);
            }
            if (!e) { printf("%s: pos=%llu\n", op, (unsigned long long)pos); continue; }
        } else if (!strcmp(op, "truncate")) {
            int fd = NUM();
            e = __wasi_fd_filestat_set_size(fd, NUM());
        } else if (!strcmp(op, "close")) {
            e = __wasi_fd_close(NUM());
        } else if (!strcmp(op, "sync")) {
            e = __wasi_fd_sync(NUM());
        } else if (!strcmp(op, "advise")) {
            e = __wasi_fd_advise(NUM(), 0, 0, __WASI_ADVICE_SEQUENTIAL);
        } else if (!strcmp(op, "allocate")) {
            int fd = NUM();
            e = __wasi_fd_allocate(fd, 0, NUM());
        } else if (!strcmp(op, "setflags")) {
            int fd = NUM();
            e = __wasi_fd_fdstat_set_flags(fd, NUM());
        } else if (!strcmp(op, "fdstat")) {
            __wasi_fdstat_t st;
            e = __wasi_fd_fdstat_get(NUM(), &st);
            if (!e) { printf("fdstat: type=%d flags=%d\n", st.fs_filetype, st.fs_flags); continue; }
        } else if (!strcmp(op, "readdir")) {
            int fd = NUM();
            size_t len = NUM();
            if (len > sizeof buf) len = sizeof buf;
            __wasi_dircookie_t cookie = NUM();
            __wasi_size_t used;
            e = __wasi_fd_readdir(fd, (uint8_t *)buf, len, cookie, &used);
            if (!e) {
                printf("readdir:");
                size_t at = 0;
                while (at + sizeof(__wasi_dirent_t) <= used) {
                    __wasi_dirent_t d;
                    memcpy(&d, buf + at, sizeof d);
                    at += sizeof d;
                    size_t n = d.d_namlen;
                    if (at + n > used) n = used - at;
                    printf(" %.*s@%llu:%d", (int)n, buf + at, (unsigned long long)d.d_next, d.d_type);
                    at += n;
                }
                printf(" used=%lu\n", (unsigned long)used);
                continue;
            }
        } else if (!strcmp(op, "renumber")) {
            int a = NUM();
            e = __wasi_fd_renumber(a, NUM());
        } else if (!strcmp(op, "prestat")) {
            int fd = NUM();
            __wasi_prestat_t ps;
            e = __wasi_fd_prestat_get(fd, &ps);
            if (!e) {
                e = __wasi_fd_prestat_dir_name(fd, (uint8_t *)buf, ps.u.dir.pr_name_len);
                if (!e) { printf("prestat: name=%.*s\n", (int)ps.u.dir.pr_name_len, buf); continue; }
            }
        } else if (!strcmp(op, "settimes")) {
            const char *p = ARG(); int d = dirfd_of(&p);
            __wasi_timestamp_t a = NUM(), m = NUM();
            e = __wasi_path_filestat_set_times(d, 0, p, a, m, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM);
        } else if (!strcmp(op, "spin")) {
            unsigned long long n = NUM();
            const char *p = ARG(); int d = dirfd_of(&p);
            __wasi_filestat_t st;
            for (unsigned long long k = 0; k < n && !e; k++)
                e = __wasi_path_filestat_get(d, 1, p, &st);
        } else {
            printf("unknown operation %s\n", op);
            return 2;
        }
        report(op, e);
    }
    return 0;
}
