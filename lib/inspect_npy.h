/* inspect_npy.h - writes one safetensors tensor as a NumPy .npy file
 * (format version 1.0: magic "\x93NUMPY", 1, 0, a little-endian u16 header
 * length, a Python dict literal {'descr', 'fortran_order': False, 'shape'}
 * padded with spaces and a newline so the data starts 64-byte aligned, then
 * the elements in C order). Safetensors data is already little-endian C
 * order, so the bytes are copied as stored: F32 -> '<f4', F64 -> '<f8',
 * F16 -> '<f2', integers and bool likewise; BF16, which NumPy lacks, is
 * widened to '<f4' exactly.
 */
#ifndef TTT_INSPECT_NPY_H
#define TTT_INSPECT_NPY_H

#include <stdio.h>

#include "safetensors.h"   /* ttt_st, ttt_st_tensor */

/* The NumPy descr t is written with ("<f4", "|u1", ...). */
const char *ttt_npy_descr(const ttt_st_tensor *t);

/* Writes t to f. 0, or -1 with ttt_errmsg ("write error") if f failed. */
int ttt_npy_write(FILE *f, const ttt_st *st, const ttt_st_tensor *t);

#endif
