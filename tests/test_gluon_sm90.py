"""The sm90 warp-specialised Gluon kernel (KernelConfig.ws).

On an sm90 GPU (TQFA_TEST_DEVICE=cuda) it runs into NaN-poisoned outputs against the float64
oracle, on shapes whose loops run more than once: several K/V tiles per work item (the slot ring
wraps), several work items per persistent program, partial last tiles of queries and keys, GQA,
both causal alignments with rows that see no key, a [B, S, H, D] layout. Everywhere: the
configuration's rules, the fallback to kernel.py for calls the kernel does not serve, and
ahead-of-time sm90 compiles (no GPU needed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import pytest
import torch
import triton
from packaging.version import Version

import tqfa
from test_triton_kernel import DEVICE, _check, _poisoned_run, needs_kernel
from tqfa.problem import build_problem
from tqfa.triton.tuning import KernelConfig

K = KernelConfig
WS = [K(128, 128, 4, 2, tma=True, ws=True), K(128, 128, 4, 2, tma=True, ws=True, pingpong=True),
      K(128, 64, 4, 3, tma=True, ws=True, pingpong=True),
      K(128, 256, 4, 2, tma=True, ws=True, pingpong=True),
      K(128, 128, 4, 2, tma=True, ws=True, pingpong=True, persistent=True),
      K(128, 128, 4, 2, tma=True, ws=True, persistent=True),
      K(128, 256, 4, 2, tma=True, ws=True, persistent=True),
      K(128, 128, 4, 2, tma=True, ws=True, pingpong=True, persistent=True, snake=True)]
ON_SM90 = DEVICE == "cuda" and torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)
# (batch, q heads, kv heads, Sq, Skv, head dim, causal, [B, S, H, D] layout)
SHAPES = [
    (2, 4, 2, 300, 517, 128, None, False),
    (2, 4, 2, 300, 517, 128, "top_left", False),
    (1, 4, 1, 600, 333, 128, "bottom_right", False),
    (1, 2, 2, 200, 900, 64, "bottom_right", False),
    (1, 8, 1, 1000, 1000, 64, "top_left", True),
    (2, 4, 4, 5, 2000, 128, None, True),
    (2, 4, 2, 113, 100, 128, None, False),  # one key tile, under the mask (one Q buffer)
    # 576, 480 and 576 work items: a persistent program (at most one per SM) serves several.
    (4, 16, 4, 1100, 700, 128, "bottom_right", False),
    (3, 32, 8, 520, 1300, 64, None, True),
    (3, 16, 4, 1500, 900, 128, None, True),
]


def _inputs(shape, dtype, seed):
    b, hq, hkv, sq, skv, d, _, bshd = shape
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, s, h, d, generator=gen).to(dtype)
               for s, h in ((sq, hq), (skv, hkv), (skv, hkv)))
    if not bshd:
        q, k, v = (t.contiguous() for t in (q, k, v))
    return [t.transpose(1, 2).to(DEVICE) for t in (q, k, v)]


# Each configuration on the shapes whose head dim its shared memory fits (256 keys: d64 only),
# bf16; two of them in fp16 too.
RUNS = [(shape, config, dtype) for shape in SHAPES for config, dtype in
        [(c, torch.bfloat16) for c in WS] + [(WS[1], torch.float16), (WS[3], torch.float16)]
        if config.block_n * shape[5] <= 128 * 128]


@pytest.mark.skipif(not ON_SM90, reason="the ws kernel runs on an sm90 GPU only (TQFA_TEST_DEVICE=cuda)")
@pytest.mark.parametrize("shape, config, dtype", RUNS, ids=str)
def test_poisoned_ws_kernel(shape, config, dtype):
    from tqfa.triton import gluon_launch

    q, k, v = _inputs(shape, dtype, seed=zlib.crc32(str(shape).encode()))
    causal = shape[6]
    problem = build_problem(q, k, v, None, causal is not None, causal_alignment=causal or "top_left")
    assert gluon_launch.ws_strides(problem, torch.empty_like(q))  # the ws kernel runs, not kernel.py
    _check(*_poisoned_run(problem, config), q, k, v, causal=causal)


@needs_kernel
def test_ws_configuration_falls_back_where_it_does_not_apply():
    # A bool mask (and, under the interpreter, every call) goes to kernel.py on the same tiles.
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 2, n, 64, generator=gen).half().to(DEVICE) for n in (40, 70, 70))
    keep = (torch.rand(40, 70, generator=gen) > 0.3).to(DEVICE)
    problem = build_problem(q, k, v, keep, False)
    _check(*_poisoned_run(problem, WS[1]), q, k, v, keep)


def test_ws_configuration_rules():
    assert str(WS[1]) == "128x128 w4 s2 tma ws pp"
    with pytest.raises(ValueError, match="ws needs tma"):
        K(128, 128, 4, 2, ws=True)
    with pytest.raises(ValueError, match="ws needs tma"):
        K(64, 128, 4, 2, tma=True, ws=True)
    with pytest.raises(ValueError, match="pingpong and persistent are options of the ws kernel"):
        K(128, 128, 4, 2, tma=True, pingpong=True)
    with pytest.raises(ValueError, match="pingpong and persistent are options of the ws kernel"):
        K(128, 128, 4, 2, tma=True, persistent=True)
    with pytest.raises(ValueError, match="snake is an order of persistent ws grids"):
        K(128, 128, 4, 2, tma=True, ws=True, pingpong=True, snake=True)
    assert str(WS[7]) == "128x128 w4 s2 tma ws pp pers snake"
    assert KernelConfig.from_json('{"block_m": 128, "block_n": 128, "num_warps": 4, '
                                  '"num_stages": 2, "tma": true, "ws": true}') == WS[0]


def test_descriptor_layouts_are_the_default_for_their_block():
    # gluon_launch caches the shared-memory layout per (rows, head dim, dtype): each descriptor
    # still gets the layout Gluon picks for its block and dtype.
    from triton.experimental.gluon import language as gl

    from tqfa.triton import gluon_launch

    for dtype, gl_dtype in ((torch.bfloat16, gl.bfloat16), (torch.float16, gl.float16)):
        for rows, head_dim in ((64, 128), (128, 128), (64, 64), (256, 64)):
            t = torch.empty(2, 4, 300, head_dim, dtype=dtype)
            desc = gluon_launch._descriptor(t, t.stride(), rows)
            assert desc.block_shape == (1, 1, rows, head_dim)
            assert desc.layout == gl.NVMMASharedLayout.get_default_for([1, 1, rows, head_dim], gl_dtype)


def _compile_sm90(config: KernelConfig, head_dim: int, causal: bool = True) -> None:
    """Compile the ws kernel for sm90 as `python -m tqfa compile-check` does (its "plain" meta
    problem, causal, or its "dense" one); prints what the test checks as JSON. Runs in a child
    process (_last_json_line)."""
    from tqfa.triton import compile_check
    from tqfa.triton.gluon_sm90 import attention_fwd_ws_kernel

    problem = compile_check.meta_problem(head_dim, "bf16", "plain" if causal else "dense")
    fn, kwargs = compile_check._prefill_launch(config, problem)
    assert fn is attention_fwd_ws_kernel  # not kernel.py's fallback
    compiled = compile_check.compile_kernel(fn, kwargs, "sm90", config)
    ptx = compiled.asm["ptx"]
    print(json.dumps({"wgmma": ptx.count("wgmma.mma_async"), "shared": compiled.metadata.shared,
                      "setmaxnreg": "setmaxnreg.dec" in ptx, "tma": "cp.async.bulk.tensor" in ptx,
                      "spills": compile_check.resources(compiled, "sm90")[1]}))


def _last_json_line(code: str, cwd: str):
    """Run `code` in a Python process without TRITON_INTERPRET (Gluon's library functions are
    interpreted functions in a process that imported Gluon with it set) and parse the last line
    it prints as JSON."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    # The child imports tqfa from where this process did (PYTHONPATH may be relative).
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(tqfa.__file__)),
                                         env.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=cwd, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


