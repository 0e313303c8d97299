"""The chunked backend's own mechanics: the loop with many chunks and query blocks, and the fused CPU
path's corners (GQA, both causal alignments, masks, rows with no visible key), against the oracle."""

from __future__ import annotations

import math

import pytest
import torch

import tqfa
from cases import CASES, make_inputs
from oracle import reference
from test_agreement import FLOOR, _errors
from tqfa import chunked, chunked_fused
from tqfa.problem import build_problem


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_small_blocks_agree_with_the_oracle(case, monkeypatch):
    # The loop (on a CPU without autograd the fused path would run instead) with 2048 score
    # elements per block: every case with more than a few rows runs many chunks.
    monkeypatch.setattr(chunked_fused, "applies", lambda problem: False)
    monkeypatch.setattr(chunked, "_BLOCK_ELEMENTS", 2048)
    q, k, v, mask = make_inputs(case, torch.float64, seed=7)
    out, lse = tqfa.attention(
        q, k, v, mask, case.causal is not None, causal_alignment=case.causal or "top_left",
        return_lse=True, backend="chunked",
    )
    ref_out, ref_lse = reference(q, k, v, mask, causal=case.causal)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lse, ref_lse, rtol=1e-10, atol=1e-10)


def test_blocks_bound_the_score_temporary():
    q = torch.randn(1, 16, 2048, 64)
    k = torch.randn(1, 4, 32768, 64)
    block_q, chunk = chunked._block_sizes(build_problem(q, k, k, is_causal=True))
    assert 16 * block_q * chunk <= 2 * chunked._BLOCK_ELEMENTS and chunk < 32768


def test_causal_blocks_skip_chunks_above_the_diagonal():
    q = torch.randn(1, 1, 1000, 8)
    k = torch.randn(1, 1, 1000, 8)
    problem = build_problem(q, k, k, is_causal=True)
    assert chunked._visible_keys(problem, 0, 100) == 100
    bottom = build_problem(q[:, :, :10], k, k, is_causal=True, causal_alignment="bottom_right")
    assert chunked._visible_keys(bottom, 0, 5) == 995


def test_fused_path_applies_only_where_it_can():
    q, k = torch.randn(1, 4, 9, 8), torch.randn(1, 2, 11, 8)
    assert chunked_fused.applies(build_problem(q, k, k))
    assert not chunked_fused.applies(build_problem(q.requires_grad_(), k, k))  # autograd: the loop
    q = q.detach()
    assert not chunked_fused.applies(build_problem(q, k, k[..., :4]))  # Dv != D
    assert not chunked_fused.applies(build_problem(q[:, :, :0], k, k))  # the op divides by Sq
    assert not chunked_fused.applies(build_problem(q, k[:, :, :0], k[:, :, :0]))


def _corner_mask(b: int, hq: int, sq: int, skv: int, kind: str, dtype, gen) -> torch.Tensor:
    """A mask whose rows hit the fused path's corners, for offset = Skv - Sq: rows that allow
    nothing; only keys beyond their causal diagonal (no visible key under either alignment);
    only keys [0, offset) (bottom_right: the prefix piece alone); only keys from the diagonal
    (the other piece alone); the rest random. `hf` also holds finfo.min rows and values."""
    offset = max(skv - sq, 0)
    keep = torch.rand(b, hq, sq, skv, generator=gen) > 0.3
    j = torch.arange(skv)
    for i in range(sq):
        kind_of_row = i % 5
        if kind_of_row == 0:
            keep[:, :, i] = False
        elif kind_of_row == 1:
            keep[:, :, i] = j > i + offset
        elif kind_of_row == 2 and offset > 0:
            keep[:, :, i] = j < offset
        elif kind_of_row == 3:
            keep[:, :, i] = (j >= offset) & (j <= i + offset)
    keep[1:, 1::2] = torch.rand(keep[1:, 1::2].shape, generator=gen) > 0.5  # heads and batch differ
    if kind == "bool":
        return keep
    values = torch.randn(b, hq, sq, skv, generator=gen).to(dtype).masked_fill(~keep, -math.inf)
    if kind == "hf":  # finite minima: a number, not a mask
        values[:, :, 4::5] = torch.finfo(dtype).min
        values = values.masked_fill(torch.rand(values.shape, generator=gen) < 0.1, torch.finfo(dtype).min)
    return values


