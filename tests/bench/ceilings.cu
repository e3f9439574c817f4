/* ceilings.cu - the GPU's ceilings measured in one run, for MFU and roofline
 * figures (/work/.library/device/METHOD.md: measure the two ceilings on the
 * device and use those, not the datasheet):
 *
 *   bf16_tflops        cublasGemmEx bf16 x bf16 -> fp32 out, fp32 accumulate, 8192^3
 *                      (bf16_4096_tflops at 4096^3, bf16_bf16out_tflops with bf16 out)
 *   fp32_gemm_tflops   cublasGemmEx fp32, CUBLAS_COMPUTE_32F, default math mode (no TF32), 8192^3
 *   fp32_fma_tflops    a register-resident FMA loop (CUDA cores, 8 independent chains a thread)
 *   hbm_gbs            device-to-device copy kernel, 16-byte accesses, 2 x 1 GiB buffers,
 *                      bytes read + bytes written (hbm_memcpy_gbs: cudaMemcpy D2D, same count)
 *   smem_gbs           shared-memory reads, 16 bytes a thread, conflict-free
 *
 * Every figure is the median of REPS timed repetitions (CUDA events around
 * each one) after warm-ups, on random data (never zeros), rotating among
 * input sets larger than the L2 for the GEMMs. Results are checked: GEMM
 * entries against a float64 CPU dot product, the copy element by element,
 * the FMA and shared-memory kernels against the same arithmetic on the CPU.
 * Prints a table and one line "ceiling NAME VALUE" per ceiling.
 *
 *   nvcc -O3 -arch=sm_90 -std=c++17 tests/bench/ceilings.cu -lcublas -o build/bench/ceilings
 *   build/bench/ceilings [REPS]          (default 15)
 * Exit: 0 measured and checked, 1 a CUDA error or a failed check, 2 usage;
 * "skipped: no GPU" and 0 without a device.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "ceilings: %s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); exit(1); } } while (0)
#define CB(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    fprintf(stderr, "ceilings: %s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #x, (int)s_); exit(1); } } while (0)
#define LAUNCHED() do { CK(cudaGetLastError()); } while (0)

static int g_reps = 15, g_fails = 0;

struct result { const char *key, *what; double value; const char *unit; };
static std::vector<result> g_results;

/* ---- random fill on the device (a hash of the index, in [-1, 1)) ---- */
__device__ __host__ inline float hash_unit(unsigned long long i, unsigned seed)
{
    unsigned long long x = i * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED03ull;
    x ^= x >> 31; x *= 0xBF58476D1CE4E5B9ull; x ^= x >> 27; x *= 0x94D049BB133111EBull; x ^= x >> 33;
    return (float)((x >> 40) * (1.0 / 16777216.0)) * 2.f - 1.f;
}
__global__ void fill_f32(float *p, size_t n, unsigned seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = hash_unit(i, seed);
}
__global__ void fill_bf16(__nv_bfloat16 *p, size_t n, unsigned seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = __float2bfloat16(hash_unit(i, seed));
}

