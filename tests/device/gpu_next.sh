#!/bin/bash
# Branch gpu-next: (1) keys rotated in fp16 arithmetic in the register-direct decode attention
# (CRK_DRD_HROT=1); (2) q/k/v post-processing fused into that kernel (default on;
# CRK_DEC_FUSE=0 off): one kernel less per layer. On the GPU machine: every GPU test (the
# bit-exactness test compares fused against unfused), the kernel tests again with HROT, then the
# decode-parts attention line and the 8B decode steps for each variant, alternated.
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
bash tests/device/run.sh || exit 1
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
CRK_DRD_HROT=1 build/tests/cuda_kernels > $OUT/hrot_kernels.txt 2>&1; grep -E "FAIL|register-direct|passed" $OUT/hrot_kernels.txt | cut -c1-200
CRK_DRD_HROT=1 build/tests/cuda_e2e > $OUT/hrot_e2e.txt 2>&1; grep -E "FAIL|passed" $OUT/hrot_e2e.txt | cut -c1-200
for r in 1 2; do
for v in "CRK_DEC_FUSE=0" "CRK_DEC_FUSE=1" "CRK_DRD_HROT=1"; do
  echo "== $v"
  env $v build/bench/cuda_bench --parts parts 2>&1 | tee -a $OUT/parts_$r.txt | grep -E "decode attention.*2 shared" | sed 's/.*stages per warp.//'
  env $v CR_BENCH_MODEL="8B" build/bench/cuda_bench --parts decode 2>&1 | tee -a $OUT/dec_$r.txt | grep -E "decode:|decode on the GPU" | cut -c1-90
done
done
