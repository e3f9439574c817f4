#!/bin/bash
# experiment_gpu.sh - the paper's comparison (issue 7) at GPU scale, in one
# run of under 7 minutes (TOTAL_S) on one GPU, from binaries and data made elsewhere:
# TTT-Linear, TTT-MLP, the Transformer and Mamba trained with the same
# tokens and recipe (examples/experiment/Makefile's), then perplexity at
# contexts 1k..32k on the held-out documents, the loss-by-token-index chart
# of all four, generation ms/token against context.
#
#   experiment_gpu.sh prep DATADIR [BINDIR]         here (installs the corpus): the shards
#   experiment_gpu.sh run  BINDIR DATADIR OUTDIR    on the GPU machine (--device cuda)
#   experiment_gpu.sh dry  BINDIR DATADIR OUTDIR    the same steps on the CPU, tiny
#                                                   sizes (~30 s on 2 idle cores)
#
# prep: CORPUS=tdavid (default): Spurgeon's Treasury of David, one document
# per Psalm (examples/tdavid-extract.sh installs libsword-utils and
# sword-comm-tdavid when missing), a BPE tokenizer (VOCAB, 8192), and held
# out every Psalm of at least NEED_CTX (32768) tokens but Psalm 119 (up to
# VAL_DOCS, 15; 9 at vocabulary 8192), each cut to exactly NEED_CTX tokens:
# ~295k held-out tokens in which every evaluation window of 1k..32k lies
# inside one Psalm (at 32k: one window per Psalm, from its start), ~2.5M
# training tokens. CORPUS=kjv: the KJV's 66 books, the last VAL_DOCS (24)
# held out whole (four 32k windows that cross books). DATADIR then holds
# tok.json, data-{train,val}-*.tok, val-docs.tsv (tdavid: the held-out
# Psalms) and corpus/ (only the first files: the prompts of the generation
# timings), ~4 MB.
#
# run / dry:
#   1. probe: each architecture trains PROBE_STEPS steps of the full schedule
#      (Makefile rule run-%, --stop-after) and its seconds per step are read
#      off metrics.jsonl;
#   2. one step count S for all four (the same recipe: --warmup WARMUP
#      fixed, cosine to step S), the most that fits TRAIN_BUDGET_S, within
#      [STEPS_MIN, STEPS_MAX]; each run resumes to S (ttt-train --resume
#      --steps S gives the same schedule as a fresh run of S steps),
#      validating every VAL_EVERY steps (the log shows the curve). A run
#      that overruns its share is stopped by SIGTERM, which saves its
#      checkpoint: its row then says how many steps it made;
#   3. the Makefile's ppl.tsv (every EVAL_CTXS, the same MAX_TOKENS targets:
#      whole windows of the largest context), by-position.tsv and the SVG
#      (at POS_CTX; series named after the architectures), speed.tsv one
#      context at a time (generation only: SPEED_PASSES=0; forward speed is
#      tests/bench/model_speed_gpu.c's job), skipping the rest when the
#      deadline (TOTAL_S after the start) nears;
#   4. summary.tsv: steps, epochs, training time, tokens/s, final loss and
#      validation loss, perplexities, generation ms/token at the smallest
#      and largest context.
# Training is at CTX 8192 (batch 4): contexts up to 8k are inside the
# training context, 16k and 32k are extrapolation.
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
    CORPUS=${CORPUS:-tdavid}; VOCAB=${VOCAB:-8192}; NEED_CTX=${NEED_CTX:-32768}; NEED_WINDOWS=${NEED_WINDOWS:-4}
    PROMPT_KEEP=${PROMPT_KEEP:-$((8 * NEED_CTX))}
    case $CORPUS in
        tdavid) VAL_DOCS=${VAL_DOCS:-15}; what="Psalms of $NEED_CTX+ tokens, each cut to $NEED_CTX"
                extra=(VAL_CTX="$NEED_CTX" VAL_MAX_DOC="${VAL_MAX_DOC:-$((4 * NEED_CTX))}");;
        kjv)    VAL_DOCS=${VAL_DOCS:-24}; what="last $VAL_DOCS books"; extra=();;
        *)      die "CORPUS=$CORPUS: kjv or tdavid";;
    esac
    # make would keep shards made from another corpus or with other settings
    if [ -n "$(ls -A "$D")" ] && [ "$(cat "$D/corpus/.done" 2>/dev/null)" != "$CORPUS" ]; then
        die "$D: not empty and not made by prep for CORPUS=$CORPUS: remove it or use another folder"
    fi
    make -C "$EXP" --no-print-directory data OUT="$D" BIN="$B" CORPUS="$CORPUS" VOCAB="$VOCAB" VAL_DOCS="$VAL_DOCS" \
        "${extra[@]}" >&2 || die "make data failed"
    # the generation prompts need PROMPT_BYTES x 32k bytes: keep the first
    # files of at least PROMPT_KEEP bytes, so that DATADIR stays small
    kept=0
    for f in "$D"/corpus/*.txt; do
        if [ "$kept" -ge "$PROMPT_KEEP" ]; then rm -f "$f"; else kept=$((kept + $(wc -c < "$f"))); fi
    done
    vt=$("$B/ttt-inspect" "$D"/data-val-*.tok | awk '/^tokens:/ { n += $2 } END { print n + 0 }')
    tt=$("$B/ttt-inspect" "$D"/data-train-*.tok | awk '/^tokens:/ { n += $2 } END { print n + 0 }')
    nv=$("$B/ttt-inspect" "$D"/data-val-*.tok | awk '/^documents:/ { n += $2 } END { print n + 0 }')
    echo "$prog: $D ($CORPUS, $(du -sh "$D" | cut -f1)): training $tt tokens, held out $vt tokens in $nv documents ($what), vocab $VOCAB"
    [ -f "$D/val-docs.tsv" ] && echo "$prog: held out: $(tail -n +2 "$D/val-docs.tsv" | cut -f1 | sed 's/\.txt$//' | tr '\n' ' ')"
    [ "$vt" -ge $((NEED_CTX * NEED_WINDOWS)) ] ||
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
    : "${DEVICE:=cuda}" "${DTYPE:=bf16}" "${SIZE:=small}" "${CTX:=8192}" "${BATCH:=4}" "${LR:=3e-3}"
    : "${WARMUP:=40}" "${PROBE_STEPS:=10}" "${STEPS_MIN:=150}" "${STEPS_MAX:=600}" "${TRAIN_BUDGET_S:=190}"
    : "${VAL_WINDOWS:=16}" "${EVAL_CTXS:=1024 2048 4096 8192 16384 32768}" "${SPEED_CTXS:=$EVAL_CTXS}"
    : "${GEN_TOKENS:=128}" "${MAX_TOKENS_CAP:=0}" "${THREADS:=$(nproc)}" "${TOTAL_S:=400}" "${VAL_EVERY:=100}"
else
    : "${DEVICE:=cpu}" "${DTYPE:=}" "${SIZE:=tiny}" "${CTX:=64}" "${BATCH:=4}" "${LR:=3e-3}"
    : "${WARMUP:=2}" "${PROBE_STEPS:=3}" "${STEPS_MIN:=6}" "${STEPS_MAX:=16}" "${TRAIN_BUDGET_S:=40}"
    : "${VAL_WINDOWS:=4}" "${EVAL_CTXS:=256 1024 4096}" "${SPEED_CTXS:=$EVAL_CTXS}"
    : "${GEN_TOKENS:=8}" "${MAX_TOKENS_CAP:=8192}" "${THREADS:=2}" "${TOTAL_S:=240}" "${VAL_EVERY:=5}"
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
    WARMUP="$WARMUP" THREADS="$THREADS" GEN_TOKENS="$GEN_TOKENS" SPEED_PASSES=0
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
# the same targets at every context: whole windows of the largest one (vt
# tokens give vt - 1 targets: when the held-out documents are cut to maxc,
# all of them, the last window one target short)
MAX_TOKENS=$(( vt / maxc * maxc )); [ "$MAX_TOKENS" -lt "$vt" ] || MAX_TOKENS=$((vt - 1))
[ "$MAX_TOKENS_CAP" -gt 0 ] && [ "$MAX_TOKENS" -gt "$MAX_TOKENS_CAP" ] && MAX_TOKENS=$(( MAX_TOKENS_CAP / maxc * maxc ))
[ "$MAX_TOKENS" -ge "$maxc" ] || MAX_TOKENS=$maxc
tt=$("$B/ttt-inspect" "$W"/data-train-*.tok | awk '/^tokens:/ { n += $2 } END { print n + 0 }')
nv=$("$B/ttt-inspect" "$W"/data-val-*.tok | awk '/^documents:/ { n += $2 } END { print n + 0 }')
log "data: $vt held-out tokens in $nv documents, $tt training tokens; perplexity over $MAX_TOKENS targets at contexts $EVAL_CTXS"
[ -f "$W/val-docs.tsv" ] && log "held out: $(tail -n +2 "$W/val-docs.tsv" | awk -F'\t' '{ sub(/\.txt$/, "", $1); printf "%s%s (%s of %s)", n++ ? ", " : "", $1, $3, $2 }')"

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
log "steps: $S for every run, $(awk -v s="$S" -v b="$BATCH" -v c="$CTX" -v t="$tt" 'BEGIN { printf "%.2f", s * b * c / t }') epochs (sum of s/step $sum_s, $spent s spent on probes, budget $TRAIN_BUDGET_S s)"

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
    timeout -k 20 "$lim" "$B/ttt-train" --resume "$r" --steps "$S" --eval-every "$VAL_EVERY" --device "$DEVICE" \
        ${DTYPE:+--dtype "$DTYPE"} --threads "$THREADS" -q >>"$LOG" 2>&1
    rc=$?
    last=$(mget "$r/metrics.jsonl" last step)
    if [ $rc -eq 0 ] || { [ $rc -eq 124 ] && [ -n "$last" ] && [ "$last" -gt "$PROBE_STEPS" ]; }; then
        [ $rc -eq 124 ] && log "$a: STOPPED at step $last of $S (time limit); its checkpoint is used"
        log "$a: step $last, loss $(mget "$r/metrics.jsonl" last loss), val_loss $(mget "$r/metrics.jsonl" last val_loss), $(mget "$r/metrics.jsonl" last tokens_per_s) tok/s"
        # the validation curve (every VAL_EVERY steps): where overfitting starts
        log "$a: step:val_loss $(sed -n 's/^{"step":\([0-9]*\),.*"val_loss":\([0-9.]*\).*/\1:\2/p' "$r/metrics.jsonl" |
            awk -F: '{ printf "%s%s:%.3f", (NR > 1 ? " " : ""), $1, $2 }')"
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
log "speed at $SPEED_CTXS (generation of $GEN_TOKENS tokens after a prompt of ~ctx tokens)"
printf 'model\tctx\tprompt_tokens\tgen_ms_per_token\tprefill_tok_s\n' > "$W/speed.all"; prev=0
for t in $SPEED_CTXS; do
    need=$(( prev * 2 + 10 ))
    if [ "$(left)" -lt "$need" ]; then log "speed at $t and above skipped: $(left) s left, ~$need s needed"; break; fi
    s0=$(date +%s); rm -f "$W/speed.tsv"
    if mk timeout -k 5 $(( $(left) - 5 )) "${R[@]}" SPEED_CTXS="$t" "$W/speed.tsv"; then
        tail -n +2 "$W/speed.tsv" >> "$W/speed.all"
        tail -n +2 "$W/speed.tsv" | awk -F'\t' '{ printf "    %-12s ctx %6s  prompt %6s  gen %6s ms/token  prefill %8s tok/s\n", $1, $2, $3, $4, $5 }' | tee -a "$LOG"
    else
        log "speed at $t FAILED or ran out of time"
        [ -f "$W/speed.tsv.tmp" ] && tail -n +2 "$W/speed.tsv.tmp" >> "$W/speed.all"
    fi
    prev=$(( $(date +%s) - s0 ))
