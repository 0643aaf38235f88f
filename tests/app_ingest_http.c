/* http(s) sources through libcurl, against a real HTTP server on 127.0.0.1 started here
 * (a python3 http.server script written by the test; it binds port 0 and prints the port,
 * so the test waits for that line instead of sleeping): success (text, .gz log, EPUB
 * spooled), redirect, 404, redirect loop, slow server (idle timeout), oversized bodies
 * (Content-Length and chunked), connection refused, progress callback. */
#define APP_INGEST_UTIL_NO_MAIN
#include "app_ingest_util.c"
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <zlib.h>

static const char SERVER[] =
    "import sys, os, time, threading, http.server, socketserver\n"
    "# exit when the test goes away (stdin closes) or after 5 minutes at most\n"
    "threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n"
    "threading.Timer(300, lambda: os._exit(0)).start()\n"
    "roots = {'/shared/': sys.argv[1], '/tmp/': sys.argv[2]}\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def head(self, code, hdrs):\n"
    "        self.send_response(code)\n"
    "        for k, v in hdrs: self.send_header(k, v)\n"
    "        self.end_headers()\n"
    "    def do_GET(self):\n"
    "        p = self.path\n"
    "        try:\n"
    "            if p == '/loop': return self.head(302, [('Location', '/loop'), ('Content-Length', '0')])\n"
    "            if p == '/redir': return self.head(301, [('Location', '/shared/books/txt/2701-0.txt'), ('Content-Length', '0')])\n"
    "            if p == '/slow':\n"
    "                self.head(200, [('Content-Length', '100000')])\n"
    "                self.wfile.write(b'first line\\n'); self.wfile.flush()\n"
    "                time.sleep(20); return\n"
    "            if p == '/huge':\n"
    "                self.head(200, [('Content-Length', str(100 << 20))])\n"
    "                for i in range(100): self.wfile.write(b'x' * (1 << 20))\n"
    "                return\n"
    "            if p == '/huge-chunked':\n"
    "                self.head(200, [('Transfer-Encoding', 'chunked')])\n"
    "                line = b'y' * 1000 + b'\\n'\n"
    "                for i in range(100000):\n"
    "                    self.wfile.write(b'%x\\r\\n%s\\r\\n' % (len(line), line))\n"
    "                self.wfile.write(b'0\\r\\n\\r\\n'); return\n"
    "            for pre, root in roots.items():\n"
    "                if p.startswith(pre):\n"
    "                    f = os.path.join(root, p[len(pre):])\n"
    "                    if '..' not in p and os.path.isfile(f):\n"
    "                        d = open(f, 'rb').read()\n"
    "                        self.head(200, [('Content-Length', str(len(d)))])\n"
    "                        self.wfile.write(d); return\n"
    "            self.head(404, [('Content-Length', '9')]); self.wfile.write(b'not found')\n"
    "        except (BrokenPipeError, ConnectionResetError):\n"
    "            pass\n"
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
    "    daemon_threads = True\n"
    "    def handle_error(self, request, client_address): pass\n"
    "s = S(('127.0.0.1', 0), H)\n"
    "if len(sys.argv) > 4:\n"
    "    import ssl\n"
    "    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "    ctx.load_cert_chain(sys.argv[3], sys.argv[4])\n"
    "    s.socket = ctx.wrap_socket(s.socket, server_side=True, do_handshake_on_connect=False)\n"
    "print(s.server_address[1], flush=True)\n"
    "s.serve_forever()\n";

typedef struct { pid_t pid; int port; int life; } server;
static server srv = {-1, 0, -1}, tls = {-1, 0, -1};
static char base[64];

