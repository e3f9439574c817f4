#!/usr/bin/env bats
# ttt-inspect: what it reports for shards and token streams, --json,
# --verify against every truncation and every flipped byte, foreign files,
# write errors and broken pipes.
load test_helper

setup_file() { build_mkstream; }

# a small shard with several blocks: s-train-000000.tok
small_shard() {
  "$MKSTREAM" 12 60 > s.tks
  ttt-pack -q --block-tokens 64 -o s s.tks
}

@test "inspect: shard summary has the documented keys and true counts" {
  "$MKSTREAM" -v 5000 -H 0xfeedface 30 100 > s.tks
  ttt-pack -q --block-tokens 100 -o s s.tks
  run ttt-inspect s-train-000000.tok
  assert_status 0
  assert_match "^file: +s-train-000000.tok"
  assert_match "format: +ttt shard"
  assert_match "documents: +30"
  assert_match "token width: +2 bytes"
  assert_match "tokenizer hash: +0x00000000feedface"
  assert_match "vocab: +5000"
  assert_match "eot: +4999"
  assert_match "compression: +[0-9.]+x"
  assert_match "doc tokens: +min [0-9]+, median [0-9]+, max [0-9]+"
  tokens=$(ttt-inspect s.tks | sed -n 's/^tokens: *//p')
  assert_match "tokens: +$tokens"
  assert_match "blocks: +$(( (tokens + 99) / 100 )) \(of 100 tokens\)"
}

@test "inspect: --json gives one object per file per line" {
  small_shard
  run ttt-inspect --json s-train-000000.tok s.tks
  assert_status 0
  [ "${#lines[@]}" -eq 2 ]
  [[ "${lines[0]}" == '{"file":"s-train-000000.tok","format":"ttt shard",'*'}' ]]
  [[ "${lines[1]}" == '{"file":"s.tks","format":"ttt token stream",'*'}' ]]
  command -v node >/dev/null || skip "node not installed to parse JSON"
  printf '%s\n' "${lines[@]}" | node -e '
    const ls = require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse);
    if (ls[0].documents !== 12 || ls[1].documents !== 12 || ls[0].tokens !== ls[1].tokens) process.exit(1);'
}

@test "inspect: --docs N shows the first N documents (ids without -t)" {
  "$MKSTREAM" 5 8 > s.tks
  ttt-pack -q -o s s.tks
  run ttt-inspect --docs 2 s-train-000000.tok
  assert_status 0
  assert_match "--- document 0: [0-9]+ tokens"
  assert_match "--- document 1: "
  [[ "$output" != *"document 2:"* ]]
  [ "$(ttt-inspect --json --docs 5 s.tks | grep -o '"ids":[^]]*')" = \
    "$(ttt-inspect --json --docs 5 s-train-000000.tok | grep -o '"ids":[^]]*')" ]
}

@test "inspect: --verify passes on a good shard" {
  small_shard
  run ttt-inspect --verify s-train-000000.tok
  assert_status 0
  assert_match "verified: +ok"
}

@test "inspect: --verify rejects a shard truncated at any byte" {
  small_shard
  size=$(stat -c %s s-train-000000.tok)
  for n in $(seq 0 $((size - 1))); do
    head -c "$n" s-train-000000.tok > t.tok
    run ttt-inspect --verify t.tok
    [ "$status" -eq 1 ] || { echo "truncated at $n: status $status: $output" >&2; return 1; }
    [[ "${lines[-1]}" == "ttt-inspect: t.tok: "* ]] || { echo "at $n: $output" >&2; return 1; }
  done
}

@test "inspect: --verify rejects a flipped byte anywhere; in a block the message names it" {
  small_shard
  f=s-train-000000.tok
  size=$(stat -c %s $f)
  comp=$(ttt-inspect --json $f | grep -o '"compressed_bytes":[0-9]*' | cut -d: -f2)
  for off in $(seq 0 $((size - 1))); do
    cp $f b.tok
    byte=$(od -An -tu1 -j "$off" -N1 b.tok | tr -d ' ')
    printf "$(printf '\\%03o' $(( byte ^ 0x5a )))" | dd of=b.tok bs=1 seek="$off" conv=notrunc status=none
    run ttt-inspect --verify b.tok
    [ "$status" -eq 1 ] || { echo "flip at $off: status $status" >&2; return 1; }
    if [ "$off" -ge 56 ] && [ "$off" -lt $((56 + comp)) ]; then
      [[ "$output" =~ "b.tok: block "[0-9]+": " ]] || { echo "flip at $off: $output" >&2; return 1; }
    fi
  done
}

