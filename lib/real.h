/* real.h - the floating point type of the model code.
 *
 * The model (lib/layers, lib/model.c) is compiled twice: as float for the
 * tools (build/libttt.a) and, with -DTTT_F64, as double for the reference
 * checks and finite-difference tests (build/libttt64.a). Everything that is
 * not model math (shards, tokenizer, JSON) is precision-free.
 */
#ifndef TTT_REAL_H
#define TTT_REAL_H

#ifdef TTT_F64
typedef double real;
#define REAL_NAME "float64"
#else
typedef float real;
#define REAL_NAME "float32"
#endif

#endif
