/* Model loading: hyper-parameters from GGUF metadata, weight views into the mmap. */
#include "model.h"
#include "quant.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t n, const char *path, const char *fmt, const char *a, const char *b) {
    char msg[400];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    snprintf(err, n, "%s: %s", path, msg);
    return -1;
}

static int get_int(const gguf_file *g, const char *arch, const char *suffix, int64_t *out) {
    char key[128]; snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_i64(g, key, out);
}
static int get_flt(const gguf_file *g, const char *arch, const char *suffix, double *out) {
    char key[128]; snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_f64(g, key, out);
}

static int load_hparams(cr_model *m, char *err, size_t errlen) {
    const gguf_file *g = &m->g;
    hparams *hp = &m->hp;
    char arch[64];
    if (!gguf_get_cstr(g, "general.architecture", arch, sizeof arch))
        return fail(err, errlen, g->path, "missing general.architecture", NULL, NULL);
    if (strcmp(arch, "llama") == 0) hp->arch = CR_ARCH_LLAMA;
    else if (strcmp(arch, "qwen2") == 0) hp->arch = CR_ARCH_QWEN2;
    else return fail(err, errlen, g->path, "unsupported architecture '%s' (supported: llama, qwen2)", arch, NULL);
    if (!gguf_get_cstr(g, "general.name", m->name, sizeof m->name)) snprintf(m->name, sizeof m->name, "%s", arch);
    int64_t v; double d;
    struct { const char *k; int *dst; int req; } ints[] = {
        {"block_count", &hp->n_layer, 1}, {"embedding_length", &hp->dim, 1},
        {"attention.head_count", &hp->n_head, 1}, {"feed_forward_length", &hp->ffn, 1},
        {"context_length", &hp->n_ctx, 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (!get_int(g, arch, ints[i].k, &v)) {
            if (ints[i].req) return fail(err, errlen, g->path, "missing metadata %s", ints[i].k, NULL);
            v = 0;
        }
        if (v < 0 || v > (1 << 24)) return fail(err, errlen, g->path, "invalid metadata %s", ints[i].k, NULL);
        *ints[i].dst = (int)v;
    }
    if (hp->n_ctx <= 0) hp->n_ctx = 2048;
    hp->n_kv = get_int(g, arch, "attention.head_count_kv", &v) ? (int)v : hp->n_head;
    if (hp->n_layer <= 0 || hp->dim <= 0 || hp->n_head <= 0 || hp->n_kv <= 0 || hp->n_head % hp->n_kv || hp->dim % hp->n_head)
        return fail(err, errlen, g->path, "inconsistent head counts / dimensions in metadata", NULL, NULL);
    hp->head_dim = hp->dim / hp->n_head;
    if (get_int(g, arch, "attention.key_length", &v) && v != hp->head_dim)
        return fail(err, errlen, g->path, "attention.key_length differs from dim/heads (unsupported)", NULL, NULL);
    hp->rope_dim = get_int(g, arch, "rope.dimension_count", &v) ? (int)v : hp->head_dim;
    if (hp->rope_dim <= 0 || hp->rope_dim > hp->head_dim || hp->rope_dim % 2)
        return fail(err, errlen, g->path, "invalid rope.dimension_count", NULL, NULL);
    hp->eps = get_flt(g, arch, "attention.layer_norm_rms_epsilon", &d) ? (float)d : 1e-5f;
    hp->rope_base = get_flt(g, arch, "rope.freq_base", &d) ? (float)d : 10000.0f;
    hp->rope_neox = hp->arch == CR_ARCH_QWEN2;
    return 0;
}

/* Inverse frequencies with linear or llama3 scaling (rope_freqs.weight when present). */
static int load_rope(cr_model *m, char *err, size_t errlen) {
    hparams *hp = &m->hp;
    const gguf_file *g = &m->g;
    int n = hp->rope_dim / 2;
    hp->rope_inv_freq = malloc((size_t)n * sizeof(float));
    if (!hp->rope_inv_freq) return fail(err, errlen, g->path, "out of memory", NULL, NULL);
    char arch[64]; gguf_get_cstr(g, "general.architecture", arch, sizeof arch);
    char stype[32] = ""; char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    gguf_get_cstr(g, key, stype, sizeof stype);
    double factor = 1.0;
    get_flt(g, arch, "rope.scaling.factor", &factor);
    const gguf_tensor *rf = gguf_tensor_find(g, "rope_freqs.weight");
    float *ff = NULL;
    if (rf) {
        if (rf->ne[0] != (uint64_t)n || !quant_supported(rf->type) || ggml_blck_size(rf->type) != 1)
            return fail(err, errlen, g->path, "rope_freqs.weight has an unexpected shape or type", NULL, NULL);
        ff = malloc((size_t)n * sizeof(float));
        dequant_row(rf->type, rf->data, ff, n);
    }
    for (int i = 0; i < n; i++) {
        double f = pow((double)hp->rope_base, -2.0 * i / hp->rope_dim);
        if (ff) f /= ff[i];
        else if (strcmp(stype, "linear") == 0 && factor > 0) f /= factor;
        hp->rope_inv_freq[i] = (float)f;
    }
    free(ff);
    if (stype[0] && strcmp(stype, "linear") && strcmp(stype, "llama3") && strcmp(stype, "none") && !rf)
        fprintf(stderr, "%s: warning: rope scaling '%s' is not supported; using unscaled RoPE\n", g->path, stype);
    return 0;
}

static int get_wmat(cr_model *m, const char *name, int64_t rows, int64_t cols, wmat *w, int optional, char *err, size_t errlen) {
    const gguf_tensor *t = gguf_tensor_find(&m->g, name);
    memset(w, 0, sizeof *w);
    if (!t) return optional ? 1 : fail(err, errlen, m->g.path, "missing tensor '%s'", name, NULL);
    if (!quant_supported(t->type)) return fail(err, errlen, m->g.path, "tensor '%s' has unsupported type %s", name, ggml_type_name(t->type));
    if (t->n_dims != 2 || (int64_t)t->ne[0] != cols || (int64_t)t->ne[1] != rows) {
        char shape[64]; snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)cols, (long long)rows);
        return fail(err, errlen, m->g.path, "tensor '%s' has the wrong shape (expected %s)", name, shape);
    }
    if (quant_uses_q8(t->type) && cols % 256 && ggml_blck_size(t->type) == 256)
        return fail(err, errlen, m->g.path, "tensor '%s': row length not a multiple of 256", name, NULL);
    w->data = t->data; w->type = t->type; w->rows = rows; w->cols = cols;
    w->row_bytes = ggml_row_size(t->type, (uint64_t)cols);
    m->weight_bytes += t->nbytes;
    return 0;
}

