"""Shapes, inputs, providers and timing shared by every benchmark (CPU and GPU).

A provider turns (shape, inputs) into a zero-argument callable that computes the attention, or
raises Unavailable with the reason it cannot run that case. Work is written out once here:
prefill FLOPs = 4 * B * Hq * Sq * Skv * D (half when causal), decode bytes = the K/V read once.
"""

from __future__ import annotations

import cProfile
import importlib.util
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import tqfa


class Unavailable(Exception):
    """This provider cannot run this case here; the message says why."""


@dataclass(frozen=True)
class Shape:
    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    head_dim: int
    causal: bool = False  # bottom-right aligned (the same as top-left when Sq == Skv)
    padding: bool = False  # HF additive key padding [B, 1, 1, Skv], finfo(dtype).min on padded keys
    # HF's causal LM mask with left padding, bool [B, 1, Sq, Skv] (bottom-right causal), given
    # with is_causal=False as HF's sdpa path gives it; counted as causal work.
    hf_mask: bool = False

    @property
    def id(self) -> str:
        s = f"b{self.batch}-h{self.q_heads}:{self.kv_heads}-q{self.q_len}-k{self.kv_len}-d{self.head_dim}"
        return (s + ("-causal" if self.causal else "") + ("-padmask" if self.padding else "")
                + ("-hfmask" if self.hf_mask else ""))

    @property
    def flops(self) -> float:
        full = 4.0 * self.batch * self.q_heads * self.q_len * self.kv_len * self.head_dim
        return full / 2 if (self.causal or self.hf_mask) and self.q_len == self.kv_len else full

    def kv_bytes(self, dtype: torch.dtype) -> int:
        element = torch.finfo(dtype).bits // 8
        return 2 * self.batch * self.kv_heads * self.kv_len * self.head_dim * element


def make_inputs(shape: Shape, dtype: torch.dtype, device, seed: int = 0):
    """Fresh random q, k, v (never zeros) and the optional padding mask."""
    gen = torch.Generator(device=device).manual_seed(seed)
    b, d = shape.batch, shape.head_dim
    q = torch.randn(b, shape.q_heads, shape.q_len, d, generator=gen, device=device, dtype=dtype)
    k = torch.randn(b, shape.kv_heads, shape.kv_len, d, generator=gen, device=device, dtype=dtype)
    v = torch.randn(b, shape.kv_heads, shape.kv_len, d, generator=gen, device=device, dtype=dtype)
    mask = None
    if shape.padding:
        mask = torch.zeros(b, 1, 1, shape.kv_len, device=device, dtype=dtype)
        for i in range(1, b):  # element i loses the last i/(2B) of its keys
            mask[i, ..., shape.kv_len - shape.kv_len * i // (2 * b) :] = torch.finfo(dtype).min
    if shape.hf_mask:  # element i pads the first i/(2B) of its keys (left padding)
        keep = torch.ones(b, shape.kv_len, dtype=torch.bool, device=device)
        for i in range(1, b):
            keep[i, : shape.kv_len * i // (2 * b)] = False
        causal = torch.ones(shape.q_len, shape.kv_len, dtype=torch.bool, device=device)
        mask = (causal.tril(shape.kv_len - shape.q_len)[None] & keep[:, None, :])[:, None]
    return q, k, v, mask


def _tqfa(backend: str):
    def build(shape: Shape, q, k, v, mask):
        kwargs = dict(attn_mask=mask, is_causal=shape.causal, causal_alignment="bottom_right")
        reason = tqfa.available_backends(q, k, v, **kwargs)[backend]
        if reason is not None:
            raise Unavailable(reason)
        return lambda: tqfa.attention(q, k, v, backend=backend, **kwargs)

    return build


def _sdpa_mask(shape: Shape, q, mask):
    """SDPA's form of the case: bottom-right causal as a CausalBias or folded into the mask."""
    if not shape.causal:
        return mask, False
    if mask is None:
        if shape.q_len == shape.kv_len:
            return None, True
        from torch.nn.attention.bias import causal_lower_right

        return causal_lower_right(shape.q_len, shape.kv_len), False
    visible = torch.ones(shape.q_len, shape.kv_len, dtype=torch.bool, device=q.device)
    visible = visible.tril(shape.kv_len - shape.q_len)
    return mask.masked_fill(~visible, torch.finfo(mask.dtype).min), False


def _sdpa(kernel_name: str | None):
    def build(shape: Shape, q, k, v, mask):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        sdpa_mask, is_causal = _sdpa_mask(shape, q, mask)
        if kernel_name is None:
            return lambda: F.scaled_dot_product_attention(
                q, k, v, sdpa_mask, is_causal=is_causal, enable_gqa=True
            )
        kernel = getattr(SDPBackend, kernel_name)

        def call(k, v):
            def run():
                with sdpa_kernel(kernel):
                    return F.scaled_dot_product_attention(
                        q, k, v, sdpa_mask, is_causal=is_causal, enable_gqa=True
                    )

            run()
            return run

        try:
            return call(k, v)
        except RuntimeError as error:  # SDPA says "No available kernel" with its reasons
            reason = f"SDPA {kernel_name}: {str(error).splitlines()[0][:160]}"
        if shape.q_heads == shape.kv_heads:
            raise Unavailable(reason)
        # SDPA's efficient kernel refuses GQA: give it K/V repeated per q head, outside the timing.
        group = shape.q_heads // shape.kv_heads
        try:
            run = call(k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1))
        except RuntimeError:
            raise Unavailable(reason) from None
        run.kv_repeated = True
        return run

    return build


def _flex(shape: Shape, q, k, v, mask):
    if q.device.type != "cuda":
        raise Unavailable("FlexAttention is benchmarked on GPUs only")
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    offset = shape.kv_len - shape.q_len
    keep = None if mask is None or shape.hf_mask else mask[:, 0, 0] == 0  # [B, Skv]

    def mask_mod(b, h, qi, kj):
        if shape.hf_mask:
            return mask[b, 0, qi, kj]
        visible = kj <= qi + offset if shape.causal else kj >= 0
        return visible & keep[b, kj] if keep is not None else visible

    block_mask = None
    if shape.hf_mask:
        block_mask = create_block_mask(mask_mod, shape.batch, None, shape.q_len, shape.kv_len,
                                       device=q.device)
    elif shape.causal or keep is not None:
        block_mask = create_block_mask(mask_mod, shape.batch if keep is not None else None, None,
                                       shape.q_len, shape.kv_len, device=q.device)
    # One compile per shape: dynamo's default limit (8 per function) would drop to eager mode
    # after the eighth row.
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 256)
    compiled = torch.compile(flex_attention, dynamic=False)
    return lambda: compiled(q, k, v, block_mask=block_mask, enable_gqa=True)