/* Median over g_reps of the time of fn() in ms, after `warm` untimed runs. */
template <class F> static double median_ms(F fn, int warm = 3)
{
    for (int i = 0; i < warm; i++) fn(i);
    CK(cudaDeviceSynchronize());
    std::vector<float> t(g_reps);
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
    for (int i = 0; i < g_reps; i++) {
        CK(cudaEventRecord(a));
        fn(i);
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        CK(cudaEventElapsedTime(&t[i], a, b));
    }
    CK(cudaEventDestroy(a)); CK(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return t[g_reps / 2];
}

static void add(const char *key, const char *what, double v, const char *unit)
{
    g_results.push_back({key, what, v, unit});
    printf("  %-22s %10.1f %-7s %s\n", key, v, unit, what);
    fflush(stdout);
}

static float bf16_host(__nv_bfloat16 x)
{
    unsigned short u;
    memcpy(&u, &x, 2);
    unsigned w = (unsigned)u << 16;
    float f;
    memcpy(&f, &w, 4);
    return f;
}

/* ---- GEMM: C[n,n] = A[n,n] B[n,n], column-major, NSETS input sets ---- */
static double gemm_tflops(cublasHandle_t h, int n, cudaDataType_t in, cudaDataType_t out, const char *label)
{
    const int NSETS = 3;   /* each set at 4096: 2 x 32 MB bf16; three of them pass the 60 MB L2 */
    size_t nn = (size_t)n * n, es = in == CUDA_R_16BF ? 2 : 4, os = out == CUDA_R_16BF ? 2 : 4;
    void *A[NSETS], *B[NSETS], *C;
    for (int s = 0; s < NSETS; s++) {
        CK(cudaMalloc(&A[s], nn * es));
        CK(cudaMalloc(&B[s], nn * es));
        if (in == CUDA_R_16BF) {
            fill_bf16<<<1024, 256>>>((__nv_bfloat16 *)A[s], nn, 11 + 2 * s);
            fill_bf16<<<1024, 256>>>((__nv_bfloat16 *)B[s], nn, 12 + 2 * s);
        } else {
            fill_f32<<<1024, 256>>>((float *)A[s], nn, 11 + 2 * s);
            fill_f32<<<1024, 256>>>((float *)B[s], nn, 12 + 2 * s);
        }
        LAUNCHED();
    }
    CK(cudaMalloc(&C, nn * os));
    CK(cudaMemset(C, 0xff, nn * os));   /* poison: NaN in either type */
    const float one = 1.f, zero = 0.f;
    auto run = [&](int i) {
        int s = i % NSETS;
        CB(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, A[s], in, n, B[s], in, n, &zero, C, out, n,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    };
    double ms = median_ms(run);
    /* check: the last run used set (g_reps-1) % NSETS; 24 entries against float64 */
    int s = (g_reps - 1) % NSETS;
    std::vector<unsigned char> ha(nn * es), hb(nn * es), hc(nn * os);
    CK(cudaMemcpy(ha.data(), A[s], nn * es, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hb.data(), B[s], nn * es, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hc.data(), C, nn * os, cudaMemcpyDeviceToHost));
    auto ld = [&](const std::vector<unsigned char> &v, size_t i, cudaDataType_t t) -> double {
        if (t == CUDA_R_16BF) return bf16_host(((const __nv_bfloat16 *)v.data())[i]);
        return ((const float *)v.data())[i];
    };
    double num = 0, den = 0;
    for (int k = 0; k < 24; k++) {
        size_t r = (size_t)(k * 7919 + 13) % n, c = (size_t)(k * 104729 + 7) % n;
        double ref = 0;
        for (int x = 0; x < n; x++) ref += ld(ha, r + (size_t)x * n, in) * ld(hb, x + c * n, in);
        double got = ld(hc, r + c * n, out);
        num += (got - ref) * (got - ref);
        den += ref * ref;
    }
    double rel = sqrt(num / den);
    /* fp32 accumulation over n terms; a bf16 output adds its rounding (2^-9) */
    double tol = out == CUDA_R_16BF ? 1e-2 : 1e-4;
    int ok = rel <= tol;   /* NaN fails */
    g_fails += !ok;
    printf("  %s n=%d: median %.3f ms over %d runs, check %.1e %s\n", label, n, ms, g_reps, rel, ok ? "ok" : "FAIL");
    for (int t = 0; t < NSETS; t++) { CK(cudaFree(A[t])); CK(cudaFree(B[t])); }
    CK(cudaFree(C));
    return 2.0 * n * (double)n * n / (ms * 1e-3) / 1e12;
}

/* ---- fp32 FMA rate: 8 independent chains a thread, all in registers ---- */
#define FMA_CHAINS 8
__global__ void fma_loop(float *out, int iters, float b, float c)
{
    float x[FMA_CHAINS];
#pragma unroll
    for (int j = 0; j < FMA_CHAINS; j++) x[j] = hash_unit(blockIdx.x * (size_t)blockDim.x + threadIdx.x, j);
    for (int i = 0; i < iters; i++) {
#pragma unroll
        for (int u = 0; u < 16; u++) {
#pragma unroll
            for (int j = 0; j < FMA_CHAINS; j++) x[j] = fmaf(x[j], b, c);
        }
    }
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < FMA_CHAINS; j++) s += x[j];
    out[blockIdx.x * (size_t)blockDim.x + threadIdx.x] = s;
}

static double fma_tflops(int sms)
{
    const int threads = 256, blocks = sms * 16, iters = 4096;
    /* b, c keep |x| bounded (contraction towards c/(1-b)); the values are checked */
    const float b = 0.999f, c = 0.001f;
    size_t n = (size_t)threads * blocks;
    float *out;
    CK(cudaMalloc(&out, n * 4));
    CK(cudaMemset(out, 0xff, n * 4));
    auto run = [&](int) { fma_loop<<<blocks, threads>>>(out, iters, b, c); LAUNCHED(); };
    double ms = median_ms(run);
    std::vector<float> h(n);
    CK(cudaMemcpy(h.data(), out, n * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (size_t t = 0; t < n; t += n / 37) {
        float s = 0.f;
        for (int j = 0; j < FMA_CHAINS; j++) {
            float x = hash_unit(t, j);
            for (int i = 0; i < iters * 16; i++) x = fmaf(x, b, c);
            s += x;
        }
        worst = fmax(worst, fabs((double)h[t] - s) / (fabs((double)s) + 1e-6));
    }
    int ok = worst <= 1e-5;
    g_fails += !ok;
    printf("  fp32 FMA loop: %d blocks x %d threads x %d FMAs: median %.3f ms, check %.1e %s\n", blocks, threads,
           iters * 16 * FMA_CHAINS, ms, worst, ok ? "ok" : "FAIL");
    CK(cudaFree(out));
    return 2.0 * n * (double)iters * 16 * FMA_CHAINS / (ms * 1e-3) / 1e12;
}

/* ---- HBM: copy with 16-byte accesses, grid-stride ---- */
/* four loads in flight a thread before the first store (Little's law: ~30 KB
 * in flight per SM at 4.8 TB/s and ~0.8 us latency) */
__global__ void copy_f4(float4 *__restrict__ dst, const float4 *__restrict__ src, size_t n4)
{
    const size_t st = (size_t)gridDim.x * blockDim.x;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    for (; i + 3 * st < n4; i += 4 * st) {
        float4 a = src[i], b = src[i + st], c = src[i + 2 * st], d = src[i + 3 * st];
        dst[i] = a; dst[i + st] = b; dst[i + 2 * st] = c; dst[i + 3 * st] = d;
    }
    for (; i < n4; i += st) dst[i] = src[i];
}

static void hbm_gbs(int sms, double *kernel_gbs, double *memcpy_gbs)
{
    const size_t bytes = (size_t)1 << 30, n = bytes / 4;
    float *src, *dst;
    CK(cudaMalloc(&src, bytes));
    CK(cudaMalloc(&dst, bytes));
    fill_f32<<<4096, 256>>>(src, n, 5);
    LAUNCHED();
    CK(cudaMemset(dst, 0xff, bytes));
    auto run = [&](int) { copy_f4<<<sms * 4, 512>>>((float4 *)dst, (const float4 *)src, n / 4); LAUNCHED(); };
    double ms = median_ms(run);
    /* check every element */
    std::vector<float> a(n), b(n);
    CK(cudaMemcpy(a.data(), src, bytes, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(b.data(), dst, bytes, cudaMemcpyDeviceToHost));
    int ok = memcmp(a.data(), b.data(), bytes) == 0;
    g_fails += !ok;
    *kernel_gbs = 2.0 * bytes / (ms * 1e-3) / 1e9;
    printf("  copy kernel 1 GiB -> 1 GiB: median %.3f ms, check %s\n", ms, ok ? "ok" : "FAIL");
    CK(cudaMemset(dst, 0xff, bytes));
    auto runm = [&](int) { CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice)); };
    ms = median_ms(runm);
    CK(cudaMemcpy(b.data(), dst, bytes, cudaMemcpyDeviceToHost));
    ok = memcmp(a.data(), b.data(), bytes) == 0;
    g_fails += !ok;
    *memcpy_gbs = 2.0 * bytes / (ms * 1e-3) / 1e9;
    printf("  cudaMemcpy D2D 1 GiB: median %.3f ms, check %s\n", ms, ok ? "ok" : "FAIL");
    CK(cudaFree(src));
    CK(cudaFree(dst));
}

/* ---- shared memory: each thread reads float4 at (tid + k*blockDim) % N,
 * a warp's 32 x 16 bytes are consecutive (4 wavefronts, no bank conflict) ---- */
#define SMEM_F4 4096   /* 64 KB of float4 */
__global__ void smem_read(float *out, int iters)
{
    extern __shared__ float4 sm4[];
    for (int i = threadIdx.x; i < SMEM_F4; i += blockDim.x)
        sm4[i] = make_float4(hash_unit(i, 1), hash_unit(i, 2), hash_unit(i, 3), hash_unit(i, 4));
    __syncthreads();
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    int idx = threadIdx.x;
    for (int it = 0; it < iters; it++) {
#pragma unroll
        for (int u = 0; u < 8; u++) {
            float4 v = sm4[(idx + u * blockDim.x) & (SMEM_F4 - 1)];
            acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
        }
        idx = (idx + 8 * blockDim.x) & (SMEM_F4 - 1);
    }
    out[blockIdx.x * (size_t)blockDim.x + threadIdx.x] = acc.x + acc.y + acc.z + acc.w;
}

static double smem_gbs(int sms)
{
    const int threads = 1024, blocks = sms * 2, iters = 2048;
    size_t n = (size_t)threads * blocks, shm = SMEM_F4 * 16;
    float *out;
    CK(cudaMalloc(&out, n * 4));
    CK(cudaMemset(out, 0xff, n * 4));
    CK(cudaFuncSetAttribute(smem_read, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shm));
    auto run = [&](int) { smem_read<<<blocks, threads, shm>>>(out, iters); LAUNCHED(); };
    double ms = median_ms(run);
    /* check two threads of the last block against the same sums on the CPU */
    std::vector<float> h(n);
    CK(cudaMemcpy(h.data(), out, n * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int t : {0, threads - 1}) {
        double ax = 0, ay = 0, az = 0, aw = 0;
        int idx = t;
        for (int it = 0; it < iters; it++) {
            for (int u = 0; u < 8; u++) {
                int i = (idx + u * threads) & (SMEM_F4 - 1);
                ax += hash_unit(i, 1); ay += hash_unit(i, 2); az += hash_unit(i, 3); aw += hash_unit(i, 4);
            }
            idx = (idx + 8 * threads) & (SMEM_F4 - 1);
        }
        double ref = ax + ay + az + aw, got = h[(size_t)(blocks - 1) * threads + t];
        worst = fmax(worst, fabs(got - ref) / (fabs(ax) + fabs(ay) + fabs(az) + fabs(aw) + 1));
    }
    int ok = worst <= 1e-3;   /* fp32 sums of 16k terms in another order */
    g_fails += !ok;
    printf("  shared-memory reads: %d blocks x %d threads x %d x 16 B: median %.3f ms, check %.1e %s\n", blocks,
           threads, iters * 8, ms, worst, ok ? "ok" : "FAIL");
    CK(cudaFree(out));
    return 16.0 * n * (double)iters * 8 / (ms * 1e-3) / 1e9;
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && (atoi(argv[1]) < 3 || atoi(argv[1]) > 1000))) {
        fprintf(stderr, "usage: ceilings [REPS]   (3..1000, default 15)\n");
        return 2;
    }
    if (argc == 2) g_reps = atoi(argv[1]);
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("ceilings: skipped: no GPU\n");
        return 0;
    }
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    int clk_khz = 0, memclk_khz = 0;
    cudaDeviceGetAttribute(&clk_khz, cudaDevAttrClockRate, 0);
    cudaDeviceGetAttribute(&memclk_khz, cudaDevAttrMemoryClockRate, 0);
    printf("ceilings: %s, sm_%d%d, %d SMs, max clock %.0f MHz, L2 %.0f MB, %.1f GiB, %d-bit memory at %.0f MHz\n",
           p.name, p.major, p.minor, p.multiProcessorCount, clk_khz / 1e3, p.l2CacheSize / 1e6,
           p.totalGlobalMem / 1073741824.0, p.memoryBusWidth, memclk_khz / 1e3);
    const int sms = p.multiProcessorCount;
    cublasHandle_t h;
    CB(cublasCreate(&h));
    CB(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));   /* fp32 GEMMs stay fp32 (no TF32) */

    printf("measuring (median of %d):\n", g_reps);
    double bf8 = gemm_tflops(h, 8192, CUDA_R_16BF, CUDA_R_32F, "bf16 GEMM, fp32 out");
    double bf4 = gemm_tflops(h, 4096, CUDA_R_16BF, CUDA_R_32F, "bf16 GEMM, fp32 out");
    double bfb = gemm_tflops(h, 8192, CUDA_R_16BF, CUDA_R_16BF, "bf16 GEMM, bf16 out");
    double f32 = gemm_tflops(h, 8192, CUDA_R_32F, CUDA_R_32F, "fp32 GEMM (no TF32)");
    double fma = fma_tflops(sms);
    double hk, hm;
    hbm_gbs(sms, &hk, &hm);
    double sm = smem_gbs(sms);
    CB(cublasDestroy(h));

    printf("\n%-24s %10s %-7s %s\n", "ceiling", "value", "unit", "how");
    add("bf16_tflops", "cublasGemmEx bf16 in, fp32 accumulate and out, 8192^3", bf8, "TFLOP/s");
    add("bf16_4096_tflops", "the same at 4096^3", bf4, "TFLOP/s");
    add("bf16_bf16out_tflops", "bf16 in and out, fp32 accumulate, 8192^3", bfb, "TFLOP/s");
    add("fp32_gemm_tflops", "cublasGemmEx fp32, no TF32, 8192^3", f32, "TFLOP/s");
    add("fp32_fma_tflops", "register FMA loop, CUDA cores", fma, "TFLOP/s");
    add("hbm_gbs", "copy kernel, 2 x 1 GiB, read + write bytes", hk, "GB/s");
    add("hbm_memcpy_gbs", "cudaMemcpy D2D, read + write bytes", hm, "GB/s");
    add("smem_gbs", "shared-memory float4 reads, all SMs", sm, "GB/s");
    printf("\n");
    for (auto &r : g_results) printf("ceiling %s %.1f\n", r.key, r.value);
    printf("ceilings: %s\n", g_fails ? "FAIL (a check failed: do not use these numbers)" : "all checks ok");
    return g_fails ? 1 : 0;
}
