#!/usr/bin/env bats
# ttt-pack: token stream -> train/val shards. Streams come from
# tests/unit/mkstream.c (compiled once per file), so these tests do not
# depend on a tokenizer.
load test_helper

setup_file() { build_mkstream; }

# docs of a shard as reported by ttt-inspect
field() { ttt-inspect "$1" | sed -n "s/^$2: *//p"; }

@test "pack: train and val shards, counts add up, verify passes" {
  "$MKSTREAM" 66 400 > s.tks
  run ttt-pack --val-docs 6 -o kjv s.tks
  assert_status 0
  assert_match "kjv-train-000000.tok: 1 shard, [0-9]+ tokens, 60 documents"
  assert_match "kjv-val-000000.tok: 1 shard, [0-9]+ tokens, 6 documents"
  [ "$(field kjv-train-000000.tok documents)" = 60 ]
  [ "$(field kjv-val-000000.tok documents)" = 6 ]
  total=$(ttt-inspect s.tks | sed -n 's/^tokens: *//p')
  t=$(field kjv-train-000000.tok tokens); v=$(field kjv-val-000000.tok tokens)
  [ $((t + v)) -eq "$total" ]
  run ttt-inspect --verify kjv-train-000000.tok kjv-val-000000.tok
  assert_status 0
}

@test "pack: --val-docs takes the last N documents, in order" {
  "$MKSTREAM" 10 20 > s.tks
  ttt-pack -q --val-docs 3 -o p s.tks
  want=$(ttt-inspect --json --docs 10 s.tks | grep -o '"ids":\[[0-9,]*\]' | tail -3)
  got=$(ttt-inspect --json --docs 10 p-val-000000.tok | grep -o '"ids":\[[0-9,]*\]')
  [ "$want" = "$got" ]
  want=$(ttt-inspect --json --docs 10 s.tks | grep -o '"ids":\[[0-9,]*\]' | head -7)
  got=$(ttt-inspect --json --docs 10 p-train-000000.tok | grep -o '"ids":\[[0-9,]*\]')
  [ "$want" = "$got" ]
}

@test "pack: --val-fraction spreads validation documents evenly" {
  "$MKSTREAM" 100 20 > s.tks
  ttt-pack -q --val-fraction 0.1 -o p s.tks
  [ "$(field p-val-000000.tok documents)" = 10 ]
  [ "$(field p-train-000000.tok documents)" = 90 ]
  # documents 9, 19, ... 99 (from 0) are the validation ones
  all=$(ttt-inspect --json --docs 100 s.tks | grep -o '"ids":\[[0-9,]*\]')
  want=$(echo "$all" | awk 'NR % 10 == 0')
  got=$(ttt-inspect --json --docs 100 p-val-000000.tok | grep -o '"ids":\[[0-9,]*\]')
  [ "$want" = "$got" ]
}

@test "pack: --shard-tokens starts new shards without splitting documents" {
  "$MKSTREAM" 50 300 > s.tks
  run ttt-pack --shard-tokens 1000 --block-tokens 100 -o p s.tks
  assert_status 0
  n=$(ls p-train-*.tok | wc -l)
  [ "$n" -gt 3 ]
  docs=0; toks=0
  for f in p-train-*.tok; do
    run ttt-inspect --verify "$f"
    assert_status 0
    d=$(field "$f" documents); t=$(field "$f" tokens)
    docs=$((docs + d)); toks=$((toks + t))
    # a shard only passes 1000 tokens by its last document (< 300 tokens)
    [ "$t" -lt 1300 ]
  done
  [ "$docs" = 50 ]
  [ "$toks" = "$(ttt-inspect s.tks | sed -n 's/^tokens: *//p')" ]
}

@test "pack: deterministic, stdin and FILE give identical shards" {
  "$MKSTREAM" 40 500 > s.tks
  ttt-pack -q --val-fraction 0.2 -o a s.tks
  ttt-pack -q --val-fraction 0.2 -o b - < s.tks
  cat s.tks | ttt-pack -q --val-fraction 0.2 -o c
  cmp a-train-000000.tok b-train-000000.tok
  cmp a-train-000000.tok c-train-000000.tok
  cmp a-val-000000.tok c-val-000000.tok
}

@test "pack: default prefix is FILE without its extension" {
  mkdir d
  "$MKSTREAM" 3 10 > d/corpus.tks
  run ttt-pack d/corpus.tks
  assert_status 0
  [ -f d/corpus-train-000000.tok ]
  "$MKSTREAM" 3 10 | ttt-pack -q
  [ -f data-train-000000.tok ]
}

@test "pack: vocab <= 65536 gives 2-byte tokens, larger gives 4" {
  "$MKSTREAM" -v 65536 5 50 | ttt-pack -q -o small
  [ "$(field small-train-000000.tok 'token width')" = "2 bytes" ]
  "$MKSTREAM" -v 65537 5 50 | ttt-pack -q -o big
  [ "$(field big-train-000000.tok 'token width')" = "4 bytes" ]
  "$MKSTREAM" -v 200000 -e 199999 5 50 | ttt-pack -q -o big2
  run ttt-inspect --verify --json big2-train-000000.tok
  assert_status 0
  assert_match '"token_width":4'
  assert_match '"vocab":200000'
}

