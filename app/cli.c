#include <stdio.h>
#include "cli.h"
#include "chat.h"
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_usage(FILE *f) {
    fputs(
"usage: cascade-read [OPTIONS] [--model MODEL.gguf] DOCUMENT...\n"
"       cascade-read [OPTIONS] [--model MODEL.gguf] MODE\n"
"Read documents far longer than a model's context through a cascading KV cache.\n"
"Without a mode flag, on a terminal, the documents open in the full-screen interface.\n"
"\n"
"Modes:\n"
"  --ask QUESTION         read the documents, answer QUESTION with citations\n"
"  --summarize            read the documents, write notes per chapter and a summary\n"
"  --grep QUESTION        rank the documents' lines by relevance to QUESTION\n"
"      -m NUM             with --grep: the NUM best lines (default 20)\n"
"      -C NUM             with --grep: NUM lines of context around each\n"
"      -n                 with --grep: print line numbers (file:line: text)\n"
"  --read                 read the documents into the cache (with --save), no question\n"
"  --generate PROMPT      write the model's continuation of PROMPT (\"\" = BOS alone)\n"
"  --perplexity DOC       stream DOC through the cache; print tokens and perplexity\n"
"      --max-tokens N     with --perplexity, --read or --ask: stop reading after N tokens\n"
"  --tokenize TEXT        print the token ids of TEXT (no BOS), space separated\n"
"  --detokenize \"ID ...\"  print the text of the token ids\n"
"  --info                 print the model's hyper-parameters and cache defaults\n"
"  --extract FILE...      print the documents' text exactly as the model reads it\n"
"      --map              with --extract: one line per section: offset<TAB>line<TAB>title\n"
"\n"
"Documents: FILE (.txt, .log, .epub, optionally .gz), http(s) URL, or - for stdin;\n"
"a snapshot FILE.cas given as a document resumes it.\n"
"  --keep-boilerplate     keep Project Gutenberg headers and footers (stripped by default)\n"
"\n"
"Sessions and snapshots:\n"
"  --save FILE.cas        save the session (cache, documents, conversation) after reading\n"
"  --autosave K           also save every K tokens read (needs --save)\n"
"  --resume FILE.cas      continue a saved session (a partly read document continues)\n"
"  --snapshot-quant q8    lossy snapshots: K/V stored as q8_0 (smaller, small logit error)\n"
"  --snapshot-info FILE.cas  print a snapshot's header and sections\n"
"  --pull URL             download a GGUF model into the models folder\n"
"\n"
"Model and device:\n"
"  -m, --model FILE       GGUF model (llama or qwen2 architecture)\n"
"  --tokenizer FILE       sentencepiece tokenizer.model instead of the GGUF vocabulary\n"
"  --chat-template NAME   llama2, llama3, chatml, mistral, phi3 or raw (default: from the GGUF)\n"
"  --device cpu|cuda|auto where to run (default auto: the GPU when present)\n"
"  --gpus N               split the model over GPUs 0..N-1 (tensor parallel, NCCL)\n"
"  -t, --threads N        CPU threads (default: all cores)\n"
"\n"
"Cascading cache (defaults depend on the model's context length, see --info):\n"
"  --policy cascade|sink|full   eviction policy (default cascade)\n"
"  --cache N              cache slots, not counting sinks\n"
"  --cascades C           sub-caches (N must be a multiple of C)\n"
"  --sinks S              sink tokens kept forever\n"
"  --stride L             prefill chunk length\n"
"  --beta B               EMA decay of attention scores (default 0.9999999)\n"
"\n"
"Sampling:\n"
"  -n N                   tokens to generate (default 256)\n"
"  --temp T               temperature, 0 = greedy (default 0)\n"
"  --top-k K              (default 40)      --top-p P    (default 0.95)\n"
"  --min-p P              (default 0.05)    --repeat-penalty R (default 1.0)\n"
"  --seed S               RNG seed (default 1)\n"
"\n"
"Output:\n"
"  -v, --verbose          timings (prefill and decode tokens/s) on stderr\n"
"  -q, --quiet            no progress on stderr\n"
"  --json                 machine-readable output (--ask, --grep, --summarize, --read)\n"
"  --no-tui               never open the full-screen interface\n"
"  -h, --help             this help      --version   the version\n"
"\n"
"Exit status: 0 ok, 1 bad input, 2 usage, 3 model or device error, 130 interrupted.\n",
        f);
}

static int bad(const char *msg, const char *arg) {
    fprintf(stderr, "cascade-read: %s%s%s (see --help)\n", msg, arg ? ": " : "", arg ? arg : "");
    return CR_EXIT_USAGE;
}

static int parse_int(const char *s, long lo, long hi, int *out) {
    char *e; errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi) return -1;
    *out = (int)v; return 0;
}
static int parse_dbl(const char *s, double lo, double hi, double *out) {
    char *e; errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || !(v >= lo && v <= hi)) return -1;
    *out = v; return 0;
}

