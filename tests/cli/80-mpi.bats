#!/usr/bin/env bats
# Data-parallel ttt-train under mpirun: a 2-rank run with global batch B
# equals a 1-rank run with batch B (loss curve and final weights within
# float tolerance), only rank 0 writes RUNDIR, resume under MPI (also on a
# different rank count), signals stop every rank at the same step, and the
# batch/rank mismatch is a usage error. Skips when mpirun is absent or the
# build has no MPI.
load test_helper

setup_file() {
  local d=$BATS_FILE_TMPDIR
  cd "$d"
  mkdir -p corpus
  awk 'BEGIN { srand(11);
    split("red big small old green happy quiet dark", A, " ");
    split("cat dog bird fox king queen horse child", N, " ");
    split("sees chases finds follows loves hears meets helps", V, " ");
    for (d = 1; d <= 20; d++) {
      f = sprintf("corpus/doc%02d.txt", d);
      for (s = 1; s <= 60; s++)
        printf "the %s %s %s the %s %s. ", A[int(rand()*8)+1], N[int(rand()*8)+1],
               V[int(rand()*8)+1], A[int(rand()*8)+1], N[int(rand()*8)+1] > f;
      close(f)
    } }'
  ttt-tokenize train -q -v 300 -o tok.json corpus/*.txt
  ttt-tokenize encode -t tok.json corpus/*.txt | ttt-pack -q -o data --val-docs 3 -
}

setup() {
  TMP="$BATS_TEST_TMPDIR"
  cd "$TMP"
  command -v mpirun >/dev/null || skip_or_fail "mpirun not installed"
  ttt-train -V -v | grep -q '^mpi: yes' || skip_or_fail "ttt-train built without MPI"
  MPIRUN=(mpirun --oversubscribe)
  [ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
  # One thread per rank (2 shared cores); passive OpenMP waits.
  export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
  D=$BATS_FILE_TMPDIR
  A=(-d "$D/data-train-*.tok" --val "$D/data-val-*.tok" -c tiny --ctx 32 --threads 1 -q --eval-every 5)
  CMP=$TTT_BIN_DIR/tests/test_dist
  [ -x "$CMP" ] || skip_or_fail "$CMP not built (make build/tests/test_dist)"
}

# losses of metrics.jsonl, one per line
losses() { sed 's/.*"loss":\([0-9.e+-]*\),.*/\1/' "$1/metrics.jsonl"; }

# same loss curve within a relative tolerance
same_curve() {
  paste <(losses "$1") <(losses "$2") | awk -v tol="$3" '
    { n++; d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; if (d > tol * $1) bad++ }
    END { printf "steps %d, max |loss diff| %.3g\n", n, m > "/dev/stderr"; exit !(n > 0 && !bad) }'
}

@test "the collectives work across 2 ranks" {
  run "${MPIRUN[@]}" -np 2 "$CMP"
  assert_status 0
  assert_match "0 failed"
}

@test "the all-reduce overlapped with the backward equals the plain one across 2 ranks" {
  [ -x "$TTT_BIN_DIR/tests/test_grad_hook" ] || skip_or_fail "test_grad_hook not built"
  run "${MPIRUN[@]}" -np 2 "$TTT_BIN_DIR/tests/test_grad_hook"
  assert_status 0
  assert_match "0 failed"
}

@test "2 ranks with global batch B equal 1 rank with batch B; only rank 0 writes" {
  run ttt-train "${A[@]}" --batch 8 --steps 15 -o one
  assert_status 0
  run "${MPIRUN[@]}" -np 2 ttt-train "${A[@]}" --batch 8 --steps 15 -o two
  assert_status 0
  same_curve one two 1e-5
  grep -c '"val_loss"' two/metrics.jsonl | grep -qx 3
  run "$CMP" --compare one/model.safetensors two/model.safetensors 1e-5
  assert_status 0
  echo "model: $output" >&2
  run "$CMP" --compare one/optimizer.safetensors two/optimizer.safetensors 1e-5
  assert_status 0
  # the same files as the 1-rank run, one metrics line per step, no stray
  # temporaries, nothing written next to RUNDIR
  [ "$(ls one)" = "$(ls two)" ]
  [ "$(wc -l < two/metrics.jsonl)" -eq 15 ]
  [ "$(ls "$TMP" | sort | tr '\n' ' ')" = "one two " ]
}

