#!/bin/sh
# ttt_layer_gpu.sh - the GPU checks and benchmark in one go, for a machine with
# an NVIDIA GPU (sm_90 by default): reference cases through the GPU layer,
# the inner-loop kernel labs (TTT-Linear, TTT-MLP: fp32 and tensor-core
# kernels; the GEMMs beside the inner loop), GPU vs CPU layer, then the
# TTT-Linear layer vs PyTorch flash attention table
# (tests/bench/yardstick.py) and the TTT-MLP layer. After the kernel
# lab: the GPU's ceilings measured in the same run (tests/bench/ceilings.cu)
# and the fused TTT-Linear kernels' FLOPs and bytes per token of one layer
# (build/bench/flops_cli --kernel, --tc for the tensor-core one) with the
# floor time per token they imply, next to the lab's measured time
# (tests/bench/roofline.md says how).
#
#   tests/bench/ttt_layer_gpu.sh [REFVECTORS_DIR]     (run from the repository root)
#
# Builds everything it runs with make first (the labs and ceilings need nvcc).
set -e
refs=${1:-../shared/refvectors}
arch=${CUDA_ARCH:-90}
make -j"$(nproc)" CUDA_ARCH=$arch build/tests/test_cuda build/bench/ttt_layer_gpu build/bench/flops_cli \
    build/kernels/inner_linear_lab build/kernels/inner_mlp_lab build/kernels/overlap_lab build/bench/ceilings
echo "== reference cases (fp32, 1e-4)"
TTT_REFVECTORS=$refs ./build/tests/test_cuda
echo "== inner-loop kernel lab"
# 96 (sequence, head) blocks: the lab's H = 12, so B = 8 sequences of T tokens
lab_bh=96 lab_t=2048
./build/kernels/inner_linear_lab $lab_bh $lab_t > build/kernels/lab.txt || { cat build/kernels/lab.txt; exit 1; }
cat build/kernels/lab.txt
echo "== TTT-MLP kernel lab (tensor-core kernels against the fp32 ones, then timed)"
./build/kernels/inner_mlp_lab
echo "== the projections' GEMMs beside the inner loop (overlap_lab, T = 8192)"
./build/kernels/overlap_lab 8192
echo "== ceilings of this GPU (median of 15, checked)"
./build/bench/ceilings > build/bench/ceilings.txt || { cat build/bench/ceilings.txt; exit 1; }
cat build/bench/ceilings.txt
echo "== fused TTT-Linear inner kernels (D=64, H=12, T=$lab_t) against their floors"
ceil() { awk -v k="$1" '$1 == "ceiling" && $2 == k {print $3}' build/bench/ceilings.txt; }
# the lab's timing line after "D=64 <variant> ... T=2048": fwd ms in field 2,
# bwd ms in field 12; the fp32 variants' best against the fp32 kernel's bytes
# and the fp32 rate, the tensor-core one against its own (bf16 states and
# gradients) and the bf16 matrix rate
lab_times() {   # $1: 1 for the tensor-core variant, 0 for the fp32 ones
    awk -v t="T=$lab_t" -v want="$1" '/^D=/ { on = /^D=64 / && index($0, t " ") > 0 && (index($0, "tensor-core") > 0) == want; next }
        on && $1 == "fwd" { if (f == "" || $2 + 0 < f) f = $2 + 0; if (b == "" || $12 + 0 < b) b = $12 + 0; on = 0 }
        END { if (f != "") print f, b }' build/kernels/lab.txt
}
floors() {   # $1: "" or --tc, $2: the compute rate's ceiling, $3: times
    set -- "$1" "$2" $3
    if [ -z "$(ceil "$2")" ] || [ -z "$(ceil hbm_gbs)" ]; then
        echo "no ceilings measured: no floor"
        ./build/bench/flops_cli --kernel $1 -H 12 -D 64 -T $lab_t
    elif [ -n "$3" ]; then
        ./build/bench/flops_cli --kernel $1 -H 12 -D 64 -T $lab_t --tflops "$(ceil "$2")" --gbs "$(ceil hbm_gbs)" \
            --fwd-ms "$3" --bwd-ms "$4" --tokens $((lab_bh / 12 * lab_t))
    else
        echo "no D=64 T=$lab_t timing in the lab's output: floors only"
        ./build/bench/flops_cli --kernel $1 -H 12 -D 64 -T $lab_t --tflops "$(ceil "$2")" --gbs "$(ceil hbm_gbs)"
    fi
}
floors "" fp32_fma_tflops "$(lab_times 0)"
floors --tc bf16_tflops "$(lab_times 1)"
echo "== GPU vs CPU layer, B=1 T=1000 C=768"
./build/bench/ttt_layer_gpu --check 2048
echo "== benchmark vs flash attention"
PYTHONUNBUFFERED=1 python3 tests/bench/yardstick.py --ttt build/bench/ttt_layer_gpu
echo "== the TTT-MLP layer, same shapes"
./build/bench/ttt_layer_gpu --mlp
