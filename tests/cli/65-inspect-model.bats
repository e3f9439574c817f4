#!/usr/bin/env bats
# ttt-inspect on model checkpoints and fast-weight states: the summary and
# its numbers (groups add up, statistics match the exported values, a state
# before the first mini-batch still holds W0), -m and a state of another
# checkpoint, --verify naming the damaged tensor, truncations, --diff and
# its exit status, --tensor, --npy (header, bytes, terminal refusal).
# Fixtures come from the real tools: tokenize, pack, train, generate.
load test_helper

W1=model.layers.0.seq_modeling_block.W1

setup_file() {
  export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
  cd "$BATS_FILE_TMPDIR"
  make_corpus corpus
  {
    ttt-tokenize train -q -v 300 -o tok.json corpus/*.txt &&
    ttt-tokenize encode -t tok.json corpus/*.txt | ttt-pack -q -o data --val-docs 2 &&
    ttt-train -q -c tiny -t tok.json -d 'data-train-*.tok' -o run --steps 3 --ctx 64 --batch 2 --threads 1 &&
    ttt-train -q -c tiny -t tok.json -d 'data-train-*.tok' -o run2 --steps 2 --ctx 64 --batch 2 --seed 2 --threads 1 &&
    # the prompt is 8 tokens: positions 12 (inside the first mini-batch) and 20 (inside the second)
    ttt-generate -m run -p "In the beginning" -n 5 --seed 1 --state-out s12 > /dev/null &&
    ttt-generate -m run -p "In the beginning" -n 13 --seed 1 --state-out s20 > /dev/null &&
    ttt-generate -m run2 -p "In the beginning" -n 5 --seed 1 --state-out other > /dev/null
  } 2> fixture.err || true
  {
    ttt-train -q -c tiny --arch ttt-mlp -t tok.json -d 'data-train-*.tok' -o runm --steps 2 --ctx 64 --batch 2 --threads 1 &&
    ttt-generate -m runm -p "In the beginning" -n 13 --seed 1 --state-out sm > /dev/null
  } 2> fixture-mlp.err || true
}

setup() {
  TMP="$BATS_TEST_TMPDIR"
  FIX="$BATS_FILE_TMPDIR"
  cd "$FIX"
  [ -f run/model.safetensors ] && [ -f run2/model.safetensors ] && [ -f s12 ] && [ -f s20 ] && [ -f other ] ||
    skip_or_fail "fixture tools failed: $(head -c 300 fixture.err)"
}

# node -e SCRIPT < input; skip without node (the JSON checks need a parser)
need_node() { command -v node >/dev/null || skip_or_fail "node not installed to parse JSON"; }

# flips one byte of FILE at OFFSET
flip() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $(( b ^ 0x5a )))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

@test "checkpoint: RUNDIR and its model.safetensors give the same summary" {
  run ttt-inspect run
  assert_status 0
  assert_match "^file: +run/model.safetensors"
  assert_match "format: +ttt checkpoint"
  assert_match "step: +3"
  assert_match "tokenizer hash: +0x$(ttt-inspect tok.json | sed -n 's/^tokenizer hash: *0x//p')"
  assert_match "config: +TTT-Linear, L=2 C=64 H=4 I=128 V=300 K=16, Mamba backbone"
  assert_match "fast-weight init W0 +[0-9]+ +[0-9]+ +[0-9.]+%"
  assert_match "ttt projections +[0-9]+ +[0-9]+"
  assert_match "swiglu +[0-9]+ +[0-9]+"
  assert_match "embedding +- +19200 "
  assert_match "$W1 +F32 +\[4,16,16\] "
  [ "$output" = "$(ttt-inspect run/model.safetensors)" ]
  # one table line per tensor
  n=$(sed -n 's/^tensor count: *//p' <<< "$output")
  [ "$n" -eq "$(grep -c '^model\.' <<< "$output")" ]
}

@test "checkpoint --json: groups and tensor shapes add up to the parameter count" {
  need_node
  run ttt-inspect --json run run2
  assert_status 0
  [ "${#lines[@]}" -eq 2 ]
  printf '%s\n' "${lines[@]}" | node -e '
    const ls = require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse);
    for (const o of ls) {
      const g = o.groups.reduce((a, x) => a + x.parameters, 0);
      const t = o.tensors.reduce((a, x) => a + x.shape.reduce((p, d) => p * d, 1), 0);
      if (g !== o.parameters || t !== o.parameters || o.tensors.length !== o.tensor_count) throw "sums " + [g, t, o.parameters];
      const w0 = o.groups.find(x => x.group === "fast-weight init W0");
      if (w0.per_layer * o.config.num_hidden_layers !== w0.parameters) throw "per layer";
      if (o.config.hidden_size !== 64 || o.format !== "ttt checkpoint") throw "config";
      for (const x of o.tensors) if (!(x.min <= x.mean && x.mean <= x.max && x.std >= 0 && x.norm >= 0)) throw x.name;
      const w = o.tensors.find(x => x.name.endsWith(".layers.0.seq_modeling_block.W1"));
      if (w.group !== "fast-weight init W0") throw "group of W1";
    }
    if (ls[0].step !== 3 || ls[1].step !== 2) throw "steps";'
}

