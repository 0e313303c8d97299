"""NVIDIA sm80 (A100, A30): 164 KB of shared memory per block, mma.sync tensor cores, cp.async
pipelining. Also the root of the NVIDIA families: the fp32 rows and the pruning rule below hold
for every NVIDIA architecture, and unknown ones run this table (nvidia.py).

Not measured here (no A100 in this workplace). Tile shapes start from FlashAttention-2's A100
choices (csrc/flash_attn/src/flash_fwd_launch_template.h: 128x128 for d64, 128x64 for d128,
128x64 at 8 warps for d256) and the Triton tutorial's space (06-fused-attention.py: 64/128 rows,
32/64 keys, 3-7 stages, 8 warps only for tiles of 128x128 or more); where our kernel spills at
FA2's shape, `python -m tqfa compile-check --target sm80` picked the nearest shape that does not.
"""

from .config import DecodeConfig, Family, KernelConfig, Tuning

K = KernelConfig
D = DecodeConfig

# fp32 with IEEE dots runs on the FMA units, whose dot keeps whole operand rows in registers:
# small tiles, the same on every NVIDIA architecture (no spills in the compile check).
FP32 = {
    (64, 4): K(64, 32, 8, 2),
    (128, 4): K(32, 16, 4, 2),
    (256, 4): K(16, 16, 4, 2),
}


def keep(config: KernelConfig, head_bucket: int, elt_bytes: int) -> bool:
    """Pruning rules for every NVIDIA family, from register budgets (255 per thread):
    - fp32 (FMA dots): at most the 64x32 tile at d64, block_m * block_n * head dim <= 2**17;
    - 16-bit: at least 64 rows (4 warps x the 16-row mma tile, or one wgmma warpgroup), and an
      fp32 accumulator of block_m x head dim within 128x128 (64 registers per thread at 8 warps).
    """
    if elt_bytes == 4:
        return config.block_m * config.block_n * head_bucket <= 2**17
    return config.block_m >= 64 and config.block_m * head_bucket <= 128 * 128


PREFILL = Tuning(
    defaults={
        # d64: FA2's 128 rows; 64 keys at 8 warps (128x128 and 128x64 at 4 warps spill here).
        (64, 2): K(128, 64, 8, 3),
        # d128: FA2's 128x64, at 8 warps (4 warps spill here); 96 KB at 3 stages.
        (128, 2): K(128, 64, 8, 3),
        # d256: FA2's 128x64 spills at 8 warps; 64x64 does not (104 KB at 2 stages) but does with
        # a mask (24 bytes); 64 keys less per tile do not.
        (256, 2): K(64, 64, 8, 2),
        (256, 2, "masked"): K(64, 32, 8, 3),
        **FP32,
    },
    space=(
        K(128, 64, 8, 3), K(128, 64, 8, 4), K(128, 64, 8, 2), K(128, 64, 4, 3), K(128, 128, 8, 2),
        K(64, 64, 4, 3), K(64, 64, 8, 2), K(64, 32, 8, 3), K(64, 32, 4, 3), *FP32.values(),
    ),
    keep=keep,
)

# Decode (decode_kernel.py), fp32 on every NVIDIA architecture: narrow K/V tiles and 8 warps keep
# the FMA dots' operands in registers (no spills up to Sq 16 in the compile check).
DECODE_FP32 = {
    (64, 4): D(16, 32, 8, 2, 2, 4, 16),
    (128, 4): D(16, 16, 8, 2, 2, 4, 16),
    (256, 4): D(16, 16, 8, 2, 2, 4, 16),
}
DECODE_FP32_SPACE = tuple(dict.fromkeys(DECODE_FP32.values()))

# Not measured: sm90's rule (benchmarks/results/h200-2026-11-30.md) with 64-key tiles, whose 78 KB
# at 3 stages leave room for two programs per SM; no spills in the compile check.
DECODE = Tuning(
    defaults={
        (64, 2): D(32, 64, 8, 3, 2, 2, 16),
        (128, 2): D(32, 64, 8, 3, 2, 2, 16),
        (256, 2): D(16, 32, 8, 3, 2, 2, 16),
        **DECODE_FP32,
    },
    space=(D(32, 64, 8, 3, 2, 2, 16), D(32, 64, 8, 2, 2, 2, 16), D(32, 64, 8, 3, 1, 2, 16),
           D(16, 32, 8, 3, 2, 2, 16), D(32, 128, 8, 2, 1, 2, 16), *DECODE_FP32_SPACE),
)

FAMILY = Family("sm80", "nvidia", claims=("sm80",), archs={"sm80": 166912},
                kinds={"prefill": PREFILL, "decode": DECODE})
