#!/usr/bin/env bats
# ttt-eval: windowing, loss/ppl/bpb consistency, batch independence,
# --by-position, --plot, --json, and every bad input.
load test_helper

# Fixture, once per file: tokenizer, train/val shards, two tiny runs.
setup_file() {
  cd "$BATS_FILE_TMPDIR"
  make_tiny_runs
}

setup() { use_tiny_runs; }

# jfield NAME: a number field of the first JSON line in $output
jfield() { sed -n "1s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$output"; }

# close A B RTOL: |A-B| <= RTOL*|B|
close() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(d <= r * m) }'; }

@test "table: header and one row per model" {
  run ttt-eval -m run -d 'data-val-*.tok'
  assert_status 0
  [ "${lines[0]}" = "$(printf 'model\ttokens\twindows\tctx\tloss\tppl\tbpb')" ]
  [[ "${lines[1]}" == "run"$'\t'* ]]
  [ "${#lines[@]}" -eq 2 ]
  run ttt-eval -m run -m run2 -d 'data-val-*.tok'
  assert_status 0
  [ "${#lines[@]}" -eq 3 ]
  [[ "${lines[2]}" == "run2"$'\t'* ]]
}

@test "windows: every target once, last window kept; ctx defaults to the model's" {
  run ttt-eval -m run -d 'data-val-*.tok' --json --ctx 64
  assert_status 0
  n64=$(jfield tokens) w64=$(jfield windows)
  run ttt-eval -m run -d 'data-val-*.tok' --json --ctx 100
  n100=$(jfield tokens) w100=$(jfield windows)
  [ "$n64" -eq "$n100" ]                          # the same targets whatever T
  [ "$w64" -eq $(( (n64 + 63) / 64 )) ]           # short last window evaluated
  [ "$w100" -eq $(( (n100 + 99) / 100 )) ]
  [ "$(jfield bytes_scaled)" = false ]
  # the default ctx is the model config's max_position_embeddings
  run ttt-eval -m run -d 'data-val-*.tok' --json
  ctx=$(jfield ctx)
  want=$(grep -o '"max_position_embeddings": *[0-9]*' run/config.json | grep -o '[0-9]*$')
  [ "$ctx" -eq "$want" ]
}

@test "loss, perplexity and bits per byte agree" {
  run ttt-eval -m run -d 'data-val-*.tok' --json
  assert_status 0
  loss=$(jfield loss) ppl=$(jfield ppl) bpb=$(jfield bpb) n=$(jfield tokens) bytes=$(jfield bytes)
  close "$ppl" "$(awk -v l="$loss" 'BEGIN { print exp(l) }')" 1e-5
  close "$bpb" "$(awk -v l="$loss" -v n="$n" -v b="$bytes" 'BEGIN { print l * n / log(2) / b }')" 1e-5
  # an untrained-ish tiny model: between 0 and ln(vocab) + a margin
  awk -v l="$loss" 'BEGIN { exit !(l > 0 && l < 8) }'
}

@test "the result does not depend on --batch" {
  run ttt-eval -m run -d 'data-val-*.tok' --ctx 48 --batch 1 --json --by-position
  assert_status 0
  a=$output
  run ttt-eval -m run -d 'data-val-*.tok' --ctx 48 --batch 5 --json --by-position
  assert_status 0
  b=$output
  output=$a; la=$(jfield loss); na=$(jfield tokens)
  output=$b; lb=$(jfield loss); nb=$(jfield tokens)
  [ "$na" -eq "$nb" ]
  close "$la" "$lb" 1e-6
  # bucket by bucket too
  paste <(grep -o '"loss":[0-9.]*' <<<"$a") <(grep -o '"loss":[0-9.]*' <<<"$b") | tr -d '"los:' |
    while read -r x y; do close "$x" "$y" 1e-6; done
}

@test "--max-tokens: that many targets, bytes scaled and said so" {
  run ttt-eval -m run -d 'data-val-*.tok' --ctx 32 --max-tokens 100 --json
  assert_status 0
  [ "$(jfield tokens)" -eq 100 ]
  [ "$(jfield windows)" -eq 4 ]
  [ "$(jfield bytes_scaled)" = true ]
  run ttt-eval -m run -d 'data-val-*.tok' --ctx 32 --max-tokens 100
  assert_status 0
  assert_match "warning: .*evaluated 100 of [0-9]+ tokens"
  run ttt-eval -q -m run -d 'data-val-*.tok' --ctx 32 --max-tokens 100
  [[ "$output" != *warning* ]]
  # more than there is: everything, not scaled
  run ttt-eval -m run -d 'data-val-*.tok' --max-tokens 1G --json
  [ "$(jfield bytes_scaled)" = false ]
}

@test "--by-position: octave buckets that add up" {
  run ttt-eval -m run -d 'data-val-*.tok' --ctx 40 --by-position
  assert_status 0
  [ "$(printf '%s\n' "${lines[@]}" | grep -c $'^model\tfrom\tto\tcount\tloss$')" -eq 1 ]
  ranges=$(printf '%s\n' "${lines[@]}" | awk -F'\t' '$1 == "run" && NF == 5 { printf "%s-%s ", $2, $3 }')
  [ "$ranges" = "1-1 2-3 4-7 8-15 16-31 32-40 " ]
  run ttt-eval -m run -d 'data-val-*.tok' --ctx 40 --by-position --json
  windows=$(jfield windows) tokens=$(jfield tokens)
  [[ "$output" == *"{\"from\":1,\"to\":1,\"count\":$windows,"* ]]
  total=$(grep -o '"count":[0-9]*' <<<"$output" | cut -d: -f2 | awk '{ s += $1 } END { print s }')
  [ "$total" -eq "$tokens" ]
}

