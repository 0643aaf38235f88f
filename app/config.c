/* Configuration file and model lookup (see config.h). */
#include "config.h"
#include "cascade.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *model_source;
const char *config_model_source(void) { return model_source; }

static int xdg_path(const char *var, const char *fallback, const char *tail, char *buf, size_t n) {
    const char *x = getenv(var);
    int k;
    if (x && x[0] == '/') k = snprintf(buf, n, "%s/cascade-read%s", x, tail);
    else {
        const char *h = getenv("HOME");
        if (!h || !*h) return -1;
        k = snprintf(buf, n, "%s/%s/cascade-read%s", h, fallback, tail);
    }
    return k < 0 || (size_t)k >= n ? -1 : 0;
}
int config_file_path(char *buf, size_t n) { return xdg_path("XDG_CONFIG_HOME", ".config", "/config", buf, n); }
int config_models_dir(char *buf, size_t n) { return xdg_path("XDG_DATA_HOME", ".local/share", "/models", buf, n); }

/* strings handed to cr_opts live as long as the process: kept in one list, reachable */
static char **kept; static size_t nkept;
static const char *keep(const char *s) {
    char *d = strdup(s);
    char **k = d ? realloc(kept, (nkept + 1) * sizeof *kept) : NULL;
    if (!k) { free(d); return NULL; }
    kept = k; kept[nkept++] = d;
    return d;
}

static int cfail(char *err, size_t errlen, const char *path, int line, const char *fmt, ...) {
    int k = snprintf(err, errlen, "%s:%d: ", path, line);
    if (k >= 0 && (size_t)k < errlen) { va_list ap; va_start(ap, fmt); vsnprintf(err + k, errlen - (size_t)k, fmt, ap); va_end(ap); }
    return -1;
}

static int to_int(const char *s, long lo, long hi, int *out) {
    char *e; errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi) return -1;
    *out = (int)v; return 0;
}

static int is_file(const char *p) { struct stat sb; return !stat(p, &sb) && S_ISREG(sb.st_mode); }

/* a configured model: "~/" expanded; a bare name found in the models folder */
static const char *model_path(const char *v) {
    char buf[4096];
    if (!strncmp(v, "~/", 2) && getenv("HOME")) { snprintf(buf, sizeof buf, "%s/%s", getenv("HOME"), v + 2); return keep(buf); }
    if (!strchr(v, '/')) {
        char dir[4000];
        if (!config_models_dir(dir, sizeof dir)) {
            snprintf(buf, sizeof buf, "%s/%s", dir, v);
            if (is_file(buf)) return keep(buf);
        }
    }
    return keep(v);
}

int config_load(const char *path, cr_opts *o, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int ln = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) { rc = cfail(err, errlen, path, ln, "line too long"); break; }
        /* comments: '#' at the start or after a blank, outside quotes */
        int q = 0;
        for (char *p = line; *p; p++) {
            if (*p == '"') q = !q;
            else if (*p == '#' && !q && (p == line || isspace((unsigned char)p[-1]))) { *p = 0; break; }
        }
        char *s = line;
        while (isspace((unsigned char)*s)) s++;
        char *e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) { rc = cfail(err, errlen, path, ln, "expected key = value, got '%s'", s); break; }
        char *k = s, *ke = eq;
        while (ke > k && isspace((unsigned char)ke[-1])) ke--;
        *ke = 0;
        char *v = eq + 1;
        while (isspace((unsigned char)*v)) v++;
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') { v[vl - 1] = 0; v++; }
        else if (memchr(v, '"', vl)) { rc = cfail(err, errlen, path, ln, "unbalanced quote in the value of '%s'", k); break; }
        if (!*k) { rc = cfail(err, errlen, path, ln, "missing key before '='"); break; }
        int iv; char *dend; double dv;
