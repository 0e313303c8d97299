"""The decode (split-KV) path on a GPU in one call: correctness, then speed next to its peers.

    PYTHONPATH=src python3 benchmarks/gpu_decode.py --out "$OUT"            # on the H100
    TRITON_INTERPRET=1 PYTHONPATH=src python benchmarks/gpu_decode.py --smoke --out /tmp/x

1. Correctness (background, while workers compile the benchmark's kernels): pytest of
   tests/test_triton_decode.py (NaN-poisoned outputs, explicit split counts) and the triton rows
   of the shared matrix on the device. Then: compiled variants over many new KV lengths, and the
   host (Python) time of one tqfa.attention decode call, with a profile of it.
2. Speed, bf16, benchmarks/shapes.py GPU_DECODE: K/V bytes read once / GPU time per call, from
   CUDA-graph replays of 40 calls that rotate over enough input copies to defeat the 50 MB L2
   (host time never counts; one decode step is tens of microseconds of GPU against about
   100 of Python). tqfa's default plan, the public call, SDPA flash / cuDNN, compiled Flex.
3. Threshold: the decode kernel against the prefill kernel for Sq = 1 .. 64.
4. Variants: a few configurations beside the default, each shape.
Writes summary.md, results.json, profile.txt and pytest.log under --out; prints the tables last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, os.path.join(ROOT, "tests")]

import providers  # noqa: E402  (benchmarks/, after the path set-up)
import shapes  # noqa: E402
import tqfa  # noqa: E402
from providers import Shape, Unavailable  # noqa: E402
from tqfa.device import probe  # noqa: E402
from tqfa.problem import build_problem  # noqa: E402
from tqfa.triton import backend as triton_backend  # noqa: E402
from tqfa.triton import decode_launch  # noqa: E402
from tqfa.triton.tuning import INTERPRETER, sm90  # noqa: E402
from tqfa.triton.tuning import default_config as tuned_default  # noqa: E402
from tqfa.triton.tuning.config import DecodeConfig  # noqa: E402

PEERS = ["sdpa-flash", "sdpa-cudnn", "flex-attention"]
D = DecodeConfig
# Beside the default (block_m, block_n, num_warps, num_stages, programs_per_sm, min_split_tiles):
# 4 warps, more splits (run 1's rule), 64-key tiles at two programs per SM, 1-tile splits.
VARIANTS = [(16, 128, 4, 3, 1, 2), (32, 128, 8, 3, 2, 2), (32, 128, 8, 3, 4, 4), (64, 64, 8, 4, 2, 2),
            (32, 128, 8, 3, 1, 1)]
THRESHOLD_Q = [1, 4, 8, 16, 32, 64]
L2_ROTATION_BYTES = 150e6  # inputs read per graph round: three times the H100's L2


def on_gpu(device: str) -> bool:
    return torch.device(device).type == "cuda"


def multiprocessors(device: str) -> int:
    return probe(torch.device(device)).multiprocessors if on_gpu(device) else 1


def default_config(problem) -> DecodeConfig:
    """The shipped configuration (also past max_q_len: the threshold sweep runs there)."""
    target = probe(problem.device) if on_gpu(str(problem.device)) else INTERPRETER
    return tuned_default(problem, target, kind="decode")


def decode_fn(shape: Shape, q, k, v, mask, config: DecodeConfig | None, device: str,
              num_splits: int | None = None):
    """The decode launcher with one configuration (None: the default), outputs allocated once."""
    problem = build_problem(q, k, v, mask, shape.causal, causal_alignment="bottom_right")
    config = config or default_config(problem)
    out, lse = torch.empty_like(q), torch.empty(q.shape[:3], device=q.device)
    sms = multiprocessors(device)

    def fn():
        decode_launch.decode_forward(problem, out, lse, config, sms, num_splits)
        return out

    fn.plan = decode_launch.plan_splits(problem, config, sms, num_splits)
    fn.programs = fn.plan.programs(problem)
    return fn


def prefill_fn(shape: Shape, q, k, v, mask, device: str):
    from tqfa.triton.tuning import INTERPRETER as TARGET_INTERPRETER
    from tqfa.triton.tuning import select_config

    launch = triton_backend._launcher()
    problem = build_problem(q, k, v, mask, shape.causal, causal_alignment="bottom_right")
    config = select_config(problem, probe(q.device) if on_gpu(device) else TARGET_INTERPRETER)
    out, lse = torch.empty_like(q), torch.empty(q.shape[:3], device=q.device)
    return lambda: (launch.attention_forward(problem, out, lse, config, False), out)[1]


def variant_configs(base: DecodeConfig, smoke: bool) -> list[tuple[str, DecodeConfig]]:
    if smoke:
        return [("smoke 2 programs", dataclasses.replace(base, programs_per_sm=2, min_split_tiles=1))]
    configs = [D(*fields, base.max_q_len) for fields in VARIANTS]
    return [(str(c), c) for c in configs if c != base]


# ---------------------------------------------------------------------------------------------
# 1. Correctness


def compiled_variants() -> dict:
    from tqfa.triton.decode_kernel import decode_merge_kernel, decode_split_kernel

    def count(fn):
        caches = getattr(fn, "device_caches", None)
        return None if caches is None else sum(len(c[0]) for c in caches.values())

    return {"split": count(decode_split_kernel), "merge": count(decode_merge_kernel)}


def recompile_check(device: str) -> dict:
    """Compiled kernels after calls at many new KV lengths (bf16, with and without padding)."""
    report = {}
    for padded in (False, True):
        counts = []
        for skv in [1000, 1001, 4097, 8191, 8192, 12345, 65537, 131071]:
            shape = Shape(2, 32, 8, 1, skv, 128, causal=True, padding=padded)
            q, k, v, mask = providers.make_inputs(shape, torch.bfloat16, device)
            tqfa.attention(q, k, v, mask, is_causal=True, causal_alignment="bottom_right", backend="triton")
            counts.append(compiled_variants())
        report["keypad" if padded else "plain"] = counts
    return report


def host_seconds(device: str, dtype) -> dict:
    """Python time per call, the GPU queue never the bottleneck (B1 Skv4096: a few us of GPU)."""
    shape = Shape(1, 32, 8, 1, 4096, 128, causal=True) if on_gpu(device) else Shape(1, 4, 2, 1, 300, 64)
    q, k, v, _ = providers.make_inputs(shape, dtype, device)
    problem = build_problem(q, k, v, None, True, causal_alignment="bottom_right")
    config, sms = default_config(problem), multiprocessors(device)
    out, lse = torch.empty_like(q), torch.empty(q.shape[:3], device=q.device)
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    calls = {
        "tqfa.attention": lambda: tqfa.attention(q, k, v, is_causal=True,
                                                 causal_alignment="bottom_right", backend="triton"),
        "build_problem": lambda: build_problem(q, k, v, None, True, causal_alignment="bottom_right"),
        "decode_forward (launches)": lambda: decode_launch.decode_forward(problem, out, lse, config, sms),
        "sdpa (default kernel)": lambda: sdpa(q, k, v, enable_gqa=True),
    }
    return providers.host_microseconds(calls, device, profiled="tqfa.attention", rounds=5)


# ---------------------------------------------------------------------------------------------
# 2. Speed


def entries(shape: Shape, device: str, smoke: bool, variants: bool, base: DecodeConfig):
    """(name, builder(q, k, v, mask)): the default plan, the public call and the peers; or the
    variants."""
    if variants:
        for name, config in variant_configs(base, smoke):
            yield f"tqfa {name}", lambda *t, config=config: decode_fn(shape, *t, config, device)
        return
    yield "tqfa decode (default)", lambda *t: decode_fn(shape, *t, None, device)
    yield "tqfa attention()", lambda *t: providers.PROVIDERS["tqfa-triton"](shape, *t)
    for peer in PEERS:
        yield peer, lambda *t, peer=peer: providers.PROVIDERS[peer](shape, *t)


def measure(name: str, build, shape: Shape, copies: list, device: str, ref) -> dict:
    row = {"shape": shape.id, "provider": name}
    try:
        fns = [build(*inputs) for inputs in copies]
        got = fns[0]()
        if isinstance(got, torch.Tensor) and ref is not None:
            row["max_abs_diff"] = (got.float() - ref.float()).abs().max().item()
        if hasattr(fns[0], "plan"):
            row.update(splits=fns[0].plan.num_splits, programs=fns[0].programs)
        try:
            seconds = providers.graph_seconds(fns, device)
        except Exception as exc:  # a provider that cannot be captured: events around each call
            row["timing"] = f"do_bench ({type(exc).__name__} in graph capture)"
            torch.cuda.synchronize()
            seconds = providers.median_seconds(fns[0], device)
        row.update(us=seconds * 1e6, kv_gbps=shape.kv_bytes(copies[0][0].dtype) / seconds / 1e9)
    except Unavailable as exc:
        row["error"] = str(exc)
    except Exception as exc:  # a peer failing must not lose the other rows
        row["error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
    print(json.dumps(row), flush=True)
    return row


def input_copies(shape: Shape, dtype, device: str, smoke: bool) -> list:
    count = 1 if smoke else max(1, min(16, int(-(-L2_ROTATION_BYTES // shape.kv_bytes(dtype)))))
    return [providers.make_inputs(shape, dtype, device, seed=shape.kv_len + i) for i in range(count)]


def bench(shape_list, device: str, dtype, deadline: float, smoke: bool, variants: bool) -> list[dict]:
    rows = []
    for shape in shape_list:
        copies = input_copies(shape, dtype, device, smoke)
        q, k, v, mask = copies[0]
        ref = tqfa.attention(q, k, v, mask, is_causal=shape.causal, causal_alignment="bottom_right",
                             backend="chunked")
        base = default_config(build_problem(q, k, v, mask, shape.causal, causal_alignment="bottom_right"))
        for name, build in entries(shape, device, smoke, variants, base):
            if time.monotonic() > deadline:
                rows.append({"shape": shape.id, "provider": name, "error": "skipped: time budget"})
                continue
            rows.append(measure(name, build, shape, copies, device, ref))
        del copies, q, k, v, mask, ref
    return rows


def threshold(device: str, dtype, deadline: float, smoke: bool) -> list[dict]:
    """Decode kernel (default configuration) against the prefill kernel as Sq grows."""
    rows = []
    bases = [Shape(2, 4, 2, 1, 300, 64, causal=True)] if smoke else [
        Shape(8, 32, 8, 1, 8192, 128, causal=True), Shape(1, 32, 8, 1, 32768, 128, causal=True)]
    for base in bases:
        for sq in THRESHOLD_Q[:2] if smoke else THRESHOLD_Q:
            shape = dataclasses.replace(base, q_len=sq)
            copies = input_copies(shape, dtype, device, smoke)
            for name, build in [("decode", lambda *t, s=shape: decode_fn(s, *t, None, device)),
                                ("prefill", lambda *t, s=shape: prefill_fn(s, *t, device))]:
                if time.monotonic() > deadline:
                    break
                rows.append(measure(name, build, shape, copies, device, None))
    return rows


def table(rows: list[dict], peers: list[dict] | None = None) -> str:
    """Markdown rows; "x FA2" divides by the sdpa-flash row of the same shape (in `peers`)."""
    fa2 = {r["shape"]: r["kv_gbps"] for r in peers or rows
           if r["provider"] == "sdpa-flash" and "kv_gbps" in r}
    lines = ["| shape | provider | splits | us | K/V GB/s | x FA2 |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['shape']} | {r['provider']} | | - | {r['error'][:80]} | |")
            continue
        ratio = f"{r['kv_gbps'] / fa2[r['shape']]:.2f}" if r["shape"] in fa2 else ""
        lines.append(f"| {r['shape']} | {r['provider']} | {r.get('splits', '')} | {r['us']:.1f} | "
                     f"{r['kv_gbps']:.0f} | {ratio} |")
    return "\n".join(lines)


def prewarm(jobs: list, device: str) -> None:
    """Worker: compile (by running once) the benchmark's kernels into the disk caches."""
    for shape_args, variant, num_splits in jobs:
        shape = Shape(*shape_args)
        q, k, v, mask = providers.make_inputs(shape, torch.bfloat16, device)
        try:
            if variant == "flex-attention":
                providers.PROVIDERS[variant](shape, q, k, v, mask)()
            elif variant == "prefill":
                prefill_fn(shape, q, k, v, mask, device)()
            else:
                decode_fn(shape, q, k, v, mask, D(*variant) if variant else None, device, num_splits)()
        except Exception as exc:  # the timed run meets and reports the same error
            print(f"prewarm {shape.id} {variant}: {type(exc).__name__}: {exc}", file=sys.stderr)


