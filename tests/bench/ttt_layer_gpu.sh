#!/bin/sh
# ttt_layer_gpu.sh - the GPU checks and benchmark in one go, for a machine with
# an NVIDIA GPU (sm_90 by default): reference cases through the GPU layer,
# the inner-loop kernel lab, GPU vs CPU layer, then the TTT-Linear layer vs
# PyTorch flash attention table (tests/bench/yardstick.py).
#
#   tests/bench/ttt_layer_gpu.sh [REFVECTORS_DIR]     (run from the repository root)
#
# Builds with make (library, unit test, bench) and nvcc (kernel lab) first.
set -e
refs=${1:-../shared/refvectors}
arch=${CUDA_ARCH:-90}
make -j"$(nproc)" build/tests/test_cuda build/bench/ttt_layer_gpu
mkdir -p build/kernels
nvcc -O3 -arch=sm_$arch -std=c++17 -Ilib tests/kernels/inner_linear_lab.cu lib/cuda/ttt_inner_linear.cu \
    -o build/kernels/inner_linear_lab
echo "== reference cases (fp32, 1e-4)"
TTT_REFVECTORS=$refs ./build/tests/test_cuda
echo "== inner-loop kernel lab"
./build/kernels/inner_linear_lab 96 2048
echo "== GPU vs CPU layer, B=1 T=1000 C=768"
./build/bench/ttt_layer_gpu --check 2048
echo "== benchmark vs flash attention"
PYTHONUNBUFFERED=1 python3 tests/bench/yardstick.py --ttt build/bench/ttt_layer_gpu
