"""AMD CDNA: gfx90a (MI200), gfx942 (MI300), gfx950 (MI350, CDNA4). 64 KB of LDS per workgroup
(160 KB on gfx950), wave64, 512 VGPRs + AGPRs per lane; MFMA.

Not measured here. Rows start from AMD's defaults in the FlashAttention Triton backend
(flash_attn/flash_attn_triton_amd/fwd_prefill.py: 128x64, 4 warps, waves_per_eu 2, 1 stage for
gfx942 and gfx950; its CDNA autotune list adds 128x128, 128x32 and 64x64 at waves_per_eu 1-3).
matrix_instr_nonkdim=16 (mfma 16x16, one of the two shapes AMD's perf-kernels tune over) needs
fewer VGPRs than the compiler's own choice with a mask (gfx942, 128x64 4 warps: 239 against 256
and a spill at d64). Where AMD's shape spills in our kernel (waves_per_eu 2 caps a lane at 256
VGPRs), the row says what replaced it; `python -m tqfa compile-check --target cdna` shows the
numbers for gfx942, gfx90a and gfx950.
"""

from .amd import DECODE, FP32, keep
from .config import Family, KernelConfig, Tuning


def K(block_m, block_n, num_warps, waves_per_eu=2):
    return KernelConfig(block_m, block_n, num_warps, 1, waves_per_eu=waves_per_eu, matrix_instr_nonkdim=16)


PREFILL = Tuning(
    defaults={
        (64, 2): K(128, 64, 4),  # AMD's default, no spills
        (128, 2): K(128, 64, 8),  # AMD's tile; at 4 warps it spills up to 73 VGPRs
        # 64x64 spills at both waves_per_eu; 64x32 at waves_per_eu 2 spills on gfx90a with a mask.
        (256, 2): K(64, 32, 4, waves_per_eu=1),
        **FP32,
    },
    space=(
        K(128, 64, 4), K(128, 64, 8), K(128, 64, 4, waves_per_eu=1), K(128, 64, 4, waves_per_eu=3),
        K(128, 128, 8), K(128, 32, 4), K(64, 64, 4), K(64, 32, 4, waves_per_eu=1), K(64, 32, 4),
        *FP32.values(),
    ),
    keep=keep,
)

FAMILY = Family("cdna", "amd", claims=("gfx90a", "gfx942", "gfx950"),
                archs={"gfx942": 65536, "gfx90a": 65536, "gfx950": 163840},
                kinds={"prefill": PREFILL, "decode": DECODE})
