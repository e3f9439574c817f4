#!/usr/bin/env python3
"""yardstick.py - PyTorch yardsticks for the GPU TTT-Linear layer benchmark.

Times torch scaled_dot_product_attention (causal, flash backend, bf16) and a
whole attention layer (QKV projection + SDPA + o_proj, bf16) at the TTT
benchmark shapes, runs the CUDA TTT benchmark (build/bench/ttt_layer_gpu
--csv) in the same session, and prints one table of tokens/s with ratios.

    python3 tests/bench/yardstick.py [--ttt PATH] [-B 8] [-H 12] [-D 64] [-i 5] [T ...]

-i: iterations of every timed op, ours and torch's (each after a warm-up).

Needs a CUDA GPU and torch (the device machine has both).
"""
import argparse
import subprocess
import sys

import torch
import torch.nn.functional as F


def timeit(fn, iters):
    for _ in range(3):  # warm-up: the first backward sets up kernels and workspaces
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters / 1e3  # seconds


def sdpa_times(B, H, D, T, iters):
    q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    g = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)

        def fwdbwd():
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            o.backward(g)

        with torch.no_grad():
            tf = timeit(fwd, iters)
        tfb = timeit(fwdbwd, iters)
    return tf, tfb


def attn_layer_times(B, H, D, T, iters):
    C = H * D
    x = torch.randn(B, T, C, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    wqkv = torch.randn(3 * C, C, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    wo = torch.randn(C, C, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    g = torch.randn(B, T, C, device="cuda", dtype=torch.bfloat16)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def layer():
        qkv = (x @ wqkv.t()).view(B, T, 3, H, D).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        return o.transpose(1, 2).reshape(B, T, C) @ wo.t()

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        with torch.no_grad():
            tf = timeit(layer, iters)
        tfb = timeit(lambda: layer().backward(g), iters)
    return tf, tfb


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ttt", default="build/bench/ttt_layer_gpu", help="CUDA benchmark binary ('' to skip)")
    ap.add_argument("-B", type=int, default=8)
    ap.add_argument("-H", type=int, default=12)
    ap.add_argument("-D", type=int, default=64)
    ap.add_argument("-i", "--iters", type=int, default=5)
    ap.add_argument("T", type=int, nargs="*", default=[2048, 8192, 32768])
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("yardstick: skipped: no GPU")
        return 0
    print(f"# device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)

    ttt = {}
    if a.ttt:
        cmd = [a.ttt, "--csv", "-B", str(a.B), "-H", str(a.H), "-D", str(a.D), "-i", str(a.iters)] + [str(t) for t in a.T]
        r = subprocess.run(cmd, capture_output=True, text=True)
        sys.stderr.write(r.stderr)
        if r.returncode:
            print(f"yardstick: {a.ttt} failed (exit {r.returncode})", file=sys.stderr)
            return 1
        for line in r.stdout.splitlines():
            f = line.split(",")
            if f[0] == "ttt":
                ttt[int(f[3])] = (float(f[8]), float(f[9]), float(f[11]))

    rows = []
    for T in a.T:
        tok = a.B * T
        sf, sfb = sdpa_times(a.B, a.H, a.D, T, a.iters)
        lf, lfb = attn_layer_times(a.B, a.H, a.D, T, a.iters)
        rows.append((T, tok / sf, tok / sfb, tok / lf, tok / lfb) + ttt.get(T, (float("nan"),) * 3))
        torch.cuda.empty_cache()

    M = 1e6
    print(f"\nB={a.B} H={a.H} D={a.D} bf16, tokens/s in millions (Mtok/s); ratio = TTT layer / flash SDPA op "
          f"(layer ratio = TTT layer / attention layer, both with projections)")
    hdr = (f"{'T':>6} | {'SDPA fwd':>9} {'SDPA f+b':>9} | {'attn-layer fwd':>14} {'attn-layer f+b':>14} | "
           f"{'TTT fwd':>9} {'TTT eval':>9} {'TTT f+b':>9} | {'fwd ratio':>9} {'f+b ratio':>9} | "
           f"{'layer fwd':>9} {'layer f+b':>9}")
    print(hdr)
    print("-" * len(hdr))
    for T, sf, sfb, lf, lfb, tf, tfb, te in rows:
        print(f"{T:>6} | {sf/M:9.2f} {sfb/M:9.2f} | {lf/M:14.2f} {lfb/M:14.2f} | "
              f"{tf/M:9.2f} {te/M:9.2f} {tfb/M:9.2f} | {tf/sf:9.2f} {tfb/sfb:9.2f} | {tf/lf:9.2f} {tfb/lfb:9.2f}")
    print("TTT fwd: the training forward (keeps what the backward needs); TTT eval: the evaluation forward "
          "(no state checkpoints)")
    print("goals (issue): TTT fwd >= 43 Mtok/s at 2k; f+b >= 5.9 at 2k, 11.4 at 8k/32k; "
          "f+b ratio > 1 from 8k, >= 7 at 32k")
    return 0


if __name__ == "__main__":
    sys.exit(main())
