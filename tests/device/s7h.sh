#!/bin/bash
# session 7 run 9: Nsight Compute on attn_dec_rd (2 blocks per SM, not unrolled) and attn_dec_finish
cd "$(dirname "$0")/../.."
N=/usr/local/cuda/bin/ncu
timeout 150 bash tests/device/run.sh exec $N --set full --import-source yes -k regex:"attn_dec_rd|attn_dec_finish" --launch-count 2 -o /tmp/rd build/bench/cuda_bench --parts parts > $OUT/ncu_log.txt 2>&1
$N --import /tmp/rd.ncu-rep --page details > $OUT/ncu_rd.txt 2>&1
$N --import /tmp/rd.ncu-rep --page source --csv --print-source sass --kernel-name regex:attn_dec_rd > /tmp/rd.csv 2>/dev/null && /usr/bin/python3 tests/device/ncu_stalls.py /tmp/rd.csv > $OUT/rd_stalls.txt 2>&1
