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
