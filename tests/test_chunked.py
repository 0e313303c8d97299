"""The chunked backend's own mechanics: many chunks and query blocks agree with one big block."""

from __future__ import annotations

import pytest
import torch

import tqfa
from cases import CASES, make_inputs
from oracle import reference
from tqfa import chunked
from tqfa.problem import build_problem


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_small_blocks_agree_with_the_oracle(case, monkeypatch):
    # 2048 score elements per block: every case with more than a few rows runs many chunks.
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
