"""Launch of the forward kernel: strides, grid, constexpr flags, keyword arguments. No policy:
the backend picks the configuration and allocates the outputs."""

from __future__ import annotations

import torch
import triton

from ..problem import Problem
from .kernel import ADDITIVE_MASK, BOOL_MASK, NO_MASK, attention_fwd_kernel
from .tuning import KernelConfig, head_block

# Under TRITON_INTERPRET=1, triton.jit returns an InterpretedFunction instead of a JITFunction; it
# decides when kernel.py is imported, not when the kernel is called.
INTERPRETED = not isinstance(attention_fwd_kernel, triton.runtime.JITFunction)


def _strides(t: torch.Tensor | None) -> tuple[int, int, int, int]:
    """Strides with those of size-1 dims set to 0: torch leaves them arbitrary (often a length),
    and Triton specialises on their value, so this keeps one compiled variant per layout."""
    if t is None:
        return (0, 0, 0, 0)
    return tuple(0 if size == 1 else stride for size, stride in zip(t.shape, t.stride()))


def _mask_kind(problem: Problem) -> int:
    if problem.mask is None:
        return NO_MASK.value
    return BOOL_MASK.value if problem.mask_is_bool else ADDITIVE_MASK.value


def kernel_arguments(
    problem: Problem, out: torch.Tensor, lse: torch.Tensor, config: KernelConfig, allow_tf32: bool
) -> tuple[tuple[int], dict]:
    """(grid, keyword arguments) of the launch that writes out and lse for `problem`."""
    q, k, v, mask = problem.q, problem.k, problem.v, problem.mask
    sqb, sqh, sqm, sqd = _strides(q)
    skb, skh, skn, skd = _strides(k)
    svb, svh, svn, svd = _strides(v)
    smb, smh, smm, smn = _strides(mask)
    sob, soh, som, sod = _strides(out)
    num_m = triton.cdiv(problem.q_len, config.block_m)
    grid = (num_m * problem.batch * problem.q_heads,)
    # tf32 only changes fp32 dots; 16-bit dots always run on the tensor cores.
    precision = "tf32" if allow_tf32 and q.dtype == torch.float32 else "ieee"
    return grid, dict(
        Q=q, K=k, V=v, Mask=q if mask is None else mask, Out=out, Lse=lse,
        stride_qb=sqb, stride_qh=sqh, stride_qm=sqm, stride_qd=sqd,
        stride_kb=skb, stride_kh=skh, stride_kn=skn, stride_kd=skd,
        stride_vb=svb, stride_vh=svh, stride_vn=svn, stride_vd=svd,
        stride_mb=smb, stride_mh=smh, stride_mm=smm, stride_mn=smn,
        stride_ob=sob, stride_oh=soh, stride_om=som, stride_od=sod,
        q_heads=problem.q_heads, group=problem.group,
        q_len=problem.q_len, kv_len=problem.kv_len, causal_offset=problem.causal_offset,
        sm_scale=problem.scale,
        BLOCK_M=config.block_m, BLOCK_N=config.block_n,
        HEAD_DIM=problem.head_dim, BLOCK_D=head_block(problem.head_dim),
        CAUSAL=problem.causal is not None, MASK_KIND=_mask_kind(problem),
        FOLD_SCALE=problem.scale >= 0,
        DOT_PRECISION=precision,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )


def attention_forward(
    problem: Problem, out: torch.Tensor, lse: torch.Tensor, config: KernelConfig, allow_tf32: bool
) -> None:
    """Write out [B, Hq, Sq, D] (any strides) and lse (contiguous fp32 [B, Hq, Sq]).

    Needs Sq > 0, Skv > 0, B > 0; every element of out and lse is written.
    """
    assert lse.is_contiguous() and lse.dtype == torch.float32
    assert problem.q_len > 0 and problem.kv_len > 0 and problem.batch > 0
    grid, kwargs = kernel_arguments(problem, out, lse, config, allow_tf32)
    attention_fwd_kernel[grid](**kwargs)
