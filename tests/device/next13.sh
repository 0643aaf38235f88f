#!/bin/bash
# Session 13, second run: the GPU tests, the list A/B for the bf16 shapes, the Q4_K shapes'
# decode and prefill rows once, the decode parts table.
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
CR_AB_MODELS="${CR_AB_MODELS:-8B BF16,1B BF16}" bash tests/device/list_ab.sh || exit 1
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
echo "== Q4_K"
CR_BENCH_MODEL=Q4_K build/bench/cuda_bench --parts decode 2>&1 | grep -E "decode:|empty cache|half-full|prefill" | sed 's/(tokens 8..127, as tg128)//' | cut -c1-150
build/bench/cuda_bench --parts parts > $OUT/parts.txt 2>&1
head -40 $OUT/parts.txt
