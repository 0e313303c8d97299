"""Launch of gluon_sm90.py's warp-specialised kernel (KernelConfig.ws): which calls it serves,
its tensor descriptors and grid. launch.attention_forward routes a ws configuration here when
`applies` holds and to kernel.py's kernel, with ws off, when it does not."""

from __future__ import annotations

import torch
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

from ..device import probe
from ..problem import Problem
from .gluon_sm90 import attention_fwd_ws_kernel
from .tuning import KernelConfig

_GL_DTYPES = {torch.float16: gl.float16, torch.bfloat16: gl.bfloat16}
ROWS = 64  # query rows per consumer warpgroup (gluon_sm90.py)


def applies(problem: Problem, strides: dict[str, tuple[int, ...] | None]) -> bool:
    """The calls the kernel serves: an sm90 GPU, 16-bit, head dim 64 or 128, no mask, a positive
    scale, and Q, K, V and Out readable by the copy engine (strides: launch._tma_strides of each,
    by name)."""
    return (problem.device.type == "cuda" and probe(problem.device).arch == "sm90"
            and problem.dtype in _GL_DTYPES and problem.head_dim in (64, 128)
            and problem.v_head_dim == problem.head_dim and problem.mask is None
            and problem.scale > 0 and all(s is not None for s in strides.values()))


def _descriptor(t: torch.Tensor, strides: tuple[int, ...], rows: int) -> TensorDescriptor:
    block = [1, 1, rows, t.shape[3]]
    layout = gl.NVMMASharedLayout.get_default_for(block, _GL_DTYPES[t.dtype])
    return TensorDescriptor(t, list(t.shape), list(strides), block, layout)


def attention_forward_ws(problem: Problem, out: torch.Tensor, lse: torch.Tensor,
                         config: KernelConfig, strides: dict[str, tuple[int, ...]]) -> None:
    """Write out and lse (as launch.attention_forward) with the ws kernel; `applies` holds."""
    num_m = -(-problem.q_len // (2 * ROWS))
    grid = (num_m * problem.batch * problem.q_heads,)
    attention_fwd_ws_kernel[grid](
        _descriptor(problem.q, strides["q"], ROWS),
        _descriptor(problem.k, strides["k"], config.block_n),
        _descriptor(problem.v, strides["v"], config.block_n),
        _descriptor(out, strides["out"], ROWS), lse,
        problem.q_heads, problem.group, problem.q_len, problem.kv_len, problem.causal_offset,
        problem.scale, BLOCK_N=config.block_n, HEAD_DIM=problem.head_dim,
        STAGES=config.num_stages, CAUSAL=problem.causal is not None, OVERLAP=config.overlap,
        PINGPONG=config.pingpong, num_warps=4)
