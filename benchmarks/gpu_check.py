"""The triton kernel on a GPU in one call: correctness, then speed next to its peers.

    PYTHONPATH=src python3 benchmarks/gpu_check.py --out "$OUT"          # on the H100
    TRITON_INTERPRET=1 PYTHONPATH=src python benchmarks/gpu_check.py --smoke --out /tmp/x  # CPU dry run

1. Correctness, against the float64 oracle of tests/:
   - pytest: the shared matrix (tests/test_agreement.py, triton rows) and tests/test_triton_kernel.py
     (poisoned outputs, the int64 offset test with a 4 GiB buffer, refusals) on the GPU;
   - every shared case in fp16 / bf16 / fp32 launched into NaN-filled outputs (all written?);
   - compiled variants counted over many sequence lengths (no compile per length).
   Meanwhile worker processes compile the benchmark's kernels (Triton and Inductor disk caches).
2. Speed, bf16, B2 Hq32 Hkv8 S4096, D 128 / 64 / 96, causal and not: tqfa (default and candidate
   configurations) against SDPA flash / cuDNN / efficient and compiled FlexAttention, median of
   triton.testing.do_bench on fresh random inputs; TFLOP/s = 4*B*Hq*Sq*Skv*D (half when causal).
   First-call seconds of a new shape in a fresh process with an empty Triton cache.
Writes summary.md, results.json and pytest.log under --out; prints the table last.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, os.path.join(ROOT, "tests")]

import providers  # noqa: E402  (benchmarks/, after the path set-up)
import tqfa  # noqa: E402
from providers import Shape, Unavailable  # noqa: E402
from tqfa.device import probe  # noqa: E402
from tqfa.problem import build_problem  # noqa: E402
from tqfa.triton import backend as triton_backend  # noqa: E402
from tqfa.triton.tuning import INTERPRETER, KernelConfig, select_config  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
FLOOR = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 4e-6}  # as tests/test_agreement.py
K = KernelConfig
# Benchmark configurations per head dim (16-bit); the default of select_config comes first.
CANDIDATES = {
    (128, False): [K(128, 64, 8, 3), K(128, 64, 8, 4), K(128, 128, 8, 2), K(64, 128, 4, 3)],
    (128, True): [K(128, 64, 8, 4), K(128, 128, 8, 2), K(64, 64, 4, 3)],
    (64, False): [K(128, 64, 8, 4), K(128, 64, 8, 5), K(128, 32, 8, 4), K(64, 64, 4, 3)],
    (96, False): [K(128, 64, 8, 3), K(128, 64, 8, 4)],
}
PEERS = ["sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "flex-attention"]


def bench_shapes(smoke: bool) -> list[Shape]:
    if smoke:
        return [Shape(1, 4, 2, 128, 128, 64, causal=c) for c in (False, True)] + [
            Shape(2, 4, 2, 96, 96, 64, padding=True), Shape(1, 4, 2, 1, 300, 64, causal=True)]
    shapes = [Shape(2, 32, 8, 4096, 4096, d, causal=c) for d in (128, 64, 96) for c in (False, True)]
    # The masked configuration; then one decode step, for information (the performance issue's).
    return shapes + [Shape(2, 32, 8, 4096, 4096, 128, padding=True),
                     Shape(1, 32, 8, 1, 131072, 128, causal=True)]


def target_of(device: str):
    return INTERPRETER if triton_backend._launcher().INTERPRETED else probe(torch.device(device))


def config_name(c: KernelConfig) -> str:
    return f"{c.block_m}x{c.block_n} w{c.num_warps} s{c.num_stages}"


def tqfa_config_fn(shape: Shape, q, k, v, mask, config: KernelConfig):
    """The kernel with one given configuration, through the launcher (outputs allocated once)."""
    launch = triton_backend._launcher()
    problem = build_problem(q, k, v, mask, shape.causal, causal_alignment="bottom_right")
    out, lse = torch.empty_like(q), torch.empty(q.shape[:3], device=q.device)
    return lambda: (launch.attention_forward(problem, out, lse, config, allow_tf32=False), out)[1]


def configs_for(shape: Shape, q, k, v, mask, device: str) -> list[KernelConfig]:
    problem = build_problem(q, k, v, mask, shape.causal, causal_alignment="bottom_right")
    default = select_config(problem, target_of(device))
    return [default] + [c for c in CANDIDATES.get((shape.head_dim, shape.padding), []) if c != default]


# ---------------------------------------------------------------------------------------------
# 1. Correctness


def poisoned_matrix(device: str, dtypes: list[str], smoke: bool) -> dict:
    """Every shared case, launched into NaN outputs, against the oracle (the agreement rule)."""
    from cases import CASES, make_inputs
    from oracle import reference

    launch = triton_backend._launcher()
    result = {"passed": 0, "skipped": 0, "failed": []}
    for case in CASES:
        if smoke and case.work > 100_000:
            continue
        for name in dtypes:
            dtype = DTYPES[name]
            q, k, v, mask = make_inputs(case, dtype, seed=zlib.crc32(case.id.encode()), device=device)
            problem = build_problem(q, k, v, mask, case.causal is not None,
                                    causal_alignment=case.causal or "top_left")
            if triton_backend.supports(problem) is not None or problem.q_len * problem.kv_len == 0:
                result["skipped"] += 1
                continue
            out = torch.full_like(q, math.nan)
            lse = torch.full(q.shape[:3], math.nan, device=device)
            launch.attention_forward(problem, out, lse, select_config(problem, target_of(device)), False)
            cpu = [t.cpu() if t is not None else None for t in (q, k, v, mask)]
            ref_out, ref_lse = reference(*cpu, causal=case.causal)
            naive_out, _ = reference(*cpu, causal=case.causal, matmul_dtype=dtype)
            out, lse = out.double().cpu(), lse.double().cpu()
            err = (out - ref_out).abs().max().item()
            budget = 2 * (naive_out - ref_out).abs().max().item() + FLOOR[dtype]
            finite = torch.isfinite(ref_lse)
            lse_err = (lse[finite] - ref_lse[finite]).abs().max().item() if finite.any() else 0.0
            problems = []
            if out.isnan().any() or lse.isnan().any():
                problems.append(f"{int(out.isnan().sum())} out / {int(lse.isnan().sum())} lse NaN")
            if not torch.equal(torch.isneginf(lse), torch.isneginf(ref_lse)):
                problems.append("rows without keys differ")
            if not err <= budget:
                problems.append(f"out error {err:.3g} > {budget:.3g}")
            if not lse_err <= 1e-4 * (1 + ref_lse[finite].abs().max().item() if finite.any() else 1):
                problems.append(f"lse error {lse_err:.3g}")
            if problems:
                result["failed"].append(f"{case.id} {name}: {'; '.join(problems)}")
            else:
                result["passed"] += 1
    return result


def compiled_variants() -> int | None:
    from tqfa.triton.kernel import attention_fwd_kernel

    caches = getattr(attention_fwd_kernel, "device_caches", None)
    return None if caches is None else sum(len(c[0]) for c in caches.values())


def recompile_check(device: str) -> dict:
    """Compiled kernels before and after calls at many new lengths, per layout."""
    dtype = torch.float16
    lengths = [(100, 100), (101, 357), (1000, 1000), (4097, 4096), (1, 1000), (2, 17), (333, 4095)]
    report = {}
    for label, d, mask_kind in [("d128 causal", 128, None), ("d64 keypad", 64, "keypad"), ("d80", 80, None)]:
        counts = []
        for sq, skv in lengths:
            q = torch.randn(2, 8, sq, d, device=device, dtype=dtype)
            k, v = (torch.randn(2, 2, skv, d, device=device, dtype=dtype) for _ in range(2))
            mask = torch.zeros(2, 1, 1, skv, device=device, dtype=dtype) if mask_kind else None
            tqfa.attention(q, k, v, mask, is_causal=mask is None, causal_alignment="bottom_right",
                           backend="triton")
            counts.append(compiled_variants())
        report[label] = {"lengths": lengths, "compiled_after_each": counts}
    return report


def first_call_seconds(device: str) -> dict:
    """A fresh process with an empty Triton cache: the first call at a new shape, then another
    new length (which must not compile)."""
    code = (
        "import json, time, torch, tqfa\n"
        f"dev, dt = {device!r}, torch.bfloat16 if {device!r} == 'cuda' else torch.float16\n"
        "def call(s):\n"
        "    q = torch.randn(2, 32, s, 128, device=dev, dtype=dt)\n"
        "    k, v = (torch.randn(2, 8, s, 128, device=dev, dtype=dt) for _ in range(2))\n"
        "    torch.cuda.synchronize() if dev == 'cuda' else None\n"
        "    t = time.perf_counter(); tqfa.attention(q, k, v, is_causal=True, backend='triton')\n"
        "    torch.cuda.synchronize() if dev == 'cuda' else None\n"
        "    return time.perf_counter() - t\n"
        "s = 3000 if dev == 'cuda' else 40\n"
        "print(json.dumps({'first_call_s': call(s), 'new_length_s': call(s + 37)}))\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TRITON_CACHE_DIR": cache, "PYTHONPATH": os.path.join(ROOT, "src")}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# 2. Speed


def make_bench_inputs(shape: Shape, device: str, dtype):
    return providers.make_inputs(shape, dtype, device, seed=shape.head_dim + shape.causal)


def prewarm(jobs: list, device: str, dtype) -> None:
    """Worker: compile (by running once) every (shape, provider/config) job into the disk caches."""
    for shape_args, what in jobs:
        shape = Shape(*shape_args)
        q, k, v, mask = make_bench_inputs(shape, device, dtype)
        try:
            fn = (providers.PROVIDERS[what](shape, q, k, v, mask) if isinstance(what, str)
                  else tqfa_config_fn(shape, q, k, v, mask, K(*what)))
            fn()
        except Exception as exc:  # reported by the timed run, which meets the same error
            print(f"prewarm {shape.id} {what}: {type(exc).__name__}: {exc}", file=sys.stderr)


def start_prewarm(shapes, device: str, dtype_name: str, workers: int) -> list[subprocess.Popen]:
    jobs = []
    for shape in shapes:
        heads = (shape.q_heads, shape.kv_heads, shape.kv_heads)
        dtype = DTYPES[dtype_name]
        q, k, v = (torch.empty(shape.batch, h, shape.q_len, shape.head_dim, device="meta", dtype=dtype)
                   for h in heads)
        mask = None
        if shape.padding:
            mask = torch.empty(shape.batch, 1, 1, shape.kv_len, device="meta", dtype=dtype)
        fields = dataclasses.astuple(shape)
        jobs += [(fields, dataclasses.astuple(c)) for c in configs_for(shape, q, k, v, mask, device)]
        if device == "cuda":
            jobs.append((fields, "flex-attention"))
    procs = []
    for i in range(workers):
        mine = jobs[i::workers]
        command = [sys.executable, __file__, "--prewarm", json.dumps(mine), "--device", device,
                   "--dtype", dtype_name]
        env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
    return procs


def peer_fn(name: str, shape: Shape, q, k, v, mask):
    """A peer on the same inputs; an SDPA kernel that refuses GQA gets K/V repeated per q head
    (outside the timed region; its row says so)."""
    try:
        return providers.PROVIDERS[name](shape, q, k, v, mask)
    except Unavailable:
        if not name.startswith("sdpa") or shape.kv_heads == shape.q_heads:
            raise
    group = shape.q_heads // shape.kv_heads
    k, v = (t.repeat_interleave(group, dim=1) for t in (k, v))
    fn = providers.PROVIDERS[name](dataclasses.replace(shape, kv_heads=shape.q_heads), q, k, v, mask)
    fn.kv_repeated = True
    return fn


def bench_entries(shape: Shape, q, k, v, mask, device: str):
    """(name, builder) pairs, most wanted first in case the time budget runs out: the default
    configuration, the public call, the peers, then the candidate configurations."""
    default, *candidates = configs_for(shape, q, k, v, mask, device)
    yield (f"tqfa {config_name(default)} (default)",
           functools.partial(tqfa_config_fn, shape, q, k, v, mask, default))
    yield "tqfa attention()", functools.partial(providers.PROVIDERS["tqfa-triton"], shape, q, k, v, mask)
    for peer in PEERS:
        yield peer, functools.partial(peer_fn, peer, shape, q, k, v, mask)
    for c in candidates:
        yield f"tqfa {config_name(c)}", functools.partial(tqfa_config_fn, shape, q, k, v, mask, c)


def bench(shapes, device: str, dtype, deadline: float) -> list[dict]:
    rows = []
    for shape in shapes:
        q, k, v, mask = make_bench_inputs(shape, device, dtype)
        ref = tqfa.attention(q, k, v, mask, is_causal=shape.causal, causal_alignment="bottom_right",
                             backend="triton")
        entries = list(bench_entries(shape, q, k, v, mask, device))
        for name, build in entries:
            row = {"shape": shape.id, "provider": name}
            if time.monotonic() > deadline:
                row["error"] = "skipped: time budget"
            else:
                try:
                    fn = build()
                    if getattr(fn, "kv_repeated", False):
                        row["provider"] += " (kv repeated)"
                    got = fn()
                    if isinstance(got, torch.Tensor):
                        row["max_abs_diff_vs_tqfa"] = (got.float() - ref.float()).abs().max().item()
                    seconds = providers.median_seconds(fn, device)
                    row.update(ms=seconds * 1e3, tflops=shape.flops / seconds / 1e12)
                    if shape.q_len == 1:
                        row["kv_gbps"] = shape.kv_bytes(dtype) / seconds / 1e9
                except Unavailable as exc:
                    row["error"] = str(exc)
                except Exception as exc:  # a peer failing must not lose the other rows
                    first_line = (str(exc).splitlines() or [""])[0][:160]
                    row["error"] = f"{type(exc).__name__}: {first_line}"
            rows.append(row)
            print(json.dumps(row), flush=True)
        del q, k, v, mask, ref
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| shape | provider | ms | TFLOP/s (decode: K/V GB/s) |", "| --- | --- | ---: | ---: |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['shape']} | {r['provider']} | - | {r['error'][:90]} |")
        else:
            rate = f"{r['kv_gbps']:.0f} GB/s" if "kv_gbps" in r else f"{r['tflops']:.0f}"
            lines.append(f"| {r['shape']} | {r['provider']} | {r['ms']:.3f} | {rate} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    providers.benchmark_arguments(parser, "gpu_check", budget_s=420)
    parser.add_argument("--prewarm", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="bf16", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prewarm:
        prewarm(json.loads(args.prewarm), args.device, DTYPES[args.dtype])
        return 0

    start = time.monotonic()
    os.makedirs(args.out, exist_ok=True)
    results = {"environment": providers.environment(args.device), "command": " ".join(sys.argv)}
    print(json.dumps(results["environment"]), flush=True)
    dtype_name = "fp16" if args.smoke else "bf16"
    shapes = bench_shapes(args.smoke)

    pytest_proc = None if args.skip_tests else providers.start_pytest(
        args.out, args.device, "triton or not agreement",
        ["tests/test_agreement.py", "tests/test_triton_kernel.py"], workers=0 if args.smoke else 6)
    warmers = start_prewarm(shapes, args.device, dtype_name, workers=1 if args.smoke else 4)
    if pytest_proc is not None:
        results.update(providers.pytest_summary(args.out, pytest_proc.wait()))
        print(f"[pytest] {time.monotonic() - start:.0f}s {results['pytest_tail']}", flush=True)
    for w in warmers:
        w.wait()
    results["prewarm_done_s"] = time.monotonic() - start
    if not args.skip_tests:
        dtypes = ["fp16", "fp32"] if args.smoke else ["fp16", "bf16", "fp32"]
        providers.guarded(results, "poisoned_matrix", poisoned_matrix, args.device, dtypes, args.smoke)
        if args.device == "cuda":
            providers.guarded(results, "recompile", recompile_check, args.device)
        providers.guarded(results, "first_call", first_call_seconds, args.device)
    results["correctness_done_s"] = time.monotonic() - start

    rows = bench(shapes, args.device, DTYPES[dtype_name], deadline=start + args.budget_s)
    results["bench"] = rows
    results["total_s"] = time.monotonic() - start
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    keys = ("pytest_returncode", "pytest_tail", "pytest_failures", "poisoned_matrix", "recompile",
            "first_call", "total_s")
    summary = {k: results.get(k) for k in keys}
    text = "\n\n".join([json.dumps(results["environment"]), json.dumps(summary, indent=1, default=str),
                        table(rows)]) + "\n"
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    matrix = results.get("poisoned_matrix", {})
    ok = results.get("pytest_returncode", 0) == 0 and not matrix.get("failed") and "error" not in matrix
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
