"""The shared case list: every backend must agree with the oracle on every case here.

Ids read like `b2-h8:2-q113-k203-d96-causal_br-mask_keypad`. Lengths are not multiples of
anything, group sizes include 7, head dims include 24, 40, 80, 96 and 160, and the numerics are
adversarial where it matters (masked keys carrying the largest logits, logits near -1e5, HF's
finite minima, rows with no visible key).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MASKS = {
    "none": "no mask",
    "bool": "bool [B, Hq, Sq, Skv], about 30% False",
    "additive_head": "float [1, Hq, Sq, Skv] with N(0, 1) values and some -inf",
    "additive_2d": "float [Sq, Skv] with N(0, 2) values",
    "bool_2d": "bool [Sq, Skv]",
    "keypad": "HF key padding: float [B, 1, 1, Skv] holding finfo(dtype).min on padded keys",
    "keypad_bool": "key padding: bool [B, 1, 1, Skv]",
    "fully_masked": "bool [B, 1, Sq, Skv] in which every third query row sees nothing",
    "hf_min_rows": "float [B, 1, Sq, Skv], some rows entirely finfo(dtype).min (SDPA: mean of V)",
    "neg1e5": "float32 [1, 1, Sq, Skv] near -1e5 everywhere, whatever q's dtype",
    "hf_causal_padding": "HF's causal mask with left padding, bool [B, 1, Sq, Skv]; the first "
                         "quarter of the rows of all but the first batch element see nothing",
    "keypad_f64": "float64 key padding whatever q's dtype: finfo(float64).min on padded keys, the "
                  "last batch element fully padded (SDPA: mean of V; the minimum must stay finite)",
}


@dataclass(frozen=True)
class Case:
    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    head_dim: int
    v_head_dim: int | None = None  # None: same as head_dim
    causal: str | None = None  # None, "top_left", "bottom_right"
    mask: str = "none"  # a key of MASKS
    layout: str = "bhsd"  # "bshd": q/k/v are transposed views of [B, S, H, D] storage
    numerics: str = "normal"  # "normal", "hot_masked" (masked keys hold the largest logits), "large"

    @property
    def dv(self) -> int:
        return self.v_head_dim or self.head_dim

    @property
    def id(self) -> str:
        parts = [
            f"b{self.batch}-h{self.q_heads}:{self.kv_heads}-q{self.q_len}-k{self.kv_len}-d{self.head_dim}"
            + (f"v{self.v_head_dim}" if self.v_head_dim else "")
        ]
        if self.causal:
            parts.append({"top_left": "causal_tl", "bottom_right": "causal_br"}[self.causal])
        if self.mask != "none":
            parts.append(f"mask_{self.mask}")
        if self.layout != "bhsd":
            parts.append(self.layout)
        if self.numerics != "normal":
            parts.append(self.numerics)
        return "-".join(parts)

    @property
    def work(self) -> int:
        """Score elements, a proxy for how long an interpreter run takes."""
        return self.batch * self.q_heads * self.q_len * self.kv_len


C = Case
CASES = [
    C(1, 1, 1, 1, 1, 16),
    C(1, 2, 1, 2, 17, 24, causal="bottom_right"),
    C(2, 4, 2, 17, 17, 64, causal="top_left"),
    C(2, 8, 2, 113, 203, 96, causal="bottom_right", mask="keypad"),
    C(1, 7, 1, 113, 130, 40, causal="top_left"),
    C(1, 14, 2, 130, 113, 80, causal="bottom_right"),  # Sq > Skv: the first rows see nothing
    C(1, 4, 4, 130, 113, 128, causal="top_left"),
    C(1, 4, 1, 1000, 1031, 64, causal="bottom_right"),
    C(1, 2, 2, 1031, 1000, 128),
    C(2, 4, 1, 17, 1000, 160, mask="additive_head"),
    C(1, 2, 1, 113, 130, 256, mask="bool"),
    C(2, 4, 2, 113, 130, 64, mask="additive_2d", causal="top_left"),
    C(2, 2, 1, 2, 17, 80, mask="bool_2d", causal="bottom_right"),
    C(3, 8, 2, 1, 1000, 128, mask="keypad_bool", causal="bottom_right"),  # decode step
    C(2, 8, 8, 4, 1000, 64, mask="keypad"),
    C(2, 4, 2, 17, 130, 64, mask="fully_masked"),
    C(2, 7, 7, 113, 17, 24, mask="fully_masked", causal="top_left"),
    C(2, 4, 2, 17, 113, 64, mask="hf_min_rows"),
    C(2, 4, 2, 113, 130, 96, mask="keypad", causal="bottom_right", layout="bshd"),
    C(2, 8, 2, 113, 130, 64, causal="top_left", layout="bshd"),
    C(2, 4, 2, 113, 130, 64, mask="keypad", numerics="hot_masked"),
    C(1, 7, 1, 17, 130, 128, mask="keypad_bool", numerics="hot_masked", causal="bottom_right"),
    C(1, 2, 1, 17, 113, 64, mask="neg1e5"),
    C(3, 4, 2, 17, 130, 64, mask="keypad_f64"),
    C(3, 4, 2, 1, 130, 64, mask="keypad_f64", causal="bottom_right"),  # decode step
    C(1, 4, 2, 113, 113, 128, numerics="large"),
    C(1, 4, 2, 17, 113, 64, v_head_dim=32),
    C(1, 2, 1, 130, 2, 16, causal="bottom_right"),
    C(1, 2, 1, 0, 17, 16),  # empty query: empty output
    C(1, 2, 1, 17, 0, 16),  # no keys: zeros and LSE -inf
    C(2, 6, 3, 113, 113, 40, mask="bool", causal="bottom_right"),
    C(1, 8, 2, 130, 130, 160, causal="top_left", layout="bshd"),
    C(1, 2, 2, 17, 130, 256, causal="top_left", mask="additive_head"),
    # Skv - Sq = 33: with the interpreter's 32-row blocks, the last key a block sees starts a tile.
    C(3, 4, 2, 150, 183, 64, mask="hf_causal_padding"),
    C(2, 4, 1, 100, 100, 96, mask="hf_causal_padding", causal="top_left", layout="bshd"),
]


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as `t` [B, H, S, D], stored as asked."""
    if layout == "bshd":
        return t.transpose(1, 2).contiguous().transpose(1, 2)
    return t.contiguous()


