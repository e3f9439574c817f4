#!/bin/sh
# tokenizer.sh - ttt-tokenize against the usual tools, on the King James
# Bible (`bible ge1:1-re22:21`, Debian package bible-kjv):
#   train:  ttt-tokenize train vs spm_train --model_type=bpe (sentencepiece),
#           same vocabulary size, one thread each
#   encode: ttt-tokenize encode with GPT-2's vocabulary (rebuilt from the npm
#           package tiktoken's ranks) vs tiktoken's gpt2 encoding, one thread,
#           MB/s of encoding only (loading excluded), best of 3; also checks
#           that both give the same ids
# Prints a table. CPU-heavy for about half a minute; run it by hand.
#
#   tests/bench/tokenizer.sh [VOCAB]        (default 8192; needs build/ttt-tokenize)
set -eu
VOCAB=${1:-8192}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${TTT_BIN_DIR:-$ROOT/build}/ttt-tokenize
NODE_DIR=$ROOT/tests/compat   # node_modules there is git-ignored
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

die() { echo "tokenizer.sh: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN not built (run make)"
command -v bible >/dev/null || die "bible not found (apt-get install bible-kjv)"
if ! command -v spm_train >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y --no-install-recommends sentencepiece >/dev/null 2>&1 || true; fi
    command -v spm_train >/dev/null || die "spm_train not found (apt-get install sentencepiece)"
fi
command -v node >/dev/null || die "node not found"
if [ ! -d "$NODE_DIR/node_modules/tiktoken" ]; then
    (cd "$NODE_DIR" && npm install --no-save --no-package-lock --no-audit --no-fund tiktoken >/dev/null 2>&1) ||
        die "npm install tiktoken failed"
fi
export NODE_PATH=$NODE_DIR/node_modules

now() { date +%s.%N; }
bible ge1:1-re22:21 > "$TMP/kjv.txt"
MB=$(awk -v b="$(wc -c < "$TMP/kjv.txt")" 'BEGIN { printf "%.2f", b / 1e6 }')

# ---- train ----
t0=$(now); "$BIN" train -q -v "$VOCAB" -o "$TMP/ours.json" "$TMP/kjv.txt"; t1=$(now)
spm_train --input="$TMP/kjv.txt" --model_prefix="$TMP/spm" --model_type=bpe --vocab_size="$VOCAB" \
    --num_threads=1 --minloglevel=2 >/dev/null 2>&1 || die "spm_train failed"
t2=$(now)
calc() { awk "BEGIN { print $* }"; }
OURS_TRAIN=$(calc "$t1 - $t0")
SPM_TRAIN=$(calc "$t2 - $t1")

# ---- encode ----
node "$ROOT/tests/bench/tiktoken_gpt2.cjs" json "$TMP/gpt2.json"
best=0
for i in 1 2 3; do
    r=$(OMP_NUM_THREADS=1 "$BIN" encode --verbose -t "$TMP/gpt2.json" "$TMP/kjv.txt" 2>&1 >/dev/null |
        sed -n 's/.* \([0-9.]*\) MB\/s$/\1/p')
    best=$(calc "($r > $best) ? $r : $best")
done
TT_S=$(node "$ROOT/tests/bench/tiktoken_gpt2.cjs" encode "$TMP/kjv.txt")
TT_MBS=$(calc "$MB / $TT_S")
"$BIN" encode --text -t "$TMP/gpt2.json" "$TMP/kjv.txt" | tr ' ' '\n' | sed '$d' > "$TMP/ours.ids"
if cmp -s "$TMP/ours.ids" "$TMP/kjv.txt.tiktoken-ids"; then SAME=yes; else SAME=NO; fi

printf 'KJV text: %s MB, vocabulary %s, one thread\n\n' "$MB" "$VOCAB"
printf '%-34s %12s %12s\n' "task" "ttt-tokenize" "reference"
printf '%-34s %11.2fs %11.2fs   (spm_train --model_type=bpe)\n' "train BPE, vocab $VOCAB" "$OURS_TRAIN" "$SPM_TRAIN"
printf '%-34s %8.1f MB/s %7.1f MB/s   (npm tiktoken gpt2)\n' "encode, GPT-2 vocabulary" "$best" "$TT_MBS"
printf '%-34s %12s\n' "same ids as tiktoken" "$SAME"
