"""Where a call's time goes, piece by piece, on a GPU: the host side of a launch with and without
tensor descriptors, the GPU time of the bool-mask span kernel and of the forward kernel after it
on the HF causal-and-padding row, and the GPU time of the public call against the launch alone
with its outputs allocated once, per call, or per call and kept (CUDA-graph replays), and the
host time of one attention of the HF check's models through each layer of tqfa's HF path, and
the plain causal call's host pieces down to the prepared launch's steps ("plain").

    PYTHONPATH=src python3 benchmarks/gpu_pieces.py --out "$OUT/pieces" [--parts host spans outputs hf plain]

Host: Python microseconds per call (providers.host_microseconds: 200 calls on a shape whose GPU
time is a few microseconds) of `launch.attention_forward` and of the cached variant's launch
alone, and a cProfile of the descriptor path. GPU: microseconds per call from the replay of a
CUDA graph (providers.graph_seconds) of each piece alone. Writes pieces.json and prints it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "tests")]

import providers  # noqa: E402  (benchmarks/, after the path set-up)
from providers import Shape  # noqa: E402
from tqfa.device import probe  # noqa: E402
from tqfa.problem import build_problem  # noqa: E402
from tqfa.triton import launch, mask_spans  # noqa: E402
from tqfa.triton.tuning import KernelConfig, select_config  # noqa: E402

K = KernelConfig


def _outputs(q):
    return torch.empty_like(q), torch.empty(q.shape[:3], dtype=torch.float32, device=q.device)


def host_pieces(device: str) -> dict:
    """Host microseconds of the prefill launch with and without descriptors (64x64 w4 s3)."""
    q, k, v, _ = providers.make_inputs(Shape(1, 32, 8, 256, 256, 128), torch.float16, device)
    problem = build_problem(q, k, v)
    out, lse = _outputs(q)
    calls, launches = {}, {}
    for tag, config in (("pointers", K(64, 64, 4, 3)), ("descriptors", K(64, 64, 4, 3, tma=True))):
        grid, kwargs = launch.kernel_arguments(problem, out, lse, config, False)
        launch.launch_attention(grid, kwargs)
        values = launch.launch_attention._values(kwargs)
        variant = launch.launch_attention._variants[launch.launch_attention.key(kwargs)]
        launches[tag] = type(variant.launch).__name__
        grid3 = (*grid, 1, 1)[:3]
        calls[f"attention_forward ({tag})"] = lambda c=config: launch.attention_forward(
            problem, out, lse, c, False)
        calls[f"kernel_arguments ({tag})"] = lambda c=config: launch.kernel_arguments(
            problem, out, lse, c, False)
        calls[f"Launcher ({tag})"] = lambda g=grid, a=kwargs: launch.launch_attention(g, a)
        calls[f"variant launch ({tag})"] = lambda g=grid3, x=values, f=variant.launch: f(g, x)
    report = providers.host_microseconds(calls, device)
    profile = cProfile.Profile()
    tma = K(64, 64, 4, 3, tma=True)
    profile.runcall(lambda: [launch.attention_forward(problem, out, lse, tma, False)
                             for _ in range(300)])
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
    return {**report, "variant launches": launches, "profile (descriptors)": text.getvalue()}


def span_pieces(device: str) -> dict:
    """GPU microseconds of the span kernel (several shapes of it) and of the forward kernel with
    and without the mask on the HF causal-and-padding row (B2 Hq32 Hkv8 S2048 d128 bf16)."""
    shape = Shape(2, 32, 8, 2048, 2048, 128, hf_mask=True)
    q, k, v, mask = providers.make_inputs(shape, torch.bfloat16, device)
    masked = build_problem(q, k, v, mask)
    causal = build_problem(q, k, v, is_causal=True)
    out, lse = _outputs(q)
    strides = launch.zeroed_strides(mask)
    (b, _, sq, skv), (smb, smh, smm, smn) = mask.shape, strides
    us = {}

    def gpu_us(fn):
        return providers.graph_seconds([fn], device, calls=20) * 1e6

    us["mask_spans (default)"] = gpu_us(lambda: mask_spans.mask_spans(masked, strides, 128))
    for rows, keys, warps in ((16, 128, 4), (16, 256, 4), (16, 512, 4), (16, 256, 8),
                              (32, 256, 4), (8, 256, 4), (16, 1024, 8)):
        parts = -(-sq // rows)
        spans = torch.empty(b * parts * 2, dtype=torch.int32, device=device)
        us[f"span kernel rows {rows} keys {keys} w{warps}"] = gpu_us(
            lambda r=rows, n=keys, w=warps, p=parts, s=spans: mask_spans.mask_spans_kernel[(p, b)](
                mask, s, smb, smh, smm, smn, 1, sq, skv, ROWS=r, BLOCK_N=n, num_warps=w,
                num_stages=2))
    for name, config in (("128x64 w8 s3", K(128, 64, 8, 3)),
                         ("128x64 w8 s3 tma", K(128, 64, 8, 3, tma=True)),
                         ("64x64 w4 s3", K(64, 64, 4, 3))):
        spans = mask_spans.mask_spans(masked, strides, config.block_m)
        grid, kwargs = launch.kernel_arguments(masked, out, lse, config, False, spans)
        for tag, fn in (
            ("masked call", lambda c=config: launch.attention_forward(masked, out, lse, c, False)),
            ("causal call", lambda c=config: launch.attention_forward(causal, out, lse, c, False)),
            ("masked forward kernel alone", lambda g=grid, a=kwargs: launch.launch_attention(g, a)),
        ):
            try:
                us[f"{tag} {name}"] = gpu_us(fn)
            except Exception as error:  # a configuration this mask cannot run (shared memory)
                us[f"{tag} {name}"] = f"{type(error).__name__}: {error}"[:200]
    return us


def _output_entries(shape: Shape, device: str) -> tuple[str, dict]:
    """(the configuration, the callables) of output_pieces for one row."""
    import tqfa
    from tqfa.device import probe
    from tqfa.triton.tuning import select_config

    q, k, v, _ = providers.make_inputs(shape, torch.bfloat16, device)
    problem = build_problem(q, k, v, is_causal=shape.causal)
    config = select_config(problem, probe(q.device))
    out, lse = _outputs(q)
    kept = []

    def kept_outputs():
        o, l_ = _outputs(q)
        kept.append((o, l_))
        launch.attention_forward(problem, o, l_, config, False)

    return str(config), {
        "public call": lambda: tqfa.attention(q, k, v, is_causal=shape.causal, backend="triton"),
        "launch, outputs once": lambda: launch.attention_forward(problem, out, lse, config, False),
        "launch, outputs per call": lambda: launch.attention_forward(problem, *_outputs(q), config,
                                                                     False),
        "launch, outputs per call, kept": kept_outputs,
    }


def output_pieces(device: str) -> dict:
    """GPU microseconds per call of the d128 rows' public call and of its launch alone, with the
    outputs allocated once, per call (freed: the graph's pool may hand the same memory back) or
    per call and kept alive (fresh memory every call); three interleaved rounds, the median."""
    us = {}
    for shape in (Shape(2, 32, 8, 4096, 4096, 128), Shape(1, 32, 8, 16384, 16384, 128, causal=True)):
        config, entries = _output_entries(shape, device)
        timers = {name: providers.graph_timer([fn], device, calls=20) for name, fn in entries.items()}
        rounds = {name: [] for name in entries}
        for _ in range(3):
            for name, timer in timers.items():
                rounds[name].append(round(timer() * 1e6, 1))
        for name, times in rounds.items():
            us[f"{shape.id} {config}: {name}"] = {"median": sorted(times)[1], "rounds": times}
    return us


def _span_launch(problem) -> tuple:
    """(grid, keyword arguments) of the span kernel for `problem`'s mask, 64-row blocks."""
    strides = launch.zeroed_strides(problem.mask)
    spans, heads = mask_spans.mask_spans(problem, strides, 64)  # allocates them (and fills them)
    parts = spans.numel() // (4 * problem.batch * heads)
    return mask_spans.launch_arguments(problem.mask, strides, spans, heads, parts)


def hf_pieces(device: str) -> dict:
    """Host microseconds per call of one attention of gpu_hf_check.py's models (B4 Hq8 Hkv2 S333
    D128 bf16, q/k/v as views of [B, S, H, D] projections, HF's left-padded causal bool mask
    [B, 1, S, S]) through each layer of tqfa's HF path, against SDPA; no grad, as in inference.
    The GPU time of such a call is a few microseconds: the host is what counts."""
    import torch.nn.functional as F

    import tqfa
    from tqfa import dispatch
    from tqfa.integrations import custom_op, huggingface
    from tqfa.triton import backend as triton_backend
    from tqfa.triton.decode_config import select_decode_config

    b, hq, hkv, s, d = 4, 8, 2, 333, 128
    gen = torch.Generator(device=device).manual_seed(0)

    def heads(h):
        return torch.randn(b, s, h, d, device=device, dtype=torch.bfloat16, generator=gen).transpose(1, 2)

    q, k, v = heads(hq), heads(hkv), heads(hkv)
    pads = torch.tensor([0, 37, 150, 290], device=device)
    keep = torch.arange(s, device=device)[None, :] >= pads[:, None]  # [B, S] left padding
    causal = torch.ones(s, s, dtype=torch.bool, device=device).tril()
    mask = (causal[None] & keep[:, None, :])[:, None]  # [B, 1, S, S]
    problem = build_problem(q, k, v, mask)
    span_launch = _span_launch(problem)
    module = torch.nn.Module()
    module.is_causal = True
    # The plain is_causal call's pieces, in the order tqfa.attention runs them.
    plain = build_problem(q, k, v, None, True)
    plain_config = select_config(plain, probe(q.device))
    plain_out, plain_lse = torch.empty_like(q), torch.empty(b, hq, s, device=device)
    calls = {
        "sdpa, HF mask": lambda: F.scaled_dot_product_attention(q, k, v, mask, enable_gqa=True),
        "tqfa.attention, HF mask": lambda: tqfa.attention(q, k, v, mask),
        "custom_op.attention, HF mask": lambda: custom_op.attention(q, k, v, mask, bshd_out=True),
        "huggingface.attention_forward, HF mask": lambda: huggingface.attention_forward(
            module, q, k, v, mask),
        "mask_spans, HF mask": lambda: mask_spans.mask_spans(problem, launch.zeroed_strides(mask), 64),
        # The span kernel's launch alone through the Launcher, as mask_spans made it before its
        # launches were prepared (without building the arguments).
        "span kernel through the Launcher, HF mask": lambda: mask_spans.launch_spans(*span_launch),
        # The pieces of the call before the launches (where the host time goes, unprofiled).
        "build_problem, HF mask": lambda: build_problem(q, k, v, mask),
        "select_config, HF mask": lambda: select_config(problem, probe(q.device)),
        "torch.empty_like(q), q a [B, S, H, D] view": lambda: torch.empty_like(q),
        "torch.empty([B, S, H, D]).transpose(1, 2)": lambda: torch.empty(
            b, s, hq, d, device=device, dtype=q.dtype).transpose(1, 2),
        "torch.empty(lse)": lambda: torch.empty(b, hq, s, device=device, dtype=torch.float32),
        "sdpa, is_causal": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                   enable_gqa=True),
        "tqfa.attention, is_causal": lambda: tqfa.attention(q, k, v, is_causal=True),
        "custom_op.attention, is_causal": lambda: custom_op.attention(q, k, v, is_causal=True,
                                                                      bshd_out=True),
        "build_problem, is_causal": lambda: build_problem(q, k, v, None, True),
        "dispatch.choose, is_causal": lambda: dispatch.choose(plain),
        "triton backend forward, is_causal": lambda: triton_backend.forward(plain),
        "probe(device)": lambda: probe(q.device),
        "select_decode_config, is_causal": lambda: select_decode_config(plain, probe(q.device)),
        "select_config, is_causal": lambda: select_config(plain, probe(q.device)),
        "attention_forward, is_causal (config and outputs given)": lambda: launch.attention_forward(
            plain, plain_out, plain_lse, plain_config, False),
    }
    with torch.no_grad():
        return providers.host_microseconds(calls, device, profiled="tqfa.attention, is_causal")


