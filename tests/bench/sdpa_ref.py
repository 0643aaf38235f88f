#!/usr/bin/env python3
"""Reference for tests/bench/cuda_bench.c: full causal flash attention (PyTorch SDPA, bf16)
of one Llama-3.1-8B attention layer (32 query heads, 8 KV heads, head dim 128) over T tokens.

    sdpa_ref.py [--out FILE] [--max-t 1048576]

Prints one line per T and writes "T ms" lines to FILE (read by cuda_bench --sdpa FILE)."""
import argparse
import sys
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--max-t", type=int, default=1 << 20)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIP sdpa_ref: no CUDA device")
        return 0
    from torch.nn.attention import SDPBackend, sdpa_kernel
    dev = "cuda"
    H, HKV, D = 32, 8, 128
    Ts = [t for t in (4096, 16384, 65536, 262144, 1048576) if t <= a.max_t]
    lines = []
    print("torch", torch.__version__, torch.cuda.get_device_name(0), flush=True)
    gqa_native = True
    for T in Ts:
        torch.manual_seed(T)
        q = torch.randn(1, H, T, D, device=dev, dtype=torch.bfloat16)
        k = torch.randn(1, HKV, T, D, device=dev, dtype=torch.bfloat16)
        v = torch.randn(1, HKV, T, D, device=dev, dtype=torch.bfloat16)

        def run():
            nonlocal gqa_native
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                if gqa_native:
                    try:
                        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
                    except Exception as e:  # older torch / backend without GQA
                        print("  enable_gqa unavailable with the flash backend (%s); expanding K/V" % type(e).__name__, flush=True)
                        gqa_native = False
                ke = k.repeat_interleave(H // HKV, dim=1)
                ve = v.repeat_interleave(H // HKV, dim=1)
                return F.scaled_dot_product_attention(q, ke, ve, is_causal=True)

        o = run()
        torch.cuda.synchronize()
        assert torch.isfinite(o).all().item()
        del o
        reps = 3 if T <= 65536 else 1
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(reps):
            s.record()
            o = run()
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e))
            del o
        times.sort()
        ms = times[len(times) // 2]
        flops = 4.0 * H * D * T * (T + 1) / 2
        print("SDPA flash causal T=%d: %.3f ms (%.1f TFLOP/s useful)%s" % (T, ms, flops / ms / 1e9, "" if gqa_native else " [K/V expanded]"), flush=True)
        lines.append("%d %.4f\n" % (T, ms))
        del q, k, v
        torch.cuda.empty_cache()
    if a.out:
        with open(a.out, "w") as f:
            f.writelines(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
