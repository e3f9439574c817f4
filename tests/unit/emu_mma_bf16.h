/* emu_mma_bf16.h - the primitives of lib/cuda/mma_bf16.cuh that it leaves
 * out under TTT_CUDA_EMU (mma, ldmatrix, stmatrix), as emu_cuda.h computes them, and
 * the dynamic shared memory of the kernels; after emu_cuda.h, before the
 * kernel file. */
#ifndef TTT_EMU_MMA_BF16_H
#define TTT_EMU_MMA_BF16_H

namespace {
inline void mma(float *d, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1)
{
    const uint32_t a[4] = {a0, a1, a2, a3};
    emu_mma(d, a, b0, b1);
}
inline void stsm_x4(__nv_bfloat16 *p, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3)
{
    const uint32_t r[4] = {r0, r1, r2, r3};
    emu_stsm(p, r);
}
inline void ldsm_x4(uint32_t *r, const __nv_bfloat16 *p) { emu_ldsm(r, p, 4, false); }
inline void ldsm_x2(uint32_t *r, const __nv_bfloat16 *p) { emu_ldsm(r, p, 2, false); }
inline void ldsm_x4_t(uint32_t *r, const __nv_bfloat16 *p) { emu_ldsm(r, p, 4, true); }
inline void ldsm_x2_t(uint32_t *r, const __nv_bfloat16 *p) { emu_ldsm(r, p, 2, true); }
alignas(16) unsigned char smraw[1 << 18];   /* what the kernels' extern __shared__ smraw[] names */
}  // namespace

#endif
