"""fast_launch.Launcher: its key must be at least as fine as Triton's own specialisation (or a
call would run a variant compiled for other arguments), yet not finer on the lengths (or every
new length would take Triton's slow path).

On the CPU the key is compared with Triton's binder for the sm90 backend; on a GPU
(TQFA_TEST_DEVICE=cuda) each launch must run the very variant Triton itself selects.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os

import pytest
import torch
import triton
from triton.runtime.jit import JITFunction

from oracle import reference
from tqfa.problem import build_problem
from tqfa.triton import decode_launch, fast_launch, launch, mask_spans
from tqfa.triton.decode_config import DecodeConfig
from tqfa.triton.kernel import attention_fwd_kernel
from tqfa.triton.tuning import KernelConfig

DEVICE = os.environ.get("TQFA_TEST_DEVICE", "cpu")


def _compiled(kernel) -> JITFunction:
    """The kernel as a JITFunction, also under TRITON_INTERPRET=1 (which wraps it otherwise)."""
    return kernel if isinstance(kernel, JITFunction) else JITFunction(kernel.fn, **kernel.kwargs)


@pytest.fixture
def cpu_launcher(monkeypatch):
    if DEVICE != "cuda":  # the key names the current CUDA device
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    return fast_launch.Launcher(_compiled(attention_fwd_kernel))


def _problem(sq=64, skv=80, layout="bhsd", offset=0, mask=None, dtype=torch.float16, d=64,
             pitch=None, seed=0, causal="bottom_right"):
    """q, k, v on DEVICE; offset shifts q's storage by that many elements (offset 1: q's data
    pointer is not 16-byte aligned); pitch: q's rows are the first d of `pitch` elements."""
    gen = torch.Generator().manual_seed(sq * 131 + skv + 7919 * seed)

    def t(h, s, shift=0, width=d):
        flat = torch.randn(shift + 2 * h * s * width, generator=gen).to(dtype).to(DEVICE)
        x = flat[shift:]
        x = x.view(2, s, h, width).transpose(1, 2) if layout == "bshd" else x.view(2, h, s, width)
        return x[..., :d]

    m = None
    if mask == "padding":
        m = torch.zeros(2, 1, 1, skv, dtype=dtype, device=DEVICE)
        m[0, ..., skv // 2:] = torch.finfo(dtype).min
    return build_problem(t(8, sq, offset, pitch or d), t(2, skv), t(2, skv), m, is_causal=bool(causal),
                         causal_alignment=causal or "top_left")


CONFIG = KernelConfig(64, 32, 4, 2)
TMA_CONFIG = KernelConfig(64, 32, 4, 2, tma=True)


def _arguments(problem, config=CONFIG):
    out = torch.empty_like(problem.q)
    lse = torch.empty(problem.q.shape[:3], dtype=torch.float32, device=problem.q.device)
    return launch.kernel_arguments(problem, out, lse, config, False)


PROBLEMS = {
    "aligned": dict(),
    "other lengths": dict(sq=48, skv=33),
    "length 1": dict(sq=1, skv=1),
    "length 16": dict(sq=16, skv=16),
    "misaligned q": dict(offset=1),
    "q offset 8": dict(offset=8),
    "bshd": dict(layout="bshd"),
    "bshd other lengths": dict(layout="bshd", sq=17, skv=113),
    "padding mask": dict(mask="padding"),
    "padding mask, 32 keys": dict(mask="padding", skv=32),
    "bf16": dict(dtype=torch.bfloat16),
    "d40": dict(d=40),
    "q rows of 72": dict(pitch=72),
    "q rows of 80": dict(pitch=80),
}
# Launched with host tensor descriptors (TMA_CONFIG); misaligned q falls back to pointers.
TMA_PROBLEMS = {
    "tma": dict(),
    "tma other lengths": dict(sq=48, skv=33),
    "tma bf16": dict(dtype=torch.bfloat16),
    "tma d40": dict(d=40),
    "tma bshd": dict(layout="bshd"),
    "tma misaligned q": dict(offset=1),
}


def _all_arguments():
    for name, spec in PROBLEMS.items():
        yield name, _arguments(_problem(**spec))
    for name, spec in TMA_PROBLEMS.items():
        yield name, _arguments(_problem(**spec), TMA_CONFIG)


def test_the_key_is_at_least_as_fine_as_tritons_specialisation(cpu_launcher):
    """Equal keys -> equal Triton specialisations, over pairs of argument sets that differ in
    alignment, layout, lengths, masks, dtypes and head dims; lengths alone never change the key."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    kernel = cpu_launcher.kernel
    binder = create_function_from_signature(kernel.signature, kernel.params,
                                            make_backend(GPUTarget("cuda", 90, 32)))

    def triton_key(kwargs):
        args = {k: v for k, v in kwargs.items() if k not in fast_launch.OPTION_NAMES}
        options = {k: v for k, v in kwargs.items() if k in fast_launch.OPTION_NAMES}
        return str(binder(**fast_launch.triton_kwargs(args))[1]), str(options)

    keys = {}
    for name, (_, kwargs) in _all_arguments():
        keys[name] = cpu_launcher.key(kwargs), triton_key(kwargs)
        if name == "tma":  # what only the descriptors carry: block shape, dtype
            desc = kwargs["k_desc"]
            for change in (dict(block_shape=(1, 1, 16, 64)), dict(base=desc.base.bfloat16())):
                changed = {**kwargs, "k_desc": desc._replace(**change)}
                keys[f"tma {change}"] = cpu_launcher.key(changed), triton_key(changed)
        assert keys[name][0] is not None, name
    for (a, (ours_a, theirs_a)), (b, (ours_b, theirs_b)) in itertools.combinations(keys.items(), 2):
        if ours_a == ours_b:
            assert theirs_a == theirs_b, (a, b)
    assert keys["aligned"][0] == keys["other lengths"][0] == keys["length 1"][0]
    assert keys["aligned"][0] != keys["misaligned q"][0]
    assert keys["aligned"][0] != keys["padding mask"][0]
    assert keys["aligned"][0] != keys["q rows of 72"][0]
    assert keys["tma"][0] == keys["tma other lengths"][0]
    assert keys["tma"][0] != keys["tma bf16"][0] != keys["tma d40"][0]
    assert keys["tma"][0] != keys["aligned"][0]
    assert keys["tma misaligned q"][0] != keys["tma"][0]


def _without_tensors(kwargs: dict) -> dict:
    """kwargs with each tensor (also a descriptor's) replaced by its dtype."""
    def strip(value):
        if isinstance(value, torch.Tensor):
            return value.dtype
        return value._replace(base=value.base.dtype) if type(value) is fast_launch.HostDescriptor else value
    return {name: strip(value) for name, value in kwargs.items()}


def _planned(problem, config=CONFIG, allow_tf32=False, spans=None, bshd_out=False):
    """(attention_forward's plan key, kernel_arguments' result) of one call."""
    out = torch.empty_like(problem.q)
    if bshd_out:
        out = out.transpose(1, 2).contiguous().transpose(1, 2)
    lse = torch.empty(problem.q.shape[:3], dtype=torch.float32, device=problem.q.device)
    tensors = launch.tensor_arguments(problem, out, lse, spans)
    key = launch._plan_key(problem, tensors, config, allow_tf32, None if spans is None else spans[1])
    return key, launch.kernel_arguments(problem, out, lse, config, allow_tf32, spans)


def test_equal_plan_keys_mean_equal_arguments(cpu_launcher):
    """attention_forward reuses a prepared launch for calls with equal plan keys: those calls'
    kernel arguments must differ in their tensors only, and run the same variant, over calls
    that differ in data, lengths, alignment, layout, masks, dtypes, head dims, options and
    configurations."""
    calls = {}
    for seed in (0, 1):
        for name, spec in PROBLEMS.items():
            calls[name, seed] = _planned(_problem(**spec, seed=seed))
        for name, spec in TMA_PROBLEMS.items():
            calls[name, seed] = _planned(_problem(**spec, seed=seed), TMA_CONFIG)
    base = _problem()
    calls["top-left causal", 0] = _planned(_problem(causal="top_left"))
    calls["not causal", 0] = _planned(_problem(causal=None))
    calls["scale", 0] = _planned(dataclasses.replace(base, scale=0.3))
    calls["tf32", 0] = _planned(base, allow_tf32=True)
    calls["fp32 tf32", 0] = _planned(_problem(dtype=torch.float32), allow_tf32=True)
    calls["fp32", 0] = _planned(_problem(dtype=torch.float32))
    calls["config", 0] = _planned(base, KernelConfig(32, 32, 4, 2))
    calls["bshd out", 0] = _planned(base, bshd_out=True)
    spans = torch.zeros(64, dtype=torch.int32, device=DEVICE)
    calls["spans", 0] = _planned(base, spans=(spans, 1))
    calls["spans per head", 0] = _planned(base, spans=(spans, 8))
    for (a, (key_a, (grid_a, args_a))), (b, (key_b, (grid_b, args_b))) in itertools.combinations(
            calls.items(), 2):
        if key_a == key_b:
            assert grid_a == grid_b and _without_tensors(args_a) == _without_tensors(args_b), (a, b)
            assert cpu_launcher.key(args_a) == cpu_launcher.key(args_b), (a, b)
    # Calls that differ in their data only share a key (or nothing would ever be reused).
    for name in (*PROBLEMS, *TMA_PROBLEMS):
        assert calls[name, 0][0] == calls[name, 1][0], name


def test_a_prepared_launch_passes_each_calls_tensors(cpu_launcher):
    """What a prepared launch hands the variant is what the full path would for the new call
    (a tensor as its data pointer), and it keeps no tensor of the call it was prepared from."""
    launched = []
    first = _arguments(_problem(), TMA_CONFIG)
    key = cpu_launcher.key(first[1])
    cpu_launcher._variants[key] = fast_launch._Variant(None, lambda grid, values: launched.append(values))
    prepared = fast_launch.PreparedLaunch.of(cpu_launcher, *first, launch._DESCRIBED) if (
        cpu_launcher.enabled) else None
    if prepared is None:
        pytest.skip("this triton has no fast launch (fast_launch.CHECKED_TRITON)")
    assert not any(isinstance(v, torch.Tensor) or getattr(v, "base", None) is not None
                   for v in prepared.values)
    problem = _problem(seed=1)
    grid, kwargs = _arguments(problem, TMA_CONFIG)
    assert prepared(launch.tensor_arguments(problem, kwargs["Out"], kwargs["Lse"]))
    expected = cpu_launcher._values(kwargs)
    assert len(launched) == 1 and len(launched[0]) == len(expected)
    for got, want in zip(launched[0], expected, strict=True):
        if isinstance(want, torch.Tensor):
            assert type(got) is int and got == want.data_ptr()
        elif type(want) is fast_launch.HostDescriptor:
            assert got.base is want.base and got == want
        else:
            assert got is want or got == want


def test_host_descriptors_become_tritons_for_tritons_path():
    _, kwargs = _arguments(_problem(), TMA_CONFIG)
    assert type(kwargs["q_desc"]) is fast_launch.HostDescriptor and kwargs["q_desc1"] is None
    converted = fast_launch.triton_kwargs(kwargs)
    desc = converted["k_desc"]
    assert type(desc) is fast_launch.TensorDescriptor
    assert desc.base is kwargs["K"] and list(desc.block_shape) == [1, 1, TMA_CONFIG.block_n, 64]
    assert list(desc.shape) == list(kwargs["K"].shape)
    assert list(desc.strides) == list(kwargs["K"].stride())
    assert converted["Q"] is kwargs["Q"] and converted["q_desc1"] is None


def test_the_key_sees_options_and_constexprs(cpu_launcher):
    _, kwargs = _arguments(_problem())
    base = cpu_launcher.key(kwargs)
    assert cpu_launcher.key({**kwargs, "num_warps": 8}) != base
    assert cpu_launcher.key({**kwargs, "BLOCK_N": 64}) != base
    assert cpu_launcher.key({**kwargs, "DOT_PRECISION": "tf32"}) != base


def test_what_the_key_does_not_mirror_takes_tritons_path(cpu_launcher):
    """int64 ints, unknown options and argument types Triton specialises otherwise: no key."""
    _, kwargs = _arguments(_problem())
    assert cpu_launcher.key({**kwargs, "stride_qb": 2**31}) is None
    assert cpu_launcher.key({**kwargs, "some_option": 1}) is None
    assert cpu_launcher.key({**kwargs, "stride_qb": object()}) is None
    # A runtime argument's type is part of the key (a tensor where a float was: a pointer).
    tensor_scale = cpu_launcher.key({**kwargs, "sm_scale": torch.tensor(0.5)})
    assert tensor_scale is not None and tensor_scale != cpu_launcher.key(kwargs)


def test_only_checked_triton_versions_on_nvidia_use_it():
    low, high = fast_launch.CHECKED_TRITON
    from packaging.version import Version

    here = Version(Version(triton.__version__).base_version)
    expected = low <= here < high and torch.version.hip is None
    assert fast_launch.Launcher(_compiled(attention_fwd_kernel)).enabled == expected
    # Interpreted kernels have no compiled variants.
    interpreted = not isinstance(attention_fwd_kernel, JITFunction)
    assert launch.launch_attention.enabled == (expected and not interpreted)


@pytest.mark.skipif(DEVICE != "cuda", reason="compiled variants need a GPU (TQFA_TEST_DEVICE=cuda)")
@pytest.mark.parametrize("name", PROBLEMS)
def test_each_launch_runs_the_variant_triton_selects(name):
    problem = _problem(**PROBLEMS[name])
    grid, kwargs = _arguments(problem)
    for _ in range(2):  # the first launch goes through Triton, the second through the cache
        kwargs["Out"].fill_(math.nan)
        launch.launch_attention(grid, kwargs)
        assert launch.launch_attention._variants[launch.launch_attention.key(kwargs)].compiled is (
            attention_fwd_kernel.warmup(grid=grid, **kwargs))
        cpu = [t.cpu() if t is not None else None for t in (problem.q, problem.k, problem.v, problem.mask)]
        ref, _ = reference(*cpu, causal="bottom_right")
        error = (kwargs["Out"].double().cpu() - ref).abs().max().item()
        assert error < 2e-2, error


@pytest.mark.skipif(DEVICE != "cuda", reason="compiled variants need a GPU (TQFA_TEST_DEVICE=cuda)")
def test_decode_launches_run_the_variants_triton_selects():
    problem = _problem(sq=1, skv=4096)
    out = torch.full_like(problem.q, math.nan)
    lse = torch.empty(problem.q.shape[:3], dtype=torch.float32, device=problem.q.device)
    config = DecodeConfig(block_m=16, block_n=64, num_warps=4, num_stages=2, programs_per_sm=2,
                          min_split_tiles=2, max_q_len=4)
    for _ in range(2):
        plan = decode_launch.decode_forward(problem, out, lse, config, multiprocessors=8)
        assert plan.num_splits > 1  # both kernels ran
        for launcher in (decode_launch.launch_split, decode_launch.launch_merge):
            assert launcher._variants, launcher.kernel
    cpu = [t.cpu() for t in (problem.q, problem.k, problem.v)]
    ref, _ = reference(*cpu, causal="bottom_right")
    assert (out.double().cpu() - ref).abs().max().item() < 2e-2


def _uses_direct_descriptor_launch(variant) -> bool:
    return isinstance(variant.launch, fast_launch._DescriptorLaunch)


@pytest.mark.skipif(DEVICE != "cuda", reason="compiled variants need a GPU (TQFA_TEST_DEVICE=cuda)")
@pytest.mark.parametrize("name", TMA_PROBLEMS)
def test_descriptor_launches_match_tritons_own(name):
    """Bit for bit what Triton's own launch writes, with the variant Triton selects; under the
    triton version _DescriptorLaunch was written for, through it."""
    problem = _problem(**TMA_PROBLEMS[name])
    grid, kwargs = _arguments(problem, TMA_CONFIG)
    expected = dict(Out=torch.full_like(kwargs["Out"], math.nan),
                    Lse=torch.full_like(kwargs["Lse"], math.nan))
    attention_fwd_kernel[grid](**fast_launch.triton_kwargs({**kwargs, **expected}))
    for _ in range(3):  # Triton's path, then the variant's launch, then its kept tensor maps
        kwargs["Out"].fill_(math.nan)
        kwargs["Lse"].fill_(math.nan)
        launch.launch_attention(grid, kwargs)
        assert torch.equal(kwargs["Out"], expected["Out"]) and torch.equal(kwargs["Lse"], expected["Lse"])
    variant = launch.launch_attention._variants[launch.launch_attention.key(kwargs)]
    assert variant.compiled is attention_fwd_kernel.warmup(grid=grid, **fast_launch.triton_kwargs(kwargs))
    described = kwargs["q_desc"] is not None
    assert described == (name != "tma misaligned q")
    direct = described and fast_launch._triton_in(fast_launch.CHECKED_DESCRIPTOR_LAUNCH)
    assert _uses_direct_descriptor_launch(variant) == direct


@pytest.mark.skipif(DEVICE != "cuda", reason="compiled variants need a GPU (TQFA_TEST_DEVICE=cuda)")
def test_one_data_pointer_with_two_shapes_gets_two_tensor_maps():
    """A kept tensor map is found by data pointer, shape and strides: q of 64 rows, then q of 48
    rows at the same address, must each read their own rows."""
    gen = torch.Generator().manual_seed(7)
    storage = torch.randn(2 * 8 * 64 * 64, generator=gen).half().to(DEVICE)
    k, v = (torch.randn(2, 2, 80, 64, generator=gen).half().to(DEVICE) for _ in range(2))
    results = []
    for _ in range(2):
        for rows in (64, 48):
            q = storage[:2 * 8 * rows * 64].view(2, 8, rows, 64)
            problem = build_problem(q, k, v, None, is_causal=False)
            grid, kwargs = _arguments(problem, TMA_CONFIG)
            kwargs["Out"].fill_(math.nan)
            launch.launch_attention(grid, kwargs)
            ref, _ = reference(q.cpu(), k.cpu(), v.cpu())
            results.append((kwargs["Out"].double().cpu() - ref).abs().max().item())
    assert max(results) < 2e-2, results
    variant = launch.launch_attention._variants[launch.launch_attention.key(kwargs)]
    if _uses_direct_descriptor_launch(variant):
        assert len(variant.launch.expansions) == 2


@pytest.mark.skipif(DEVICE != "cuda", reason="compiled variants need a GPU (TQFA_TEST_DEVICE=cuda)")
@pytest.mark.parametrize("name", [*PROBLEMS, *TMA_PROBLEMS])
def test_prepared_launches_match_tritons_own(name, monkeypatch):
    """attention_forward's second call of a layout goes through its prepared launch (no
    kernel_arguments) and writes bit for bit what Triton's own launch writes for that call."""
    spec, config = (PROBLEMS[name], CONFIG) if name in PROBLEMS else (TMA_PROBLEMS[name], TMA_CONFIG)
    for seed in (0, 1):
        problem = _problem(**spec, seed=seed)
        grid, kwargs = _arguments(problem, config)
        expected = dict(Out=torch.full_like(kwargs["Out"], math.nan),
                        Lse=torch.full_like(kwargs["Lse"], math.nan))
        attention_fwd_kernel[grid](**fast_launch.triton_kwargs({**kwargs, **expected}))
        out, lse = kwargs["Out"].fill_(math.nan), kwargs["Lse"].fill_(math.nan)
        if seed:
            monkeypatch.setattr(launch, "kernel_arguments", None)  # the prepared launch or a TypeError
        launch.attention_forward(problem, out, lse, config, False)
        assert torch.equal(out, expected["Out"]) and torch.equal(lse, expected["Lse"]), seed


@pytest.mark.skipif(DEVICE != "cuda", reason="compiled variants need a GPU (TQFA_TEST_DEVICE=cuda)")
def test_a_layout_without_a_prepared_launch_is_not_prepared_again(monkeypatch):
    """A layout whose launch cannot be prepared (PreparedLaunch.of gives None) keeps launching
    through kernel_arguments, correctly, without being offered to PreparedLaunch again."""
    offered = []

    class Unprepared:
        @staticmethod
        def of(*args):
            offered.append(args)

    monkeypatch.setattr(fast_launch, "PreparedLaunch", Unprepared)
    monkeypatch.setattr(launch, "_prepared", fast_launch.PreparedLaunches(launch.launch_attention))
    problem = _problem(**next(iter(PROBLEMS.values())), seed=0)
    grid, kwargs = _arguments(problem, CONFIG)
    expected = dict(Out=torch.full_like(kwargs["Out"], math.nan),
                    Lse=torch.full_like(kwargs["Lse"], math.nan))
    attention_fwd_kernel[grid](**fast_launch.triton_kwargs({**kwargs, **expected}))
    for _ in range(2):
        out, lse = kwargs["Out"].fill_(math.nan), kwargs["Lse"].fill_(math.nan)
        launch.attention_forward(problem, out, lse, CONFIG, False)
        assert torch.equal(out, expected["Out"]) and torch.equal(lse, expected["Lse"])
    assert len(offered) == 1


def test_prepared_launches_prepare_each_key_once(monkeypatch):
    """PreparedLaunches: a key's first call launches through the launcher and prepares; later
    calls go through the prepared launch with their tensors only; a key that cannot be prepared
    is not offered again; one whose environment changed is prepared anew; the limit clears; a
    launcher without its fast path launches every call itself."""
    log = []

    class Prepared:
        def __init__(self, grid, works):
            self.grid, self.works = grid, works

        @staticmethod
        def of(launcher, grid, kwargs, described):
            log.append(("of", grid))
            return None if grid == "unpreparable" else Prepared(grid, [True])

        def __call__(self, tensors):
            log.append(("prepared", self.grid, tensors["T"]))
            return self.works.pop() if self.works else False

    class Logged:
        def __init__(self, enabled):
            self.enabled = enabled

        def __call__(self, grid, kwargs):
            log.append(("launch", grid))

    monkeypatch.setattr(fast_launch, "PreparedLaunch", Prepared)
    cache = fast_launch.PreparedLaunches(Logged(enabled=True), limit=3)

    def call(key, tensor, grid=None):
        log.clear()
        cache(key, {"T": tensor}, lambda: (grid or key, {}))
        return list(log)

    assert call("a", 1) == [("launch", "a"), ("of", "a")]
    assert call("a", 2) == [("prepared", "a", 2)]
    # Its environment changed (the prepared launch refuses): launched and prepared again.
    assert call("a", 3) == [("prepared", "a", 3), ("launch", "a"), ("of", "a")]
    assert call("u", 1, "unpreparable") == [("launch", "unpreparable"), ("of", "unpreparable")]
    assert call("u", 2, "unpreparable") == [("launch", "unpreparable")]
    assert call("b", 1) == [("launch", "b"), ("of", "b")]
    assert set(cache.by_key) == {"a", "u", "b"}
    call("c", 1)  # past the limit: the cache starts over
    assert set(cache.by_key) == {"c"}
    # A launcher without its fast path (the interpreter's, AMD's) launches every call, keeps nothing.
    cache = fast_launch.PreparedLaunches(Logged(enabled=False))
    assert call("a", 1) == [("launch", "a")] and call("a", 2) == [("launch", "a")]
    assert not cache.by_key


@pytest.mark.skipif(DEVICE != "cuda", reason="compiled variants need a GPU (TQFA_TEST_DEVICE=cuda)")
def test_prepared_span_launches_match_tritons_own(monkeypatch):
    """mask_spans' second call of a mask layout goes through its prepared launch (the launcher
    refuses) and writes what the span kernel writes through Triton's own launch for that mask."""
    q = k = v = torch.randn(2, 4, 90, 64, device=DEVICE, dtype=torch.float16)
    for seed in (0, 1):
        gen = torch.Generator().manual_seed(seed)
        pads = torch.randint(0, 60, (2,), generator=gen)
        keep = (torch.arange(90)[None, :] >= pads[:, None])[:, None, None, :]
        mask = (keep & torch.ones(90, 90, dtype=torch.bool).tril()).to(DEVICE)  # [2, 1, 90, 90]
        problem = build_problem(q, k, v, mask)
        strides = launch.zeroed_strides(problem.mask)
        if seed:
            def refuse(grid, kwargs):
                raise AssertionError("not the prepared launch")
            refuse.enabled = True  # a launcher with its fast path (PreparedLaunches reads it)
            monkeypatch.setattr(mask_spans._prepared, "launcher", refuse)
        spans, heads = mask_spans.mask_spans(problem, strides, 64)
        expected = torch.full_like(spans, -7)
        parts = spans.numel() // (4 * 2 * heads)
        mask_spans.mask_spans_kernel[(parts, 2 * heads)](
            problem.mask, expected, *strides, heads, 90, 90, ROWS=mask_spans.PART_ROWS,
            BLOCK_N=mask_spans.SCAN_KEYS, num_warps=4, num_stages=2)
        assert torch.equal(spans, expected), seed
