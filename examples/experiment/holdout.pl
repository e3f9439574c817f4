#!/usr/bin/env perl
# holdout.pl - picks the held-out documents of a token stream for long-context
# evaluation and moves them to its end, so that `ttt-pack --val-docs N` (N =
# the rows of --list) holds out exactly them.
#
#   ttt-tokenize encode -t TOK FILE... |
#     holdout.pl --ctx T --docs N [--max-doc M] --list OUT.tsv --tokenize BIN/ttt-tokenize --tok TOK
#                [-- FILE...] > ALL.tks
#
# Held out: up to N documents of at least T tokens (and at most M, 0 = no
# limit, so that one huge document does not leave training), shortest first;
# each is cut to exactly T tokens (its first T - 1 and eot). ttt-eval cuts its
# data into consecutive windows of T tokens, so every window of T (and of any
# divisor of T) then lies inside one document and starts at a document's
# start (or at a multiple of the window inside it): the loss by token index
# is the loss by position inside a document. When no document reaches T
# tokens, the N longest are held out whole and a warning says that windows
# cross documents. The cut documents' byte counts (for bits per byte) are
# exact: ttt-tokenize decode of the kept tokens.
# --list writes one row per held-out document: doc (1-based, or the FILE
# given for it), tokens, kept, bytes. Token stream format: ttt-formats(5).
use strict;
use warnings;
use File::Temp qw(tempfile);

my $prog = 'holdout.pl';
sub usage { print STDERR "usage: $prog --ctx T --docs N [--max-doc M] --list OUT.tsv --tokenize PROG --tok TOK.json [-- FILE...] < STREAM > STREAM\n"; exit 2; }
sub die1 { print STDERR "$prog: @_\n"; exit 1; }

my %o = (ctx => 0, docs => 0, 'max-doc' => 0);
my @names;
while (@ARGV) {
    my $a = shift @ARGV;
    if ($a eq '--') { @names = @ARGV; last; }
    $a =~ /^--(ctx|docs|max-doc|list|tokenize|tok)$/ && @ARGV or usage();
    $o{$1} = shift @ARGV;
}
for (qw(ctx docs max-doc)) { $o{$_} =~ /^\d+$/ or usage(); }
$o{ctx} >= 2 && $o{docs} >= 1 && defined $o{list} && defined $o{tokenize} && defined $o{tok} or usage();
-t STDOUT and die1("refusing to write a binary token stream to a terminal");
binmode STDIN; binmode STDOUT;

sub rd { my $n = shift; my $got = read(STDIN, my $b, $n); defined $got or die1("stdin: $!");
         $got == $n or die1("stdin: truncated token stream"); return $b; }
my $hdr = rd(32);
substr($hdr, 0, 8) eq "\x89TTTSTR\n" or die1("stdin: not a token stream (ttt-tokenize encode)");
my $eot = unpack('V', substr($hdr, 24, 4));

# documents: [ntok, nbytes, raw ids]
my @d;
while (1) {
    my ($n, $nb) = unpack('V Q<', rd(12));
    if ($n == 0xffffffff) { $nb == @d or die1("stdin: end marker counts $nb documents, read " . @d); last; }
    push @d, [$n, $nb, rd(4 * $n)];
}
!@names || @names == @d or die1("" . @names . " names for " . @d . " documents");
my $name = sub { @names ? $names[$_[0]] : $_[0] + 1 };

my @pick = grep { $d[$_][0] >= $o{ctx} && ($o{'max-doc'} == 0 || $d[$_][0] <= $o{'max-doc'}) } 0 .. $#d;
@pick = sort { $d[$a][0] <=> $d[$b][0] || $a <=> $b } @pick;
my $cut = 1;
if (!@pick) {
    print STDERR "$prog: warning: no document has $o{ctx} tokens: holding out the $o{docs} longest whole (windows of $o{ctx} cross documents)\n";
    @pick = sort { $d[$b][0] <=> $d[$a][0] || $a <=> $b } 0 .. $#d;
    $cut = 0;
}
splice(@pick, $o{docs}) if @pick > $o{docs};
@pick < @d or die1("every document would be held out; lower --docs");
@pick = sort { $a <=> $b } @pick;

# the exact text bytes of ids: decode (as one document) less decode of eot alone
sub decoded_bytes {
    my ($ids) = @_;
    my ($fh, $tmp) = tempfile(UNLINK => 1);
    binmode $fh;
    my $n = length($ids) / 4;
    print $fh $hdr, pack('V Q<', $n, 0), $ids, pack('V Q<', 0xffffffff, 1);
    close $fh or die1("$tmp: $!");
    open(my $p, '-|', $o{tokenize}, 'decode', '-t', $o{tok}, '--keep-special', $tmp) or die1("$o{tokenize}: $!");
    binmode $p; local $/; my $t = <$p>; $t = '' unless defined $t;
    close $p or die1("$o{tokenize} decode failed");
    return length $t;
}

my %held = map { $_ => 1 } @pick;
my $eot_bytes = 0;
open(my $L, '>', "$o{list}.tmp") or die1("$o{list}.tmp: $!");
print $L "doc\ttokens\tkept\tbytes\n";
for my $i (@pick) {
    my $r = $d[$i];
    print $L join("\t", $name->($i), $r->[0], ($cut ? $o{ctx} : $r->[0]), '');
    if ($cut && $r->[0] > $o{ctx}) {
        $eot_bytes ||= decoded_bytes(pack('V', $eot));
        my $ids = substr($r->[2], 0, 4 * ($o{ctx} - 1)) . pack('V', $eot);
        $r = $d[$i] = [$o{ctx}, decoded_bytes($ids) - $eot_bytes, $ids];
    }
    print $L $r->[1], "\n";
}
close $L or die1("$o{list}.tmp: $!");

print $hdr;
for my $i ((grep { !$held{$_} } 0 .. $#d), @pick) { print pack('V Q<', $d[$i][0], $d[$i][1]), $d[$i][2]; }
print pack('V Q<', 0xffffffff, scalar @d);
close STDOUT or die1("stdout: $!");
rename("$o{list}.tmp", $o{list}) or die1("$o{list}: $!");
my $kept = 0; $kept += $d[$_][0] for @pick;
printf STDERR "%s: held out %d of %d documents (%d tokens%s)\n", $prog, scalar @pick, scalar @d, $kept,
    $cut ? ", each cut to $o{ctx}" : '';