@test "pack: a rerun with fewer shards removes the stale higher-numbered ones" {
  "$MKSTREAM" 50 300 > s.tks
  ttt-pack -q --shard-tokens 1000 -o p s.tks
  [ -f p-train-000003.tok ]
  run ttt-pack --shard-tokens 100M -o p s.tks
  assert_status 0
  assert_match "removed p-train-000001.tok"
  [ "$(ls p-train-*.tok)" = "p-train-000000.tok" ]
}

@test "pack: missing file, empty input, truncated stream, wrong magic: exit 1, one line, no output" {
  run ttt-pack -o p nosuch.tks
  assert_status 1
  assert_one_line_error ttt-pack
  assert_match "nosuch.tks: No such file"
  : > empty.tks
  run ttt-pack -o p empty.tks
  assert_status 1
  assert_match "empty.tks: empty input"
  "$MKSTREAM" -x 5 10 > trunc.tks
  run ttt-pack -o p trunc.tks
  assert_status 1
  assert_match "trunc.tks: truncated token stream"
  printf 'hello world, this is text\n' > text.txt
  run ttt-pack -o p text.txt
  assert_status 1
  assert_match "not a ttt token stream"
  printf '\x1f\x8b\x08\x00\x00\x00\x00\x00' > x.gz
  run ttt-pack -o p x.gz
  assert_status 1
  assert_match "gzip"
  "$MKSTREAM" 0 10 > none.tks
  run ttt-pack -o p none.tks
  assert_status 1
  assert_match "no documents"
  [ -z "$(ls -A | grep -v '\.tks$\|\.txt$\|\.gz$')" ]
}

@test "pack: a stream truncated at any byte is rejected and leaves no shard" {
  "$MKSTREAM" 4 6 > s.tks
  size=$(stat -c %s s.tks)
  for n in $(seq 0 $((size - 1))); do
    head -c "$n" s.tks > t.tks
    run ttt-pack -q -o p t.tks
    [ "$status" -eq 1 ] || { echo "truncation at $n: status $status" >&2; return 1; }
    [ -z "$(ls -A | grep -v '\.tks$')" ] || { echo "truncation at $n left: $(ls -A)" >&2; return 1; }
  done
}

@test "pack: usage errors exit 2" {
  run ttt-pack --val-docs 1 --val-fraction 0.1 x
  assert_status 2
  assert_match "exclude each other"
  run ttt-pack --val-fraction 1.5 x
  assert_status 2
  run ttt-pack -l 10 x
  assert_status 2
  run ttt-pack --shard-tokens 0 x
  assert_status 2
  run ttt-pack a b
  assert_status 2
  run ttt-pack -o '' x
  assert_status 2
}

@test "pack: unwritable output exits 1 and leaves nothing" {
  "$MKSTREAM" 5 10 > s.tks
  # /dev/full is not a directory (a prefix of /dev/full itself would land in /dev when root)
  run ttt-pack -o /dev/full/p s.tks
  assert_status 1
  assert_one_line_error ttt-pack
  assert_match "/dev/full/p-train-000000.tok: cannot create"
  run ttt-pack -o nodir/p s.tks
  assert_status 1
  assert_match "nodir/p-train-000000.tok: cannot create"
}

@test "pack: a full disk (file size limit) exits 1 and leaves no file" {
  "$MKSTREAM" 200 2000 > s.tks
  # EFBIG instead of SIGXFSZ: the ignored signal is inherited by ttt-pack
  run bash -c 'trap "" XFSZ; ulimit -f 64; ttt-pack -l 0 -o p s.tks'
  assert_status 1
  assert_match "p-train-000000.tok: write error"
  [ -z "$(ls -A | grep -v '\.tks$')" ]
}

@test "pack: SIGKILL mid-write leaves no file under a final name" {
  # a writer that never finishes: the end marker never comes
  mkfifo fifo
  ( "$MKSTREAM" -x 300 3000; sleep 30 ) > fifo &
  feeder=$!
  ttt-pack --shard-tokens 10000 --block-tokens 1000 -o p fifo &
  pid=$!
  sleep 1
  kill -9 "$pid"
  wait "$pid" || true
  kill "$feeder" 2>/dev/null || true
  wait "$feeder" 2>/dev/null || true
  ls -A
  [ -z "$(ls p-* 2>/dev/null)" ]
  # only hidden staging files may remain; a glob over the prefix sees none
  run bash -c 'ls p-*.tok'
  [ "$status" -ne 0 ]
}

@test "pack: SIGTERM mid-write removes its staging files" {
  mkfifo fifo
  ( "$MKSTREAM" -x 300 3000; sleep 30 ) > fifo &
  feeder=$!
  ttt-pack --shard-tokens 10000 -o p fifo &
  pid=$!
  sleep 1
  kill -TERM "$pid"
  wait "$pid" || true
  kill "$feeder" 2>/dev/null || true
  wait "$feeder" 2>/dev/null || true
  [ -z "$(ls -A | grep -v '^fifo$')" ]
}

@test "pack: stdin from a terminal is a usage error" {
  command -v script >/dev/null || skip "script(1) not installed"
  run script -qec "$TTT_BIN_DIR/ttt-pack" /dev/null
  [[ "$output" == *"no input"* ]]
}