def plain_pieces(device: str) -> dict:
    """Host microseconds of the pieces of one plain is_causal call (hf_pieces' shape: B4 Hq8 Hkv2
    S333 D128 bf16, [B, S, H, D] views), down to the prepared launch's own steps (the ws kernel's
    on sm90, kernel.py's elsewhere); the median of five interleaved rounds
    (providers.host_microseconds)."""
    import triton
    from triton.runtime.driver import driver

    import tqfa
    from tqfa import dispatch
    from tqfa.triton import backend as triton_backend
    from tqfa.triton import fast_launch, gluon_launch
    from tqfa.triton.decode_config import select_decode_config
    from tqfa.triton.tuning import default_config, problem_tags

    b, hq, hkv, s, d = 4, 8, 2, 333, 128
    gen = torch.Generator(device=device).manual_seed(0)

    def heads(h):
        return torch.randn(b, s, h, d, device=device, dtype=torch.bfloat16, generator=gen).transpose(1, 2)

    q, k, v = heads(hq), heads(hkv), heads(hkv)
    problem = build_problem(q, k, v, None, True)
    target = probe(q.device)
    config = select_config(problem, target)
    out, lse = torch.empty_like(q), torch.empty(b, hq, s, device=device)
    launch.attention_forward(problem, out, lse, config, False)
    # The ws kernel's launch on sm90 (the "dense" row), kernel.py's elsewhere.
    served_by_ws = config.ws and gluon_launch.ws_strides(problem, out) is not None
    if served_by_ws:
        tensors = dict(Q=q, K=k, V=v, Out=out, Lse=lse)
        key = gluon_launch.plan_key(problem, tensors, config)
        prepared = gluon_launch._prepared.by_key[key]
        plan_pieces = {"gluon_launch.plan_key": lambda: gluon_launch.plan_key(problem, tensors, config),
                       "gluon_launch.ws_strides": lambda: gluon_launch.ws_strides(problem, out)}
    else:
        tensors = launch.tensor_arguments(problem, out, lse)
        key = launch._plan_key(problem, tensors, config, False, None)
        prepared = launch._prepared.by_key[key]
        plan_pieces = {"tensor_arguments": lambda: launch.tensor_arguments(problem, out, lse),
                       "_plan_key": lambda: launch._plan_key(problem, tensors, config, False, None)}
    # The prepared launch's values for this call, with the tensors as tensors (Triton's launcher
    # then calls data_ptr() and cuPointerGetAttribute for each) and as data pointers (what
    # PreparedLaunch passes).
    with_tensors = prepared.values.copy()
    for i, name in prepared.described.items():
        with_tensors[i] = with_tensors[i]._replace(base=tensors[name])
    with_pointers = with_tensors.copy()
    for i, name in prepared.pointers.items():
        with_tensors[i], with_pointers[i] = tensors[name], tensors[name].data_ptr()
    stream_of = driver.active.get_current_stream
    current = driver.active.get_current_device
    calls = {
        "tqfa.attention": lambda: tqfa.attention(q, k, v, is_causal=True),
        "build_problem": lambda: build_problem(q, k, v, None, True),
        "dispatch.choose": lambda: dispatch.choose(problem),
        "dispatch.backends()": dispatch.backends,
        "dispatch.requested_name(None)": lambda: dispatch.requested_name(None),
        "triton supports": lambda: triton_backend.supports(problem),
        "triton backend forward": lambda: triton_backend.forward(problem),
        "torch.empty_like(q)": lambda: torch.empty_like(q),
        "torch.empty(lse)": lambda: torch.empty((b, hq, s), dtype=torch.float32, device=q.device),
        "probe(device)": lambda: probe(problem.device),
        "problem.device": lambda: problem.device,
        "select_decode_config": lambda: select_decode_config(problem, target),
        "select_config": lambda: select_config(problem, target),
        "default_config": lambda: default_config(problem, target),
        "problem_tags": lambda: problem_tags(problem),
        "hash(target)": lambda: hash(target),
        "hash(config)": lambda: hash(config),
        "attention_forward": lambda: launch.attention_forward(problem, out, lse, config, False),
        "mask_spans.applies": lambda: mask_spans.applies(problem),
        **plan_pieces,
        "prepared launch": lambda: prepared(tensors),
        "launch_environment()": fast_launch.launch_environment,
        "torch.cuda.current_device()": torch.cuda.current_device,
        "knobs.runtime.debug": lambda: triton.knobs.runtime.debug,
        "variant launch, tensors as tensors": lambda: prepared.launch(prepared.grid, with_tensors),
        "variant launch, tensors as pointers": lambda: prepared.launch(prepared.grid, with_pointers),
        "get_current_stream": lambda: stream_of(current()),
    }
    with torch.no_grad():
        report = providers.host_microseconds(calls, device, profiled="tqfa.attention", rounds=5)
        report["steps of tqfa.attention (prefill)"] = _steps(q, k, v, dict(is_causal=True))
        dq = torch.randn(1, 32, 1, d, device=device, dtype=torch.bfloat16, generator=gen)
        dk, dv = (torch.randn(1, 8, 4096, d, device=device, dtype=torch.bfloat16, generator=gen)
                  for _ in range(2))
        report["steps of tqfa.attention (decode, B1 Hq32 Hkv8 Skv4096)"] = _steps(
            dq, dk, dv, dict(is_causal=True, causal_alignment="bottom_right"))
    return report


