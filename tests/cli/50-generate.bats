#!/usr/bin/env bats
# ttt-generate: determinism, prefill + resume == one run, --stop, the state
# file and its rejections, every bad input.
load test_helper

# Fixture, once per file: tokenizer, shards, two tiny runs (different seeds).
setup_file() {
  cd "$BATS_FILE_TMPDIR"
  make_tiny_runs
}

setup() { use_tiny_runs; }

P="In the beginning the quick brown fox"

@test "generates N tokens' worth of text; same seed, same bytes" {
  ttt-generate -m run -p "$P" -n 40 --seed 7 > "$TMP/a"
  ttt-generate -m run -p "$P" -n 40 --seed 7 > "$TMP/b"
  [ -s "$TMP/a" ]
  cmp "$TMP/a" "$TMP/b"
  # a different seed gives a different text (40 draws from a near-uniform model)
  ttt-generate -m run -p "$P" -n 40 --seed 8 > "$TMP/c"
  ! cmp -s "$TMP/a" "$TMP/c"
  # more tokens extend the same text
  ttt-generate -m run -p "$P" -n 60 --seed 7 > "$TMP/d"
  [ "$(head -c "$(stat -c %s "$TMP/a")" "$TMP/d" | cmp - "$TMP/a" && echo same)" = same ]
}

@test "greedy ignores the seed; temperature 0 is greedy" {
  a=$(ttt-generate -m run -p "$P" -n 30 --greedy --seed 1 | od -An -tx1)
  b=$(ttt-generate -m run -p "$P" -n 30 --greedy --seed 2 | od -An -tx1)
  c=$(ttt-generate -m run -p "$P" -n 30 --temperature 0 | od -An -tx1)
  [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ]
}

@test "top-k 1 and a tiny top-p are greedy too" {
  g=$(ttt-generate -m run -p "$P" -n 30 --greedy | od -An -tx1)
  k=$(ttt-generate -m run -p "$P" -n 30 --top-k 1 --seed 3 | od -An -tx1)
  p=$(ttt-generate -m run -p "$P" -n 30 --top-p 1e-9 --seed 4 | od -An -tx1)
  [ "$g" = "$k" ] && [ "$g" = "$p" ]
  # and the sampling options change what is sampled
  t=$(ttt-generate -m run -p "$P" -n 30 --top-k 5 --temperature 0.7 --seed 3 | od -An -tx1)
  u=$(ttt-generate -m run -p "$P" -n 30 --top-p 0.5 --seed 3 | od -An -tx1)
  [ -n "$t" ] && [ -n "$u" ]
}

@test "prompt on stdin equals -p" {
  a=$(ttt-generate -m run -p "$P" -n 20 --seed 1 | od -An -tx1)
  b=$(printf '%s' "$P" | ttt-generate -m run -n 20 --seed 1 | od -An -tx1)
  [ "$a" = "$b" ]
}

