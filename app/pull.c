/* --pull URL: download a GGUF model into the models folder (config.h).
 *
 * The file arrives as NAME.gguf.part next to its final place; an interrupted download (a
 * dropped connection, a failed run) continues from the .part's size with an HTTP Range
 * request (up to 5 attempts in one run while data keeps arriving; a server that ignores the
 * range starts over). The body must start with the GGUF magic (an HTML error page is refused
 * at its first bytes); once complete, the header (magic, version 2 or 3, tensor and metadata
 * counts) is checked before the .part is renamed to NAME.gguf. A file that is not GGUF is
 * removed. Progress on stderr when it is a terminal (not with --quiet); the final path on
 * stdout. */
#include "run.h"
#include "config.h"
#include "session.h"
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    FILE *f;
    uint64_t have;          /* bytes in the .part before this request */
    uint64_t got;           /* bytes written by this request */
    uint8_t head[4]; int nhead;
    int not_gguf, write_err;
    int tty;
    double last_draw;
    long code;
} dl;

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
    dl *d = ud;
    size_t len = sz * n;
    if (d->have == 0) {             /* the first bytes of the file: the GGUF magic */
        for (size_t i = 0; i < len && d->nhead < 4 && d->got + i < 4; i++) d->head[d->nhead++] = (uint8_t)p[i];
        if (d->nhead >= 1 && memcmp(d->head, "GGUF", (size_t)d->nhead)) { d->not_gguf = 1; return 0; }
    }
    if (fwrite(p, 1, len, d->f) != len) { d->write_err = errno ? errno : EIO; return 0; }
    d->got += len;
    return len;
}

static void human(char *b, size_t n, double v) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (v >= 1024 && i < 4) { v /= 1024; i++; }
    snprintf(b, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)ultotal; (void)ulnow;
    dl *d = ud;
    if (!d->tty) return 0;
    double t = now_sec();
    if (t - d->last_draw < 0.2 && dlnow != dltotal) return 0;
    d->last_draw = t;
    double done = (double)d->have + (double)dlnow, total = dltotal > 0 ? (double)d->have + (double)dltotal : 0;
    char a[32], b[32];
    human(a, sizeof a, done);
    if (total > 0) {
        human(b, sizeof b, total);
        int w = 30, k = (int)(w * done / total);
        if (k > w) k = w;
        char bar[40];
        for (int i = 0; i < w; i++) bar[i] = i < k ? '#' : '-';
        bar[w] = 0;
        fprintf(stderr, "\r\033[K[%s] %5.1f%% %s of %s", bar, 100.0 * done / total, a, b);
    } else {
        fprintf(stderr, "\r\033[K%s", a);
    }
    return 0;
}

/* NAME.gguf from the URL's last path component */
static int url_name(const char *url, char *out, size_t n) {
    const char *s = strstr(url, "://");
    s = s ? s + 3 : url;
    const char *e = s + strcspn(s, "?#");
    while (e > s && e[-1] == '/') e--;
    const char *b = e;
    while (b > s && b[-1] != '/') b--;
    if (b == s) return -1;                    /* only a host */
    size_t len = (size_t)(e - b);
    if (!len || len + 6 > n) return -1;
    memcpy(out, b, len); out[len] = 0;
    for (size_t i = 0; i < len; i++)
        if (out[i] == '%' || (unsigned char)out[i] < 0x20) out[i] = '_';
    if (!strcmp(out, ".") || !strcmp(out, "..")) return -1;
    if (len < 5 || strcasecmp(out + len - 5, ".gguf")) strcat(out, ".gguf");
    return 0;
}

/* GGUF header check: 0, or -1 with why */
static int check_gguf(const char *path, char *why, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(why, n, "%s", strerror(errno)); return -1; }
    uint8_t h[24];
    size_t k = fread(h, 1, sizeof h, f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fclose(f);
    if (k < 4 || memcmp(h, "GGUF", 4)) { snprintf(why, n, "not a GGUF file (bad magic)"); return -1; }
    if (k < 24) { snprintf(why, n, "truncated GGUF header"); return -1; }
    uint32_t ver = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
    uint64_t nt = 0, nkv = 0;
    for (int i = 7; i >= 0; i--) { nt = nt << 8 | h[8 + i]; nkv = nkv << 8 | h[16 + i]; }
    if (ver != 2 && ver != 3) { snprintf(why, n, "unsupported GGUF version %u", (unsigned)ver); return -1; }
    /* every tensor info and metadata pair takes at least 16 bytes */
    if (nt > (1u << 20) || nkv > (1u << 20) || (uint64_t)sz < 24 + 16 * (nt + nkv)) {
        snprintf(why, n, "implausible GGUF header (%llu tensors, %llu metadata keys in %ld bytes)",
                 (unsigned long long)nt, (unsigned long long)nkv, sz);
        return -1;
    }
    return 0;
}

