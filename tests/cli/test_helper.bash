# Shared helpers for the bats CLI tests. The binaries under test come from
# TTT_BIN_DIR (set by `make check-cli`); TTT_TEST_STRICT=1 turns skips into failures.
: "${TTT_BIN_DIR:=$BATS_TEST_DIRNAME/../../build}"
export PATH="$TTT_BIN_DIR:$PATH"
REPO_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
REFVECTORS="${REFVECTORS:-$REPO_ROOT/../shared/refvectors}"

setup() {
  TMP="$BATS_TEST_TMPDIR"
  cd "$TMP"
}

skip_or_fail() {
  if [ "${TTT_TEST_STRICT:-0}" = 1 ]; then
    echo "strict mode: would skip: $*" >&2
    return 1
  fi
  skip "$*"
}

# assert_status N: the last `run` exited with N (prints output on mismatch)
assert_status() {
  if [ "$status" -ne "$1" ]; then
    echo "expected status $1, got $status; output:" >&2
    echo "$output" >&2
    return 1
  fi
}

# assert_match REGEX: the last `run` output matches the extended regex
assert_match() {
  if ! [[ "$output" =~ $1 ]]; then
    echo "output does not match /$1/:" >&2
    echo "$output" >&2
    return 1
  fi
}

# assert_one_line_error PROG: stderr-style output is one line starting with "PROG: "
assert_one_line_error() {
  local first=${lines[0]:-}
  [[ "$first" == "$1: "* ]] || { echo "error does not start with '$1: ': $output" >&2; return 1; }
}

# A small deterministic text corpus: several documents with varied bytes.
make_corpus() {
  local dir=$1; mkdir -p "$dir"
  for i in 1 2 3 4 5 6; do
    {
      for j in $(seq 1 40); do
        echo "In the beginning $i.$j the quick brown fox jumps over the lazy dog, and the dog sleeps."
        echo "Caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xe2\x80\x94 emoji \xf0\x9f\x98\x80 tabs	and CRLF\r"
      done
    } | printf '%b' "$(cat)" > "$dir/doc$i.txt"
  done
}

# build_mkstream (for setup_file): compiles the token stream generator
# tests/unit/mkstream.c once per file; its path is exported as MKSTREAM.
build_mkstream() {
  export MKSTREAM="$BATS_FILE_TMPDIR/mkstream"
  cc -O2 -o "$MKSTREAM" "$BATS_TEST_DIRNAME/../unit/mkstream.c"
}

# make_tiny_runs (for setup_file, in the fixture directory): a corpus, a
# tokenizer tok.json, shards data-train-*/data-val-*, and two tiny runs,
# run (3 steps) and run2 (2 steps, seed 2). ttt-train's errors go to
# train.err and do not stop the file: use_tiny_runs reports them per test.
make_tiny_runs() {
  make_corpus corpus
  ttt-tokenize train -q -v 300 -o tok.json corpus/*.txt
  ttt-tokenize encode -t tok.json corpus/*.txt | ttt-pack -q -o data --val-docs 2
  ttt-train -q -c tiny -t tok.json -d 'data-train-*.tok' -o run --steps 3 --ctx 64 --batch 2 2>train.err || true
  ttt-train -q -c tiny -t tok.json -d 'data-train-*.tok' -o run2 --steps 2 --ctx 64 --batch 2 --seed 2 2>>train.err || true
}

# use_tiny_runs (as setup): TMP is the test's directory, FIX the fixture's,
# where the test starts; without both checkpoints the test skips (fails
# under TTT_TEST_STRICT=1).
use_tiny_runs() {
  TMP="$BATS_TEST_TMPDIR"
  FIX="$BATS_FILE_TMPDIR"
  cd "$FIX"
  [ -f run/model.safetensors ] && [ -f run2/model.safetensors ] ||
    skip_or_fail "ttt-train made no fixture checkpoint: $(head -c 300 train.err)"
}
