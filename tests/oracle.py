"""The float64 oracle: DESIGN.md's semantics, written out directly (no SDPA, no chunking).

`reference(..., matmul_dtype=torch.float64)` is the oracle. With matmul_dtype set to the input
dtype it is the same math done naively in that dtype (products rounded to it, softmax in float32,
as SDPA's math path does), which sets the error budget of the agreement tests.
"""

from __future__ import annotations

import math

import torch


def visible(q_len: int, kv_len: int, causal: str | None, device=None) -> torch.Tensor | None:
    """[Sq, Skv] bool: key j visible to query i iff j <= i (top_left) or j <= i + Skv - Sq."""
    if causal is None:
        return None
    offset = kv_len - q_len if causal == "bottom_right" else 0
    i = torch.arange(q_len, device=device)[:, None]
    j = torch.arange(kv_len, device=device)[None, :]
    return j <= i + offset


def reference(q, k, v, mask=None, causal=None, scale=None, matmul_dtype=torch.float64):
    """(out [B, Hq, Sq, Dv] float64, lse float64 [B, Hq, Sq]) for inputs on the CPU."""
    b, hq, sq, d = q.shape
    skv, dv = k.shape[2], v.shape[3]
    if skv == 0:
        no_keys = torch.full((b, hq, sq), -math.inf, dtype=torch.float64)
        return torch.zeros(b, hq, sq, dv, dtype=torch.float64), no_keys
    soft = torch.float64 if matmul_dtype == torch.float64 else torch.float32
    group = hq // k.shape[1]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    k = k.to(matmul_dtype).repeat_interleave(group, dim=1)
    v = v.to(matmul_dtype).repeat_interleave(group, dim=1)
    s = (q.to(matmul_dtype) @ k.transpose(-1, -2)).to(soft) * scale
    allowed = torch.ones(s.shape, dtype=torch.bool)
    if mask is not None:
        if mask.dtype == torch.bool:
            allowed = allowed & mask
        else:
            # A finite minimum stays finite, as in SDPA: it is a number, not a mask.
            m = mask.to(torch.float64)
            s = s + torch.where(m == -math.inf, m, m.clamp(min=torch.finfo(soft).min)).to(soft)
    seen = visible(sq, skv, causal)
    if seen is not None:
        allowed = allowed & seen
    s = s.masked_fill(~allowed, -math.inf)
    row_max = s.amax(dim=-1, keepdim=True)
    empty = row_max == -math.inf  # rows with no visible key
    p = torch.exp(s - row_max.masked_fill(empty, 0.0))
    denom = p.sum(dim=-1, keepdim=True)
    p = p / denom.masked_fill(empty, 1.0)
    out = (p.to(matmul_dtype) @ v).to(torch.float64)
    lse = (row_max + torch.log(denom)).squeeze(-1).to(torch.float64)
    return out.masked_fill(empty, 0.0), lse.masked_fill(empty.squeeze(-1), -math.inf)
