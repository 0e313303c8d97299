"""The Triton interpreter (TRITON_INTERPRET=1): the kernel run by numpy on whatever device holds
the tensors. One configuration: nothing to tune and no GPU to time candidates on.

Small tiles: the shapes CI can afford still cross several tiles, so full, diagonal and ragged
tiles all run (and bigger tiles are not faster in the interpreter at those shapes).
"""

from .config import DecodeConfig, Family, KernelConfig, Tuning

CONFIG = KernelConfig(block_m=32, block_n=32, num_warps=4, num_stages=1)
# Decode: 16-key tiles and up to 16 programs on the interpreter's one "SM": CI's shapes cross
# several splits, so the merge and the splits that see no key run in the shared matrix.
DECODE_CONFIG = DecodeConfig(block_m=64, block_n=16, num_warps=4, num_stages=1, programs_per_sm=16,
                             min_split_tiles=2, max_q_len=16)

PREFILL = Tuning(
    defaults={(bucket, elt): CONFIG for bucket in (64, 128, 256) for elt in (2, 4)},
    space=(CONFIG,),
)

DECODE = Tuning(
    defaults={(bucket, elt): DECODE_CONFIG for bucket in (64, 128, 256) for elt in (2, 4)},
    space=(DECODE_CONFIG,),
)

FAMILY = Family("interpreter", "interpreter", claims=("interpreter",), archs={},
                kinds={"prefill": PREFILL, "decode": DECODE})
