#!/bin/sh
# make bench: every benchmark table. Random-weight models are generated once into
# $B/bench-models. CR_BENCH_MAX caps the cascade scaling run (default 1,000,000 tokens);
# CR_BENCH_8B=1 adds the 8B-shape resume run on the GPU.
B=${1:-build}
cd "$(dirname "$0")/../.." || exit 2
S=${CR_SHARED:-../shared}
PY=/usr/bin/python3
M=$B/bench-models
mkdir -p "$M"
smol="--dim 576 --layers 30 --heads 9 --kv-heads 3 --ffn 1536 --vocab 49152 --ctx 8192 --rope-base 100000 --tied"
for t in F32 F16 Q8_0 Q4_K; do
  f=$M/smollm2-135m-shape-$t.gguf
  [ -f "$f" ] || $PY tests/tools/mkmodel.py --out "$f" --type $t --fallback $smol >/dev/null || exit 1
done
echo "== CPU engine (issue 2)"
$B/bench/engine_cpu models "$S/models/stories260K.gguf" "$S/models/TinyStories-656K-Q8_0.gguf" \
   $M/smollm2-135m-shape-F32.gguf $M/smollm2-135m-shape-F16.gguf $M/smollm2-135m-shape-Q8_0.gguf $M/smollm2-135m-shape-Q4_K.gguf
echo
$B/bench/engine_cpu kernels $M/smollm2-135m-shape-F32.gguf $M/smollm2-135m-shape-F16.gguf \
   $M/smollm2-135m-shape-Q8_0.gguf $M/smollm2-135m-shape-Q4_K.gguf
echo
echo "== Cascade prefill scaling (issue 4)"
$B/bench/engine_cpu scaling "$S/models/stories260K.gguf" "${CR_BENCH_MAX:-1000000}"
for b in tokenize ingest snapshot grep; do
  if [ -x "$B/bench/$b" ]; then echo; echo "== $b"; "$B/bench/$b"; fi
done
if [ -x "$B/bench/cuda_bench" ]; then
  echo; echo "== CUDA"; "$B/bench/cuda_bench"
  echo; echo "== grep on the GPU (issue 9)"; "$B/bench/grep" --gpu
  echo; echo "== resume against re-reading 1M tokens on the GPU (issue 7)"; "$B/bench/resume_gpu" --shape 1b
  [ -n "$CR_BENCH_8B" ] && "$B/bench/resume_gpu" --shape 8b
fi
exit 0
