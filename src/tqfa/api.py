"""attention(): validate once -> Problem -> dispatch -> backend."""

from __future__ import annotations

import torch

from . import dispatch
from .problem import build_problem


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask=None,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    causal_alignment: str = "top_left",
    return_lse: bool = False,
    backend: str | None = None,
    allow_tf32: bool = False,
):
    """Scaled dot-product attention, as `torch.nn.functional.scaled_dot_product_attention(q, k, v,
    attn_mask, is_causal, scale=scale, enable_gqa=True)` computes it in float64.

    q [B, Hq, Sq, D], k [B, Hkv, Skv, D], v [B, Hkv, Skv, Dv] with Hq % Hkv == 0 (q head h reads
    kv head h // (Hq // Hkv)); any strides. attn_mask: bool (True = attend), an additive float
    mask broadcastable to [B, Hq, Sq, Skv], or a torch CausalBias. is_causal: key j is visible to
    query i iff j <= i ("top_left", SDPA's rule) or j <= i + Skv - Sq ("bottom_right",
    FlashAttention's rule); with a mask both apply. A row with no visible key returns 0 (LSE -inf).

    Returns out [B, Hq, Sq, Dv] in q's dtype, or (out, lse) with lse float32 [B, Hq, Sq] (natural
    log) when return_lse=True. backend: "auto", "triton" or "chunked" (default: TQFA_BACKEND, else
    auto). allow_tf32: float32 inputs may use tf32 dot products where the backend has them (the
    Triton kernel on NVIDIA); by default float32 means IEEE float32.
    """
    problem = build_problem(
        q,
        k,
        v,
        attn_mask,
        is_causal,
        scale,
        causal_alignment=causal_alignment,
        return_lse=return_lse,
        allow_tf32=allow_tf32,
    )
    out, lse = dispatch.choose(problem, backend).forward(problem)
    return (out, lse) if return_lse else out


def _problem_from(q, k, v, kwargs) -> tuple:
    backend = kwargs.pop("backend", None)
    return build_problem(q, k, v, **kwargs), backend


def resolve_backend(q, k, v, **kwargs) -> str:
    """The name of the backend `attention(q, k, v, **kwargs)` would use now (raises as it would)."""
    problem, backend = _problem_from(q, k, v, dict(kwargs))
    return dispatch.choose(problem, backend).name


def available_backends(q, k, v, **kwargs) -> dict[str, str | None]:
    """{backend name: None if it can run this call, else the reason it cannot}."""
    problem, backend = _problem_from(q, k, v, dict(kwargs))
    dispatch.requested_name(backend)  # an invalid name is an error here too
    return dispatch.availability(problem)
