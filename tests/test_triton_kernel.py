"""The Triton kernel itself, beyond the shared matrix: every output element written, int64
offsets, the scale's sign, specialisation (no compile per length) and the backend's refusals.

Runs the kernel under TRITON_INTERPRET=1 on the CPU (tox -e cpu) or on a GPU with
TQFA_TEST_DEVICE=cuda. The refusal tests start fresh processes: the interpreter is chosen when
the kernel module is imported.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import zlib

import pytest
import torch

import tqfa
from cases import CASES, make_inputs
from oracle import reference
from tqfa.problem import build_problem
from tqfa.triton import backend as triton_backend
from tqfa.triton.tuning import KernelConfig

DEVICE = os.environ.get("TQFA_TEST_DEVICE", "cpu")
launch = triton_backend._launcher()
RUNS_HERE = not isinstance(launch, str) and (launch.INTERPRETED or DEVICE == "cuda")
needs_kernel = pytest.mark.skipif(not RUNS_HERE, reason="needs TRITON_INTERPRET=1 or a GPU")
FLOOR = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 4e-6}


def _randn(*shape, dtype, gen):
    return torch.randn(*shape, generator=gen).to(dtype)


def _check(out, lse, q, k, v, mask=None, causal=None, scale=None):
    """Against the float64 oracle: at most twice the naive error in the input dtype + a floor."""
    cpu = [t.cpu() if t is not None else None for t in (q, k, v, mask)]
    ref_out, ref_lse = reference(*cpu, causal=causal, scale=scale)
    naive_out, _ = reference(*cpu, causal=causal, scale=scale, matmul_dtype=q.dtype)
    out, lse = out.double().cpu(), lse.double().cpu()
    assert not out.isnan().any() and not lse.isnan().any()
    assert torch.equal(torch.isneginf(lse), torch.isneginf(ref_lse))
    budget = 2 * (naive_out - ref_out).abs().max().item() + FLOOR[q.dtype]
    assert (out - ref_out).abs().max().item() <= budget
    finite = torch.isfinite(ref_lse)
    # A row of float64 minima has an LSE near -1.8e308, past float32's range: the float32 LSE
    # must then sit at float32's floor, finite (the minima are numbers, not hidden keys).
    beyond = finite & (ref_lse < torch.finfo(torch.float32).min)
    assert torch.allclose(lse[finite & ~beyond], ref_lse[finite & ~beyond], rtol=1e-5, atol=1e-5)
    assert (lse[beyond] <= torch.finfo(torch.float32).min / 2).all()


def _poisoned_run(problem, config):
    """Launch into NaN-filled outputs: any element the kernel skips stays NaN."""
    out = torch.full_like(problem.q, math.nan)
    lse = torch.full((problem.batch, problem.q_heads, problem.q_len), math.nan, device=problem.device)
    launch.attention_forward(problem, out, lse, config, allow_tf32=False)
    return out, lse


CONFIGS = [KernelConfig(32, 32, 4, 1), KernelConfig(16, 64, 4, 2), KernelConfig(64, 16, 4, 2)]


@needs_kernel
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"m{c.block_m}n{c.block_n}")
def test_poisoned_gqa_bottom_right_rows_without_keys_bshd(config):
    # Sq > Skv with bottom_right: the first 16 rows see no key (0 and LSE -inf, never NaN);
    # head dim 40 pads to 64 in registers; q and the output are [B, S, H, D] storage.
    gen = torch.Generator().manual_seed(1)
    q = _randn(1, 45, 6, 40, dtype=torch.float16, gen=gen).transpose(1, 2).to(DEVICE)
    k = _randn(1, 2, 29, 40, dtype=torch.float16, gen=gen).to(DEVICE)
    v = _randn(1, 2, 29, 40, dtype=torch.float16, gen=gen).to(DEVICE)
    problem = build_problem(q, k, v, is_causal=True, causal_alignment="bottom_right")
    out, lse = _poisoned_run(problem, config)
    assert out.stride() == q.stride()
    _check(out, lse, q, k, v, causal="bottom_right")


@needs_kernel
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"m{c.block_m}n{c.block_n}")
def test_poisoned_bool_mask_and_causal_fp32(config):
    gen = torch.Generator().manual_seed(2)
    q = _randn(2, 2, 33, 24, dtype=torch.float32, gen=gen).to(DEVICE)
    k = _randn(2, 1, 70, 24, dtype=torch.float32, gen=gen).to(DEVICE)
    v = _randn(2, 1, 70, 24, dtype=torch.float32, gen=gen).to(DEVICE)
    keep = torch.rand(2, 1, 33, 70, generator=gen) > 0.4
    keep[:, :, ::4] = False  # rows with no visible key
    keep = keep.to(DEVICE)
    problem = build_problem(q, k, v, keep, is_causal=True)
    _check(*_poisoned_run(problem, config), q, k, v, keep, causal="top_left")


@needs_kernel
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"m{c.block_m}n{c.block_n}")
def test_poisoned_hf_fp32_minimum_rows_average_v(config):
    # HF's float32 minimum on fp16 inputs: scaled by log2(e) it would overflow to -inf. A row
    # that is entirely the minimum must average V uniformly, as SDPA does.
    gen = torch.Generator().manual_seed(3)
    q = _randn(1, 2, 20, 64, dtype=torch.float16, gen=gen).to(DEVICE)
    k = _randn(1, 2, 50, 64, dtype=torch.float16, gen=gen).to(DEVICE)
    v = _randn(1, 2, 50, 64, dtype=torch.float16, gen=gen).to(DEVICE)
    lowest = torch.finfo(torch.float32).min
    mask = torch.zeros(1, 1, 20, 50).masked_fill(torch.rand(1, 1, 20, 50, generator=gen) < 0.3, lowest)
    mask[:, :, ::3] = lowest
    mask = mask.to(DEVICE)
    problem = build_problem(q, k, v, mask)
    out, lse = _poisoned_run(problem, config)
    _check(out, lse, q, k, v, mask)
    torch.testing.assert_close(out[0, :, 0].double().cpu(), v[0, :].double().mean(1).cpu(),
                               atol=2e-3, rtol=0)


# The sm90 TMA path (tensor descriptors) and two row blocks per program (halves) on the shared
# cases (head dims up to 128), with square and oblong tiles. On the GPU, tiles whose shared memory
# fits every case: Triton 3.6 asked for 246784 bytes (limit 232448) for 128x128 s3 with a
# per-head fp16 mask at d64.
if DEVICE == "cuda":
    FEATURES = [KernelConfig(128, 64, 8, 2, tma=True), KernelConfig(64, 64, 4, 3, tma=True),
                KernelConfig(128, 64, 4, 2, halves=2), KernelConfig(128, 32, 8, 2, tma=True, halves=2)]
else:
    FEATURES = [KernelConfig(32, 32, 4, 1, tma=True), KernelConfig(64, 16, 4, 1, tma=True),
                KernelConfig(64, 32, 4, 1, halves=2), KernelConfig(32, 16, 4, 1, tma=True, halves=2)]
FEATURE_CASES = [c for c in CASES if c.head_dim <= 128 and c.dv == c.head_dim and c.q_len * c.kv_len
                 and (DEVICE == "cuda" or c.work <= 100_000)]


@needs_kernel
@pytest.mark.parametrize("config", FEATURES, ids=str)
@pytest.mark.parametrize("case", FEATURE_CASES, ids=lambda c: c.id)
def test_poisoned_features(case, config):
    # fp16: the paths do not depend on the 16-bit type (the benchmarks check bf16 outputs).
    q, k, v, mask = make_inputs(case, torch.float16, seed=zlib.crc32(case.id.encode()), device=DEVICE)
    causal = case.causal
    problem = build_problem(q, k, v, mask, causal is not None, causal_alignment=causal or "top_left")
    _check(*_poisoned_run(problem, config), q, k, v, mask, causal=causal)


@needs_kernel
@pytest.mark.parametrize("scale", [-0.3, 0.0])
def test_negative_and_zero_scale(scale):
    gen = torch.Generator().manual_seed(4)
    q = _randn(1, 2, 37, 32, dtype=torch.float32, gen=gen).to(DEVICE)
    k = _randn(1, 1, 45, 32, dtype=torch.float32, gen=gen).to(DEVICE)
    v = _randn(1, 1, 45, 32, dtype=torch.float32, gen=gen).to(DEVICE)
    keep = (torch.rand(37, 45, generator=gen) > 0.5).to(DEVICE)
    for mask, causal in [(None, None), (None, "bottom_right"), (keep, None)]:
        out, lse = tqfa.attention(q, k, v, mask, causal is not None, scale, backend="triton",
                                  causal_alignment=causal or "top_left", return_lse=True)
        _check(out, lse, q, k, v, mask, causal, scale)


@needs_kernel
@pytest.mark.parametrize("shape", [(0, 2, 5, 7), (2, 2, 0, 7), (2, 2, 5, 0)], ids=["b0", "q0", "k0"])
def test_empty_problems(shape):
    b, h, sq, skv = shape
    q = torch.randn(b, h, sq, 16, device=DEVICE)
    k = v = torch.randn(b, 1, skv, 16, device=DEVICE)
    out, lse = tqfa.attention(q, k, v, backend="triton", return_lse=True)
    assert out.shape == (b, h, sq, 16) and lse.shape == (b, h, sq)
    assert (out == 0).all() and torch.isneginf(lse).all()


def _mem_available() -> int:
    if DEVICE == "cuda":
        return torch.cuda.mem_get_info()[0]
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))
    except (OSError, StopIteration):
        return 0


@needs_kernel
def test_int64_offsets():
    """Head strides just over 2^30 (int32 values): head 2's q/k/v/mask/out offsets pass 2^31,
    so any int32 product of a head index and a stride wraps."""
    head_stride, heads = 2**30 + 4096, 3
    if _mem_available() < 6 * head_stride * 2:
        pytest.skip("needs about 12 GiB of free memory for a 4 GiB buffer")
    sq, skv, d = 33, 50, 64
    buf = torch.empty(2 * head_stride + 2**16, dtype=torch.float16, device=DEVICE)  # pages stay untouched

    def view(shape, offset):
        gen = torch.Generator().manual_seed(offset)
        for h in range(heads):
            region = buf[h * head_stride + offset : h * head_stride + offset + shape[2] * shape[3]]
            region.copy_(torch.randn(region.numel(), generator=gen).to(region.dtype))
        return buf.as_strided(shape, (0, head_stride, shape[3], 1), offset)

    q = view((1, heads, sq, d), 0)
    k = view((1, heads, skv, d), sq * d)
    v = view((1, heads, skv, d), (sq + skv) * d)
    mask = view((1, heads, sq, skv), (sq + 2 * skv) * d)
    out = view((1, heads, sq, d), (sq + 2 * skv) * d + sq * skv).fill_(math.nan)
    lse = torch.full((1, heads, sq), math.nan, device=DEVICE)
    problem = build_problem(q, k, v, mask, is_causal=True, causal_alignment="bottom_right")
    launch.attention_forward(problem, out, lse, KernelConfig(32, 32, 4, 1), allow_tf32=False)
    _check(out, lse, q, k, v, mask, causal="bottom_right")


def _specialisation_classes() -> str:
    """Distinct Triton specialisation keys over many lengths, without and with a key-padding
    mask (run in a process where the kernel is compiled, not interpreted)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    from tqfa.triton import launch as compiled
    from tqfa.triton.kernel import attention_fwd_kernel as kernel

    sm90 = make_backend(GPUTarget("cuda", 90, 32))
    binder = create_function_from_signature(kernel.signature, kernel.params, sm90)

    def key(sq, skv, mask):
        def t(*shape):
            return torch.empty(*shape, dtype=torch.float16, device="meta")

        m = t(2, 1, 1, skv) if mask else None
        problem = build_problem(t(2, 8, sq, 64), t(2, 2, skv, 64), t(2, 2, skv, 64), m, True,
                                causal_alignment="bottom_right")
        lse = torch.empty(2, 8, sq, device="meta")
        config = KernelConfig(64, 64, 4, 2)
        _, kwargs = compiled.kernel_arguments(problem, t(2, 8, sq, 64), lse, config, False)
        kwargs.pop("num_warps"), kwargs.pop("num_stages")
        return str(binder(**kwargs)[1])

    lengths = [(1, 1), (1, 4097), (16, 16), (17, 113), (4096, 4096), (1000, 1031)]
    return " ".join(str(len({key(sq, skv, mask) for sq, skv in lengths})) for mask in (False, True))


