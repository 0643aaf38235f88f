#!/usr/bin/python3
"""Independent numpy reference forward pass for Llama-family GGUF models (llama, qwen2).

    ref_llama.py MODEL.gguf --tokens 1,5,9 [--out logits.f32] [options]

Computes the logits of EVERY position of the token sequence and writes them as raw
little-endian float32 [n_tokens][n_vocab] to --out (and prints a summary).

Options
    --out FILE          raw f32 logits [n_tokens][n_vocab]
    --no-kv-f16         do not round K/V through float16 (default: round, like the engine's
                        fp16 KV cache; K is rounded BEFORE RoPE, V as computed)
    --kv-f16-post-rope  round K to fp16 AFTER RoPE instead (llama.cpp's cache convention)
    --f32               do the math in float32 (default float64)
    --act-quant MODE    none (default): exact math on the dequantized weights.
                        q8_0: round the input of every matmul whose weight is block-quantized
                        through Q8_0 (32-blocks, fp16 d, roundf) - an engine that quantizes
                        activations to 8 bits (llama.cpp CUDA's q8_1) differs from this by float
                        summation order only. ggml: round through the weight type's ggml-cpu
                        vec_dot_type (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for
                        K-quants, F16 for F16, BF16 for BF16, none for F32).
    --greedy N          after the prompt, greedily generate N tokens (argmax), print ids + text
    --quiet             no per-position summary

Conventions (GGUF / llama.cpp):
    RMSNorm x * 1/sqrt(mean(x^2) + eps) * w
    llama: RoPE "normal" mode on adjacent pairs (x[2i], x[2i+1]) (GGUF Q/K rows are permuted)
    qwen2: RoPE NEOX mode on pairs (x[i], x[i + n_rot/2]); Q/K/V biases
    theta_i = pos * base^(-2i/n_rot) / rope_freqs[i]  (rope_freqs.weight optional), i < n_rot/2;
    dims >= n_rot are not rotated
    causal GQA attention, query head h uses KV head h // (n_head / n_kv), scale 1/sqrt(head_dim)
    SwiGLU FFN down(silu(gate(x)) * up(x)); output = output.weight, or token_embd (tied)
    weight with ne = [in, out] = `out` rows of `in` values; y = W @ x
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_writer import GGUFFile, GGML_TYPES  # noqa: E402
import quants  # noqa: E402

ARCH_ROPE_MODE = {"llama": "norm", "qwen2": "neox"}


class Config:
    """Model hyper-parameters in a loader-neutral form."""

    def __init__(self, **kw):
        self.arch = "llama"
        self.dim = self.n_layers = self.n_head = self.n_kv = self.head_dim = 0
        self.ffn = self.vocab = 0
        self.ctx = 2048
        self.eps = 1e-5
        self.rope_base = 10000.0
        self.rope_dim = 0
        self.rope_mode = "norm"
        self.rope_freqs = None      # per-pair frequency divisors (n_rot/2), or None
        self.bos = 1
        self.eos = 2
        self.__dict__.update(kw)

    def __repr__(self):
        d = dict(self.__dict__)
        if d.get("rope_freqs") is not None:
            d["rope_freqs"] = "[%d factors]" % len(d["rope_freqs"])
        return "Config(%s)" % ", ".join("%s=%r" % kv for kv in d.items())


def tensor_f32(t):
    """Dequantize a GGUF tensor to a float32 array with numpy shape ne[::-1]."""
    name = GGML_TYPES[t.type][0]
    return quants.dequantize(t.data, name, t.n_elems).reshape(t.ne[::-1])


def load_gguf(path):
    """-> (Config, weights dict, GGUFFile). Weights are float32 in math layout [out, in]."""
    g = GGUFFile(path)
    arch = g.get("general.architecture")
    if arch not in ARCH_ROPE_MODE:
        raise ValueError("unsupported architecture %r" % arch)

    def kv(k, default=None):
        return g.get(arch + "." + k, default)

    T = g.tensors
    dim = int(kv("embedding_length"))
    n_head = int(kv("attention.head_count"))
    n_kv = int(kv("attention.head_count_kv", n_head))
    head_dim = int(kv("attention.key_length", dim // n_head))
    vocab = T["token_embd.weight"].ne[1]
    cfg = Config(
        arch=arch, dim=dim, n_layers=int(kv("block_count")), n_head=n_head, n_kv=n_kv,
        head_dim=head_dim, ffn=int(kv("feed_forward_length")), vocab=vocab,
        ctx=int(kv("context_length", 2048)),
        eps=float(kv("attention.layer_norm_rms_epsilon", 1e-5)),
        rope_base=float(kv("rope.freq_base", 10000.0)),
        rope_dim=int(kv("rope.dimension_count", head_dim)),
        rope_mode=ARCH_ROPE_MODE[arch],
        bos=int(g.get("tokenizer.ggml.bos_token_id", 1)),
        eos=int(g.get("tokenizer.ggml.eos_token_id", 2)),
    )
    if "rope_freqs.weight" in T:
        cfg.rope_freqs = tensor_f32(T["rope_freqs.weight"]).astype(np.float64).reshape(-1)
    W = {"tok_embd": tensor_f32(T["token_embd.weight"]),
         "output_norm": tensor_f32(T["output_norm.weight"])}
    W["output"] = tensor_f32(T["output.weight"]) if "output.weight" in T else W["tok_embd"]
    out_t = T["output.weight"] if "output.weight" in T else T["token_embd.weight"]
    W["types"] = {"output": out_t.type_name, "tok_embd": T["token_embd.weight"].type_name}
    W["layers"] = []
    for i in range(cfg.n_layers):
        p = "blk.%d." % i
        L = {}
        for k, n in [("attn_norm", "attn_norm"), ("wq", "attn_q"), ("wk", "attn_k"), ("wv", "attn_v"),
                     ("wo", "attn_output"), ("ffn_norm", "ffn_norm"), ("w_gate", "ffn_gate"),
                     ("w_up", "ffn_up"), ("w_down", "ffn_down")]:
            L[k] = tensor_f32(T[p + n + ".weight"])
            L.setdefault("types", {})[k] = T[p + n + ".weight"].type_name
        for k, n in [("bq", "attn_q"), ("bk", "attn_k"), ("bv", "attn_v"), ("bo", "attn_output")]:
            if p + n + ".bias" in T:
                L[k] = tensor_f32(T[p + n + ".bias"])
        W["layers"].append(L)
    return cfg, W, g


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, cfg, dtype):
    """x: (n, heads, head_dim). Rotates the first rope_dim dims of each head."""
    n_rot = cfg.rope_dim
    half = n_rot // 2
    inv = cfg.rope_base ** (-2.0 * np.arange(half, dtype=np.float64) / n_rot)
    if cfg.rope_freqs is not None:
        inv = inv / np.asarray(cfg.rope_freqs, np.float64)[:half]
    ang = np.asarray(pos, np.float64)[:, None] * inv[None, :]        # (n, half)
    cos = np.cos(ang).astype(dtype)[:, None, :]
    sin = np.sin(ang).astype(dtype)[:, None, :]
    y = x.copy()
    if cfg.rope_mode == "norm":
        x0, x1 = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        y[..., 0:n_rot:2] = x0 * cos - x1 * sin
        y[..., 1:n_rot:2] = x0 * sin + x1 * cos
    elif cfg.rope_mode == "neox":
        x0, x1 = x[..., :half], x[..., half:n_rot]
        y[..., :half] = x0 * cos - x1 * sin
        y[..., half:n_rot] = x0 * sin + x1 * cos
    else:
        raise ValueError(cfg.rope_mode)
    return y


def _f16(a):
    return a.astype(np.float16).astype(a.dtype)


def _act_type(mode, wtype):
    if mode in (None, "none") or wtype is None:
        return None
    if mode == "ggml":
        return quants.ACT_TYPE_GGML[wtype]
    if mode == "q8_0":      # 8-bit 32-blocks for block-quantized weights only (like CUDA's q8_1)
        return "Q8_0" if wtype not in ("F32", "F16", "BF16") else None
    raise ValueError("act_quant must be none, q8_0 or ggml")


def forward(cfg, W, tokens, kv_f16="pre", dtype=np.float64, return_hidden=False, act_quant=None):
    """Logits (n_tokens, vocab) for every position. kv_f16: 'pre' (round K before RoPE and V),
    'post' (round K after RoPE and V), or None. act_quant: None (exact), 'q8_0' (round the input
    of every matmul with a block-quantized weight through Q8_0) or 'ggml' (round it through the
    weight type's ggml-cpu vec_dot_type: Q8_0/Q8_1/Q8_K/F16/BF16)."""
    tokens = np.asarray(tokens, np.int64)
    n = len(tokens)
    pos = np.arange(n)
    hd, nh, nkv = cfg.head_dim, cfg.n_head, cfg.n_kv
    grp = nh // nkv
    c = lambda a: np.asarray(a, dtype)

    def mm(h, w, wtype):
        at = _act_type(act_quant, wtype)
        if at is not None:
            h = quants.fake_quant_act(h, at).astype(dtype)
        return h @ c(w).T

    def lt(L, k):
        return L.get("types", {}).get(k)

    x = c(W["tok_embd"][tokens])                                     # (n, dim)
    mask = np.triu(np.full((n, n), -np.inf, dtype), 1)
    for L in W["layers"]:
        h = rms_norm(x, c(L["attn_norm"]), cfg.eps)
        q = mm(h, L["wq"], lt(L, "wq"))
        k = mm(h, L["wk"], lt(L, "wk"))
        v = mm(h, L["wv"], lt(L, "wv"))
        if "bq" in L:
            q = q + c(L["bq"])
        if "bk" in L:
            k = k + c(L["bk"])
        if "bv" in L:
            v = v + c(L["bv"])
        q = q.reshape(n, nh, hd)
        k = k.reshape(n, nkv, hd)
        v = v.reshape(n, nkv, -1)
        if kv_f16 == "pre":
            k, v = _f16(k), _f16(v)
        q = rope(q, pos, cfg, dtype)
        k = rope(k, pos, cfg, dtype)
        if kv_f16 == "post":
            k, v = _f16(k), _f16(v)
        kh = np.repeat(k, grp, axis=1)                               # (n, nh, hd)
        vh = np.repeat(v, grp, axis=1)
        s = np.einsum("qhd,khd->hqk", q, kh) / np.sqrt(dtype(hd)) + mask
        s = s - s.max(-1, keepdims=True)
        p = np.exp(s)
        p = p / p.sum(-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", p, vh).reshape(n, -1)
        o = mm(o, L["wo"], lt(L, "wo"))
        if "bo" in L:
            o = o + c(L["bo"])
        x = x + o
        h = rms_norm(x, c(L["ffn_norm"]), cfg.eps)
        g = mm(h, L["w_gate"], lt(L, "w_gate"))
        u = mm(h, L["w_up"], lt(L, "w_up"))
        a = g / (1 + np.exp(-g)) * u
        x = x + mm(a, L["w_down"], lt(L, "w_down"))
    h = rms_norm(x, c(W["output_norm"]), cfg.eps)
    logits = mm(h, W["output"], W.get("types", {}).get("output"))
    return (logits, x) if return_hidden else logits


def greedy(cfg, W, prompt, n_new, **kw):
    toks = list(prompt)
    for _ in range(n_new):
        lg = forward(cfg, W, toks, **kw)
        toks.append(int(np.argmax(lg[-1])))
    return toks


def detok(g, ids):
    """Decode ids with the GGUF vocab: '\u2581' -> space, <0xNN> -> byte, control tokens skipped,
    and (SentencePiece) the leading space of the text dropped."""
    toks = g.get("tokenizer.ggml.tokens")
    ttype = g.get("tokenizer.ggml.token_type")
    out = bytearray()
    for i in ids:
        p = toks[i]
        if ttype is not None and int(ttype[i]) == 3:
            continue
        if len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
            out.append(int(p[3:5], 16))
        else:
            out += p.replace("\u2581", " ").encode("utf-8", "surrogateescape")
    if out[:1] == b" ":
        out = out[1:]
    return out.decode("utf-8", errors="replace")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids, e.g. 1,5,9")
    ap.add_argument("--out")
    ap.add_argument("--no-kv-f16", action="store_true")
    ap.add_argument("--kv-f16-post-rope", action="store_true")
    ap.add_argument("--f32", action="store_true")
    ap.add_argument("--act-quant", choices=["none", "q8_0", "ggml"], default="none",
                    help="simulate activation quantization before weight matmuls (default none)")
    ap.add_argument("--greedy", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    tokens = [int(t) for t in a.tokens.replace(" ", "").split(",") if t != ""]
    cfg, W, g = load_gguf(a.model)
    if any(t < 0 or t >= cfg.vocab for t in tokens):
        ap.error("token id out of range (vocab %d)" % cfg.vocab)
    kw = dict(kv_f16=None if a.no_kv_f16 else ("post" if a.kv_f16_post_rope else "pre"),
              dtype=np.float32 if a.f32 else np.float64, act_quant=a.act_quant)
    logits = forward(cfg, W, tokens, **kw).astype(np.float32)
    if a.out:
        logits.astype("<f4").tofile(a.out)
    if not a.quiet:
        print(cfg)
        print("kv_f16=%s dtype=%s act_quant=%s n_tokens=%d"
              % (kw["kv_f16"], kw["dtype"].__name__, a.act_quant, len(tokens)))
        for i, t in enumerate(tokens):
            r = logits[i]
            print("pos %3d tok %6d  argmax %6d  max %9.5f  mean %9.5f  std %8.5f"
                  % (i, t, int(r.argmax()), r.max(), r.mean(), r.std()))
        if a.out:
            print("wrote %s (%d x %d float32)" % (a.out, logits.shape[0], logits.shape[1]))
    if a.greedy:
        ids = greedy(cfg, W, tokens, a.greedy, **kw)
        print("greedy ids:", ",".join(map(str, ids)))
        print("greedy text:", repr(detok(g, ids)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
