"""Default kernel configurations, keyed by (head-dim bucket, element size in bytes).

Provisional: sm90 measured on the H100 (benchmarks/results/h100-triton-kernel.md); the others
are the usual FlashAttention-2 tile shapes, checked to compile (shared memory, no spills) but not
timed. Per-target data and search spaces come with the tuning issue.
"""

from .config import KernelConfig

# The interpreter runs one numpy op per tile op: few big tiles are fastest.
INTERPRETER = KernelConfig(block_m=64, block_n=64, num_warps=4, num_stages=1)

SM90 = {
    (64, 2): KernelConfig(block_m=128, block_n=64, num_warps=4, num_stages=3),
    (128, 2): KernelConfig(block_m=128, block_n=64, num_warps=8, num_stages=3),
    (256, 2): KernelConfig(block_m=64, block_n=64, num_warps=4, num_stages=2),
    (64, 4): KernelConfig(block_m=64, block_n=32, num_warps=4, num_stages=2),
    (128, 4): KernelConfig(block_m=64, block_n=32, num_warps=4, num_stages=2),
    (256, 4): KernelConfig(block_m=32, block_n=32, num_warps=4, num_stages=1),
}

SM80 = {
    (64, 2): KernelConfig(block_m=128, block_n=64, num_warps=4, num_stages=3),
    (128, 2): KernelConfig(block_m=128, block_n=32, num_warps=4, num_stages=3),
    (256, 2): KernelConfig(block_m=64, block_n=32, num_warps=4, num_stages=2),
    (64, 4): KernelConfig(block_m=64, block_n=32, num_warps=4, num_stages=2),
    (128, 4): KernelConfig(block_m=64, block_n=32, num_warps=4, num_stages=2),
    (256, 4): KernelConfig(block_m=32, block_n=32, num_warps=4, num_stages=1),
}

AMD = {
    (64, 2): KernelConfig(block_m=128, block_n=64, num_warps=4, num_stages=1),
    (128, 2): KernelConfig(block_m=128, block_n=64, num_warps=4, num_stages=1),
    (256, 2): KernelConfig(block_m=64, block_n=32, num_warps=4, num_stages=1),
    (64, 4): KernelConfig(block_m=64, block_n=32, num_warps=4, num_stages=1),
    (128, 4): KernelConfig(block_m=64, block_n=32, num_warps=4, num_stages=1),
    (256, 4): KernelConfig(block_m=32, block_n=32, num_warps=4, num_stages=1),
}
