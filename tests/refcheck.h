/* refcheck.h - per-kind reference checks called by tests/refcheck.c (main).
 * Each compares one case directory (refvec.h) against the library and
 * records every compared tensor in the tally; returns 0, or -1 with
 * ttt_errmsg if the case could not be run at all (bad meta, missing tensor). */
#ifndef TTT_REFCHECK_H
#define TTT_REFCHECK_H

#include "refvec.h"

/* kind = layer: a single TTTLinear / TTTMLP module (refcheck_layer.c). */
int refcheck_layer(const refvec_case *c, refvec_tally *tl);

#endif
