#!/bin/bash
# Branch gpu-next (not measured yet): keys rotated in fp16 arithmetic in the register-direct
# decode attention (CRK_DRD_HROT=1). On the GPU machine: correctness against the CPU twin,
# the decode-parts attention line and the 8B decode step, default against HROT, alternated.
export PATH=$PATH:/usr/local/cuda/bin
bash tests/device/run.sh exec true || exit 1
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
CRK_DRD_HROT=1 build/tests/cuda_kernels 2>&1 | grep -E "FAIL|register-direct|passed"
CRK_DRD_HROT=1 build/tests/cuda_e2e 2>&1 | grep -E "FAIL|passed"
for v in 0 1 0 1; do
  echo "== CRK_DRD_HROT=$v"
  CRK_DRD_HROT=$v build/bench/cuda_bench --parts parts 2>&1 | grep -E "decode attention.*2 shared" | sed 's/.*stages per warp.//'
  CRK_DRD_HROT=$v CR_BENCH_MODEL="8B" build/bench/cuda_bench --parts decode 2>&1 | grep -E "decode:"
done
