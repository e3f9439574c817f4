#!/usr/bin/env bats
# --device cuda with the Transformer and Mamba baselines: ttt-train,
# ttt-eval and ttt-generate agree with the CPU (loss curve, evaluation loss,
# greedy text, decoding state files moved between the devices). Without a
# GPU (or without CUDA in the build) only the one-line error is checked and
# the rest skips.
load test_helper

setup_file() {
  cd "$BATS_FILE_TMPDIR"
  make_corpus corpus
  ttt-tokenize train -q -v 300 -o tok.json corpus/*.txt
  ttt-tokenize encode -t tok.json corpus/*.txt | ttt-pack -q -o data --val-docs 2
}

setup() {
  TMP="$BATS_TEST_TMPDIR"
  cd "$BATS_FILE_TMPDIR"
  # ctx 80: past the attention tile and the Mamba scan chunk (64)
  A=(-c tiny -t tok.json -d 'data-train-*.tok' --ctx 80 --batch 2 --steps 6 -q --seed 3)
}

has_gpu() {
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && ttt-train -V -v | grep -q '^cuda: yes'
}

losses() { sed 's/.*"loss":\([0-9.e+-]*\),.*/\1/' "$1/metrics.jsonl"; }

# the same loss curve within a relative tolerance
same_curve() {
  paste <(losses "$1") <(losses "$2") | awk -v tol="$3" '
    { n++; d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; if (d > tol * $1) bad++ }
    END { printf "steps %d, max |loss diff| %.3g\n", n, m > "/dev/stderr"; exit !(n > 0 && !bad) }'
}

eval_loss() { sed 's/.*"loss":\([0-9.e+-]*\),.*/\1/'; }

@test "no GPU: --device cuda with a baseline is one line, exit 1, nothing written" {
  has_gpu && skip "a GPU is present: the baselines run on it"
  for arch in transformer mamba; do
    run ttt-train "${A[@]}" --arch $arch --device cuda -o "$TMP/g-$arch"
    assert_status 1
    assert_match "^ttt-train: --device cuda: "
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" != *"TTT architectures"* ]]
    [ ! -e "$TMP/g-$arch/model.safetensors" ]
  done
}

@test "cuda: the baselines train, evaluate and generate as on the CPU" {
  has_gpu || skip "no CUDA GPU"
  for arch in transformer mamba; do
    run ttt-train "${A[@]}" --arch $arch -o "$TMP/c-$arch"
    assert_status 0
    run ttt-train "${A[@]}" --arch $arch --device cuda -o "$TMP/g-$arch"
    assert_status 0
    same_curve "$TMP/c-$arch" "$TMP/g-$arch" 2e-3
    # the same checkpoint evaluated on both devices
    lc=$(ttt-eval -q --json -m "$TMP/c-$arch" -d 'data-val-*.tok' | eval_loss)
    lg=$(ttt-eval -q --json -m "$TMP/c-$arch" -d 'data-val-*.tok' --device cuda | eval_loss)
    awk -v a="$lc" -v b="$lg" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-4 * a) }'
    # greedy text (a tiny model: no near ties expected in 24 tokens)
    P="In the beginning the quick brown fox"
    ttt-generate -m "$TMP/c-$arch" -p "$P" -n 24 --greedy > "$TMP/tc"
    ttt-generate -m "$TMP/c-$arch" -p "$P" -n 24 --greedy --device cuda > "$TMP/tg"
    cmp "$TMP/tc" "$TMP/tg"
    # a state saved on one device continues on the other
    ttt-generate -m "$TMP/c-$arch" -p "$P" -n 7 --greedy --state-out "$TMP/sc" > /dev/null
    ttt-generate -m "$TMP/c-$arch" -p "$P" -n 7 --greedy --state-out "$TMP/sg" --device cuda > /dev/null
    ttt-generate -m "$TMP/c-$arch" --state-in "$TMP/sc" -n 17 --greedy > "$TMP/cc"
    ttt-generate -m "$TMP/c-$arch" --state-in "$TMP/sc" -n 17 --greedy --device cuda > "$TMP/cg"
    ttt-generate -m "$TMP/c-$arch" --state-in "$TMP/sg" -n 17 --greedy > "$TMP/gc"
    cmp "$TMP/cc" "$TMP/cg"
    cmp "$TMP/cc" "$TMP/gc"
  done
}
