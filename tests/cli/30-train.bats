#!/usr/bin/env bats
# ttt-train: learning (validation loss well below the unigram entropy),
# exact resume (--stop-after and SIGINT), the run directory, the lock, and
# every bad input failing with one clear line.
load test_helper

# A synthetic corpus with structure a tiny model learns in seconds:
# "the ADJ NOUN VERB the ADJ NOUN." sentences, 40 documents, fixed seed.
setup_file() {
  local d=$BATS_FILE_TMPDIR
  cd "$d"
  mkdir -p corpus
  awk 'BEGIN { srand(7);
    split("red big small old green happy quiet dark", A, " ");
    split("cat dog bird fox king queen horse child", N, " ");
    split("sees chases finds follows loves hears meets helps", V, " ");
    for (d = 1; d <= 40; d++) {
      f = sprintf("corpus/doc%02d.txt", d);
      for (s = 1; s <= 60; s++) {
        printf "the %s %s %s the %s %s. ", A[int(rand()*8)+1], N[int(rand()*8)+1],
               V[int(rand()*8)+1], A[int(rand()*8)+1], N[int(rand()*8)+1] > f;
        if (s % 6 == 0) printf "\n" > f
      }
      close(f)
    } }'
  ttt-tokenize train -q -v 300 -o tok.json corpus/*.txt
  ttt-tokenize encode -t tok.json corpus/*.txt | ttt-pack -q -o data --val-docs 4 -
  ttt-tokenize train -q -v 280 -o other.json corpus/*.txt
}

D() { echo "$BATS_FILE_TMPDIR/$1"; }
TINY="-c tiny --ctx 64 --batch 8 --threads 1 -q"
# Smaller steps where only exactness or errors are tested. One thread: OpenMP
# spin-waiting on a loaded 2-core machine costs 50x.
FAST="-c tiny --ctx 32 --batch 4 --threads 1 -q"

@test "training drives the validation loss well below the unigram entropy" {
  run ttt-train -d "$(D 'data-train-*.tok')" --val "$(D 'data-val-*.tok')" -t "$(D tok.json)" $TINY \
      --steps 60 --eval-every 30 -o run
  assert_status 0
  for f in model.safetensors optimizer.safetensors config.json run.json metrics.jsonl tokenizer.json; do
    [ -s run/$f ] || { echo "missing run/$f" >&2; return 1; }
  done
  cmp run/tokenizer.json "$(D tok.json)"
  [ ! -e run/ckpt.tmp ] && [ ! -e run/ckpt.new ]
  [ "$(wc -l < run/metrics.jsonl)" -eq 60 ]
  uni=$(sed -n 's/.*"unigram_loss": \([0-9.e+-]*\).*/\1/p' run/run.json)
  first=$(head -1 run/metrics.jsonl | sed 's/.*"loss":\([0-9.e+-]*\),.*/\1/')
  val=$(tail -1 run/metrics.jsonl | sed 's/.*"val_loss":\([0-9.e+-]*\),.*/\1/')
  echo "unigram $uni first $first val $val" >&2
  # untrained: about ln(300); trained: well below what token frequencies give
  awk -v u="$uni" -v f="$first" -v v="$val" 'BEGIN { exit !(f > 5 && u > 3 && v < 0.75 * u) }'
  # every metrics line has the documented fields
  grep -c '"step":[0-9]*,"loss":[0-9.e+-]*,.*"lr":.*"grad_norm":.*"tokens_per_s":.*"elapsed_s":' run/metrics.jsonl | grep -qx 60
  grep -c '"val_loss"' run/metrics.jsonl | grep -qx 2
  # the model file: reference names, F32, config/step/tokenizer_hash/xxh3 metadata
  head -c 20000 run/model.safetensors | grep -q '"model.embed_tokens.weight":{"dtype":"F32"'
  head -c 20000 run/model.safetensors | grep -q '"step":"60"'
  head -c 20000 run/model.safetensors | grep -q '"xxh3.model.embed_tokens.weight":"[0-9a-f]\{16\}"'
  head -c 20000 run/model.safetensors | grep -q '"tokenizer_hash":"[0-9a-f]\{16\}"'
  grep -q '"hidden_size": 64' run/config.json
}

@test "--resume after --stop-after gives the same bits as a straight run" {
  A="-d $(D 'data-train-*.tok') --val $(D 'data-val-*.tok') $FAST --steps 24 --eval-every 8"
  run ttt-train $A -o straight
  assert_status 0
  run ttt-train $A -o split --stop-after 9
  assert_status 0
  head -c 20000 split/model.safetensors | grep -aq '"step":"9"'
  run ttt-train --resume split --threads 1 -q
  assert_status 0
  cmp straight/model.safetensors split/model.safetensors
  cmp straight/optimizer.safetensors split/optimizer.safetensors
  diff <(cut -d, -f1-4 straight/metrics.jsonl) <(cut -d, -f1-4 split/metrics.jsonl)
  # a finished run says so and changes nothing
  run ttt-train --resume split -q
  assert_status 0
  cmp straight/model.safetensors split/model.safetensors
}