#define BADV(what) do { rc = cfail(err, errlen, path, ln, "invalid %s '%s' (" what ")", k, v); goto out; } while (0)
        if (!strcmp(k, "model")) {
            if (!*v) BADV("a GGUF file");
            if (!o->model) { o->model = model_path(v); if (!model_source) model_source = "config"; }
        } else if (!strcmp(k, "device")) {
            if (strcmp(v, "cpu") && strcmp(v, "cuda") && strcmp(v, "auto")) BADV("cpu, cuda or auto");
            if (!o->device) o->device = keep(v);
        } else if (!strcmp(k, "threads")) {
            if (to_int(v, 1, 1024, &iv)) BADV("1 to 1024");
            if (!o->threads) o->threads = iv;
        } else if (!strcmp(k, "policy")) {
            iv = cascade_policy_parse(v);
            if (iv < 0) BADV("cascade, sink or full");
            if (o->policy < 0) o->policy = iv;
        } else if (!strcmp(k, "cache")) {
            if (to_int(v, 1, 1 << 28, &iv)) BADV("a number of slots");
            if (o->cache_n < 0) o->cache_n = iv;
        } else if (!strcmp(k, "cascades")) {
            if (to_int(v, 1, CR_MAX_CASCADES, &iv)) BADV("1 to the maximum number of cascades");
            if (o->cascades < 0) o->cascades = iv;
        } else if (!strcmp(k, "sinks")) {
            if (to_int(v, 0, 1 << 20, &iv)) BADV("a number of tokens");
            if (o->sinks < 0) o->sinks = iv;
        } else if (!strcmp(k, "stride")) {
            if (to_int(v, 1, 1 << 20, &iv)) BADV("a number of tokens");
            if (o->stride < 0) o->stride = iv;
        } else if (!strcmp(k, "beta")) {
            errno = 0; dv = strtod(v, &dend);
            if (errno || dend == v || *dend || !(dv >= 1e-9 && dv <= 1)) BADV("0 < beta <= 1");
            if (o->beta < 0) o->beta = dv;
        } else if (!strcmp(k, "colors")) {
            if (!*v) BADV("a theme name");
            if (!o->colors) o->colors = keep(v);
        } else if (!strcmp(k, "color")) {
            iv = !strcmp(v, "never") ? 0 : !strcmp(v, "always") ? 1 : !strcmp(v, "auto") ? -1 : -2;
            if (iv == -2) BADV("auto, always or never");
            if (o->color < 0) o->color = iv;
        } else {
            rc = cfail(err, errlen, path, ln, "unknown key '%s' (model, device, threads, policy, cache, cascades, sinks, stride, beta, colors, color)", k);
            break;
        }
#undef BADV
    }
out:
    if (!rc && ferror(f)) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); rc = -1; }
    fclose(f);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the first *.gguf by name in dir, or NULL */
static const char *first_gguf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL; size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".gguf")) {
            char **nn = realloc(names, (n + 1) * sizeof *names);
            if (!nn) break;
            names = nn;
            if (!(names[n] = strdup(e->d_name))) break;
            n++;
        }
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    const char *found = NULL;
    for (size_t i = 0; i < n && !found; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (is_file(p)) found = keep(p);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return found;
}

int config_apply(cr_opts *o) {
    char path[4096], err[4600];
    model_source = o->model ? "--model" : NULL;
    if (!o->model && getenv("CASCADE_MODEL") && *getenv("CASCADE_MODEL")) { o->model = getenv("CASCADE_MODEL"); model_source = "$CASCADE_MODEL"; }
    int have_cfg = !config_file_path(path, sizeof path);
    if (have_cfg && config_load(path, o, err, sizeof err)) {
        fprintf(stderr, "cascade-read: %s\n", err);
        return CR_EXIT_USAGE;
    }
    const char *nc = getenv("NO_COLOR");
    if (nc && *nc && o->color < 0) o->color = 0;
    if (!o->device) o->device = "auto";
    int needs = o->mode != MODE_EXTRACT && o->mode != MODE_PULL && o->mode != MODE_SNAPINFO;
    if (o->model || !needs) return 0;
    char dir[4096];
    int have_dir = !config_models_dir(dir, sizeof dir);
    if (have_dir && (o->model = first_gguf(dir))) { model_source = "models folder"; return 0; }
    fprintf(stderr, "cascade-read: no model: none given with --model, $CASCADE_MODEL is not set, %s%s%s, no *.gguf in %s; "
            "download one with --pull URL (e.g. a GGUF file on huggingface.co) or pass --model FILE.gguf\n",
            have_cfg ? "no 'model = FILE' in " : "no configuration file", have_cfg ? path : "",
            "", have_dir ? dir : "the models folder ($HOME is not set)");
    return CR_EXIT_MODEL;
}