@test "--tensor statistics equal those computed from the --npy export" {
  need_node
  ttt-inspect --tensor $W1 --npy run > "$TMP/w1.npy"
  stats=$(ttt-inspect --json --tensor $W1 run)
  node -e '
    const b = require("fs").readFileSync(process.argv[1]);
    const s = JSON.parse(process.argv[2]);
    if (b.toString("latin1", 0, 6) !== "\x93NUMPY" || b[6] !== 1 || b[7] !== 0) throw "magic/version";
    const hl = b.readUInt16LE(8), hdr = b.toString("latin1", 10, 10 + hl);
    if ((10 + hl) % 64 !== 0 || !hdr.endsWith("\n")) throw "alignment";
    if (!hdr.includes("\x27descr\x27: \x27<f4\x27") || !hdr.includes("\x27fortran_order\x27: False") ||
        !hdr.includes("\x27shape\x27: (4, 16, 16)")) throw "header " + hdr;
    const n = (b.length - 10 - hl) / 4;
    if (n !== 1024 || s.elements !== 1024) throw "size " + n;
    let sum = 0, sq = 0, lo = Infinity, hi = -Infinity;
    for (let i = 0; i < n; i++) { const x = b.readFloatLE(10 + hl + 4 * i); sum += x; sq += x * x; lo = Math.min(lo, x); hi = Math.max(hi, x); }
    const mean = sum / n;
    let dev = 0;
    for (let i = 0; i < n; i++) { const x = b.readFloatLE(10 + hl + 4 * i); dev += (x - mean) ** 2; }
    const close = (a, e) => Math.abs(a - e) <= 1e-7 * Math.max(1, Math.abs(e));
    if (!close(s.mean, mean) || !close(s.std, Math.sqrt(dev / n)) || !close(s.norm, Math.sqrt(sq)) ||
        s.min !== lo || s.max !== hi) throw "stats " + JSON.stringify([s, mean, lo, hi]);' "$TMP/w1.npy" "$stats"
  # and the export of an integer tensor keeps its type
  ttt-inspect --tensor rng --npy s12 > "$TMP/rng.npy"
  ttt-inspect --tensor last_token --npy s12 > "$TMP/lt.npy"
  head -c 128 "$TMP/rng.npy" | grep -q "'descr': '<u8', 'fortran_order': False, 'shape': (4,), }"
  head -c 128 "$TMP/lt.npy" | grep -q "'descr': '<i8', 'fortran_order': False, 'shape': (1,), }"
  [ "$(stat -c %s "$TMP/rng.npy")" -eq $((128 + 32)) ]
}

