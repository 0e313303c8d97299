"""The frozen description of one attention call: the ONLY place user input is checked.

Everything downstream (dispatch, backends, kernels) receives a `Problem` and trusts it. Every
malformed call is rejected here with a ValueError / TypeError / NotImplementedError whose message
names the argument and the real shapes or dtypes.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

CAUSAL_ALIGNMENTS = ("top_left", "bottom_right")
INPUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LAYOUTS = {"q": "[B, Hq, Sq, D]", "k": "[B, Hkv, Skv, D]", "v": "[B, Hkv, Skv, Dv]"}


@dataclass(frozen=True)
class Problem:
    """One validated call.

    `mask` is None or a view expanded to [B, Hq, Sq, Skv] (broadcast dims have stride 0, nothing is
    materialised); bool means True = attend, a float mask is added to the scaled scores.
    `causal` is None, "top_left" or "bottom_right"; key j is visible to query i iff
    j <= i + causal_offset.
    """

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    mask: torch.Tensor | None
    causal: str | None
    scale: float
    return_lse: bool
    requires_grad: bool
    allow_tf32: bool = False  # fp32 inputs: tf32 dot products where a backend has them (opt-in)

    @property
    def batch(self) -> int:
        return self.q.shape[0]

    @property
    def q_heads(self) -> int:
        return self.q.shape[1]

    @property
    def kv_heads(self) -> int:
        return self.k.shape[1]

    @property
    def group(self) -> int:
        """q heads per kv head; q head h reads kv head h // group."""
        return self.q.shape[1] // self.k.shape[1]

    @property
    def q_len(self) -> int:
        return self.q.shape[2]

    @property
    def kv_len(self) -> int:
        return self.k.shape[2]

    @property
    def head_dim(self) -> int:
        return self.q.shape[3]

    @property
    def v_head_dim(self) -> int:
        return self.v.shape[3]

    @property
    def dtype(self) -> torch.dtype:
        return self.q.dtype

    @property
    def device(self) -> torch.device:
        return self.q.device

    @property
    def causal_offset(self) -> int:
        """Diagonal shift: 0 for top_left (SDPA), Skv - Sq for bottom_right (FlashAttention)."""
        return self.kv_len - self.q_len if self.causal == "bottom_right" else 0

    @property
    def lse_dtype(self) -> torch.dtype:
        """float32, except for float64 inputs, whose finite minima (-1.8e308) float32 cannot hold."""
        return torch.float64 if self.q.dtype == torch.float64 else torch.float32

    @property
    def mask_is_bool(self) -> bool:
        return self.mask is not None and self.mask.dtype == torch.bool

    def describe(self) -> str:
        """A short readable id of the call, for logs and error messages."""
        parts = [
            f"b{self.batch}-h{self.q_heads}:{self.kv_heads}-q{self.q_len}-k{self.kv_len}"
            f"-d{self.head_dim}"
            + (f"v{self.v_head_dim}" if self.v_head_dim != self.head_dim else ""),
            str(self.dtype).removeprefix("torch."),
        ]
        if self.causal:
            parts.append(f"causal_{self.causal}")
        if self.mask is not None:
            parts.append("mask_" + str(self.mask.dtype).removeprefix("torch."))
        return "-".join(parts)


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def _check_qkv(q, k, v) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D {LAYOUTS[name]}, got shape {_shape(t)}")
        if t.dtype not in INPUT_DTYPES:
            raise TypeError(
                f"{name} has dtype {t.dtype}; supported dtypes are float16, bfloat16, float32, float64"
            )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k and v must be on one device, got q {q.device}, k {k.device}, v {v.device}")
    (b, hq, _, d), (bk, hk, sk, dk), (bv, hv, sv, dv) = q.shape, k.shape, v.shape
    if b == bk == bv and hk == hv and sk == sv and d == dk and hq and hk and d and dv and hq % hk == 0:
        return  # the common case, without building the messages below
    shapes = f"q {_shape(q)}, k {_shape(k)}, v {_shape(v)}"
    if not (b == bk == bv):
        raise ValueError(f"batch sizes differ: {shapes}")
    if hk != hv:
        raise ValueError(f"k and v must have the same number of heads: {shapes}")
    if sk != sv:
        raise ValueError(f"k and v must have the same sequence length: {shapes}")
    if d != dk:
        raise ValueError(f"q and k must have the same head dim: {shapes}")
    if hq == 0 or hk == 0:
        raise ValueError(f"the number of heads must be positive: {shapes}")
    if d == 0 or dv == 0:
        raise ValueError(f"head dims must be positive: {shapes}")
    raise ValueError(f"q heads ({hq}) must be a multiple of kv heads ({hk}): {shapes}")


