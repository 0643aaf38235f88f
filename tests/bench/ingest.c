/* Ingestion throughput: EPUB, TXT, logs, .gz, a pipe. Prints a table.
 * Run from the project root (reads ../shared/data, or $CR_SHARED/data).
 * MB/s counts the document text produced (for .gz: decompressed bytes). Target: >= 200 MB/s
 * for text and logs. Usage: ingest [repeat-factor] */
#include "ingest.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *shared(void) {
    const char *s = getenv("CR_SHARED");
    return s ? s : "../shared";
}

/* Ingests paths (the same file n times), returns seconds; *bytes = document text. */
static double run(const char *path, int n, const cr_ingest_opts *o, uint64_t *bytes, uint64_t *chunks) {
    const char **paths = malloc((size_t)n * sizeof *paths);
    for (int i = 0; i < n; i++) paths[i] = path;
    char err[512];
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        cr_ingest *in = cr_ingest_open(paths, n, o, err, sizeof err);
        if (!in) { fprintf(stderr, "%s\n", err); exit(1); }
        cr_chunk c;
        int r;
        uint64_t b = 0, k = 0;
        while ((r = cr_ingest_next(in, &c, err, sizeof err)) > 0) {
            if (c.flags & CR_CHUNK_HEADER) continue;
            b += c.len; k++;
        }
        if (r < 0) { fprintf(stderr, "%s\n", err); exit(1); }
        cr_ingest_close(in);
        double t = now() - t0;
        if (t < best) best = t;
        *bytes = b; *chunks = k;
    }
    free(paths);
    return best;
}

static long fsize(const char *p) {
    FILE *f = fopen(p, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void row(const char *name, const char *file, int n, const cr_ingest_opts *o) {
    long in = fsize(file);
    if (in < 0) { printf("| %-28s | (missing %s) |\n", name, file); return; }
    uint64_t bytes, chunks;
    double t = run(file, n, o, &bytes, &chunks);
    printf("| %-28s | %6.1f | %7.1f | %9llu | %6.3f | %8.0f |\n", name, (double)in * n / 1e6, bytes / 1e6,
           (unsigned long long)chunks, t, bytes / 1e6 / t);
}

int main(int argc, char **argv) {
    int f = argc > 1 ? atoi(argv[1]) : 1;
    if (f < 1) f = 1;
    char txt[1024], log[1024], epub[1024], gz[1024];
    snprintf(txt, sizeof txt, "%s/data/books/txt/2600-0.txt", shared());
    snprintf(log, sizeof log, "%s/data/logs/full/Linux.log", shared());
    snprintf(epub, sizeof epub, "%s/data/books/epub/pg2600_war_and_peace.epub", shared());
    /* a .gz of 40 copies of the log, made here */
    const char *tmp = getenv("TMPDIR");
    snprintf(gz, sizeof gz, "%s/cr-bench-ingest-%d.log.gz", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    FILE *src = fopen(log, "rb");
    gzFile g = gzopen(gz, "wb6");
    if (src && g) {
        static char buf[1 << 16];
        size_t k;
        char *all = NULL;
        size_t n = 0;
        while ((k = fread(buf, 1, sizeof buf, src)) > 0) { all = realloc(all, n + k); memcpy(all + n, buf, k); n += k; }
        for (int i = 0; i < 40; i++) gzwrite(g, all, (unsigned)n);
        free(all);
    }
    if (src) fclose(src);
    if (g) gzclose(g);

    cr_ingest_opts o, strip, lg;
    cr_ingest_opts_default(&o);
    strip = o; strip.strip_gutenberg = 1;
    lg = o; lg.mode = CR_INGEST_LOG;
    printf("ingest throughput (best of 3; MB = 1e6 bytes; MB/s of document text produced)\n\n");
    printf("| %-28s | %6s | %7s | %9s | %6s | %8s |\n", "input", "in MB", "text MB", "chunks", "s", "MB/s");
    printf("|------------------------------|--------|---------|-----------|--------|----------|\n");
    row("TXT War and Peace x30", txt, 30 * f, &o);
    row("TXT x30, strip Gutenberg", txt, 30 * f, &strip);
    row("log Linux.log x40", log, 40 * f, &lg);
    row("log.gz (40 copies, 1 file)", gz, f, &lg);
    row("EPUB War and Peace x10", epub, 10 * f, &o);
    /* a pipe: the log x40 through /dev/fd */
    int pfd[2];
    if (pipe(pfd) == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            FILE *s = fopen(log, "rb");
            static char buf[1 << 16];
            char *all = NULL;
            size_t n = 0, k;
            while (s && (k = fread(buf, 1, sizeof buf, s)) > 0) { all = realloc(all, n + k); memcpy(all + n, buf, k); n += k; }
            for (int i = 0; i < 40 * f; i++)
                for (size_t off = 0; off < n;) { ssize_t w = write(pfd[1], all + off, n - off); if (w <= 0) _exit(1); off += (size_t)w; }
            _exit(0);
        }
        close(pfd[1]);
        char p[64];
        snprintf(p, sizeof p, "/dev/fd/%d", pfd[0]);
        const char *paths[1] = {p};
        char err[512];
        double t0 = now();
        cr_ingest *in = cr_ingest_open(paths, 1, &lg, err, sizeof err);
        uint64_t b = 0, k = 0;
        cr_chunk c;
        while (in && cr_ingest_next(in, &c, err, sizeof err) > 0) if (!(c.flags & CR_CHUNK_HEADER)) { b += c.len; k++; }
        double t = now() - t0;
        if (in) cr_ingest_close(in);
        close(pfd[0]);
        waitpid(pid, NULL, 0);
        printf("| %-28s | %6.1f | %7.1f | %9llu | %6.3f | %8.0f |\n", "log x40 through a pipe", b / 1e6, b / 1e6,
               (unsigned long long)k, t, b / 1e6 / t);
    }
    unlink(gz);
    return 0;
}
