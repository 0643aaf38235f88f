#!/usr/bin/python3
"""Write a random-weight tiny Llama-family model as GGUF (for engine-vs-reference tests).

    mkmodel.py --out tiny.gguf [--arch llama|qwen2] [--type Q4_K] [--dim 256] [--layers 2]
               [--heads 4] [--kv-heads 2] [--ffn 512] [--vocab 512] [--ctx 256]
               [--rope-base 10000] [--rms-eps 1e-5] [--rope-dim N] [--rope-scaling llama3]
               [--tied] [--f32-embd | --embd-type T] [--output-type T] [--seed 1]
               [--gguf-version 3] [--alignment 32] [--no-alignment-key] [--head-dim N]

--type applies to the 2-D weight matrices (attn_q/k/v/output, ffn_gate/up/down, output,
token_embd); norms, biases and rope_freqs stay F32. Types: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0
Q5_1 Q4_K Q5_K Q6_K. Row lengths (dim, ffn for ffn_down, n_head*head_dim for attn_output)
must be multiples of 256 for K-quants and of 32 for the other block types.

Metadata keys and tensor names are those llama.cpp's convert_hf_to_gguf.py writes.
--rope-scaling llama3 adds the F32 tensor rope_freqs.weight (n_rot/2 factors) computed as
convert_hf_to_gguf.py does for Llama 3.1 (factor 8, low_freq_factor 1, high_freq_factor 4,
original context 8192); like the converter, it writes no rope.scaling.* keys for it.
Vocab: <unk>, <s>, </s>, <0x00>..<0xFF>, then filler pieces; bos=1, eos=2, unk=0.
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_writer import GGUF, GGUFWriter, GGML_TYPE_ID  # noqa: E402
import quants  # noqa: E402

KQUANT_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]
# llama_ftype of llama.cpp for general.file_type (K-quants: the *_M mixes' ids)
FILE_TYPE = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9,
             "Q4_K": 15, "Q5_K": 17, "Q6_K": 18, "BF16": 32}


def llama3_rope_factors(n_rot, base, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                        old_context_len=8192):
    """rope_freqs.weight exactly as convert_hf_to_gguf.py's LlamaModel computes it."""
    freqs = 1.0 / (base ** (np.arange(0, n_rot, 2, dtype=np.float32) / n_rot))
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < high_freq_wavelen:
            out.append(1)
        elif wavelen > low_freq_wavelen:
            out.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def make_vocab(n):
    if n < 259:
        raise ValueError("vocab must be >= 259 (3 specials + 256 byte tokens)")
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    ttype = [2, 3, 3] + [6] * 256
    i = 0
    while len(toks) < n:
        # bijective base-26 letters: a..z, aa, ab, ... ; alternate a leading '\u2581' (space)
        k, s = i + 1, ""
        while k:
            k, r = divmod(k - 1, 26)
            s = chr(97 + r) + s
        toks.append(("\u2581" + s) if i % 2 == 0 else s)
        ttype.append(1)
        i += 1
    scores = [0.0] * 259 + [-float(j) for j in range(n - 259)]
    return toks, np.array(scores, np.float32), np.array(ttype, np.int32)


def check_row(name, n, t):
    blk = quants.TYPES[t][1]
    if n % blk:
        raise SystemExit("mkmodel: %s has rows of %d values, not a multiple of %d as %s needs"
                         % (name, n, blk, t))


