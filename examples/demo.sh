#!/usr/bin/env bash
# demo.sh - the whole job end to end on the King James Bible, on the CPU:
# extract the 66 books as documents, train a tokenizer, encode, pack (every
# tenth book held out for validation), train a small TTT-Linear model for a
# few minutes, evaluate it (perplexity and the loss-by-position curve as an
# SVG), and generate a paragraph. Run through `make demo`; knobs:
#   DEMO_DIR (demo)  DEMO_STEPS (300)  DEMO_CTX (256)  DEMO_BATCH (8)  DEMO_VOCAB (4096)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${TTT_BIN_DIR:-$here/build}
export PATH="$bin:$PATH"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
dir=${DEMO_DIR:-demo}
steps=${DEMO_STEPS:-300}
ctx=${DEMO_CTX:-256}
batch=${DEMO_BATCH:-8}
vocab=${DEMO_VOCAB:-4096}
mkdir -p "$dir"
t0=$SECONDS
step() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - t0)); }

step "extract the 66 books of the King James Bible"
"$here/examples/kjv-extract.sh" "$dir/kjv"
printf '%s documents in %s/kjv\n' "$(ls "$dir/kjv" | wc -l)" "$dir"

step "train a byte-level BPE tokenizer (vocab $vocab)"
ttt-tokenize train -v "$vocab" -o "$dir/tokenizer.json" "$dir"/kjv/*.txt
ttt-inspect "$dir/tokenizer.json"

step "encode and pack (every tenth book held out for validation)"
rm -f "$dir"/kjv-*.tok
ttt-tokenize encode -t "$dir/tokenizer.json" "$dir"/kjv/*.txt | ttt-pack -o "$dir/kjv" --val-fraction 0.1
ttt-inspect --verify "$dir"/kjv-*.tok | grep -E '^(file|tokens|documents|compression):'

step "train a small TTT-Linear model (Mamba backbone), $steps steps of $batch x $ctx tokens"
rm -rf "$dir/run"
ttt-train -d "$dir/kjv-train-*.tok" --val "$dir/kjv-val-*.tok" -c small --arch ttt-linear \
  -t "$dir/tokenizer.json" -o "$dir/run" --ctx "$ctx" --batch "$batch" --steps "$steps" \
  --eval-every $((steps / 5 > 0 ? steps / 5 : 1)) -v

step "evaluate on the held-out books"
ttt-eval -m "$dir/run" -d "$dir/kjv-val-*.tok" --by-position --plot "$dir/loss-by-position.svg"

step "generate"
ttt-generate -m "$dir/run" -p "And God said" -n 120 --temperature 0.8 --top-k 40 --seed 1
echo

step "done"
cat <<EOT
artefacts:
  $dir/kjv/                    the 66 books as text documents
  $dir/tokenizer.json          the tokenizer (Hugging Face format)
  $dir/kjv-train-*.tok         training shards; $dir/kjv-val-*.tok validation shards
  $dir/run/                    the trained model (model.safetensors, config.json, metrics.jsonl, ...)
  $dir/loss-by-position.svg    loss against token index on the held-out books
EOT
