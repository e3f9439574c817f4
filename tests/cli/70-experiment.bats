#!/usr/bin/env bats
# examples/experiment: the four-architecture comparison in its TINY=1 form
# (~45 s on 2 cores): every report file appears with one row per
# architecture, and the checkpoints of the baselines work with the tools.
load test_helper

@test "experiment TINY=1: trains the four architectures and reports" {
  command -v bible >/dev/null || skip_or_fail "bible-kjv not installed"
  command -v bc >/dev/null || skip_or_fail "bc not installed"
  run make -C "$REPO_ROOT/examples/experiment" TINY=1 OUT="$TMP/out" BIN="$TTT_BIN_DIR" STEPS=6
  [ "$status" -eq 0 ] || { echo "$output" | tail -20; false; }
  [[ "$output" == *"perplexity by context"* ]]
  # ppl table: header + 4 models, 2 contexts, finite perplexities
  [ "$(wc -l < "$TMP/out/ppl.tsv")" -eq 5 ]
  for a in ttt-linear ttt-mlp transformer mamba; do
    grep -q "^$a	[0-9.]*	[0-9.]*$" "$TMP/out/ppl.tsv"
    grep -q "run-$a	" "$TMP/out/by-position.tsv"
    grep -q "run-$a" "$TMP/out/loss-by-position.svg"
    [ "$(grep -c "^$a	" "$TMP/out/speed.tsv")" -eq 2 ]
  done
  grep -q '<svg' "$TMP/out/loss-by-position.svg"
  # the baselines' checkpoints: inspect shows their tensors, generate decodes
  run ttt-inspect "$TMP/out/run-mamba"
  [ "$status" -eq 0 ]
  [[ "$output" == *"seq_modeling_block.A_log"* ]]
  run ttt-generate -q -m "$TMP/out/run-transformer" -p "And God said" -n 5 --greedy
  [ "$status" -eq 0 ]
}
