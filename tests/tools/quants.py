#!/usr/bin/python3
"""numpy quantizers / dequantizers for ggml tensor types, byte-compatible with ggml.

Written from ggml's reference C code (quantize_row_*_ref / dequantize_row_* in
ggml/src/ggml-quants.c) and the block structs of ggml-common.h; independent of the
cascade-read C engine.

    quantize(x, "Q4_K")            -> np.uint8 array of packed blocks (x: float array whose
                                       last dimension is the row length; rows are independent)
    dequantize(raw, "Q4_K", n)     -> np.float32 array of n values (exact ggml semantics)
    TYPES                          -> name -> (ggml type id, block elems, block bytes)

Quantizers: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 follow ggml's *_ref code exactly
(same bytes, except Q5_1 clamps to 31, which ggml's ref only reaches by overflow).
Q4_K / Q5_K / Q6_K use a simpler scale search than ggml's make_qkx2_quants /
make_qx_quants (min/max per sub-block plus a +-1 search over the 6-bit scale/min codes),
so their bytes differ from llama-quantize's, but the encoding is valid and the
dequantizers are exact. All arithmetic mirrors ggml's float32 order of operations.

python3 quants.py     runs the self-test (round-trip error bounds, dequantizer against a
                      literal loop transcription of the C code on random bytes).
"""
import sys

import numpy as np

QK = 32
QK_K = 256

TYPES = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "BF16": (30, 1, 2),
    "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24),
    "Q8_0": (8, 32, 34), "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210),
}
TYPE_NAME = {v[0]: k for k, v in TYPES.items()}

# block layouts (ggml-common.h), packed, little-endian
BLOCK_DTYPES = {
    "Q4_0": np.dtype([("d", "<f2"), ("qs", "u1", 16)]),
    "Q4_1": np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)]),
    "Q5_0": np.dtype([("d", "<f2"), ("qh", "u1", 4), ("qs", "u1", 16)]),
    "Q5_1": np.dtype([("d", "<f2"), ("m", "<f2"), ("qh", "u1", 4), ("qs", "u1", 16)]),
    "Q8_0": np.dtype([("d", "<f2"), ("qs", "i1", 32)]),
    "Q4_K": np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qs", "u1", 128)]),
    "Q5_K": np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qh", "u1", 32),
                      ("qs", "u1", 128)]),
    "Q6_K": np.dtype([("ql", "u1", 128), ("qh", "u1", 64), ("scales", "i1", 16), ("d", "<f2")]),
}
for _n, _dt in BLOCK_DTYPES.items():
    assert _dt.itemsize == TYPES[_n][2], _n

F32 = np.float32


def type_name(t):
    return TYPE_NAME[t] if isinstance(t, (int, np.integer)) else str(t).upper()


def row_bytes(t, n):
    _, blk, bsz = TYPES[type_name(t)]
    assert n % blk == 0, "row length %d not a multiple of %d" % (n, blk)
    return n // blk * bsz


# ------------------------------------------------------------------ rounding helpers

def nearest_int(x):
    """ggml nearest_int(): float32 round-half-to-even."""
    return np.rint(np.asarray(x, dtype=F32)).astype(np.int32)


def roundf(x):
    """C roundf (half away from zero) on float32, without the x+0.5 double-rounding trap."""
    x = np.asarray(x, dtype=F32)
    t = np.trunc(x)
    r = t + np.sign(x) * (np.abs(x - t) >= F32(0.5))
    return r.astype(np.int32)


def to_f16(x):
    return np.asarray(x, dtype=F32).astype(np.float16)


def f16_to_f32(h):
    return np.asarray(h).astype(F32)


def f32_to_bf16_bits(x):
    """ggml_compute_fp32_to_bf16: round to nearest even; NaN -> quiet NaN."""
    u = np.asarray(x, dtype=F32).view(np.uint32).astype(np.uint64)
    r = ((u + (0x7FFF + ((u >> 16) & 1))) >> 16).astype(np.uint16)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((u >> 16) | 64).astype(np.uint16), r)