@test "N tokens in one run == prefill with --state-out, then N with --state-in" {
  ttt-generate -m run -p "$P" -n 50 --seed 9 > "$TMP/one"
  run ttt-generate -m run -p "$P" -n 0 --seed 9 --state-out "$TMP/s0"
  assert_status 0
  [ -z "$output" ]
  ttt-generate -m run --state-in "$TMP/s0" -n 50 > "$TMP/two"
  cmp "$TMP/one" "$TMP/two"
  # split in the middle (inside a mini-batch), twice
  ttt-generate -m run -p "$P" -n 13 --seed 9 --state-out "$TMP/s1" > "$TMP/p1"
  ttt-generate -m run --state-in "$TMP/s1" -n 20 --state-out "$TMP/s2" > "$TMP/p2"
  ttt-generate -m run --state-in "$TMP/s2" -n 17 > "$TMP/p3"
  cat "$TMP/p1" "$TMP/p2" "$TMP/p3" | cmp - "$TMP/one"
  # greedy too, and a long prompt (several prefill chunks)
  cat corpus/*.txt > "$TMP/long"
  ttt-generate -m run -n 25 --greedy < "$TMP/long" > "$TMP/g1"
  ttt-generate -m run -n 0 --state-out "$TMP/sl" < "$TMP/long"
  ttt-generate -m run -n 25 --greedy --state-in "$TMP/sl" > "$TMP/g2"
  cmp "$TMP/g1" "$TMP/g2"
}

@test "--state-in with a prompt appends it to the saved context" {
  ttt-generate -m run -p "In the beginning the quick" -n 0 --state-out "$TMP/s"
  a=$(ttt-generate -m run --state-in "$TMP/s" -p " brown fox" -n 12 --greedy | od -An -tx1)
  b=$(ttt-generate -m run -p "In the beginning the quick brown fox" -n 12 --greedy | od -An -tx1)
  [ -n "$a" ] && [ "$a" = "$b" ]
}

@test "--seed with --state-in replaces the saved generator" {
  ttt-generate -m run -p "$P" -n 0 --seed 1 --state-out "$TMP/s"
  a=$(ttt-generate -m run --state-in "$TMP/s" -n 30 --seed 5 | od -An -tx1)
  b=$(ttt-generate -m run -p "$P" -n 30 --seed 5 | od -An -tx1)
  [ "$a" = "$b" ]
}

@test "the state file is safetensors tied to the checkpoint" {
  ttt-generate -m run -p "$P" -n 3 --state-out "$TMP/s" >/dev/null
  # safetensors: u64 header length, then a JSON header with our metadata
  head -c 400 "$TMP/s" | tail -c +9 | grep -q '"format":"ttt-decode-state"'
  head -c 20000 "$TMP/s" | grep -q '"model_hash":"[0-9a-f]\{16\}"'
  head -c 20000 "$TMP/s" | grep -q 'layer0.W1_states'
  head -c 20000 "$TMP/s" | grep -q '"rng"'
}

@test "--stop: output ends before the stop string" {
  LC_ALL=C
  ttt-generate -m run -p "$P" -n 60 --seed 11 > "$TMP/full"
  out=$(cat "$TMP/full"; echo x); out=${out%x}
  [ "${#out}" -ge 12 ]
  stop=${out:8:3}
  expect=${out%%"$stop"*}
  ttt-generate -m run -p "$P" -n 60 --seed 11 --stop "$stop" > "$TMP/cut"
  printf '%s' "$expect" | cmp - "$TMP/cut"
  # a stop string that never comes: the whole text
  ttt-generate -m run -p "$P" -n 60 --seed 11 --stop $'\x01never\x02' | cmp - "$TMP/full"
}

@test "no prompt at all starts from <|endoftext|>" {
  run ttt-generate -m run -n 5 --seed 1 </dev/null
  assert_status 0
}

@test "a state from another checkpoint is rejected" {
  ttt-generate -m run -p "$P" -n 0 --state-out "$TMP/s"
  run ttt-generate -m run2 --state-in "$TMP/s" -n 5
  assert_status 1
  assert_one_line_error ttt-generate
  assert_match "another checkpoint"
}

@test "truncated, damaged or foreign state files are rejected" {
  ttt-generate -m run -p "$P" -n 0 --state-out "$TMP/s"
  size=$(stat -c %s "$TMP/s")
  head -c $((size - 7)) "$TMP/s" > "$TMP/trunc"
  run ttt-generate -m run --state-in "$TMP/trunc" -n 5
  assert_status 1; assert_one_line_error ttt-generate; assert_match trunc
  cp "$TMP/s" "$TMP/flip"
  printf '\x55\x55\x55\x55' | dd of="$TMP/flip" bs=1 seek=$((size - 64)) conv=notrunc status=none
  run ttt-generate -m run --state-in "$TMP/flip" -n 5
  assert_status 1; assert_one_line_error ttt-generate; assert_match flip
  run ttt-generate -m run --state-in run/model.safetensors -n 5
  assert_status 1; assert_match "not a ttt decoding state"
  run ttt-generate -m run --state-in "$TMP/none" -n 5
  assert_status 1; assert_one_line_error ttt-generate
}

@test "--state-out is atomic: a failed run leaves no file" {
  run ttt-generate -m run -p "$P" -n 5 --state-out "$TMP/nodir/s"
  assert_status 1
  [ ! -e "$TMP/nodir" ]
  run ttt-generate -m run -p "$P" -n 2 --state-out "$TMP/s"
  assert_status 0
  [ -z "$(ls -A "$TMP" | grep -v '^s$')" ]
}

@test "usage errors exit 2" {
  run ttt-generate -p hi
  assert_status 2; assert_match "no model"
  for bad in "-n -1" "-n x" "--temperature -1" "--temperature nan" "--top-k -2" "--top-p 0" \
             "--top-p 1.5" "--seed -1" "--seed 1x" "--device tpu"; do
    run ttt-generate -m run -p hi $bad
    assert_status 2
    assert_one_line_error ttt-generate
  done
  run ttt-generate -m run -p hi --stop ''
  assert_status 2
  run ttt-generate -m run -p hi extra
  assert_status 2
}

@test "--device cuda without a GPU (or without CUDA in the build): a clear error" {
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then skip "a GPU is present: cuda runs"; fi
  run ttt-generate -m run -p hi --device cuda
  assert_status 1
  assert_match "^ttt-generate: --device cuda: .*CUDA"
}

@test "missing or damaged checkpoint, wrong tokenizer: exit 1, one line" {
  run ttt-generate -m nosuchrun -p hi
  assert_status 1; assert_one_line_error ttt-generate; assert_match nosuchrun
  mkdir "$TMP/bad"; cp run/model.safetensors run/tokenizer.json "$TMP/bad/"
  f="$TMP/bad/model.safetensors"; size=$(stat -c %s "$f")
  printf '\xff\xff\xff\xff' | dd of="$f" bs=1 seek=$((size - 100)) conv=notrunc status=none
  run ttt-generate -m "$TMP/bad" -p hi
  assert_status 1; assert_one_line_error ttt-generate; assert_match "model.safetensors"
  # a model file alone has no tokenizer next to it: say how to give one
  cp run/model.safetensors "$TMP/m.safetensors"
  run ttt-generate -m "$TMP/m.safetensors" -p hi
  assert_status 1; assert_match "hint: .*-t"
  run ttt-generate -m "$TMP/m.safetensors" -t run/tokenizer.json -p hi -n 3
  assert_status 0
  # another tokenizer
  mkdir -p "$TMP/c2"; printf 'other words entirely\n' > "$TMP/c2/a.txt"
  ttt-tokenize train -q -v 270 -o "$TMP/tok2.json" "$TMP/c2/a.txt" corpus/doc1.txt
  run ttt-generate -m run -t "$TMP/tok2.json" -p hi
  assert_status 1; assert_match "tokenizer"
}

@test "write error on stdout exits 1; a closed pipe is a normal end" {
  run bash -c "ttt-generate -m run -p hi -n 20 > /dev/full"
  assert_status 1
  assert_match "write error"
  run bash -c "ttt-generate -m run -p hi -n 100000 | head -c 3 >/dev/null; exit \${PIPESTATUS[0]}"
  assert_status 0
}

@test "the baselines too: N tokens in one run equal prefill --state-out then --state-in (KV cache, Mamba state)" {
  for a in transformer mamba; do
    rm -rf "$TMP/$a"
    ttt-train -q -c tiny --arch $a -t tok.json -d 'data-train-*.tok' -o "$TMP/$a" --steps 2 --ctx 64 --batch 2 --threads 1
    run ttt-generate -m "$TMP/$a" -p "In the beginning" -n 24 --seed 5
    assert_status 0
    local once=$output
    ttt-generate -m "$TMP/$a" -p "In the beginning" -n 0 --seed 5 --state-out "$TMP/$a.st"
    run ttt-generate -m "$TMP/$a" --state-in "$TMP/$a.st" -n 24
    assert_status 0
    [ "$output" = "$once" ] || { echo "$a: resumed output differs" >&2; return 1; }
  done
}
