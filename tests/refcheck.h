/* refcheck.h - the reference-vector checker's pieces (tests/refcheck*.c):
 * main + model + decode cases in refcheck.c, layer cases in refcheck_layer.c.
 * Each case function compares every tensor it can with refvec_check() into
 * the tally and returns 0, or -1 with ttt_errmsg when the case cannot be run
 * (missing tensor, bad meta.txt). */
#ifndef TTT_REFCHECK_H
#define TTT_REFCHECK_H

#include "refvec.h"   /* refvec_case, refvec_tally, refvec_check */

int refcheck_layer(const refvec_case *c, refvec_tally *tl);
int refcheck_model(const refvec_case *c, refvec_tally *tl);
int refcheck_decode(const refvec_case *c, refvec_tally *tl);

#endif
