#!/bin/bash
# model_gpu.sh - the GPU model's checks and training benchmark in one go, for
# a machine with an NVIDIA GPU, from binaries built elsewhere:
#   1. test_cuda_model (GPU vs CPU model: loss, every gradient, AdamW steps),
#      also under compute-sanitizer when it is there;
#   2. tiny end to end: ttt-train --device cuda vs --device cpu (loss curves),
#      stop + --resume on the GPU, ttt-eval --device cuda vs cpu, TTT-MLP refusal;
#   3. tokens/s of the 125m preset (Mamba backbone, TTT-Linear, ctx 2048,
#      batch 8) for 20 steps, fp32 and bf16 GEMM inputs.
#
#   tests/bench/model_gpu.sh BINDIR DATADIR [OUTDIR]
#
# BINDIR holds ttt-train, ttt-eval, test_cuda_model; DATADIR the shards
# tiny-{train,val}-*.tok (vocab 256) and big-train-*.tok (vocab 32000), e.g.
# from tests/unit/mkstream.c | ttt-pack.
B=${1:?BINDIR}; D=${2:?DATADIR}; O=${3:-/tmp/model_gpu}
mkdir -p "$O"
W=$(mktemp -d)
hr() { echo; echo "== $*"; }
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv

hr "test_cuda_model"
timeout 300 "$B/test_cuda_model"; echo "rc=$?"
if command -v compute-sanitizer >/dev/null; then
    hr "compute-sanitizer test_cuda_model"
    timeout 240 compute-sanitizer --tool memcheck "$B/test_cuda_model" 2>&1 | tail -4; echo "rc=${PIPESTATUS[0]}"
fi

TINY=(-d "$D/tiny-train-*.tok" --val "$D/tiny-val-*.tok" -c tiny --ctx 64 --batch 4 --steps 30 --eval-every 10
      --save-every 10 --seed 3)
hr "tiny: 30 steps on cuda and on cpu (loss, val_loss per step)"
timeout 120 "$B/ttt-train" "${TINY[@]}" -o "$W/g" --device cuda -v; echo "rc=$?"
timeout 120 "$B/ttt-train" "${TINY[@]}" -o "$W/c" --device cpu -q; echo "rc=$?"
paste <(grep -o '"step":[0-9]*,"loss":[0-9.e-]*\(,"val_loss":[0-9.e-]*\)\?' "$W/g/metrics.jsonl") \
      <(grep -o '"loss":[0-9.e-]*\(,"val_loss":[0-9.e-]*\)\?' "$W/c/metrics.jsonl") | awk 'NR%5==0 || NR<=3'
hr "tiny: stop after 15 + resume on cuda"
timeout 120 "$B/ttt-train" "${TINY[@]}" -o "$W/r" --device cuda -q --stop-after 15; echo "rc=$?"
timeout 120 "$B/ttt-train" --resume "$W/r" --device cuda -q; echo "rc=$?"
tail -1 "$W/g/metrics.jsonl"; tail -1 "$W/r/metrics.jsonl"
hr "tiny: ttt-eval cpu vs cuda on the cuda-trained checkpoint"
"$B/ttt-eval" -m "$W/g" -d "$D/tiny-val-*.tok" --device cpu --by-position | head -3
"$B/ttt-eval" -m "$W/g" -d "$D/tiny-val-*.tok" --device cuda --by-position | head -3
"$B/ttt-eval" -m "$W/g" -d "$D/tiny-val-*.tok" --device cuda --batch 3 --ctx 50 | tail -1
"$B/ttt-eval" -m "$W/g" -d "$D/tiny-val-*.tok" --device cpu --batch 3 --ctx 50 | tail -1
hr "refusal: ttt-mlp"
"$B/ttt-train" "${TINY[@]}" -o "$W/m" --arch ttt-mlp --device cuda; echo "rc=$?"

for prec in fp32 bf16 ; do
    hr "125m, Mamba backbone, TTT-Linear, ctx 2048, batch 8, 20 steps, $prec"
    timeout 400 "$B/ttt-train" -d "$D/big-train-*.tok" -c 125m --ctx 2048 --batch 8 --steps 20 \
        --eval-every 0 --save-every 0 -o "$W/b$prec" --device cuda --dtype $prec -v; echo "rc=$?"
    cp "$W/b$prec/metrics.jsonl" "$O/metrics_125m_$prec.jsonl" 2>/dev/null
    grep -o '"step":[0-9]*,"loss":[0-9.]*\|"tokens_per_s":[0-9.]*' "$W/b$prec/metrics.jsonl" | paste - - | tr '\n' ' '; echo
    grep -o '"tokens_per_s":[0-9.]*' "$W/b$prec/metrics.jsonl" | tail -n +4 | cut -d: -f2 | sort -n |
        awk '{a[NR]=$1} END {printf "125m %s: median tokens/s over steps 4-20: %.0f (ratio to 3300: %.2f)\n", "'$prec'", a[int((NR+1)/2)], a[int((NR+1)/2)]/3300}'
done
nvidia-smi --query-gpu=memory.used --format=csv
rm -rf "$W"
