#!/usr/bin/python3
"""Logits of a Hugging Face checkpoint (model.safetensors + config.json) read with numpy,
HF conventions (unpermuted Q/K, NEOX rope), no transformers needed:
    hf_logits.py HF_DIR --tokens 1,5,9 --out logits.f32
Writes float32 [n_tokens][vocab]."""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_export  # noqa: E402
import ref_llama  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hfdir")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg, W = hf_export.load_hf(a.hfdir)
    toks = [int(t) for t in a.tokens.split(",")]
    lg = ref_llama.forward(cfg, W, toks, kv_f16=None)
    np.asarray(lg, np.float32).tofile(a.out)


if __name__ == "__main__":
    main()
