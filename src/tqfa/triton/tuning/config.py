"""One kernel configuration: the launch's tile sizes and compiler knobs."""

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelConfig:
    block_m: int  # query rows per program
    block_n: int  # keys per streamed K/V tile
    num_warps: int
    num_stages: int  # software-pipelining depth of the K/V loads
