"""AMD RDNA3 / RDNA3.5: gfx11xx (RX 7900, W7900, Strix). Wave32, 64 KB of LDS per workgroup,
256 VGPRs per lane, WMMA.

Not measured here. AMD's RDNA default in the FlashAttention Triton backend
(flash_attn/flash_attn_triton_amd/fwd_prefill.py: 64x64, 4 warps, waves_per_eu 1, 1 stage; its
older RDNA autotune list: 32x32 / 32x16 / 16x16 at 2 warps, waves_per_eu 2-4) spills in our
kernel at every head dim here: RDNA3's WMMA keeps operands replicated across the lanes of a wave.
The rows are the largest tiles that compile without spills (`python -m tqfa compile-check
--target rdna3`); at d256 and for fp32 from d128 every tile spills and the row is the one that
spills least: 16 rows over 16 warps, which spreads the accumulator thinnest. Small tiles are the
price of 256 VGPRs; RDNA4 (rdna4.py) needs less of this.
"""

from .amd import keep
from .config import DecodeConfig, Family, KernelConfig, Tuning

K = KernelConfig
D = DecodeConfig

PREFILL = Tuning(
    defaults={
        (64, 2): K(64, 32, 4, 1, waves_per_eu=2),
        (128, 2): K(16, 16, 8, 1),
        (256, 2): K(16, 16, 16, 1),
        (64, 4): K(16, 16, 4, 1),
        (128, 4): K(16, 16, 16, 1),
        (256, 4): K(16, 16, 16, 1),
    },
    space=(
        K(64, 64, 4, 1, waves_per_eu=1), K(64, 32, 4, 1, waves_per_eu=2), K(32, 32, 2, 1, waves_per_eu=2),
        K(32, 16, 8, 1), K(32, 16, 4, 1), K(32, 16, 2, 1, waves_per_eu=2), K(16, 16, 16, 1), K(16, 16, 8, 1),
        K(16, 16, 4, 1),
    ),
    keep=keep,
)

# Decode: not measured. The AMD-wide rows (4 warps, 64-key tiles) spill 19 to 677 VGPRs here;
# 8 warps over narrower tiles spread the packed rows thinner (`compile-check --target rdna3`,
# gfx1100): no spills up to d128 (one VGPR in bf16 d128 without a mask); at d256 16 warps spill
# least (130-191).
DECODE = Tuning(
    defaults={
        (64, 2): D(32, 32, 8, 1, 2, 2, 16),
        (128, 2): D(16, 16, 8, 1, 2, 2, 16),
        (256, 2): D(16, 16, 16, 1, 2, 2, 16),
        (64, 4): D(16, 16, 8, 1, 2, 4, 16),
        (128, 4): D(16, 16, 8, 1, 2, 4, 16),
        (256, 4): D(16, 16, 16, 1, 2, 4, 16),
    },
    space=(D(32, 32, 8, 1, 2, 2, 16), D(16, 32, 8, 1, 2, 2, 16), D(16, 16, 8, 1, 2, 2, 16),
           D(16, 16, 16, 1, 2, 2, 16), D(16, 16, 8, 1, 2, 4, 16), D(16, 16, 16, 1, 2, 4, 16)),
)

FAMILY = Family("rdna3", "amd", claims=("gfx11",), archs={"gfx1100": 65536, "gfx1151": 65536},
                kinds={"prefill": PREFILL, "decode": DECODE})
