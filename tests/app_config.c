/* Configuration file and model lookup (app/config.c): parsing (comments, quotes, every key),
 * the command line winning over the file, one-line FILE:LINE errors, NO_COLOR, and the lookup
 * order --model > $CASCADE_MODEL > config `model` > first *.gguf of the models folder, with a
 * clear message and exit 3 when none is found. */
#include "t.h"
#include "cli.h"
#include "config.h"
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256], cfgdir[300], cfg[320], models[320], bin[256];
static char m1[512], m2[512];

static int write_file(const char *p, const char *text) {
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int parse(cr_opts *o, const char *a1, const char *a2, const char *a3, const char *a4) {
    char *argv[8] = {"cascade-read"};
    int n = 1;
    const char *a[4] = {a1, a2, a3, a4};
    for (int i = 0; i < 4; i++) if (a[i]) argv[n++] = (char *)a[i];
    int r = cli_parse(o, n, argv);
    return r;
}

static void t_parse_all_keys(void) {
    char text[2048];
    snprintf(text, sizeof text,
             "# cascade-read configuration\n"
             "\n"
             "model = \"%s\"   # a comment after a value\n"
             "device=cpu\n"
             "  threads = 3\n"
             "policy = sink\n"
             "cache = 512\n"
             "cascades = 2\n"
             "sinks = 8\n"
             "stride = 32\n"
             "beta = 0.999\n"
             "colors = solarized#dark\n"
             "color = never\n", m1);
    T_CHECK(!write_file(cfg, text));
    cr_opts o;
    T_CHECK(parse(&o, "--info", NULL, NULL, NULL) == 0);
    T_CHECKF(o.model && !strcmp(o.model, m1) && !strcmp(config_model_source(), "config"), "%s", o.model);
    T_CHECK(!strcmp(o.device, "cpu") && o.threads == 3 && o.policy == CR_POLICY_SINK && o.cache_n == 512 &&
            o.cascades == 2 && o.sinks == 8 && o.stride == 32 && fabs(o.beta - 0.999) < 1e-12 && o.color == 0);
    T_CHECKF(o.colors && !strcmp(o.colors, "solarized#dark"), "%s", o.colors);
    free(o.inputs);
    /* the command line wins */
    char *argv[] = {"cascade-read", "--info", "--stride", "16", "--policy", "cascade", "--model", m2, "--device", "auto", "-t", "1"};
    T_CHECK(cli_parse(&o, 12, argv) == 0);
    T_CHECK(o.stride == 16 && o.policy == CR_POLICY_CASCADE && !strcmp(o.model, m2) && !strcmp(o.device, "auto") &&
            o.threads == 1 && o.cache_n == 512 && !strcmp(config_model_source(), "--model"));
    free(o.inputs);
}

static void t_bad_lines(void) {
    static const char *bad[][2] = {
        {"threads = 4\nstride = many\n", ":2: invalid stride 'many'"},
        {"# ok\n\nfrobnicate = 1\n", ":3: unknown key 'frobnicate'"},
        {"policy cascade\n", ":1: expected key = value"},
        {"color = sometimes\n", ":1: invalid color"},
        {"device = tpu\n", ":1: invalid device"},
        {"beta = 2\n", ":1: invalid beta"},
        {"model = \"x.gguf\n", ":1: unbalanced quote"},
        {" = 3\n", ":1: missing key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        T_CHECK(!write_file(cfg, bad[i][0]));
        cr_opts o; memset(&o, 0, sizeof o);
        o.policy = o.cache_n = o.cascades = o.sinks = o.stride = -1; o.beta = -1; o.color = -1;
        char err[512] = "";
        T_CHECKF(config_load(cfg, &o, err, sizeof err) == -1 && !strncmp(err, cfg, strlen(cfg)) && strstr(err, bad[i][1]),
                 "case %zu: [%s]", i, err);
    }
    /* a missing file is no error */
    unlink(cfg);
    cr_opts o; memset(&o, 0, sizeof o);
    char err[64];
    T_CHECK(config_load(cfg, &o, err, sizeof err) == 0);
}

static char *run(const char *env, const char *args, int *status) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "env -u CASCADE_MODEL -u NO_COLOR XDG_CONFIG_HOME=%s XDG_DATA_HOME=%s/data %s %s %s 2>&1",
             dir, dir, env, bin, args);
    return t_popen_read(cmd, status);
}

