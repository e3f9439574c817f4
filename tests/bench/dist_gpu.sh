#!/bin/bash
# dist_gpu.sh - the NCCL gradient all-reduce of ttt-train --device cuda under
# MPI (lib/dist_gpu.c, lib/cuda/dist_nccl.cu), checked on a GPU machine from
# binaries built elsewhere:
#   1. test_dist_nccl: plainly, under mpirun -np 1, and without NCCL;
#   2. tiny: mpirun -np 1 ttt-train --device cuda --allreduce nccl (a real
#      1-rank ncclAllReduce, an identity) vs the plain single-process GPU run
#      (loss curves must agree to rounding), and the plain run twice (the
#      GPU's own run-to-run noise: atomics);
#   3. 2 ranks on one GPU: auto falls back (NCCL refuses two ranks on one
#      device) with one warning, same curve; --allreduce nccl fails cleanly;
#      and with NCCL made unloadable (TTT_NCCL_LIBRARY).
#
#   tests/bench/dist_gpu.sh BINDIR DATADIR
#
# BINDIR: ttt-train, test_dist_nccl (MPI + CUDA build); DATADIR: the shards
# tiny-{train,val}-*.tok. mpirun, libmpi and libnccl come from PATH and
# LD_LIBRARY_PATH.
B=${1:?BINDIR}; D=${2:?DATADIR}
W=$(mktemp -d)
hr() { echo; echo "== $*"; }
R=(); [ "$(id -u)" = 0 ] && R=(--allow-run-as-root)
MPI=(mpirun "${R[@]}" -np 1)
MPI2=(mpirun "${R[@]}" --oversubscribe -np 2)
nvidia-smi -L
# step, loss, val_loss of a run, one line per step
curve() { grep -o '"step":[0-9]*,"loss":[0-9.e-]*\(,"val_loss":[0-9.e-]*\)\?' "$1/metrics.jsonl"; }
cmpc() {   # max relative loss difference of two runs, and bit-equal lines
    paste <(curve "$1" | sed 's/.*"loss":\([0-9.e-]*\).*/\1/') <(curve "$2" | sed 's/.*"loss":\([0-9.e-]*\).*/\1/') |
        awk -v a="$1" -v b="$2" '{ n++; d = $1 - $2; if (d < 0) d = -d; r = d / $1; if (r > m) m = r; s += ($1 == $2) }
            END { printf "%s vs %s: %d steps, max rel. loss diff %.3g, %d printed losses identical\n", a, b, n, m, s }'
}

hr "test_dist_nccl (1 process; mpirun -np 1; NCCL unloadable)"
timeout 60 "$B/test_dist_nccl"; echo "rc=$?"
timeout 60 "${MPI[@]}" "$B/test_dist_nccl"; echo "rc=$?"
TTT_NCCL_LIBRARY=/nonexistent timeout 60 "$B/test_dist_nccl"; echo "rc=$?"

T=(-d "$D/tiny-train-*.tok" --val "$D/tiny-val-*.tok" -c tiny --ctx 64 --batch 4 --steps 30 --eval-every 10
   --save-every 0 --seed 3 --device cuda)
hr "tiny, 30 steps: plain GPU run (twice) vs mpirun -np 1 --allreduce nccl"
timeout 60 "$B/ttt-train" "${T[@]}" -o "$W/plain" -q; echo "rc=$?"
timeout 60 "$B/ttt-train" "${T[@]}" -o "$W/plain2" -q; echo "rc=$?"
timeout 60 "${MPI[@]}" "$B/ttt-train" "${T[@]}" -o "$W/nccl" --allreduce nccl -v; echo "rc=$?"
timeout 60 "${MPI[@]}" "$B/ttt-train" "${T[@]}" -o "$W/auto1" -v; echo "rc=$?"
paste <(curve "$W/plain") <(curve "$W/nccl" | cut -d, -f2-) | awk 'NR<=3 || NR%10==0'
cmpc "$W/plain" "$W/plain2"; cmpc "$W/plain" "$W/nccl"; cmpc "$W/plain" "$W/auto1"
cmp "$W/plain/model.safetensors" "$W/nccl/model.safetensors" && echo "model.safetensors: plain and nccl bit-equal"

hr "2 ranks on the one GPU: auto (NCCL refuses, host path), nccl (error), NCCL unloadable"
timeout 90 "${MPI2[@]}" "$B/ttt-train" "${T[@]}" -o "$W/two" -v; echo "rc=$?"
cmpc "$W/plain" "$W/two"
timeout 60 "${MPI2[@]}" "$B/ttt-train" "${T[@]}" -o "$W/twon" --allreduce nccl 2>&1 | grep -v '^ *$' | head -4; echo "rc=${PIPESTATUS[0]}"
ls -d "$W/twon" 2>/dev/null || echo "no RUNDIR left"
timeout 60 "${MPI2[@]}" -x TTT_NCCL_LIBRARY=/nonexistent "$B/ttt-train" "${T[@]}" -o "$W/twox" -v; echo "rc=$?"
cmpc "$W/plain" "$W/twox"
rm -rf "$W"