def _causal_from_bias(attn_mask, q, k, is_causal: bool, causal_alignment: str) -> str:
    """torch's CausalBias (causal_upper_left / causal_lower_right) -> our causal alignment."""
    from torch.nn.attention.bias import CausalVariant

    if is_causal:
        raise ValueError("attn_mask is a CausalBias and is_causal=True; pass one or the other")
    if (attn_mask.seq_len_q, attn_mask.seq_len_kv) != (q.shape[2], k.shape[2]):
        raise ValueError(
            f"attn_mask CausalBias is for Sq={attn_mask.seq_len_q}, Skv={attn_mask.seq_len_kv} but "
            f"q {_shape(q)} and k {_shape(k)} have Sq={q.shape[2]}, Skv={k.shape[2]}"
        )
    alignment = "bottom_right" if attn_mask.variant == CausalVariant.LOWER_RIGHT else "top_left"
    if causal_alignment != "top_left" and causal_alignment != alignment:
        raise ValueError(
            f"causal_alignment={causal_alignment!r} contradicts attn_mask, a {alignment} CausalBias"
        )
    return alignment


def _expanded_mask(attn_mask: torch.Tensor, q, k) -> torch.Tensor:
    """Check that the mask broadcasts to [B, Hq, Sq, Skv] and return it as a stride-0 view."""
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    names = ("B", "Hq", "Sq", "Skv")
    if attn_mask.dtype != torch.bool and not attn_mask.is_floating_point():
        raise TypeError(f"attn_mask must be bool or floating point, got dtype {attn_mask.dtype}")
    if attn_mask.device != q.device:
        raise ValueError(f"attn_mask is on {attn_mask.device} but q is on {q.device}")
    if not 0 < attn_mask.dim() <= 4:
        raise ValueError(
            f"attn_mask must have 1 to 4 dims broadcastable to [B, Hq, Sq, Skv] = {list(target)}, "
            f"got shape {_shape(attn_mask)}"
        )
    mask4 = attn_mask.reshape((1,) * (4 - attn_mask.dim()) + tuple(attn_mask.shape))
    for dim, (size, want) in enumerate(zip(mask4.shape, target)):
        if size in (1, want):
            continue
        hint = ""
        if dim == 1 and size == k.shape[1]:
            hint = f" (it has one entry per kv head, {size}; give one per q head, {want}, or 1)"
        raise ValueError(
            f"attn_mask of shape {_shape(attn_mask)} does not broadcast to [B, Hq, Sq, Skv] = "
            f"{list(target)}: dim {names[dim]} is {size}{hint}"
        )
    return mask4.expand(target)


def _check_scale(scale, head_dim: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, torch.Tensor) and scale.numel() == 1 and scale.is_floating_point():
        scale = scale.item()
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number or None, got {type(scale).__name__}")
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    return scale


def build_problem(
    q,
    k,
    v,
    attn_mask=None,
    is_causal=False,
    scale=None,
    *,
    causal_alignment="top_left",
    return_lse=False,
    allow_tf32=False,
) -> Problem:
    """Validate one call of `tqfa.attention` and describe it."""
    _check_qkv(q, k, v)
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be a bool, got {type(is_causal).__name__}")
    if not isinstance(return_lse, bool):
        raise TypeError(f"return_lse must be a bool, got {type(return_lse).__name__}")
    if not isinstance(allow_tf32, bool):
        raise TypeError(f"allow_tf32 must be a bool, got {type(allow_tf32).__name__}")
    if causal_alignment not in CAUSAL_ALIGNMENTS:
        raise ValueError(
            f"causal_alignment must be one of {CAUSAL_ALIGNMENTS}, got {causal_alignment!r}"
        )
    causal = causal_alignment if is_causal else None
    mask = None
    if attn_mask is not None:
        from torch.nn.attention.bias import CausalBias

        if isinstance(attn_mask, CausalBias):
            causal = _causal_from_bias(attn_mask, q, k, is_causal, causal_alignment)
        elif isinstance(attn_mask, torch.Tensor):
            mask = _expanded_mask(attn_mask, q, k)
        else:
            raise TypeError(
                f"attn_mask must be a torch.Tensor, a CausalBias or None, got {type(attn_mask).__name__}"
            )
    inputs = (q, k, v) if mask is None else (q, k, v, mask)
    requires_grad = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
    return Problem(
        q=q,
        k=k,
        v=v,
        mask=mask,
        causal=causal,
        scale=_check_scale(scale, q.shape[3]),
        return_lse=return_lse,
        requires_grad=requires_grad,
        allow_tf32=allow_tf32,
    )
