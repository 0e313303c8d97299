"""HuggingFace transformers integration: `attn_implementation="tqfa"`.

    import tqfa.integrations.huggingface as tqfa_hf
    tqfa_hf.register()
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="tqfa")

`attention_forward` follows transformers' own `sdpa_attention_forward` rule for rule, so a model on
"tqfa" computes what it computes on "sdpa": the same decision for `is_causal`, HF's bool or float
masks, `position_bias` folded into the mask, output [B, S, H, D]. It differs only where tqfa does
better: GQA never repeats K/V, and there is no K/V cropping (tqfa's top-left causal rule already
hides the keys SDPA crops). Sliding windows arrive inside the mask, as for SDPA; a window shorter
than the keys with no mask to carry it raises. Options tqfa cannot honour (dropout, soft-capping,
attention sinks, paged K/V, attention weights) raise instead of being dropped.

The call goes through the custom op `tqfa::attention`, so compiled and exported models keep one
opaque node per attention and choose the backend (TQFA_BACKEND, else auto) at run time.
"""

from __future__ import annotations

import torch

from . import custom_op

NAME = "tqfa"


def register() -> None:
    """Make `attn_implementation="tqfa"` available to every transformers model (idempotent).

    Since transformers 4.53 an attention implementation also needs a mask function: without one
    the model hands the attention `attention_mask=None` and padding is silently ignored. tqfa
    takes exactly SDPA's masks (bool, True = attend, or None when is_causal suffices), so it
    registers SDPA's mask function under its own name.
    """
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    except ImportError as error:
        raise ImportError(
            "tqfa.integrations.huggingface needs transformers>=4.53: pip install 'tqfa[hf]'"
        ) from error
    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


def _refuse_unsupported(module: torch.nn.Module, dropout: float, kwargs: dict) -> None:
    """Raise for every option that would change the result and that tqfa cannot compute."""
    where = type(module).__name__
    if dropout:
        raise NotImplementedError(
            f"tqfa has no attention dropout, but {where} asks for dropout={dropout} (the model is in "
            "training mode with attention_dropout > 0); call model.eval() or set "
            "config.attention_dropout = 0"
        )
    if kwargs.get("softcap") is not None:
        raise NotImplementedError(
            f"tqfa does not support logit soft-capping (softcap={kwargs['softcap']} in {where}); "
            "use attn_implementation='eager' or 'flex_attention'"
        )
    if kwargs.get("s_aux") is not None:
        raise NotImplementedError(
            f"tqfa does not support attention sinks (s_aux in {where}); use attn_implementation='eager'"
        )
    if kwargs.get("block_table") is not None:
        raise NotImplementedError(f"tqfa does not support paged K/V caches (block_table in {where})")
    if kwargs.get("output_attentions"):
        raise NotImplementedError(
            "tqfa never materialises attention weights, so output_attentions=True cannot be "
            "honoured; use attn_implementation='eager' to get them"
        )


def _check_window(module, attention_mask, key: torch.Tensor, sliding_window) -> None:
    """A sliding window reaches the attention only through the mask, as with SDPA.

    HF's SDPA mask function builds the window into the mask whenever the keys outrun it, and only
    skips the mask (None) when kv_length < window. A None mask with more keys than the window
    means some other mask function dropped it: refuse rather than attend outside the window.
    """
    if sliding_window is not None and attention_mask is None and key.shape[2] > sliding_window:
        raise ValueError(
            f"{type(module).__name__} has sliding_window={sliding_window} and {key.shape[2]} keys but "
            "received no attention mask to enforce the window; tqfa applies sliding windows only "
            "through the mask that register() installs (transformers' SDPA mask)"
        )


def _with_position_bias(position_bias, attention_mask, dtype: torch.dtype) -> torch.Tensor:
    """transformers' create_position_bias_mask without the causal part (tqfa applies is_causal
    together with a float mask; SDPA cannot, so transformers writes causality into the mask)."""
    if attention_mask is None:
        return position_bias
    if attention_mask.dtype == torch.bool:
        # finfo.min, not -inf, as transformers does: fully masked rows then average V, as on SDPA.
        return torch.where(attention_mask, position_bias, torch.finfo(dtype).min)
    return position_bias + attention_mask


def attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    position_bias: torch.Tensor | None = None,
    sliding_window: int | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """The transformers attention function for "tqfa": query [B, Hq, S, D], key/value
    [B, Hkv, Skv, D] -> ([B, S, Hq, Dv], None). Other keyword arguments the model passes along
    (position_ids, cache details) do not affect attention, as for SDPA."""
    _refuse_unsupported(module, dropout, kwargs)
    _check_window(module, attention_mask, key, sliding_window)
    q_length = query.shape[2]
    # SDPA's rule, in SDPA's order (the shape test first keeps is_causal a plain bool under
    # torch.compile with dynamic shapes): an explicit is_causal wins over the module's flag, and
    # a mask, when present, already holds the causal pattern; one query (decoding) sees every key.
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    is_causal = q_length > 1 and attention_mask is None and is_causal
    if position_bias is not None:
        attention_mask = _with_position_bias(position_bias, attention_mask, key.dtype)
    out = custom_op.attention(query, key, value, attention_mask, is_causal, scaling, bshd_out=True)
    return out.transpose(1, 2), None  # contiguous [B, S, H, D]: the op wrote it so