static int mkdirs(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

int run_pull(const cr_opts *o) {
    const char *url = o->pull_url;
    char name[1024], dir[4096], final[5200], part[5300], why[512];
    if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) {
        fprintf(stderr, "cascade-read: %s: --pull needs an http:// or https:// URL\n", url);
        return CR_EXIT_USAGE;
    }
    if (url_name(url, name, sizeof name)) {
        fprintf(stderr, "cascade-read: %s: the URL names no file\n", url);
        return CR_EXIT_USAGE;
    }
    if (config_models_dir(dir, sizeof dir)) {
        fprintf(stderr, "cascade-read: cannot find the models folder ($XDG_DATA_HOME and $HOME are not set)\n");
        return CR_EXIT_INPUT;
    }
    if (mkdirs(dir)) { fprintf(stderr, "cascade-read: %s: %s\n", dir, strerror(errno)); return CR_EXIT_INPUT; }
    snprintf(final, sizeof final, "%s/%s", dir, name);
    snprintf(part, sizeof part, "%s.part", final);
    struct stat sb;
    if (!stat(final, &sb)) {
        if (!check_gguf(final, why, sizeof why)) {
            if (!o->quiet) fprintf(stderr, "cascade-read: %s is already there (remove it to download again)\n", final);
            printf("%s\n", final);
            return 0;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) { fprintf(stderr, "cascade-read: cannot initialize libcurl\n"); return CR_EXIT_INPUT; }
    CURL *c = curl_easy_init();
    if (!c) { curl_global_cleanup(); fprintf(stderr, "cascade-read: cannot initialize libcurl\n"); return CR_EXIT_INPUT; }
    int rc = CR_EXIT_INPUT, attempts = 0;
    dl d;
    memset(&d, 0, sizeof d);
    d.tty = !o->quiet && isatty(2);
    char cerr[CURL_ERROR_SIZE];
    for (;;) {
        attempts++;
        uint64_t have = stat(part, &sb) ? 0 : (uint64_t)sb.st_size;
        FILE *f = fopen(part, have ? "ab" : "wb");
        if (!f) { fprintf(stderr, "cascade-read: %s: %s\n", part, strerror(errno)); break; }
        memset(&d, 0, sizeof d);
        d.tty = !o->quiet && isatty(2);
        d.f = f; d.have = have;
        cerr[0] = 0;
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 120L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "cascade-read/" CR_VERSION);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
        if (have) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)have);
        CURLcode res = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        int ferr = fclose(f);
        if (d.tty) fputc('\n', stderr);
        if (d.not_gguf) {
            unlink(part);
            fprintf(stderr, "cascade-read: %s: not a GGUF file (it starts with \"%.*s\"); nothing was saved\n", url,
                    d.nhead, (const char *)d.head);
            break;
        }
        if (d.write_err || ferr) { fprintf(stderr, "cascade-read: %s: %s\n", part, strerror(d.write_err ? d.write_err : errno)); break; }
        if (res == CURLE_RANGE_ERROR || (have && code == 416)) {
            /* the server cannot continue the .part: start over once */
            unlink(part);
            if (attempts < 5) continue;
        }
        if (res == CURLE_OK && have && code == 200) {
            /* the server ignored the range and sent everything: libcurl refuses that with
             * CURLE_RANGE_ERROR, but be safe */
            unlink(part);
            if (attempts < 5) continue;
        }
        if (res != CURLE_OK) {
            if (res == CURLE_HTTP_RETURNED_ERROR) {
                fprintf(stderr, "cascade-read: %s: HTTP %ld\n", url, code);
                if (!have && !stat(part, &sb) && sb.st_size == 0) unlink(part);
                break;
            }
            if (d.got > 0 && attempts < 5) {
                if (!o->quiet) fprintf(stderr, "cascade-read: %s: %s; continuing at byte %llu\n", url, cerr[0] ? cerr : curl_easy_strerror(res),
                                       (unsigned long long)(have + d.got));
                continue;
            }
            fprintf(stderr, "cascade-read: %s: %s (the partial download %s is continued next time)\n", url,
                    cerr[0] ? cerr : curl_easy_strerror(res), part);
            break;
        }
        if (check_gguf(part, why, sizeof why)) {
            unlink(part);
            fprintf(stderr, "cascade-read: %s: %s; nothing was saved\n", url, why);
            break;
        }
        if (rename(part, final)) { fprintf(stderr, "cascade-read: %s: %s\n", final, strerror(errno)); break; }
        printf("%s\n", final);
        rc = 0;
        break;
    }
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return rc;
}
