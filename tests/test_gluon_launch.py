"""gluon_launch's fast path: the ws kernel's launches go through fast_launch (Launcher and
PreparedLaunches) with Gluon descriptors, whose Triton specialisation names their shared-memory
layout.

On the CPU: the launcher's key against Triton's binder for the sm90 backend, the plan key
against the arguments, and what a prepared launch hands the kernel. On an sm90 GPU
(TQFA_TEST_DEVICE=cuda): prepared launches write bit for bit what Triton's own launch writes.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from test_fast_launch import _without_tensors
from test_gluon_sm90 import ON_SM90, WS, _inputs
from tqfa.problem import build_problem
from tqfa.triton import fast_launch, gluon_launch
from tqfa.triton.gluon_sm90 import attention_fwd_ws_kernel

DEVICE = "cuda" if ON_SM90 else "cpu"
# (batch, q heads, kv heads, Sq, Skv, head dim, causal, [B, S, H, D] layout), as test_gluon_sm90
SHAPES = {
    "d128": (2, 4, 2, 300, 517, 128, None, False),
    "d128 other lengths": (2, 4, 2, 333, 640, 128, None, False),
    "d128 causal": (2, 4, 2, 300, 517, 128, "top_left", False),
    "d128 bottom right": (2, 4, 2, 300, 517, 128, "bottom_right", False),
    "d128 one key tile": (2, 4, 2, 113, 100, 128, None, False),
    "d128 bshd": (2, 4, 2, 300, 517, 128, None, True),
    "d64": (1, 8, 1, 1000, 1000, 64, "top_left", True),
    "d64 other batch": (3, 8, 1, 1000, 1000, 64, "top_left", True),
}
CONFIGS = {"pp": WS[1], "pp persistent": WS[4], "persistent 256 keys": WS[6],
           "pp persistent snake": WS[7]}


def _call(shape_name: str, config_name: str, dtype=torch.bfloat16, seed=0, scale=None):
    """(problem, out, lse, config, strides) of one ws call, outputs NaN-poisoned."""
    shape, config = SHAPES[shape_name], CONFIGS[config_name]
    q, k, v = _inputs(shape, dtype, seed)
    causal = shape[6]
    problem = build_problem(q, k, v, None, causal is not None, scale=scale,
                            causal_alignment=causal or "top_left")
    out = torch.full_like(q, math.nan)
    lse = torch.full(q.shape[:3], math.nan, dtype=torch.float32, device=q.device)
    strides = gluon_launch.ws_strides(problem, out)
    assert strides is not None, shape_name
    return problem, out, lse, config, strides


def _calls():
    """The calls the tests compare: each shape with the configurations its head dim fits."""
    for shape_name, shape in SHAPES.items():
        for config_name, config in CONFIGS.items():
            if config.block_n * shape[5] <= 128 * 128:
                yield shape_name, config_name


def _triton_key(binder, kwargs: dict) -> tuple[str, str]:
    args = {k: v for k, v in kwargs.items() if k not in fast_launch.OPTION_NAMES}
    options = {k: v for k, v in kwargs.items() if k in fast_launch.OPTION_NAMES}
    return str(binder(**fast_launch.triton_kwargs(args))[1]), str(options)


def test_the_key_is_at_least_as_fine_as_tritons_specialisation(monkeypatch):
    """Equal keys -> equal Triton specialisations of the Gluon kernel (descriptor layouts
    included), over calls that differ in lengths, layouts, head dims, dtypes, causality and
    configurations; lengths alone never change the key."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)  # the key names it
    launcher = fast_launch.Launcher(attention_fwd_ws_kernel)
    assert launcher.enabled == fast_launch._triton_in(fast_launch.CHECKED_TRITON)
    binder = create_function_from_signature(attention_fwd_ws_kernel.signature,
                                            attention_fwd_ws_kernel.params,
                                            make_backend(GPUTarget("cuda", 90, 32)))
    keys = {}
    for shape_name, config_name in _calls():
        for dtype in (torch.bfloat16, torch.float16):
            problem, out, lse, config, strides = _call(shape_name, config_name, dtype)
            _, kwargs = gluon_launch.ws_arguments(problem, out, lse, config, strides)
            name = (shape_name, config_name, str(dtype))
            keys[name] = launcher.key(kwargs), _triton_key(binder, kwargs)
            assert keys[name][0] is not None, name
    # A layout of another swizzle: Triton specialises on it, so must the key.
    desc = kwargs["k_desc"]
    swizzled = {**kwargs, "k_desc": desc._replace(layout=dataclasses.replace(desc.layout,
                                                                             swizzle_byte_width=64))}
    keys["other swizzle"] = launcher.key(swizzled), _triton_key(binder, swizzled)
    assert keys["other swizzle"][0] != launcher.key(kwargs)
    for (a, (ours_a, theirs_a)), (b, (ours_b, theirs_b)) in itertools.combinations(keys.items(), 2):
        if ours_a == ours_b:
            assert theirs_a == theirs_b, (a, b)
    bf16 = str(torch.bfloat16)
    assert keys["d128", "pp", bf16][0] == keys["d128 other lengths", "pp", bf16][0]
    assert keys["d64", "pp", bf16][0] == keys["d64 other batch", "pp", bf16][0]
    assert keys["d128", "pp", bf16][0] != keys["d128", "pp", str(torch.float16)][0]
    assert keys["d128", "pp", bf16][0] != keys["d128 causal", "pp", bf16][0]