FUSED_SHAPES = {  # (b, hq, hkv, sq, skv)
    "gqa3-short_q": (2, 6, 2, 13, 40),  # bottom_right: prefix and diagonal pieces
    "gqa3-long_q": (2, 6, 2, 40, 13),  # bottom_right: the first 27 rows see nothing
    "mha-square": (2, 4, 4, 23, 23),
    "gqa4-one_row": (2, 8, 2, 1, 57),  # decode: the group and a per-head mask fold into rows
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive", "hf", "keypad"])
@pytest.mark.parametrize("causal", [None, "top_left", "bottom_right"])
@pytest.mark.parametrize("shape", FUSED_SHAPES, ids=str)
@pytest.mark.parametrize("gqa", ["op", "per_position"])  # the op's own GQA where it has one, or not
def test_fused_path_agrees_with_the_oracle(gqa, shape, causal, mask_kind, dtype, monkeypatch):
    if gqa == "per_position":
        monkeypatch.setattr(chunked_fused, "_op_has_gqa", lambda: False)
    b, hq, hkv, sq, skv = FUSED_SHAPES[shape]
    gen = torch.Generator().manual_seed(sq * 1000 + skv)
    q = torch.randn(b, hq, sq, 32, generator=gen).to(dtype)
    k, v = (torch.randn(b, hkv, skv, 32, generator=gen).to(dtype) for _ in range(2))
    if mask_kind == "keypad":  # HF key padding [B, 1, 1, Skv]: folds into the query rows
        mask = torch.zeros(b, 1, 1, skv, dtype=dtype)
        mask[1:, ..., skv // 2 :] = torch.finfo(dtype).min
    else:
        mask = None if mask_kind == "none" else _corner_mask(b, hq, sq, skv, mask_kind, dtype, gen)
    # The one refusal: a float mask with the bottom_right rule split in two pieces (see applies).
    split = causal == "bottom_right" and 1 < sq < skv and mask is not None and mask.dtype != torch.bool
    problem = build_problem(q, k, v, mask, causal is not None, causal_alignment=causal or "top_left")
    assert chunked_fused.applies(problem) == (not split)
    if not split:
        monkeypatch.setattr(chunked, "_loop", lambda *args: pytest.fail("the loop ran, not the fused path"))
    out, lse = tqfa.attention(q, k, v, mask, causal is not None, causal_alignment=causal or "top_left",
                              return_lse=True, backend="chunked")
    ref_out, ref_lse = reference(q, k, v, mask, causal=causal)
    assert not out.isnan().any() and not lse.isnan().any()
    assert torch.equal(torch.isneginf(lse), torch.isneginf(ref_lse)), "rows with no visible key"
    assert torch.all(out[torch.isneginf(lse)] == 0)
    if dtype == torch.float64:
        torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(lse, ref_lse, rtol=1e-10, atol=1e-10)
        return
    # The agreement matrix's rule: at most twice the naive error in the input dtype, plus a floor.
    naive_out, naive_lse = reference(q, k, v, mask, causal=causal, matmul_dtype=dtype)
    naive_out_err, naive_lse_err = _errors(naive_out, naive_lse, ref_out, ref_lse)
    out_err, lse_err = _errors(out, lse, ref_out, ref_lse)
    finite = ref_lse[torch.isfinite(ref_lse)]
    magnitude = finite.abs().max().item() if finite.numel() else 0.0
    assert out_err <= 2 * naive_out_err + FLOOR[dtype], f"out error {out_err:.3g}, naive {naive_out_err:.3g}"
    lse_floor = max(FLOOR[dtype], 4e-6) * (1 + magnitude)
    assert lse_err <= 2 * naive_lse_err + lse_floor, f"lse error {lse_err:.3g}, naive {naive_lse_err:.3g}"


@pytest.mark.parametrize("scale", [0.0, -0.7])
@pytest.mark.parametrize("causal", [None, "top_left", "bottom_right"])
def test_non_positive_scales(scale, causal):
    # The op writes -inf into causal scores before scaling them: causal calls with such a scale run
    # the loop; without a causal rule the op is exact.
    g = torch.Generator().manual_seed(5)
    q = torch.randn(2, 4, 9, 16, generator=g, dtype=torch.float64)
    k, v = (torch.randn(2, 2, 13, 16, generator=g, dtype=torch.float64) for _ in range(2))
    mask = torch.rand(2, 1, 9, 13, generator=g) > 0.3
    kwargs = dict(is_causal=causal is not None, causal_alignment=causal or "top_left", scale=scale)
    assert chunked_fused.applies(build_problem(q, k, v, mask, **kwargs)) == (causal is None)
    out, lse = tqfa.attention(q, k, v, mask, return_lse=True, backend="chunked", **kwargs)
    ref_out, ref_lse = reference(q, k, v, mask, causal=causal, scale=scale)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lse, ref_lse, rtol=1e-10, atol=1e-10)
