#!/usr/bin/env python3
"""Compare logits files against Hugging Face transformers on an exported checkpoint.

    hf_compare.py OUTDIR --tokens 1,5,9 --logits engine.f32 [--logits ref.f32 ...]
                  [--out hf.f32] [--f64] [--device cpu|cuda] [--tol 1e-2]

OUTDIR is what hf_export.py wrote (config.json + model.safetensors). Each --logits file is
raw little-endian float32 [n_tokens][n_vocab] for the same --tokens (as written by
ref_llama.py --out or the engine). Prints, per file, the max abs error against the HF logits,
the max error relative to the HF logits' std, and the argmax agreement; exits 1 if any
max abs error exceeds --tol.

Needs torch + transformers (not used by the other tools). Notes: the engine keeps K/V in an
fp16 cache (ref_llama.py mimics that by default, HF does not), so engine/ref vs HF differ by
fp16 rounding (~1e-3 relative) on top of the engine's own float error; ref_llama.py
--no-kv-f16 gives the exact-math reference (vs HF --f64 it should agree to ~1e-6 or better).
"""
import argparse
import sys

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--logits", action="append", default=[], help="raw f32 logits file (repeatable)")
    ap.add_argument("--out", help="write the HF logits here (raw f32)")
    ap.add_argument("--f64", action="store_true", help="run the HF model in float64")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tol", type=float, default=1e-2)
    a = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    tokens = [int(t) for t in a.tokens.split(",") if t.strip()]
    dtype = torch.float64 if a.f64 else torch.float32
    # no dtype argument (its name changed between transformers 4 and 5): load, then cast
    model = AutoModelForCausalLM.from_pretrained(a.outdir, attn_implementation="eager")
    model = model.to(device=a.device, dtype=dtype).eval()
    with torch.no_grad():
        ids = torch.tensor([tokens], dtype=torch.long, device=a.device)
        hf = model(input_ids=ids, use_cache=False).logits[0].double().cpu().numpy()
    n, vocab = hf.shape
    print("HF %s (%s): %d tokens x %d vocab, logits std %.4f"
          % (type(model).__name__, "f64" if a.f64 else "f32", n, vocab, hf.std()))
    if a.out:
        hf.astype("<f4").tofile(a.out)
        print("wrote", a.out)
    bad = False
    for path in a.logits:
        x = np.fromfile(path, dtype="<f4").astype(np.float64)
        if x.size != n * vocab:
            print("%s: %d floats, expected %d x %d" % (path, x.size, n, vocab))
            bad = True
            continue
        x = x.reshape(n, vocab)
        err = np.abs(x - hf)
        agree = (x.argmax(1) == hf.argmax(1)).mean()
        print("%s: max abs err %.3g (pos %d), max err / std %.3g, mean abs err %.3g, argmax agree %.0f%%"
              % (path, err.max(), int(err.max(1).argmax()), err.max() / hf.std(), err.mean(), agree * 100))
        bad = bad or err.max() > a.tol
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
