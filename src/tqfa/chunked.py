"""The chunked backend: online softmax over KV chunks in plain PyTorch, on any device.

Invariant (the same as the Triton kernel's): after the chunks [0, c) of one query block,
    m   = max_j s_ij                       (running max; -inf while nothing is visible)
    l   = sum_j exp(s_ij - m)              (running denominator)
    acc = sum_j exp(s_ij - m) v_j          (running, unnormalised output)
so out = acc / l and lse = m + log(l). A row with no visible key keeps m = -inf and l = 0 and
returns 0 with lse = -inf.

GQA: q is viewed as [B, Hkv, G*Sq, D] and multiplied with the un-repeated K/V of its kv head.
Memory: the score block of one (query block, kv chunk) pair is the largest temporary, so peak
extra memory is O(B * Hq * block_q * chunk), never the whole [Sq, Skv] matrix. Causal query
blocks stop at the last visible chunk, so the work above the diagonal is never done.
"""

from __future__ import annotations

import math

import torch

from .backend import Backend, Reason
from .problem import Problem

# Score elements (fp32) per temporary block: 4M elements = 16 MB; big enough that the matmuls
# dominate the Python loop, small enough to stay in a CPU's last-level cache neighbourhood.
_BLOCK_ELEMENTS = 1 << 22
_MIN_CHUNK = 128
# Causal query blocks: smaller blocks skip more of the upper triangle, larger ones loop less.
_CAUSAL_BLOCK_Q = 256


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _block_sizes(problem: Problem) -> tuple[int, int]:
    """(query rows per block, keys per chunk) so that one score block stays near _BLOCK_ELEMENTS."""
    rows = max(problem.batch * problem.q_heads, 1)
    block_q = max(problem.q_len, 1)
    if problem.causal is not None:
        block_q = min(block_q, _CAUSAL_BLOCK_Q)
    block_q = min(block_q, max(1, _BLOCK_ELEMENTS // (rows * _MIN_CHUNK)))
    chunk = min(max(problem.kv_len, 1), max(_MIN_CHUNK, _BLOCK_ELEMENTS // (rows * block_q)))
    return block_q, chunk


def _visible_keys(problem: Problem, q_start: int, q_end: int) -> int:
    """Keys [0, n) can be visible to queries [q_start, q_end); causal rows see j <= i + offset."""
    if problem.causal is None:
        return problem.kv_len
    return max(0, min(problem.kv_len, q_end - 1 + problem.causal_offset + 1))


def _additive(mask: torch.Tensor, compute: torch.dtype) -> torch.Tensor:
    """A float mask in the compute dtype; finite minima stay finite (float64 min -> float32 min)."""
    if mask.dtype == compute:
        return mask
    if torch.finfo(mask.dtype).min < torch.finfo(compute).min:
        mask = torch.where(mask == -math.inf, mask, mask.clamp(min=torch.finfo(compute).min))
    return mask.to(compute)


def _forward_block(problem: Problem, q_start: int, q_end: int, chunk: int):
    """Attention for queries [q_start, q_end) of every (batch, head): returns (out, lse) in fp32/64."""
    b, hkv, g = problem.batch, problem.kv_heads, problem.group
    nq = q_end - q_start
    compute = _compute_dtype(problem.dtype)
    q = problem.q[:, :, q_start:q_end].to(compute) * problem.scale
    q = q.reshape(b, hkv, g * nq, problem.head_dim)
    rows = (b, hkv, g, nq)
    m = torch.full(rows, -math.inf, dtype=compute, device=problem.device)
    l = torch.zeros(rows, dtype=compute, device=problem.device)
    acc = torch.zeros(rows + (problem.v_head_dim,), dtype=compute, device=problem.device)
    query_idx = torch.arange(q_start, q_end, device=problem.device)
    for k_start in range(0, _visible_keys(problem, q_start, q_end), chunk):
        k_end = min(k_start + chunk, problem.kv_len)
        k = problem.k[:, :, k_start:k_end].to(compute)
        v = problem.v[:, :, k_start:k_end].to(compute)
        s = torch.matmul(q, k.transpose(-1, -2)).view(rows + (k_end - k_start,))
        if problem.mask is not None:
            mask = problem.mask[:, :, q_start:q_end, k_start:k_end].unflatten(1, (hkv, g))
            if problem.mask_is_bool:
                s = s.masked_fill(~mask, -math.inf)
            else:
                s = s + _additive(mask, compute)
        if problem.causal is not None and k_end - 1 > q_start + problem.causal_offset:
            key_idx = torch.arange(k_start, k_end, device=problem.device)
            hidden = key_idx[None, :] > query_idx[:, None] + problem.causal_offset
            s = s.masked_fill(hidden, -math.inf)
        m_new = torch.maximum(m, s.amax(dim=-1))
        # Subtract 0 instead of -inf on rows that see nothing yet: exp(-inf - 0) = 0, no NaN.
        m_safe = m_new.masked_fill(m_new == -math.inf, 0.0)
        p = torch.exp(s - m_safe.unsqueeze(-1))
        alpha = torch.exp(m - m_safe)
        l = l * alpha + p.sum(dim=-1)
        pv = torch.matmul(p.view(b, hkv, g * nq, k_end - k_start), v).view(acc.shape)
        acc = acc * alpha.unsqueeze(-1) + pv
        m = m_new
    seen = l > 0
    out = acc / torch.where(seen, l, torch.ones_like(l)).unsqueeze(-1)
    lse = torch.where(seen, m + torch.log(torch.where(seen, l, torch.ones_like(l))), -math.inf)
    shape = (b, hkv * g, nq)
    return out.reshape(shape + (problem.v_head_dim,)), lse.reshape(shape)


def forward(problem: Problem):
    block_q, chunk = _block_sizes(problem)
    outs, lses = [], []
    for q_start in range(0, problem.q_len, block_q):
        out, lse = _forward_block(problem, q_start, min(q_start + block_q, problem.q_len), chunk)
        outs.append(out)
        lses.append(lse)
    b, hq, dv = problem.batch, problem.q_heads, problem.v_head_dim
    if outs:
        out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
        lse = torch.cat(lses, dim=2) if len(lses) > 1 else lses[0]
    else:
        out = problem.q.new_zeros((b, hq, 0, dv), dtype=_compute_dtype(problem.dtype))
        lse = problem.q.new_zeros((b, hq, 0), dtype=torch.float32)
    # LSE is float32, except for float64 inputs, whose finite minima (-1.8e308) float32 cannot hold.
    lse_dtype = torch.float64 if problem.dtype == torch.float64 else torch.float32
    return out.to(problem.dtype), (lse.to(lse_dtype) if problem.return_lse else None)


def supports(problem: Problem) -> Reason:
    return None


BACKEND = Backend(name="chunked", supports=supports, forward=forward, differentiable=True)
