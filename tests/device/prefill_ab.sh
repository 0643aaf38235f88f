#!/bin/bash
# Session 12: every GPU test and the multi-GPU CLI checks (tp.sh), then prefill rows with and
# without the session's chunk changes (no f32 copies of the bf16 GEMMs' inputs, the 4-wide
# SwiGLU for chunks; CRK_CHUNK_F32COPY=1 CRK_SWIGLU4=0 = before), alternated twice in one
# run. CR_AB_MODELS="8B Q4_K;1B BF16;1B Q4_K;8B BF16" picks the models (CR_BENCH_MODEL
# filters; default 8B Q4_K, whose filter also runs its streamed and stride-1024 rows);
# CR_AB_NOTEST=1 skips the tests.
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
if [ -z "$CR_AB_NOTEST" ]; then bash tests/device/tp.sh; else bash tests/device/run.sh exec true || exit 1; fi
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
IFS=';' read -ra MODELS <<< "${CR_AB_MODELS:-8B Q4_K}"
for r in 1 2; do
  for v in new old; do
    echo "== $v"
    if [ $v = old ]; then export CRK_CHUNK_F32COPY=1 CRK_SWIGLU4=0; else unset CRK_CHUNK_F32COPY CRK_SWIGLU4; fi
    for mdl in "${MODELS[@]}"; do
      CR_BENCH_MODEL="$mdl" build/bench/cuda_bench --parts model 2>&1 | grep -E "prefill  " | cut -c1-120
    done
  done
done