def _planned(problem, out, lse, config, strides):
    tensors = dict(Q=problem.q, K=problem.k, V=problem.v, Out=out, Lse=lse)
    return (gluon_launch.plan_key(problem, tensors, config),
            gluon_launch.ws_arguments(problem, out, lse, config, strides))


def test_equal_plan_keys_mean_equal_arguments():
    """attention_forward_ws reuses a prepared launch for calls with equal plan keys: their
    arguments must differ in their tensors only; calls that differ in data share a key."""
    calls = {}
    for seed in (0, 1):
        for shape_name, config_name in _calls():
            calls[shape_name, config_name, seed] = _planned(*_call(shape_name, config_name, seed=seed))
    calls["fp16", 0] = _planned(*_call("d128", "pp", torch.float16))
    calls["scale", 0] = _planned(*_call("d128", "pp", scale=0.3))
    for (a, (key_a, (grid_a, args_a))), (b, (key_b, (grid_b, args_b))) in itertools.combinations(
            calls.items(), 2):
        if key_a == key_b:
            assert grid_a == grid_b and _without_tensors(args_a) == _without_tensors(args_b), (a, b)
    for shape_name, config_name in _calls():
        assert calls[shape_name, config_name, 0][0] == calls[shape_name, config_name, 1][0]


def test_calls_the_kernel_does_not_serve_never_share_a_served_calls_plan_key():
    """attention_forward_ws looks its plan key up before ws_strides: equal keys must mean
    equal verdicts, so a mask, a misaligned tensor or an unreadable stride changes the key."""
    problem, out, lse, config, _ = _call("d128", "pp")
    q, k, v = problem.q, problem.k, problem.v
    like_q = dict(dtype=q.dtype, device=q.device)
    misaligned = torch.empty(q.numel() + 1, **like_q)[1:].view(q.shape).copy_(q)
    padded = torch.empty(*q.shape[:3], 136, **like_q)[..., :128].copy_(q)  # 272-byte rows
    odd = torch.empty(*q.shape[:3], 129, **like_q)[..., :128].copy_(q)  # 258-byte rows
    calls = {"served": problem,
             "masked": build_problem(q, k, v, torch.zeros(q.shape[2], k.shape[2], **like_q), False),
             "misaligned q": build_problem(misaligned, k, v, None, False),
             "padded rows": build_problem(padded, k, v, None, False),
             "odd rows": build_problem(odd, k, v, None, False)}
    verdicts = {name: gluon_launch.ws_strides(p, out) is not None for name, p in calls.items()}
    assert verdicts == {"served": True, "masked": False, "misaligned q": False,
                        "padded rows": True, "odd rows": False}
    keys = {name: gluon_launch.plan_key(p, dict(Q=p.q, K=p.k, V=p.v, Out=out, Lse=lse), config)
            for name, p in calls.items()}
    for a, b in itertools.combinations(calls, 2):
        assert keys[a] != keys[b] or verdicts[a] == verdicts[b], (a, b)
    assert len(set(keys.values())) == len(keys)