def _steps(q, k, v, kwargs: dict, calls: int = 200, batches: int = 5) -> dict:
    """Microseconds of each step of tqfa.attention's body (api.py), timed inside the same calls:
    the median over `batches` batches of the per-call mean, and the whole call."""
    import time

    from tqfa import dispatch

    names = ("build_problem", "dispatch.choose", "backend.forward", "whole call")
    batches_us = {name: [] for name in names}
    for _ in range(batches):
        torch.cuda.synchronize()
        sums = [0, 0, 0, 0]
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            problem = build_problem(q, k, v, **kwargs)
            t1 = time.perf_counter_ns()
            backend = dispatch.choose(problem)
            t2 = time.perf_counter_ns()
            backend.forward(problem)
            t3 = time.perf_counter_ns()
            for i, (a, b) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t0, t3))):
                sums[i] += b - a
        for name, total in zip(names, sums):
            batches_us[name].append(total / calls / 1e3)
    return {name: sorted(values)[len(values) // 2] for name, values in batches_us.items()}


PARTS = {"host": lambda device: {"host_us": host_pieces(device)},
         "hf": lambda device: {"hf_host_us": hf_pieces(device)},
         "plain": lambda device: {"plain_host_us": plain_pieces(device)},
         "spans": lambda device: {"gpu_us": span_pieces(device)},
         "outputs": lambda device: {"outputs_us": output_pieces(device)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    report = {"environment": providers.environment("cuda")}
    for part in args.parts:
        report.update(PARTS[part]("cuda"))
    with open(os.path.join(args.out, "pieces.json"), "w") as f:
        json.dump(report, f, indent=1)
    profiles = [report.get("host_us", {}).pop("profile (descriptors)", ""),
                report.get("hf_host_us", {}).pop("profile", ""),
                report.get("plain_host_us", {}).pop("profile", "")]
    print(json.dumps(report, indent=1))
    print(*profiles, sep="\n")


if __name__ == "__main__":
    main()
