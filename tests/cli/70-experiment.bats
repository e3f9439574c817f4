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
    grep -q "^$a	" "$TMP/out/by-position.tsv"
    grep -q ">$a</text>" "$TMP/out/loss-by-position.svg"
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

@test "experiment holdout.pl: long documents cut to exactly T tokens at the end, exact bytes" {
  for i in 1 2 3 4 5 6; do
    awk -v n=$((i * 120)) -v i=$i 'BEGIN { for (k = 0; k < n; k++) printf "doc %d word %d of the text.\n", i, k }' > "d$i.txt"
  done
  ttt-tokenize train -q -v 300 -o tok.json d*.txt
  ttt-tokenize encode -t tok.json d*.txt |
    "$REPO_ROOT/examples/experiment/holdout.pl" --ctx 4096 --docs 2 --max-doc 0 --list val.tsv \
      --tokenize "$TTT_BIN_DIR/ttt-tokenize" --tok tok.json -- d*.txt > all.tks
  # the two shortest documents of 4096+ tokens, in corpus order
  [ "$(cut -f1 val.tsv | tail -n +2 | tr '\n' ' ')" = "d4.txt d5.txt " ]
  run ttt-pack -q -o data --val-docs 2 all.tks
  assert_status 0
  run ttt-inspect data-val-000000.tok
  [[ "$output" == *"tokens:           8192"* ]]
  [[ "$output" == *"doc tokens:       min 4096, median 4096, max 4096"* ]]
  # the byte counts are exact: decode checks them
  ttt-tokenize decode -t tok.json data-val-000000.tok > val.txt
  [ "$(wc -c < val.txt)" -eq "$(tail -n +2 val.tsv | awk '{ s += $4 } END { print s }')" ]
  head -c 12 val.txt | grep -q '^doc 4 word 0'
  # training keeps the other four whole
  run ttt-inspect data-train-000000.tok
  [[ "$output" == *"documents:        4"* ]]
  # not enough long documents: the longest whole, with a warning
  ttt-tokenize encode -t tok.json d1.txt d2.txt | "$REPO_ROOT/examples/experiment/holdout.pl" --ctx 100000 --docs 1 \
      --list v2.tsv --tokenize "$TTT_BIN_DIR/ttt-tokenize" --tok tok.json > a2.tks 2> err
  grep -q warning err
  [ "$(tail -1 v2.tsv | cut -f1)" = 2 ]
  # a truncated stream is refused with one line
  head -c 100 all.tks | "$REPO_ROOT/examples/experiment/holdout.pl" --ctx 64 --docs 1 --list v3.tsv \
      --tokenize "$TTT_BIN_DIR/ttt-tokenize" --tok tok.json > /dev/null 2> err && false
  [ "$(cat err)" = "holdout.pl: stdin: truncated token stream" ]
  [ ! -e v3.tsv ]
}
