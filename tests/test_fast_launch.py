"""fast_launch.Launcher: its key must be at least as fine as Triton's own specialisation (or a
call would run a variant compiled for other arguments), yet not finer on the lengths (or every
new length would take Triton's slow path).

On the CPU the key is compared with Triton's binder for the sm90 backend; on a GPU
(TQFA_TEST_DEVICE=cuda) each launch must run the very variant Triton itself selects.
"""

from __future__ import annotations

import itertools
import math
import os

import pytest
import torch
import triton
from triton.runtime.jit import JITFunction

from oracle import reference
from tqfa.problem import build_problem
from tqfa.triton import decode_launch, fast_launch, launch
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
             pitch=None):
    """q, k, v on DEVICE; offset shifts q's storage by that many elements (offset 1: q's data
    pointer is not 16-byte aligned); pitch: q's rows are the first d of `pitch` elements."""
    gen = torch.Generator().manual_seed(sq * 131 + skv)

    def t(h, s, shift=0, width=d):
        flat = torch.randn(shift + 2 * h * s * width, generator=gen).to(dtype).to(DEVICE)
        x = flat[shift:]
        x = x.view(2, s, h, width).transpose(1, 2) if layout == "bshd" else x.view(2, h, s, width)
        return x[..., :d]

    m = None
    if mask == "padding":
        m = torch.zeros(2, 1, 1, skv, dtype=dtype, device=DEVICE)
        m[0, ..., skv // 2:] = torch.finfo(dtype).min
    return build_problem(t(8, sq, offset, pitch or d), t(2, skv), t(2, skv), m, is_causal=True,
                         causal_alignment="bottom_right")


CONFIG = KernelConfig(64, 32, 4, 2)


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
        return str(binder(**args)[1]), str(options)

    keys = {}
    for name, spec in PROBLEMS.items():
        kwargs = _arguments(_problem(**spec))[1]
        keys[name] = cpu_launcher.key(kwargs), triton_key(kwargs)
        assert keys[name][0] is not None, name
    for (a, (ours_a, theirs_a)), (b, (ours_b, theirs_b)) in itertools.combinations(keys.items(), 2):
        if ours_a == ours_b:
            assert theirs_a == theirs_b, (a, b)
    assert keys["aligned"][0] == keys["other lengths"][0] == keys["length 1"][0]
    assert keys["aligned"][0] != keys["misaligned q"][0]
    assert keys["aligned"][0] != keys["padding mask"][0]
    assert keys["aligned"][0] != keys["q rows of 72"][0]


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
        assert launch.launch_attention._variants[launch.launch_attention.key(kwargs)] is (
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
