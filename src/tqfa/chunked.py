"""The chunked backend: attention in plain PyTorch, on any device.

Which path runs (both compute the same function):
- CPU tensors without autograd, Dv == D, Sq and Skv > 0, on a torch that has the fused CPU flash
  op (SDPA's CPU kernel): chunked_fused.py, that op called piece by piece, K/V not repeated (as
  fast as SDPA; benchmarks/cpu_chunked.py). Not for a causal rule with scale <= 0, nor for a
  float mask with bottom_right causal and 1 < Sq < Skv (chunked_fused.applies says why).
- everything else (autograd, other devices, Dv != D, empty lengths, the two cases above, a torch
  without the op): the online-softmax loop below.

Loop invariant (the same as the Triton kernel's): after the KV chunks [0, c) of one query block,
    m     = max_j s_ij                     (running max; -inf while nothing is visible)
    denom = sum_j exp(s_ij - m)            (running denominator)
    acc   = sum_j exp(s_ij - m) v_j        (running, unnormalised output)
so out = acc / denom and lse = m + log(denom). A row with no visible key keeps m = -inf and
denom = 0, and returns 0 with lse = -inf.

GQA: q is viewed as [B, Hkv, G*Sq, D] and multiplied with the un-repeated K/V of its kv head.
Loop order: KV chunks outside, query blocks inside, so each chunk is read (and upcast) once.
Memory: the score block of one (query block, KV chunk) pair is the largest temporary, so peak
extra memory is O(B * Hq * block_q * chunk) besides the float32 state of the output's size; never
the whole [Sq, Skv] matrix. Causal query blocks skip the chunks entirely above their diagonal.
Without autograd the state is updated in place; with it every step is out of place, so autograd
differentiates the loop as written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import chunked_fused
from .backend import Backend, Reason
from .problem import Problem

# Score elements per temporary block: 1M fp32 = 4 MB, near a CPU core's share of cache and big
# enough that the matmuls, not the Python loop, dominate (measured in benchmarks/).
_BLOCK_ELEMENTS = 1 << 20
_MIN_CHUNK = 512
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


def _compact(mask: torch.Tensor) -> torch.Tensor:
    """The expanded mask with its broadcast (stride-0) dims back at size 1: ops stay small."""
    for dim in range(mask.dim()):
        if mask.stride(dim) == 0:
            mask = mask.narrow(dim, 0, 1)
    return mask


def _additive(mask: torch.Tensor, compute: torch.dtype) -> torch.Tensor:
    """A float mask in the compute dtype; finite minima stay finite (float64 min -> float32 min)."""
    if mask.dtype == compute:
        return mask
    if torch.finfo(mask.dtype).min < torch.finfo(compute).min:
        mask = torch.where(mask == -math.inf, mask, mask.clamp(min=torch.finfo(compute).min))
    return mask.to(compute)


@dataclass
class _Block:
    """One query block: its rows of q and its running softmax state (see the invariant)."""

    start: int
    end: int
    q: torch.Tensor  # [B, Hkv, G*nq, D], scaled, compute dtype
    m: torch.Tensor  # [B, Hkv, G, nq]
    denom: torch.Tensor
    acc: torch.Tensor  # [B, Hkv, G, nq, Dv]


def _blocks(problem: Problem, block_q: int, compute: torch.dtype) -> list[_Block]:
    b, hkv, g, d = problem.batch, problem.kv_heads, problem.group, problem.head_dim
    q = (problem.q.to(compute) * problem.scale).unflatten(1, (hkv, g))
    blocks = []
    for start in range(0, problem.q_len, block_q):
        end = min(start + block_q, problem.q_len)
        rows = (b, hkv, g, end - start)
        blocks.append(_Block(
            start, end,
            q=q[:, :, :, start:end].reshape(b, hkv, g * (end - start), d),
            m=torch.full(rows, -math.inf, dtype=compute, device=problem.device),
            denom=torch.zeros(rows, dtype=compute, device=problem.device),
            acc=torch.zeros(rows + (problem.v_head_dim,), dtype=compute, device=problem.device),
        ))
    return blocks


def _mask_part(mask: torch.Tensor, blk: _Block, k_start: int, k_end: int, group: int):
    """The compact mask's part for one block and chunk, as [B|1, Hkv|1, G|1, nq|1, n|1]."""
    rows = slice(blk.start, blk.end) if mask.shape[2] > 1 else slice(None)
    keys = slice(k_start, k_end) if mask.shape[3] > 1 else slice(None)
    part = mask[:, :, rows, keys]
    return part.unflatten(1, (-1, group) if part.shape[1] > 1 else (1, 1))


