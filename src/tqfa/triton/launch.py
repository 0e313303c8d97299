"""Launch of the forward kernel: strides, tensor descriptors, grid, constexpr flags, keyword
arguments. No policy: the backend picks the configuration and allocates the outputs."""

from __future__ import annotations

import torch
import triton

from ..problem import Problem
from . import mask_spans
from .fast_launch import HostDescriptor, Launcher, PreparedLaunches, TensorDescriptor, tensor_traits
from .kernel import ADDITIVE_MASK, BOOL_MASK, NO_MASK, attention_fwd_kernel
from .tma_layout import tma_strides
from .tuning import KernelConfig, head_parts

# Under TRITON_INTERPRET=1, triton.jit returns an InterpretedFunction instead of a JITFunction; it
# decides when kernel.py is imported, not when the kernel is called.
INTERPRETED = not isinstance(attention_fwd_kernel, triton.runtime.JITFunction)
launch_attention = Launcher(attention_fwd_kernel)


def zeroed_strides(t: torch.Tensor | None) -> tuple[int, int, int, int]:
    """Strides with those of size-1 dims set to 0: torch leaves them arbitrary (often a length),
    and Triton specialises on their value, so this keeps one compiled variant per layout."""
    if t is None:
        return (0, 0, 0, 0)
    (b, h, m, n), (sb, sh, sm, sn) = t.shape, t.stride()  # unrolled: this runs on every call
    return (0 if b == 1 else sb, 0 if h == 1 else sh, 0 if m == 1 else sm, 0 if n == 1 else sn)


