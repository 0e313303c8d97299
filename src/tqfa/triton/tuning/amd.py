"""Generic AMD: architectures that no AMD family claims (gfx908 MI100, and chips newer than this
table). Also the root of the AMD families: the fp32 rows and the pruning rule below hold for
every AMD architecture.

Not measured here. The 16-bit rows are AMD's own fallback for chips without a tuned entry in
the FlashAttention Triton backend (flash_attn/flash_attn_triton_amd/fwd_prefill.py: 32x32,
2 warps, waves_per_eu 2, 1 stage); at d256 that spills in our kernel on gfx908, 16x16 does not.
Triton 3.9 compiles neither RDNA1/2 (gfx10xx) nor older GCN chips: those fail at compile time.
"""

from .config import DecodeConfig, Family, KernelConfig, Tuning

K = KernelConfig
D = DecodeConfig

# fp32: the shapes of NVIDIA's fp32 rows at one stage; no spills on CDNA in the compile check.
# RDNA has no fp32 matrix instruction and spills at d128 and up with any tile.
FP32 = {
    (64, 4): K(64, 32, 4, 1),
    (128, 4): K(32, 16, 4, 1),
    (256, 4): K(16, 16, 4, 1),
}


def keep(config: KernelConfig, head_bucket: int, elt_bytes: int) -> bool:
    """Pruning rules for every AMD family:
    - one stage: AMD's Triton attention configs all use num_stages=1 (with two fused dots the
      stream pipeliner only adds LDS traffic), as does the Triton tutorial on HIP;
    - fp32: block_m * block_n * head dim <= 2**17, the register budget of NVIDIA's rule;
    - 16-bit: an fp32 accumulator of block_m x head dim within 128x128.
    """
    if config.num_stages != 1:
        return False
    if elt_bytes == 4:
        return config.block_m * config.block_n * head_bucket <= 2**17
    return config.block_m * head_bucket <= 128 * 128


PREFILL = Tuning(
    defaults={
        (64, 2): K(32, 32, 2, 1, waves_per_eu=2),
        (128, 2): K(32, 32, 2, 1, waves_per_eu=2),
        (256, 2): K(16, 16, 2, 1, waves_per_eu=2),
        **FP32,
    },
    space=(
        K(32, 32, 2, 1, waves_per_eu=2), K(32, 32, 4, 1, waves_per_eu=2), K(32, 16, 2, 1, waves_per_eu=2),
        K(16, 16, 2, 1, waves_per_eu=2), K(64, 32, 4, 1, waves_per_eu=2), *FP32.values(),
    ),
    keep=keep,
)

# Decode, CDNA and unknown AMD archs (RDNA families have their own rows): not measured; one
# stage (as for prefill), 4 warps, about two programs per CU. No spills on CDNA in the compile
# check.
DECODE = Tuning(
    defaults={
        (64, 2): D(32, 64, 4, 1, 2, 2, 16),
        (128, 2): D(32, 64, 4, 1, 2, 2, 16),
        (256, 2): D(16, 32, 4, 1, 2, 2, 16),
        (64, 4): D(32, 32, 4, 1, 2, 4, 16),
        (128, 4): D(16, 16, 4, 1, 2, 4, 16),
        (256, 4): D(16, 16, 4, 1, 2, 4, 16),
    },
    space=(D(32, 64, 4, 1, 2, 2, 16), D(16, 32, 4, 1, 2, 2, 16), D(64, 64, 4, 1, 2, 2, 16),
           D(32, 32, 4, 1, 2, 4, 16), D(16, 16, 4, 1, 2, 4, 16), D(32, 64, 8, 1, 2, 2, 16)),
)

FAMILY = Family("amd", "amd", claims=(), archs={"gfx908": 65536},
                kinds={"prefill": PREFILL, "decode": DECODE})
