/* http(s) bodies as pull streams, through libcurl's multi interface driven from the reading
 * thread (no worker thread): ing_http_read runs the transfer until some body bytes are in
 * a bounded buffer (HTTP_BUF); when the buffer is full the transfer is paused
 * (CURL_WRITEFUNC_PAUSE) and resumed when the reader has drained it. So a 2 GB log streams
 * through ~1 MiB at the pace of the consumer.
 *
 * Policy: http and https only (also for redirects), at most max_redirects redirects, TLS
 * peer and host verification on, connect timeout by curl; the "total" and "idle" timeouts
 * are measured here on the time the reader spends waiting for the network (a paused
 * transfer waiting for a slow consumer does not time out). HTTP status >= 400 is an error
 * "URL: HTTP 404". Bodies over max_url_bytes are an error (Content-Length checked up front
 * through CURLOPT_MAXFILESIZE_LARGE, and the running count). Progress is reported by the
 * source layer (bytes consumed so far / Content-Length). */
#include "ingest_int.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HTTP_BUF (1u << 20)
#ifndef CR_VERSION
#define CR_VERSION "dev"
#endif

struct ing_http {
    CURL    *e;
    CURLM   *m;
    char    *url;
    const cr_ingest_opts *o;
    int      doc;
    uint8_t *buf; size_t cap, pos, len;
    int      paused, done, added, too_big;
    CURLcode result;
    uint64_t received;
    double   waited_ms;
    char     cerr[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;
static void curl_init_once(void) { curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud) {
    ing_http *h = ud;
    size_t n = size * nmemb;
    if (h->received + n > h->o->max_url_bytes) { h->too_big = 1; return 0; }
    if (h->pos && h->cap - h->len < n) {          /* compact */
        memmove(h->buf, h->buf + h->pos, h->len - h->pos);
        h->len -= h->pos; h->pos = 0;
    }
    if (h->cap - h->len < n) {
        if (h->len > h->pos) { h->paused = 1; return CURL_WRITEFUNC_PAUSE; }
        /* empty buffer and still too small (curl handed over a large paused block) */
        if (n > 64u * HTTP_BUF) { h->too_big = 1; return 0; }
        uint8_t *nb = realloc(h->buf, n);
        if (!nb) return 0;
        h->buf = nb; h->cap = n;
    }
    memcpy(h->buf + h->len, p, n);
    h->len += n;
    h->received += n;
    return n;
}

static int http_error(ing_http *h, char *err, size_t errlen) {
    long code = 0;
    curl_easy_getinfo(h->e, CURLINFO_RESPONSE_CODE, &code);
    switch (h->result) {
    case CURLE_HTTP_RETURNED_ERROR:
        return ing_err(err, errlen, h->url, "HTTP %ld", code);
    case CURLE_TOO_MANY_REDIRECTS:
        return ing_err(err, errlen, h->url, "too many redirects (more than %d)", h->o->max_redirects);
    case CURLE_OPERATION_TIMEDOUT:
        return ing_err(err, errlen, h->url, "timed out (%s)", h->cerr[0] ? h->cerr : "connect");
    case CURLE_FILESIZE_EXCEEDED:
        return ing_err(err, errlen, h->url, "larger than %llu bytes (max_url_bytes)",
                       (unsigned long long)h->o->max_url_bytes);
    case CURLE_WRITE_ERROR:
        if (h->too_big)
            return ing_err(err, errlen, h->url, "larger than %llu bytes (max_url_bytes)",
                           (unsigned long long)h->o->max_url_bytes);
        /* fallthrough */
    default:
        return ing_err(err, errlen, h->url, "%s%s%s", curl_easy_strerror(h->result),
                       h->cerr[0] ? ": " : "", h->cerr);
    }
}

ing_http *ing_http_open(const char *url, const cr_ingest_opts *o, int doc, char *err,
                        size_t errlen) {
    pthread_once(&curl_once, curl_init_once);
    if (!curl_ok) { ing_err(err, errlen, url, "libcurl initialization failed"); return NULL; }
    ing_http *h = calloc(1, sizeof *h);
    if (!h) { ing_err(err, errlen, url, "out of memory"); return NULL; }
    h->o = o; h->doc = doc;
    h->url = strdup(url);
    h->cap = HTTP_BUF;
    h->buf = malloc(h->cap);
    h->e = curl_easy_init();
    h->m = curl_multi_init();
    if (!h->url || !h->buf || !h->e || !h->m) { ing_err(err, errlen, url, "out of memory"); goto fail; }
    CURL *e = h->e;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)o->max_redirects) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    if (o->ca_file) bad |= curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_url_bytes) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, h) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->cerr) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "cascade-read/" CR_VERSION) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK;
    if (bad) { ing_err(err, errlen, url, "libcurl does not support a required option"); goto fail; }
    if (curl_multi_add_handle(h->m, e) != CURLM_OK) { ing_err(err, errlen, url, "libcurl multi failed"); goto fail; }
    h->added = 1;
    return h;
fail:
    ing_http_close(h);
    return NULL;
}

ssize_t ing_http_read(ing_http *h, void *out, size_t n, char *err, size_t errlen) {
    double idle_start = now_ms();
    while (h->pos == h->len) {
        if (h->done) {
            if (h->result != CURLE_OK) return http_error(h, err, errlen);
            return 0;
        }
        if (h->paused) {                    /* the reader drained the buffer: resume */
            h->paused = 0;
            curl_easy_pause(h->e, CURLPAUSE_CONT);
            if (h->pos < h->len) break;
        }
        int running = 0;
        if (curl_multi_perform(h->m, &running) != CURLM_OK)
            return ing_err(err, errlen, h->url, "libcurl multi error");
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(h->m, &left)))
            if (msg->msg == CURLMSG_DONE) { h->done = 1; h->result = msg->data.result; }
        if (h->pos < h->len || h->done) continue;
        double t0 = now_ms();
        curl_multi_poll(h->m, NULL, 0, 50, NULL);
        double t1 = now_ms();
        h->waited_ms += t1 - t0;
        if (h->o->total_timeout_ms > 0 && h->waited_ms > (double)h->o->total_timeout_ms)
            return ing_err(err, errlen, h->url, "timed out (waited %ld ms in total)", h->o->total_timeout_ms);
        if (h->o->idle_timeout_ms > 0 && t1 - idle_start > (double)h->o->idle_timeout_ms)
            return ing_err(err, errlen, h->url, "timed out (no data for %ld ms)", h->o->idle_timeout_ms);
    }
    size_t k = h->len - h->pos < n ? h->len - h->pos : n;
    memcpy(out, h->buf + h->pos, k);
    h->pos += k;
    if (h->pos == h->len) h->pos = h->len = 0;
    return (ssize_t)k;
}

uint64_t ing_http_size(const ing_http *h) {
    curl_off_t cl = -1;
    if (h->e && curl_easy_getinfo(h->e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl > 0)
        return (uint64_t)cl;
    return 0;
}

void ing_http_close(ing_http *h) {
    if (!h) return;
    if (h->added) curl_multi_remove_handle(h->m, h->e);
    if (h->e) curl_easy_cleanup(h->e);
    if (h->m) curl_multi_cleanup(h->m);
    free(h->url); free(h->buf);
    free(h);
}