@test "the comparison fails for genuinely different weights" {
  run ttt-train "${A[@]}" --batch 8 --steps 6 -o a
  run ttt-train "${A[@]}" --batch 8 --steps 6 --seed 2 -o b
  run "$CMP" --compare a/model.safetensors b/model.safetensors 1e-5
  assert_status 1
}

@test "--accum with 2 ranks equals the full batch on 1 rank" {
  run ttt-train "${A[@]}" --batch 8 --steps 8 -o one
  assert_status 0
  run "${MPIRUN[@]}" -np 2 ttt-train "${A[@]}" --batch 8 --accum 2 --steps 8 -o two
  assert_status 0
  same_curve one two 1e-5
  run "$CMP" --compare one/model.safetensors two/model.safetensors 1e-5
  assert_status 0
}

@test "resume under MPI: bit-equal to a straight 2-rank run; a 1-rank resume stays close" {
  run "${MPIRUN[@]}" -np 2 ttt-train "${A[@]}" --batch 4 --steps 12 -o straight
  assert_status 0
  run "${MPIRUN[@]}" -np 2 ttt-train "${A[@]}" --batch 4 --steps 12 --stop-after 5 -o split
  assert_status 0
  head -c 20000 split/model.safetensors | grep -aq '"step":"5"'
  run "${MPIRUN[@]}" -np 2 ttt-train --resume split --threads 1 -q
  assert_status 0
  cmp straight/model.safetensors split/model.safetensors
  cmp straight/optimizer.safetensors split/optimizer.safetensors
  # the same run continued on one process
  run "${MPIRUN[@]}" -np 2 ttt-train "${A[@]}" --batch 4 --steps 12 --stop-after 5 -o mixed
  assert_status 0
  run ttt-train --resume mixed --threads 1 -q
  assert_status 0
  run "$CMP" --compare straight/model.safetensors mixed/model.safetensors 1e-5
  assert_status 0
}

@test "a batch that does not split over the ranks is a usage error; no RUNDIR is left" {
  run "${MPIRUN[@]}" -np 2 ttt-train "${A[@]}" --batch 6 --accum 2 --steps 3 -o bad
  assert_status 2
  [[ "$output" == *"ttt-train: --batch 6 is not a multiple of 2 ranks x --accum 2"* ]]
  [ ! -e bad ]
  # a data error on every rank: exit 1, nothing left behind
  run "${MPIRUN[@]}" -np 2 ttt-train "${A[@]}" -d "$TMP/none-*.tok" --steps 3 -o bad
  assert_status 1
  [[ "$output" == *"no shard matches"* ]]
  [ ! -e bad ]
}

@test "SIGTERM to the ranks: every rank stops after the same step, one checkpoint, exit 130" {
  "${MPIRUN[@]}" -np 2 ttt-train "${A[@]}" --batch 4 --steps 100000 --save-every 0 -o intr 2>err &
  local pid=$!
  for i in $(seq 200); do [ -s intr/metrics.jsonl ] && break; sleep 0.1; done
  # the ranks are mpirun's children
  local ranks
  ranks=$(ps -o pid= --ppid $pid)
  [ -n "$ranks" ]
  kill -TERM $ranks
  local rc=0
  wait $pid || rc=$?
  cat err >&2
  [ "$rc" -eq 130 ]
  step=$(tail -1 intr/metrics.jsonl | sed 's/{"step":\([0-9]*\),.*/\1/')
  head -c 20000 intr/model.safetensors | grep -aq "\"step\":\"$step\""
  [ "$(wc -l < intr/metrics.jsonl)" -eq "$step" ]
  run "${MPIRUN[@]}" -np 2 ttt-train --resume intr --steps $((step + 2)) --threads 1 -q
  assert_status 0
  [ "$(wc -l < intr/metrics.jsonl)" -eq $((step + 2)) ]
}

