#!/usr/bin/env bash
# cpu_model.sh [RUNS] [ITERS] - CPU speed of the whole model against the
# official PyTorch code: builds `make bench`, runs build/bench/bench_model
# RUNS times (default 3) with ITERS timed iterations each (default 2), and
# prints, for TTT-Linear and TTT-MLP on both backbones, the best forward and
# forward+backward tokens/s of the runs, the model GFLOP/s (bench_model's
# analytic FLOP count), the sgemm GFLOP/s measured in the same runs, and the
# ratio to the PyTorch figures below.
#
# Config (fixed by bench_model): vocab 8192, hidden 256, intermediate 688,
# 4 layers, 4 heads, context 512, batch 4, float32.
#
# Baseline: the official PyTorch implementation (torch 1.13 on OpenBLAS,
# 2 threads), measured by us on this machine kind (2-core AMD EPYC VM):
#   TTT-Linear  forward 4300 tok/s, forward+backward 1150-1250 tok/s
#   TTT-MLP     forward+backward 750-770 tok/s (forward not measured)
#   sgemm in those runs 126-197 GFLOP/s.
# Ratios use the top of each range (the conservative choice) and the same
# baseline for both backbones.
#
# BLAS: when Debian's OpenMP build of OpenBLAS is installed
# (libopenblas-openmp-dev) the benchmark is linked against it, so that
# OpenBLAS and the TTT layer share one OpenMP thread pool instead of two
# pools spinning against each other; TTT_BENCH_BLAS=default keeps whatever
# the Makefile links. The machine is usually shared: the load average is
# printed before and after; compare only runs with similar load.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${1:-3}
iters=${2:-2}
case "$runs$iters" in *[!0-9]*|'') echo "usage: cpu_model.sh [RUNS] [ITERS]" >&2; exit 2 ;; esac
[ "$runs" -ge 1 ] && [ "$iters" -ge 1 ] || { echo "usage: cpu_model.sh [RUNS] [ITERS]" >&2; exit 2; }

ompdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/openblas-openmp
ompinc=/usr/include/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/openblas-openmp
bench=$root/build/bench/bench_model
cd "$root"
if [ "${TTT_BENCH_BLAS:-auto}" != default ] && [ -e "$ompdir/libopenblas.so" ]; then
  # relink the benchmarks only; the objects do not depend on the variant
  rm -f build/bench/bench_model build/bench/bench_ttt_layer
  make -s -j2 bench BLAS_CFLAGS="-I$ompinc" BLAS_LIBS="-L$ompdir -Wl,-rpath,$ompdir -lopenblas" >&2
else
  make -s -j2 bench >&2
fi
blas=$(ldd "$bench" | awk '/libopenblas/ { print $3 }')

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "# $(date -u '+%Y-%m-%d %H:%M UTC')  $(nproc) cores  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "# BLAS: ${blas:-?}  OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}  OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)   runs $runs x iters $iters (best of the runs)"
for ((r = 0; r < runs; r++)); do "$bench" "$iters" >> "$tmp"; done
echo "# load after:  $(cut -d' ' -f1-3 /proc/loadavg)"

awk '
  /^sgemm/ { for (i = 1; i <= NF; i++) if ($i == "GFLOP/s") { v = $(i - 1) + 0; if (v > sg) sg = v; if (!smin || v < smin) smin = v } next }
  $1 == "linear" || $1 == "mlp" {
    k = $1 " " $2
    if (!(k in f)) order[n++] = k
    if ($3 + 0 > f[k]) { f[k] = $3 + 0; fg[k] = $4 + 0 }
    if ($5 + 0 > fb[k]) { fb[k] = $5 + 0; fbg[k] = $6 + 0 }
  }
  END {
    base_f["linear"] = 4300; base_fb["linear"] = 1250; base_fb["mlp"] = 770
    printf "sgemm 2048x688x256 in the same runs: best %.1f GFLOP/s (worst %.1f); PyTorch runs: 126-197\n", sg, smin
    printf "%-7s %-11s %9s %8s %8s %9s %8s %8s %8s\n", "layer", "backbone", "fwd tok/s", "GFLOP/s", "vs torch",
           "f+b tok/s", "GFLOP/s", "of sgemm", "vs torch"
    for (i = 0; i < n; i++) {
      k = order[i]; split(k, p, " ")
      rf = (p[1] in base_f) ? sprintf("%.2fx", f[k] / base_f[p[1]]) : "n/a"
      rfb = (p[1] in base_fb) ? sprintf("%.2fx", fb[k] / base_fb[p[1]]) : "n/a"
      printf "%-7s %-11s %9.0f %8.1f %8s %9.0f %8.1f %7.0f%% %8s\n", p[1], p[2], f[k], fg[k], rf, fb[k], fbg[k],
             sg ? 100 * fbg[k] / sg : 0, rfb
    }
  }' "$tmp"
