/* Key gather for the tensor-core chunk attention: every key visible to the chunk, rotated
 * once (RoPE of its slot position, fp32 arithmetic as rope_rotate, rounded to fp16) and
 * copied with its value into contiguous buffers in the compact order of attn_chunk_cpu:
 * [n_sinks sinks | the nv filled slots in slot order | L chunk keys]. Filled slots of
 * cascade i are its local slots 0 .. stored[i]-1 (a cascade only wraps once full), so compact
 * slot q lies in cascade i with below[i] <= q < below[i] + stored[i]. kdst[k] is the key's
 * index in the [S | N | L] layout of the score columns r. One thread per 8 dimensions.
 * Rows [nk, min(roundup(nk, 128), kv_rows)) of kbuf and vbuf are set to zero: the TMA loads of
 * the warp-specialized pass 1 (attn_p1_wgws, kernels/attn_chunk_wg.cu) read whole tiles of 128
 * rows and cannot zero-fill past nk, which only the device knows (the tensor map zero-fills
 * rows >= kv_rows); a NaN left there would reach P.V. The other kernels zero-fill rows >= nk
 * themselves and never read these rows. */
#include "attn_common.cuh"

__global__ void kv_gather_k(crk_attn a) {
    const int kvh = blockIdx.y, hd = a.hd, nch = hd / 8;
    const crk_step *st = a.st;
    const int ns = st->n_sinks, nv = st->nv, nk = ns + nv + a.L;
    const int rp = a.rope_pairs, rp8 = rp / 8;
    const int nz = min(a.kv_rows, (nk + 127) & ~127);            /* rows [nk, nz): zeros */
    const size_t total = (size_t)nz * nch;
    for (size_t it = blockIdx.x * (size_t)blockDim.x + threadIdx.x; it < total; it += (size_t)gridDim.x * blockDim.x) {
        const int k = (int)(it / nch), ci = (int)(it % nch);
        if (k >= nk) {
            const size_t off = ((size_t)kvh * a.kv_rows + k) * hd + ci * 8;
            *(uint4 *)(a.kbuf + off) = make_uint4(0, 0, 0, 0);
            *(uint4 *)(a.vbuf + off) = make_uint4(0, 0, 0, 0);
            continue;
        }
        const uint16_t *kp, *vp;
        int pos, dst;
        if (k < ns) {
            size_t off = ((size_t)kvh * a.S + k) * hd;
            kp = a.sink_k + off; vp = a.sink_v + off; pos = k; dst = k;
        } else if (k < ns + nv) {
            int q = k - ns, i = 0, below = 0;
            while (i < st->C - 1 && q >= below + st->stored[i]) { below += st->stored[i]; i++; }
            const int s = i * st->W + (q - below);
            size_t off = ((size_t)kvh * a.N + s) * hd;
            kp = a.ck + off; vp = a.cv + off; pos = a.slot_pos[s]; dst = a.S + s;
        } else {
            const int j = k - ns - nv;
            size_t off = (size_t)j * a.kv_stride + (size_t)kvh * hd;
            kp = a.kc + off; vp = a.vc + off; pos = (int)(st->p0 + j); dst = a.S + a.N + j;
        }
        if (kvh == 0 && ci == 0) a.kdst[k] = dst;
        uint16_t *ko = a.kbuf + ((size_t)kvh * a.kv_rows + k) * hd, *vo = a.vbuf + ((size_t)kvh * a.kv_rows + k) * hd;
        *(uint4 *)(vo + ci * 8) = *(const uint4 *)(vp + ci * 8);
        const float *cs = a.rope_cs + (size_t)pos * rp * 2;
        if (a.neox) {
            if (ci < rp8) {
                float x0[8], x1[8], y0[8], y1[8];
                g_unpack8(*(const uint4 *)(kp + ci * 8), x0);
                g_unpack8(*(const uint4 *)(kp + rp + ci * 8), x1);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    int p = ci * 8 + e;
                    float co = cs[2 * p], si = cs[2 * p + 1];
                    y0[e] = x0[e] * co - x1[e] * si;
                    y1[e] = x0[e] * si + x1[e] * co;
                }
                *(uint4 *)(ko + ci * 8) = g_pack8(y0);
                *(uint4 *)(ko + rp + ci * 8) = g_pack8(y1);
            } else if (ci >= 2 * rp8) {
                *(uint4 *)(ko + ci * 8) = *(const uint4 *)(kp + ci * 8);
            }
        } else {
            float x[8];
            g_unpack8(*(const uint4 *)(kp + ci * 8), x);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int p = ci * 4 + e;
                if (p < rp) {
                    float co = cs[2 * p], si = cs[2 * p + 1];
                    float x0 = x[2 * e], x1 = x[2 * e + 1];
                    x[2 * e] = x0 * co - x1 * si;
                    x[2 * e + 1] = x0 * si + x1 * co;
                }
            }
            *(uint4 *)(ko + ci * 8) = g_pack8(x);
        }
    }
}

extern "C" void crk_kv_gather(const crk_attn *a, crk_stream s) {
    const size_t upper = (size_t)(a->S + a->N + a->L) * (a->hd / 8);
    size_t blocks = (upper + 255) / 256;
    if (blocks > 4096) blocks = 4096;
    kv_gather_k<<<dim3((unsigned)(blocks ? blocks : 1), a->n_kv), 256, 0, s>>>(*a);
}