/* Starts the script (TLS when cert/key are given); 0 ok. */
static int start_server(server *sv, const char *cert, const char *key, char *msg, size_t mn) {
    const char *script = u_path("server.py");
    if (u_write(script, SERVER, sizeof SERVER - 1)) { snprintf(msg, mn, "cannot write the script"); return -1; }
    char shared[1024];
    snprintf(shared, sizeof shared, "%s/data", t_shared());
    int pfd[2], life[2];
    if (pipe(pfd) || pipe(life)) return -1;
    sv->pid = fork();
    if (sv->pid < 0) return -1;
    if (sv->pid == 0) {
        dup2(pfd[1], 1);
        dup2(life[0], 0);                      /* EOF when the test process ends */
        close(pfd[0]); close(pfd[1]); close(life[0]); close(life[1]);
        const char *py = access("/usr/bin/python3", X_OK) ? "python3" : "/usr/bin/python3";
        if (cert) execlp(py, py, script, shared, u_tmpdir(), cert, key, (char *)NULL);
        else execlp(py, py, script, shared, u_tmpdir(), (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    close(life[0]);
    sv->life = life[1];
    fcntl(life[1], F_SETFD, FD_CLOEXEC);       /* held open until we exit */
    /* the server prints its port once it listens: wait for that line (bounded) */
    char line[32];
    size_t k = 0;
    struct pollfd pf = {pfd[0], POLLIN, 0};
    while (k < sizeof line - 1) {
        if (poll(&pf, 1, 15000) <= 0) break;
        ssize_t r = read(pfd[0], line + k, 1);
        if (r <= 0 || line[k] == '\n') break;
        k++;
    }
    close(pfd[0]);
    line[k] = 0;
    sv->port = atoi(line);
    if (sv->port <= 0) { snprintf(msg, mn, "server did not start (python3 missing?)"); return -1; }
    return 0;
}
static void stop_server(server *sv) {
    if (sv->pid > 0) { kill(sv->pid, SIGTERM); waitpid(sv->pid, NULL, 0); sv->pid = -1; }
    if (sv->life >= 0) { close(sv->life); sv->life = -1; }
}
static const char *url(const char *path) {
    static char b[4][256];
    static int i;
    char *p = b[i++ & 3];
    snprintf(p, 256, "%s%s", base, path);
    return p;
}

static int started;
#define NEED_SERVER() do { if (!started) T_SKIP("no test server"); } while (0)

/* The body of a URL reads exactly as the local file. */
static void same_as_local(const char *u, const char *local, const cr_ingest_opts *o) {
    u_stream a, b;
    u_collect1(&a, u, o, 0);
    T_CHECKF(a.rc == 0 && !a.bad[0], "%s: %s %s", u, a.err, a.bad);
    u_collect1(&b, local, o, 0);
    T_CHECKF(b.rc == 0, "%s", b.err);
    const char *ta = strstr(a.all, "\n\n"), *tb = strstr(b.all, "\n\n");  /* headers name the source */
    T_CHECKF(ta && tb && a.all_len - (size_t)(ta - a.all) == b.all_len - (size_t)(tb - b.all) && !strcmp(ta, tb),
             "%s: text differs from %s", u, local);
    T_CHECK(cr_ingest_doc(a.in, 0)->kind == cr_ingest_doc(b.in, 0)->kind);
    u_stream_free(&a); u_stream_free(&b);
}

static int progress_calls;
static uint64_t progress_done;
static void on_progress(void *ud, int doc, uint64_t done, uint64_t total) {
    (void)ud; (void)doc; (void)total;
    progress_calls++;
    progress_done = done;
}

static void t_http_text(void) {
    NEED_SERVER();
    T_NEED_SHARED("data/books/txt/2600-0.txt");
    T_NEED_SHARED("data/logs/full/Linux.log");
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.progress = on_progress;
    progress_calls = 0;
    same_as_local(url("/shared/books/txt/2600-0.txt"), u_shared("data/books/txt/2600-0.txt"), &o);
    T_CHECKF(progress_calls > 0 && progress_done > 3000000, "progress %d %llu", progress_calls, (unsigned long long)progress_done);
    same_as_local(url("/shared/logs/full/Linux.log"), u_shared("data/logs/full/Linux.log"), NULL);
}

static void t_http_gz_and_epub(void) {
    NEED_SERVER();
    T_NEED_SHARED("data/logs/full/apache_access.log");
    T_NEED_SHARED("data/books/epub/pg11_alice.epub");
    size_t n;
    char *d = u_read(u_shared("data/logs/full/apache_access.log"), &n);
    T_CHECK(d);
    const char *gz = u_path("access.log.gz");
    gzFile g = gzopen(gz, "wb");
    T_CHECK(g && gzwrite(g, d, (unsigned)n) == (int)n);
    gzclose(g);
    free(d);
    same_as_local(url("/tmp/access.log.gz"), gz, NULL);
    same_as_local(url("/shared/books/epub/pg11_alice.epub"), u_shared("data/books/epub/pg11_alice.epub"), NULL);
}

static void t_http_redirect(void) {
    NEED_SERVER();
    T_NEED_SHARED("data/books/txt/2701-0.txt");
    same_as_local(url("/redir"), u_shared("data/books/txt/2701-0.txt"), NULL);
}

static int fails_with(const char *u, const cr_ingest_opts *o, const char *needle, char *got, size_t gn, double *secs) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    u_stream s;
    u_collect1(&s, u, o, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (secs) *secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int ok = s.rc < 0 && strstr(s.err, needle) && !strncmp(s.err, u, strlen(u)) && !strchr(s.err, '\n');
    snprintf(got, gn, "rc %d: %s", s.rc, s.err);
    u_stream_free(&s);
    return ok;
}

static void t_http_errors(void) {
    NEED_SERVER();
    char got[600];
    double secs;
    T_CHECKF(fails_with(url("/no/such/file"), NULL, ": HTTP 404", got, sizeof got, NULL), "%s", got);
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.max_redirects = 5;
    T_CHECKF(fails_with(url("/loop"), &o, "too many redirects (more than 5)", got, sizeof got, NULL), "%s", got);
    cr_ingest_opts_default(&o);
    o.idle_timeout_ms = 700;
    T_CHECKF(fails_with(url("/slow"), &o, "timed out", got, sizeof got, &secs), "%s", got);
    T_CHECKF(secs < 10, "slow server took %.1f s", secs);
    cr_ingest_opts_default(&o);
    o.total_timeout_ms = 600;
    T_CHECKF(fails_with(url("/slow"), &o, "timed out", got, sizeof got, &secs), "%s", got);
    T_CHECKF(secs < 10, "slow server took %.1f s", secs);
    cr_ingest_opts_default(&o);
    o.max_url_bytes = 1u << 20;
    T_CHECKF(fails_with(url("/huge"), &o, "larger than 1048576 bytes", got, sizeof got, &secs), "%s", got);
    T_CHECKF(fails_with(url("/huge-chunked"), &o, "larger than 1048576 bytes", got, sizeof got, &secs), "%s", got);
    /* nothing listens there */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    T_CHECK(s >= 0 && !bind(s, (struct sockaddr *)&a, sizeof a) && !getsockname(s, (struct sockaddr *)&a, &al));
    close(s);
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/x.txt", ntohs(a.sin_port));
    cr_ingest_opts_default(&o);
    o.connect_timeout_ms = 3000;
    T_CHECKF(fails_with(u, &o, "onnect", got, sizeof got, &secs), "%s", got);
    /* scheme not allowed (not a URL for us: a missing local file) */
    T_CHECKF(fails_with("ftp://127.0.0.1/x", NULL, "No such file", got, sizeof got, NULL), "%s", got);
}

/* A large body streams through a bounded buffer: the consumer may be slow, memory stays flat. */
static void t_http_streams(void) {
    NEED_SERVER();
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    const char *paths[1] = {url("/huge-chunked")};
    char err[512];
    cr_ingest *in = cr_ingest_open(paths, 1, &o, err, sizeof err);
    T_CHECKF(in, "%s", err);
    cr_chunk c;
    int r;
    uint64_t lines = 0, want = t_asan() ? 20000 : 100000;
    while ((r = cr_ingest_next(in, &c, err, sizeof err)) > 0) {
        if (c.flags & CR_CHUNK_HEADER) continue;
        if (c.len != 1001 || c.line != lines + 1) break;
        if (++lines == want) break;
    }
    T_CHECKF(lines == want, "stopped at line %llu: %s", (unsigned long long)lines, r < 0 ? err : "");
    T_CHECK(cr_ingest_doc(in, 0)->kind == CR_DOC_LOG);     /* no blank lines: read as a log */
    cr_ingest_close(in);
}

/* TLS: a self-signed certificate is refused by default and accepted with ca_file. */
static void t_https_verification(void) {
    NEED_SERVER();
    if (access("/usr/bin/openssl", X_OK)) T_SKIP("no openssl to make a certificate");
    const char *cert = u_path("cert.pem"), *key = u_path("key.pem");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 1 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", key, cert);
    if (system(cmd) != 0) T_SKIP("openssl could not make a certificate");
    char msg[256];
    if (start_server(&tls, cert, key, msg, sizeof msg)) T_SKIP("TLS server: %s", msg);
    char u[128];
    snprintf(u, sizeof u, "https://127.0.0.1:%d/shared/books/txt/2701-0.txt", tls.port);
    char got[600];
    T_CHECKF(fails_with(u, NULL, "certificate", got, sizeof got, NULL), "%s", got);
    T_NEED_SHARED("data/books/txt/2701-0.txt");
    cr_ingest_opts o; cr_ingest_opts_default(&o);
    o.ca_file = cert;
    same_as_local(u, u_shared("data/books/txt/2701-0.txt"), &o);
}

int main(void) {
    char msg[256];
    signal(SIGPIPE, SIG_IGN);
    started = start_server(&srv, NULL, NULL, msg, sizeof msg) == 0;
    if (started) snprintf(base, sizeof base, "http://127.0.0.1:%d", srv.port);
    else printf("     (http tests skipped: %s)\n", msg);
    T_RUN(t_http_text);
    T_RUN(t_http_gz_and_epub);
    T_RUN(t_http_redirect);
    T_RUN(t_http_errors);
    T_RUN(t_http_streams);
    T_RUN(t_https_verification);
    stop_server(&srv);
    stop_server(&tls);
    u_cleanup();
    return t_summary();
}