done
[ "$(wc -l < "$W/speed.all")" -gt 1 ] && cp "$W/speed.all" "$O/speed.tsv"

# ---------------------------------------------------------------- summary
first=${SPEED_CTXS%% *}; lastc=${SPEED_CTXS##* }
{
    printf 'model\tsteps\tepochs\ttrain_s\ttok_s\tloss\tval_loss'
    for t in $EVAL_CTXS; do printf '\tppl@%s' "$t"; done
    printf '\tgen_ms@%s\tgen_ms@%s\n' "$first" "$lastc"
    for a in $trained; do
        m=$W/run-$a/metrics.jsonl
        tps=$(sed -n 's/.*"step":\([0-9]*\),.*"tokens_per_s":\([0-9.]*\).*/\1 \2/p' "$m" |
              awk -v p="$PROBE_STEPS" '$1 > p + 2 { v[++n] = $2 } END { if (!n) { print "NA"; exit }
                    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
                    printf "%.0f", v[int((n + 1) / 2)] }')
        ts=$(awk -v b="$(mget "$m" last elapsed_s)" 'BEGIN { printf "%.1f", b }')
        vl=$(mget "$m" last val_loss)
        st=$(mget "$m" last step)
        ep=$(awk -v s="$st" -v b="$BATCH" -v c="$CTX" -v t="$tt" 'BEGIN { printf "%.2f", s * b * c / t }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$a" "$st" "$ep" "$ts" "$tps" "$(mget "$m" last loss)" "${vl:-NA}"
        for t in $EVAL_CTXS; do
            printf '\t%s' "$(awk -F'\t' -v a="$a" -v c="ppl@$t" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
                                    $1 == a && k { print $k }' "$W/ppl.tsv" 2>/dev/null)"
        done
        for t in "$first" "$lastc"; do
            printf '\t%s' "$(awk -F'\t' -v a="$a" -v t="$t" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "gen_ms_per_token") k = i; next }
                                    $1 == a && $2 == t && k { print $k }' "$W/speed.all")"
        done
        echo
    done
} > "$O/summary.tsv"
tar czf "$O/train.tar.gz" -C "$W" $(for a in $ARCHS; do for f in metrics.jsonl run.json config.json; do
    [ -f "$W/run-$a/$f" ] && echo "run-$a/$f"; done; done) 2>>"$LOG"
log "done: $O (checkpoints in $W)"
echo "== summary ($O/summary.tsv)"
if command -v column >/dev/null; then column -t -s $'\t' "$O/summary.tsv"; else cat "$O/summary.tsv"; fi
cat "$O/summary.tsv" >> "$LOG"
