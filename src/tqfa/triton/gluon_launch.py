"""Launch of gluon_sm90.py's warp-specialised kernel (KernelConfig.ws): which calls it serves,
its tensor descriptors and grid. launch.attention_forward routes a ws configuration here when
`ws_strides` finds the call served and to kernel.py's kernel (KernelConfig.without_ws) when not."""

from __future__ import annotations

import functools

import torch
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

from ..device import probe
from ..problem import Problem
from .gluon_sm90 import attention_fwd_ws_kernel
from .tma_layout import tma_strides
from .tuning import KernelConfig, serves_dense

_GL_DTYPES = {torch.float16: gl.float16, torch.bfloat16: gl.bfloat16}
ROWS = 64  # query rows per consumer warpgroup (gluon_sm90.py)


def ws_strides(problem: Problem, out: torch.Tensor) -> dict[str, tuple[int, ...]] | None:
    """The descriptor strides of Q, K, V and Out by name if the kernel serves the call (on an
    sm90 GPU): tuning's "dense" features (16-bit, head dim 64 or 128, no mask, a positive scale)
    and four layouts the copy engine reads; else None."""
    if not serves_dense(problem, layouts=False):
        return None
    strides = {name: tma_strides(t) for name, t in
               (("q", problem.q), ("k", problem.k), ("v", problem.v), ("out", out))}
    return None if None in strides.values() else strides


@functools.cache  # a handful of (rows, head dim, dtype); building one took 25-33 us on a CPU
def _shared_layout(rows: int, head_dim: int, dtype: torch.dtype) -> gl.NVMMASharedLayout:
    return gl.NVMMASharedLayout.get_default_for([1, 1, rows, head_dim], _GL_DTYPES[dtype])


def _descriptor(t: torch.Tensor, strides: tuple[int, ...], rows: int) -> TensorDescriptor:
    layout = _shared_layout(rows, t.shape[3], t.dtype)
    return TensorDescriptor(t, list(t.shape), list(strides), [1, 1, rows, t.shape[3]], layout)


def ws_arguments(problem: Problem, out: torch.Tensor, lse: torch.Tensor, config: KernelConfig,
                 strides: dict[str, tuple[int, ...]]) -> tuple[tuple[int], dict]:
    """(grid, keyword arguments) of the launch; strides: ws_strides's (not None).
    A persistent program keeps two Q buffers where every work item has a tile without the mask
    (not causal, Skv >= BLOCK_N): with one, an item's Q waits for the last QK products of the item
    before (at Sq 512 an item has 4 tiles of 128 keys). Two buffers gave illegal addresses or
    wrong outputs on the H200 (triton 3.6) for calls with items whose tiles all take the mask
    (causal items on the diagonal, Skv < BLOCK_N), even with one item per program (benchmarks/
    results/h200-2026-12-01d.md). In that SASS (triton 3.6's ptxas 12.8) the masked loop's QK
    products read the Q descriptors of k-steps 1-7 from registers set in the preheader of the
    unmasked loop, which such an item skips; the PTX computes them in the masked loop's own
    preheader too. With one buffer they are the same for every item and set before the item loop.
    A persistent causal grid takes the items longest first (gluon_sm90._work)."""
    num_work = -(-problem.q_len // (2 * ROWS)) * problem.batch * problem.q_heads
    causal = problem.causal is not None
    grid = num_work
    if config.persistent:
        grid = min(grid, probe(problem.device).multiprocessors)
    return (grid,), dict(
        q_desc=_descriptor(problem.q, strides["q"], ROWS),
        k_desc=_descriptor(problem.k, strides["k"], config.block_n),
        v_desc=_descriptor(problem.v, strides["v"], config.block_n),
        o_desc=_descriptor(out, strides["out"], ROWS), Lse=lse,
        q_heads=problem.q_heads, group=problem.group, q_len=problem.q_len,
        kv_len=problem.kv_len, causal_offset=problem.causal_offset, num_work=num_work,
        sm_scale=problem.scale,
        BLOCK_N=config.block_n, HEAD_DIM=problem.head_dim, STAGES=config.num_stages,
        CAUSAL=causal, PINGPONG=config.pingpong,
        Q_BUFFERS=2 if config.persistent and not causal and problem.kv_len >= config.block_n else 1,
        LONGEST_FIRST=config.persistent and causal,
        num_warps=4)


def attention_forward_ws(problem: Problem, out: torch.Tensor, lse: torch.Tensor,
                         config: KernelConfig, strides: dict[str, tuple[int, ...]]) -> None:
    """Write out and lse (as launch.attention_forward) with the ws kernel; strides: ws_strides's."""
    grid, kwargs = ws_arguments(problem, out, lse, config, strides)
    attention_fwd_ws_kernel[grid](**kwargs)
