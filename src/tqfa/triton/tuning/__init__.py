"""Kernel configuration: one default per (target family, head-dim bucket, element size).

The data lives in defaults.py; this module holds the selection logic. Nothing is autotuned at run
time: a new shape costs one compile, never a sweep.
"""

from __future__ import annotations

from dataclasses import replace

from ...device import Target
from ...problem import Problem
from . import defaults
from .config import KernelConfig

__all__ = ["INTERPRETER", "KernelConfig", "head_block", "nvidia_capability", "select_config"]

# The Triton interpreter (TRITON_INTERPRET=1) as a target: whatever device the tensors are on.
INTERPRETER = Target("interpreter", "interpreter", "Triton interpreter", 1, 0, 1)


def nvidia_capability(target: Target) -> int:
    """"sm90" -> 90; 0 for other vendors."""
    return int(target.arch[2:]) if target.vendor == "nvidia" else 0


def head_block(head_dim: int) -> int:
    """Head dim padded in registers to a power of two; tl.dot needs at least 16."""
    return max(16, 1 << (head_dim - 1).bit_length())


def _head_bucket(head_dim: int) -> int:
    return 64 if head_dim <= 64 else 128 if head_dim <= 128 else 256


def smem_estimate(config: KernelConfig, block_d: int, elt_bytes: int, mask_bytes: int = 0) -> int:
    """Shared memory of the pipelined K/V tiles, the Q tile and the pipelined mask tile (its
    element size; 0 without a mask): Triton's allocation on sm90, an upper bound on sm80."""
    kv_and_q = (config.num_stages * 2 * config.block_n + config.block_m) * block_d * elt_bytes
    return kv_and_q + (config.num_stages - 1) * config.block_m * config.block_n * mask_bytes


def _fit(
    config: KernelConfig, block_d: int, elt_bytes: int, mask_bytes: int, smem_bytes: int
) -> KernelConfig:
    """Shallower pipeline, then narrower KV tiles, until the estimate fits the device."""
    while smem_bytes and smem_estimate(config, block_d, elt_bytes, mask_bytes) > smem_bytes:
        if config.num_stages > 1:
            config = replace(config, num_stages=config.num_stages - 1)
        elif config.block_n > 16:
            config = replace(config, block_n=config.block_n // 2)
        else:
            break
    return config


def select_config(problem: Problem, target: Target) -> KernelConfig:
    if target.vendor == "interpreter":
        return defaults.INTERPRETER
    elt = problem.q.element_size()
    if target.vendor == "amd":
        table = defaults.AMD
    elif nvidia_capability(target) >= 90:
        table = defaults.SM90
    else:
        table = defaults.SM80
    key = (_head_bucket(problem.head_dim), elt)
    mask_bytes = 0 if problem.mask is None else problem.mask.element_size()
    config = (mask_bytes and table.get(key + ("masked",))) or table[key]
    return _fit(config, head_block(problem.head_dim), elt, mask_bytes, target.shared_memory)
