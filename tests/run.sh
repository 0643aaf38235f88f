#!/bin/sh
# Runs every test binary of the given build folders and prints the total:
# "N passed, N failed, N skipped". Under the ASan build (second folder) only
# the CPU tests run, with CR_ASAN=1 so the long tests shrink their inputs.
cd "$(dirname "$0")/.." || exit 2
pass=0; fail=0; skip=0; bad=""
for b in "$@"; do
  asan=0; [ "$b" = build-asan ] && asan=1
  for t in "$b"/tests/*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    case "$t" in *.o|*.d) continue;; esac
    name=$(basename "$t")
    if [ $asan = 1 ]; then case "$name" in cuda_*) continue;; esac; fi
    echo "== $t"
    out=$(CR_ASAN=$asan CR_BUILD="$b" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v '^PASS ' | grep -v ' passed, .* failed, .* skipped$'
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -1)
    if [ -z "$line" ]; then
      echo "FAIL $t: exited with $rc before its summary"; fail=$((fail+1)); bad="$bad $t"; continue
    fi
    echo "   $line"
    pass=$((pass+$(echo "$line" | cut -d' ' -f1)))
    fail=$((fail+$(echo "$line" | cut -d' ' -f3)))
    skip=$((skip+$(echo "$line" | cut -d' ' -f5)))
    if [ $rc != 0 ]; then bad="$bad $t"; fi
  done
done
echo "TOTAL: $pass passed, $fail failed, $skip skipped"
[ -n "$bad" ] && echo "failing:$bad"
[ $fail = 0 ] && [ -z "$bad" ]