def _descriptors(problem: Problem, config: KernelConfig, parts) -> dict | None:
    """The kernel's six descriptor arguments (None where unused), or None if a tensor cannot be
    read through descriptors (or this Triton has no host descriptors)."""
    tensors = {"q": (problem.q, config.block_m // config.halves), "k": (problem.k, config.block_n),
               "v": (problem.v, config.block_n)}
    descs = {}
    for name, (t, rows) in tensors.items():
        strides = tma_strides(t)
        if strides is None or TensorDescriptor is None:
            return None
        for suffix, width in zip(("", "1"), parts):
            descs[f"{name}_desc{suffix}"] = (
                HostDescriptor(t, t.shape, strides, (1, 1, rows, width)) if width else None)
    return descs


def _mask_lowest(mask: torch.Tensor | None) -> float:
    """The value at or below which a float mask entry hides its key (kernel.py: KV_RANGE): the
    mask dtype's minimum, HF's padding value; the kernel compares in fp32, whose minimum is the
    floor (a float64 minimum is -inf there, as in the scores)."""
    if mask is None or mask.dtype == torch.bool:
        return 0.0
    return max(torch.finfo(mask.dtype).min, torch.finfo(torch.float32).min)


def _mask_kind(problem: Problem) -> int:
    if problem.mask is None:
        return NO_MASK.value
    return BOOL_MASK.value if problem.mask_is_bool else ADDITIVE_MASK.value


def tensor_arguments(problem: Problem, out: torch.Tensor, lse: torch.Tensor,
                     spans: tuple[torch.Tensor, int] | None = None) -> dict[str, torch.Tensor]:
    """The kernel's tensor parameters by name; unused ones get a tensor of the call (Triton needs
    a pointer)."""
    q, k, v, mask = problem.q, problem.k, problem.v, problem.mask
    return dict(Q=q, K=k, V=v, Mask=q if mask is None else mask, Out=out, Lse=lse,
                Spans=lse if spans is None else spans[0])


# The tensor parameter each descriptor parameter describes, for PreparedLaunch.
_DESCRIBED = dict(q_desc="Q", q_desc1="Q", k_desc="K", k_desc1="K", v_desc="V", v_desc1="V")
# attention_forward's prepared launches, by _plan_key.
_prepared = PreparedLaunches(launch_attention, _DESCRIBED)


def _plan_key(problem: Problem, tensors: dict, config: KernelConfig, allow_tf32: bool,
              span_heads: int | None) -> tuple:
    """Everything kernel_arguments' result depends on besides the tensors themselves (their
    shapes, strides and the problem's options), and what the launcher's key holds of them:
    calls with equal keys differ in their tensors only (tests/test_fast_launch.py checks it)."""
    q, k, v, mask, out = problem.q, problem.k, problem.v, problem.mask, tensors["Out"]
    return (config, allow_tf32, problem.causal, problem.scale, span_heads,
            q.shape, q.stride(), k.shape, k.stride(), v.shape, v.stride(),
            None if mask is None else (mask.shape, mask.stride()), out.shape, out.stride(),
            tensors["Spans"].shape, tensor_traits(tensors))


def kernel_arguments(
    problem: Problem, out: torch.Tensor, lse: torch.Tensor, config: KernelConfig, allow_tf32: bool,
    spans: tuple[torch.Tensor, int] | None = None,
) -> tuple[tuple[int], dict]:
    """(grid, keyword arguments) of the launch that writes out and lse for `problem`; spans:
    mask_spans.mask_spans's result for config.block_m, where it applies (BLOCK_RANGE)."""
    q, k, v, mask = problem.q, problem.k, problem.v, problem.mask
    sqb, sqh, sqm, sqd = zeroed_strides(q)
    skb, skh, skn, skd = zeroed_strides(k)
    svb, svh, svn, svd = zeroed_strides(v)
    smb, smh, smm, smn = zeroed_strides(mask)
    sob, soh, som, sod = zeroed_strides(out)
    parts = head_parts(problem.head_dim)
    descs = _descriptors(problem, config, parts) if config.tma else None
    num_m = -(-problem.q_len // config.block_m)  # triton.cdiv is a slow wrapper in triton 3.9
    grid = (num_m * problem.batch * problem.q_heads,)
    # tf32 only changes fp32 dots; 16-bit dots always run on the tensor cores.
    precision = "tf32" if allow_tf32 and q.dtype == torch.float32 else "ieee"
    return grid, dict(
        **tensor_arguments(problem, out, lse, spans),
        **(descs or dict.fromkeys(
            ("q_desc", "q_desc1", "k_desc", "k_desc1", "v_desc", "v_desc1"))),
        stride_qb=sqb, stride_qh=sqh, stride_qm=sqm, stride_qd=sqd,
        stride_kb=skb, stride_kh=skh, stride_kn=skn, stride_kd=skd,
        stride_vb=svb, stride_vh=svh, stride_vn=svn, stride_vd=svd,
        stride_mb=smb, stride_mh=smh, stride_mm=smm, stride_mn=smn,
        stride_ob=sob, stride_oh=soh, stride_om=som, stride_od=sod,
        q_heads=problem.q_heads, group=problem.group,
        q_len=problem.q_len, kv_len=problem.kv_len, causal_offset=problem.causal_offset,
        sm_scale=problem.scale, mask_lowest=_mask_lowest(mask),
        span_heads=1 if spans is None else spans[1],
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, HALVES=config.halves,
        HEAD_DIM=problem.head_dim, BLOCK_D=parts[0], BLOCK_D1=parts[1],
        CAUSAL=problem.causal is not None, MASK_KIND=_mask_kind(problem),
        MASK_ROWS=smm != 0, KV_RANGE=mask is not None and smm == 0,
        BLOCK_RANGE=spans is not None,
        FOLD_SCALE=problem.scale > 0, TMA=descs is not None,
        DOT_PRECISION=precision,
        num_warps=config.num_warps, num_stages=config.num_stages,
        # waves_per_eu, matrix_instr_nonkdim: HIP compiler options, unknown to the CUDA one.
        **(config.amd_options() if torch.version.hip else {}),
    )


def attention_forward(
    problem: Problem, out: torch.Tensor, lse: torch.Tensor, config: KernelConfig, allow_tf32: bool
) -> None:
    """Write out [B, Hq, Sq, D] (any strides) and lse (contiguous fp32 [B, Hq, Sq]).

    Needs Sq > 0, Skv > 0, B > 0; every element of out and lse is written.
    """
    assert lse.is_contiguous() and lse.dtype == torch.float32
    assert problem.q_len > 0 and problem.kv_len > 0 and problem.batch > 0
    if config.ws:
        from . import gluon_launch  # only a ws configuration imports Gluon

        if not INTERPRETED and gluon_launch.attention_forward_ws(problem, out, lse, config):
            return
        config = config.without_ws()
    spans = None
    if mask_spans.applies(problem):
        spans = mask_spans.mask_spans(problem, zeroed_strides(problem.mask), config.block_m)
    # A layout seen before launches its prepared variant with this call's tensors: no
    # kernel_arguments, no binding, no key (PreparedLaunch).
    tensors = tensor_arguments(problem, out, lse, spans)
    key = _plan_key(problem, tensors, config, allow_tf32, None if spans is None else spans[1])
    _prepared(key, tensors, lambda: kernel_arguments(problem, out, lse, config, allow_tf32, spans))
