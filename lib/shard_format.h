/* shard_format.h - on-disk layout constants of token shards, shared by the
 * shard reader, writer and their tests. The normative description is
 * man/ttt-formats.5 ("Token shards"); keep the two in step.
 *
 *   header  at 0            TTT_SHD_HDR_LEN bytes in version 1, may grow
 *   blocks  at header_len   zlib streams of little-endian tokens, back to back
 *   doctab  after blocks    zlib stream of ndocs x {u64 ntok, u64 nbytes}
 *   index   after doctab    nblocks x TTT_SHD_IDX_LEN bytes, uncompressed
 *   footer  last            TTT_SHD_FTR_LEN bytes
 */
#ifndef TTT_SHARD_FORMAT_H
#define TTT_SHARD_FORMAT_H

#define TTT_SHD_MAGIC "\x89TTTSHD\n"   /* first 8 bytes of the file */
#define TTT_SHD_END "\x89TTTEND\n"     /* last 8 bytes of the file */
#define TTT_SHD_VERSION 1u

/* header offsets (version 1) */
#define TTT_SHD_HDR_LEN 56      /* header length written by this version */
#define TTT_SHD_HDR_MAX 65536   /* readers refuse longer headers */
#define TTT_SHD_H_VERSION 8     /* u32 */
#define TTT_SHD_H_HDRLEN 12     /* u32 */
#define TTT_SHD_H_TOKHASH 16    /* u64 */
#define TTT_SHD_H_VOCAB 24      /* u32 */
#define TTT_SHD_H_EOT 28        /* u32 */
#define TTT_SHD_H_WIDTH 32      /* u32: 2 or 4 */
#define TTT_SHD_H_BLOCKTOK 36   /* u32: tokens in every block but the last */
#define TTT_SHD_H_FLAGS 40      /* u64: 0 */
/* the header's last 8 bytes: XXH3-64 of the bytes before them */

/* index entry (40 bytes) */
#define TTT_SHD_IDX_LEN 40
#define TTT_SHD_I_OFFSET 0      /* u64 file offset of the zlib stream */
#define TTT_SHD_I_FIRST 8       /* u64 index of the block's first token */
#define TTT_SHD_I_NTOK 16       /* u32 tokens in the block */
#define TTT_SHD_I_COMP 20       /* u32 bytes of the zlib stream */
#define TTT_SHD_I_XXH 24        /* u64 XXH3-64 of the raw (decompressed) bytes */
#define TTT_SHD_I_CXXH 32       /* u64 XXH3-64 of the compressed bytes (deflate
                                   ignores some bits, so the raw sum alone
                                   cannot see every flipped byte) */

/* footer (104 bytes at the end of the file) */
#define TTT_SHD_FTR_LEN 104
#define TTT_SHD_F_INDEX 0       /* u64 offset of the index */
#define TTT_SHD_F_NBLOCKS 8     /* u64 */
#define TTT_SHD_F_NTOKENS 16    /* u64 */
#define TTT_SHD_F_NDOCS 24      /* u64 */
#define TTT_SHD_F_TEXTBYTES 32  /* u64 */
#define TTT_SHD_F_DOCTAB 40     /* u64 offset of the document table */
#define TTT_SHD_F_DOCCOMP 48    /* u64 bytes of its zlib stream */
#define TTT_SHD_F_DOCXXH 56     /* u64 XXH3-64 of the raw document table */
#define TTT_SHD_F_DOCCXXH 64    /* u64 XXH3-64 of its zlib stream */
#define TTT_SHD_F_IDXXXH 72     /* u64 XXH3-64 of the index */
#define TTT_SHD_F_FLAGS 80      /* u64: 0 */
#define TTT_SHD_F_XXH 88        /* u64 XXH3-64 of footer bytes 0..87 */
#define TTT_SHD_F_MAGIC 96      /* TTT_SHD_END */

#define TTT_SHD_DOC_LEN 16      /* document table record: u64 ntok, u64 nbytes */
#define TTT_SHD_MAX_BLOCK_TOKENS (1u << 24)
#define TTT_SHD_DEFAULT_BLOCK_TOKENS 65536u
/* deflate cannot shrink data by more than about 1032:1; readers use this to
 * refuse counts that no honest zlib stream of the stored size could hold */
#define TTT_SHD_ZLIB_MAX_RATIO 1032u

#include <stdint.h>

/* little-endian field access, independent of the host's byte order */
static inline void ttt_put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i); }
static inline void ttt_put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i); }
static inline uint32_t ttt_get32(const unsigned char *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static inline uint64_t ttt_get64(const unsigned char *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

#endif
