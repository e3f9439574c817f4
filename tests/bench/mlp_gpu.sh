#!/bin/bash
# mlp_gpu.sh - TTT-MLP on the GPU in one go, for a machine with an NVIDIA GPU,
# from binaries built elsewhere (see tests/bench/model_gpu.sh for the setup):
#   1. test_cuda: every layer_linear_* and layer_mlp_* reference case through
#      the GPU layer (fp32, 1e-4), then test_cuda_model (GPU vs CPU model,
#      TTT-Linear and TTT-MLP, both backbones);
#   2. tiny end to end with --arch ttt-mlp: ttt-train cuda vs cpu (loss per
#      step), ttt-eval cuda vs cpu on the cuda-trained checkpoint;
#   3. tokens/s of the 125m preset with --arch ttt-mlp (Mamba backbone, ctx
#      2048, batch 8), fp32 and bf16 projection inputs;
#   4. compute-sanitizer memcheck of test_cuda when there is time.
#
#   tests/bench/mlp_gpu.sh BINDIR DATADIR REFVECTORS [OUTDIR] [STEPS]
#
# BINDIR holds ttt-train, ttt-eval, test_cuda, test_cuda_model; DATADIR the
# shards tiny-{train,val}-*.tok (vocab 256) and big-train-*.tok (vocab 32000).
B=${1:?BINDIR}; D=${2:?DATADIR}; R=${3:?REFVECTORS}; O=${4:-/tmp/mlp_gpu}; S=${5:-10}
mkdir -p "$O"
W=$(mktemp -d)
hr() { echo; echo "== $*"; }
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv

hr "test_cuda (reference cases)"
TTT_REFVECTORS=$R timeout 120 "$B/test_cuda"; echo "rc=$?"
hr "test_cuda_model"
timeout 150 "$B/test_cuda_model"; echo "rc=$?"

TINY=(-d "$D/tiny-train-*.tok" --val "$D/tiny-val-*.tok" -c tiny --ctx 64 --batch 4 --steps 20 --eval-every 10
      --save-every 10 --seed 3 --arch ttt-mlp)
hr "tiny ttt-mlp: 20 steps on cuda and on cpu (loss, val_loss per step)"
timeout 60 "$B/ttt-train" "${TINY[@]}" -o "$W/g" --device cuda -q; echo "rc=$?"
timeout 90 "$B/ttt-train" "${TINY[@]}" -o "$W/c" --device cpu -q; echo "rc=$?"
paste <(grep -o '"step":[0-9]*,"loss":[0-9.e-]*\(,"val_loss":[0-9.e-]*\)\?' "$W/g/metrics.jsonl") \
      <(grep -o '"loss":[0-9.e-]*\(,"val_loss":[0-9.e-]*\)\?' "$W/c/metrics.jsonl") | awk 'NR%5==0 || NR<=2'
hr "tiny ttt-mlp: ttt-eval cpu vs cuda on the cuda-trained checkpoint"
timeout 60 "$B/ttt-eval" -m "$W/g" -d "$D/tiny-val-*.tok" --device cpu | tail -1
timeout 60 "$B/ttt-eval" -m "$W/g" -d "$D/tiny-val-*.tok" --device cuda | tail -1
timeout 60 "$B/ttt-eval" -m "$W/g" -d "$D/tiny-val-*.tok" --device cuda --batch 3 --ctx 50 | tail -1
timeout 60 "$B/ttt-eval" -m "$W/g" -d "$D/tiny-val-*.tok" --device cpu --batch 3 --ctx 50 | tail -1

for prec in fp32 bf16; do
    hr "125m, Mamba backbone, TTT-MLP, ctx 2048, batch 8, $S steps, $prec"
    timeout 150 "$B/ttt-train" -d "$D/big-train-*.tok" -c 125m --arch ttt-mlp --ctx 2048 --batch 8 --steps "$S" \
        --eval-every 0 --save-every 0 -o "$W/b$prec" --device cuda --dtype $prec -q; echo "rc=$?"
    cp "$W/b$prec/metrics.jsonl" "$O/metrics_125m_mlp_$prec.jsonl" 2>/dev/null
    grep -o '"step":[0-9]*,"loss":[0-9.]*\|"tokens_per_s":[0-9.]*' "$W/b$prec/metrics.jsonl" | paste - - | tr '\n' ' '; echo
    grep -o '"tokens_per_s":[0-9.]*' "$W/b$prec/metrics.jsonl" | tail -n +3 | cut -d: -f2 | sort -n |
        awk '{a[NR]=$1} END {printf "125m ttt-mlp %s: median tokens/s over steps 3-: %.0f\n", "'$prec'", a[int((NR+1)/2)]}'
done
nvidia-smi --query-gpu=memory.used --format=csv
if command -v compute-sanitizer >/dev/null; then
    hr "compute-sanitizer memcheck test_cuda"
    TTT_REFVECTORS=$R timeout 90 compute-sanitizer --tool memcheck "$B/test_cuda" 2>&1 | tail -4; echo "rc=${PIPESTATUS[0]}"
fi
rm -rf "$W"
