"""`python -m tqfa info` and `python -m tqfa check`: what would run here, and does it agree."""

from __future__ import annotations

import functools
import os
import platform
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import __version__, dispatch
from .api import attention
from .device import probe
from .problem import build_problem


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _triton_version() -> str:
    try:
        import triton
    except ImportError:
        return "not installed"
    return triton.__version__


def info(device: torch.device) -> str:
    target = probe(device)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    q = torch.randn(1, 8, 128, 64, device=device, dtype=dtype)
    kv = torch.randn(1, 2, 128, 64, device=device, dtype=dtype)
    problem = build_problem(q, kv, kv, is_causal=True)
    lines = [
        f"tqfa {__version__}, torch {torch.__version__}, triton {_triton_version()}, "
        f"python {platform.python_version()}",
        f"device: {device} = {target.name} (vendor {target.vendor}, arch {target.arch}, "
        f"{target.multiprocessors} units, {target.shared_memory} B shared memory per block)",
        f"TQFA_BACKEND={os.environ.get(dispatch.ENV_VAR, '')!r} "
        f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '')!r}",
        f"for {problem.describe()}:",
    ]
    for name, reason in dispatch.availability(problem).items():
        lines.append(f"  {name:8s} {'available' if reason is None else reason}")
    lines.append(f"  auto -> {dispatch.choose(problem).name}")
    return "\n".join(lines)


def _meta_problem(shape, dtype: torch.dtype, causal: bool, mask: bool):
    b, hq, hkv, sq, skv, d = shape
    q = torch.empty(b, hq, sq, d, dtype=dtype, device="meta")
    k = torch.empty(b, hkv, skv, d, dtype=dtype, device="meta")
    attn_mask = torch.empty(b, 1, sq, skv, dtype=dtype, device="meta") if mask else None
    return build_problem(q, k, k, attn_mask, is_causal=causal)


def tuning_info(device: torch.device, arch: str | None = None, shape=None, dtype: str = "bf16",
                causal: bool = False, mask: bool = False) -> str:
    """The triton target family of `device` (or of `arch`) and the configuration `shape` gets."""
    from .triton import tuning

    if arch is not None:
        target = tuning.target_for_arch(arch)
    elif device.type == "cuda":
        target = probe(device)
    elif os.environ.get("TRITON_INTERPRET") == "1":
        target = tuning.INTERPRETER
    else:
        return f"triton target: none for {device.type} (TRITON_INTERPRET is not set; --arch names one)"
    try:
        family = tuning.family_of(target)
        override = tuning.override_config(target)
        autotune = tuning.autotune_requested()
    except ValueError as exc:
        return f"triton target: {exc}"
    generic = "" if family.claims else " (generic: no table of its own)"
    lines = [f"triton target: {target.arch} -> tuning family {family.name}{generic}"]
    if shape is not None:
        torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
        problem = _meta_problem(shape, torch_dtype, causal, mask)
        lines.append(f"  {problem.describe()}: default {tuning.default_config(problem, target)}")
        if override is not None:
            lines.append(f"  {tuning.CONFIG_ENV} overrides it: {override}")
        elif autotune and target.vendor != "interpreter":
            names = ", ".join(map(str, tuning.candidates(problem, target)))
            lines.append(f"  {tuning.AUTOTUNE_ENV}=1 times these at the first call of its bucket: {names}")
    return "\n".join(lines)


@dataclass(frozen=True)
class CheckProblem:
    name: str
    shape: tuple[int, int, int, int, int, int]  # B, Hq, Hkv, Sq, Skv, D
    causal: str | None = None
    padding: bool = False  # HF-style additive key padding [B, 1, 1, Skv]


CHECKS = [
    CheckProblem("prefill causal", (2, 8, 2, 512, 512, 64), causal="top_left"),
    CheckProblem("prefill gqa7 d40", (1, 7, 1, 1000, 1000, 40)),
    CheckProblem("chunk + cache, hf mask", (2, 4, 4, 113, 1203, 96), causal="bottom_right", padding=True),
    CheckProblem("decode, padded batch", (4, 16, 4, 1, 4096, 128), causal="bottom_right", padding=True),
]


def _inputs(check: CheckProblem, device, dtype):
    b, hq, hkv, sq, skv, d = check.shape
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(b, h, s, d, device=device, dtype=dtype, generator=gen)
               for h, s in ((hq, sq), (hkv, skv), (hkv, skv)))
    mask = None
    if check.padding:
        mask = torch.zeros(b, 1, 1, skv, device=device, dtype=dtype)
        for i in range(1, b):
            mask[i, ..., skv - skv * i // (2 * b):] = torch.finfo(dtype).min
    return q, k, v, mask


def _sdpa(q, k, v, mask, causal):
    """SDPA with tqfa's causal rules folded into the mask (SDPA takes one or the other)."""
    sq, skv = q.shape[2], k.shape[2]
    if causal is not None:
        shift = skv - sq if causal == "bottom_right" else 0
        visible = torch.ones(sq, skv, dtype=torch.bool, device=q.device).tril(shift)
        lowest = torch.finfo(q.dtype).min
        causal_mask = torch.zeros(sq, skv, device=q.device, dtype=q.dtype).masked_fill(~visible, lowest)
        mask = causal_mask if mask is None else mask + causal_mask
    return F.scaled_dot_product_attention(q, k, v, mask, enable_gqa=True)


def _time(fn, device) -> float:
    """Median seconds of a few calls after one warm-up."""
    fn()
    times = []
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def check(device: torch.device) -> tuple[str, bool]:
    """Every available backend on CHECKS against SDPA in float64; returns (table, all agree)."""
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    tolerance = 1e-4 if dtype == torch.float32 else 2e-2
    rows = [f"{'problem':24s} {'backend':8s} {'max err':>9s} {'ms':>8s} {'sdpa ms':>8s} {'speed':>6s}"]
    ok = True
    for item in CHECKS:
        q, k, v, mask = _inputs(item, device, dtype)
        as64 = [t.double() if t is not None else None for t in (q, k, v, mask)]
        expected = _sdpa(*as64, item.causal)
        kwargs = dict(attn_mask=mask, is_causal=item.causal is not None,
                      causal_alignment=item.causal or "top_left")
        sdpa_s = _time(functools.partial(_sdpa, q, k, v, mask, item.causal), device)
        for name, reason in dispatch.availability(build_problem(q, k, v, **kwargs)).items():
            if reason is not None:
                rows.append(f"{item.name:24s} {name:8s} unavailable: {reason}")
                continue
            out = attention(q, k, v, backend=name, **kwargs)
            err = (out.double() - expected).abs().max().item()
            ok &= err <= tolerance
            seconds = _time(functools.partial(attention, q, k, v, backend=name, **kwargs), device)
            rows.append(f"{item.name:24s} {name:8s} {err:9.2e} {seconds * 1e3:8.2f} "
                        f"{sdpa_s * 1e3:8.2f} {sdpa_s / seconds:5.2f}x")
    rows.append(f"{dtype} on {device}; errors against SDPA in float64 (tolerance {tolerance:g}); "
                "speed = SDPA time / backend time")
    return "\n".join(rows), ok
