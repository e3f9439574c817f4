/* emu_attn_decode.cpp - host emulator of the split-KV decode kernels
 * (lib/cuda/attn_decode.cuh, behind ttt_cuda_attn_decode): one std::thread
 * per CUDA thread, __syncthreads a block barrier, __shfl_xor_sync exchanged
 * through per-warp slots and barriers, __shared__ arrays static (blocks run
 * one after another). Runs the real kernel code and the real chunk planning
 * (dec_plan) with the launcher's dispatch (ns = 1: the partial kernel writes
 * the output; otherwise partials + merge), on random caches, and checks:
 *   - every output row against a float64 causal attention over cache rows
 *     0..pos+t, relative error <= 1e-5 (fp32 rounding gives ~1e-7; a wrong
 *     chunk, mask or merge gives order 1);
 *   - head dims 6 (scalar loads), 8, 16, 32, 48, 64, 96, 128 (float4 loads,
 *     padded widths), the scalar path also for 64; B = 1, 2; P = 1, 3, 5
 *     with chunk boundaries inside the chunk of new tokens; one chunk, a few,
 *     and many (pos 5000); the partial and output buffers start as NaN, so a
 *     read of an unwritten partial shows;
 *   - the scratch bound: dec_partial_slots(nh) >= nh * dec_max_splits(nh)
 *     where that is over 1 (else there are no partials), and never shrinks
 *     as nh grows (a scratch sized for P serves smaller P);
 *     dec_plan covers exactly the keys with whole multiples of DEC_MIN_CHUNK.
 * Run by `make check-emu` (part of `make test`), or by hand:
 *   g++ -O1 -std=c++20 -pthread -Wno-unknown-pragmas -Ilib \
 *       tests/unit/emu_attn_decode.cpp -o /tmp/emu_dec && /tmp/emu_dec
 * (some seconds; exit 0 when every case passes). */
#define __shared__ static
#include "emu_cuda.h"

#include "cuda/attn_decode.cuh"

static_assert(DEC_WARPS <= EMU_MAXW, "the emulator's warp barriers");

template <class F>
static void launch(unsigned gx, unsigned gy, unsigned gz, unsigned nt, F f)
{
    emu_launch(gx, gy, gz, nt, f);
}

/* The launcher's dispatch (attn_gpu.cu decode_dm) for head width DM. */
template <int DM>
static void decode(bool vec, float *o, float *plse, float *po, const float *q, const float *kc, const float *vc,
                   int B, int P, int H, int D, long pos, long chunk, int ns)
{
    const float sc = (float)(1 / sqrt((double)D));
    const unsigned nt = DEC_WARPS * 32;
    if (ns == 1) {
        if (vec) launch(B * P, H, ns, nt, [&] { k_decode_part<DM, true, true>(o, plse, po, q, kc, vc, B, P, H, D, pos, chunk, ns, sc); });
        else launch(B * P, H, ns, nt, [&] { k_decode_part<DM, false, true>(o, plse, po, q, kc, vc, B, P, H, D, pos, chunk, ns, sc); });
        return;
    }
    if (vec) launch(B * P, H, ns, nt, [&] { k_decode_part<DM, true, false>(o, plse, po, q, kc, vc, B, P, H, D, pos, chunk, ns, sc); });
    else launch(B * P, H, ns, nt, [&] { k_decode_part<DM, false, false>(o, plse, po, q, kc, vc, B, P, H, D, pos, chunk, ns, sc); });
    launch(B * P, H, 1, DM < 64 ? 64 : DM, [&] { k_decode_combine(o, plse, po, P, H, D, pos, chunk, ns); });
}