@test "SIGINT finishes the step, saves, exits 130; resume matches a straight run" {
  A="-d $(D 'data-train-*.tok') $FAST --steps 200"
  ttt-train $A -o straight
  ttt-train $A -o intr &
  pid=$!
  for i in $(seq 100); do [ -s intr/metrics.jsonl ] && break; sleep 0.1; done
  kill -INT $pid
  st=0; wait $pid || st=$?
  [ "$st" -eq 130 ] || { echo "exit $st" >&2; return 1; }
  n=$(head -c 20000 intr/model.safetensors | grep -ao '"step":"[0-9]*"' | grep -o '[0-9][0-9]*')
  echo "interrupted at step $n" >&2
  [ "$n" -ge 1 ] && [ "$n" -lt 200 ]
  [ "$(wc -l < intr/metrics.jsonl)" -eq "$n" ]
  run ttt-train --resume intr --threads 1 -q
  assert_status 0
  cmp straight/model.safetensors intr/model.safetensors
}

@test "--accum splits the batch without changing the result (beyond rounding)" {
  A="-d $(D 'data-train-*.tok') $FAST --steps 3"
  run ttt-train $A -o one
  assert_status 0
  run ttt-train $A --accum 4 -o four
  assert_status 0
  l1=$(tail -1 one/metrics.jsonl | sed 's/.*"loss":\([0-9.e+-]*\),.*/\1/')
  l4=$(tail -1 four/metrics.jsonl | sed 's/.*"loss":\([0-9.e+-]*\),.*/\1/')
  awk -v a="$l1" -v b="$l4" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-4) }'
  run ttt-train $A --batch 6 --accum 4 -o bad
  assert_status 2
}

@test "a second ttt-train on the same RUNDIR is refused" {
  ttt-train -d "$(D 'data-train-*.tok')" $FAST --steps 2000 -o busy &
  pid=$!
  for i in $(seq 100); do [ -s busy/metrics.jsonl ] && break; sleep 0.1; done
  run ttt-train -d "$(D 'data-train-*.tok')" $FAST --steps 5 -o busy
  kill -TERM $pid
  st=0; wait $pid || st=$?
  [ "$st" -eq 130 ]
  [ "$status" -eq 1 ]
  assert_match "^ttt-train: busy: another ttt-train is running on this run directory"
}

@test "bad input: one line naming the problem, exit 1 or 2" {
  T="-d $(D 'data-train-*.tok') $FAST --steps 2"
  run ttt-train -d "$(D 'nothing-*.tok')" -o r1
  assert_status 1; assert_one_line_error ttt-train
  run ttt-train $T -t "$(D other.json)" -o r2
  assert_status 1; assert_one_line_error ttt-train
  assert_match "other.json: tokenizer hash [0-9a-f]{16} does not match the shards .*data-train"
  echo '{"hidden_size": 64,' > bad.json
  run ttt-train $T -c bad.json -o r3
  assert_status 1; assert_one_line_error ttt-train
  assert_match "bad.json"
  echo '{"hidden_size": 64, "num_attention_heads": 5}' > bad2.json
  run ttt-train $T -c bad2.json -o r3b
  assert_status 1; assert_match "bad2.json: .*multiple"
  echo '{"vocab_size": 100}' > small.json
  run ttt-train $T -c small.json -o r3c
  assert_status 1; assert_match "vocab_size 100 is smaller"
  run ttt-train $T -c no-such-preset -o r4
  assert_status 2; assert_match "unknown model preset"
  run ttt-train $T --steps 3 --tokens 1000 -o r5
  assert_status 2; assert_match "exclude each other"
  mkdir notarun
  run ttt-train --resume notarun
  assert_status 1; assert_match "notarun: not a training run"
  touch afile
  run ttt-train $T -o afile/run
  assert_status 1; assert_match "afile/run: cannot create"
  run ttt-train $T --device cuda -o r6
  assert_status 1; assert_match "cuda"
  run ttt-train $T --warmup 5 -o r7
  assert_status 2
  run ttt-train -o r8
  assert_status 2; assert_match "no training data"
  run ttt-train $T -o r9 extra-operand
  assert_status 2
}

@test "damage is detected on resume, naming the tensor; a used RUNDIR needs --resume" {
  run ttt-train -d "$(D 'data-train-*.tok')" $FAST --steps 3 --stop-after 2 -o dmg
  assert_status 0
  run ttt-train -d "$(D 'data-train-*.tok')" $FAST --steps 3 -o dmg
  assert_status 1; assert_match "already holds a training run"
  run ttt-train --resume dmg --lr 0.1
  assert_status 2; assert_match "--lr cannot be given with --resume"
  # flip one byte near the end: inside the last tensor's data
  size=$(stat -c %s dmg/model.safetensors)
  printf '\x55' | dd of=dmg/model.safetensors bs=1 seek=$((size - 7)) conv=notrunc 2>/dev/null
  run ttt-train --resume dmg -q
  assert_status 1; assert_one_line_error ttt-train
  assert_match "model.safetensors: tensor model\.[a-z0-9_.]+: checksum mismatch"
  # truncated
  head -c 1000 "$BATS_TEST_TMPDIR/dmg/optimizer.safetensors" > x && mv x dmg/model.safetensors
  run ttt-train --resume dmg -q
  assert_status 1; assert_match "model.safetensors: "
}

@test "--dtype bf16 needs --device cuda; --device cuda without a GPU is one line, exit 1" {
  run ttt-train -d "$(D 'data-train-*.tok')" $FAST --steps 2 --dtype bf16 -o bf
  assert_status 2; assert_match "--dtype bf16 needs --device cuda"
  [ ! -e bf ]
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then skip "a GPU is present"; fi
  run ttt-train -d "$(D 'data-train-*.tok')" $FAST --steps 2 --device cuda -o gpu
  assert_status 1; assert_one_line_error ttt-train
  assert_match "(no CUDA device found|no CUDA support)"
  [ ! -e gpu/model.safetensors ]
}