@test "--allreduce: nccl needs --device cuda; a bad value is a usage error" {
  run ttt-train "${A[@]}" --batch 4 --steps 2 --allreduce nccl -o x
  assert_status 2
  [[ "$output" == *"ttt-train: --allreduce nccl needs --device cuda"* ]]
  run ttt-train "${A[@]}" --batch 4 --steps 2 --allreduce nvlink -o x
  assert_status 2
  [[ "$output" == *"--allreduce: invalid value 'nvlink'"* ]]
  # mpi is the CPU's own path: accepted, same run
  run "${MPIRUN[@]}" -np 2 ttt-train "${A[@]}" --batch 4 --steps 3 --allreduce mpi -o y
  assert_status 0
  [ "$(wc -l < y/metrics.jsonl)" -eq 3 ]
  [ ! -e x ]
}

# --device cuda: needs a GPU (and NCCL for the NCCL path); skipped otherwise.
gpu_setup() {
  ttt-train -V -v | grep -q '^cuda: yes' || skip "ttt-train built without CUDA"
  G=(-d "$D/data-train-*.tok" --val "$D/data-val-*.tok" -c tiny --ctx 32 -q --eval-every 5 --device cuda)
  run ttt-train "${G[@]}" --batch 8 --steps 1 -o probe
  [[ "$output" == *"no CUDA device"* || "$output" == *"CUDA driver"* ]] && skip "no CUDA GPU"
  assert_status 0
  rm -rf probe
}

@test "cuda under mpirun: the NCCL all-reduce (forced on 1 rank) equals the plain GPU run" {
  gpu_setup
  run "${MPIRUN[@]}" -np 1 ttt-train "${G[@]}" --batch 8 --steps 12 --allreduce nccl -o nccl
  [[ "$output" == *"cannot load NCCL"* ]] && skip "NCCL not installed"
  assert_status 0
  run ttt-train "${G[@]}" --batch 8 --steps 12 -o plain
  assert_status 0
  same_curve plain nccl 1e-5
  run "$CMP" --compare plain/model.safetensors nccl/model.safetensors 1e-5
  assert_status 0
  # several GPUs: 2 ranks average on the devices and match the 1-process run
  local ngpu
  ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  if [ "$ngpu" -ge 2 ]; then
    run "${MPIRUN[@]}" -np 2 ttt-train "${G[@]}" --batch 8 --steps 12 -v -o two
    assert_status 0
    [[ "$output" != *"warning"* ]]
    same_curve plain two 1e-4
  fi
}

@test "cuda under mpirun without NCCL: one warning, the host path, the same curve; --allreduce nccl fails" {
  gpu_setup
  export TTT_NCCL_LIBRARY=/nonexistent/libnccl.so.2
  run ttt-train "${G[@]}" --batch 8 --steps 6 -o plain
  assert_status 0
  run "${MPIRUN[@]}" -np 2 -x TTT_NCCL_LIBRARY ttt-train "${G[@]}" --batch 8 --steps 6 -v -o two
  assert_status 0
  [ "$(grep -c 'warning: cannot load NCCL.*with MPI instead' <<<"$output")" -eq 1 ]
  same_curve plain two 1e-4
  run "${MPIRUN[@]}" -np 1 -x TTT_NCCL_LIBRARY ttt-train "${G[@]}" --batch 8 --steps 2 --allreduce nccl -o bad
  assert_status 1
  [[ "$output" == *"ttt-train: --allreduce nccl: cannot load NCCL (TTT_NCCL_LIBRARY=/nonexistent/libnccl.so.2)"* ]]
  [ ! -e bad ]
}
