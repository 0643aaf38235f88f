#!/bin/bash
# On the GPU machine (see carry.sh): link the runtime libraries the image has, build the
# CUDA tests, the binary and the benchmarks, run the GPU tests; logs under $OUT.
#   run.sh                  the GPU tests
#   run.sh bench ARGS       and cuda_bench ARGS
#   run.sh exec CMD...      build, then run CMD (with the environment above) instead of the tests
#   CR_DEV_EXTRA=1          also resume_gpu (issue 7) and grep --gpu (issue 9)
A=("$@")   # the loop below uses set --
L=/usr/lib/x86_64-linux-gnu
for p in "pcre2-8 libpcre2-8.so.0" "xml2 libxml2.so.2" "ncursesw libncursesw.so.6" "curl libcurl.so.4" "sentencepiece libsentencepiece.so.0" "tinfo libtinfo.so.6"; do
  set -- $p
  if [ ! -e $L/lib$1.so ] && [ -e $L/$2 ]; then ln -sf $L/$2 .carry/lib/lib$1.so; fi
done
ln -sf libzip.so.4 .carry/lib/libzip.so
set -- "${A[@]}"
export LD_LIBRARY_PATH=$PWD/.carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export CR_SHARED=.carry CR_BUILD=build
OUT=${OUT:-/tmp}
make -j16 CUDA=1 UI_LIBS="-lncursesw -ltinfo" EXTRA_CFLAGS=-I.carry/include LDFLAGS="-pthread -L.carry/lib" \
     build/tests/cuda_kernels build/tests/cuda_e2e build/tests/cuda_nccl build/tests/cuda_tp build/tests/app_autosave_gpu build/bench/cuda_bench build/bench/resume_gpu build/bench/grep cascade-read > $OUT/build.log 2>&1 \
  || { grep -E "error|cannot" $OUT/build.log | head; exit 1; }
if [ "$1" = exec ]; then shift; "$@"; exit $?; fi
build/tests/cuda_kernels 2>&1 | tee $OUT/cuda_kernels.txt | grep -E "FAIL|passed"
build/tests/cuda_e2e 2>&1 | tee $OUT/cuda_e2e.txt | grep -E "FAIL|SKIP|passed"
build/tests/cuda_nccl 2>&1 | tee $OUT/cuda_nccl.txt | grep -E "FAIL|SKIP|passed|NCCL"
build/tests/cuda_tp 2>&1 | tee $OUT/cuda_tp.txt | grep -E "FAIL|SKIP|passed|ranks|tensor|NCCL"
build/tests/app_autosave_gpu 2>&1 | tee $OUT/app_autosave_gpu.txt
if [ -n "$CR_DEV_EXTRA" ]; then
  [ -z "$CR_DEV_NO1B" ] && build/bench/resume_gpu --shape 1b 2>&1 | tee $OUT/resume_gpu_1b.txt
  # grep: the story models, and a random-weight model of SmolLM2-135M's shape (Q8_0)
  G=build/bench-models/smollm2-135m-shape-Q8_0.gguf
  mkdir -p build/bench-models
  [ -f $G ] || python3 tests/tools/mkmodel.py --out $G --type Q8_0 --fallback --dim 576 --layers 30 --heads 9 --kv-heads 3 \
      --ffn 1536 --vocab 49152 --ctx 8192 --rope-base 100000 --tied > /dev/null
  for d in --gpu ""; do
    CR_BENCH_GREP_MB=0.25 build/bench/grep $d 2>&1 | tee -a $OUT/grep.txt
    CR_BENCH_GREP_MB=0.05 build/bench/grep $d $G 2>&1 | tee -a $OUT/grep.txt
  done
  [ -n "$CR_DEV_8B" ] && build/bench/resume_gpu --shape 8b 2>&1 | tee $OUT/resume_gpu_8b.txt
fi
[ "$1" = bench ] && build/bench/cuda_bench "${@:2}" 2>&1 | tee $OUT/cuda_bench.txt
exit 0
