"""The chunked backend's CPU path: torch's fused flash kernel, called piece by piece.

aten::_scaled_dot_product_flash_attention_for_cpu(q, k, v, dropout_p, is_causal, *, attn_mask,
scale) -> (out, logsumexp) is the kernel SDPA runs on a CPU: blockwise (memory stays bounded) and
faster there than the loop. Its contract is narrower than ours; each gap is closed here, and what
cannot be closed runs chunked.py's loop instead (see `applies`):
- GQA: K/V are never repeated. Without a causal rule, and with a mask that does not vary by head
  and query row (or with one query row), the group joins the query length, [B, Hkv, G*Sq, D], so
  each K/V block serves G heads (a decode step reads the cache once, not G times). Otherwise the
  op's own GQA where it has one (`_op_has_gqa`), else one call per position g in the group: q
  heads g, g+G, ... read kv heads 0, 1, ...
- causal: the op's rule is top_left. bottom_right with Skv > Sq > 1 is two pieces merged by
  their LSEs: keys [0, Skv - Sq), which every query sees, and the square top_left rest (with a
  float mask: the loop, see `applies`). With Skv < Sq the first Sq - Skv rows see nothing and the
  others are top_left; with Sq == 1 the one query sees every key.
- masks: bool becomes additive 0 / -inf (the op takes no bool); float masks arrive from chunked.py
  in the compute dtype with finite minima kept finite; broadcast dims stay size 1 (stride 0).
  Rows with no visible key: the op reports LSE 0 for them (torch 2.4: NaN); they are found from
  the mask and the causal rule and set to out 0, LSE -inf.
"""

from __future__ import annotations

import functools
import math

import torch

from .problem import Problem

# None on a torch without the op: then chunked.py runs its loop.
_OP = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


@functools.cache
def _op_has_gqa() -> bool:
    """Whether the op maps q head h to kv head h // G itself (newer torch). Older ops accept fewer
    kv heads and index K/V by the q head, reading past them (torch 2.4 returns NaN). Here K/V are
    the first of two heads in memory, so an older op reads the second, in bounds, and disagrees
    with a call for that q head alone."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 3, 8, generator=gen)
    kv = torch.randn(2, 2, 5, 8, generator=gen)  # [k|v, head, key, D]
    k, v = kv[:1, :1], kv[1:, :1]
    try:
        both = _OP(q, k, v)[0]
    except RuntimeError:  # a version that checks the head counts
        return False
    # The same float32 arithmetic either way: equal bits (a mismatch only costs the fast path).
    return torch.equal(both[:, 1], _OP(q[:, 1:], k, v)[0][:, 0])


def _causal(problem: Problem) -> bool:
    """Whether the causal rule hides any key (a single bottom_right query sees every key)."""
    return problem.causal is not None and problem.causal_offset < problem.kv_len - 1


def _split_causal(problem: Problem) -> bool:
    """bottom_right with Skv > Sq > 1: the prefix and diagonal pieces, merged by their LSEs."""
    return _causal(problem) and problem.causal_offset > 0


def applies(problem: Problem) -> bool:
    """CPU tensors, no autograd (chunked.py's loop is what autograd differentiates), one head size
    for q, k and v (the op's rule), and at least one query and one key (the op divides by both
    and dies of SIGFPE).
    Not a causal rule with a scale <= 0: the op writes -inf into the scores before it scales them
    (-inf * 0 = NaN, -inf * -1 = +inf). Not a float mask with a split causal rule: a row near a
    finite minimum has an LSE near -3.4e38, where float32's spacing (2e31) drops the log of the
    piece's key count, so the merge would weigh the pieces wrongly (SDPA's answer there, the mean
    of V, needs the counts)."""
    return (
        _OP is not None
        and problem.device.type == "cpu"
        and not problem.requires_grad
        and problem.v_head_dim == problem.head_dim
        and problem.q_len > 0
        and problem.kv_len > 0
        and not (problem.scale <= 0 and _causal(problem))
        and not (problem.mask is not None and not problem.mask_is_bool and _split_causal(problem))
    )


def _rows(t: torch.Tensor | None, start: int) -> torch.Tensor | None:
    """Query rows [start, Sq) of a compact [B|1, Hq|1, Sq|1, Skv|1] tensor (size-1 dims stay)."""
    return t if t is None or t.shape[2] == 1 else t[:, :, start:]


def _keys(t: torch.Tensor | None, start: int, end: int) -> torch.Tensor | None:
    return t if t is None or t.shape[3] == 1 else t[..., start:end]


def _grouped(problem: Problem, q, k, v, mask, causal: bool):
    """One piece through the op: (out [B, Hq, rows, D], lse [B, Hq, rows]), K/V un-repeated."""
    hkv, group, rows = problem.kv_heads, problem.group, q.shape[2]

    def call(q, mask):
        return _OP(q, k, v, dropout_p=0.0, is_causal=causal, attn_mask=mask, scale=problem.scale)

    if group == 1:
        return call(q, mask)
    if not causal and (mask is None or (mask.shape[2] == 1 and (rows == 1 or mask.shape[1] == 1))):
        if mask is not None and mask.shape[1] > 1:  # one query row: its per-head mask rows fold too
            mask = mask.unflatten(1, (hkv, group)).flatten(2, 3)
        out, lse = call(q.unflatten(1, (hkv, group)).flatten(2, 3), mask)
        return out.unflatten(2, (group, rows)).flatten(1, 2), lse.unflatten(2, (group, rows)).flatten(1, 2)
    if _op_has_gqa():
        return call(q, mask)
    out = q.new_empty(q.shape)
    lse = q.new_empty(q.shape[:3], dtype=problem.lse_dtype)
    for g in range(group):
        part = mask if mask is None or mask.shape[1] == 1 else mask[:, g::group]
        out[:, g::group], lse[:, g::group] = call(q[:, g::group], part)
    return out, lse


def _seen(allowed: torch.Tensor, causal: bool, rows: int) -> torch.Tensor:
    """[B|1, Hq|1, rows|1] bool: the rows of a piece that see at least one key."""
    seen = allowed.any(dim=-1)
    if causal:
        # Row i sees keys j <= i: something iff its first allowed key is at most i (argmax: first).
        first = allowed.to(torch.uint8).argmax(dim=-1)
        seen = seen & (first <= torch.arange(rows, device=allowed.device))
    return seen


def _piece(problem: Problem, q, k, v, mask, allowed, causal: bool):
    """The op's (out, lse) for one piece, rows that see no key set to out 0, LSE -inf."""
    out, lse = _grouped(problem, q, k, v, mask, causal)
    if allowed is not None:
        hidden = ~_seen(allowed, causal, q.shape[2])
        if hidden.any():
            out = out.masked_fill_(hidden.unsqueeze(-1), 0.0)
            lse = lse.masked_fill_(hidden, -math.inf)
    return out, lse


