#!/bin/bash
# Session 13: the nearly empty cache's decode attention over the list of steps with a valid key
# (skip_empty = 3) against the previous walk (CRK_DRD_LIST=0), alternated twice in one run,
# after every GPU test (CR_NO_TESTS=1: build only). CR_AB_MODELS: the cuda_bench model filters
# (default 8B Q4_K and 1B Q4_K; the type as cuda_bench prints it: Q4_K, BF16). AB_VAR: another
# 0/1 knob to alternate the same way (e.g. CRK_GLU).
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
if [ -n "$CR_NO_TESTS" ]; then bash tests/device/run.sh exec true || exit 1; else bash tests/device/run.sh || exit 1; fi
grep -E "listed steps|valid steps only|step lists" $OUT/cuda_kernels.txt
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
IFS=, read -ra MS <<< "${CR_AB_MODELS:-8B Q4_K,1B Q4_K}"
for m in "${MS[@]}"; do
  for r in 1 2; do
    for v in 1 0; do
      echo "== $m ${AB_VAR:-CRK_DRD_LIST}=$v"
      env "${AB_VAR:-CRK_DRD_LIST}=$v" CR_BENCH_MODEL="$m" build/bench/cuda_bench --parts decode 2>&1 | grep -E "decode:|empty cache|half-full|prefill" | sed 's/(tokens 8..127, as tg128)//' | cut -c1-150
    done
  done
done
