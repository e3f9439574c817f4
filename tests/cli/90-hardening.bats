#!/usr/bin/env bats
# Resource faults and hostile files through the real programs: writes to
# /dev/full, a read-only output directory, a full disk (small tmpfs, root
# only: skipped otherwise), token streams and shards truncated at every
# byte, and every input under tests/regress/ (inputs that once crashed a
# reader under the fuzzers) replayed through the CLI. Every failure must be
# exit 1 with one line "prog: ...", never a signal, and leave no output
# file under its final name.
load test_helper

setup_file() {
  cd "$BATS_FILE_TMPDIR"
  make_corpus corpus
  ttt-tokenize train -q -v 300 -o tok.json corpus/*.txt
  ttt-tokenize encode -t tok.json corpus/doc1.txt corpus/doc2.txt > s.tks
  ttt-pack -q --block-tokens 64 -o data --val-docs 1 s.tks
  cat > cfg.json <<'CFG'
{"vocab_size": 300, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
 "num_attention_heads": 2, "max_position_embeddings": 32}
CFG
  ttt-train -q -c cfg.json -t tok.json -d 'data-train-*.tok' -o run --steps 1 --ctx 32 --batch 2
}

setup() {
  TMP="$BATS_TEST_TMPDIR"
  FIX="$BATS_FILE_TMPDIR"
  cd "$TMP"
  MNT=
}

teardown() {
  if [ -n "${MNT:-}" ]; then umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true; fi
}

# mount_tmpfs DIR SIZE [ro]: a small tmpfs at DIR (sets MNT, absolute, for
# teardown), or skip.
mount_tmpfs() {
  mkdir -p "$1"
  local abs
  abs=$(cd "$1" && pwd)
  if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o "size=$2${3:+,$3}" tmpfs "$abs" 2>/dev/null; then
    skip_or_fail "cannot mount a tmpfs (needs root)"
  fi
  MNT=$abs
}

# fill_up DIR: takes every free byte of the filesystem at DIR (file DIR/.fill).
fill_up() {
  dd if=/dev/zero of="$1/.fill" bs=1k 2>/dev/null || true
  ! dd if=/dev/zero of="$1/.probe" bs=1 count=1 2>/dev/null || { echo "could not fill $1" >&2; return 1; }
  rm -f "$1/.probe"
}

# failed_cleanly PROG: exit 1, one line of output starting with "PROG: ", no
# signal. (Explicit returns: callers use it after ||, where set -e is off.)
failed_cleanly() {
  assert_status 1 || return 1
  assert_one_line_error "$1" || return 1
  [ "${#lines[@]}" -eq 1 ] || { echo "expected one line, got: $output" >&2; return 1; }
}

# no_leftovers DIR: no file in DIR but the filler (no final name, no temporary)
no_leftovers() {
  local left
  left=$(find "$1" -mindepth 1 ! -name .fill | head -5)
  [ -z "$left" ] || { echo "left behind in $1: $left" >&2; return 1; }
}

@test "hardening: every program that writes to stdout exits 1 with one line on /dev/full" {
  cd "$FIX"
  for cmd in "ttt-tokenize train -q -v 260 corpus/doc1.txt" \
             "ttt-tokenize encode -t tok.json -f corpus/doc1.txt" \
             "ttt-tokenize decode -t tok.json s.tks" \
             "ttt-inspect data-train-000000.tok" \
             "ttt-inspect --json --verify data-train-000000.tok s.tks tok.json run/model.safetensors" \
             "ttt-eval -q -m run -d 'data-val-*.tok' --ctx 32" \
             "ttt-generate -q -m run -p hello -n 4"; do
    prog=${cmd%% *}
    run bash -c "$cmd > /dev/full"
    [ "$status" -eq 1 ] || { echo "$cmd: status $status: $output" >&2; return 1; }
    failed_cleanly "$prog"
    assert_match "(write error|No space left)"
  done
}

@test "hardening: a read-only output directory is refused with one line and nothing written" {
  mount_tmpfs ro 1m ro
  cd "$FIX"
  for cmd in "ttt-tokenize train -q -v 260 -o $TMP/ro/tok.json corpus/doc1.txt" \
             "ttt-pack -q -o $TMP/ro/p s.tks" \
             "ttt-train -q -c cfg.json -t tok.json -d 'data-train-*.tok' -o $TMP/ro/run --steps 1 --ctx 32 --batch 2" \
             "ttt-generate -q -m run -p hi -n 2 --state-out $TMP/ro/state" \
             "ttt-eval -q -m run -d 'data-val-*.tok' --ctx 32 --plot $TMP/ro/loss.svg"; do
    # stderr only: ttt-generate/eval print their results to stdout first
    run bash -c "$cmd 2>&1 >/dev/null"
    failed_cleanly "${cmd%% *}" || { echo "in: $cmd" >&2; return 1; }
    assert_match "$TMP/ro"
  done
  no_leftovers "$TMP/ro"
}

@test "hardening: disk full while writing shards: exit 1, one line, no shard or temporary left" {
  mount_tmpfs full 32k
  # a stream whose shards cannot fit in 32 KiB (level 0: stored, not compressed)
  for i in $(seq 1 12); do cat "$FIX"/corpus/*.txt; done > big.txt
  ttt-tokenize encode -t "$FIX/tok.json" big.txt > big.tks
  run ttt-pack -q -l 0 --block-tokens 256 -o full/p big.tks
  failed_cleanly ttt-pack
  assert_match "(No space left|write error)"
  no_leftovers full
}

@test "hardening: disk full for tokenizer.json, checkpoints and decoding states" {
  mount_tmpfs full 64k
  fill_up full
  cd "$FIX"
  run ttt-tokenize train -q -v 300 -o "$TMP/full/tok.json" corpus/*.txt
  failed_cleanly ttt-tokenize
  no_leftovers "$TMP/full"
  run bash -c "ttt-generate -q -m run -p hi -n 2 --state-out '$TMP/full/state' 2>&1 >/dev/null"
  failed_cleanly ttt-generate
  no_leftovers "$TMP/full"
  # ttt-train: the run directory itself may or may not fit; no checkpoint may appear
  run ttt-train -q -c cfg.json -t tok.json -d 'data-train-*.tok' -o "$TMP/full/run" --steps 1 --ctx 32 --batch 2
  failed_cleanly ttt-train
  [ ! -e "$TMP/full/run/model.safetensors" ] && [ ! -e "$TMP/full/run/ckpt.new" ]
}

@test "hardening: a token stream truncated at every byte: pack and decode exit 1, one line, no shard" {
  # a short stream keeps this at a few hundred runs
  printf 'one\n' > a.txt; printf 'two words\n' > b.txt; : > c.txt
  ttt-tokenize encode -t "$FIX/tok.json" a.txt b.txt c.txt > t.tks
  size=$(stat -c %s t.tks)
  for ((n = 0; n < size; n++)); do
    head -c "$n" t.tks > cut.tks
    run ttt-pack -q -o out/p cut.tks
    mkdir -p out
    [ "$status" -eq 1 ] && [ "${#lines[@]}" -eq 1 ] && [[ "$output" == "ttt-pack: "* ]] \
      || { echo "pack, cut at $n of $size: status $status: $output" >&2; return 1; }
    no_leftovers out
    run ttt-tokenize decode -t "$FIX/tok.json" cut.tks
    [ "$status" -eq 1 ] && [[ "${lines[${#lines[@]}-1]}" == "ttt-tokenize: "* ]] \
      || { echo "decode, cut at $n of $size: status $status: $output" >&2; return 1; }
  done
}

@test "hardening: a shard truncated at every byte: eval and inspect exit 1 with one line" {
  shard=$FIX/data-val-000000.tok
  size=$(stat -c %s "$shard")
  for ((n = 0; n < size; n += (n < 64 ? 1 : 7))); do
    head -c "$n" "$shard" > cut-val-000000.tok
    run ttt-inspect --verify cut-val-000000.tok
    failed_cleanly ttt-inspect || { echo "inspect, cut at $n of $size" >&2; return 1; }
    run ttt-eval -q -m "$FIX/run" -d 'cut-val-*.tok' --ctx 32
    failed_cleanly ttt-eval || { echo "eval, cut at $n of $size" >&2; return 1; }
  done
}

@test "hardening: an empty document decodes to nothing (no write from a NULL buffer)" {
  : > empty.txt
  ttt-tokenize encode -t "$FIX/tok.json" empty.txt empty.txt > e.tks
  run ttt-tokenize decode -t "$FIX/tok.json" e.tks
  assert_status 0
  [ -z "$output" ]
}

# replay FILE PROG ARGS...: PROG must end with 0, or 1 and one line; never a signal.
replay() {
  local f=$1; shift
  run "$@"
  local prog=$1
  [ "$prog" = timeout ] && prog=$3
  if [ "$status" -ne 0 ] && { [ "$status" -ne 1 ] || [[ "${lines[${#lines[@]}-1]}" != "$prog: "* ]]; }; then
    echo "regress input $f through '$*': status $status: $output" >&2
    return 1
  fi
}

@test "hardening: every tests/regress input through the real programs" {
  reg=$BATS_TEST_DIRNAME/../regress
  count=0
  shopt -s nullglob
  for f in "$reg"/fuzz_tokstream/* "$reg"/fuzz_shard/*; do
    cp "$f" in.tok
    replay "$f" ttt-inspect --verify in.tok
    replay "$f" ttt-pack -q -o out/p in.tok
    replay "$f" ttt-tokenize decode -t "$FIX/tok.json" in.tok
    count=$((count + 1))
  done
  for f in "$reg"/fuzz_tokenizer/* "$reg"/fuzz_json/*; do
    cp "$f" in.json
    replay "$f" ttt-inspect in.json
    replay "$f" ttt-tokenize encode -t in.json -f "$FIX/corpus/doc1.txt"
    count=$((count + 1))
  done
  for f in "$reg"/fuzz_config/*; do
    cp "$f" cfg.json
    replay "$f" timeout 120 ttt-train -q -c cfg.json -d "$FIX/data-train-*.tok" -o "run$count" --steps 1 --ctx 32 --batch 1
    count=$((count + 1))
  done
  for f in "$reg"/fuzz_safetensors/* "$reg"/fuzz_checkpoint/*; do
    cp "$f" m.safetensors
    replay "$f" ttt-inspect --verify m.safetensors
    replay "$f" ttt-generate -q -m m.safetensors -t "$FIX/tok.json" -p hi -n 2
    count=$((count + 1))
  done
  for f in "$reg"/fuzz_docs/*; do
    tail -c +2 "$f" > d.txt
    replay "$f" ttt-tokenize encode -t "$FIX/tok.json" -f --format jsonl d.txt
    replay "$f" ttt-tokenize encode -t "$FIX/tok.json" -f d.txt
    count=$((count + 1))
  done
  [ "$count" -ge 1 ]
}
