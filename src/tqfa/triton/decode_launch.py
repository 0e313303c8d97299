"""Launch of the decode kernels: the split plan, strides, keyword arguments.

The only decision made here is the split count, which follows from the problem, the
configuration and the SM count (the backend passes device.probe(...).multiprocessors).

A decode step repeats one layout per layer and token: both kernels launch through
PreparedLaunches (fast_launch), keyed by everything their arguments depend on besides the
tensors, so a repeated layout skips building the arguments and Triton's binding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton

from ..problem import Problem
from .decode_config import DecodeConfig
from .decode_kernel import decode_merge_kernel, decode_split_kernel
from .fast_launch import Launcher, PreparedLaunches, tensor_traits
from .kernel import ADDITIVE_MASK, BOOL_MASK, NO_MASK
from .launch import zeroed_strides
from .tuning import head_block

# Under TRITON_INTERPRET=1 triton.jit returns an InterpretedFunction (decided at import).
INTERPRETED = not isinstance(decode_split_kernel, triton.runtime.JITFunction)
MERGE_BLOCK_D = 64  # head-dim slice per merge program: B=1 decode still gets 2 * Hq programs
MERGE_BLOCK_S = 16  # splits read per merge step
launch_split = Launcher(decode_split_kernel)
launch_merge = Launcher(decode_merge_kernel)
# Their prepared launches, by split_key and merge_key.
_prepared_split = PreparedLaunches(launch_split)
_prepared_merge = PreparedLaunches(launch_merge)


@dataclass(frozen=True)
class SplitPlan:
    block_m: int  # packed rows per program, a power of two >= 16
    num_m: int  # row blocks per (batch, kv head)
    num_splits: int
    split_len: int  # keys per split, a multiple of the configuration's block_n

    def programs(self, problem: Problem) -> int:
        return problem.batch * problem.kv_heads * self.num_m * self.num_splits


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def visible_kv_len(causal: str | None, q_len: int, kv_len: int) -> int:
    """Keys [0, n) that some query may see: the last query sees all of them, except under
    top_left causality (keys up to Sq - 1)."""
    return min(q_len, kv_len) if causal == "top_left" else kv_len


def plan_splits(problem: Problem, config: DecodeConfig, multiprocessors: int,
                num_splits: int | None = None) -> SplitPlan:
    """As many splits as fit in programs_per_sm programs per SM (never a partial extra wave),
    none shorter than min_split_tiles tiles, all of one length but the last. num_splits overrides
    the count."""
    batch, q_heads, q_len = problem.q.shape[:3]
    kv_heads, kv_len = problem.k.shape[1:3]
    rows = q_heads // kv_heads * q_len
    block_m = max(16, min(_pow2(rows), config.block_m))
    num_m = -(-rows // block_m)
    tiles = max(1, -(-visible_kv_len(problem.causal, q_len, kv_len) // config.block_n))
    if num_splits is None:
        base = batch * kv_heads * num_m
        num_splits = min(config.programs_per_sm * multiprocessors // base, tiles // config.min_split_tiles)
    per_split = -(-tiles // max(1, min(num_splits, tiles)))
    return SplitPlan(block_m, num_m, -(-tiles // per_split), per_split * config.block_n)


def split_tensors(problem: Problem, out: torch.Tensor, stats: torch.Tensor) -> dict:
    """decode_split_kernel's tensor parameters by name (Mask is q when there is none: Triton needs
    a pointer)."""
    q, mask = problem.q, problem.mask
    return dict(Q=q, K=problem.k, V=problem.v, Mask=q if mask is None else mask, Out=out,
                Stats=stats)


def split_key(problem: Problem, tensors: dict, plan: SplitPlan, config: DecodeConfig) -> tuple:
    """Everything the split launch's grid and arguments depend on besides the tensors themselves
    (their shapes, strides and the problem's options), and what the launcher's key holds of
    them: calls with equal keys differ in their tensors only (tests/test_prepared_decode.py)."""
    q, k, v, mask, out = problem.q, problem.k, problem.v, problem.mask, tensors["Out"]
    return (config, plan, problem.causal, problem.scale, problem.allow_tf32,
            q.shape, q.stride(), k.shape, k.stride(), v.shape, v.stride(),
            None if mask is None else (mask.shape, mask.stride()), out.shape, out.stride(),
            tensor_traits(tensors))


def split_arguments(problem: Problem, out: torch.Tensor, stats: torch.Tensor, plan: SplitPlan,
                    config: DecodeConfig) -> dict:
    """Keyword arguments of decode_split_kernel: out and stats are the final output and LSE when
    the plan has one split, else the partial buffers (acc, then (m, l))."""
    q, k, mask = problem.q, problem.k, problem.mask
    smb, smh, smm, smn = zeroed_strides(mask)
    mask_kind = NO_MASK if mask is None else BOOL_MASK if mask.dtype == torch.bool else ADDITIVE_MASK
    sqb, sqh, sqm, sqd = zeroed_strides(q)
    skb, skh, skn, skd = zeroed_strides(k)
    svb, svh, svn, svd = zeroed_strides(problem.v)
    # The partial buffers are addressed from their flat layout: no strides.
    sob, soh, som, sod = (0, 0, 0, 0) if plan.num_splits > 1 else zeroed_strides(out)
    d = q.shape[3]
    return dict(
        **split_tensors(problem, out, stats),
        stride_qb=sqb, stride_qh=sqh, stride_qm=sqm, stride_qd=sqd,
        stride_kb=skb, stride_kh=skh, stride_kn=skn, stride_kd=skd,
        stride_vb=svb, stride_vh=svh, stride_vn=svn, stride_vd=svd,
        stride_mb=smb, stride_mh=smh, stride_mm=smm, stride_mn=smn,
        stride_ob=sob, stride_oh=soh, stride_om=som, stride_od=sod,
        kv_heads=k.shape[1], group=q.shape[1] // k.shape[1], q_len=q.shape[2], kv_len=k.shape[2],
        causal_offset=problem.causal_offset, split_len=plan.split_len, num_splits=plan.num_splits,
        sm_scale=problem.scale,
        BLOCK_M=plan.block_m, BLOCK_N=config.block_n, HEAD_DIM=d, BLOCK_D=head_block(d),
        CAUSAL=problem.causal is not None, MASK_KIND=mask_kind,
        KEY_MASK=mask is not None and smh == 0 and smm == 0,
        FOLD_SCALE=problem.scale >= 0, SPLIT=plan.num_splits > 1,
        DOT_PRECISION="tf32" if problem.allow_tf32 and q.dtype == torch.float32 else "ieee",
        num_warps=config.num_warps, num_stages=config.num_stages,
    )


def merge_key(tensors: dict, plan: SplitPlan) -> tuple:
    """What the merge launch's grid and arguments depend on besides the tensors (see split_key)."""
    out = tensors["Out"]
    return plan.num_splits, out.shape, out.stride(), tensor_traits(tensors)


def merge_arguments(tensors: dict, plan: SplitPlan) -> tuple[tuple[int, int], dict]:
    """(grid, keyword arguments) of decode_merge_kernel: tensors Part, Stats, Out and Lse."""
    out = tensors["Out"]
    batch, q_heads, q_len, d = out.shape
    merge_block_d = min(MERGE_BLOCK_D, head_block(d))
    sob, soh, som, sod = zeroed_strides(out)
    return (batch * q_heads * q_len, -(-d // merge_block_d)), dict(
        **tensors, stride_ob=sob, stride_oh=soh, stride_om=som, stride_od=sod,
        q_heads=q_heads, q_len=q_len, num_splits=plan.num_splits,
        HEAD_DIM=d, BLOCK_D=merge_block_d, BLOCK_S=MERGE_BLOCK_S,
        num_warps=2,  # a [16, 64] tile: a wider program only waits longer for its loads
    )


def _launch_split(problem: Problem, out: torch.Tensor, stats: torch.Tensor, plan: SplitPlan,
                  config: DecodeConfig) -> None:
    tensors = split_tensors(problem, out, stats)
    _prepared_split(split_key(problem, tensors, plan, config), tensors, lambda: (
        (plan.programs(problem),), split_arguments(problem, out, stats, plan, config)))


def decode_forward(problem: Problem, out: torch.Tensor, lse: torch.Tensor, config: DecodeConfig,
                   multiprocessors: int, num_splits: int | None = None) -> SplitPlan:
    """Write out [B, Hq, Sq, D] (any strides) and lse (contiguous fp32 [B, Hq, Sq]); returns the
    plan it ran. Needs B, Sq, Skv > 0 and Dv == D."""
    assert lse.is_contiguous() and lse.dtype == torch.float32
    plan = plan_splits(problem, config, multiprocessors, num_splits)
    if plan.num_splits == 1:
        _launch_split(problem, out, lse, plan, config)
        return plan
    batch, q_heads, q_len, d = problem.q.shape
    parts = batch * q_heads * q_len * plan.num_splits
    work = torch.empty(parts * (d + 2), dtype=torch.float32, device=out.device)  # acc, then (m, l)
    stats = work[parts * d:]
    _launch_split(problem, work, stats, plan, config)
    merge = dict(Part=work, Stats=stats, Out=out, Lse=lse)
    _prepared_merge(merge_key(merge, plan), merge, lambda: merge_arguments(merge, plan))
    return plan
