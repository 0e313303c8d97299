"""Whether the copy engine (TMA) can read a [B, H, S, D] tensor, and the strides of its
descriptor: used by the launchers (kernel.py's descriptors, gluon_sm90.py's kernel) and by the
tuning tags (a call the Gluon kernel can serve)."""

from __future__ import annotations

import functools

import torch


def tma_strides(t: torch.Tensor) -> tuple[int, ...] | None:
    """Strides for a [B, H, S, D] tensor descriptor, or None when the copy engine cannot read `t`
    (it needs a 16-byte aligned base, unit stride on D and 16-byte multiples elsewhere)."""
    if t.data_ptr() % 16:
        return None
    return _tma_layout(t.shape, t.stride(), t.element_size())


@functools.lru_cache(maxsize=1024)  # runs several times per call; a handful of layouts recur
def _tma_layout(shape: tuple[int, ...], strides: tuple[int, ...], element_size: int
                ) -> tuple[int, ...] | None:
    """tma_strides for an aligned base. A size-1 dim's stride is never used: it gets the extent
    of the next dim, which is aligned if that is."""
    strides = list(strides)
    for i in (2, 1, 0):
        if shape[i] == 1:
            strides[i] = shape[i + 1] * strides[i + 1]
    if strides[3] != 1 or any(s * element_size % 16 or s <= 0 for s in strides[:3]):
        return None
    return tuple(strides)
