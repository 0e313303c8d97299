"""Every malformed call is refused before any backend runs, with a message naming what is wrong."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention.bias import causal_lower_right, causal_upper_left

import tqfa


def qkv(b=2, hq=4, hkv=2, sq=5, skv=7, d=8, dv=None, dtype=torch.float32):
    return (
        torch.randn(b, hq, sq, d, dtype=dtype),
        torch.randn(b, hkv, skv, d, dtype=dtype),
        torch.randn(b, hkv, skv, dv or d, dtype=dtype),
    )


q, k, v = qkv()

BAD_CALLS = {
    "q not a tensor": (TypeError, r"q must be a torch.Tensor, got list", lambda: tqfa.attention([1], k, v)),
    "k wrong rank": (ValueError, r"k must be 4-D .*\(2, 7, 8\)", lambda: tqfa.attention(q, k[0], v)),
    "v wrong rank": (ValueError, r"v must be 4-D", lambda: tqfa.attention(q, k, v[None])),
    "int q": (TypeError, r"q has dtype torch.int64", lambda: tqfa.attention(q.long(), k, v)),
    "bool q": (TypeError, r"q has dtype torch.bool", lambda: tqfa.attention(q > 0, k, v)),
    "mixed dtypes": (TypeError, r"one dtype.*q torch.float16, k torch.float32", lambda: tqfa.attention(q.half(), k, v)),
    "heads not divisible": (ValueError, r"q heads \(3\) must be a multiple of kv heads \(2\)", lambda: tqfa.attention(q[:, :3], k, v)),
    "zero heads": (ValueError, r"number of heads must be positive", lambda: tqfa.attention(q[:, :0], k[:, :0], v[:, :0])),
    "zero head dim": (ValueError, r"head dims must be positive", lambda: tqfa.attention(q[..., :0], k[..., :0], v)),
    "batch mismatch": (ValueError, r"batch sizes differ: q \(2, 4, 5, 8\), k \(1, 2, 7, 8\)", lambda: tqfa.attention(q, k[:1], v)),
    "kv length mismatch": (ValueError, r"same sequence length.*v \(2, 2, 6, 8\)", lambda: tqfa.attention(q, k, v[:, :, :6])),
    "kv heads mismatch": (ValueError, r"k and v must have the same number of heads", lambda: tqfa.attention(q, k, v[:, :1])),
    "head dim mismatch": (ValueError, r"q and k must have the same head dim", lambda: tqfa.attention(q, k[..., :4], v)),
    "mask int": (TypeError, r"attn_mask must be bool or floating point, got dtype torch.int64", lambda: tqfa.attention(q, k, v, torch.ones(5, 7, dtype=torch.long))),
    "mask shape": (ValueError, r"attn_mask of shape \(5, 6\) does not broadcast to \[B, Hq, Sq, Skv\] = \[2, 4, 5, 7\]: dim Skv is 6", lambda: tqfa.attention(q, k, v, torch.ones(5, 6, dtype=torch.bool))),
    "mask per kv head": (ValueError, r"one entry per kv head, 2; give one per q head, 4", lambda: tqfa.attention(q, k, v, torch.ones(2, 2, 5, 7, dtype=torch.bool))),
    "mask rank 5": (ValueError, r"attn_mask must have 1 to 4 dims", lambda: tqfa.attention(q, k, v, torch.ones(1, 2, 4, 5, 7, dtype=torch.bool))),
    "mask type": (TypeError, r"attn_mask must be a torch.Tensor, a CausalBias or None, got str", lambda: tqfa.attention(q, k, v, "causal")),
    "scale string": (TypeError, r"scale must be a real number or None, got str", lambda: tqfa.attention(q, k, v, scale="0.1")),
    "scale nan": (ValueError, r"scale must be finite, got nan", lambda: tqfa.attention(q, k, v, scale=float("nan"))),
    "scale bool": (TypeError, r"scale must be a real number", lambda: tqfa.attention(q, k, v, scale=True)),
    "is_causal int": (TypeError, r"is_causal must be a bool, got int", lambda: tqfa.attention(q, k, v, is_causal=1)),
    "alignment": (ValueError, r"causal_alignment must be one of .*'top_left', 'bottom_right'.*got 'bottom'", lambda: tqfa.attention(q, k, v, is_causal=True, causal_alignment="bottom")),
    "return_lse": (TypeError, r"return_lse must be a bool", lambda: tqfa.attention(q, k, v, return_lse="yes")),
    "bias and is_causal": (ValueError, r"CausalBias and is_causal=True", lambda: tqfa.attention(q, k, v, causal_lower_right(5, 7), is_causal=True)),
    "bias lengths": (ValueError, r"CausalBias is for Sq=5, Skv=9", lambda: tqfa.attention(q, k, v, causal_upper_left(5, 9))),
    "bias alignment": (ValueError, r"contradicts attn_mask", lambda: tqfa.attention(q, k, v, causal_upper_left(5, 7), causal_alignment="bottom_right")),
    "backend name": (ValueError, r"backend='cudnn' is not a tqfa backend; valid names: 'auto', 'triton', 'chunked'", lambda: tqfa.attention(q, k, v, backend="cudnn")),
    "backend type": (TypeError, r"backend must be a str or None", lambda: tqfa.attention(q, k, v, backend=1)),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_bad_input_is_a_clear_error(name):
    error, message, call = BAD_CALLS[name]
    with pytest.raises(error, match=message):
        call()


def test_mixed_devices_are_refused():
    meta_k = k.to("meta")
    with pytest.raises(ValueError, match="one device"):
        tqfa.attention(q, meta_k, v.to("meta"))
    with pytest.raises(ValueError, match="attn_mask is on meta but q is on cpu"):
        tqfa.attention(q, k, v, torch.ones(5, 7, dtype=torch.bool, device="meta"))


def test_empty_query_gives_empty_output():
    q0, k0, v0 = qkv(sq=0, dv=3)
    out, lse = tqfa.attention(q0, k0, v0, return_lse=True)
    assert out.shape == (2, 4, 0, 3) and lse.shape == (2, 4, 0)


def test_no_keys_give_zeros_and_lse_minus_inf():
    q0, k0, v0 = qkv(skv=0)
    out, lse = tqfa.attention(q0, k0, v0, return_lse=True)
    assert out.shape == (2, 4, 5, 8) and torch.equal(out, torch.zeros_like(out))
    assert torch.isneginf(lse).all()


def test_inputs_are_not_modified():
    q1, k1, v1 = qkv()
    mask = torch.randn(1, 4, 5, 7)
    before = [t.clone() for t in (q1, k1, v1, mask)]
    tqfa.attention(q1, k1, v1, mask, is_causal=True, return_lse=True)
    for t, saved in zip((q1, k1, v1, mask), before):
        assert torch.equal(t, saved)


def test_scale_accepts_numbers_and_a_one_element_tensor():
    a = tqfa.attention(q, k, v, scale=0.25)
    b = tqfa.attention(q, k, v, scale=torch.tensor(0.25))
    assert torch.equal(a, b)