def tqfa_config(config):
    """The triton kernel with one given configuration, through the launcher: no dispatch, outputs
    allocated once (the public call is provider tqfa-triton)."""

    def build(shape: Shape, q, k, v, mask):
        from tqfa.problem import build_problem
        from tqfa.triton import backend

        problem = build_problem(q, k, v, mask, shape.causal, causal_alignment="bottom_right")
        reason = backend.supports(problem)
        if reason is not None:
            raise Unavailable(str(reason))
        out = torch.empty_like(q)
        lse = torch.empty(q.shape[:3], device=q.device, dtype=torch.float32)
        launch = backend._launcher()

        def run():
            launch.attention_forward(problem, out, lse, config, allow_tf32=False)
            return out

        return run

    return build


PROVIDERS = {
    "tqfa-triton": _tqfa("triton"),
    "tqfa-chunked": _tqfa("chunked"),
    "sdpa": _sdpa(None),
    "sdpa-flash": _sdpa("FLASH_ATTENTION"),
    "sdpa-cudnn": _sdpa("CUDNN_ATTENTION"),
    "sdpa-efficient": _sdpa("EFFICIENT_ATTENTION"),
    "flex-attention": _flex,
}


def median_seconds(fn, device, repeats: int = 10, rep_ms: float = 100) -> float:
    """Median time of `fn` after a warm-up call, synchronised on GPUs (events there; do_bench
    clears the L2 cache before each call, and its clearing hides the launch's host time)."""
    fn()
    if torch.device(device).type == "cuda":
        from triton.testing import do_bench

        return do_bench(fn, warmup=rep_ms / 4, rep=rep_ms, return_mode="median") / 1e3
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def graph_seconds(fns: list, device: str, calls: int = 40) -> float:
    """GPU seconds per call: one CUDA graph of `calls` calls rotating over `fns` (one per input
    copy), replayed five times; the median. The interpreter times one call."""
    return graph_timer(fns, device, calls)()


