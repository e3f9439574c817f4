/* safetensors.h - reader and writer for the safetensors format (Hugging
 * Face): an 8-byte little-endian header length N, N bytes of JSON header
 * (padded with spaces so the data starts 8-byte aligned), then the tensor
 * bytes, contiguous, without holes. The header maps each tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end)} relative to the data
 * start, and "__metadata__" to a map of strings.
 *
 * Our writer adds one metadata entry "xxh3.<tensor name>" per tensor: the
 * XXH3-64 of its bytes as 16 lowercase hex digits. The reader checks those
 * when present (files from elsewhere have none and load unchecked).
 *
 * The reader treats the file as hostile: header length against file size,
 * JSON shape, dtypes, shape products (overflow-checked), offsets in bounds,
 * non-overlapping and without holes, duplicate names. Errors name the file
 * and the tensor. The data is mmap'ed only after the header checks pass.
 *
 * Not done here: conversion of the model's own names or shapes (checkpoint.c).
 */
#ifndef TTT_SAFETENSORS_H
#define TTT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "real.h"

#define TTT_ST_MAX_DIMS 8

typedef enum {
    TTT_ST_F64, TTT_ST_F32, TTT_ST_F16, TTT_ST_BF16,
    TTT_ST_I64, TTT_ST_I32, TTT_ST_I16, TTT_ST_I8,
    TTT_ST_U64, TTT_ST_U32, TTT_ST_U16, TTT_ST_U8, TTT_ST_BOOL,
    TTT_ST_NDTYPES
} ttt_st_dtype;

const char *ttt_st_dtype_name(ttt_st_dtype d);   /* "F32" */
size_t ttt_st_dtype_size(ttt_st_dtype d);        /* bytes per element */

typedef struct {
    char *name;
    ttt_st_dtype dtype;
    int ndim;
    int64_t shape[TTT_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;     /* byte offsets into the data section */
} ttt_st_tensor;

/* ---- reader ---- */
typedef struct ttt_st ttt_st;

enum { TTT_ST_VERIFY = 1 };   /* flag: check every stored xxh3 on open */

/* Opens and validates PATH. With TTT_ST_VERIFY a stored checksum that does
 * not match fails the open, naming the tensor. NULL + ttt_errmsg. */
ttt_st *ttt_st_open(const char *path, int flags);
void ttt_st_close(ttt_st *st);
const char *ttt_st_path(const ttt_st *st);
int ttt_st_count(const ttt_st *st);
const ttt_st_tensor *ttt_st_at(const ttt_st *st, int i);      /* file order */
const ttt_st_tensor *ttt_st_find(const ttt_st *st, const char *name);
/* Metadata value, NULL if absent. */
const char *ttt_st_meta(const ttt_st *st, const char *key);
int ttt_st_meta_count(const ttt_st *st);
const char *ttt_st_meta_key(const ttt_st *st, int i);
/* Raw bytes of a tensor (little-endian, as stored). */
const void *ttt_st_data(const ttt_st *st, const ttt_st_tensor *t);
/* Checks one tensor's stored xxh3 (0 if none stored). 0 or -1. */
int ttt_st_verify_tensor(const ttt_st *st, const ttt_st_tensor *t);
/* Converts a float tensor (F64, F32, F16, BF16) to float or double.
 * out holds t->numel values. 0 or -1 (unsupported dtype). */
int ttt_st_read_f32(const ttt_st *st, const ttt_st_tensor *t, float *out);
int ttt_st_read_f64(const ttt_st *st, const ttt_st_tensor *t, double *out);
/* The same into `real` (float, or double in the TTT_F64 build). */
static inline int ttt_st_read_real(const ttt_st *st, const ttt_st_tensor *t, real *out)
{
#ifdef TTT_F64
    return ttt_st_read_f64(st, t, out);
#else
    return ttt_st_read_f32(st, t, out);
#endif
}

/* ---- writer ---- */
typedef struct ttt_st_writer ttt_st_writer;

ttt_st_writer *ttt_st_writer_new(void);
void ttt_st_writer_free(ttt_st_writer *w);
/* Adds a tensor; data is borrowed (must stay valid until ttt_st_write) and
 * is in host byte order (little-endian hosts only). 0 or -1. */
int ttt_st_add(ttt_st_writer *w, const char *name, ttt_st_dtype dtype,
               int ndim, const int64_t *shape, const void *data);
/* Adds or replaces a metadata string. 0 or -1. */
int ttt_st_set_meta(ttt_st_writer *w, const char *key, const char *value);
/* Writes the file atomically (temp + fsync + rename), adding the xxh3.*
 * entries. 0 or -1 with ttt_errmsg naming the file. */
int ttt_st_write(ttt_st_writer *w, const char *path);

#endif
