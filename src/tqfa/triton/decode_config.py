"""Decode (split-KV) configurations per target, and when the decode kernel is chosen.

Provisional home: these entries move into tuning/'s per-target modules once that restructure has
landed. Keyed like the prefill table: (head-dim bucket, element size in bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..device import Target
from ..problem import Problem


@dataclass(frozen=True)
class DecodeConfig:
    block_n: int  # keys per streamed K/V tile
    num_warps: int
    num_stages: int  # software-pipelining depth of the K/V loads
    max_block_m: int  # packed rows (group * Sq) per program; more rows take more row blocks
    programs_per_sm: int  # split target: about this many programs per SM in the grid
    min_split_tiles: int  # never split below this many K/V tiles per program
    max_q_len: int  # the decode kernel serves Sq <= max_q_len; longer queries use the prefill kernel


def _head_bucket(head_dim: int) -> int:
    return 64 if head_dim <= 64 else 128 if head_dim <= 128 else 256


D = DecodeConfig
# Small tiles and many splits: CI's shapes cross several tiles and several splits, so the merge
# and the empty-split path run in the shared matrix.
INTERPRETER = D(block_n=16, num_warps=4, num_stages=1, max_block_m=64, programs_per_sm=16,
                min_split_tiles=2, max_q_len=16)

# fp32 with IEEE dots runs on the FMA units: narrow K/V tiles keep the operands in registers.
_NVIDIA_FP32 = {
    (64, 4): D(32, 4, 2, 32, 4, 4, 16),
    (128, 4): D(32, 4, 2, 16, 4, 4, 16),
    (256, 4): D(16, 4, 2, 16, 4, 4, 16),
}

SM90 = {
    (64, 2): D(128, 4, 3, 64, 4, 4, 16),
    (128, 2): D(128, 4, 3, 64, 4, 4, 16),
    (256, 2): D(64, 4, 3, 32, 4, 4, 16),
    **_NVIDIA_FP32,
}

SM80 = {
    (64, 2): D(64, 4, 3, 64, 4, 4, 16),
    (128, 2): D(64, 4, 3, 64, 4, 4, 16),
    (256, 2): D(32, 4, 3, 32, 4, 4, 16),
    **_NVIDIA_FP32,
}

AMD = {
    (64, 2): D(64, 4, 1, 64, 4, 4, 16),
    (128, 2): D(64, 4, 1, 32, 4, 4, 16),
    (256, 2): D(32, 4, 1, 16, 4, 4, 16),
    (64, 4): D(32, 4, 1, 32, 4, 4, 16),
    (128, 4): D(16, 4, 1, 16, 4, 4, 16),
    (256, 4): D(16, 4, 1, 16, 4, 4, 16),
}


def select_decode_config(problem: Problem, target: Target) -> DecodeConfig | None:
    """The decode configuration for `problem` on `target`, or None when Sq is too long for it."""
    if target.vendor == "interpreter":
        config = INTERPRETER
    else:
        if target.vendor == "amd":
            table = AMD
        elif int(target.arch[2:]) >= 90:  # "sm90" -> 90
            table = SM90
        else:
            table = SM80
        config = table[(_head_bucket(problem.head_dim), problem.q.element_size())]
    return config if problem.q_len <= config.max_q_len else None