def test_a_prepared_launch_passes_each_calls_tensors(monkeypatch):
    """A prepared ws launch hands the variant the new call's tensors: Lse as its data pointer,
    each descriptor with the new tensor and the prepared layout; it keeps no tensor."""
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    launcher = fast_launch.Launcher(attention_fwd_ws_kernel)
    if not launcher.enabled:
        pytest.skip("this triton has no fast launch (fast_launch.CHECKED_TRITON)")
    first = gluon_launch.ws_arguments(*_call("d128", "pp persistent"))
    launched = []
    launcher._variants[launcher.key(first[1])] = fast_launch._Variant(
        None, lambda grid, values: launched.append((grid, values)))
    prepared = fast_launch.PreparedLaunch.of(launcher, *first, gluon_launch._DESCRIBED)
    assert not any(isinstance(v, torch.Tensor) or getattr(v, "base", None) is not None
                   for v in prepared.values)
    problem, out, lse, config, strides = _call("d128", "pp persistent", seed=1)
    grid, kwargs = gluon_launch.ws_arguments(problem, out, lse, config, strides)
    assert prepared(dict(Q=problem.q, K=problem.k, V=problem.v, Out=out, Lse=lse))
    (got_grid, got), = launched
    assert got_grid == (*grid, 1, 1)
    for value, want in zip(got, launcher._values(kwargs), strict=True):
        if isinstance(want, torch.Tensor):
            assert type(value) is int and value == want.data_ptr()
        elif type(want) is fast_launch.HostDescriptor:
            assert value.base is want.base and value == want and value.layout is not None
        else:
            assert value == want


@pytest.mark.skipif(not ON_SM90, reason="the ws kernel runs on an sm90 GPU only (TQFA_TEST_DEVICE=cuda)")
@pytest.mark.parametrize("shape_name, config_name", list(_calls()), ids=str)
def test_prepared_ws_launches_match_tritons_own(shape_name, config_name, monkeypatch):
    """The first call of a layout launches through Triton, the second through its prepared
    launch (neither ws_strides nor ws_arguments is called); each writes bit for bit what
    Triton's own launch of the same arguments writes. Under triton 3.6 the variant keeps its
    tensor maps."""
    for seed in (0, 1):
        problem, out, lse, config, strides = _call(shape_name, config_name, seed=seed)
        grid, kwargs = gluon_launch.ws_arguments(problem, out, lse, config, strides)
        expected = dict(Out=torch.full_like(out, math.nan), Lse=torch.full_like(lse, math.nan))
        expected_kwargs = {**kwargs, "Lse": expected["Lse"],
                           "o_desc": kwargs["o_desc"]._replace(base=expected["Out"])}
        attention_fwd_ws_kernel[grid](**fast_launch.triton_kwargs(expected_kwargs))
        if seed:  # prepared: neither is called (else a TypeError)
            monkeypatch.setattr(gluon_launch, "ws_arguments", None)
            monkeypatch.setattr(gluon_launch, "ws_strides", None)
        assert gluon_launch.attention_forward_ws(problem, out, lse, config)
        assert not expected["Out"].isnan().any() and not expected["Lse"].isnan().any()
        assert torch.equal(out, expected["Out"]) and torch.equal(lse, expected["Lse"]), seed
    variant = gluon_launch.launch_ws._variants[gluon_launch.launch_ws.key(kwargs)]
    direct = fast_launch._triton_in(fast_launch.CHECKED_DESCRIPTOR_LAUNCH)
    assert isinstance(variant.launch, fast_launch._DescriptorLaunch) == direct