def test_lengths_are_not_specialised():
    """Triton turns int arguments equal to 1 into constants and tags multiples of 16; lengths
    must be neither, or each new prompt length could compile a new kernel."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
            "import test_triton_kernel as t\n"
            "try:\n    print(t._specialisation_classes())\n"
            "except (ImportError, TypeError, AttributeError) as exc:\n    print('skip', exc)\n")
    without_mask, with_mask = _fresh_process(code).split(" ", 1)
    if without_mask == "skip":
        pytest.skip(f"triton's binder API differs here: {with_mask}")
    assert without_mask == "1"
    # A key-padding mask's batch stride is Skv: at most the three classes 1 / 16k / other.
    assert int(with_mask) <= 3


def _fresh_process(code: str, **env) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TQFA_BACKEND")}
    done = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


PROBE = (
    "import os, torch, tqfa\n"
    "from tqfa.problem import build_problem\n"
    "from tqfa.triton.backend import BACKEND\n"
    "def reason(dtype=torch.float16, dv=16, d=16):\n"
    "    q = torch.randn(1, 2, 3, d, dtype=dtype); v = torch.randn(1, 2, 3, dv, dtype=dtype)\n"
    "    r = BACKEND.supports(build_problem(q, q, v))\n"
    "    return f'{type(r).__name__}: {r}'\n"
)


def test_refusals_name_features_and_environment():
    lines = _fresh_process(
        PROBE
        + "print(reason(torch.float64)); print(reason(dv=32)); print(reason(d=288, dv=288))\n"
        + "print(reason())\n"
        + "os.environ['TRITON_INTERPRET'] = '1'\n"
        + "print(reason())\n"
    ).splitlines()
    assert lines[0] == "Unsupported: float64 is not supported by the triton kernel"
    assert lines[1].startswith("Unsupported: the triton kernel needs Dv == D, got D=16, Dv=32")
    assert lines[2].startswith("Unsupported: the triton kernel supports head dims up to 256, got 288")
    assert lines[3] == "str: tensors are on cpu and TRITON_INTERPRET is not set"
    assert lines[4].startswith("str: TRITON_INTERPRET=1 was set after")


def test_interpreter_refuses_bf16_and_runs_fp16():
    lines = _fresh_process(PROBE + "print(reason(torch.bfloat16)); print(reason())\n",
                           TRITON_INTERPRET="1").splitlines()
    assert lines == [
        "str: bf16 dots are wrong in the Triton interpreter (TRITON_INTERPRET=1)",
        "NoneType: None",
    ]


def test_without_triton_tqfa_imports_and_says_why():
    line = _fresh_process("import sys; sys.modules['triton'] = None\n" + PROBE + "print(reason())\n")
    assert line.startswith("str: triton is not usable: ")
