#!/usr/bin/env bats
# ttt-train under faults: SIGKILL at random moments (checkpoint writes
# included), NaN/Inf losses and gradients, a full or read-only run
# directory, not enough memory, an absent GPU, and two runs on one RUNDIR.
# The promise each test backs: the last complete checkpoint always loads,
# --resume then ends with the same bits as an uninterrupted run, and every
# failure is exit 1 with one line "ttt-train: ...".
#
# Fault injection uses two test-only hooks, inert when unset:
# TTT_TEST_SLOW_SAVE=MS (lib/checkpoint.c: a pause at each stage of a save,
# to land kills inside the write) and TTT_TEST_NAN_STEP=N[:loss]
# (lib/train_guard.c: a NaN gradient or loss at step N).
load test_helper

setup_file() {
  cd "$BATS_FILE_TMPDIR"
  mkdir -p corpus
  awk 'BEGIN { srand(11);
    split("red big small old green happy quiet dark", A, " ");
    split("cat dog bird fox king queen horse child", N, " ");
    split("sees chases finds follows loves hears meets helps", V, " ");
    for (d = 1; d <= 12; d++) {
      f = sprintf("corpus/doc%02d.txt", d);
      for (s = 1; s <= 60; s++)
        printf "the %s %s %s the %s %s.%s", A[int(rand()*8)+1], N[int(rand()*8)+1],
               V[int(rand()*8)+1], A[int(rand()*8)+1], N[int(rand()*8)+1], s % 6 ? " " : "\n" > f;
      close(f)
    } }'
  ttt-tokenize train -q -v 300 -o tok.json corpus/*.txt
  ttt-tokenize encode -t tok.json corpus/*.txt > s.tks
  ttt-pack -q -o data s.tks
  # a model small enough that a step and a checkpoint take milliseconds
  cat > cfg.json <<'CFG'
{"vocab_size": 300, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
 "num_attention_heads": 2, "max_position_embeddings": 32}
CFG
}

setup() {
  TMP="$BATS_TEST_TMPDIR"
  cd "$TMP"
  export OMP_WAIT_POLICY=passive
  MNT=
}

teardown() {
  if [ -n "${MNT:-}" ]; then umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true; fi
}

D() { echo "$BATS_FILE_TMPDIR/$1"; }
# the options of every run here (run.json keeps them for --resume)
args() { echo "-c $(D cfg.json) -d $(D 'data-train-*.tok') --ctx 32 --batch 2 --threads 1 -q $*"; }

# mount_tmpfs DIR SIZE: a small tmpfs at DIR (sets MNT for teardown), or skip.
mount_tmpfs() {
  mkdir -p "$1"
  local abs
  abs=$(cd "$1" && pwd)
  if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o "size=$2" tmpfs "$abs" 2>/dev/null; then
    skip_or_fail "cannot mount a tmpfs (needs root)"
  fi
  MNT=$abs
}

# one_line_error: the last `run` exited 1 with exactly one line "ttt-train: ..."
one_line_error() {
  assert_status 1 || return 1
  assert_one_line_error ttt-train || return 1
  [ "${#lines[@]}" -eq 1 ] || { echo "expected one line, got: $output" >&2; return 1; }
}

# step_of FILE: the "step" in a safetensors file's metadata
step_of() { head -c 20000 "$1" | grep -ao '"step":"[0-9]*"' | grep -o '[0-9][0-9]*'; }

# verified RUNDIR: its checkpoint passes ttt-inspect --verify, model and
# optimizer (from ckpt.new/ when a committed save was not yet moved)
verified() {
  local o=$1/optimizer.safetensors
  [ -e "$1/ckpt.new/optimizer.safetensors" ] && o=$1/ckpt.new/optimizer.safetensors
  ttt-inspect --verify "$1" > /dev/null && ttt-inspect --verify "$o" > /dev/null
}

@test "faults: SIGKILL at random moments, checkpoint writes included: the last checkpoint verifies and --resume ends with the uninterrupted run's bits" {
  ttt-train $(args --steps 300 --save-every 1) -o straight
  RANDOM=35   # the kill times: random, but the same on every run of the test
  kills=0 inwrite=0 resumed=0
  for k in $(seq 25); do
    # odd rounds stretch the save (most kills land in it), even ones do not
    slow=$((k % 2 * 3))
    if [ -e run/model.safetensors ] || [ -e run/ckpt.new/model.safetensors ]; then
      TTT_TEST_SLOW_SAVE=$slow ttt-train --resume run --threads 1 -q 2> err & resumed=$((resumed + 1))
    else
      TTT_TEST_SLOW_SAVE=$slow ttt-train $(args --steps 300 --save-every 1) -o run 2> err &
    fi
    pid=$!
    # from the moment it holds the lock (program start-up varies with the
    # machine's load): recovery, loading, steps and saves all get hit
    for i in $(seq 300); do [ "$(cat run/lock 2>/dev/null)" = "$pid" ] && break; sleep 0.01; done
    sleep "$(printf '0.%03d' $((RANDOM % 150)))"
    kill -9 "$pid" 2>/dev/null || true
    st=0; wait "$pid" || st=$?
    # killed (137), or it finished first (0); never a failure of its own
    [ "$st" -eq 137 ] || [ "$st" -eq 0 ] || { echo "round $k: exit $st: $(cat err)" >&2; return 1; }
    [ "$st" -eq 137 ] && kills=$((kills + 1))
    { [ -e run/ckpt.tmp ] || [ -e run/ckpt.new ]; } && inwrite=$((inwrite + 1))
    if [ -e run/model.safetensors ] || [ -e run/ckpt.new/model.safetensors ]; then
      verified run || { echo "round $k: the checkpoint does not verify" >&2; ls -la run run/ckpt.* >&2; return 1; }
    fi
  done
  echo "kills $kills, inside a checkpoint write $inwrite, resumed $resumed" >&2
  [ "$kills" -ge 20 ] && [ "$inwrite" -ge 3 ] && [ "$resumed" -ge 15 ]
  # (the run may have reached its last step on a fast machine: the kills above,
  # counted, are what interrupted it; the end state must still be bit-identical)
  run ttt-train --resume run --threads 1 -q
  assert_status 0
  cmp straight/model.safetensors run/model.safetensors
  cmp straight/optimizer.safetensors run/optimizer.safetensors
  [ ! -e run/ckpt.tmp ] && [ ! -e run/ckpt.new ]
  diff <(cut -d, -f1-4 straight/metrics.jsonl) <(cut -d, -f1-4 run/metrics.jsonl)
}

# strace_ok: strace can trace here (ptrace may be forbidden in containers)
strace_ok() {
  command -v strace > /dev/null && strace -qq -o /dev/null true 2>/dev/null
}

# The file-system calls that change what a crash leaves behind.
FSCALLS=rename,mkdir,rmdir,unlink

# kill_points EVENTS: "CALL K" for the K-th call of each kind in an strace
# log (strace counts `when=K` per system call, not over the set)
kill_points() {
  local c k
  for c in ${FSCALLS//,/ }; do
    for k in $(seq 1 "$(grep -cE "^[0-9]+ +$c\(" "$1")"); do echo "$c $k"; done
  done
}

@test "faults: SIGKILL after each file-system step of resume and two saves (strace): every state verifies and resumes to the same bits" {
  strace_ok || skip_or_fail "strace cannot trace here"
  ttt-train $(args --steps 3 --save-every 1) -o straight
  ttt-train $(args --steps 3 --save-every 1) -o base --stop-after 1
  cp -a base probe
  strace -f -qq -e trace=$FSCALLS -o events ttt-train --resume probe --threads 1 -q
  kill_points events > points
  echo "$(wc -l < points) kill points in a resume with two saves" >&2
  [ "$(wc -l < points)" -ge 15 ]
  while read -r c k; do
    rm -rf r
    cp -a base r
    st=0
    strace -f -qq -o /dev/null -e trace=$c -e inject=$c:signal=KILL:when=$k \
      ttt-train --resume r --threads 1 -q 2> /dev/null || st=$?
    [ "$st" -eq 137 ] || { echo "$c #$k: exit $st, not killed" >&2; return 1; }
    verified r || { echo "$c #$k: the checkpoint does not verify" >&2; return 1; }
    run ttt-train --resume r --threads 1 -q
    assert_status 0 || { echo "$c #$k" >&2; return 1; }
    cmp straight/model.safetensors r/model.safetensors
    cmp straight/optimizer.safetensors r/optimizer.safetensors
    [ ! -e r/ckpt.tmp ] && [ ! -e r/ckpt.new ]
  done < points
}

@test "faults: ttt-pack killed after each file-system step (strace) never leaves shards that pass for complete" {
  strace_ok || skip_or_fail "strace cannot trace here"
  mkdir many
  for i in 1 2 3 4; do for f in "$(D corpus)"/*.txt; do cp "$f" "many/$i-${f##*/}"; done; done
  ttt-tokenize encode -t "$(D tok.json)" many/*.txt > mid.tks
  ttt-pack -q --shard-tokens 4000 -o ref mid.tks
  [ "$(ls ref-train-*.tok | wc -l)" -ge 3 ]
  strace -f -qq -e trace=$FSCALLS -o events ttt-pack -q --shard-tokens 4000 -o probe mid.tks
  kill_points events > points
  partial=
  while read -r c k; do
    rm -f p-* .p-*
    strace -f -qq -o /dev/null -e trace=$c -e inject=$c:signal=KILL:when=$k \
      ttt-pack -q --shard-tokens 4000 -o p mid.tks 2> /dev/null || true
    [ -n "$(ls p-*.tok 2>/dev/null)" ] || continue
    same=1
    for f in ref-*.tok; do cmp -s "$f" "p${f#ref}" || same=0; done
    [ "$(ls p-*.tok | wc -l)" -eq "$(ls ref-*.tok | wc -l)" ] || same=0
    [ "$same" = 1 ] && continue
    # not the complete set: readers must refuse it (000000 is published last)
    for split in train val; do
      ls p-$split-*.tok > /dev/null 2>&1 || continue
      rm -rf x
      if ttt-train -q -d "p-$split-*.tok" -c tiny --ctx 16 --batch 1 --steps 1 --threads 1 -o x 2> err; then
        partial="$partial $c#$k"
      else
        grep -q "missing from the set" err || partial="$partial $c#$k($(cat err))"
      fi
    done
  done < points
  [ -z "$partial" ] || { echo "ttt-pack killed at$partial (of $(wc -l < points) points) left a set that reads as complete" >&2; return 1; }
}

@test "faults: ttt-pack killed at random moments never leaves shards that pass for complete" {
  # 480 documents (they are never split): many shards, a few hundred ms
  mkdir many
  for i in $(seq 40); do for f in "$(D corpus)"/*.txt; do cp "$f" "many/$i-${f##*/}"; done; done
  ttt-tokenize encode -t "$(D tok.json)" many/*.txt > big.tks
  ttt-pack -q -l 9 --shard-tokens 20000 --block-tokens 512 -o ref big.tks
  nref=$(ls ref-train-*.tok | wc -l)
  [ "$nref" -ge 3 ]
  RANDOM=20
  for k in $(seq 12); do
    rm -f p-* .p-*
    ttt-pack -q -l 9 --shard-tokens 20000 --block-tokens 512 -o p big.tks &
    pid=$!
    sleep "$(printf '0.%03d' $((RANDOM % 400)))"
    kill -9 "$pid" 2>/dev/null || true
    st=0; wait "$pid" || st=$?
    if [ "$st" -eq 0 ]; then
      # finished before the kill: the whole set, identical to the reference
      for f in ref-*.tok; do cmp "$f" "p${f#ref}"; done
    elif [ -n "$(ls p-*.tok 2>/dev/null)" ]; then
      # killed after the whole set was renamed into place: it must be whole
      same=1
      for f in ref-*.tok; do cmp -s "$f" "p${f#ref}" || same=0; done
      [ "$(ls p-*.tok | wc -l)" -eq "$(ls ref-*.tok | wc -l)" ] || same=0
      # a kill inside the renames leaves part of a set without its 000000
      # (published last): readers must refuse it
      if [ "$same" = 0 ]; then
        for split in train val; do
          ls p-$split-*.tok > /dev/null 2>&1 || continue
          rm -rf x
          run ttt-train -q -d "p-$split-*.tok" -c tiny --ctx 16 --batch 1 --steps 1 --threads 1 -o x
          assert_status 1
          assert_match "missing from the set"
        done
      fi
    fi
  done
}

@test "faults: a NaN gradient stops the run naming the step and the tensor; the last checkpoint is kept" {
  ttt-train $(args --steps 10 --save-every 3) -o ref --stop-after 6
  TTT_TEST_NAN_STEP=8 run ttt-train $(args --steps 10 --save-every 3) -o run
  one_line_error
  assert_match "^ttt-train: step 8: gradient of model\.[a-z0-9_.]+ is not finite \(first at index [0-9]+\); stopped before the update"
  # the checkpoint of step 6 stays, exactly the clean run's; nothing of step 7/8 was saved
  [ "$(step_of run/model.safetensors)" -eq 6 ]
  cmp ref/model.safetensors run/model.safetensors
  cmp ref/optimizer.safetensors run/optimizer.safetensors
  verified run
  [ ! -e run/ckpt.tmp ] && [ ! -e run/ckpt.new ]
  # and the run goes on from it
  run ttt-train --resume run --threads 1 -q
  assert_status 0
  [ "$(step_of run/model.safetensors)" -eq 10 ]
}

@test "faults: a NaN loss, injected or from an exploding initialisation, stops with one line and saves nothing" {
  ttt-train $(args --steps 6 --save-every 2) -o run --stop-after 2
  cp run/model.safetensors before.st
  TTT_TEST_NAN_STEP=4:loss run ttt-train --resume run --threads 1 -q
  one_line_error
  assert_match "^ttt-train: step 4: the loss is NaN; stopped before the update"
  # step 3 was not a checkpoint step: the step-2 checkpoint is untouched
  cmp before.st run/model.safetensors
  # no hook: weights of 1e30 overflow the logits at the first step
  sed 's/}$/, "initializer_range": 1e30}/' "$(D cfg.json)" > huge.json
  run ttt-train -c huge.json -d "$(D 'data-train-*.tok')" --ctx 32 --batch 2 --threads 1 -q --steps 5 -o blow
  one_line_error
  assert_match "^ttt-train: step 1: the loss is (NaN|Inf|-Inf)"
  [ ! -e blow ]   # a run that never saved leaves no directory
}

@test "faults: --skip-nonfinite applies no update, counts the step in metrics.jsonl, and the count survives --resume" {
  ttt-train $(args --steps 10 --save-every 1) -o ref --stop-after 4
  TTT_TEST_NAN_STEP=5 run ttt-train $(args --steps 10 --save-every 1 --skip-nonfinite) -o run --stop-after 6
  assert_status 0
  sed -n 5p run/metrics.jsonl | grep -q '^{"step":5,"loss":null,"skipped":true,"skipped_total":1,.*"grad_norm":null,'
  [ "$(grep -c skipped run/metrics.jsonl)" -eq 1 ]
  # no update at step 5: the weights after it equal those after step 4
  [ "$(step_of run/model.safetensors)" -eq 6 ]
  run ttt-inspect --diff ref/model.safetensors run/model.safetensors
  assert_match "summary: [0-9]+ tensors compared, [1-9][0-9]* differ"   # step 6 did update
  TTT_TEST_NAN_STEP=5 run ttt-train $(args --steps 10 --save-every 1 --skip-nonfinite) -o run5 --stop-after 5
  assert_status 0
  run ttt-inspect --diff ref/model.safetensors run5/model.safetensors
  assert_match "summary: [0-9]+ tensors compared, 0 differ, 0 only in a, 0 only in b, 1 metadata entries differ"
  # the total carries over a resume; the end of the run reports it
  TTT_TEST_NAN_STEP=8 run ttt-train --resume run --threads 1 --skip-nonfinite
  assert_status 0
  assert_match "step 8: gradient of model\..* skipped"
  assert_match "2 steps skipped"
  grep -q '^{"step":8,"loss":null,"skipped":true,"skipped_total":2,' run/metrics.jsonl
  [ "$(grep -c '"skipped":true' run/metrics.jsonl)" -eq 2 ]
  [ "$(wc -l < run/metrics.jsonl)" -eq 10 ]
  # every line is still JSON (no bare nan)
  run grep -ci 'nan' run/metrics.jsonl
  [ "$output" = 0 ]
}

@test "faults: disk full during a checkpoint write: exit 1, one line, the previous checkpoint loads; after space returns --resume matches" {
  ttt-train $(args --steps 12 --save-every 1) -o straight
  mount_tmpfs full 1m
  ttt-train $(args --steps 12 --save-every 1) -o full/run --stop-after 5
  # leave room for metrics lines and a model file, not for the optimizer state
  avail=$(df --output=avail -B1 full | tail -1)
  head -c $((avail - 48 * 1024)) /dev/zero > full/.fill || true
  run ttt-train --resume full/run --threads 1 -q
  one_line_error
  assert_match "full/run/.*No space left on device"
  [ "$(step_of full/run/model.safetensors)" -eq 5 ]
  verified full/run
  [ ! -e full/run/ckpt.tmp ] && [ ! -e full/run/ckpt.new ]
  rm full/.fill
  run ttt-train --resume full/run --threads 1 -q
  assert_status 0
  cmp straight/model.safetensors full/run/model.safetensors
  cmp straight/optimizer.safetensors full/run/optimizer.safetensors
}

@test "faults: a read-only run directory: --resume refused with one line, the checkpoint untouched" {
  ttt-train $(args --steps 8 --save-every 2) -o straight
  mount_tmpfs ro 1m
  ttt-train $(args --steps 8 --save-every 2) -o ro/run --stop-after 4
  cp -a ro/run copy
  mount -o remount,ro "$MNT" || skip_or_fail "cannot remount the tmpfs read-only"
  run ttt-train --resume ro/run --threads 1 -q
  one_line_error
  assert_match "ro/run.*Read-only file system"
  diff -r copy ro/run
  mount -o remount,rw "$MNT"
  run ttt-train --resume ro/run --threads 1 -q
  assert_status 0
  cmp straight/model.safetensors ro/run/model.safetensors
}

@test "faults: not enough memory for the batch: one line with the estimate and advice, before anything is allocated" {
  # far beyond any machine: refused from the estimate alone
  run ttt-train $(args --steps 2) --batch 4096 --ctx 65536 -o huge
  one_line_error
  assert_match "out of memory: the run needs about [0-9]+ MiB, [0-9]+ MiB available \(.*activations for 4096 windows x 65536 tokens [0-9]+ MiB\); try a larger --accum or a smaller --batch or --ctx"
  [ ! -e huge ]
  # under ulimit -v: the smallest limit (KiB) under which the program starts
  # at all (shared libraries, BLAS buffers), then a batch that does not fit
  lim=
  for l in 1500000 2000000 3000000 4000000 6000000; do
    if (ulimit -v "$l"; timeout 5 ttt-train --version) > /dev/null 2>&1; then lim=$l; break; fi
  done
  [ -n "$lim" ] || skip_or_fail "ttt-train does not start under ulimit -v 6000000"
  # about 4.7 GiB at the smallest limit: beyond the limit, within physical memory
  run bash -c "ulimit -v $lim; ttt-train $(args --steps 2) --batch $((64 * lim / 1500000 + 1)) --ctx 16384 -o capped 2>&1"
  one_line_error
  assert_match "out of memory: the run needs about [0-9]+ MiB, [0-9]+ MiB available .*--accum"
  [ ! -e capped ]
  # and with --accum the same global batch fits in micro-batches of one window
  run bash -c "ulimit -v $lim; ttt-train $(args --steps 1) --batch 64 --accum 64 --ctx 1024 -o accum 2>&1"
  assert_status 0
}

@test "faults: --device cuda without a GPU: one line, exit 1, nothing created" {
  if command -v nvidia-smi > /dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; then
    skip "a GPU is present"
  fi
  run ttt-train $(args --steps 2) --device cuda -o gpu
  one_line_error
  assert_match "^ttt-train: --device cuda: (no CUDA device found|this build has no CUDA support)"
  [ ! -e gpu ]
}

@test "faults: two runs on one RUNDIR at once: the second is refused (fresh or --resume) and the first's run is intact" {
  ttt-train $(args --steps 100000 --save-every 5) -o busy &
  pid=$!
  for i in $(seq 100); do [ -s busy/model.safetensors ] && break; sleep 0.05; done
  [ -s busy/model.safetensors ]
  kill -0 "$pid"   # still running: the attempts below are concurrent with it
  run ttt-train $(args --steps 5) -o busy
  one_line_error
  assert_match "^ttt-train: busy: another ttt-train is running on this run directory"
  run ttt-train --resume busy --threads 1 -q
  one_line_error
  assert_match "another ttt-train is running"
  kill -0 "$pid"
  kill -TERM "$pid"
  st=0; wait "$pid" || st=$?
  [ "$st" -eq 130 ]
  # the first run's files are all there and consistent; it continues exactly
  for f in model.safetensors optimizer.safetensors run.json config.json metrics.jsonl lock; do
    [ -s "busy/$f" ] || { echo "busy/$f missing" >&2; return 1; }
  done
  verified busy
  n=$(step_of busy/model.safetensors)
  [ "$(wc -l < busy/metrics.jsonl)" -eq "$n" ]
  run ttt-train --resume busy --threads 1 -q --stop-after $((n + 3))
  assert_status 0
  run ttt-train $(args --steps 100000 --save-every 5) -o ref --stop-after $((n + 3))
  cmp ref/model.safetensors busy/model.safetensors
}