static int get_vec(cr_model *m, const char *name, int64_t n, float **out, int optional, char *err, size_t errlen) {
    const gguf_tensor *t = gguf_tensor_find(&m->g, name);
    *out = NULL;
    if (!t) return optional ? 1 : fail(err, errlen, m->g.path, "missing tensor '%s'", name, NULL);
    if (!quant_supported(t->type)) return fail(err, errlen, m->g.path, "tensor '%s' has unsupported type %s", name, ggml_type_name(t->type));
    if (t->ne[0] != (uint64_t)n || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1 || n % (int64_t)ggml_blck_size(t->type))
        return fail(err, errlen, m->g.path, "tensor '%s' has the wrong shape", name, NULL);
    *out = malloc((size_t)n * sizeof(float));
    if (!*out) return fail(err, errlen, m->g.path, "out of memory", NULL, NULL);
    dequant_row(t->type, t->data, *out, n);
    m->weight_bytes += t->nbytes;
    return 0;
}

int model_open_vocab(cr_model *m, const char *path, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (gguf_open(&m->g, path) != 0) { snprintf(err, errlen, "%s", m->g.err); return -1; }
    m->fingerprint = gguf_fingerprint(&m->g);
    return 0;
}

int model_load(cr_model *m, const char *path, char *err, size_t errlen) {
    if (model_open_vocab(m, path, err, errlen)) return -1;
    hparams *hp = &m->hp;
    if (load_hparams(m, err, errlen) || load_rope(m, err, errlen)) goto bad;
    const gguf_tensor *te = gguf_tensor_find(&m->g, "token_embd.weight");
    if (!te) { fail(err, errlen, path, "missing tensor 'token_embd.weight'%s%s", m->g.n_tensors ? "" : " (this GGUF has no tensors: a vocabulary-only file?)", NULL); goto bad; }
    if (te->n_dims != 2 || te->ne[0] != (uint64_t)hp->dim || te->ne[1] > (1u << 24)) { fail(err, errlen, path, "token_embd.weight has the wrong shape", NULL, NULL); goto bad; }
    hp->n_vocab = (int)te->ne[1];
    int qd = hp->n_head * hp->head_dim, kvd = hp->n_kv * hp->head_dim;
    if (get_wmat(m, "token_embd.weight", hp->n_vocab, hp->dim, &m->tok_embd, 0, err, errlen) < 0) goto bad;
    int r = get_wmat(m, "output.weight", hp->n_vocab, hp->dim, &m->output, 1, err, errlen);
    if (r < 0) goto bad;
    if (r == 1) m->output = m->tok_embd;           /* tied embeddings */
    if (get_vec(m, "output_norm.weight", hp->dim, &m->out_norm, 0, err, errlen)) goto bad;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) { fail(err, errlen, path, "out of memory", NULL, NULL); goto bad; }
    for (int l = 0; l < hp->n_layer; l++) {
        layer_w *L = &m->layers[l];
        char nm[96];
#define W(field, suffix, rows, cols) snprintf(nm, sizeof nm, "blk.%d." suffix, l); if (get_wmat(m, nm, rows, cols, &L->field, 0, err, errlen)) goto bad;
        W(q, "attn_q.weight", qd, hp->dim)
        W(k, "attn_k.weight", kvd, hp->dim)
        W(v, "attn_v.weight", kvd, hp->dim)
        W(o, "attn_output.weight", hp->dim, qd)
        W(gate, "ffn_gate.weight", hp->ffn, hp->dim)
        W(up, "ffn_up.weight", hp->ffn, hp->dim)
        W(down, "ffn_down.weight", hp->dim, hp->ffn)
#undef W
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        if (get_vec(m, nm, hp->dim, &L->attn_norm, 0, err, errlen)) goto bad;
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        if (get_vec(m, nm, hp->dim, &L->ffn_norm, 0, err, errlen)) goto bad;
        int opt = hp->arch != CR_ARCH_QWEN2;
        snprintf(nm, sizeof nm, "blk.%d.attn_q.bias", l);
        if (get_vec(m, nm, qd, &L->bq, opt, err, errlen) < 0) goto bad;
        snprintf(nm, sizeof nm, "blk.%d.attn_k.bias", l);
        if (get_vec(m, nm, kvd, &L->bk, opt, err, errlen) < 0) goto bad;
        snprintf(nm, sizeof nm, "blk.%d.attn_v.bias", l);
        if (get_vec(m, nm, kvd, &L->bv, opt, err, errlen) < 0) goto bad;
    }
    return 0;
bad:
    model_free(m);
    return -1;
}

void model_free(cr_model *m) {
    if (m->layers) {
        for (int l = 0; l < m->hp.n_layer; l++) {
            layer_w *L = &m->layers[l];
            free(L->attn_norm); free(L->ffn_norm); free(L->bq); free(L->bk); free(L->bv);
        }
    }
    free(m->layers); free(m->out_norm); free(m->hp.rope_inv_freq);
    gguf_close(&m->g);
    memset(m, 0, sizeof *m);
}

void rope_apply(const hparams *hp, float *x, int64_t pos) {
    int n = hp->rope_dim / 2;
    for (int i = 0; i < n; i++) {
        float th = (float)pos * hp->rope_inv_freq[i];
        float c = cosf(th), s = sinf(th);
        int a = hp->rope_neox ? i : 2 * i, b = hp->rope_neox ? i + n : 2 * i + 1;
        float x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}