def _mask(case: Case, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor | None:
    b, h, sq, skv = case.batch, case.q_heads, case.q_len, case.kv_len
    lowest = torch.finfo(dtype).min

    def rand(*shape):
        return torch.rand(shape, generator=gen)

    def padding(shape):
        # Batch element 0 is unpadded, the others lose a growing tail of keys (at least one kept).
        keep = torch.ones(b, skv, dtype=torch.bool)
        for i in range(1, b):
            keep[i, max(1, skv - (skv * i) // (b + 1)) :] = False
        return keep.view(shape)

    kind = case.mask
    if kind == "none":
        return None
    if kind == "bool":
        return rand(b, h, sq, skv) > 0.3
    if kind == "bool_2d":
        return rand(sq, skv) > 0.3
    if kind == "additive_head":
        values = torch.randn(1, h, sq, skv, generator=gen)
        return values.masked_fill(rand(1, h, sq, skv) < 0.2, float("-inf")).to(dtype)
    if kind == "additive_2d":
        return (2 * torch.randn(sq, skv, generator=gen)).to(dtype)
    if kind == "keypad":
        return torch.zeros(b, 1, 1, skv, dtype=dtype).masked_fill(~padding((b, 1, 1, skv)), lowest)
    if kind == "keypad_bool":
        return padding((b, 1, 1, skv))
    if kind == "fully_masked":
        keep = rand(b, 1, sq, skv) > 0.3
        keep[:, :, ::3] = False
        return keep
    if kind == "hf_min_rows":
        values = torch.zeros(b, 1, sq, skv, dtype=dtype).masked_fill(rand(b, 1, sq, skv) < 0.3, lowest)
        values[:, :, ::4] = lowest
        return values
    if kind == "hf_causal_padding":
        # HF's causal LM mask with left padding, [B, 1, Sq, Skv] bool: query i (aligned to the
        # last key) sees keys up to i + Skv - Sq that are not padding; batch element i pads a
        # growing head of keys, and its first queries (the padding itself) see no key at all.
        keep = torch.ones(b, skv, dtype=torch.bool)
        for i in range(1, b):
            keep[i, : (skv * i) // (b + 1)] = False
        causal = torch.ones(sq, skv, dtype=torch.bool).tril(skv - sq)
        rows = causal[None] & keep[:, None, :]
        rows[1:, : sq // 4] = False
        return rows[:, None]
    if kind == "keypad_f64":
        keep = padding((b, 1, 1, skv))
        keep[-1] = False
        lowest64 = torch.finfo(torch.float64).min
        return torch.zeros(b, 1, 1, skv, dtype=torch.float64).masked_fill(~keep, lowest64)
    if kind == "neg1e5":
        return -1e5 + torch.randn(1, 1, sq, skv, generator=gen)  # float32: fp16 cannot hold -1e5
    raise ValueError(f"unknown mask kind {kind!r}")


def make_inputs(case: Case, dtype: torch.dtype, seed: int = 0, device: str = "cpu"):
    """Fresh random (q, k, v, mask) for `case`; masks are never materialised beyond their shape."""
    gen = torch.Generator().manual_seed(seed)
    b, sq, skv = case.batch, case.q_len, case.kv_len
    q = torch.randn(b, case.q_heads, sq, case.head_dim, generator=gen)
    k = torch.randn(b, case.kv_heads, skv, case.head_dim, generator=gen)
    v = torch.randn(b, case.kv_heads, skv, case.dv, generator=gen)
    mask = _mask(case, dtype, gen)
    if case.numerics == "large":
        q, k = q * 6, k * 6  # peaked softmax; fp16 products stay far below 65504
    if case.numerics == "hot_masked":
        # Every query shares a direction u and the masked keys are 4u: they carry logits near
        # 4*sqrt(D) against about 1 for the others, so any leak of a masked key shows at once.
        u = torch.randn(case.head_dim, generator=gen)
        u = u / u.norm() * case.head_dim**0.5
        q = q + u
        hidden = ~mask if mask.dtype == torch.bool else mask < -1e30
        k = torch.where(hidden.reshape(b, 1, skv, 1), 4 * u, k)
    tensors = [_layout(t.to(dtype), case.layout) for t in (q, k, v)]
    if mask is not None:
        mask = mask.to(device)
    return (*[t.to(device) for t in tensors], mask)