@test "--verify: intact checkpoint passes; a flipped data byte names the tensor" {
  run ttt-inspect --verify run
  assert_status 0
  assert_match "verified: +ok"
  assert_match "checksums: +52 tensors, all match"
  cp run/model.safetensors "$TMP/d.safetensors"
  # the last 256 bytes are model.norm.weight [64] F32
  flip "$TMP/d.safetensors" $(( $(stat -c %s "$TMP/d.safetensors") - 100 ))
  run ttt-inspect "$TMP/d.safetensors"
  assert_status 0        # without --verify nothing reads the checksums
  run ttt-inspect --verify "$TMP/d.safetensors"
  assert_status 1
  assert_match "verified: +FAILED"
  [[ "${lines[-1]}" =~ ^"ttt-inspect: $TMP/d.safetensors: tensor model.norm.weight: checksum mismatch (stored "[0-9a-f]{16}", computed "[0-9a-f]{16}"): the file is damaged"$ ]]
  # --json carries the error in the object
  run ttt-inspect --verify --json "$TMP/d.safetensors"
  assert_status 1
  [[ "${lines[0]}" == *'"verified":false'*'"error":"'*'model.norm.weight: checksum mismatch'* ]]
  # and --npy refuses to export the damaged tensor
  run bash -c "ttt-inspect --tensor model.norm.weight --npy '$TMP/d.safetensors' > '$TMP/x.npy'"
  assert_status 1
  assert_match "model.norm.weight: checksum mismatch"
  [ ! -s "$TMP/x.npy" ]
}

@test "--verify on a damaged state names the tensor; a damaged header fails without --verify" {
  cp s12 "$TMP/ds"
  flip "$TMP/ds" $(( $(stat -c %s s12) - 10 ))        # inside logits, the last tensor
  run ttt-inspect --verify "$TMP/ds"
  assert_status 1
  assert_match "ttt-inspect: $TMP/ds: tensor logits: checksum mismatch"
  cp s12 "$TMP/dh"
  printf '[' | dd of="$TMP/dh" bs=1 seek=8 conv=notrunc status=none   # the header's opening brace
  run ttt-inspect "$TMP/dh"
  assert_status 1
  assert_one_line_error ttt-inspect
  assert_match "^ttt-inspect: $TMP/dh: "
}

@test "truncated checkpoints and states: exit 1, one line naming the file" {
  for f in run/model.safetensors s12; do
    size=$(stat -c %s $f)
    hlen=$(od -An -t u8 -N8 $f | tr -d ' ')
    for n in 1 7 8 9 100 $((8 + hlen)) $((8 + hlen + 1)) $((size / 2)) $((size - 1)); do
      head -c $n $f > "$TMP/t.st"
      run ttt-inspect "$TMP/t.st"
      [ "$status" -eq 1 ] || { echo "$f cut at $n: status $status: $output" >&2; return 1; }
      [ "${#lines[@]}" -eq 1 ] && [[ "${lines[0]}" == "ttt-inspect: $TMP/t.st: "* ]] ||
        { echo "$f cut at $n: $output" >&2; return 1; }
    done
  done
}

@test "state: position, mini-batch fill, fast-weight rows per layer and head" {
  run ttt-inspect s20
  assert_status 0
  assert_match "format: +ttt fast-weight state"
  assert_match "position: +20"
  assert_match "mini batch fill: +4 of 16 tokens"
  assert_match "model hash: +0x[0-9a-f]{16}"
  # 2 layers x (W1, b1) x 4 heads, without distances (no -m)
  [ "$(grep -cE '^ +[01] +[0-3] (W1|b1) ' <<< "$output")" -eq 16 ]
  [[ "$output" != *"|S-W0|"* ]]
  assert_match "layer0.W1_states +F32 +\[1,4,16,16\]"
  need_node
  ttt-inspect --json s12 s20 | node -e '
    const ls = require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse);
    if (ls[0].position !== 12 || ls[0].mini_batch_fill !== 12 || ls[1].mini_batch_fill !== 4) throw "fill";
    if (ls[0].fast_weights.length !== 16 || "dist0" in ls[0].fast_weights[0]) throw "rows";'
}

