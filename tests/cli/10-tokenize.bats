#!/usr/bin/env bats
# ttt-tokenize: train, encode, decode; exact round trips on awkward bytes,
# determinism, JSONL, errors, output handling, Hugging Face compatibility.
load test_helper

# Fixture corpus plus the awkward bytes: invalid UTF-8, NULs, CRLF, emoji.
fixture() {
  make_corpus corpus
  printf 'bad \xff\xfe utf8 \xc3( \xe2\x82 end\x00nul\x00\x00 and\r\nCRLF\r\n\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd  \t \n' > corpus/odd.bin
  printf '%*s' 300 '' > corpus/spaces.txt
  : > corpus/empty.txt
  ttt-tokenize train -v 400 -o tok.json corpus/*
}

@test "train writes a Hugging Face BPE tokenizer.json" {
  fixture
  grep -q '"type": "BPE"' tok.json
  grep -q '"type": "ByteLevel", "add_prefix_space": false' tok.json
  grep -q '"content": "<|endoftext|>".*"special": true' tok.json
  # 256 bytes + merges + eot = 400 entries; eot last
  grep -q '"<|endoftext|>": 399' tok.json
  [ "$(grep -c '^      "' tok.json)" -eq $((400 + 400 - 257)) ]
}

@test "encode | decode returns every input byte exactly, one document at a time" {
  fixture
  for f in corpus/*; do
    ttt-tokenize encode -t tok.json "$f" > x.tok
    ttt-tokenize decode -t tok.json x.tok > x.out
    cmp "$f" x.out
  done
}

@test "several documents decode to their concatenation; --keep-special shows eot" {
  fixture
  ttt-tokenize encode -t tok.json corpus/doc1.txt corpus/odd.bin - < corpus/doc2.txt | ttt-tokenize decode -t tok.json > all.out
  cat corpus/doc1.txt corpus/odd.bin corpus/doc2.txt | cmp - all.out
  ttt-tokenize encode -t tok.json corpus/doc1.txt corpus/doc2.txt | ttt-tokenize decode -t tok.json --keep-special - > k.out
  { cat corpus/doc1.txt; printf '<|endoftext|>'; cat corpus/doc2.txt; printf '<|endoftext|>'; } | cmp - k.out
}

@test "--text prints one line of ids per document ending with the eot id" {
  fixture
  run ttt-tokenize encode --text -t tok.json corpus/doc1.txt corpus/empty.txt
  assert_status 0
  [ "${#lines[@]}" -eq 2 ]
  [[ "${lines[0]}" =~ ^[0-9]+(\ [0-9]+)*\ 399$ ]]
  [ "${lines[1]}" = 399 ]
}

@test "training is deterministic" {
  fixture
  ttt-tokenize train -v 400 corpus/* > again.json
  cmp tok.json again.json
  cat corpus/* | ttt-tokenize train -v 400 > cat1.json
  cat corpus/* | ttt-tokenize train --vocab-size=400 - > cat2.json
  cmp cat1.json cat2.json
}

@test "jsonl with --field; same ids as the text files" {
  fixture
  printf '{"id": 1, "body": "In the beginning\\nwas the word", "text": "x"}\n\n{"body": "caf\\u00e9 \\ud83d\\ude00\\r\\n"}\n' > c.jsonl
  run ttt-tokenize encode --text -t tok.json --format jsonl --field body c.jsonl
  assert_status 0
  [ "${#lines[@]}" -eq 2 ]
  printf 'In the beginning\nwas the word' > d1.txt
  printf 'caf\xc3\xa9 \xf0\x9f\x98\x80\r\n' > d2.txt
  [ "$output" = "$(ttt-tokenize encode --text -t tok.json d1.txt d2.txt)" ]
  ttt-tokenize train -v 260 --format jsonl --field body -o j.json c.jsonl
  grep -q '"<|endoftext|>": 259' j.json
}

@test "malformed jsonl line: error names file and line, exit 1" {
  fixture
  printf '{"text": "ok"}\n{"text": "broken\n{"text": "ok"}\n' > bad.jsonl
  run ttt-tokenize train --format jsonl -o out.json bad.jsonl
  assert_status 1
  assert_one_line_error ttt-tokenize
  assert_match "bad.jsonl: line 2, column 11: unterminated string"
  [ ! -e out.json ]
  run ttt-tokenize encode --text -t tok.json --format jsonl bad.jsonl
  assert_status 1
  assert_match "bad.jsonl: line 2"
  printf '{"text": "ok"}\n{"other": 1}\n' > nofield.jsonl
  run ttt-tokenize train --format jsonl nofield.jsonl
  assert_status 1
  assert_match 'nofield.jsonl: line 2: no string field "text"'
}

@test "missing input file: exit 1 naming the file; nothing written" {
  run ttt-tokenize train -o out.json no-such-file.txt
  assert_status 1
  assert_one_line_error ttt-tokenize
  assert_match "no-such-file.txt"
  [ ! -e out.json ]
  [ -z "$(ls -A)" ]
}

@test "empty input: train gives bytes + eot, encode gives one eot per document" {
  : > empty.txt
  run ttt-tokenize train -o e.json empty.txt
  assert_status 0
  grep -q '"<|endoftext|>": 256' e.json
  ttt-tokenize encode -t e.json empty.txt > e.tok
  [ "$(ttt-tokenize decode -t e.json e.tok | wc -c)" -eq 0 ]
  [ "$(ttt-tokenize encode --text -t e.json < /dev/null)" = 256 ]
}

@test "binary output to a terminal is refused unless -f" {
  fixture
  command -v script >/dev/null || skip_or_fail "script(1) not available"
  run script -qec "ttt-tokenize encode -t tok.json corpus/doc1.txt" /dev/null
  [ "$status" -eq 1 ]
  [[ "$output" == *"refusing to write binary"* ]]
  run script -qec "ttt-tokenize encode -f -t tok.json corpus/doc1.txt | wc -c" /dev/null
  [ "$status" -eq 0 ]
}

@test "write errors: /dev/full exits 1; a closed pipe ends quietly" {
  fixture
  run ttt-tokenize encode -t tok.json corpus/doc1.txt '>' /dev/full
  run bash -c 'ttt-tokenize encode -t tok.json corpus/doc1.txt > /dev/full'
  assert_status 1
  assert_match "write error"
  run bash -c 'ttt-tokenize train -v 300 corpus/doc1.txt > /dev/full'
  assert_status 1
  run bash -c 'set -o pipefail; for i in $(seq 50); do cat corpus/doc1.txt; done > big.txt; ttt-tokenize encode -t tok.json big.txt 2>err | head -c 10 > /dev/null; echo "rc=$?"; cat err'
  [ "$output" = "rc=0" ]
}

@test "bad tokenizer.json: one clear line, exit 1" {
  fixture
  echo '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}' > notbyte.json
  run ttt-tokenize encode -t notbyte.json corpus/doc1.txt
  assert_status 1
  assert_one_line_error ttt-tokenize
  assert_match "notbyte.json: .*byte"
  echo '{"model": ' > trunc.json
  run ttt-tokenize encode -t trunc.json corpus/doc1.txt
  assert_status 1
  assert_match "trunc.json: line [0-9]+, column [0-9]+: unexpected end"
  printf '\x1f\x8b\x08\x00junk' > gz.json
  run ttt-tokenize decode -t gz.json corpus/doc1.txt
  assert_status 1
  assert_match "gz.json: .*gzip"
  run ttt-tokenize encode -t no-such.json corpus/doc1.txt
  assert_status 1
  assert_match "no-such.json"
}

@test "decode rejects a stream from another tokenizer and a truncated stream" {
  fixture
  ttt-tokenize train -v 300 corpus/doc1.txt > other.json
  ttt-tokenize encode -t other.json corpus/doc1.txt > other.tok
  run ttt-tokenize decode -t tok.json other.tok
  assert_status 1
  assert_match "another tokenizer"
  ttt-tokenize encode -t tok.json corpus/doc1.txt | head -c 100 > cut.tok
  run ttt-tokenize decode -t tok.json cut.tok
  assert_status 1
  assert_match "truncated"
  run ttt-tokenize decode -t tok.json corpus/doc1.txt
  assert_status 1
  assert_match "not a ttt token stream"
}

@test "usage errors exit 2 with the try-help line" {
  for args in "" "frobnicate" "train -v 12" "train -v abc" "train --format xml" "encode corpus" \
              "train -t tok.json" "decode -t tok.json --text" "encode -t x --field body" "decode -t a b c"; do
    run ttt-tokenize $args
    [ "$status" -eq 2 ] || { echo "ttt-tokenize $args: status $status: $output" >&2; return 1; }
    assert_match "Try 'ttt-tokenize --help'"
  done
}

@test "compatibility: Hugging Face tokenizers.js gives the same ids" {
  fixture
  command -v node >/dev/null || skip_or_fail "node not installed"
  local dir="$REPO_ROOT/tests/compat"
  if [ ! -d "$dir/node_modules/@huggingface/tokenizers" ]; then
    (cd "$dir" && timeout 120 npm install --no-save --no-package-lock --no-audit --no-fund >/dev/null 2>&1) ||
      skip_or_fail "npm install @huggingface/tokenizers failed (no network?)"
  fi
  # valid UTF-8 only: tokenizers.js works on JavaScript strings
  printf "It's 2024: we'll see -- they're \"quoted\", don't   spaced  out\n\n\ttabs\r\nCRLF \xc3\xa9t\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80\xf0\x9f\x98\x80 1234567 x\xc2\xb2 \xd9\xa3\xd9\xa4 \n   \n" > u1.txt
  NODE_PATH="$dir/node_modules" node "$dir/encode.cjs" tok.json corpus/doc*.txt u1.txt > hf.ids
  ttt-tokenize encode --text -t tok.json corpus/doc*.txt u1.txt > ours.ids
  cmp hf.ids ours.ids
}

@test "decode reads a shard written by ttt-pack" {
  fixture
  ttt-tokenize encode -t tok.json corpus/doc1.txt corpus/odd.bin corpus/empty.txt | ttt-pack -q -o sh - ||
    skip_or_fail "ttt-pack cannot pack the stream"
  ttt-tokenize decode -t tok.json sh-train-000000.tok > sh.out
  cat corpus/doc1.txt corpus/odd.bin | cmp - sh.out
  ttt-tokenize train -v 300 corpus/doc1.txt > other.json
  run ttt-tokenize decode -t other.json sh-train-000000.tok
  assert_status 1
  assert_match "another tokenizer"
}