# Persistent: two Q buffers (229736 bytes of shared memory at d128).
@pytest.mark.parametrize("index, head_dim, causal", [
    (0, 128, True), (1, 128, True), (2, 64, True), (3, 64, True), (4, 128, True), (4, 128, False),
    (5, 128, True), (5, 64, True), (6, 64, False), (6, 64, True), (7, 128, True)])
def test_ws_kernel_compiles_for_sm90(index, head_dim, causal):
    code = f"import test_gluon_sm90 as t; t._compile_sm90(t.WS[{index}], {head_dim}, {causal})"
    report = _last_json_line(code, os.path.dirname(__file__))
    # Two consumer warpgroups, each issuing its QK and PV products as wgmma; a producer warp
    # that drops its registers (setmaxnreg); TMA copies in and out; within sm90's shared memory.
    assert report["wgmma"] >= 2 * head_dim // 16
    assert report["setmaxnreg"] and report["tma"]
    assert report["shared"] <= 232448
    # Spills (bytes), as measured. One Q buffer: 256 keys at d64 spill 24 under triton 3.6 and 8
    # under 3.9, no other tile does. Two (persistent: one copy of the item loop per buffer): 8-16
    # under triton 3.6; 56-72 at d128 and 192-216 at d64 under 3.9.
    if not WS[index].persistent:
        limit = 24 if WS[index].block_n == 256 else 0
    elif Version(triton.__version__) < Version("3.7"):
        limit = 16
    else:
        limit = 72 if head_dim == 128 else 216
    assert report["spills"] <= limit


BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
# SASS as cuobjdump prints it: UR4 is written after a branch that can skip the write, and a wgmma
# past the join reads it; UR8 is written before the branch.
_SKIPPED_WRITE = """
        /*0000*/                   UMOV UR8, 0x1 ;
        /*0010*/              @!P0 BRA 0x0030 ;
        /*0020*/                   UMOV UR4, UR8 ;
        /*0030*/                   HGMMA.64x128x16.F32.BF16 R24, gdesc[UR{}], RZ, !UPT ;
        /*0040*/                   EXIT ;
"""


def test_sass_check_finds_a_descriptor_written_on_one_path_only():
    sys.path.insert(0, BENCHMARKS)
    try:
        import ws_sass_check
    finally:
        sys.path.remove(BENCHMARKS)
    count, bad = ws_sass_check.unset_reads(_SKIPPED_WRITE.format(4))
    assert count == 1 and len(bad) == 1 and "UR[4, 5, 6, 7]" in bad[0]
    # UR8 is set on both paths, UR9-11 on neither: only those are reported.
    count, bad = ws_sass_check.unset_reads(_SKIPPED_WRITE.format(8))
    assert count == 1 and len(bad) == 1 and "UR[9, 10, 11]" in bad[0]


def test_ws_kernels_read_descriptors_set_on_every_path():
    # Every wgmma's descriptors must be written on every path to it, in each kernel the launcher
    # picks (ws_sass_check.CASES), two Q buffers with causal items on the diagonal among them:
    # with the buffer index computed at run time, triton 3.6's ptxas wrote some only in the
    # unmasked loop's preheader (h200-2026-12-01d.md).
    code = ("import json, ws_sass_check as w\n"
            "print(json.dumps([(buffers, d, config.block_n,\n"
            "                   w.unset_reads(w.sass(config, d, causal, buffers)))\n"
            "                  for _, d, causal, config, buffers in w.CASES]))")
    results = _last_json_line(code, BENCHMARKS)
    assert sorted(buffers for buffers, *_ in results) == [1, 2, 2, 2, 2, 2, 2]
    for buffers, head_dim, block_n, (count, bad) in results:
        # Per copy of the item loop: two consumers, an unmasked and a masked loop, each with a
        # QK product of head_dim / 16 wgmma and a PV product of block_n / 16.
        assert count >= buffers * 4 * (head_dim + block_n) // 16 and bad == []