@test "-m: before the first mini-batch ends the state is W0; after it, it has moved" {
  need_node
  run ttt-inspect -m run s12
  assert_status 0
  assert_match "checkpoint: +run \(model hash matches\)"
  assert_match "\|S-W0\| +\|Snow-W0\|"
  w1norm=$(ttt-inspect --json --tensor $W1 run)
  ttt-inspect --json -m run s12 s20 | node -e '
    const ls = require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse);
    const w1 = JSON.parse(process.argv[1]).norm;
    const r12 = ls[0].fast_weights, r20 = ls[1].fast_weights;
    if (!ls[0].model_hash_match || ls[0].model_hash !== ls[1].model_hash) throw "hash";
    // position 12 < K: S is still W0 exactly, but the open mini-batch moved the weights in use
    for (const r of r12) if (r.dist0 !== 0 || !(r.dist_now > 0) || !(r.pending > 0)) throw "s12 " + JSON.stringify(r);
    // and the four heads of layer 0 W1 together are the checkpoint tensor W1
    const sq = r12.filter(r => r.layer === 0 && r.param === "W1").reduce((a, r) => a + r.norm * r.norm, 0);
    if (Math.abs(Math.sqrt(sq) - w1) > 1e-6 * w1) throw "norm " + [Math.sqrt(sq), w1];
    // position 20: one mini-batch committed, S has left W0
    for (const r of r20) if (!(r.dist0 > 0)) throw "s20 " + JSON.stringify(r);' "$w1norm"
}

@test "-m with a state of another checkpoint: exit 1 naming both" {
  run ttt-inspect -m run other
  assert_status 1
  assert_one_line_error ttt-inspect
  assert_match "^ttt-inspect: other: state was saved from another checkpoint \(model hash [0-9a-f]{16}, run has [0-9a-f]{16}\)$"
  # the other states still pass, the bad one makes the exit status 1
  run ttt-inspect -m run s12 other s20
  assert_status 1
  [ "$(grep -c '^format: *ttt fast-weight state' <<< "$output")" -eq 2 ]
  run ttt-inspect -m run2 other
  assert_status 0
  run ttt-inspect -m nosuch s12
  assert_status 1
  assert_match "nosuch"
}

@test "--diff: identical files exit 0, different ones 1, trouble 2" {
  run ttt-inspect --diff run run/model.safetensors
  assert_status 0
  assert_match "summary: 52 tensors compared, 0 differ, 0 only in a, 0 only in b, 0 metadata entries differ;.*: identical"
  [ "$(grep -c '^model\..* identical$' <<< "$output")" -eq 52 ]
  run ttt-inspect --diff run run2
  assert_status 1
  assert_match "^--- a: run/model.safetensors"
  assert_match "\+\+\+ b: run2/model.safetensors"
  assert_match "metadata step: 3 -> 2"
  assert_match "summary: 52 tensors compared, 52 differ,.*files differ"
  assert_match "$W1 +[0-9.e+-]+ +[0-9.e+-]+ +1024"
  run ttt-inspect --diff s12 s20
  assert_status 1
  assert_match "metadata position: 12 -> 20"
  run ttt-inspect --diff s12 s12
  assert_status 0
  # one tensor only
  run ttt-inspect --diff --tensor model.norm.weight run run2
  assert_status 1
  [ "$(grep -c '^model\.' <<< "$output")" -eq 1 ]
  # a checkpoint against a state: nothing in common
  run ttt-inspect --diff run s12
  assert_status 1
  assert_match "0 tensors compared, 0 differ, 52 only in a, 17 only in b"
  # trouble
  run ttt-inspect --diff run nosuch
  assert_status 2
  assert_match "^ttt-inspect: nosuch: No such file or directory$"
  run ttt-inspect --diff run tok.json
  assert_status 2
  assert_match "tok.json: --diff compares checkpoints and states"
  run ttt-inspect --diff --tensor nosuch run run2
  assert_status 2
  assert_match "no tensor named 'nosuch'"
  run ttt-inspect --diff run
  assert_status 2
}