def _scores(problem: Problem, blk: _Block, k_t, k_start: int, k_end: int, mask, inplace: bool):
    """Masked scores [B, Hkv, G, nq, n] of one query block against one KV chunk."""
    b, hkv, g, nq = blk.m.shape
    s = torch.matmul(blk.q, k_t).view(b, hkv, g, nq, k_end - k_start)
    if mask is not None:
        part = _mask_part(mask, blk, k_start, k_end, g)
        if problem.mask_is_bool:
            s = s.masked_fill_(~part, -math.inf) if inplace else s.masked_fill(~part, -math.inf)
        else:
            s = s.add_(part) if inplace else s + part
    if problem.causal is not None and k_end - 1 > blk.start + problem.causal_offset:
        key = torch.arange(k_start, k_end, device=problem.device)
        query = torch.arange(blk.start, blk.end, device=problem.device)
        hidden = key[None, :] > query[:, None] + problem.causal_offset
        s = s.masked_fill_(hidden, -math.inf) if inplace else s.masked_fill(hidden, -math.inf)
    return s


def _update(blk: _Block, s: torch.Tensor, v: torch.Tensor, inplace: bool) -> None:
    """Fold one chunk's scores into the block's running state (the invariant above)."""
    b, hkv, g, nq, n = s.shape
    m_new = torch.maximum(blk.m, s.amax(dim=-1))
    # Subtract 0 instead of -inf on rows that see nothing yet: exp(-inf - 0) = 0, no NaN.
    m_safe = m_new.masked_fill(m_new == -math.inf, 0.0)
    alpha = torch.exp(blk.m - m_safe)
    if inplace:
        p = s.sub_(m_safe.unsqueeze(-1)).exp_()
        blk.denom.mul_(alpha).add_(p.sum(dim=-1))
        pv = torch.matmul(p.view(b, hkv, g * nq, n), v)
        blk.acc.mul_(alpha.unsqueeze(-1)).add_(pv.view(blk.acc.shape))
    else:
        p = torch.exp(s - m_safe.unsqueeze(-1))
        blk.denom = blk.denom * alpha + p.sum(dim=-1)
        pv = torch.matmul(p.view(b, hkv, g * nq, n), v)
        blk.acc = blk.acc * alpha.unsqueeze(-1) + pv.view(blk.acc.shape)
    blk.m = m_new


def forward(problem: Problem):
    compute = _compute_dtype(problem.dtype)
    mask = None
    if problem.mask is not None:
        mask = _compact(problem.mask)
        mask = mask if problem.mask_is_bool else _additive(mask, compute)
    if chunked_fused.applies(problem):
        return chunked_fused.forward(problem, mask, compute)
    return _loop(problem, mask, compute)


def _loop(problem: Problem, mask: torch.Tensor | None, compute: torch.dtype):
    """The online-softmax loop (the invariant above); `mask` is compact, float masks additive."""
    inplace = not problem.requires_grad
    block_q, chunk = _block_sizes(problem)
    blocks = _blocks(problem, block_q, compute)
    kv_end = _visible_keys(problem, 0, problem.q_len)
    for k_start in range(0, kv_end, chunk):
        k_end = min(k_start + chunk, problem.kv_len)
        k_t = problem.k[:, :, k_start:k_end].to(compute).transpose(-1, -2)
        v = problem.v[:, :, k_start:k_end].to(compute)
        for blk in blocks:
            if k_start < _visible_keys(problem, blk.start, blk.end):
                _update(blk, _scores(problem, blk, k_t, k_start, k_end, mask, inplace), v, inplace)
    b, hq, dv = problem.batch, problem.q_heads, problem.v_head_dim
    outs, lses = [], []
    for blk in blocks:
        seen = blk.denom > 0
        denom = torch.where(seen, blk.denom, torch.ones_like(blk.denom))
        outs.append((blk.acc / denom.unsqueeze(-1)).reshape(b, hq, -1, dv))
        lses.append(torch.where(seen, blk.m + torch.log(denom), -math.inf).reshape(b, hq, -1))
    if not blocks:
        outs = [problem.q.new_zeros((b, hq, 0, dv))]
        lses = [problem.q.new_zeros((b, hq, 0), dtype=compute)]
    out = torch.cat(outs, dim=2).to(problem.dtype)
    return out, (torch.cat(lses, dim=2).to(problem.lse_dtype) if problem.return_lse else None)


def supports(problem: Problem) -> Reason:
    return None


BACKEND = Backend(name="chunked", supports=supports, forward=forward, differentiable=True)
