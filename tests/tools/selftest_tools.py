#!/usr/bin/python3
"""Self-test of the numerical-reference tools (quants, GGUF I/O, mkmodel, ref_llama, hf_export).

    /usr/bin/python3 tests/tools/selftest_tools.py [--models DIR]

Prints one line per check and exits 1 if any failed. --models is the folder with the real
models (default: ../shared/models next to the repository root); the real-model checks are
skipped (visibly) when it is missing.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import quants  # noqa: E402
import gguf_writer as gw  # noqa: E402
import mkmodel  # noqa: E402
import ref_llama  # noqa: E402
import hf_export  # noqa: E402

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""))
    sys.stdout.flush()
    return ok


# ------------------------------------------------------------------ 1. quants

def test_quants():
    print("== quants (round trip bounds, dequantizer vs literal C-loop transcription)")
    ok = quants.selftest(verbose=True)
    check("quants.selftest", ok)


# ------------------------------------------------------------------ 2. GGUF writer/reader

def test_gguf_io(tmp):
    print("== GGUF writer/reader")
    G = gw.GGUF
    vals = [("u8", 200, G.UINT8), ("i8", -100, G.INT8), ("u16", 60000, G.UINT16), ("i16", -30000, G.INT16),
            ("u32", 4000000000, G.UINT32), ("i32", -2000000000, G.INT32), ("f32", 1.5, G.FLOAT32),
            ("b", True, G.BOOL), ("s", "h\u00e9llo \u2581world", G.STRING),
            ("u64", 2**63 + 5, G.UINT64), ("i64", -2**62, G.INT64), ("f64", 1e-300, G.FLOAT64)]
    for ver, align in [(3, 32), (2, 64), (3, 8)]:
        p = os.path.join(tmp, "io_v%d_a%d.gguf" % (ver, align))
        w = gw.GGUFWriter(p, version=ver, alignment=align)
        for k, v, t in vals:
            w.add("t." + k, v, t)
        w.add("t.strs", ["a", "", "\u2581b", "<0x0A>"], G.ARRAY, G.STRING)
        w.add("t.f32s", [0.5, -1.0, 3.25], G.ARRAY, G.FLOAT32)
        w.add("t.i32s", np.arange(5), G.ARRAY, G.INT32)
        w.add("t.bools", [True, False], G.ARRAY, G.BOOL)
        w.add("t.nested", [(G.INT32, [1, 2]), (G.STRING, ["x"])], G.ARRAY, G.ARRAY)
        w.add("t.empty", [], G.ARRAY, G.UINT8)
        a = np.arange(12, dtype=np.float32).reshape(3, 4)
        w.add_tensor("a", a, [4, 3], 0)
        q = quants.quantize(np.linspace(-1, 1, 64, dtype=np.float32), "Q8_0")
        w.add_tensor("b", q, [64], 8)
        w.add_tensor("c", np.ones(7, np.float32), [7], 0)      # odd size: padding needed
        w.write()
        g = gw.GGUFFile(p)
        good = g.version == ver and g.alignment == align
        for k, v, t in vals:
            got = g.kv["t." + k]
            good = good and g.kv_types["t." + k][0] == t and (got == v or (t == G.FLOAT32 and abs(got - v) < 1e-7))
        good = good and g.kv["t.strs"] == ["a", "", "\u2581b", "<0x0A>"]
        good = good and np.array_equal(g.kv["t.f32s"], np.float32([0.5, -1.0, 3.25]))
        good = good and np.array_equal(g.kv["t.i32s"], np.arange(5)) and list(g.kv["t.bools"]) == [True, False]
        good = good and [list(x) for x in g.kv["t.nested"]] == [[1, 2], ["x"]] and len(g.kv["t.empty"]) == 0
        ta, tb, tc = g.tensors["a"], g.tensors["b"], g.tensors["c"]
        good = good and ta.ne == [4, 3] and np.array_equal(ref_llama.tensor_f32(ta), a)
        good = good and tb.type == 8 and bytes(tb.data) == bytes(q) and np.array_equal(ref_llama.tensor_f32(tc), np.ones(7))
        good = good and all(t.offset % align == 0 for t in g.tensors.values()) and g.data_start % align == 0
        good = good and os.path.getsize(p) % align == 0
        check("gguf v%d alignment %d: all value types, string/nested arrays, tensors, offsets" % (ver, align), good)
    # byte-level header check against the spec
    p = os.path.join(tmp, "tiny.gguf")
    w = gw.GGUFWriter(p, version=3, write_alignment_key=False)
    w.add("k", 7, G.UINT32)
    w.add_tensor("t", np.zeros(1, np.float32), [1], 0)
    w.write()
    b = open(p, "rb").read()
    want = (b"GGUF" + (3).to_bytes(4, "little") + (1).to_bytes(8, "little") + (1).to_bytes(8, "little")
            + (1).to_bytes(8, "little") + b"k" + (4).to_bytes(4, "little") + (7).to_bytes(4, "little")
            + (1).to_bytes(8, "little") + b"t" + (1).to_bytes(4, "little") + (1).to_bytes(8, "little")
            + (0).to_bytes(4, "little") + (0).to_bytes(8, "little"))
    want += b"\0" * (-len(want) % 32) + b"\0" * 32
    check("gguf header bytes exactly as the spec lays them out", b == want, "%d bytes" % len(b))


# ------------------------------------------------------------------ 3. rope / forward properties

def test_rope_props():
    print("== RoPE and forward-pass properties")
    rng = np.random.default_rng(5)
    for mode in ("norm", "neox"):
        for rd, ff in [(16, None), (8, None), (16, mkmodel.llama3_rope_factors(16, 10000.0).astype(np.float64))]:
            cfg = ref_llama.Config(head_dim=16, rope_dim=rd, rope_mode=mode, rope_base=10000.0, rope_freqs=ff)
            q = rng.standard_normal((1, 1, 16))
            k = rng.standard_normal((1, 1, 16))
            d = []
            for p1, p2 in [(3, 1), (10, 8), (40, 38)]:
                a = ref_llama.rope(q, [p1], cfg, np.float64)
                b = ref_llama.rope(k, [p2], cfg, np.float64)
                d.append(float((a * b).sum()))
            norm_kept = abs(np.linalg.norm(ref_llama.rope(q, [17], cfg, np.float64)) - np.linalg.norm(q)) < 1e-12
            tail_kept = np.array_equal(ref_llama.rope(q, [17], cfg, np.float64)[..., rd:], q[..., rd:])
            check("rope %s rope_dim %d%s: relative-position invariance, norm kept, tail untouched"
                  % (mode, rd, " +llama3 freqs" if ff is not None else ""),
                  max(d) - min(d) < 1e-12 and norm_kept and tail_kept, "spread %.2g" % (max(d) - min(d)))
    # norm mode on permuted rows == neox on HF rows (full rotary)
    hd, nh = 16, 2
    cfg_n = ref_llama.Config(head_dim=hd, rope_dim=hd, rope_mode="norm", rope_base=10000.0)
    cfg_x = ref_llama.Config(head_dim=hd, rope_dim=hd, rope_mode="neox", rope_base=10000.0)
    wh = rng.standard_normal((nh * hd, 8))
    wg = hf_export.permute_gguf(wh, nh)
    x = rng.standard_normal(8)
    a = hf_export.unpermute_gguf(ref_llama.rope((wg @ x).reshape(1, nh, hd), [5], cfg_n, np.float64).reshape(-1), nh)
    b = ref_llama.rope((wh @ x).reshape(1, nh, hd), [5], cfg_x, np.float64).reshape(-1)
    check("rope: normal mode on GGUF-permuted rows == NEOX mode on HF rows", np.abs(a - b).max() < 1e-12)
    check("permute/unpermute are inverse", np.array_equal(hf_export.unpermute_gguf(wg, nh), wh))


# ------------------------------------------------------------------ 4. mkmodel + ref + HF export

def mk(tmp, name, *args):
    p = os.path.join(tmp, name + ".gguf")
    a = mkmodel.parser().parse_args(["--out", p] + list(args))
    if a.kv_heads is None:
        a.kv_heads = a.heads
    mkmodel.build(a)
    return p


def test_models(tmp):
    print("== mkmodel: every weight type (same seed, logits vs the F32 model)")
    toks = [1, 5, 9, 300, 301, 302, 400, 2, 77, 510]
    base = None
    order = ["F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_1", "Q5_0", "Q5_K", "Q4_1", "Q4_0", "Q4_K"]
    # bound on rms(logit - F32 logit) / std(logit) per type. The random 2-layer nets amplify
    # weight error ~3x (measured: each weight group adds about its own relative error), so a
    # wrong dequantizer (error ~ 1) is far outside these, correct ones well inside.
    bound = {"F32": 0, "F16": 0.003, "BF16": 0.015, "Q8_0": 0.06, "Q6_K": 0.15, "Q5_1": 0.3, "Q5_0": 0.3,
             "Q5_K": 0.3, "Q4_1": 0.6, "Q4_0": 0.6, "Q4_K": 0.6}
    for t in order:
        p = mk(tmp, "t_" + t, "--type", t, "--heads", "4", "--kv-heads", "2", "--seed", "3")
        cfg, W, g = ref_llama.load_gguf(p)
        lg = ref_llama.forward(cfg, W, toks)
        if base is None:
            base = lg
        rel = np.sqrt(((lg - base) ** 2).mean()) / base.std()
        nontriv = lg.std() > 0.3 and np.isfinite(lg).all()
        types_ok = all(g.tensors[n].type_name == t for n in g.tensors if n.endswith(".weight")
                       and len(g.tensors[n].ne) == 2)
        check("mkmodel --type %-4s: loads, 2-D weights are %s, logits std %.2f, rms dlogit/std vs F32 %.4f (<= %g), "
              "max %.3f" % (t, t, lg.std(), rel, bound[t], np.abs(lg - base).max()),
              nontriv and types_ok and rel <= bound[t])
    # activation fake-quantization (opt-in): no-op on F32 weights, small and nonzero on quantized
    cfg, W, _ = ref_llama.load_gguf(os.path.join(tmp, "t_F32.gguf"))
    check("--act-quant ggml/q8_0 leave an F32 model unchanged",
          all(np.array_equal(ref_llama.forward(cfg, W, toks), ref_llama.forward(cfg, W, toks, act_quant=m))
              for m in ("ggml", "q8_0")))
    for t in ("Q8_0", "Q4_K"):
        cfg, W, _ = ref_llama.load_gguf(os.path.join(tmp, "t_%s.gguf" % t))
        l0 = ref_llama.forward(cfg, W, toks)
        for m in ("q8_0", "ggml"):
            d = np.abs(ref_llama.forward(cfg, W, toks, act_quant=m) - l0)
            check("--act-quant %s on a %s model: max|dlogit|/sd %.3f, rms/sd %.4f (8-bit activations)"
                  % (m, t, d.max() / l0.std(), np.sqrt((d ** 2).mean()) / l0.std()),
                  0 < d.max() / l0.std() < 0.4)
    # causality: the logits of a prefix do not depend on later tokens
    cfg, W, _ = ref_llama.load_gguf(os.path.join(tmp, "t_Q4_K.gguf"))
    a = ref_llama.forward(cfg, W, toks)
    b = ref_llama.forward(cfg, W, toks[:4])
    check("forward is causal (prefix logits unchanged by later tokens)", np.abs(a[:4] - b).max() < 1e-12)
    c = ref_llama.forward(cfg, W, toks, kv_f16=None)
    check("fp16 KV rounding changes logits only slightly", 0 < np.abs(a - c).max() < 0.02,
          "max diff %.2g" % np.abs(a - c).max())
    # partial rotary and rope_freqs do change the output
    p = mk(tmp, "partial", "--rope-dim", "32", "--seed", "3", "--kv-heads", "2")
    cfg, W, _ = ref_llama.load_gguf(p)
    check("partial rotary model (rope.dimension_count 32 < head dim 64) loads and runs",
          cfg.rope_dim == 32 and np.isfinite(ref_llama.forward(cfg, W, toks)).all())

    print("== hf_export: GGUF -> HF safetensors -> numpy HF forward (NEOX, unpermuted)")
    variants = [
        ("llama Q8_0 GQA llama3-rope", ["--type", "Q8_0", "--kv-heads", "2", "--rope-scaling", "llama3",
                                        "--rope-base", "500000"]),
        ("llama Q4_K tied F32-embd", ["--type", "Q4_K", "--tied", "--f32-embd", "--heads", "8", "--kv-heads", "2"]),
        ("qwen2 Q6_K biases tied", ["--arch", "qwen2", "--type", "Q6_K", "--tied", "--kv-heads", "1"]),
        ("qwen2 F16 v2 align64", ["--arch", "qwen2", "--type", "F16", "--gguf-version", "2", "--alignment", "64"]),
    ]
    for i, (name, args) in enumerate(variants):
        p = mk(tmp, "hf%d" % i, *args)
        out = os.path.join(tmp, "hf%d" % i)
        cfg, T, conf = hf_export.export(p, out)
        st, meta = hf_export.read_safetensors(os.path.join(out, "model.safetensors"))
        # weights equal GGUF dequantized ones after re-permutation
        cfg_g, W, g = ref_llama.load_gguf(p)
        same = set(st) == set(T)
        perm = (lambda w, n: hf_export.permute_gguf(w, n)) if cfg.arch == "llama" else (lambda w, n: w)
        for l in range(cfg.n_layers):
            pre = "model.layers.%d.self_attn." % l
            L = W["layers"][l]
            same = same and np.array_equal(perm(st[pre + "q_proj.weight"], cfg.n_head), L["wq"])
            same = same and np.array_equal(perm(st[pre + "k_proj.weight"], cfg.n_kv), L["wk"])
            same = same and np.array_equal(st[pre + "v_proj.weight"], L["wv"])
            if "bq" in L:
                same = same and np.array_equal(perm(st[pre + "q_proj.bias"], cfg.n_head), L["bq"])
                same = same and np.array_equal(perm(st[pre + "k_proj.bias"], cfg.n_kv), L["bk"])
        same = same and np.array_equal(st["model.embed_tokens.weight"], W["tok_embd"])
        same = same and (("lm_head.weight" in st) != conf["tie_word_embeddings"])
        check("%s: safetensors read back == GGUF dequantized weights (re-permuted)" % name, same,
              "%d tensors, config %s" % (len(st), conf["architectures"][0]))
        ch, Wh = hf_export.load_hf(out)
        lg = ref_llama.forward(cfg_g, W, toks)
        lh = ref_llama.forward(ch, Wh, toks)
        err = np.abs(lg - lh).max()
        check("%s: ref on GGUF (%s rope) == ref on HF export (neox rope%s)"
              % (name, cfg_g.rope_mode, ", llama3 freqs from config" if ch.rope_freqs is not None else ""),
              err < 1e-9, "max |dlogit| %.2g" % err)
    try:
        hf_export.export(os.path.join(tmp, "partial.gguf"), os.path.join(tmp, "hfp"))
        check("hf_export refuses partial rotary", False)
    except ValueError:
        check("hf_export refuses partial rotary", True)


# ------------------------------------------------------------------ 5. real models

def test_real(models):
    print("== real models in %s" % models)
    s260 = os.path.join(models, "stories260K.gguf")
    q8 = os.path.join(models, "TinyStories-656K-Q8_0.gguf")
    hfdir = os.path.join(models, "TinyStories-656K-hf")
    if not all(os.path.exists(p) for p in (s260, q8, hfdir)):
        print("SKIP real-model checks: models not found")
        return
    cfg, W, g = ref_llama.load_gguf(s260)
    ids = ref_llama.greedy(cfg, W, [1], 40)
    text = ref_llama.detok(g, ids)
    check("stories260K greedy from BOS", text.startswith("Once upon a time, there was a little girl named Lily."),
          repr(text[:80]))
    cfg, W, g = ref_llama.load_gguf(q8)
    ids = ref_llama.greedy(cfg, W, [1], 40)
    text = ref_llama.detok(g, ids)
    check("TinyStories-656K-Q8_0 greedy from BOS",
          text.startswith("Once upon a time, there was a little girl named Lily. She had a toy car"),
          repr(text[:80]))
    # Q8_0 bytes: re-quantizing the HF F32 weights (in GGUF order) gives llama.cpp's bytes
    st, _ = hf_export.read_safetensors(os.path.join(hfdir, "model.safetensors"))
    st.setdefault("model.embed_tokens.weight", st.get("lm_head.weight"))
    hfname = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj"}
    n_same = n_all = 0
    maxrel = 0.0
    for name, t in g.tensors.items():
        if t.type != 8:
            continue
        parts = name.split(".")
        if parts[0] == "blk":
            w = st["model.layers.%s.%s.weight" % (parts[1], hfname[parts[2]])]
            if parts[2] == "attn_q":
                w = hf_export.permute_gguf(w, cfg.n_head)
            elif parts[2] == "attn_k":
                w = hf_export.permute_gguf(w, cfg.n_kv)
        else:
            w = st["model.embed_tokens.weight"]
        qb = quants.quantize(w, "Q8_0")
        a = np.asarray(t.data)
        n_same += int((qb == a).sum())
        n_all += a.size
        d = ref_llama.tensor_f32(t)
        maxrel = max(maxrel, float(np.abs(d - w).max() / np.abs(w).max()))
    check("quants.quantize(HF F32, Q8_0) reproduces llama.cpp's Q8_0 bytes of all 15 tensors",
          n_same == n_all, "%d/%d bytes equal" % (n_same, n_all))
    check("GGUF Q8_0 dequantized (re-permuted) vs HF F32 weights", maxrel < 0.0045,
          "max |dw| / max|w| = %.5f (Q8_0 bound 1/254 + fp16)" % maxrel)
    ch, Wh = hf_export.load_hf(hfdir)
    toks = [1, 147, 201, 282, 215, 286, 598, 1662, 356, 499, 826, 1363, 1145, 1652, 615, 242, 1482, 951, 628, 499,
            826, 872, 921, 318, 385, 628, 499, 826, 617, 242]
    lg = ref_llama.forward(cfg, W, toks, kv_f16=None)
    lh = ref_llama.forward(ch, Wh, toks, kv_f16=None)
    err = np.abs(lg - lh).max()
    agree = (lg.argmax(1) == lh.argmax(1)).mean()
    check("ref(GGUF Q8_0, normal rope) vs numpy HF forward (F32 safetensors, NEOX rope, unpermuted)",
          err < 0.1 * lh.std() and agree == 1.0,
          "max |dlogit| %.4f, logit std %.3f, argmax agree %.0f%%" % (err, lh.std(), 100 * agree))
    # with the HF weights put through the Q8_0 round trip the two paths must agree to float precision
    Wq = dict(Wh)
    qd = lambda w: quants.dequantize(quants.quantize(w, "Q8_0"), "Q8_0", w.size).reshape(w.shape)
    Wq["tok_embd"] = Wq["output"] = qd(Wh["tok_embd"])
    Wq["layers"] = [{k: (qd(v) if v.ndim == 2 else v) for k, v in L.items()} for L in Wh["layers"]]
    lq = ref_llama.forward(ch, Wq, toks, kv_f16=None)
    err2 = np.abs(lg - lq).max()
    check("ref(GGUF Q8_0) vs numpy HF forward on Q8_0-round-tripped HF weights", err2 < 1e-4,
          "max |dlogit| %.2g" % err2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "models")))
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args()
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="crtools_")
    try:
        test_quants()
        test_gguf_io(tmp)
        test_rope_props()
        test_models(tmp)
        test_real(a.models)
    finally:
        if a.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    n_fail = RESULTS.count(False)
    print("%d checks, %d failed, %.1f s" % (len(RESULTS), n_fail, time.time() - t0))
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