int cli_parse(cr_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->n_predict = 256; o->device = NULL; o->color = -1;    /* device: "auto" unless configured */
    o->policy = -1; o->cache_n = o->cascades = o->sinks = o->stride = -1; o->beta = -1;
    sampler_cfg_default(&o->samp);
    o->samp.temp = 0; o->samp.seed = 1;
    o->inputs = calloc((size_t)argc + 1, sizeof *o->inputs);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!v) return bad("missing value for", a); i++; } while (0)
#define IS(x) (strcmp(a, x) == 0)
        double d;
        if (IS("-h") || IS("--help")) { cli_usage(stdout); return -1; }
        else if (IS("--version")) { printf("cascade-read %s\n", CR_VERSION); return -1; }
        else if (IS("-m") && o->mode == MODE_GREP) { NEED(); if (parse_int(v, 1, 1 << 30, &o->grep_k)) return bad("invalid -m", v); }
        else if (IS("-n") && o->mode == MODE_GREP && !(v && v[0] >= '0' && v[0] <= '9')) o->grep_line_numbers = 1;
        else if (IS("-m") || IS("--model")) { NEED(); o->model = v; }
        else if (IS("--tokenizer")) { NEED(); o->tokenizer = v; }
        else if (IS("--chat-template")) { NEED(); if (chat_kind_from_name(v) < 0) return bad("unknown --chat-template (llama2, llama3, chatml, mistral, phi3, raw)", v); o->chat_template = v; }
        else if (IS("--device")) { NEED(); if (strcmp(v, "cpu") && strcmp(v, "cuda") && strcmp(v, "auto")) return bad("--device must be cpu, cuda or auto", v); o->device = v; }
        else if (IS("--gpus")) { NEED(); if (parse_int(v, 1, 64, &o->gpus)) return bad("--gpus must be 1 to 64", v); }
        else if (IS("-t") || IS("--threads")) { NEED(); if (parse_int(v, 1, 1024, &o->threads)) return bad("invalid --threads", v); }
        else if (IS("--generate")) { NEED(); o->mode = MODE_GENERATE; o->prompt = v; }
        else if (IS("--perplexity")) { NEED(); o->mode = MODE_PERPLEXITY; o->ppl_file = v; }
        else if (IS("--tokenize")) { NEED(); o->mode = MODE_TOKENIZE; o->text = v; }
        else if (IS("--detokenize")) { NEED(); o->mode = MODE_DETOKENIZE; o->text = v; }
        else if (IS("--max-tokens")) { NEED(); if (parse_int(v, 1, 2000000000, &o->max_tokens)) return bad("invalid --max-tokens", v); }
        else if (IS("--info")) o->mode = MODE_INFO;
        else if (IS("--ask")) { NEED(); o->mode = MODE_ASK; o->question = v; }
        else if (IS("--grep")) { NEED(); o->mode = MODE_GREP; o->question = v; }
        else if (IS("--summarize")) o->mode = MODE_SUMMARIZE;
        else if (IS("--read")) o->mode = MODE_READ;
        else if (IS("--pull")) { NEED(); o->mode = MODE_PULL; o->pull_url = v; }
        else if (IS("--snapshot-info")) { NEED(); o->mode = MODE_SNAPINFO; o->snapinfo_path = v; }
        else if (IS("-C")) { NEED(); if (parse_int(v, 0, 1000, &o->grep_context)) return bad("invalid -C", v); }
        else if (IS("--save")) { NEED(); o->save_path = v; }
        else if (IS("--resume")) { NEED(); o->resume_path = v; }
        else if (IS("--autosave")) { NEED(); char *e; errno = 0; long long k = strtoll(v, &e, 10); if (errno || *e || e == v || k < 1) return bad("invalid --autosave", v); o->autosave = k; }
        else if (IS("--snapshot-quant")) { NEED(); if (strcmp(v, "q8") == 0) o->snapshot_quant = 1; else if (strcmp(v, "none") == 0) o->snapshot_quant = 0; else return bad("--snapshot-quant must be q8 or none", v); }
        else if (IS("--json")) o->json = 1;
        else if (IS("--no-tui")) o->no_tui = 1;
        else if (IS("--extract")) o->mode = MODE_EXTRACT;
        else if (IS("--map")) o->map = 1;
        else if (IS("--keep-boilerplate")) o->no_strip = 1;
        else if (IS("-n")) { NEED(); if (parse_int(v, 0, 1 << 30, &o->n_predict)) return bad("invalid -n", v); }
        else if (IS("--temp")) { NEED(); if (parse_dbl(v, 0, 100, &d)) return bad("invalid --temp", v); o->samp.temp = (float)d; }
        else if (IS("--top-k")) { NEED(); if (parse_int(v, 0, 1 << 30, &o->samp.top_k)) return bad("invalid --top-k", v); }
        else if (IS("--top-p")) { NEED(); if (parse_dbl(v, 0, 1, &d)) return bad("invalid --top-p", v); o->samp.top_p = (float)d; }
        else if (IS("--min-p")) { NEED(); if (parse_dbl(v, 0, 1, &d)) return bad("invalid --min-p", v); o->samp.min_p = (float)d; }
        else if (IS("--repeat-penalty")) { NEED(); if (parse_dbl(v, 0.01, 100, &d)) return bad("invalid --repeat-penalty", v); o->samp.rep_penalty = (float)d; }
        else if (IS("--seed")) { NEED(); char *e; errno = 0; unsigned long long s = strtoull(v, &e, 10); if (errno || *e || e == v) return bad("invalid --seed", v); o->samp.seed = s; }
        else if (IS("--policy")) { NEED(); o->policy = cascade_policy_parse(v); if (o->policy < 0) return bad("--policy must be cascade, sink or full", v); }
        else if (IS("--cache")) { NEED(); if (parse_int(v, 1, 1 << 28, &o->cache_n)) return bad("invalid --cache", v); }
        else if (IS("--cascades")) { NEED(); if (parse_int(v, 1, CR_MAX_CASCADES, &o->cascades)) return bad("invalid --cascades", v); }
        else if (IS("--sinks")) { NEED(); if (parse_int(v, 0, 1 << 20, &o->sinks)) return bad("invalid --sinks", v); }
        else if (IS("--stride")) { NEED(); if (parse_int(v, 1, 1 << 20, &o->stride)) return bad("invalid --stride", v); }
        else if (IS("--beta")) { NEED(); if (parse_dbl(v, 1e-9, 1, &o->beta)) return bad("invalid --beta (0 < B <= 1)", v); }
        else if (IS("-v") || IS("--verbose")) o->verbose = 1;
        else if (IS("-q") || IS("--quiet")) o->quiet = 1;
        else if (a[0] == '-' && a[1]) return bad("unknown option", a);
        else o->inputs[o->n_inputs++] = a;