def start_prewarm(shape_list, device: str, workers: int) -> list[subprocess.Popen]:
    """Kernels depend on the mask kind, the row block (group * Sq) and split or not, never on
    lengths: small shapes compile every variant the timed runs meet."""
    jobs = []
    small = {dataclasses.replace(s, batch=2, kv_len=2048): None for s in shape_list}
    base = sm90.DECODE.defaults[(128, 2)]
    configs = {base} | {c for _, c in variant_configs(base, False)}
    for shape in small:
        for config in configs:
            jobs += [(dataclasses.astuple(shape), dataclasses.astuple(config), n) for n in (1, 4)]
    for sq in THRESHOLD_Q:
        shape = dataclasses.astuple(Shape(2, 32, 8, sq, 2048, 128, causal=True))
        jobs += [(shape, None, 1), (shape, None, 4)] + ([(shape, "prefill", None)] if sq == 1 else [])
    if on_gpu(device):
        jobs += [(dataclasses.astuple(shape), "flex-attention", None) for shape in shape_list]
    procs = []
    for i in range(workers):
        command = [sys.executable, __file__, "--prewarm", json.dumps(jobs[i::workers]), "--device", device]
        env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
    return procs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    providers.benchmark_arguments(parser, "gpu_decode", budget_s=230)
    parser.add_argument("--no-variants", action="store_true", help="defaults and peers only")
    parser.add_argument("--prewarm", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prewarm:
        prewarm(json.loads(args.prewarm), args.device)
        return 0

    start = time.monotonic()
    os.makedirs(args.out, exist_ok=True)

    results = {"environment": providers.environment(args.device), "command": " ".join(sys.argv)}
    print(json.dumps(results["environment"]), flush=True)
    dtype = torch.float16 if args.smoke else torch.bfloat16
    shape_list = ([Shape(2, 4, 2, 1, 300, 64, causal=True), Shape(2, 4, 2, 1, 300, 64, padding=True)]
                  if args.smoke else shapes.GPU_DECODE)

    pytest_proc = None if args.skip_tests else providers.start_pytest(
        args.out, args.device, "triton or decode",
        ["tests/test_triton_decode.py"] + ([] if args.smoke else ["tests/test_agreement.py"]),
        workers=6 if on_gpu(args.device) else 0)
    # The interpreter compiles nothing: no prewarm there.
    warmers = [] if args.smoke else start_prewarm(shape_list, args.device, 8)
    if pytest_proc is not None:
        results.update(providers.pytest_summary(args.out, pytest_proc.wait()))
        print(f"[pytest] {time.monotonic() - start:.0f}s {results['pytest_tail']}", flush=True)
    for w in warmers:
        w.wait()
    results["prewarm_done_s"] = time.monotonic() - start
    if on_gpu(args.device):
        providers.guarded(results, "recompile", recompile_check, args.device)
    providers.guarded(results, "host", host_seconds, args.device, dtype)

    # Most wanted first, in case the time budget runs out: defaults and peers, the threshold
    # sweep, then the variants.
    deadline = start + args.budget_s

    def save():  # after every phase: a run stopped at its limit still leaves its numbers
        results["total_s"] = time.monotonic() - start
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)

    save()
    results["bench"] = bench(shape_list, args.device, dtype, deadline, args.smoke, False)
    save()
    results["threshold"] = threshold(args.device, dtype, deadline, args.smoke)
    save()
    if not args.no_variants:
        results["variants"] = bench(shape_list, args.device, dtype, deadline, args.smoke, True)
        save()
    keys = ("pytest_returncode", "pytest_tail", "pytest_failures", "recompile", "host", "total_s")
    text = "\n\n".join([json.dumps(results["environment"]),
                        json.dumps({k: results.get(k) for k in keys}, indent=1, default=str),
                        table(results["bench"]), table(results["threshold"]),
                        table(results.get("variants", []), results["bench"])]) + "\n"
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    return 0 if results.get("pytest_returncode", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
