#!/bin/bash
# Prepared in session 13 for the next run (nothing here has run yet): every GPU test (the new
# test_matvec_glu among them), each decode kernel kind's marginal cost (CR_BENCH_SKIP=1) for
# 8B Q4_K and bf16, and CRK_GLU=1 (SwiGLU in the 16-bit gate|up kernel) against 0 for the bf16
# shapes, alternated twice.
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
bash tests/device/run.sh || exit 1
grep -E "SwiGLU in the epilogue" $OUT/cuda_kernels.txt
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry CR_BENCH_NO_PP=1
for m in "8B Q4_K" "8B BF16"; do
  echo "== $m marginal costs"
  CR_BENCH_SKIP=1 CR_BENCH_MODEL="$m" build/bench/cuda_bench --parts decode 2>&1 | grep -E "empty cache" | sed 's/(tokens 8..127, as tg128)//'
done
CR_NO_TESTS=1 AB_VAR=CRK_GLU CR_AB_MODELS="8B BF16,1B BF16" bash tests/device/list_ab.sh
