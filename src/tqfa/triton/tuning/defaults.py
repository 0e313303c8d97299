"""Default kernel configurations, keyed by (head-dim bucket, element size in bytes), with an
optional (bucket, size, "masked") row for calls with a mask (its tile is pipelined too: more
shared memory and registers).

Provisional: the sm90 16-bit rows for head dims up to 128 are measured on the H100
(benchmarks/results/h100-triton-kernel.md); the others are FlashAttention-2 tile shapes chosen
with benchmarks/gpu_aot.py (shared memory fits, no or few spills) and run by the H100's test
matrix, but not timed. Per-target data and search spaces come with the tuning issue.
"""

from .config import KernelConfig

# Small tiles: the shapes CI can afford still cross several tiles, so full, diagonal and ragged
# tiles all run (and bigger tiles are not faster in the interpreter at those shapes).
INTERPRETER = KernelConfig(block_m=32, block_n=32, num_warps=4, num_stages=1)

# fp32 with IEEE dots runs on the FMA units, whose dot keeps whole operand rows in registers:
# small tiles, the same on every NVIDIA architecture.
_NVIDIA_FP32 = {
    (64, 4): KernelConfig(block_m=64, block_n=32, num_warps=8, num_stages=2),
    (128, 4): KernelConfig(block_m=32, block_n=16, num_warps=4, num_stages=2),
    (256, 4): KernelConfig(block_m=16, block_n=16, num_warps=4, num_stages=2),
}

SM90 = {
    (64, 2): KernelConfig(block_m=128, block_n=64, num_warps=8, num_stages=3),
    (128, 2): KernelConfig(block_m=128, block_n=128, num_warps=8, num_stages=3),
    # 128x128 with a 16-bit mask tile needs 288 KB of shared memory; 128x64 spills nothing.
    (128, 2, "masked"): KernelConfig(block_m=128, block_n=64, num_warps=8, num_stages=3),
    (256, 2): KernelConfig(block_m=64, block_n=64, num_warps=8, num_stages=2),
    **_NVIDIA_FP32,
}

# sm80 and its smaller-shared-memory siblings (sm86, sm89: select_config trims the stages).
SM80 = {
    (64, 2): KernelConfig(block_m=128, block_n=64, num_warps=8, num_stages=3),
    (128, 2): KernelConfig(block_m=64, block_n=64, num_warps=4, num_stages=3),
    (256, 2): KernelConfig(block_m=64, block_n=64, num_warps=8, num_stages=2),
    **_NVIDIA_FP32,
}

AMD = {
    (64, 2): KernelConfig(block_m=128, block_n=64, num_warps=4, num_stages=1),
    (128, 2): KernelConfig(block_m=128, block_n=64, num_warps=4, num_stages=1),
    (256, 2): KernelConfig(block_m=64, block_n=32, num_warps=4, num_stages=1),
    (64, 4): KernelConfig(block_m=64, block_n=32, num_warps=4, num_stages=1),
    (128, 4): KernelConfig(block_m=32, block_n=16, num_warps=4, num_stages=1),
    (256, 4): KernelConfig(block_m=16, block_n=16, num_warps=4, num_stages=1),
}