@test "inspect: a damaged block is named with stored and computed checksums" {
  small_shard
  f=s-train-000000.tok
  cp $f b.tok
  # block 0 starts right after the 56-byte header
  printf '\xff' | dd of=b.tok bs=1 seek=70 conv=notrunc status=none
  run ttt-inspect --verify b.tok
  assert_status 1
  assert_match "ttt-inspect: b.tok: block 0: checksum mismatch.*\(stored 0x[0-9a-f]{16}, computed 0x[0-9a-f]{16}\)"
}

@test "inspect: missing, empty, unknown and foreign files: exit 1 naming the file" {
  run ttt-inspect nosuch.tok
  assert_status 1
  assert_match "^ttt-inspect: nosuch.tok: No such file or directory$"
  : > empty.tok
  run ttt-inspect empty.tok
  assert_status 1
  assert_match "empty.tok: empty file"
  printf 'just text\n' > text.tok
  run ttt-inspect text.tok
  assert_status 1
  assert_match "text.tok: unknown format"
  printf '\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03' > a.gz
  printf '\x28\xb5\x2f\xfd\x00\x00\x00\x00' > a.zst
  printf 'GGUF\x03\x00\x00\x00\x00\x00\x00\x00' > a.gguf
  printf '\x88\xd8\x34\x01\x01\x00\x00\x00' > a.bin   # llm.c 20240520
  for x in a.gz:gzip a.zst:zstd a.gguf:GGUF a.bin:llm.c; do
    run ttt-inspect "${x%%:*}"
    assert_status 1
    assert_match "${x%%:*}: a ${x#*:}"
  done
}

@test "inspect: wrong magic in a shard is rejected" {
  small_shard
  cp s-train-000000.tok m.tok
  printf 'X' | dd of=m.tok bs=1 seek=7 conv=notrunc status=none
  run ttt-inspect m.tok
  assert_status 1
  assert_match "m.tok: bad magic"
  cp s-train-000000.tok m.tok
  printf '\x88' | dd of=m.tok bs=1 seek=0 conv=notrunc status=none
  run ttt-inspect m.tok
  assert_status 1
  assert_match "m.tok: unknown format"
}

@test "inspect: keeps going after a bad file, exits 1 at the end" {
  small_shard
  run ttt-inspect nosuch.tok s-train-000000.tok
  assert_status 1
  assert_match "format: +ttt shard"
}

@test "inspect: a truncated token stream is rejected" {
  "$MKSTREAM" -x 5 10 > t.tks
  run ttt-inspect t.tks
  assert_status 1
  assert_match "t.tks: truncated token stream"
}

@test "inspect: output into head ends quietly; into /dev/full exits 1" {
  "$MKSTREAM" 300 200 > s.tks
  run bash -c 'set -o pipefail; ttt-inspect --docs 300 s.tks | head -1'
  assert_status 0
  [ "${#lines[@]}" -eq 1 ]
  run ttt-inspect s.tks
  run bash -c 'ttt-inspect s.tks > /dev/full'
  assert_status 1
  assert_match "write error"
}

@test "inspect: usage errors exit 2" {
  run ttt-inspect
  assert_status 2
  assert_match "no FILE"
  run ttt-inspect -t tok.json x
  assert_status 2
  run ttt-inspect --docs -1 x
  assert_status 2
}

@test "inspect: -t decodes documents and refuses a shard of another tokenizer" {
  command -v ttt-tokenize >/dev/null || skip "ttt-tokenize not built"
  make_corpus corpus
  ttt-tokenize train --help >/dev/null 2>&1 || skip_or_fail "ttt-tokenize train not available yet"
  run ttt-tokenize train --vocab-size 300 -o tok.json corpus/doc*.txt
  [ "$status" -eq 0 ] || skip_or_fail "ttt-tokenize train failed: $output"
  ttt-tokenize encode -t tok.json corpus/doc*.txt | ttt-pack -q -o c
  run ttt-inspect -t tok.json --docs 1 c-train-000000.tok
  assert_status 0
  assert_match "In the beginning 1.1 the quick brown fox"
  "$MKSTREAM" -v 300 3 5 | ttt-pack -q -o other
  run ttt-inspect -t tok.json --docs 1 other-train-000000.tok
  assert_status 1
  assert_match "other-train-000000.tok: made with another tokenizer"
  run ttt-inspect tok.json
  assert_status 0
  assert_match "format: +tokenizer.json"
}
