#!/usr/bin/env bash
# kjv-extract.sh OUTDIR - writes the 66 books of the King James Bible (Debian's
# bible-kjv package) as 66 plain-text documents OUTDIR/NN-Book.txt: the book's
# name on the first line, then one verse per line, without chapter headers or
# verse numbers (the wrapped lines of `bible` are joined).
set -euo pipefail
out=${1:?usage: kjv-extract.sh OUTDIR}
command -v bible >/dev/null || { echo "kjv-extract.sh: 'bible' not found (apt-get install bible-kjv)" >&2; exit 1; }
mkdir -p "$out"
bible -l10000 ge1:1-re22:21 | awk -v out="$out" '
  function flush() { if (verse != "") { print verse > file; verse = "" } }
  /^[1-3]?[ ]?[A-Z][A-Za-z ]* [0-9]+$/ {               # "Genesis 1", "1 Samuel 3": chapter header
      flush()
      name = $0; sub(/ [0-9]+$/, "", name)
      if (name != book) {
          if (file != "") close(file)
          book = name; n++
          f = name; gsub(/ /, "_", f)
          file = sprintf("%s/%02d-%s.txt", out, n, f)
          print book > file
      }
      next
  }
  /^ *[0-9]+ / { flush(); v = $0; sub(/^ *[0-9]+ /, "", v); verse = v; next }
  /^$/ { next }
  { verse = verse " " $0 }
  END { flush(); if (n != 66) { print "kjv-extract.sh: expected 66 books, found " n > "/dev/stderr"; exit 1 } }
'
