#!/usr/bin/env bats
# Conventions every program shares: --help, --version, usage errors, drift
# between --list-options, the man pages and the completions.
load test_helper

PROGS="ttt-tokenize ttt-pack ttt-train ttt-eval ttt-generate ttt-inspect"

@test "--help prints usage to stdout and exits 0" {
  for p in $PROGS; do
    run $p --help
    assert_status 0
    assert_match "^Usage: $p"
  done
}

@test "--version prints name and version; -V -v adds the build configuration" {
  for p in $PROGS; do
    run $p --version
    assert_status 0
    assert_match "^$p [0-9]+\.[0-9]+\.[0-9]+$"
  done
  run ttt-pack -V -v
  assert_status 0
  assert_match "blas: "
  assert_match "cuda: "
}

@test "unknown option: one line plus try-help, exit 2" {
  for p in $PROGS; do
    run $p --no-such-option
    assert_status 2
    assert_match "^$p: unknown option '--no-such-option'"
    assert_match "Try '$p --help' for more information."
  done
}

@test "every option is in the man page and both completions" {
  for p in $PROGS; do
    run $p --list-options
    assert_status 0
    for o in $output; do
      case $o in -h|--help|-V|--version) continue;; esac
      grep -q -- "$o\|Fl ${o#-}\b\|Fl -${o#--}\b" "$REPO_ROOT/man/$p.1" || { echo "$p: $o missing from man/$p.1" >&2; return 1; }
      grep -q -- "$o" "$REPO_ROOT/completions/bash/$p" || { echo "$p: $o missing from completions/bash/$p" >&2; return 1; }
    done
  done
}

@test "the zsh completion is generated from the option tables (no drift)" {
  run bash -c "'$REPO_ROOT/completions/gen-zsh.sh' '$TTT_BIN_DIR' | diff -u '$REPO_ROOT/completions/zsh/_ttt' -"
  if [ "$status" -ne 0 ]; then
    echo "completions/zsh/_ttt is stale; run 'make zsh-completion'" >&2
    echo "$output" >&2
    return 1
  fi
}

@test "man pages pass mandoc -Tlint" {
  command -v mandoc >/dev/null || skip_or_fail "mandoc not installed"
  run mandoc -Tlint -Wwarning "$REPO_ROOT"/man/*.[157]
  assert_status 0
}

@test "completion scripts parse (bash -n, zsh -n)" {
  for f in "$REPO_ROOT"/completions/bash/*; do
    run bash -n "$f"
    assert_status 0
  done
  command -v zsh >/dev/null || skip_or_fail "zsh not installed"
  run zsh -n "$REPO_ROOT/completions/zsh/_ttt"
  assert_status 0
}

@test "make install puts programs, man pages and completions under DESTDIR/PREFIX; uninstall removes them" {
  run make -C "$REPO_ROOT" -s install DESTDIR="$TMP/root" PREFIX=/opt/ttt
  assert_status 0
  for p in $PROGS; do
    [ -x "$TMP/root/opt/ttt/bin/$p" ]
    [ -f "$TMP/root/opt/ttt/share/man/man1/$p.1" ]
    [ -f "$TMP/root/opt/ttt/share/bash-completion/completions/$p" ]
  done
  [ -f "$TMP/root/opt/ttt/share/man/man5/ttt-formats.5" ]
  [ -f "$TMP/root/opt/ttt/share/man/man7/ttt.7" ]
  [ -f "$TMP/root/opt/ttt/share/zsh/site-functions/_ttt" ]
  run "$TMP/root/opt/ttt/bin/ttt-pack" --version
  assert_status 0
  run make -C "$REPO_ROOT" -s uninstall DESTDIR="$TMP/root" PREFIX=/opt/ttt
  assert_status 0
  [ -z "$(find "$TMP/root" -type f)" ]
}
