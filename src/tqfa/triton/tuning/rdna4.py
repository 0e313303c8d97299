"""AMD RDNA4: gfx12xx (RX 9070, R9700). Wave32, 64 KB of LDS per workgroup, 256 VGPRs per lane,
WMMA without RDNA3's operand replication.

Not measured here. Rows start from AMD's RDNA default in the FlashAttention Triton backend
(flash_attn/flash_attn_triton_amd/fwd_prefill.py: 64x64, 4 warps, waves_per_eu 1, 1 stage);
`python -m tqfa compile-check --target rdna4` shows where our kernel needs fewer keys or more
warps to stay within 256 VGPRs. fp32 runs on the FMA units: from d128 on, 16 rows over 16 warps
is the tile that spills least (none at d128 without a mask).
"""

from .amd import keep
from .config import DecodeConfig, Family, KernelConfig, Tuning

K = KernelConfig
D = DecodeConfig

PREFILL = Tuning(
    defaults={
        (64, 2): K(64, 32, 4, 1, waves_per_eu=1),  # 64x64 spills with a mask
        (128, 2): K(64, 32, 8, 1),  # at 4 warps 254 VGPRs with a mask: no headroom
        (256, 2): K(32, 16, 8, 1),
        (64, 4): K(16, 16, 4, 1),
        (128, 4): K(16, 16, 16, 1),
        (256, 4): K(16, 16, 16, 1),
    },
    space=(
        K(64, 64, 4, 1, waves_per_eu=1), K(64, 32, 4, 1, waves_per_eu=1), K(64, 32, 8, 1), K(32, 32, 8, 1),
        K(32, 32, 2, 1, waves_per_eu=2), K(32, 16, 8, 1), K(32, 16, 2, 1, waves_per_eu=2), K(16, 16, 16, 1),
        K(16, 16, 8, 1), K(16, 16, 4, 1),
    ),
    keep=keep,
)

# Decode: not measured. The AMD-wide rows spill 45 to 574 VGPRs here from d128 on; 8 warps over
# 32x32 tiles (16x16 at d256) do not (`compile-check --target rdna4`, gfx1201); fp32 d256
# spills with every tile, 16 warps least (183).
DECODE = Tuning(
    defaults={
        (64, 2): D(32, 32, 8, 1, 2, 2, 16),
        (128, 2): D(32, 32, 8, 1, 2, 2, 16),
        (256, 2): D(16, 16, 8, 1, 2, 2, 16),
        (64, 4): D(16, 16, 8, 1, 2, 4, 16),
        (128, 4): D(16, 16, 8, 1, 2, 4, 16),
        (256, 4): D(16, 16, 16, 1, 2, 4, 16),
    },
    space=(D(32, 32, 8, 1, 2, 2, 16), D(16, 64, 8, 1, 2, 2, 16), D(16, 32, 8, 1, 2, 2, 16),
           D(16, 16, 8, 1, 2, 2, 16), D(16, 16, 8, 1, 2, 4, 16), D(16, 16, 16, 1, 2, 4, 16)),
)

FAMILY = Family("rdna4", "amd", claims=("gfx12",), archs={"gfx1201": 65536, "gfx1200": 65536},
                kinds={"prefill": PREFILL, "decode": DECODE})