@test "--diff --json: one object, rel and max_abs are real differences" {
  need_node
  ttt-inspect --diff --json run run2 > "$TMP/d.json" || [ $? -eq 1 ]
  [ "$(wc -l < "$TMP/d.json")" -eq 1 ]
  ttt-inspect --tensor $W1 --npy run > "$TMP/a.npy"
  ttt-inspect --tensor $W1 --npy run2 > "$TMP/b.npy"
  node -e '
    const fs = require("fs");
    const d = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    if (d.identical !== false || d.compared !== 52 || d.differ !== 52) throw "summary";
    if (d.metadata.find(m => m.key === "step").a !== "3") throw "metadata";
    const t = d.tensors.find(x => x.name === process.argv[4]);
    const A = fs.readFileSync(process.argv[2]), B = fs.readFileSync(process.argv[3]);
    let m = 0, sd = 0, sa = 0, sb = 0;
    for (let o = 128; o < A.length; o += 4) {
      const a = A.readFloatLE(o), b = B.readFloatLE(o);
      m = Math.max(m, Math.abs(a - b)); sd += (a - b) ** 2; sa += a * a; sb += b * b;
    }
    const rel = Math.sqrt(sd) / Math.max(Math.sqrt(sa), Math.sqrt(sb));
    if (Math.abs(t.max_abs - m) > 1e-7 * m || Math.abs(t.rel - rel) > 1e-7 * rel) throw JSON.stringify([t, m, rel]);
  ' "$TMP/d.json" "$TMP/a.npy" "$TMP/b.npy" $W1
}

@test "--tensor: unknown name exits 1 with one line naming it" {
  for f in run s12 run/optimizer.safetensors; do
    run ttt-inspect --tensor no.such.tensor $f
    assert_status 1
    [ "${#lines[@]}" -eq 1 ]
    assert_match "^ttt-inspect: .*: no tensor named 'no.such.tensor'$"
  done
  run ttt-inspect --tensor no.such.tensor --npy run
  assert_status 1
  assert_match "no tensor named 'no.such.tensor'"
  run ttt-inspect --tensor layer1.b1_states s20
  assert_status 0
  assert_match "shape: +\[1,4,1,16\]"
  assert_match "elements: +64"
  run ttt-inspect --tensor $W1 tok.json
  assert_status 1
  assert_match "tok.json: --tensor names a tensor of a safetensors file"
}

@test "--npy: refuses a terminal unless -f; usage errors; write errors" {
  run script -qec "ttt-inspect --tensor $W1 --npy run" /dev/null
  assert_status 1
  assert_match "stdout is a terminal, refusing to write a .npy file"
  run script -qec "ttt-inspect -f --tensor $W1 --npy run" /dev/null
  assert_status 0
  assert_match "NUMPY"
  run ttt-inspect --npy run
  assert_status 2
  assert_match "--npy needs --tensor"
  run ttt-inspect --tensor $W1 --npy run run2
  assert_status 2
  run ttt-inspect --tensor $W1 --npy --json run
  assert_status 2
  run ttt-inspect -f run
  assert_status 2
  run bash -c "ttt-inspect --tensor $W1 --npy run > /dev/full"
  assert_status 1
  assert_match "write error"
  run bash -c "ttt-inspect run > /dev/full"
  assert_status 1
}

@test "a directory that is not a run is refused" {
  mkdir -p "$TMP/empty"
  run ttt-inspect "$TMP/empty"
  assert_status 1
  assert_match "empty: is a directory \(not a run directory"
}

@test "TTT-MLP: W2 and b2 count as W0 and get fast-weight rows" {
  [ -f sm ] || skip_or_fail "TTT-MLP fixture failed: $(head -c 300 fixture-mlp.err)"
  run ttt-inspect runm
  assert_status 0
  assert_match "config: +TTT-MLP"
  # per layer: W1 [4,16,64] + b1 [4,1,64] + W2 [4,64,16] + b2 [4,1,16]
  assert_match "fast-weight init W0 +8512 +17024 "
  run ttt-inspect -m runm sm
  assert_status 0
  for p in W1 b1 W2 b2; do
    [ "$(grep -cE "^ +[01] +[0-3] $p " <<< "$output")" -eq 8 ] || { echo "rows of $p" >&2; return 1; }
  done
  run ttt-inspect -m run sm
  assert_status 1
  assert_match "sm: state was saved from another checkpoint"
}
