"""The public semantics beyond the agreement matrix: SDPA parity, CausalBias, autograd, returns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right, causal_upper_left

import tqfa
from oracle import reference


def qkv(b=2, hq=6, hkv=3, sq=13, skv=29, d=24, dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(sq * 1000 + skv)
    shapes = [(b, hq, sq, d), (b, hkv, skv, d), (b, hkv, skv, d)]
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_(requires_grad) for s in shapes]


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_matches_sdpa_in_float64(is_causal, mask_kind):
    q, k, v = qkv()
    mask = {
        "none": None,
        "bool": torch.rand(2, 1, 13, 29) > 0.2,
        "float": torch.randn(6, 13, 29, dtype=torch.float64),
    }[mask_kind]
    if mask is not None and mask.dtype == torch.bool:
        mask[..., 0] = True  # SDPA returns NaN on rows with no visible key; tqfa returns 0
    sdpa_causal = is_causal and mask is None
    expected = F.scaled_dot_product_attention(q, k, v, mask, is_causal=sdpa_causal, enable_gqa=True)
    if is_causal and mask is not None:
        # SDPA refuses a mask together with is_causal: fold the causal rule into the mask.
        causal = torch.ones(13, 29, dtype=torch.bool).tril()
        folded = mask & causal if mask.dtype == torch.bool else mask.masked_fill(~causal, float("-inf"))
        expected = F.scaled_dot_product_attention(q, k, v, folded, enable_gqa=True)
    got = tqfa.attention(q, k, v, mask, is_causal=is_causal)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "bias, alignment", [(causal_lower_right, "bottom_right"), (causal_upper_left, "top_left")]
)
def test_causal_bias_objects_mean_their_alignment(bias, alignment):
    q, k, v = qkv(sq=7, skv=19)
    got = tqfa.attention(q, k, v, bias(7, 19))
    want = tqfa.attention(q, k, v, is_causal=True, causal_alignment=alignment)
    assert torch.equal(got, want)
    torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v, bias(7, 19), enable_gqa=True))


def test_bottom_right_differs_from_top_left_when_lengths_differ():
    q, k, v = qkv(sq=5, skv=11)
    tl = tqfa.attention(q, k, v, is_causal=True)
    br = tqfa.attention(q, k, v, is_causal=True, causal_alignment="bottom_right")
    assert not torch.allclose(tl, br)
    # The last query sees every key under bottom-right: it equals unmasked attention.
    torch.testing.assert_close(br[:, :, -1], tqfa.attention(q, k, v)[:, :, -1])


def test_hf_finite_minimum_in_a_full_row_averages_v_as_sdpa_does():
    q, k, v = qkv(dtype=torch.float32)
    mask = torch.zeros(2, 1, 13, 29)
    mask[:, :, 3] = torch.finfo(torch.float32).min
    got = tqfa.attention(q, k, v, mask)
    want = F.scaled_dot_product_attention(q, k, v, mask, enable_gqa=True)
    assert not got.isnan().any()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[:, :, 3], v.repeat_interleave(2, 1).mean(dim=2), rtol=1e-5, atol=1e-5)


def test_return_types_and_dtypes():
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        q, k, v = qkv(dtype=dtype)
        out = tqfa.attention(q, k, v)
        assert isinstance(out, torch.Tensor) and out.dtype == dtype
        out, lse = tqfa.attention(q, k, v, return_lse=True)
        assert out.dtype == dtype and lse.dtype == torch.float32


def test_dv_may_differ_from_d():
    q, k, _ = qkv()
    v = torch.randn(2, 3, 29, 5, dtype=torch.float64)
    out = tqfa.attention(q, k, v, is_causal=True)
    assert out.shape == (2, 6, 13, 5)
    torch.testing.assert_close(out, reference(q, k, v, causal="top_left")[0])


@pytest.mark.parametrize("causal", [None, "bottom_right"])
def test_autograd_matches_the_float64_oracle(causal):
    q, k, v = qkv(sq=9, skv=21, requires_grad=True)
    mask = torch.randn(1, 6, 9, 21, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(2, 6, 9, 24, dtype=torch.float64)
    out = tqfa.attention(q, k, v, mask, is_causal=causal is not None, causal_alignment=causal or "top_left")
    assert out.requires_grad and out.grad_fn is not None
    got = torch.autograd.grad(out, (q, k, v, mask), grad_out)
    ref_out = reference(q, k, v, mask, causal=causal)[0]
    want = torch.autograd.grad(ref_out, (q, k, v, mask), grad_out)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


def test_autograd_through_many_chunks(monkeypatch):
    # Small blocks: the chunked backend runs several KV chunks and query blocks.
    monkeypatch.setattr(tqfa.chunked, "_BLOCK_ELEMENTS", 2048)
    q, k, v = qkv(b=1, hq=2, hkv=1, sq=300, skv=700, d=16, dtype=torch.float32, requires_grad=True)
    out = tqfa.attention(q, k, v, is_causal=True, causal_alignment="bottom_right")
    (out * out).sum().backward()
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = reference(q64, k64, v64, causal="bottom_right")[0]
    (ref * ref).sum().backward()
    for t, t64 in ((q, q64), (k, k64), (v, v64)):
        torch.testing.assert_close(t.grad.double(), t64.grad, rtol=1e-3, atol=1e-4)


def test_allow_tf32_is_a_validated_opt_in():
    q, k, v = qkv(dtype=torch.float32)
    assert not tqfa.problem.build_problem(q, k, v).allow_tf32
    assert tqfa.problem.build_problem(q, k, v, allow_tf32=True).allow_tf32
    with pytest.raises(TypeError, match="allow_tf32 must be a bool"):
        tqfa.attention(q, k, v, allow_tf32="yes")
    # The chunked backend has no tf32: the opt-in changes nothing there.
    assert torch.equal(tqfa.attention(q, k, v, allow_tf32=True), tqfa.attention(q, k, v))
