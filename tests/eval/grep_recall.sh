#!/bin/sh
# grep-by-question recall@K on ../shared/data/logs/loghub_2k: for each log an event template
# (a regular expression over the raw line, the ground truth; loghub's *_structured.csv files
# are not in ../shared, so the template is matched on the text), a question about it and the
# keyword a person would grep for. recall@K = |truth in top K| / min(K, |truth|).
#   tests/eval/grep_recall.sh BIN MODEL [K1 K2]
BIN=$1; M=$2; K1=${3:-10}; K2=${4:-50}
S=${CR_SHARED:-../shared}
D=$S/data/logs/loghub_2k
T=${TMPDIR:-/tmp}/cr_grep_eval.$$
mkdir -p "$T"
trap 'rm -rf "$T"' EXIT
echo "| log | question | truth lines | keyword | grep -i recall@$K1 | @$K2 | --grep recall@$K1 | @$K2 |"
echo "|---|---|---:|---|---:|---:|---:|---:|"
while IFS='|' read -r log q re kw; do
  [ -f "$D/$log" ] || continue
  grep -nE "$re" "$D/$log" | cut -d: -f1 > "$T/truth"
  nt=$(wc -l < "$T/truth")
  grep -inF "$kw" "$D/$log" | cut -d: -f1 | head -n "$K2" > "$T/kw"
  if ! "$BIN" --model "$M" --grep "$q" -m "$K2" -n -q ${CR_EVAL_THREADS:+-t $CR_EVAL_THREADS} "$D/$log" > "$T/out" 2> "$T/err"; then
    echo "| $log | $q | $nt | $kw | error: $(head -1 "$T/err") | | | |"; continue
  fi
  cut -d: -f1 "$T/out" > "$T/qa"
  rec() {  # rec FILE K
    head -n "$2" "$1" | sort -u > "$T/top"
    hit=$(sort -u "$T/truth" | comm -12 - "$T/top" | wc -l)
    den=$nt; [ "$den" -gt "$2" ] && den=$2
    [ "$den" -eq 0 ] && { echo "-"; return; }
    awk -v h="$hit" -v d="$den" 'BEGIN{printf "%.2f", h/d}'
  }
  echo "| $log | $q | $nt | $kw | $(rec "$T/kw" "$K1") | $(rec "$T/kw" "$K2") | $(rec "$T/qa" "$K1") | $(rec "$T/qa" "$K2") |"
done <<'LIST'
OpenSSH_2k.log|Which login attempts failed because of a wrong password?|Failed password for|password
Linux_2k.log|Where did a user fail to authenticate?|authentication failure;|authenticate
HDFS_2k.log|Which blocks were deleted?|Deleting block|deleted
Apache_2k.log|Which workers were in an error state?|workerEnv in error state|error state
Zookeeper_2k.log|When was a connection broken?|Connection broken for id|broken
Spark_2k.log|Which blocks were found locally?|Found block rdd_[0-9_]+ locally|locally
Hadoop_2k.log|When did renewing the lease fail?|Failed to renew lease|renewing
BGL_2k.log|Which data TLB errors occurred?|data TLB error interrupt|TLB error
LIST
