#!/bin/bash
# model_gpu.sh - the GPU model's checks and training benchmark in one go, for
# a machine with an NVIDIA GPU, from binaries built elsewhere:
#   1. test_cuda_model (GPU vs CPU model: loss, every gradient, AdamW steps),
#      also under compute-sanitizer when it is there;
#   2. tiny end to end: ttt-train --device cuda vs --device cpu (loss curves),
#      stop + --resume on the GPU, ttt-eval --device cuda vs cpu, TTT-MLP on cuda;
#   3. tokens/s of the 125m preset (Mamba backbone, ctx 2048): TTT-Linear fp32
#      and bf16 at batch 8, bf16 at batch 32; TTT-MLP bf16 at batch 8 and 16;
#      then one TTT_CUDA_PROFILE run (GPU time per region of a step);
#   4. the ceilings of this GPU measured in the same run (ceilings) and the
#      MFU of every run: tokens/s x training FLOPs per token (flops_cli:
#      model FLOPs, TTT inner loop included, training = 3 x forward) over the
#      measured bf16 GEMM rate (and, for fp32, over the fp32 GEMM rate too).
#
#   tests/bench/model_gpu.sh BINDIR DATADIR [OUTDIR]
#
# BINDIR holds ttt-train, ttt-eval, test_cuda_model, ceilings (nvcc -O3
# -arch=sm_90 -std=c++17 tests/bench/ceilings.cu -lcublas) and flops_cli
# (make build/bench/flops_cli); DATADIR the shards
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
hr "tiny: ttt-mlp on cuda (30 steps)"
"$B/ttt-train" "${TINY[@]}" -o "$W/m" --arch ttt-mlp --device cuda; echo "rc=$?"

# One training run of the 125m preset: median tokens/s of steps 4..STEPS into $W/tps_TAG.
train_125m() {   # TAG BATCH DTYPE ARCH STEPS
    hr "125m, Mamba backbone, $4, ctx 2048, batch $2, $5 steps, $3"
    timeout 400 "$B/ttt-train" -d "$D/big-train-*.tok" -c 125m --ctx 2048 --batch "$2" --steps "$5" --arch "$4" \
        --eval-every 0 --save-every 0 -o "$W/b$1" --device cuda --dtype "$3" -q; echo "rc=$?"
    cp "$W/b$1/metrics.jsonl" "$O/metrics_125m_$1.jsonl" 2>/dev/null
    grep -o '"tokens_per_s":[0-9.]*' "$W/b$1/metrics.jsonl" | tail -n +4 | cut -d: -f2 | sort -n |
        awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' > "$W/tps_$1"
    echo "125m $1: median tokens/s over steps 4-$5: $(cat "$W/tps_$1") (ratio to 3300: $(awk '{printf "%.1f", $1 / 3300}' "$W/tps_$1"))"
}
train_125m linear-fp32-b8 8 fp32 ttt-linear 12
train_125m linear-bf16-b8 8 bf16 ttt-linear 20
train_125m linear-bf16-b32 32 bf16 ttt-linear 14
train_125m mlp-bf16-b8 8 bf16 ttt-mlp 12
train_125m mlp-bf16-b16 16 bf16 ttt-mlp 10
hr "where a step's GPU time goes: TTT-Linear bf16, batch 32 (TTT_CUDA_PROFILE)"
TTT_CUDA_PROFILE=1 timeout 200 "$B/ttt-train" -d "$D/big-train-*.tok" -c 125m --ctx 2048 --batch 32 --steps 6 \
    --eval-every 0 --save-every 0 -o "$W/bprof" --device cuda --dtype bf16 -q; echo "rc=$?"

# The ceilings after the training runs (same card, same run), then MFU.
hr "ceilings of this GPU (median of 15, checked)"
timeout 300 "$B/ceilings" | tee "$O/ceilings.txt"; echo "rc=${PIPESTATUS[0]}"
ceil() { awk -v k="$1" '$1 == "ceiling" && $2 == k {print $3}' "$O/ceilings.txt"; }
bf16=$(ceil bf16_tflops); f32g=$(ceil fp32_gemm_tflops)
hr "MFU: 125m, Mamba backbone, ctx 2048 (model FLOPs, TTT inner loop included) over the bf16 GEMM rate"
"$B/flops_cli" -c 125m --arch ttt-linear --backbone mamba -T 2048 --vocab 32000 | tee "$O/flops_125m.txt"
for run in linear-fp32-b8 linear-bf16-b8 linear-bf16-b32 mlp-bf16-b8 mlp-bf16-b16; do
    tps=$(cat "$W/tps_$run" 2>/dev/null)
    arch=ttt-${run%%-*}
    if [ -z "$tps" ] || [ -z "$bf16" ]; then echo "$run: MFU not computed (tokens/s '${tps}', bf16 rate '${bf16}')"; continue; fi
    echo "$run: $("$B/flops_cli" -c 125m --arch "$arch" --backbone mamba -T 2048 --vocab 32000 --tokens-per-s "$tps" \
        --tflops "$bf16" | grep '^MFU')"
    if [ "$run" = linear-fp32-b8 ] && [ -n "$f32g" ]; then
        echo "$run over the fp32 (no TF32) GEMM rate: $("$B/flops_cli" -c 125m --arch ttt-linear --backbone mamba -T 2048 \
            --vocab 32000 --tokens-per-s "$tps" --tflops "$f32g" | grep '^MFU')"
    fi
done
nvidia-smi --query-gpu=memory.used --format=csv
rm -rf "$W"