def _merge(a, b, compute: torch.dtype):
    """Two pieces over disjoint keys of the same rows as one: each weighs exp(its lse - lse)."""
    (out_a, lse_a), (out_b, lse_b) = a, b
    lse = torch.logaddexp(lse_a, lse_b)
    base = lse.masked_fill(lse == -math.inf, 0.0)  # rows that see nothing: both weights are 0
    out = out_a.to(compute) * (lse_a - base).exp().unsqueeze(-1)
    out += out_b.to(compute) * (lse_b - base).exp().unsqueeze(-1)
    return out.to(out_a.dtype), lse


def forward(problem: Problem, mask: torch.Tensor | None, compute: torch.dtype):
    """(out, lse or None); `mask` is problem.mask in chunked.py's compact form (float masks
    additive in `compute`, bool masks as given)."""
    allowed = None
    if mask is not None:
        allowed = mask if problem.mask_is_bool else mask != -math.inf
        if problem.mask_is_bool:
            mask = torch.zeros(mask.shape, dtype=compute, device=mask.device).masked_fill_(~mask, -math.inf)
        mask = mask.contiguous()  # torch 2.4's op reads mask rows as contiguous, whatever their strides
    q, k, v = problem.q, problem.k, problem.v
    offset, n = problem.causal_offset, problem.kv_len
    if not _causal(problem):
        out, lse = _piece(problem, q, k, v, mask, allowed, causal=False)
    elif offset == 0:
        out, lse = _piece(problem, q, k, v, mask, allowed, causal=True)
    elif _split_causal(problem):
        prefix = _piece(problem, q, k[:, :, :offset], v[:, :, :offset],
                        _keys(mask, 0, offset), _keys(allowed, 0, offset), causal=False)
        diagonal = _piece(problem, q, k[:, :, offset:], v[:, :, offset:],
                          _keys(mask, offset, n), _keys(allowed, offset, n), causal=True)
        out, lse = _merge(prefix, diagonal, compute)
    else:
        blind = -offset
        out, lse = _piece(problem, q[:, :, blind:], k, v, _rows(mask, blind), _rows(allowed, blind),
                          causal=True)
        out = torch.cat([out.new_zeros(out.shape[:2] + (blind, out.shape[3])), out], dim=2)
        lse = torch.cat([lse.new_full(lse.shape[:2] + (blind,), -math.inf), lse], dim=2)
    return out, (lse.to(problem.lse_dtype) if problem.return_lse else None)
