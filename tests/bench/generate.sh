#!/usr/bin/env bash
# generate.sh RUNDIR [TEXTFILE] [LENGTHS] [GEN] - decoding speed of ttt-generate:
# milliseconds per generated token after prompts of about 1k, 4k, 16k and 32k
# tokens, and prefill tokens/s. For a TTT model the per-token time should be
# flat in the prompt length (the state is the fast weights, not a KV cache).
#
#   RUNDIR    checkpoint (run directory or model.safetensors)
#   TEXTFILE  prompt source text, repeated as needed (default: the KJV via
#             `bible`, else the man pages of this repository)
#   LENGTHS   prompt lengths in tokens (default "1000 4000 16000 32000")
#   GEN       tokens generated per run (default 64)
#
# The prompt is cut by bytes from an estimate of bytes per token, so the
# actual prompt length (printed) is close to, not exactly, the target.
# Binaries come from $TTT_BIN_DIR (default: build/ next to this script).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${TTT_BIN_DIR:-$here/../../build}
run=${1:?usage: generate.sh RUNDIR [TEXTFILE] [LENGTHS] [GEN]}
lengths=${3:-1000 4000 16000 32000}
gen=${4:-64}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -n "${2:-}" ]; then
  cp "$2" "$tmp/src.txt"
elif command -v bible >/dev/null; then
  bible -l10000 ge1:1-ex40:38 > "$tmp/src.txt"
else
  cat "$here"/../../man/*.[157] > "$tmp/src.txt"
fi
[ -s "$tmp/src.txt" ] || { echo "generate.sh: empty source text" >&2; exit 1; }

# bytes per token of this text under the run's tokenizer (from a 1k-token run)
probe=$(head -c 20000 "$tmp/src.txt" | "$bin/ttt-generate" -m "$run" -n 1 --greedy -v 2>&1 >/dev/null |
        sed -n 's/.*prompt \([0-9]*\) tokens.*/\1/p')
[ -n "$probe" ] && [ "$probe" -gt 0 ] || { echo "generate.sh: could not measure the prompt length" >&2; exit 1; }
bpt=$(awk -v t="$probe" 'BEGIN { printf "%.4f", 20000 / t }')

printf '%-14s %-14s %-16s %-14s\n' prompt_tokens prefill_s prefill_tok/s ms/token
for n in $lengths; do
  bytes=$(awk -v n="$n" -v b="$bpt" 'BEGIN { printf "%d", n * b }')
  : > "$tmp/prompt.txt"
  while [ "$(stat -c %s "$tmp/prompt.txt")" -lt "$bytes" ]; do cat "$tmp/src.txt" >> "$tmp/prompt.txt"; done
  head -c "$bytes" "$tmp/prompt.txt" > "$tmp/p.txt"
  line=$("$bin/ttt-generate" -m "$run" -n "$gen" --seed 1 -v < "$tmp/p.txt" 2>&1 >/dev/null | tail -n 1)
  # "prompt P tokens in S s (R tokens/s); generated G tokens in T s (M ms/token); position X"
  echo "$line" | awk '{
      for (i = 1; i <= NF; i++) {
        if ($i == "prompt") p = $(i+1)
        if ($i == "in" && !s) s = $(i+1)
        if ($i ~ /^\(/ && !r) { r = substr($i, 2) }
        if ($i ~ /^\(.*/ && $(i+1) ~ /^ms\/token/) m = substr($i, 2)
      }
      printf "%-14s %-14s %-16s %-14s\n", p, s, r, m }'
done
