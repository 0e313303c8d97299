"""Per query block, the keys a bool mask lets some row see and the run of keys every row sees:
computed once per call, before the forward kernel, which then skips the key tiles outside the
first and computes those inside the second without reading the mask (kernel.py: BLOCK_RANGE).

HF's causal LMs hand batches with padding to SDPA-like implementations as one bool mask
[B, 1, Sq, Skv] that carries both the padding and the causality (is_causal=False): without the
spans every program would stream all Skv keys, about twice the work of the causal call. One
program per (16 rows, batch, mask head) reads its rows of the mask once; the forward kernel's
programs of all q heads that share the mask head read the parts of their block.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ..problem import Problem
from .fast_launch import Launcher, PreparedLaunches, tensor_traits

# Rows per program and keys per step of its scan. A query block's span comes in
# BLOCK_M // PART_ROWS parts, which the forward kernel combines (kernel.py reads 16-row parts).
# At B2 S2048 on the H200 (h200-2026-11-30-launch.md): one program per 128-row block took 69 us,
# one per 16 rows 7.7 us (8.9 us since it also counts each row's keys); 8 or 32 rows and
# 128-1024 keys per step 7.8-10.0 us (8.3-15.6 with the counts).
PART_ROWS = 16
SCAN_KEYS = 256


@triton.jit(do_not_specialize=["q_len", "kv_len"])
def mask_spans_kernel(Mask, Spans, stride_mb, stride_mh, stride_mm, stride_mn, heads, q_len,
                      kv_len, ROWS: tl.constexpr, BLOCK_N: tl.constexpr):
    """Spans[((b * heads + h) * parts + part) * 4 + (0, 1, 2, 3)] = (first, end, all_first,
    all_end) for rows [part * ROWS, (part + 1) * ROWS) of mask (b, h): keys [first, end) hold
    every key some row sees ((kv_len, 0) if none); every row sees every key of
    [all_first, all_end) (empty when a row's keys do not form one run)."""
    part = tl.program_id(0)
    bh = tl.program_id(1)
    b, h = (bh // heads).to(tl.int64), (bh % heads).to(tl.int64)
    rows = tl.minimum(part * ROWS + tl.arange(0, ROWS), q_len - 1).to(tl.int64)
    row_ptrs = Mask + b * stride_mb + h * stride_mh + rows[:, None] * stride_mm
    # Elementwise minima, maxima and counts over the steps, reduced once at the end: a reduction
    # in the loop (across warps, through shared memory) made each step wait on the last.
    first = tl.full([ROWS, BLOCK_N], kv_len, tl.int32)
    end = tl.zeros([ROWS, BLOCK_N], tl.int32)
    count = tl.zeros([ROWS, BLOCK_N], tl.int32)
    for start in tl.range(0, kv_len, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        vals = tl.load(row_ptrs + cols.to(tl.int64)[None, :] * stride_mn,
                       mask=(cols < kv_len)[None, :], other=0)
        seen = vals != 0
        first = tl.minimum(first, tl.where(seen, cols[None, :], kv_len))
        end = tl.maximum(end, tl.where(seen, cols[None, :] + 1, 0))
        count += seen.to(tl.int32)
    row_first = tl.min(first, axis=1)
    row_end = tl.max(end, axis=1)
    # A row whose keys are one run [row_first, row_end) (a row that sees none: an empty run).
    one_run = tl.sum(count, axis=1) == tl.maximum(row_end - row_first, 0)
    all_first = tl.where(tl.min(one_run.to(tl.int32), axis=0) > 0, tl.max(row_first, axis=0), kv_len)
    out = Spans + (bh.to(tl.int64) * tl.num_programs(0) + part) * 4
    tl.store(out, tl.min(row_first, axis=0))
    tl.store(out + 1, tl.max(row_end, axis=0))
    tl.store(out + 2, all_first)
    tl.store(out + 3, tl.min(row_end, axis=0))


launch_spans = Launcher(mask_spans_kernel)
# mask_spans' prepared launches, keyed by what the kernel's arguments depend on besides the two
# tensors (the mask's shape and strides, block_m) and their 16-byte alignment: every layer of an
# HF forward pass hands the same layout.
_prepared = PreparedLaunches(launch_spans)


def launch_arguments(mask: torch.Tensor, strides: tuple[int, int, int, int], spans: torch.Tensor,
                     heads: int, parts: int) -> tuple[tuple[int, int], dict]:
    """(grid, keyword arguments) of the span kernel's launch that fills `spans` (mask_spans)."""
    (b, _, sq, skv), (smb, smh, smm, smn) = mask.shape, strides
    return (parts, b * heads), dict(
        Mask=mask, Spans=spans, stride_mb=smb, stride_mh=smh, stride_mm=smm, stride_mn=smn,
        heads=heads, q_len=sq, kv_len=skv, ROWS=PART_ROWS, BLOCK_N=SCAN_KEYS, num_warps=4,
        num_stages=2,
    )


def applies(problem: Problem) -> bool:
    """A bool mask that varies along query rows (key-padding masks have their own scan)."""
    mask = problem.mask
    return mask is not None and mask.dtype == torch.bool and problem.q_len > 1 and mask.stride(2) != 0


def mask_spans(problem: Problem, strides: tuple[int, int, int, int], block_m: int
               ) -> tuple[torch.Tensor, int]:
    """(spans, mask heads): int32 [B * heads * cdiv(Sq, block_m) * block_m // PART_ROWS * 4] as
    mask_spans_kernel writes them (the parts of one query block are consecutive), and heads = Hq
    for a mask with one per q head, else 1. strides: the mask's, those of size-1 dims 0
    (launch.zeroed_strides)."""
    mask = problem.mask
    b, hq, sq, _ = mask.shape
    heads = hq if strides[1] != 0 else 1
    parts = -(-sq // block_m) * (block_m // PART_ROWS)
    spans = torch.empty(b * heads * parts * 4, dtype=torch.int32, device=mask.device)
    arguments = functools.partial(launch_arguments, mask, strides, spans, heads, parts)
    tensors = dict(Mask=mask, Spans=spans)
    _prepared((mask.shape, strides, block_m, tensor_traits(tensors)), tensors, arguments)
    return spans, heads