static void t_model_lookup_order(void) {
    if (access(bin, X_OK)) T_SKIP("%s not built", bin);
    unlink(cfg);
    int st;
    /* nothing anywhere */
    char *o = run("", "--info", &st);
    T_CHECKF(st == 3 && strstr(o, "--model") && strstr(o, "CASCADE_MODEL") && strstr(o, models) && strstr(o, "--pull") &&
             strchr(o, '\n') == o + strlen(o) - 1, "status %d: %s", st, o);
    free(o);
    T_NEED_SHARED("models/stories260K.gguf");
    T_NEED_SHARED("models/TinyStories-656K-Q8_0.gguf");
    /* the models folder: the first *.gguf by name (a.gguf = TinyStories, 2 layers) */
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/a.gguf", models); snprintf(b, sizeof b, "%s/b.gguf", models);
    T_CHECK(!symlink(m2, a) && !symlink(m1, b));
    o = run("", "--info", &st);
    T_CHECKF(st == 0 && strstr(o, "layers\t2\n"), "status %d: %s", st, o); free(o);
    /* config `model` (a bare name from the models folder) beats the folder's first */
    T_CHECK(!write_file(cfg, "model = b.gguf\n"));
    o = run("", "--info", &st);
    T_CHECKF(st == 0 && strstr(o, "layers\t5\n"), "status %d: %s", st, o); free(o);
    /* $CASCADE_MODEL beats the config, --model beats both */
    char env[600]; snprintf(env, sizeof env, "CASCADE_MODEL=%s", m2);
    o = run(env, "--info", &st);
    T_CHECKF(st == 0 && strstr(o, "layers\t2\n"), "status %d: %s", st, o); free(o);
    char args[700]; snprintf(args, sizeof args, "--model %s --info", m1);
    o = run(env, args, &st);
    T_CHECKF(st == 0 && strstr(o, "layers\t5\n"), "status %d: %s", st, o); free(o);
    /* config values reach the session; the command line overrides them */
    T_CHECK(!write_file(cfg, "model = b.gguf\nstride = 32\ncache = 256\n"));
    o = run("", "--info", &st);
    T_CHECKF(st == 0 && strstr(o, "stride\t32\n") && strstr(o, "cache\t256\n"), "status %d: %s", st, o); free(o);
    o = run("", "--info --stride 16", &st);
    T_CHECKF(st == 0 && strstr(o, "stride\t16\n") && strstr(o, "cache\t256\n"), "status %d: %s", st, o); free(o);
    /* a bad line: one line naming FILE:LINE, exit 2 */
    T_CHECK(!write_file(cfg, "model = b.gguf\n\nthreads = lots\n"));
    o = run("", "--info", &st);
    char want[400]; snprintf(want, sizeof want, "%s:3: invalid threads 'lots'", cfg);
    T_CHECKF(st == 2 && strstr(o, want) && strchr(o, '\n') == o + strlen(o) - 1, "status %d: %s", st, o); free(o);
    /* --extract needs no model */
    unlink(cfg); unlink(a); unlink(b);
    o = run("", "--extract Makefile", &st);
    T_CHECKF(st == 0, "status %d: %s", st, o); free(o);
}

static void t_no_color_env(void) {
    T_CHECK(!write_file(cfg, "model = /x.gguf\n"));
    setenv("NO_COLOR", "1", 1);
    cr_opts o;
    T_CHECK(parse(&o, "--info", NULL, NULL, NULL) == 0 && o.color == 0);
    free(o.inputs);
    unsetenv("NO_COLOR");
    T_CHECK(parse(&o, "--info", NULL, NULL, NULL) == 0 && o.color == -1);
    free(o.inputs);
    unlink(cfg);
}

int main(void) {
    snprintf(m1, sizeof m1, "%s/models/stories260K.gguf", t_shared());
    snprintf(m2, sizeof m2, "%s/models/TinyStories-656K-Q8_0.gguf", t_shared());
    char cwd[256];
    if (m1[0] != '/' && getcwd(cwd, sizeof cwd)) {   /* symlinks need absolute targets */
        char t[512]; snprintf(t, sizeof t, "%s/%s", cwd, m1); snprintf(m1, sizeof m1, "%s", t);
        snprintf(t, sizeof t, "%s/%s", cwd, m2); snprintf(m2, sizeof m2, "%s", t);
    }
    const char *b = getenv("CR_BUILD");
    snprintf(bin, sizeof bin, "%s/cascade-read", b && strcmp(b, "build") ? b : ".");
    strcpy(dir, "/tmp/cr-config-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(cfgdir, sizeof cfgdir, "%s/cascade-read", dir);
    snprintf(cfg, sizeof cfg, "%s/config", cfgdir);
    char data[300]; snprintf(data, sizeof data, "%s/data", dir);
    snprintf(models, sizeof models, "%s/cascade-read/models", data);
    char d2[320]; snprintf(d2, sizeof d2, "%s/cascade-read", data);
    if (mkdir(cfgdir, 0755) || mkdir(data, 0755) || mkdir(d2, 0755) || mkdir(models, 0755)) return 1;
    setenv("XDG_CONFIG_HOME", dir, 1);
    setenv("XDG_DATA_HOME", data, 1);
    unsetenv("CASCADE_MODEL"); unsetenv("NO_COLOR");
    T_RUN(t_parse_all_keys);
    T_RUN(t_bad_lines);
    T_RUN(t_model_lookup_order);
    T_RUN(t_no_color_env);
    char cmd[300]; snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    return t_summary();
}
