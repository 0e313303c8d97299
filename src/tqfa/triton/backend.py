"""The triton backend: the FlashAttention-2 kernel as a Backend value.

Importing this module does not import triton: `supports` imports the launcher on first use and
reports a missing or broken triton as a reason, so `import tqfa` works without triton.
"""

from __future__ import annotations

import functools
import os

import torch

from ..backend import Backend, Reason, Unsupported
from ..device import probe
from ..problem import Problem
from .decode_config import select_decode_config
from .tuning import INTERPRETER, nvidia_capability, select_config

MAX_HEAD_DIM = 256


@functools.cache
def _launcher():
    """The launch module, or the reason it cannot be imported."""
    try:
        from . import launch
    except ImportError as exc:  # triton missing, or numpy missing under TRITON_INTERPRET
        return f"triton is not usable: {exc}"
    return launch


@functools.cache
def _decode_launcher():
    """The decode launch module (once the launch module imported: triton is usable)."""
    from . import decode_launch

    return decode_launch


def _interpret_requested() -> bool:
    try:
        from triton import knobs
    except ImportError:  # triton before 3.4 read the variable directly
        return os.environ.get("TRITON_INTERPRET", "0") == "1"
    return bool(knobs.runtime.interpret)


def _environment_reason(problem: Problem) -> str | None:
    launch = _launcher()
    if isinstance(launch, str):
        return launch
    if launch.INTERPRETED:
        if problem.dtype == torch.bfloat16:
            return "bf16 dots are wrong in the Triton interpreter (TRITON_INTERPRET=1)"
        return None
    if problem.device.type != "cuda":
        if _interpret_requested():
            return (
                "TRITON_INTERPRET=1 was set after tqfa's Triton kernel had been compiled for the "
                "GPU; set it before the first call that uses the triton backend"
            )
        return f"tensors are on {problem.device.type} and TRITON_INTERPRET is not set"
    target = probe(problem.device)
    if target.vendor == "nvidia" and nvidia_capability(target) < 80:
        return f"the kernel needs an NVIDIA GPU of compute capability 8.0 or newer, got {target.arch}"
    return None


def _feature_reason(problem: Problem) -> Unsupported | None:
    if problem.dtype == torch.float64:
        return Unsupported("float64 is not supported by the triton kernel")
    if problem.v_head_dim != problem.head_dim:
        return Unsupported(
            f"the triton kernel needs Dv == D, got D={problem.head_dim}, Dv={problem.v_head_dim}"
        )
    if problem.head_dim > MAX_HEAD_DIM:
        return Unsupported(
            f"the triton kernel supports head dims up to {MAX_HEAD_DIM}, got {problem.head_dim}"
        )
    return None


def supports(problem: Problem) -> Reason:
    # Feature gaps first: they hold on every machine, so the reason does not depend on where
    # the call happens to run.
    return _feature_reason(problem) or _environment_reason(problem)


def forward(problem: Problem) -> tuple[torch.Tensor, torch.Tensor | None]:
    q = problem.q
    # Same memory layout as q (a [B, S, H, D] view gives a [B, S, H, D]-strided output).
    out = torch.empty_like(q)
    lse = torch.empty((problem.batch, problem.q_heads, problem.q_len), dtype=torch.float32,
                      device=q.device)
    if problem.kv_len == 0:  # no key at all: every row is a row with no visible key
        out.zero_()
        lse.fill_(float("-inf"))
    elif out.numel() > 0:
        launch = _launcher()
        target = INTERPRETER if launch.INTERPRETED else probe(problem.device)
        decode = select_decode_config(problem, target)
        if decode is not None:  # short queries: split-KV, all q heads of a kv head in one tile
            _decode_launcher().decode_forward(problem, out, lse, decode, target.multiprocessors)
        else:
            launch.attention_forward(problem, out, lse, select_config(problem, target),
                                     problem.allow_tf32)
    return out, (lse if problem.return_lse else None)


BACKEND = Backend(name="triton", supports=supports, forward=forward, differentiable=False)
