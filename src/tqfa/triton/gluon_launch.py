"""Launch of gluon_sm90.py's warp-specialised kernel (KernelConfig.ws): which calls it serves,
its tensor descriptors and grid. launch.attention_forward routes a ws configuration here when
`ws_strides` finds the call served and to kernel.py's kernel (KernelConfig.without_ws) when not.

A layout seen before launches through fast_launch's prepared launch, as kernel.py's calls do:
Triton's binder and the building of the descriptors and layouts cost the short calls' host 207
us against kernel.py's 69 on the H200 (benchmarks/results/h200-2026-12-01d.md, run 6)."""

from __future__ import annotations

import functools

import torch
from triton.experimental.gluon import language as gl

from ..device import probe
from ..problem import Problem
from .fast_launch import HostDescriptor, Launcher, PreparedLaunches, tensor_traits
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


def _descriptor(t: torch.Tensor, strides: tuple[int, ...], rows: int) -> HostDescriptor:
    head_dim = t.shape[3]
    return HostDescriptor(t, t.shape, strides, (1, 1, rows, head_dim),
                          layout=_shared_layout(rows, head_dim, t.dtype))


def ws_arguments(problem: Problem, out: torch.Tensor, lse: torch.Tensor, config: KernelConfig,
                 strides: dict[str, tuple[int, ...]]) -> tuple[tuple[int], dict]:
    """(grid, keyword arguments) of the launch; strides: ws_strides's (not None).
    A persistent program keeps two Q buffers: with one, an item's Q waits for the last QK
    products of the item before (at Sq 512 an item has 4 tiles of 128 keys). A persistent causal
    grid takes the items longest first, in a snake if the configuration says so
    (gluon_sm90._work)."""
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
        Q_BUFFERS=2 if config.persistent else 1,
        ORDER=("snake" if config.snake else "longest") if config.persistent and causal else "heads",
        num_warps=4)


launch_ws = Launcher(attention_fwd_ws_kernel)
# The tensor each descriptor parameter describes, by its name in attention_forward_ws's tensors.
_DESCRIBED = dict(q_desc="Q", k_desc="K", v_desc="V", o_desc="Out")
_prepared = PreparedLaunches(launch_ws, _DESCRIBED)


def plan_key(problem: Problem, tensors: dict[str, torch.Tensor], config: KernelConfig) -> tuple:
    """Everything ws_arguments' result and ws_strides' verdict depend on besides the tensors
    themselves (shapes, strides, dtypes and 16-byte alignment, the problem's options, the
    device's multiprocessors): calls with equal keys differ in their tensors only."""
    q, k, v, out = problem.q, problem.k, problem.v, tensors["Out"]
    return (config, problem.mask is None, problem.causal, problem.scale, q.device, q.shape,
            q.stride(), k.shape, k.stride(), v.shape, v.stride(), out.shape, out.stride(),
            tensor_traits(tensors))


def attention_forward_ws(problem: Problem, out: torch.Tensor, lse: torch.Tensor,
                         config: KernelConfig) -> bool:
    """Write out and lse (as launch.attention_forward) with the ws kernel if it serves the call
    (ws_strides); False, launching nothing, if not. A key launched before is served without
    ws_strides' layout checks."""
    tensors = dict(Q=problem.q, K=problem.k, V=problem.v, Out=out, Lse=lse)
    key = plan_key(problem, tensors, config)
    if _prepared.launch_prepared(key, tensors):
        return True
    strides = ws_strides(problem, out)
    if strides is None:
        return False
    _prepared(key, tensors, lambda: ws_arguments(problem, out, lse, config, strides))
    return True
