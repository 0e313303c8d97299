"""`triton_flash_attention`, the entry point turboquant-vllm shipped, on top of tqfa.attention.

Existing callers switch by changing one import. The original's semantics are kept: causal is
top-left aligned, and a single query token (a decode step) is never causally masked, since it is
the newest token and sees every key.
"""

from __future__ import annotations

import torch


def triton_flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sm_scale: float | None = None,
    is_causal: bool = False,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """q [B, Hq, Sq, D], k/v [B, Hkv, Skv, D]; attention_mask bool or additive (HF style),
    broadcastable to [B, Hq, Sq, Skv]. Returns [B, Hq, Sq, D] in q's dtype."""
    from .. import attention  # tqfa imports this module: import the API at call time

    causal = bool(is_causal) and q.shape[2] > 1
    return attention(q, k, v, attn_mask=attention_mask, is_causal=causal, scale=sm_scale)
