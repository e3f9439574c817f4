#!/usr/bin/env bash
# check-asan.sh [REFVECTORS] - the whole test suite (unit, refcheck, bats)
# against binaries built with -fsanitize=address,undefined (NO_CUDA=1).
#
# The Makefile hard-codes build/ as its build directory, so the source tree
# is copied into build/asan/ (a tree of its own, incremental: tar keeps
# mtimes) and built there. Unlike `make check` this runs every part even
# after a failure and lists all failures at the end. Exit 1 if any.
# ASAN_LEAKS=1 turns LeakSanitizer on (off by default: tests/valgrind.sh
# checks leaks; exit-time leaks would fail whole bats tests).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
ref=$(cd "${1:-$root/../shared/refvectors}" 2>/dev/null && pwd || true)
dir=$root/build/asan
mkdir -p "$dir"
cd "$root"
tar -c --exclude=./build --exclude=./.git --exclude=./tests/refcheck --exclude=./tests/refcheck-f32 \
  --exclude=./demo --exclude='*/node_modules' . | tar -x -C "$dir" || exit 1

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
export ASAN_OPTIONS="detect_leaks=${ASAN_LEAKS:-0}:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$dir"
echo "== building in $dir with $san"
make -j"${JOBS:-2}" NO_CUDA=1 CFLAGS="-O2 -g $san" all $(ls tests/unit/test_*.c | sed 's|tests/unit/\(.*\)\.c|build/tests/\1|') \
  >build-asan.log 2>&1 || { tail -30 build-asan.log; echo "check-asan: build failed"; exit 1; }

failed=()
for t in build/tests/test_*; do
  echo "== $t"
  "./$t" || failed+=("$t")
done
if [ -n "$ref" ]; then
  echo "== refcheck"
  ./tests/refcheck "$ref"/*/ >refcheck.log 2>&1 || { tail -20 refcheck.log; failed+=(refcheck); }
  ./tests/refcheck-f32 "$ref"/*/ >refcheck-f32.log 2>&1 || { tail -20 refcheck-f32.log; failed+=(refcheck-f32); }
  grep -c '^ok' refcheck.log refcheck-f32.log
else
  echo "== refcheck skipped: no reference vectors"
fi
echo "== bats tests/cli"
TTT_BIN_DIR=$dir/build REFVECTORS=${ref:-/nonexistent} bats tests/cli || failed+=(bats)

if [ ${#failed[@]} -gt 0 ]; then
  echo "check-asan: FAILED: ${failed[*]}"
  exit 1
fi
echo "check-asan: all passed"
