#!/usr/bin/env bash
# mpi_scaling.sh [PRESET] [CTX] [BATCH] [STEPS] - data-parallel training
# throughput of ttt-train on this machine's CPU: tokens/s with 1 rank and
# with 2 ranks (one thread each, global batch BATCH), plus 1 rank with 2
# threads for comparison. Prints a table.
#
#   PRESET  model preset (default tiny)        CTX    window (default 128)
#   BATCH   global batch (default 8)           STEPS  steps per run (default 30)
#
# tokens/s = tokens of the steps after the first 5 / their wall time (from
# metrics.jsonl's elapsed_s), so start-up and the first allocations do not
# count. The data is a synthetic corpus made here. Binaries come from
# $TTT_BIN_DIR (default: build/ next to this script). Needs mpirun.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${TTT_BIN_DIR:-$here/../../build}
preset=${1:-tiny} ctx=${2:-128} batch=${3:-8} steps=${4:-30}
command -v mpirun >/dev/null || { echo "mpi_scaling.sh: mpirun not found" >&2; exit 1; }
mpirun=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive

mkdir "$tmp/corpus"
awk -v dir="$tmp/corpus" 'BEGIN { srand(3);
  split("red big small old green happy quiet dark", A, " ");
  split("cat dog bird fox king queen horse child", N, " ");
  split("sees chases finds follows loves hears meets helps", V, " ");
  for (d = 1; d <= 40; d++) {
    f = sprintf("%s/doc%02d.txt", dir, d);
    for (s = 1; s <= 200; s++)
      printf "the %s %s %s the %s %s. ", A[int(rand()*8)+1], N[int(rand()*8)+1],
             V[int(rand()*8)+1], A[int(rand()*8)+1], N[int(rand()*8)+1] > f;
    close(f)
  } }'
"$bin/ttt-tokenize" train -q -v 512 -o "$tmp/tok.json" "$tmp"/corpus/*.txt
"$bin/ttt-tokenize" encode -t "$tmp/tok.json" "$tmp"/corpus/*.txt | "$bin/ttt-pack" -q -o "$tmp/data" -

# rate RUNDIR: tokens/s over steps 6..STEPS
rate() {
  awk -F'[:,]' '{ for (i = 1; i < NF; i++) { if ($i == "\"tokens\"") t = $(i+1); if ($i == "\"elapsed_s\"") e = $(i+1) }
                  sub(/}/, "", e); if (NR == 5) { t0 = t; e0 = e } }
                END { printf "%.0f", (t - t0) / (e - e0) }' "$1/metrics.jsonl"
}

args=(-d "$tmp/data-train-*.tok" -c "$preset" --ctx "$ctx" --batch "$batch" --steps "$steps" --eval-every 0 -q)
"$bin/ttt-train" "${args[@]}" --threads 1 -o "$tmp/r1"
"${mpirun[@]}" -np 2 "$bin/ttt-train" "${args[@]}" --threads 1 -o "$tmp/r2"
"$bin/ttt-train" "${args[@]}" --threads 2 -o "$tmp/t2"
r1=$(rate "$tmp/r1") r2=$(rate "$tmp/r2") t2=$(rate "$tmp/t2")

echo "ttt-train data parallel, $preset, ctx $ctx, global batch $batch, $steps steps, $(nproc) CPUs"
printf '%-22s %12s %9s\n' "setup" "tokens/s" "speed-up"
printf '%-22s %12s %9s\n' "1 rank x 1 thread" "$r1" "1.00"
printf '%-22s %12s %9s\n' "2 ranks x 1 thread" "$r2" "$(awk -v a="$r2" -v b="$r1" 'BEGIN { printf "%.2f", a / b }')"
printf '%-22s %12s %9s\n' "1 rank x 2 threads" "$t2" "$(awk -v a="$t2" -v b="$r1" 'BEGIN { printf "%.2f", a / b }')"
