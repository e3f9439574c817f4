#!/usr/bin/env bash
# dist_gpu_scaling.sh DATA [RANKS...] - data-parallel scaling of
# ttt-train --device cuda over the GPUs of one host (mpirun, one rank a GPU,
# NCCL), the commands of the README's two-GPU table:
#
#   1. the same global batch on 1 and on R ranks: tokens/s, speed-up,
#      efficiency, and the largest relative difference of the training loss
#      from the one-rank run over all steps (the loss curves must agree);
#   2. the same batch a rank (global batch BATCH x R): tokens/s and
#      efficiency against one rank, and one rank at the largest global batch.
#
#   DATA   training shards, a quoted glob ('big-train-*.tok')
#   RANKS  rank counts to run besides 1 (default: 2 .. the GPUs nvidia-smi lists,
#          doubling)
#
# Environment: PRESET (125m), CTX (2048), BATCH (16: the global batch of
# part 1, and the batch a rank of part 2), STEPS (30), DTYPE (bf16),
# DEVICE (cuda; cpu runs the same on the CPU: a check of the script),
# TTT_BIN_DIR (build/ beside this script). tokens/s: the median of
# metrics.jsonl's tokens_per_s over steps 4..STEPS. NCCL's NVLink multicast
# stays off (NCCL_NVLS_ENABLE=0) unless the environment sets it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${TTT_BIN_DIR:-$here/../../build}
data=${1:?usage: dist_gpu_scaling.sh DATA [RANKS...]}
shift
preset=${PRESET:-125m} ctx=${CTX:-2048} batch=${BATCH:-16} steps=${STEPS:-30}
dtype=${DTYPE:-bf16} device=${DEVICE:-cuda}
ranks=("$@")
if [ ${#ranks[@]} -eq 0 ]; then
  ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  for ((r = 2; r <= ngpu; r *= 2)); do ranks+=("$r"); done
  [ ${#ranks[@]} -gt 0 ] || { echo "dist_gpu_scaling.sh: fewer than 2 GPUs and no RANKS given" >&2; exit 1; }
fi
command -v mpirun >/dev/null || { echo "dist_gpu_scaling.sh: mpirun not found" >&2; exit 1; }
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
mpirun=(mpirun -x NCCL_NVLS_ENABLE)
[ -n "${LD_LIBRARY_PATH:-}" ] && mpirun+=(-x LD_LIBRARY_PATH)
[ "$device" = cpu ] && mpirun+=(--oversubscribe)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

args=(-d "$data" -c "$preset" --ctx "$ctx" --steps "$steps" --eval-every 0 --save-every 0 --seed 3 -q --device "$device")
[ "$device" = cuda ] && args+=(--dtype "$dtype")
# run NAME RANKS GLOBAL_BATCH
run() {
  if [ "$2" = 1 ]; then "$bin/ttt-train" "${args[@]}" --batch "$3" -o "$tmp/$1"
  else "${mpirun[@]}" -np "$2" "$bin/ttt-train" "${args[@]}" --batch "$3" -o "$tmp/$1"; fi
}
med() {
  grep -o '"tokens_per_s":[0-9.]*' "$tmp/$1/metrics.jsonl" | tail -n +4 | cut -d: -f2 | sort -n |
    awk '{ a[NR] = $1 } END { printf "%.0f", a[int((NR + 1) / 2)] }'
}
losses() { grep -o '"loss":[0-9.e+-]*' "$tmp/$1/metrics.jsonl" | cut -d: -f2; }
lossdiff() {
  paste <(losses "$1") <(losses "$2") |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d / $1 > m) m = d / $1 } END { printf "%.2g", m }'
}
ratio() { awk -v a="$1" -v b="$2" -v s="${3:-1}" 'BEGIN { printf "%.2f", a / b / s }'; }
pct() { awk -v a="$1" -v b="$2" -v s="$3" 'BEGIN { printf "%.1f%%", 100 * a / b / s }'; }
row() { printf '%-6s %-22s %12s %9s %11s %14s\n' "$@"; }

rmax=${ranks[${#ranks[@]} - 1]}
prec=""
[ "$device" = cuda ] && prec=", $dtype"
echo "ttt-train --device $device data parallel: $preset, ctx $ctx$prec, $steps steps; tokens/s: median of steps 4.."
echo
echo "the same global batch: speed-up and efficiency against 1 rank; the training loss against 1 rank's"
row ranks "global batch (a rank)" tokens/s speed-up efficiency "max rel. diff"
run one 1 "$batch"
r1=$(med one)
row 1 "$batch ($batch)" "$r1" 1.00 "" ""
for r in "${ranks[@]}"; do
  run "s$r" "$r" "$batch"
  rs=$(med "s$r")
  row "$r" "$batch ($((batch / r)))" "$rs" "$(ratio "$rs" "$r1")" "$(pct "$rs" "$r1" "$r")" "$(lossdiff one "s$r")"
done
echo
echo "the same batch a rank ($batch): against 1 rank at $batch (and 1 rank at $((batch * rmax)), the largest global batch)"
row ranks "global batch (a rank)" tokens/s speed-up efficiency ""
row 1 "$batch ($batch)" "$r1" 1.00 "" ""
for r in "${ranks[@]}"; do
  run "w$r" "$r" $((batch * r))
  rw=$(med "w$r")
  row "$r" "$((batch * r)) ($batch)" "$rw" "$(ratio "$rw" "$r1")" "$(pct "$rw" "$r1" "$r")" ""
done
# one GPU may not hold the largest global batch (125m at ctx 2048: batch 64 did not fit)
if run big 1 $((batch * rmax)); then
  rb=$(med big)
  row 1 "$((batch * rmax)) ($((batch * rmax)))" "$rb" "$(ratio "$rb" "$r1")" "" ""
else
  row 1 "$((batch * rmax)) ($((batch * rmax)))" "did not run" "" "" ""
fi
