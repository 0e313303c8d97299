"""The decode kernels' prepared launches (decode_launch: split_key, merge_key): calls with equal
keys must differ in their tensors only, or a prepared launch would run one call's arguments with
another call's tensors; on a GPU the prepared launches write what Triton's own launch writes."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os

import pytest
import torch
from triton.runtime.jit import JITFunction

from tqfa.problem import build_problem
from tqfa.triton import decode_launch, fast_launch
from tqfa.triton.decode_config import DecodeConfig
from tqfa.triton.decode_kernel import decode_merge_kernel, decode_split_kernel

DEVICE = os.environ.get("TQFA_TEST_DEVICE", "cpu")
CONFIG = DecodeConfig(block_m=16, block_n=32, num_warps=4, num_stages=2, programs_per_sm=2,
                      min_split_tiles=1, max_q_len=16)


def _launcher(kernel) -> fast_launch.Launcher:
    """A Launcher of the kernel as a JITFunction (also under TRITON_INTERPRET=1), for its key."""
    return fast_launch.Launcher(kernel if isinstance(kernel, JITFunction)
                                else JITFunction(kernel.fn, **kernel.kwargs))


def _problem(sq=1, skv=300, hq=8, hkv=2, d=64, dtype=torch.float16, seed=0, layout="bhsd",
             offset=0, mask=None, causal="bottom_right"):
    """A decode call on DEVICE; offset shifts q's storage (offset 1: q not 16-byte aligned)."""
    gen = torch.Generator().manual_seed(seed * 1009 + sq * 31 + skv)

    def t(h, s, shift=0):
        flat = torch.randn(shift + 2 * h * s * d, generator=gen).to(dtype).to(DEVICE)[shift:]
        return flat.view(2, s, h, d).transpose(1, 2) if layout == "bshd" else flat.view(2, h, s, d)

    m = None
    if mask == "padding":
        m = torch.ones(2, 1, 1, skv, dtype=torch.bool, device=DEVICE)
        m[0, ..., skv // 3:] = False
    elif mask == "additive":
        m = torch.zeros(2, hq, sq, skv, dtype=dtype, device=DEVICE)
    return build_problem(t(hq, sq, offset), t(hkv, skv), t(hkv, skv), m, is_causal=bool(causal),
                         causal_alignment=causal or "top_left")


def _calls(problem, config=CONFIG, num_splits=None):
    """(split key, split grid and arguments, merge key and grid and arguments or None)."""
    plan = decode_launch.plan_splits(problem, config, 8, num_splits)
    out = torch.empty_like(problem.q)
    lse = torch.empty(problem.q.shape[:3], dtype=torch.float32, device=problem.q.device)
    merge = None
    if plan.num_splits > 1:
        parts = out.numel() // out.shape[3] * plan.num_splits
        work = torch.empty(parts * (out.shape[3] + 2), dtype=torch.float32, device=out.device)
        tensors = dict(Part=work, Stats=work[parts * out.shape[3]:], Out=out, Lse=lse)
        merge = decode_launch.merge_key(tensors, plan), decode_launch.merge_arguments(tensors, plan)
        out, lse = work, tensors["Stats"]
    tensors = decode_launch.split_tensors(problem, out, lse)
    split = ((plan.programs(problem),), decode_launch.split_arguments(problem, out, lse, plan, config))
    return decode_launch.split_key(problem, tensors, plan, config), split, merge


def _without_tensors(kwargs: dict) -> dict:
    return {name: value.dtype if isinstance(value, torch.Tensor) else value
            for name, value in kwargs.items()}


SPECS = {
    "base": {}, "4 queries": dict(sq=4), "other length": dict(skv=301), "long": dict(skv=5000),
    "group 4": dict(hq=8, hkv=2, sq=2), "group 8": dict(hq=16, hkv=2), "d128": dict(d=128),
    "d40": dict(d=40), "bf16": dict(dtype=torch.bfloat16), "fp32": dict(dtype=torch.float32),
    "bshd": dict(layout="bshd"), "misaligned q": dict(offset=1), "key padding": dict(mask="padding"),
    "additive mask": dict(mask="additive", sq=2), "top-left": dict(causal="top_left", sq=2),
    "not causal": dict(causal=None),
}


def test_equal_decode_keys_mean_equal_arguments(monkeypatch):
    if DEVICE != "cuda":  # the launcher's key names the current CUDA device
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    calls = {}
    for seed in (0, 1):
        for name, spec in SPECS.items():
            calls[name, seed] = _calls(_problem(**spec, seed=seed))
    base = _problem()
    calls["scale", 0] = _calls(dataclasses.replace(base, scale=0.3))
    calls["tf32", 0] = _calls(dataclasses.replace(_problem(dtype=torch.float32), allow_tf32=True))
    calls["config", 0] = _calls(base, dataclasses.replace(CONFIG, block_n=16))
    for splits in (1, 2, 3):
        calls[f"{splits} splits", 0] = _calls(base, num_splits=splits)
    launchers = _launcher(decode_split_kernel), _launcher(decode_merge_kernel)
    for (a, call_a), (b, call_b) in itertools.combinations(calls.items(), 2):
        pairs = [((call_a[0], call_a[1]), (call_b[0], call_b[1]), launchers[0])]
        if call_a[2] and call_b[2]:
            pairs.append((call_a[2], call_b[2], launchers[1]))
        for (key_a, (grid_a, args_a)), (key_b, (grid_b, args_b)), launcher in pairs:
            if key_a == key_b:
                assert grid_a == grid_b, (a, b)
                assert _without_tensors(args_a) == _without_tensors(args_b), (a, b)
                assert launcher.key(args_a) == launcher.key(args_b), (a, b)
    # Calls that differ in their data only share their keys (or nothing would ever be reused).
    for name in SPECS:
        (split_0, _, merge_0), (split_1, _, merge_1) = calls[name, 0], calls[name, 1]
        assert split_0 == split_1 and (merge_0 is None) == (merge_1 is None), name
        assert merge_0 is None or merge_0[0] == merge_1[0], name


@pytest.mark.skipif(DEVICE != "cuda", reason="compiled variants need a GPU (TQFA_TEST_DEVICE=cuda)")
@pytest.mark.parametrize("name", [*SPECS, "3 splits"])
def test_prepared_decode_launches_match_tritons_own(name, monkeypatch):
    """decode_forward's second call of a layout goes through its prepared launches (the
    launchers refuse) and writes bit for bit what the first call, through the launchers, wrote
    for the same data."""
    spec, splits = (SPECS.get(name, {}), 3 if name == "3 splits" else None)
    problem = _problem(**spec)
    # Fresh caches: the first call goes through the launchers, whatever ran before.
    for name_, launcher in (("_prepared_split", decode_launch.launch_split),
                            ("_prepared_merge", decode_launch.launch_merge)):
        monkeypatch.setattr(decode_launch, name_, fast_launch.PreparedLaunches(launcher))
    results = []
    for attempt in range(2):
        out = torch.full_like(problem.q, math.nan)
        lse = torch.full(problem.q.shape[:3], math.nan, device=DEVICE)
        if attempt:
            def refuse(grid, kwargs):
                raise AssertionError("not the prepared launch")
            refuse.enabled = True  # a launcher with its fast path (PreparedLaunches reads it)
            monkeypatch.setattr(decode_launch._prepared_split, "launcher", refuse)
            monkeypatch.setattr(decode_launch._prepared_merge, "launcher", refuse)
        plan = decode_launch.decode_forward(problem, out, lse, CONFIG, 8, splits)
        results.append((out, lse))
    assert splits is None or plan.num_splits == splits
    assert not results[0][0].isnan().any() and not results[0][1].isnan().any()
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
