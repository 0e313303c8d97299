"""tqfa.triton_flash_attention keeps the semantics of turboquant-vllm's original entry point."""

from __future__ import annotations

import torch

import tqfa


def qkv(sq, skv=11, dtype=torch.float64):
    g = torch.Generator().manual_seed(sq)
    return [torch.randn(2, h, s, 16, generator=g, dtype=dtype) for h, s in ((4, sq), (2, skv), (2, skv))]


def test_causal_is_top_left():
    q, k, v = qkv(7)
    got = tqfa.triton_flash_attention(q, k, v, is_causal=True)
    assert torch.equal(got, tqfa.attention(q, k, v, is_causal=True, causal_alignment="top_left"))


def test_a_single_query_token_is_never_causally_masked():
    q, k, v = qkv(1)
    assert torch.equal(tqfa.triton_flash_attention(q, k, v, is_causal=True), tqfa.attention(q, k, v))


def test_scale_and_hf_mask_pass_through():
    q, k, v = qkv(5)
    mask = torch.zeros(2, 1, 5, 11, dtype=torch.float64)
    mask[1, :, :, 7:] = torch.finfo(torch.float64).min
    got = tqfa.triton_flash_attention(q, k, v, sm_scale=0.3, attention_mask=mask)
    assert torch.equal(got, tqfa.attention(q, k, v, mask, scale=0.3))
