#!/usr/bin/env bash
# tdavid-extract.sh OUTDIR - writes C. H. Spurgeon's "The Treasury of David"
# (the SWORD module TDavid, Debian's sword-comm-tdavid, public domain) as 150
# plain-text documents OUTDIR/Psalm-NNN.txt, one per Psalm: overview,
# exposition, notes and hints, one paragraph, heading, verse line or list item
# a line. The OSIS markup is removed: notes with their contents, every other
# tag keeping its text (titles and paragraph, line and list ends become line
# breaks), entities decoded, spaces collapsed. The preface (key Psalms 0:0)
# is left out. Long documents: most are over 32 KiB, the longest (Psalm 119)
# about 1.5 MB.
#
# Needs mod2imp (libsword-utils) and the module (sword-comm-tdavid), installed
# with apt-get when missing if this runs as root or with sudo; and perl.
set -euo pipefail
prog=tdavid-extract.sh
out=${1:?usage: tdavid-extract.sh OUTDIR}
pkgs="libsword-utils sword-comm-tdavid"
die() { echo "$prog: $*" >&2; exit 1; }
command -v perl >/dev/null || die "perl not found"

# mod2imp prints its usage on stdout (status 255) when the module is missing
have_module() { command -v mod2imp >/dev/null && [ "$(mod2imp TDavid 2>/dev/null | head -c 3)" = '$$$' ]; }
if ! have_module; then
    if [ "$(id -u)" = 0 ]; then sudo=()
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n)
    else die "the TDavid module is not installed and this is not root (no sudo): apt-get install $pkgs"; fi
    command -v apt-get >/dev/null || die "the TDavid module is not installed and there is no apt-get: install $pkgs"
    echo "$prog: installing $pkgs" >&2
    inst() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs >&2; }
    inst || { "${sudo[@]}" apt-get update -q >&2 && inst; } || die "apt-get install $pkgs failed"
    have_module || die "mod2imp TDavid still fails after installing $pkgs"
fi

mkdir -p "$out"
# The module's records: a key line "$$$Psalms N:V", then the OSIS text
# (one long line); V = 1 holds the whole Psalm, V = 0 only markup.
mod2imp TDavid | perl -e '
    use strict; use warnings;
    my ($out) = @ARGV; my ($key, $buf, $n) = ("", "", 0);
    my %ent = (lt => "<", gt => ">", quot => "\"", apos => "\x27");
    sub text {
        my $t = shift;
        $t =~ s/\s+/ /g;
        $t =~ s{<note\b[^>]*/>}{}g;                          # notes: dropped
        $t =~ s{<note\b.*?</note>}{}gs;
        $t =~ s{<title\b[^>]*>(.*?)</title>}{\n$1\n}gs;      # headings: a line each
        $t =~ s{<(?:div|p|l|lg|lb|list)\b[^>]*/>|</(?:div|p|l|lg|item|list)>}{\n}g;
        $t =~ s{<[^>]*>}{}g;                                 # the rest: tag gone, text kept
        $t =~ s/&(lt|gt|quot|apos);/$ent{$1}/g;
        $t =~ s/&#(\d+);/chr($1)/ge;
        $t =~ s/&#x([0-9a-fA-F]+);/chr(hex $1)/ge;
        $t =~ s/&amp;/&/g;
        my @l;
        for (split /\n/, $t) {
            s/\s*\xe2\x80\xa2\s*$//;                          # list items end with a bullet
            s/^\s+|\s+$//g; s/ {2,}/ /g;
            push @l, $_ if length;
        }
        return join("", map { "$_\n" } @l);
    }
    sub flush {
        return unless $key =~ /^Psalms (\d+):1$/;
        my $ps = $1; my $t = text($buf);
        die "tdavid-extract.sh: Psalm $ps: no text\n" unless length $t;
        my $f = sprintf("%s/Psalm-%03d.txt", $out, $ps);
        open(my $fh, ">", $f) or die "tdavid-extract.sh: $f: $!\n";
        print $fh $t; close($fh) or die "tdavid-extract.sh: $f: $!\n";
        $n++;
    }
    while (<STDIN>) {
        if (/^\$\$\$(.*?)\s*$/) { flush(); ($key, $buf) = ($1, ""); next; }
        $buf .= $_;
    }
    flush();
    die "tdavid-extract.sh: expected 150 Psalms, found $n\n" unless $n == 150;
' "$out"