@test "--plot: an SVG with one curve per model and a legend" {
  run ttt-eval -m run -m run2 -d 'data-val-*.tok' --ctx 64 --plot "$TMP/p.svg"
  assert_status 0
  head -c 5 "$TMP/p.svg" | grep -q '<?xml'
  tail -n 1 "$TMP/p.svg" | grep -q '</svg>'
  [ "$(grep -c 'class="series"' "$TMP/p.svg")" -eq 2 ]
  grep -q 'class="legend"' "$TMP/p.svg"
  grep -q '>run2<' "$TMP/p.svg"
  grep -q 'log scale' "$TMP/p.svg"
  [ -z "$(ls -A "$TMP" | grep -v '^p.svg$')" ]     # no temporary left behind
  # the table still goes to stdout
  [ "${#lines[@]}" -eq 3 ]
}

@test "deterministic: two runs print the same bytes" {
  a=$(ttt-eval -m run -d 'data-val-*.tok' --by-position)
  b=$(ttt-eval -m run -d 'data-val-*.tok' --by-position)
  [ "$a" = "$b" ]
}

@test "a model file works like its run directory" {
  a=$(ttt-eval -m run -d 'data-val-*.tok' --json | sed 's/"model":"[^"]*"//')
  b=$(ttt-eval -m run/model.safetensors -d 'data-val-*.tok' --json | sed 's/"model":"[^"]*"//')
  [ "$a" = "$b" ]
}

@test "usage errors exit 2" {
  run ttt-eval -d 'data-val-*.tok'
  assert_status 2; assert_match "no model"
  run ttt-eval -m run
  assert_status 2; assert_match "no data"
  for bad in "--ctx 0" "--ctx x" "--batch 0" "--batch -3" "--max-tokens 0" "--max-tokens 1.5" "--device tpu" \
             "--dtype fp16" "--dtype bf16" "--device cpu --dtype bf16"; do
    run ttt-eval -m run -d 'data-val-*.tok' $bad
    assert_status 2
    assert_one_line_error ttt-eval
  done
  run ttt-eval -m run -d 'data-val-*.tok' extra
  assert_status 2
}

@test "--device cuda without a GPU (or without CUDA in the build): a clear error" {
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then skip "a GPU is present: cuda runs"; fi
  run ttt-eval -m run -d 'data-val-*.tok' --device cuda
  assert_status 1
  assert_match "^ttt-eval: --device cuda: .*CUDA"
}

@test "missing or damaged inputs exit 1 with one line naming the file" {
  run ttt-eval -m nosuchrun -d 'data-val-*.tok'
  assert_status 1; assert_one_line_error ttt-eval; assert_match nosuchrun
  run ttt-eval -m run -d 'nosuch-*.tok'
  assert_status 1; assert_one_line_error ttt-eval; assert_match nosuch
  # a flipped byte in the tensor data: checksum mismatch
  mkdir "$TMP/bad"; cp run/* "$TMP/bad/" 2>/dev/null || true
  f="$TMP/bad/model.safetensors"; size=$(stat -c %s "$f")
  printf '\xff\xff\xff\xff' | dd of="$f" bs=1 seek=$((size - 100)) conv=notrunc status=none
  run ttt-eval -m "$TMP/bad" -d 'data-val-*.tok'
  assert_status 1; assert_one_line_error ttt-eval; assert_match "model.safetensors"
  # truncated
  head -c 200 run/model.safetensors > "$TMP/trunc.safetensors"
  run ttt-eval -m "$TMP/trunc.safetensors" -d 'data-val-*.tok'
  assert_status 1; assert_one_line_error ttt-eval; assert_match "trunc.safetensors"
  # a shard that is not a shard
  echo hello > "$TMP/x-val-000000.tok"
  run ttt-eval -m run -d "$TMP/x-val-*.tok"
  assert_status 1; assert_one_line_error ttt-eval
}

@test "shards from another tokenizer are refused" {
  mkdir -p "$TMP/c2"; printf 'completely different words here\n' > "$TMP/c2/a.txt"; cp corpus/doc1.txt "$TMP/c2/"
  ttt-tokenize train -q -v 270 -o "$TMP/tok2.json" "$TMP"/c2/*.txt
  ttt-tokenize encode -t "$TMP/tok2.json" "$TMP"/c2/*.txt | ttt-pack -q -o "$TMP/other" --val-docs 1
  run ttt-eval -m run -d "$TMP/other-val-*.tok"
  assert_status 1
  assert_match "tokenizer"
}

@test "write error on stdout exits 1; a closed pipe is a normal end" {
  run bash -c "ttt-eval -m run -d 'data-val-*.tok' > /dev/full"
  assert_status 1
  assert_match "write error"
  run bash -c "ttt-eval -m run -m run2 -d 'data-val-*.tok' | head -c 1 >/dev/null; exit \${PIPESTATUS[0]}"
  assert_status 0
}
