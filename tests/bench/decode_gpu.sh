#!/bin/bash
# decode_gpu.sh - GPU decoding (ttt-generate --device cuda) in one go, for a
# machine with an NVIDIA GPU, from binaries built elsewhere:
#   1. test_cuda_decode (GPU vs CPU decode logits, both backbones, TTT-Linear
#      and TTT-MLP, prefill 0/1/16/19 + 40 steps; state interchange);
#   2. for each tiny trained run: greedy ttt-generate --device cuda vs
#      --device cpu, byte for byte (short and ~1k-token prompts), and state
#      files crossing devices (cuda --state-out -> cpu --state-in and back)
#      against one uninterrupted CPU run;
#   3. ms per generated token after prompts of 1k, 4k, 16k and 32k tokens,
#      125m preset, random weights (decode_gpu), TTT-Linear then TTT-MLP.
#
#   tests/bench/decode_gpu.sh BINDIR PROMPTFILE RUNDIR...
#
# BINDIR holds ttt-generate, test_cuda_decode and decode_gpu; PROMPTFILE is
# text for the long prompt; each RUNDIR a trained checkpoint with its
# tokenizer.json.
B=${1:?BINDIR}; TXT=${2:?PROMPTFILE}; shift 2
W=$(mktemp -d)
hr() { echo; echo "== $*"; }
same() { if cmp -s "$1" "$2"; then echo "same ($(stat -c %s "$1") bytes)"; else echo "DIFFER: $(cmp "$1" "$2" 2>&1 | head -1)"; fi; }
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv,noheader

hr "test_cuda_decode"
timeout 90 "$B/test_cuda_decode"; echo "rc=$?"

long=$(head -c 4000 "$TXT")
for run in "$@"; do
    G=("$B/ttt-generate" -m "$run" --greedy -q)
    hr "$run: greedy cuda vs cpu"
    "${G[@]}" -p "And God said" -n 200 --device cpu > "$W/c1"; "${G[@]}" -p "And God said" -n 200 --device cuda > "$W/g1"
    echo "short prompt, 200 tokens: $(same "$W/c1" "$W/g1")"
    "${G[@]}" -p "$long" -n 100 --device cpu > "$W/c2"; "${G[@]}" -p "$long" -n 100 --device cuda -v 2>"$W/v" > "$W/g2"
    echo "4000-byte prompt, 100 tokens: $(same "$W/c2" "$W/g2")"; cat "$W/v"
    head -c 160 "$W/g1"; echo
    hr "$run: state files across devices (sampled, seed 5)"
    # --seed only on the first leg: with --state-in it would restart the RNG
    S=("$B/ttt-generate" -m "$run" -q --temperature 0.8)
    "${S[@]}" --seed 5 -p "And God said" -n 60 --device cpu > "$W/one"
    "${S[@]}" --seed 5 -p "And God said" -n 0 --device cuda --state-out "$W/s0"
    "${S[@]}" --state-in "$W/s0" -n 23 --device cpu --state-out "$W/s1" > "$W/p1"
    "${S[@]}" --state-in "$W/s1" -n 37 --device cuda > "$W/p2"
    cat "$W/p1" "$W/p2" > "$W/two"
    echo "cpu 60 == cuda prefill -> cpu 23 -> cuda 37: $(same "$W/one" "$W/two")"
done

hr "ms/token vs prompt length, 125m, random weights"
timeout 100 "$B/decode_gpu" 125m linear 1024,4096,16384,32768 64; echo "rc=$?"
timeout 80 "$B/decode_gpu" 125m mlp 1024,4096,16384,32768 64; echo "rc=$?"
rm -rf "$W"