def bf16_bits_to_f32(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(F32)


def _safe_inv(d):
    d = np.asarray(d, dtype=F32)
    with np.errstate(divide="ignore"):
        return np.where(d != 0, F32(1) / np.where(d != 0, d, F32(1)), F32(0)).astype(F32)


def _signed_absmax(xb):
    """value with the largest |v| per row (first one on ties, like the C loop with '<')."""
    idx = np.argmax(np.abs(xb), axis=-1)
    return np.take_along_axis(xb, idx[..., None], axis=-1)[..., 0]


# ------------------------------------------------------------------ quantizers

def _q4_0(xb):
    nb = xb.shape[0]
    mx = _signed_absmax(xb)
    d = (mx / F32(-8)).astype(F32)
    idv = _safe_inv(d)
    q = np.minimum(15, np.trunc(xb * idv[:, None] + F32(8.5)).astype(np.int32))
    b = np.zeros(nb, BLOCK_DTYPES["Q4_0"])
    b["d"] = to_f16(d)
    b["qs"] = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    return b


def _q4_1(xb):
    nb = xb.shape[0]
    mn, mx = xb.min(-1), xb.max(-1)
    d = ((mx - mn) / F32(15)).astype(F32)
    idv = _safe_inv(d)
    q = np.minimum(15, np.trunc((xb - mn[:, None]) * idv[:, None] + F32(0.5)).astype(np.int32))
    b = np.zeros(nb, BLOCK_DTYPES["Q4_1"])
    b["d"], b["m"] = to_f16(d), to_f16(mn)
    b["qs"] = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    return b


def _pack_qh32(q):
    """bit i of the little-endian u32 qh = bit 4 of element i."""
    bits = ((q >> 4) & 1).astype(np.uint64)
    qh = (bits << np.arange(32, dtype=np.uint64)).sum(-1).astype("<u4")
    return qh.view(np.uint8).reshape(-1, 4)


def _q5_0(xb):
    nb = xb.shape[0]
    mx = _signed_absmax(xb)
    d = (mx / F32(-16)).astype(F32)
    idv = _safe_inv(d)
    q = np.minimum(31, np.trunc(xb * idv[:, None] + F32(16.5)).astype(np.int32))
    b = np.zeros(nb, BLOCK_DTYPES["Q5_0"])
    b["d"] = to_f16(d)
    b["qs"] = ((q[:, :16] & 15) | ((q[:, 16:] & 15) << 4)).astype(np.uint8)
    b["qh"] = _pack_qh32(q)
    return b


def _q5_1(xb):
    nb = xb.shape[0]
    mn, mx = xb.min(-1), xb.max(-1)
    d = ((mx - mn) / F32(31)).astype(F32)
    idv = _safe_inv(d)
    q = np.minimum(31, np.trunc((xb - mn[:, None]) * idv[:, None] + F32(0.5)).astype(np.int32))
    b = np.zeros(nb, BLOCK_DTYPES["Q5_1"])
    b["d"], b["m"] = to_f16(d), to_f16(mn)
    b["qs"] = ((q[:, :16] & 15) | ((q[:, 16:] & 15) << 4)).astype(np.uint8)
    b["qh"] = _pack_qh32(q)
    return b


def _q8_0(xb):
    nb = xb.shape[0]
    amax = np.abs(xb).max(-1)
    d = (amax / F32(127)).astype(F32)
    idv = _safe_inv(d)
    b = np.zeros(nb, BLOCK_DTYPES["Q8_0"])
    b["d"] = to_f16(d)
    b["qs"] = roundf(xb * idv[:, None]).astype(np.int8)
    return b


def _pack_scale_min_k4(ls, lm):
    """ls, lm: (nb, 8) ints 0..63 -> (nb, 12) bytes, as quantize_row_q4_K_ref packs them."""
    nb = ls.shape[0]
    s = np.zeros((nb, 12), np.int32)
    s[:, 0:4] = ls[:, 0:4]
    s[:, 4:8] = lm[:, 0:4]
    s[:, 8:12] = (ls[:, 4:8] & 0xF) | ((lm[:, 4:8] & 0xF) << 4)
    s[:, 0:4] |= (ls[:, 4:8] >> 4) << 6
    s[:, 4:8] |= (lm[:, 4:8] >> 4) << 6
    return s.astype(np.uint8)


def _unpack_scale_min_k4(s):
    """get_scale_min_k4 for j = 0..7: s (nb, 12) uint8 -> sc, m (nb, 8) int32."""
    s = s.astype(np.int32)
    sc = np.empty((s.shape[0], 8), np.int32)
    m = np.empty_like(sc)
    sc[:, 0:4] = s[:, 0:4] & 63
    m[:, 0:4] = s[:, 4:8] & 63
    sc[:, 4:8] = (s[:, 8:12] & 0xF) | ((s[:, 0:4] >> 6) << 4)
    m[:, 4:8] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc, m


def _kquant_scale_min(xb, nmax):
    """Q4_K / Q5_K: xb (nb, 256) -> d, dmin (f16), ls, lm (nb, 8), L (nb, 8, 32).
    x ~= d*ls*L - dmin*lm with L in [0, nmax]."""
    nb = xb.shape[0]
    xs = xb.reshape(nb, 8, 32)
    mn = np.minimum(xs.min(-1), F32(0))        # ggml clamps the sub-block min to <= 0
    mx = xs.max(-1)
    scale = ((mx - mn) / F32(nmax)).astype(F32)
    the_min = (-mn).astype(F32)
    max_scale, max_min = scale.max(-1), the_min.max(-1)
    inv_scale = np.where(max_scale > 0, F32(63) / np.where(max_scale > 0, max_scale, 1), 0).astype(F32)
    inv_min = np.where(max_min > 0, F32(63) / np.where(max_min > 0, max_min, 1), 0).astype(F32)
    d = to_f16(max_scale / F32(63))
    dmin = to_f16(max_min / F32(63))
    df, dminf = f16_to_f32(d), f16_to_f32(dmin)
    ls0 = np.minimum(63, nearest_int(inv_scale[:, None] * scale))
    lm0 = np.minimum(63, nearest_int(inv_min[:, None] * the_min))
    # small search over the 6-bit codes (+-1) minimising the squared error of each sub-block
    best_err = best_ls = best_lm = best_L = None
    for dls in (0, 1, -1):
        for dlm in (0, 1, -1):
            ls = np.clip(ls0 + dls, 0, 63)
            lm = np.clip(lm0 + dlm, 0, 63)
            dd = (df[:, None] * ls).astype(F32)
            dm = (dminf[:, None] * lm).astype(F32)
            with np.errstate(divide="ignore", invalid="ignore"):
                L = nearest_int((xs + dm[..., None]) / np.where(dd != 0, dd, 1)[..., None])
            L = np.where((dd != 0)[..., None], np.clip(L, 0, nmax), 0)
            err = ((dd[..., None] * L - dm[..., None] - xs) ** 2).sum(-1)
            if best_err is None:
                best_err, best_ls, best_lm, best_L = err, ls, lm, L
            else:
                better = err < best_err
                best_err = np.where(better, err, best_err)
                best_ls = np.where(better, ls, best_ls)
                best_lm = np.where(better, lm, best_lm)
                best_L = np.where(better[..., None], L, best_L)
    return d, dmin, best_ls, best_lm, best_L


def _q4_k(xb):
    nb = xb.shape[0]
    d, dmin, ls, lm, L = _kquant_scale_min(xb, 15)
    b = np.zeros(nb, BLOCK_DTYPES["Q4_K"])
    b["d"], b["dmin"] = d, dmin
    b["scales"] = _pack_scale_min_k4(ls, lm)
    L = L.reshape(nb, 4, 2, 32)      # chunk of 64 = (low nibbles: sub 2c, high: sub 2c+1)
    b["qs"] = (L[:, :, 0] | (L[:, :, 1] << 4)).reshape(nb, 128).astype(np.uint8)
    return b


def _q5_k(xb):
    nb = xb.shape[0]
    d, dmin, ls, lm, L = _kquant_scale_min(xb, 31)
    b = np.zeros(nb, BLOCK_DTYPES["Q5_K"])
    b["d"], b["dmin"] = d, dmin
    b["scales"] = _pack_scale_min_k4(ls, lm)
    lo = L & 15
    hi = (L >> 4) & 1                                     # (nb, 8, 32)
    lo = lo.reshape(nb, 4, 2, 32)
    b["qs"] = (lo[:, :, 0] | (lo[:, :, 1] << 4)).reshape(nb, 128).astype(np.uint8)
    # sub-block s sets bit s of qh[l]
    b["qh"] = (hi << np.arange(8)[None, :, None]).sum(1).astype(np.uint8)
    return b


def _q6_k(xb):
    nb = xb.shape[0]
    xs = xb.reshape(nb, 16, 16)
    mx = _signed_absmax(xs)
    scales = (mx / F32(-32)).astype(F32)                  # signed sub-block scales
    max_scale = _signed_absmax(scales)
    zero = np.abs(max_scale) < F32(1e-15)
    iscale = np.where(zero, F32(0), F32(-128) / np.where(zero, F32(1), max_scale)).astype(F32)
    d = to_f16(np.where(zero, F32(0), F32(1) / np.where(zero, F32(1), iscale)))
    sc = np.minimum(127, nearest_int(iscale[:, None] * scales))
    sc = np.where(zero[:, None], 0, sc)
    dd = (f16_to_f32(d)[:, None] * sc).astype(F32)        # (nb, 16)
    with np.errstate(divide="ignore", invalid="ignore"):
        L = nearest_int(xs / np.where(dd != 0, dd, 1)[..., None])
    L = np.where((dd != 0)[..., None], np.clip(L, -32, 31), 0) + 32   # (nb, 16, 16)
    L = L.reshape(nb, 2, 4, 32)                           # half n, quarter k, l
    b = np.zeros(nb, BLOCK_DTYPES["Q6_K"])
    ql = np.empty((nb, 2, 64), np.int32)
    ql[:, :, :32] = (L[:, :, 0] & 15) | ((L[:, :, 2] & 15) << 4)
    ql[:, :, 32:] = (L[:, :, 1] & 15) | ((L[:, :, 3] & 15) << 4)
    qh = ((L[:, :, 0] >> 4) | ((L[:, :, 1] >> 4) << 2) | ((L[:, :, 2] >> 4) << 4)
          | ((L[:, :, 3] >> 4) << 6))
    b["ql"] = ql.reshape(nb, 128).astype(np.uint8)
    b["qh"] = qh.reshape(nb, 64).astype(np.uint8)
    b["scales"] = sc.astype(np.int8)
    b["d"] = d
    return b


_QUANT = {"Q4_0": _q4_0, "Q4_1": _q4_1, "Q5_0": _q5_0, "Q5_1": _q5_1, "Q8_0": _q8_0,
          "Q4_K": _q4_k, "Q5_K": _q5_k, "Q6_K": _q6_k}


def quantize(x, t):
    """x: float array, last dim = row length (multiple of the block size). Returns uint8 bytes."""
    t = type_name(t)
    x = np.ascontiguousarray(x, dtype=F32)
    if t == "F32":
        return x.astype("<f4").reshape(-1).view(np.uint8)
    if t == "F16":
        return x.astype("<f2").reshape(-1).view(np.uint8)
    if t == "BF16":
        return f32_to_bf16_bits(x).astype("<u2").reshape(-1).view(np.uint8)
    _, blk, _ = TYPES[t]
    if x.shape[-1] % blk:
        raise ValueError("%s: row length %d is not a multiple of %d" % (t, x.shape[-1], blk))
    b = _QUANT[t](x.reshape(-1, blk))
    return b.view(np.uint8).reshape(-1)


# ------------------------------------------------------------------ dequantizers

def dequantize(raw, t, n=None):
    """raw: bytes / uint8 array of packed data; returns float32 array of n (default: all) values."""
    t = type_name(t)
    raw = np.frombuffer(raw, np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) else \
        np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
    _, blk, bsz = TYPES[t]
    if n is None:
        n = raw.size // bsz * blk
    nbytes = n // blk * bsz
    if n % blk or raw.size < nbytes:
        raise ValueError("%s: bad size (%d elems, %d bytes)" % (t, n, raw.size))
    raw = raw[:nbytes]
    if t == "F32":
        return raw.view("<f4").astype(F32)
    if t == "F16":
        return raw.view("<f2").astype(F32)
    if t == "BF16":
        return bf16_bits_to_f32(raw.view("<u2"))
    b = raw.view(BLOCK_DTYPES[t])
    nb = b.shape[0]
    if t in ("Q4_0", "Q4_1", "Q5_0", "Q5_1"):
        qs = b["qs"].astype(np.int32)
        q = np.concatenate([qs & 15, qs >> 4], axis=1)          # (nb, 32)
        if t in ("Q5_0", "Q5_1"):
            qh = b["qh"].copy().view("<u4").reshape(nb).astype(np.int64)
            q = q | ((((qh[:, None] >> np.arange(32)) & 1) << 4).astype(np.int32))
        d = f16_to_f32(b["d"])[:, None]
        if t == "Q4_0":
            y = (q - 8).astype(F32) * d
        elif t == "Q5_0":
            y = (q - 16).astype(F32) * d
        else:
            y = q.astype(F32) * d + f16_to_f32(b["m"])[:, None]
        return y.astype(F32).reshape(-1)
    if t == "Q8_0":
        return (b["qs"].astype(F32) * f16_to_f32(b["d"])[:, None]).reshape(-1)
    if t in ("Q4_K", "Q5_K"):
        sc, m = _unpack_scale_min_k4(b["scales"])
        d1 = (f16_to_f32(b["d"])[:, None] * sc.astype(F32)).astype(F32)      # (nb, 8)
        m1 = (f16_to_f32(b["dmin"])[:, None] * m.astype(F32)).astype(F32)
        qs = b["qs"].astype(np.int32).reshape(nb, 4, 32)
        q = np.stack([qs & 15, qs >> 4], axis=2).reshape(nb, 8, 32)
        if t == "Q5_K":
            qh = b["qh"].astype(np.int32)                                     # (nb, 32)
            q = q + 16 * ((qh[:, None, :] >> np.arange(8)[None, :, None]) & 1)
        y = d1[..., None] * q.astype(F32) - m1[..., None]
        return y.astype(F32).reshape(-1)
    if t == "Q6_K":
        ql = b["ql"].astype(np.int32).reshape(nb, 2, 64)
        qh = b["qh"].astype(np.int32).reshape(nb, 2, 32)
        lo, hi = ql[:, :, :32], ql[:, :, 32:]
        q = np.stack([(lo & 15) | (((qh >> 0) & 3) << 4),
                      (hi & 15) | (((qh >> 2) & 3) << 4),
                      (lo >> 4) | (((qh >> 4) & 3) << 4),
                      (hi >> 4) | (((qh >> 6) & 3) << 4)], axis=2) - 32      # (nb, 2, 4, 32)
        q = q.reshape(nb, 16, 16)                                             # element e -> scale e//16
        ds = (f16_to_f32(b["d"])[:, None] * b["scales"].astype(F32)).astype(F32)
        return (ds[..., None] * q.astype(F32)).astype(F32).reshape(-1)
    raise ValueError("no dequantizer for " + t)


# ------------------------------------------------------------------ activation quantization
# What ggml's CPU matmul does to the activations (src1) before the dot products: the
# vec_dot_type of the weight type (type_traits_cpu in ggml-cpu.c).
ACT_TYPE_GGML = {"F32": None, "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q4_0": "Q8_0",
                 "Q5_0": "Q8_0", "Q4_1": "Q8_1", "Q5_1": "Q8_1", "Q4_K": "Q8_K", "Q5_K": "Q8_K",
                 "Q6_K": "Q8_K"}


def quant_q8_k(x):
    """quantize_row_q8_K_ref: 256-blocks, iscale = -127/max (signed absmax), float32 d = 1/iscale.
    Returns (qs int8 (nb, 256), d float32 (nb,))."""
    xb = np.asarray(x, dtype=F32).reshape(-1, QK_K)
    mx = _signed_absmax(xb)
    zero = mx == 0
    iscale = np.where(zero, F32(0), F32(-127) / np.where(zero, F32(1), mx)).astype(F32)
    q = np.minimum(127, nearest_int(iscale[:, None] * xb))
    d = np.where(zero, F32(0), F32(1) / np.where(zero, F32(1), iscale)).astype(F32)
    return q.astype(np.int8), d


def fake_quant_act(x, act_type):
    """Round-trip activations x (last dim = row length) through an activation type:
    None, "F16", "BF16", "Q8_0", "Q8_1" (same values as Q8_0: fp16 d, roundf), "Q8_K"."""
    if act_type is None:
        return x
    shp, dt = x.shape, x.dtype
    x32 = np.asarray(x, dtype=F32)
    if act_type == "F16":
        y = x32.astype(np.float16).astype(F32)
    elif act_type == "BF16":
        y = bf16_bits_to_f32(f32_to_bf16_bits(x32))
    elif act_type in ("Q8_0", "Q8_1"):
        y = dequantize(quantize(x32, "Q8_0"), "Q8_0", x32.size)
    elif act_type == "Q8_K":
        q, d = quant_q8_k(x32)
        y = (d[:, None] * q.astype(F32)).astype(F32)
    else:
        raise ValueError(act_type)
    return y.reshape(shp).astype(dt)


# ------------------------------------------------------------------ literal C transcription
# Scalar loops copied in structure from ggml's dequantize_row_* (for testing the vectorized code).

def _ref_dequant_block(t, blk):
    """blk: bytes of one block -> list of floats, written as a line-by-line transcription."""
    h = lambda o: float(np.frombuffer(blk[o:o + 2], "<f2")[0])
    f = np.float32
    y = []
    if t == "Q4_0":
        d, qs = f(h(0)), blk[2:18]
        y = [None] * 32
        for j in range(16):
            y[j] = f(((qs[j] & 0x0F) - 8) * d)
            y[j + 16] = f(((qs[j] >> 4) - 8) * d)
    elif t == "Q4_1":
        d, m, qs = f(h(0)), f(h(2)), blk[4:20]
        y = [None] * 32
        for j in range(16):
            y[j] = f(f((qs[j] & 0x0F) * d) + m)
            y[j + 16] = f(f((qs[j] >> 4) * d) + m)
    elif t in ("Q5_0", "Q5_1"):
        if t == "Q5_0":
            d, m, qh, qs = f(h(0)), None, int.from_bytes(blk[2:6], "little"), blk[6:22]
        else:
            d, m, qh, qs = f(h(0)), f(h(2)), int.from_bytes(blk[4:8], "little"), blk[8:24]
        y = [None] * 32
        for j in range(16):
            xh_0 = ((qh >> (j + 0)) << 4) & 0x10
            xh_1 = ((qh >> (j + 12))) & 0x10
            x0 = ((qs[j] & 0x0F) | xh_0)
            x1 = ((qs[j] >> 4) | xh_1)
            if t == "Q5_0":
                y[j], y[j + 16] = f((x0 - 16) * d), f((x1 - 16) * d)
            else:
                y[j], y[j + 16] = f(f(x0 * d) + m), f(f(x1 * d) + m)
    elif t == "Q8_0":
        d = f(h(0))
        qs = np.frombuffer(blk[2:34], np.int8)
        y = [f(int(qs[j]) * d) for j in range(32)]
    elif t in ("Q4_K", "Q5_K"):
        d, mn, sc12 = f(h(0)), f(h(2)), blk[4:16]
        if t == "Q4_K":
            qs, qh = blk[16:144], None
        else:
            qh, qs = blk[16:48], blk[48:176]

        def gsm(j, q):
            if j < 4:
                return q[j] & 63, q[j + 4] & 63
            return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4)
        is_, qo, u1, u2 = 0, 0, 1, 2
        for j in range(0, 256, 64):
            sc, m = gsm(is_ + 0, sc12)
            d1, m1 = f(d * sc), f(mn * m)
            sc, m = gsm(is_ + 1, sc12)
            d2, m2 = f(d * sc), f(mn * m)
            for l in range(32):
                hb = (16 if qh[l] & u1 else 0) if qh is not None else 0
                y.append(f(f(d1 * ((qs[qo + l] & 0xF) + hb)) - m1))
            for l in range(32):
                hb = (16 if qh[l] & u2 else 0) if qh is not None else 0
                y.append(f(f(d2 * ((qs[qo + l] >> 4) + hb)) - m2))
            qo += 32
            is_ += 2
            u1 <<= 2
            u2 <<= 2
    elif t == "Q6_K":
        ql, qh = blk[0:128], blk[128:192]
        sc = np.frombuffer(blk[192:208], np.int8)
        d = f(h(208))
        y = [None] * 256
        for n in range(2):
            for l in range(32):
                is_ = l // 16
                q1 = ((ql[64 * n + l + 0] & 0xF) | (((qh[32 * n + l] >> 0) & 3) << 4)) - 32
                q2 = ((ql[64 * n + l + 32] & 0xF) | (((qh[32 * n + l] >> 2) & 3) << 4)) - 32
                q3 = ((ql[64 * n + l + 0] >> 4) | (((qh[32 * n + l] >> 4) & 3) << 4)) - 32
                q4 = ((ql[64 * n + l + 32] >> 4) | (((qh[32 * n + l] >> 6) & 3) << 4)) - 32
                s = sc[8 * n:]
                y[128 * n + l + 0] = f(f(d * int(s[is_ + 0])) * q1)
                y[128 * n + l + 32] = f(f(d * int(s[is_ + 2])) * q2)
                y[128 * n + l + 64] = f(f(d * int(s[is_ + 4])) * q3)
                y[128 * n + l + 96] = f(f(d * int(s[is_ + 6])) * q4)
    return y