def graph_timer(fns: list, device: str, calls: int = 40):
    """A function that replays, three times untimed and five times timed, one CUDA graph of
    `calls` calls rotating over `fns` and returns the median GPU seconds per call: captured once,
    timed as often as the caller wants (gpu_compare interleaves the entries of a row). The
    interpreter times one call."""
    if torch.device(device).type != "cuda":
        return lambda: median_seconds(fns[0], device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture (workspaces, autotuners)
        for fn in fns:
            fn()
    torch.cuda.current_stream().wait_stream(side)
    n = len(fns) * max(1, calls // len(fns))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(n):
            fns[i % len(fns)]()
    graph.replay()

    def replay() -> float:
        # Untimed replays first: the GPU's clock follows its recent load (power, heat), so each
        # entry is timed in the state its own load brings, not the one the previous entry left.
        for _ in range(3):
            graph.replay()
        times = []
        for _ in range(5):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3 / n)
        return statistics.median(times)

    # The graph reads the tensors the calls were captured with; the callables own them (inputs
    # made per entry, such as K/V repeated for SDPA), so they must live as long as the replays.
    replay.captured_calls = fns
    return replay


def benchmark_arguments(parser, name: str, budget_s: float) -> None:
    """The options every GPU benchmark script shares; `name` names the default output folder."""
    parser.add_argument("--out", default=os.environ.get("OUT", f"{name}_out"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes; the CPU interpreter works")
    parser.add_argument("--budget-s", type=float, default=budget_s, help="start no timing after this")
    parser.add_argument("--skip-tests", action="store_true")


def host_microseconds(calls: dict, device: str, profiled: str | None = None, rounds: int = 1
                      ) -> dict:
    """Python time per call of each zero-argument callable (name + " us" -> the median over
    `rounds` rounds of the mean of 200 calls; with rounds > 1 each round's figures under
    "rounds"). A round of every call runs untimed first, and each round times the entries in an
    order rotated by one: the first entries timed read up to 70% slow without the untimed round,
    and separate processes up to 2x apart (h200-2026-12-01.md), so versions are compared in one
    process, interleaved. The GPU queue is empty before each timing: the callers pick shapes
    whose GPU time is a few microseconds, so the queue never fills and blocks. With `profiled`, a
    cProfile of that call (top 30 by own time) under "profile"."""
    gpu = torch.device(device).type == "cuda"
    n = 200 if gpu else 3

    def sync():
        if gpu:
            torch.cuda.synchronize()

    for fn in calls.values():
        for _ in range(n):
            fn()
        sync()
    names = list(calls)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync()
            start = time.perf_counter()
            for _ in range(n):
                calls[name]()
            times[name].append(round((time.perf_counter() - start) / n * 1e6, 2))
        sync()
    report = {name + " us": statistics.median(values) for name, values in times.items()}
    if rounds > 1:
        report["rounds"] = times
    if profiled:
        profile = cProfile.Profile()
        profile.runcall(lambda: [calls[profiled]() for _ in range(300 if gpu else 1)])
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(30)
        report["profile"] = text.getvalue()
    return report


def environment(device: str) -> dict:
    import triton

    env = {"torch": torch.__version__, "triton": triton.__version__, "device": device,
           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(name=props.name, sms=props.multi_processor_count, cuda=torch.version.cuda,
                   capability=f"{props.major}.{props.minor}")
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True)
        env["nvidia_smi"] = smi.stdout.strip()
    return env


def guarded(results: dict, key: str, fn, *args) -> None:
    """One phase's result under `key`; a phase that breaks records why and the others still run."""
    try:
        results[key] = fn(*args)
    except Exception:
        results[key] = {"error": traceback.format_exc(limit=4)}
    print(f"[{key}] {json.dumps(results[key], default=str)[:400]}", flush=True)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_pytest(out_dir: str, device: str, keyword: str, files: list[str], workers: int = 0
                 ) -> subprocess.Popen:
    """pytest -k `keyword` over `files` with TQFA_TEST_DEVICE=device, in the background, its output
    in out_dir/pytest.log; `workers` > 0 spreads it over that many xdist workers where installed."""
    env = {**os.environ, "TQFA_TEST_DEVICE": device, "PYTHONPATH": os.path.join(ROOT, "src")}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", keyword, *files]
    if workers and importlib.util.find_spec("xdist"):
        args[3:3] = ["-n", str(workers)]
    log = open(os.path.join(out_dir, "pytest.log"), "w")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def pytest_summary(out_dir: str, returncode: int | None) -> dict:
    """The exit status, the last line and the FAILED / ERROR lines of out_dir/pytest.log."""
    with open(os.path.join(out_dir, "pytest.log")) as f:
        log = f.read().strip().splitlines()
    return {"pytest_returncode": returncode, "pytest_tail": log[-1:],
            "pytest_failures": [line for line in log if line.startswith(("FAILED", "ERROR"))][:30]}