def build(a):
    rng = np.random.default_rng(a.seed)
    arch = a.arch
    hd = a.head_dim or a.dim // a.heads
    if not a.head_dim and a.dim % a.heads:
        raise SystemExit("mkmodel: dim must be a multiple of heads")
    if a.heads % a.kv_heads:
        raise SystemExit("mkmodel: heads must be a multiple of kv-heads")
    rope_dim = a.rope_dim or hd
    if rope_dim > hd or rope_dim % 2:
        raise SystemExit("mkmodel: rope-dim must be even and <= head dim")
    embd_type = "F32" if a.f32_embd else (a.embd_type or a.type)
    out_type = a.output_type or a.type
    nq, nkv = a.heads * hd, a.kv_heads * hd

    w = GGUFWriter(a.out, version=a.gguf_version, alignment=a.alignment,
                   write_alignment_key=not a.no_alignment_key)
    w.add("general.architecture", arch)
    w.add("general.name", "cascade-read tiny random %s %s" % (arch, a.type))
    w.add("general.file_type", FILE_TYPE[a.type], GGUF.UINT32)
    if a.type not in ("F32", "F16", "BF16"):
        w.add("general.quantization_version", 2, GGUF.UINT32)
    U = GGUF.UINT32
    w.add(arch + ".vocab_size", a.vocab, U)
    w.add(arch + ".context_length", a.ctx, U)
    w.add(arch + ".embedding_length", a.dim, U)
    w.add(arch + ".block_count", a.layers, U)
    w.add(arch + ".feed_forward_length", a.ffn, U)
    w.add(arch + ".attention.head_count", a.heads, U)
    w.add(arch + ".attention.head_count_kv", a.kv_heads, U)
    if a.head_dim:
        w.add(arch + ".attention.key_length", hd, U)
        w.add(arch + ".attention.value_length", hd, U)
    w.add(arch + ".attention.layer_norm_rms_epsilon", a.rms_eps, GGUF.FLOAT32)
    w.add(arch + ".rope.freq_base", a.rope_base, GGUF.FLOAT32)
    w.add(arch + ".rope.dimension_count", rope_dim, U)
    toks, scores, ttype = make_vocab(a.vocab)
    w.add("tokenizer.ggml.model", "llama")
    w.add("tokenizer.ggml.tokens", toks, GGUF.ARRAY, GGUF.STRING)
    w.add("tokenizer.ggml.scores", scores, GGUF.ARRAY, GGUF.FLOAT32)
    w.add("tokenizer.ggml.token_type", ttype, GGUF.ARRAY, GGUF.INT32)
    w.add("tokenizer.ggml.bos_token_id", 1, U)
    w.add("tokenizer.ggml.eos_token_id", 2, U)
    w.add("tokenizer.ggml.unknown_token_id", 0, U)
    w.add("tokenizer.ggml.add_bos_token", True, GGUF.BOOL)
    w.add("tokenizer.ggml.add_eos_token", False, GGUF.BOOL)

    def mat(name, n_out, n_in, std, t):
        if a.fallback and n_in % 256 and t in KQUANT_FALLBACK:
            t = KQUANT_FALLBACK[t]       # what llama-quantize does for rows K-quants can't hold
        check_row(name, n_in, t)
        x = (rng.standard_normal((n_out, n_in)) * std).astype(np.float32)
        w.add_tensor(name, quants.quantize(x, t), [n_in, n_out], GGML_TYPE_ID[t])

    def vec(name, n, mean, std):
        x = (mean + rng.standard_normal(n) * std).astype(np.float32)
        w.add_tensor(name, x, [n], 0)

    mat("token_embd.weight", a.vocab, a.dim, 0.08, embd_type)
    if a.rope_scaling == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(rope_dim, a.rope_base), [rope_dim // 2], 0)
    for i in range(a.layers):
        p = "blk.%d." % i
        vec(p + "attn_norm.weight", a.dim, 1.0, 0.1)
        mat(p + "attn_q.weight", nq, a.dim, 0.08, a.type)
        mat(p + "attn_k.weight", nkv, a.dim, 0.08, a.type)
        mat(p + "attn_v.weight", nkv, a.dim, 0.05, a.type)
        if arch == "qwen2":
            vec(p + "attn_q.bias", nq, 0.0, 0.1)
            vec(p + "attn_k.bias", nkv, 0.0, 0.1)
            vec(p + "attn_v.bias", nkv, 0.0, 0.1)
        mat(p + "attn_output.weight", a.dim, nq, 0.05, a.type)
        vec(p + "ffn_norm.weight", a.dim, 1.0, 0.1)
        mat(p + "ffn_gate.weight", a.ffn, a.dim, 0.05, a.type)
        mat(p + "ffn_up.weight", a.ffn, a.dim, 0.05, a.type)
        mat(p + "ffn_down.weight", a.dim, a.ffn, 0.05, a.type)
    vec("output_norm.weight", a.dim, 1.0, 0.1)
    if not a.tied:
        mat("output.weight", a.vocab, a.dim, 0.08, out_type)
    w.write()
    return w


def parser():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default="llama", choices=["llama", "qwen2"])
    ap.add_argument("--type", default="F32", type=str.upper, choices=TYPES)
    ap.add_argument("--embd-type", type=str.upper, choices=TYPES, help="token_embd type (default --type)")
    ap.add_argument("--f32-embd", action="store_true", help="token_embd in F32")
    ap.add_argument("--output-type", type=str.upper, choices=TYPES, help="output.weight type (default --type)")
    ap.add_argument("--fallback", action="store_true",
                    help="K-quant rows not a multiple of 256 use llama.cpp's fallback type (Q4_K->Q5_0, ...)")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=None, help="default: heads")
    ap.add_argument("--head-dim", type=int, default=0, help="explicit head dim (writes key_length)")
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--rope-base", type=float, default=10000.0)
    ap.add_argument("--rms-eps", type=float, default=1e-5)
    ap.add_argument("--rope-dim", type=int, default=0, help="rope.dimension_count (default head dim)")
    ap.add_argument("--rope-scaling", choices=["none", "llama3"], default="none")
    ap.add_argument("--tied", action="store_true", help="no output.weight (tied embeddings)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gguf-version", type=int, default=3, choices=[2, 3])
    ap.add_argument("--alignment", type=int, default=32)
    ap.add_argument("--no-alignment-key", action="store_true",
                    help="omit general.alignment (then --alignment must be 32)")
    return ap


def main(argv=None):
    ap = parser()
    a = ap.parse_args(argv)
    if a.kv_heads is None:
        a.kv_heads = a.heads
    if a.no_alignment_key and a.alignment != 32:
        ap.error("--no-alignment-key needs the default alignment 32")
    build(a)
    print("wrote %s (%s, %s, dim %d, %d layers, %d/%d heads, ffn %d, vocab %d)"
          % (a.out, a.arch, a.type, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.vocab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