# (Q4_0/Q5_0 put the signed absmax at -8/-16, so a value of the opposite sign with the same
# magnitude clips by one full step: 1/8, 1/16.)
# relative bound on max|dequant(quant(x)) - x| / max|x| per row, for Gaussian test data
REL_MAX_ERR = {"F32": 0.0, "F16": 5e-4, "BF16": 4e-3, "Q8_0": 0.006, "Q6_K": 0.035,
               "Q5_0": 0.066, "Q5_1": 0.04, "Q5_K": 0.05, "Q4_0": 0.13, "Q4_1": 0.08,
               "Q4_K": 0.1}


def selftest(verbose=True):
    rng = np.random.default_rng(1234)
    ok = True
    rows, cols = 64, 512
    x = rng.standard_normal((rows, cols)).astype(F32) * F32(0.05)
    x[3] *= 100                      # large-range row
    x[4] = np.abs(x[4])              # all-positive row (exercises mins)
    x[5, :256] = 0                   # zero blocks
    x[6] -= 0.2                      # all-negative-ish row
    for t in ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]:
        raw = quantize(x, t)
        if raw.size != rows * row_bytes(t, cols):
            print("FAIL %s: %d bytes, expected %d" % (t, raw.size, rows * row_bytes(t, cols)))
            ok = False
            continue
        y = dequantize(raw, t, rows * cols).reshape(rows, cols)
        rel = (np.abs(y - x).max(1) / np.maximum(np.abs(x).max(1), 1e-30)).max()
        rms = np.sqrt(((y - x) ** 2).mean() / (x ** 2).mean())
        # round trip through the packed bytes: re-quantizing the dequantized values must be stable
        raw2 = quantize(y, t)
        y2 = dequantize(bytes(raw2.tobytes()), t, rows * cols).reshape(rows, cols)
        drift = np.abs(y2 - y).max() / np.abs(x).max()
        good = rel <= REL_MAX_ERR[t] and np.all(y[5, :256] == 0) and drift <= REL_MAX_ERR[t]
        # the dequantizer against the literal C transcription, on random bytes (a few blocks)
        if t in BLOCK_DTYPES:
            nblk = 6
            rb = rng.integers(0, 256, size=nblk * TYPES[t][2], dtype=np.uint8)
            dt = BLOCK_DTYPES[t]
            bb = rb.view(dt)
            # keep the fp16 scales finite and modest
            for fld in ("d", "m", "dmin"):
                if fld in dt.names:
                    bb[fld] = rng.uniform(-0.1, 0.1, nblk).astype(np.float16)
            rb = bb.view(np.uint8)
            vec = dequantize(rb, t)
            lit = np.array(sum((_ref_dequant_block(t, bytes(rb[i * TYPES[t][2]:(i + 1) * TYPES[t][2]]))
                                for i in range(nblk)), []), F32)
            exact = np.array_equal(vec, lit)
            good = good and exact
        else:
            exact = True
        if verbose:
            print("%s %-5s max|err|/max|x| %.5f (bound %.4f)  rel-rms %.5f  requant drift %.2g  "
                  "dequant==C-loop %s" % ("ok  " if good else "FAIL", t, rel, REL_MAX_ERR[t], rms,
                                          drift, exact))
        ok = ok and good
    # Q8_K activation quantizer: |err| <= d/2 except the clamped +127 side; literal loop on 3 blocks
    xa = rng.standard_normal((3, 256)).astype(F32)
    xa[1] = -np.abs(xa[1])
    q, d = quant_q8_k(xa)
    lit_ok = True
    for i in range(3):
        amax, mxv = 0.0, 0.0
        for j in range(256):
            if abs(xa[i, j]) > amax:
                amax, mxv = abs(xa[i, j]), xa[i, j]
        isc = F32(-127.0) / F32(mxv)
        lq = [min(127, int(np.rint(F32(isc * xa[i, j])))) for j in range(256)]
        lit_ok = lit_ok and lq == q[i].tolist() and d[i] == F32(1) / isc
    y = fake_quant_act(xa, "Q8_K")
    q8k_ok = lit_ok and np.all(np.abs(y - xa) <= np.abs(d)[:, None] * 0.5000001 + 1e-12)
    if verbose:
        print("%s Q8_K activation quantizer (literal loop, |err| <= d/2)" % ("ok  " if q8k_ok else "FAIL"))
    ok = ok and q8k_ok
    # byte-exact known answers for the simple types (values computed by hand from ggml's code)
    xb = np.arange(32, dtype=F32) - 15.0      # amax 16 at index 31 -> Q8_0 d = 16/127
    q8 = quantize(xb, "Q8_0").view(BLOCK_DTYPES["Q8_0"])[0]
    ka = (q8["d"] == np.float16(16 / 127)) and q8["qs"][31] == 127 and q8["qs"][0] == -119
    q4 = quantize(xb, "Q4_0").view(BLOCK_DTYPES["Q4_0"])[0]   # max=16 -> d=-2, q=trunc(x/-2+8.5)
    ka = ka and q4["d"] == np.float16(-2) and q4["qs"][0] == (15 | (8 << 4)) and q4["qs"][15] == (8 | (0 << 4))
    if verbose:
        print("%s known-answer Q8_0/Q4_0 blocks" % ("ok  " if ka else "FAIL"))
    return ok and ka


if __name__ == "__main__":
    sys.exit(0 if selftest() else 1)
