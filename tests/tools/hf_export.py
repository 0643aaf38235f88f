#!/usr/bin/python3
"""Export a GGUF model's weights (dequantized to float32) as a Hugging Face checkpoint.

    hf_export.py MODEL.gguf OUTDIR [--llama3-params FACTOR,LOW,HIGH,ORIG_CTX]

Writes OUTDIR/model.safetensors (written by hand: u64 header length + JSON header + raw
little-endian data) and OUTDIR/config.json (LlamaForCausalLM or Qwen2ForCausalLM), so that
transformers can load it (tests/tools/hf_compare.py does that on a machine with torch).

  * llama: GGUF's Q/K rows are permuted by llama.cpp's converter
        permute(w, n_head) = w.reshape(n_head, 2, hd//2, dim).swapaxes(1, 2).reshape(...)
    so that "normal" (adjacent-pair) RoPE on GGUF rows equals HF's rotate_half (NEOX) RoPE;
    this script applies the inverse (reshape(n_head, hd//2, 2, dim).swapaxes(1, 2)).
    qwen2 is not permuted (NEOX in both).
  * rope_freqs.weight (Llama 3.1 rope scaling) -> config rope_scaling {"rope_type": "llama3",
    ...}. The GGUF holds only the per-pair factors, so the parameters are assumed to be the
    Llama 3.1 defaults (8, 1, 4, 8192) unless --llama3-params says otherwise; the script
    checks that they reproduce the stored factors.
  * tied embeddings (no output.weight) -> tie_word_embeddings: true, no lm_head.weight.
  * partial rotary (rope.dimension_count < head dim) has no Llama/Qwen2 HF equivalent: refused.

Also importable: read_safetensors(), write_safetensors(), load_hf(dir) -> (Config, weights) in
ref_llama's layout (rope_mode "neox", HF row order), gguf_to_hf(), llama3_inv_freq_hf().
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_llama  # noqa: E402
from ref_llama import Config  # noqa: E402

ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}


# ------------------------------------------------------------------ safetensors

def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (float32 written as F32, float16 as F16)."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype == np.float32:
            dt, b = "F32", a.astype("<f4").tobytes()
        elif a.dtype == np.float16:
            dt, b = "F16", a.astype("<f2").tobytes()
        else:
            raise ValueError("%s: unsupported dtype %s" % (name, a.dtype))
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)          # pad with spaces so the data is 8-aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """-> (dict name -> float32/other numpy array, metadata dict)."""
    with open(path, "rb") as f:
        buf = f.read()
    n, = struct.unpack_from("<Q", buf, 0)
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        s, e = info["data_offsets"]
        raw = np.frombuffer(buf, np.uint8, count=e - s, offset=base + s)
        dt = info["dtype"]
        if dt == "BF16":
            a = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = raw.view(ST_DTYPES[dt])
        out[name] = a.reshape(info["shape"]).astype(np.float32) if dt in ("F32", "F16", "BF16", "F64") \
            else a.reshape(info["shape"])
    return out, meta


# ------------------------------------------------------------------ rope scaling

LLAMA3_DEFAULT = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                      original_max_position_embeddings=8192)


def llama3_inv_freq_hf(head_dim, base, factor, low_freq_factor, high_freq_factor,
                       original_max_position_embeddings, rope_dim=None):
    """inv_freq as transformers' _compute_llama3_parameters computes it (vectorized form)."""
    dim = rope_dim or head_dim
    inv_freq = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    old = original_max_position_embeddings
    low_wl = old / low_freq_factor
    high_wl = old / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_l = np.where(wavelen > low_wl, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
    return np.where(medium, smoothed, inv_l), inv_freq


# ------------------------------------------------------------------ HF loading (numpy)

def load_hf(outdir):
    """Load an HF Llama/Qwen2 checkpoint dir into ref_llama's Config + weights (HF order,
    rope_mode neox)."""
    with open(os.path.join(outdir, "config.json")) as f:
        c = json.load(f)
    st, _ = read_safetensors(os.path.join(outdir, "model.safetensors"))
    mt = c.get("model_type", "llama")
    if mt not in ("llama", "qwen2"):
        raise ValueError("unsupported model_type " + mt)
    dim = c["hidden_size"]
    nh = c["num_attention_heads"]
    hd = c.get("head_dim") or dim // nh
    cfg = Config(arch=mt, dim=dim, n_layers=c["num_hidden_layers"], n_head=nh,
                 n_kv=c.get("num_key_value_heads", nh), head_dim=hd,
                 ffn=c["intermediate_size"], vocab=c["vocab_size"],
                 ctx=c.get("max_position_embeddings", 2048), eps=c.get("rms_norm_eps", 1e-6),
                 rope_base=c.get("rope_theta", 10000.0), rope_dim=hd, rope_mode="neox",
                 bos=c.get("bos_token_id", 1), eos=c.get("eos_token_id", 2))
    rs = c.get("rope_scaling")
    if rs:
        if rs.get("rope_type", rs.get("type")) != "llama3":
            raise ValueError("unsupported rope_scaling %r" % rs)
        p = {k: rs.get(k, LLAMA3_DEFAULT[k]) for k in LLAMA3_DEFAULT}
        scaled, plain = llama3_inv_freq_hf(hd, cfg.rope_base, **p)
        cfg.rope_freqs = plain / scaled
    emb = st.get("model.embed_tokens.weight", st.get("lm_head.weight"))
    W = {"tok_embd": emb, "output_norm": st["model.norm.weight"]}
    if "lm_head.weight" in st and not c.get("tie_word_embeddings", False):
        W["output"] = st["lm_head.weight"]
    else:
        W["output"] = emb
    W["layers"] = []
    for i in range(cfg.n_layers):
        p = "model.layers.%d." % i
        L = {"attn_norm": st[p + "input_layernorm.weight"],
             "ffn_norm": st[p + "post_attention_layernorm.weight"],
             "wq": st[p + "self_attn.q_proj.weight"], "wk": st[p + "self_attn.k_proj.weight"],
             "wv": st[p + "self_attn.v_proj.weight"], "wo": st[p + "self_attn.o_proj.weight"],
             "w_gate": st[p + "mlp.gate_proj.weight"], "w_up": st[p + "mlp.up_proj.weight"],
             "w_down": st[p + "mlp.down_proj.weight"]}
        for k, n in [("bq", "q_proj"), ("bk", "k_proj"), ("bv", "v_proj"), ("bo", "o_proj")]:
            if p + "self_attn." + n + ".bias" in st:
                L[k] = st[p + "self_attn." + n + ".bias"]
        W["layers"].append(L)
    return cfg, W


# ------------------------------------------------------------------ GGUF -> HF

def permute_gguf(w, n_head):
    """llama.cpp convert_hf_to_gguf's permute (HF order -> GGUF order)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute_gguf(w, n_head):
    """Inverse of permute_gguf (GGUF order -> HF order). Works for biases (1-D) too."""
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_to_hf(cfg, W, llama3_params=None):
    """-> (tensors dict in HF names, config dict)."""
    if cfg.rope_dim != cfg.head_dim:
        raise ValueError("partial rotary (rope dim %d < head dim %d) has no HF Llama/Qwen2 equivalent"
                         % (cfg.rope_dim, cfg.head_dim))
    perm = cfg.arch == "llama"
    tied = W["output"] is W["tok_embd"]
    T = {"model.embed_tokens.weight": W["tok_embd"], "model.norm.weight": W["output_norm"]}
    if not tied:
        T["lm_head.weight"] = W["output"]
    for i, L in enumerate(W["layers"]):
        p = "model.layers.%d." % i
        wq, wk = L["wq"], L["wk"]
        bq, bk = L.get("bq"), L.get("bk")
        if perm:
            wq, wk = unpermute_gguf(wq, cfg.n_head), unpermute_gguf(wk, cfg.n_kv)
            bq = None if bq is None else unpermute_gguf(bq, cfg.n_head)
            bk = None if bk is None else unpermute_gguf(bk, cfg.n_kv)
        T.update({p + "input_layernorm.weight": L["attn_norm"],
                  p + "post_attention_layernorm.weight": L["ffn_norm"],
                  p + "self_attn.q_proj.weight": wq, p + "self_attn.k_proj.weight": wk,
                  p + "self_attn.v_proj.weight": L["wv"], p + "self_attn.o_proj.weight": L["wo"],
                  p + "mlp.gate_proj.weight": L["w_gate"], p + "mlp.up_proj.weight": L["w_up"],
                  p + "mlp.down_proj.weight": L["w_down"]})
        for k, n, v in [("bq", "q_proj", bq), ("bk", "k_proj", bk), ("bv", "v_proj", L.get("bv")),
                        ("bo", "o_proj", L.get("bo"))]:
            if v is not None:
                T[p + "self_attn." + n + ".bias"] = v
    if cfg.arch == "qwen2" and any(("bo" in L) or ("bq" not in L) for L in W["layers"]):
        raise ValueError("Qwen2 HF models have q/k/v biases and no o_proj bias")
    if cfg.arch == "llama":
        has_b = ["bq" in L for L in W["layers"]]
        if any(has_b) and not all(("bq" in L and "bk" in L and "bv" in L and "bo" in L) for L in W["layers"]):
            raise ValueError("HF Llama attention_bias needs q/k/v/o biases on every layer")
    T = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in T.items()}
    conf = {
        "architectures": ["LlamaForCausalLM" if cfg.arch == "llama" else "Qwen2ForCausalLM"],
        "model_type": cfg.arch,
        "hidden_size": cfg.dim,
        "intermediate_size": cfg.ffn,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.ctx,
        "rms_norm_eps": float(cfg.eps),
        "rope_theta": float(cfg.rope_base),
        "vocab_size": cfg.vocab,
        "tie_word_embeddings": bool(tied),
        "bos_token_id": cfg.bos,
        "eos_token_id": cfg.eos,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "torch_dtype": "float32",
        "rope_scaling": None,
    }
    if cfg.arch == "llama":
        conf.update({"attention_bias": bool("bq" in W["layers"][0]), "mlp_bias": False,
                     "pretraining_tp": 1})
    else:
        conf.update({"use_sliding_window": False, "sliding_window": cfg.ctx,
                     "max_window_layers": cfg.n_layers})
    if cfg.rope_freqs is not None:
        p = dict(LLAMA3_DEFAULT)
        if llama3_params:
            p.update(zip(["factor", "low_freq_factor", "high_freq_factor",
                          "original_max_position_embeddings"], llama3_params))
        scaled, plain = llama3_inv_freq_hf(cfg.head_dim, cfg.rope_base, **p)
        want = plain / scaled
        got = np.asarray(cfg.rope_freqs, np.float64)
        if got.shape != want.shape or np.abs(got / want - 1).max() > 1e-5:
            raise ValueError("rope_freqs.weight does not match llama3 parameters %r; "
                             "pass --llama3-params" % (p,))
        conf["rope_scaling"] = dict(rope_type="llama3", factor=float(p["factor"]),
                                    low_freq_factor=float(p["low_freq_factor"]),
                                    high_freq_factor=float(p["high_freq_factor"]),
                                    original_max_position_embeddings=int(p["original_max_position_embeddings"]))
    return T, conf


def export(gguf_path, outdir, llama3_params=None):
    cfg, W, _ = ref_llama.load_gguf(gguf_path)
    T, conf = gguf_to_hf(cfg, W, llama3_params)
    os.makedirs(outdir, exist_ok=True)
    write_safetensors(os.path.join(outdir, "model.safetensors"), T)
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    with open(os.path.join(outdir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": cfg.bos, "eos_token_id": cfg.eos, "do_sample": False}, f, indent=2)
        f.write("\n")
    return cfg, T, conf


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("outdir")
    ap.add_argument("--llama3-params", help="FACTOR,LOW,HIGH,ORIG_CTX (default 8,1,4,8192)")
    a = ap.parse_args(argv)
    lp = None
    if a.llama3_params:
        v = [float(x) for x in a.llama3_params.split(",")]
        if len(v) != 4:
            ap.error("--llama3-params needs 4 values")
        lp = v[:3] + [int(v[3])]
    cfg, T, conf = export(a.model, a.outdir, lp)
    print("wrote %s/model.safetensors (%d tensors) and config.json (%s)"
          % (a.outdir, len(T), conf["architectures"][0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
