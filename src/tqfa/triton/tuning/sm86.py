"""NVIDIA sm86 (RTX 30xx, A10, A40) and sm89 (RTX 40xx, L4, L40): 99 KB of shared memory per
block and 100 KB per SM, so fewer pipeline stages than sm80 and tiles that leave room for two
programs per SM.

Not measured here. Tile shapes start from FlashAttention-2's sm8x choices
(flash_fwd_launch_template.h: 128x128 for d64; 64x64 for causal d128, "the fastest because it's
square", 128x32 otherwise; 64x64 for d256) at 2 stages; where our kernel spills at FA2's shape
(4 warps), `python -m tqfa compile-check --target sm86` picked 8 warps or fewer keys.
"""

from .config import DecodeConfig, Family, KernelConfig, Tuning
from .sm80 import DECODE_FP32, DECODE_FP32_SPACE, FP32, keep

K = KernelConfig
D = DecodeConfig

PREFILL = Tuning(
    defaults={
        (64, 2): K(128, 64, 8, 2),  # 32 KB: three programs per SM by shared memory
        (128, 2): K(64, 64, 8, 2),  # FA2's causal tile; 56 KB
        (256, 2): K(64, 32, 8, 2),  # FA2's 64x64 needs 104 KB at 2 stages; 68 KB
        **FP32,
    },
    space=(
        K(128, 64, 8, 2), K(128, 64, 4, 2), K(128, 32, 4, 2), K(64, 64, 8, 2), K(64, 64, 4, 2),
        K(64, 64, 8, 1), K(64, 32, 4, 2), *FP32.values(),  # FP32's 64x32 w8 s2 is the d256 default
    ),
    keep=keep,
)

# Decode: not measured; sm80's tiles at 2 stages (at most 90 KB: two programs per SM at d128);
# no spills in the compile check.
DECODE = Tuning(
    defaults={
        (64, 2): D(32, 64, 8, 2, 2, 2, 16),
        (128, 2): D(32, 64, 8, 2, 2, 2, 16),
        (256, 2): D(16, 32, 8, 2, 2, 2, 16),
        **DECODE_FP32,
    },
    space=(D(32, 64, 8, 2, 2, 2, 16), D(32, 64, 8, 2, 1, 2, 16), D(16, 32, 8, 2, 2, 2, 16),
           D(32, 32, 8, 2, 2, 2, 16), *DECODE_FP32_SPACE),
)

FAMILY = Family("sm86", "nvidia", claims=("sm86", "sm89"), archs={"sm89": 101376, "sm86": 101376},
                kinds={"prefill": PREFILL, "decode": DECODE})