static int run(int B, int P, int H, int D, long pos, bool vec, long target = DEC_TARGET_BLOCKS)
{
    const int C = H * D, N = B * P;
    const long maxpos = pos + P;
    std::mt19937 rng(977 + D * 31 + P + (int)pos);
    std::normal_distribution<float> nd(0.f, 1.f);
    /* keys sd 1.5: softmax rows neither flat nor one-hot; a few rows shifted
     * so that far chunks hold the largest scores */
    std::vector<float> kc((size_t)maxpos * B * C), vc(kc.size()), q((size_t)N * C);
    for (auto &x : kc) x = nd(rng) * 1.5f;
    for (auto &x : vc) x = nd(rng);
    for (auto &x : q) x = nd(rng);
    int ns;
    long chunk;
    dec_plan(pos + P, (size_t)N * H, target, &ns, &chunk);
    /* scratch as ttt_cuda_attn_decode lays it out, NaN-filled */
    std::vector<float> scr(dec_partial_slots((size_t)N * H) * (size_t)(D + 1), NAN), o((size_t)N * C, NAN);
    float *plse = scr.data(), *po = plse + (size_t)N * H * ns;
    if (ns > 1 && (size_t)N * H * ns * (D + 1) > scr.size()) {
        printf("B=%d P=%d H=%d D=%d pos=%ld: %d chunks overflow the scratch: FAIL\n", B, P, H, D, pos, ns);
        return 1;
    }
    const float *a[3] = {q.data(), kc.data(), vc.data()};
    bool al = true;
    for (auto p : a) al &= (uintptr_t)p % 16 == 0;
    vec = vec && D % 4 == 0 && al;
    if (D <= 16) decode<16>(vec, o.data(), plse, po, q.data(), kc.data(), vc.data(), B, P, H, D, pos, chunk, ns);
    else if (D <= 32) decode<32>(vec, o.data(), plse, po, q.data(), kc.data(), vc.data(), B, P, H, D, pos, chunk, ns);
    else if (D <= 64) decode<64>(vec, o.data(), plse, po, q.data(), kc.data(), vc.data(), B, P, H, D, pos, chunk, ns);
    else decode<128>(vec, o.data(), plse, po, q.data(), kc.data(), vc.data(), B, P, H, D, pos, chunk, ns);

    double e = 0, s = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < P; t++)
            for (int h = 0; h < H; h++) {
                const long last = pos + t;
                const float *qr = &q[((size_t)b * P + t) * C + (size_t)h * D];
                std::vector<double> p(last + 1);
                double m = -1e300, l = 0;
                for (long j = 0; j <= last; j++) {
                    double d = 0;
                    for (int i = 0; i < D; i++) d += (double)qr[i] * kc[((size_t)j * B + b) * C + (size_t)h * D + i];
                    p[j] = d / sqrt((double)D);
                    m = std::max(m, p[j]);
                }
                for (long j = 0; j <= last; j++) l += (p[j] = exp(p[j] - m));
                for (int i = 0; i < D; i++) {
                    double r = 0;
                    for (long j = 0; j <= last; j++) r += p[j] * vc[((size_t)j * B + b) * C + (size_t)h * D + i];
                    r /= l;
                    double g = o[((size_t)b * P + t) * C + (size_t)h * D + i];
                    e += (g - r) * (g - r);
                    s += r * r;
                }
            }
    const double rel = sqrt(e / s);
    const bool bad = !(rel <= 1e-5);
    printf("B=%d P=%d H=%d D=%d pos=%ld %s target %ld: %d chunk(s) of %ld: rel %.3g %s\n", B, P, H, D, pos,
           vec ? "float4" : "scalar", target, ns, chunk, rel, bad ? "FAIL" : "ok");
    return bad;
}

/* The scratch bound and the chunk plans, without kernels. */
static int plans(void)
{
    int bad = 0;
    size_t prev = 0;
    for (size_t nh = 1; nh <= 200000; nh++) {
        size_t b = dec_partial_slots(nh);
        if ((dec_max_splits(nh) > 1 && b < nh * (size_t)dec_max_splits(nh)) || b < prev) { bad = 1; printf("scratch bound fails at nh %zu\n", nh); break; }
        prev = b;
    }
    for (long len = 1; len <= 70000 && !bad; len += len < 3000 ? 1 : 97)
        for (size_t nh : {(size_t)1, (size_t)12, (size_t)100, (size_t)5000}) {
            int ns;
            long c;
            dec_plan(len, nh, len % 3 ? 528 : DEC_TARGET_BLOCKS, &ns, &c);
            if (ns < 1 || ns > dec_max_splits(nh) || c % DEC_MIN_CHUNK || (long)ns * c < len || (long)(ns - 1) * c >= len) {
                printf("plan fails: len %ld nh %zu: %d chunks of %ld\n", len, nh, ns, c);
                bad = 1;
                break;
            }
        }
    printf("scratch bound and chunk plans: %s\n", bad ? "FAIL" : "ok");
    return bad;
}

int main(void)
{
    int bad = plans();
    bad |= run(1, 1, 2, 64, 1000, true);    /* 16 chunks, the last one partial */
    bad |= run(1, 1, 2, 64, 1000, false);   /* scalar loads */
    bad |= run(2, 3, 1, 128, 190, true);    /* the new tokens straddle chunks 2 and 3 */
    bad |= run(1, 5, 2, 96, 125, true);     /* padded to 128; tokens straddle 128 */
    bad |= run(2, 1, 3, 48, 300, true);     /* padded to 64 */
    bad |= run(1, 3, 2, 32, 62, true);      /* 62..64: chunk 0 then 1 */
    bad |= run(2, 2, 2, 16, 200, true);
    bad |= run(1, 1, 3, 8, 129, true);
    bad |= run(1, 2, 2, 6, 150, true);      /* D % 4 != 0: scalar */
    bad |= run(1, 5, 2, 64, 10, true);      /* one chunk: direct output */
    bad |= run(1, 1, 1, 64, 0, true);       /* the first token */
    bad |= run(1, 1, 1, 64, 5000, true);    /* 40 chunks of 128 */
    bad |= run(1, 1, 2, 64, 5000, true, 12);   /* a small GPU: 6 chunks of 896 */
    printf("emu_attn_decode: %s\n", bad ? "FAILED" : "all cases ok");
    return bad;
}
