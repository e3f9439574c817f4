/* lab_util.cuh - the host side shared by the kernel labs (inner_linear_lab.cu,
 * inner_mlp_lab.cu): CUDA error exits naming the lab, a private xorshift for
 * uniform test data, and device buffers from/to host vectors. Define LAB_NAME
 * before including it. */
#ifndef TTT_LAB_UTIL_CUH
#define TTT_LAB_UTIL_CUH

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <vector>

#define CKE(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, LAB_NAME ": %s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)

static unsigned long long rs = 88172645463325252ull;
static float urand() { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (float)((rs >> 11) * (1.0 / 9007199254740992.0)); }
static std::vector<float> rnd(size_t n, float lo, float hi)
{
    std::vector<float> v(n);
    for (auto &x : v) x = lo + (hi - lo) * urand();
    return v;
}
static float *dev(const std::vector<float> &v)
{
    float *d;
    CKE(cudaMalloc(&d, v.size() * 4));
    CKE(cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
    return d;
}
static float *dzero(size_t n)
{
    float *d;
    CKE(cudaMalloc(&d, n * 4));
    CKE(cudaMemset(d, 0, n * 4));
    return d;
}
static inline std::vector<float> host(const float *d, size_t n)
{
    std::vector<float> v(n);
    CKE(cudaMemcpy(v.data(), d, n * 4, cudaMemcpyDeviceToHost));
    return v;
}

#endif
