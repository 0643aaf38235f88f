#!/bin/bash
# Session 10: the register-direct decode attention ends splits with no valid key after their
# first stages' copies (build/) against no skip (build2/, -DCRK_DRD_NOSKIP), alternated in one
# run; decode with a full cache and from an empty one (tg128's conditions); then per-kernel
# times (ncu) of one decode step from an empty cache.
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
bash tests/device/run.sh || exit 1
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
make -j16 B=build2 CUDA=1 UI_LIBS="-lncursesw -ltinfo" EXTRA_CFLAGS=-I.carry/include LDFLAGS="-pthread -L.carry/lib" \
     EXTRA_NVFLAGS=-DCRK_DRD_NOSKIP build2/bench/cuda_bench > $OUT/build2.log 2>&1 || { tail -5 $OUT/build2.log; exit 1; }
for r in 1 2; do
for b in build build2; do
  echo "== $b"
  $b/bench/cuda_bench --parts decode > $OUT/d.txt 2>&1; cat $OUT/d.txt >> $OUT/dec_$b.txt
  grep -E "decode:|empty cache" $OUT/d.txt | sed 's/roofline \(.*\) (.*) ->/roofline \1 ->/; s/(tokens 8..127, as tg128)//' | cut -c1-110
done
done
for m in "8B Q4_K" "1B Q4_K"; do
  f=$OUT/ncu.csv
  CR_BENCH_PROFILE=2 CR_BENCH_MODEL="$m" timeout 200 ncu --clock-control none --profile-from-start off --csv --metrics gpu__time_duration.sum \
     build/bench/cuda_bench --parts decode > $f 2>&1
  echo "== ncu $m, empty cache"; python3 tests/device/ncu_times.py $f | head -16
done
rm -f $OUT/d.txt $OUT/ncu.csv
