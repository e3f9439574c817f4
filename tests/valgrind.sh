#!/usr/bin/env bash
# valgrind.sh [BINDIR] - valgrind memcheck over one end-to-end pipeline:
# tokenize train/encode/decode, pack (--val-docs, --val-fraction), inspect
# --verify, train (a very small model, two steps, a resume, a resume of the
# complete run), eval, generate with a saved state. Every
# step must have no invalid access, no use of uninitialised values and no
# definitely or possibly lost memory (--leak-check=full --error-exitcode=1).
# Every step runs even after a failure; the summary lists them all.
# Single-threaded (OMP/OpenBLAS threads 1) to keep it fast and free of
# thread-pool noise. Exit 0 all clean, 1 otherwise, 77 without valgrind.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "${1:-$here/../build}" && pwd)
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not installed, skipped"; exit 77; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=Haswell
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

vg=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,possible
    --errors-for-leak-kinds=definite,possible --track-origins=yes --num-callers=30 -q
    --suppressions="$here/valgrind.supp")
failed=()
step=0
# run NAME CMD... : runs CMD under memcheck; stdin/stdout as given by the caller.
run() {
  local name=$1; shift
  step=$((step + 1))
  "${vg[@]}" --log-file="vg.$step.log" "$@"
  local rc=$?
  if [ "$rc" -ne 0 ] || [ -s "vg.$step.log" ]; then
    echo "FAIL $name (exit $rc)" >&2
    sed 's/^/    /' "vg.$step.log" | head -60 >&2
    failed+=("$name")
  else
    echo "ok   $name" >&2
  fi
}

for i in 1 2 3; do
  for j in $(seq 1 30); do
    printf 'Doc %d line %d: the quick brown fox jumps over the lazy dog. Caf\xc3\xa9 \xf0\x9f\x98\x80\n' "$i" "$j"
  done > doc$i.txt
done
printf '{"text": "a json \\"document\\"\\n"}\n\n{"text": "second"}\n' > docs.jsonl
cat > cfg.json <<'CFG'
{"vocab_size": 300, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
 "num_attention_heads": 2, "max_position_embeddings": 32}
CFG

run "tokenize train"        "$bin/ttt-tokenize" train -q -v 300 -o tok.json doc1.txt doc2.txt doc3.txt
run "tokenize encode"       "$bin/ttt-tokenize" encode -t tok.json -f doc1.txt doc2.txt doc3.txt > s.tks
run "tokenize encode jsonl" "$bin/ttt-tokenize" encode -t tok.json --format jsonl -f docs.jsonl > j.tks
run "tokenize decode"       "$bin/ttt-tokenize" decode -t tok.json s.tks > back.txt
cat doc1.txt doc2.txt doc3.txt | cmp -s - back.txt || { echo "FAIL decode does not give the input back" >&2; failed+=("round trip"); }
run "pack"                  "$bin/ttt-pack" -q -o data --block-tokens 128 --val-docs 1 s.tks
run "pack --val-fraction"   "$bin/ttt-pack" -q -o frac --shard-tokens 200 --val-fraction 0.3 - < s.tks
run "inspect --verify"      "$bin/ttt-inspect" --verify data-train-000000.tok data-val-000000.tok s.tks tok.json > inspect.out
run "inspect --docs"        "$bin/ttt-inspect" -t tok.json --docs 2 data-train-000000.tok > /dev/null
printf 'garbage that is no shard' > bad.tok
"${vg[@]}" --log-file=vg.bad.log "$bin/ttt-inspect" --verify bad.tok >/dev/null 2>&1
[ $? -eq 1 ] && [ ! -s vg.bad.log ] && echo "ok   inspect of a bad file (exit 1, clean)" >&2 \
  || { echo "FAIL inspect of a bad file" >&2; cat vg.bad.log >&2; failed+=("inspect bad file"); }
run "train"                 "$bin/ttt-train" -q -d 'data-train-*.tok' --val 'data-val-*.tok' -t tok.json -c cfg.json \
                              -o run --ctx 32 --batch 2 --steps 2 --val-windows 2
run "train --resume"        "$bin/ttt-train" -q --resume run --steps 3
run "train, run complete"   "$bin/ttt-train" -q --resume run --steps 3
run "eval"                  "$bin/ttt-eval" -q -m run -d 'data-val-*.tok' --ctx 32 > eval.out
run "generate"              "$bin/ttt-generate" -q -m run -p "the quick" -n 5 --seed 1 --state-out st > gen.out
run "generate --state-in"   "$bin/ttt-generate" -q -m run -n 3 --state-in st > gen2.out
run "inspect checkpoint"    "$bin/ttt-inspect" run/model.safetensors > /dev/null

echo "valgrind.sh: $step steps under memcheck, ${#failed[@]} failed${failed:+: ${failed[*]}}" >&2
[ ${#failed[@]} -eq 0 ]
