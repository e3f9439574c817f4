#!/usr/bin/env bash
# mkseeds.sh BINDIR OUTDIR - makes the fuzz seed corpora from real files
# written by the ttt programs: OUTDIR/<target>/ for each libFuzzer target.
# Also used by tests/valgrind.sh's pipeline shape. Nothing here is committed:
# `make fuzz-seeds` regenerates it.
set -euo pipefail
bin=$(cd "${1:?usage: mkseeds.sh BINDIR OUTDIR}" && pwd)
out=${2:?usage: mkseeds.sh BINDIR OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# A small corpus: varied bytes, UTF-8, CRLF, and a JSONL version of it.
for i in 1 2 3; do
  for j in $(seq 1 20); do
    printf 'Line %d.%d: the quick brown fox jumps over the lazy dog.\n' "$i" "$j"
    printf 'Caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xf0\x9f\x98\x80 tabs\tand CRLF\r\n'
  done > doc$i.txt
done
printf '{"text": "first \\"doc\\"\\n\\u00e9\\ud83d\\ude00"}\n\n{"text": "second", "id": 2}\n{"content": "third"}\n' > docs.jsonl

"$bin/ttt-tokenize" train -q -v 300 -o tok.json doc*.txt 2>/dev/null || "$bin/ttt-tokenize" train -v 300 -o tok.json doc*.txt
"$bin/ttt-tokenize" encode -t tok.json -f doc*.txt > stream.bin
"$bin/ttt-tokenize" encode -t tok.json -f doc1.txt > stream1.bin
"$bin/ttt-pack" -q -o data --block-tokens 64 --val-docs 1 stream.bin 2>/dev/null || "$bin/ttt-pack" -o data --block-tokens 64 --val-docs 1 stream.bin
"$bin/ttt-pack" -q -o small --block-tokens 16 stream1.bin 2>/dev/null || "$bin/ttt-pack" -o small --block-tokens 16 stream1.bin

# A very small model so the checkpoint target stays fast.
cat > cfg.json <<'CFG'
{"vocab_size": 300, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
 "num_attention_heads": 2, "max_position_embeddings": 32}
CFG
"$bin/ttt-train" -q -d 'data-train-*.tok' -t tok.json -c cfg.json -o run --ctx 32 --batch 2 --steps 2 >/dev/null

mk() { mkdir -p "$out/$1"; }
for t in json tokstream docs tokenizer encode shard safetensors config checkpoint cli_num; do mk fuzz_$t; done

cp tok.json cfg.json run/config.json "$out/fuzz_json/" 2>/dev/null || cp tok.json cfg.json "$out/fuzz_json/"
head -c 2000 docs.jsonl > "$out/fuzz_json/docs.jsonl.json"
printf '[1, -2.5e-3, true, false, null, "a\\u0000b", {"k": []}]' > "$out/fuzz_json/mixed.json"
cp stream.bin stream1.bin "$out/fuzz_tokstream/"
{ printf '\001'; cat docs.jsonl; } > "$out/fuzz_docs/jsonl"
{ printf '\003'; cat docs.jsonl; } > "$out/fuzz_docs/jsonl-content"
{ printf '\000'; cat doc1.txt; } > "$out/fuzz_docs/text"
cp tok.json "$out/fuzz_tokenizer/"
cp doc1.txt docs.jsonl "$out/fuzz_encode/"
cp data-train-*.tok data-val-*.tok small-train-*.tok "$out/fuzz_shard/"
cp run/model.safetensors "$out/fuzz_checkpoint/"
cp run/model.safetensors run/optimizer.safetensors "$out/fuzz_safetensors/"
cp cfg.json run/config.json "$out/fuzz_config/" 2>/dev/null || cp cfg.json "$out/fuzz_config/"
i=0
for s in 0 1 12 1k 2M 3G -1 1e3 0.5 0x10 9223372036854775807 9223372036854775808 1e-400 nan inf text jsonl ' 1' ''; do
  i=$((i + 1)); printf '\00%o%s' $((i % 5)) "$s" > "$out/fuzz_cli_num/s$i"
done
echo "mkseeds: seeds in $out"
