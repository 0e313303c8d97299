"""The Triton interpreter (TRITON_INTERPRET=1): the kernel run by numpy on whatever device holds
the tensors. One configuration: nothing to tune and no GPU to time candidates on.

Small tiles: the shapes CI can afford still cross several tiles, so full, diagonal and ragged
tiles all run (and bigger tiles are not faster in the interpreter at those shapes).
"""

from .config import Family, KernelConfig, Tuning

CONFIG = KernelConfig(block_m=32, block_n=32, num_warps=4, num_stages=1)

PREFILL = Tuning(
    defaults={(bucket, elt): CONFIG for bucket in (64, 128, 256) for elt in (2, 4)},
    space=(CONFIG,),
)

FAMILY = Family("interpreter", "interpreter", claims=("interpreter",), archs={}, kinds={"prefill": PREFILL})