#undef NEED
#undef IS
    }
    o->grep_k = o->grep_k ? o->grep_k : 20;
    /* a .cas document resumes it */
    for (int i = 0; i < o->n_inputs; i++) {
        size_t n = strlen(o->inputs[i]);
        if (n > 4 && strcmp(o->inputs[i] + n - 4, ".cas") == 0) {
            if (o->resume_path) return bad("more than one snapshot given", o->inputs[i]);
            o->resume_path = o->inputs[i];
            memmove(&o->inputs[i], &o->inputs[i + 1], (size_t)(o->n_inputs - i - 1) * sizeof *o->inputs);
            o->n_inputs--; i--;
        }
    }
    if (o->autosave && !o->save_path) return bad("--autosave needs --save FILE.cas", NULL);
    if (o->mode == MODE_NONE) {
        if (o->n_inputs == 0 && !o->resume_path) return bad("no document and no mode given (e.g. book.epub, or --generate PROMPT)", NULL);
        /* documents without a mode flag: the full-screen interface on a terminal, else read
         * (and --save) */
        o->mode = (!o->no_tui && isatty(0) && isatty(1)) ? MODE_TUI : MODE_READ;
    }
    if ((o->mode == MODE_ASK || o->mode == MODE_SUMMARIZE || o->mode == MODE_GREP || o->mode == MODE_READ) &&
        o->n_inputs == 0 && !o->resume_path)
        return bad("no document given", NULL);
    /* configuration file, then the model lookup (app/config.c) */
    return config_apply(o);
}

static int floor_pow2(int x) { int p = 1; while (p * 2 <= x) p *= 2; return p; }

int cli_cache_cfg(const cr_opts *o, int n_ctx, cascade_cfg *cfg, int *stride, char *err, size_t errlen) {
    cascade_cfg_default(cfg);
    cfg->policy = o->policy >= 0 ? o->policy : CR_POLICY_CASCADE;
    if (n_ctx < 64) n_ctx = 64;
    /* defaults: S = 64 for long-context models (4 below 8K), L = ctx/8 (at most 4096),
     * N = the largest power of two with S + N + L <= ctx (at most 65536), C = 8 when
     * N >= 16384 else 4; `full` holds the whole context (N = ctx - S). */
    int S = o->sinks >= 0 ? o->sinks : (n_ctx >= 8192 ? 64 : 4);
    int L = o->stride > 0 ? o->stride : floor_pow2(n_ctx / 8 < 4096 ? n_ctx / 8 : 4096);
    int N;
    if (o->cache_n > 0) N = o->cache_n;
    else if (cfg->policy == CR_POLICY_FULL) N = n_ctx - S;
    else { int room = n_ctx - S - L; N = floor_pow2(room > 8 ? room : 8); if (N > 65536) N = 65536; }
    int C = o->cascades > 0 ? o->cascades : (N >= 16384 ? 8 : 4);
    if (cfg->policy != CR_POLICY_CASCADE) C = 1;
    if (cfg->policy == CR_POLICY_CASCADE && o->cascades <= 0) while (C > 1 && N % C) C /= 2;
    if (cfg->policy == CR_POLICY_FULL && S + N > n_ctx && o->cache_n > 0)
        fprintf(stderr, "cascade-read: warning: --cache %d with the full policy exceeds the model's context (%d)\n", N, n_ctx);
    cfg->S = S; cfg->N = N; cfg->C = C;
    if (o->beta > 0) cfg->beta = o->beta;
    *stride = L;
    cascade_ctrl c;
    return cascade_ctrl_init(&c, cfg, err, errlen);
}
