"""Prefill speed side by side on a GPU: tqfa's Triton kernel and its peers on the same inputs, in
one process, after the kernel's correctness on that GPU.

    PYTHONPATH=src python3 benchmarks/gpu_compare.py --out "$OUT"              # the table
    PYTHONPATH=src python3 benchmarks/gpu_compare.py --out "$OUT" --variants   # + kernel variants
    TRITON_INTERPRET=1 PYTHONPATH=src python benchmarks/gpu_compare.py --smoke --out /tmp/x

1. Ceilings: bf16 matmul TFLOP/s (8192^3) and device copy GB/s (1 GiB, bytes read + written).
2. Correctness: pytest of the triton rows of tests/test_agreement.py and tests/test_triton_kernel.py
   (NaN-poisoned outputs; the TMA path on every shared case) with
   TQFA_TEST_DEVICE=cuda, while worker processes compile the timed entries by running them once
   (Triton and Inductor disk caches). Both are killed at --prepare-s; an entry whose worker job
   failed or did not finish (a hung kernel) is reported and not timed.
3. Timing: benchmarks/shapes.py GPU_PREFILL x dtypes; tqfa (public call, default configuration),
   the variants, SDPA flash / cuDNN / efficient (K/V repeated outside the timing: it refuses GQA)
   and compiled FlexAttention. Median of triton.testing.do_bench on fresh random inputs (per
   call), and GPU time from the replay of a CUDA graph of the calls: the median of three
   rounds over the row's entries, each round starting one entry later. Every output is checked
   against a peer's (relative L2 error) before it is timed.
Writes results.json and summary.md under --out and prints the tables last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, os.path.join(ROOT, "tests")]

import providers  # noqa: E402  (benchmarks/, after the path set-up)
import shapes  # noqa: E402
from providers import Shape, Unavailable  # noqa: E402
from tqfa.triton.tuning import KernelConfig  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PEERS = ["sdpa-cudnn", "sdpa-flash", "sdpa-efficient", "flex-attention"]
# The bars (bf16, H100, 2026-11-25): the original Triton kernel (turboquant-vllm).
ORIGINAL = {"b2-h32:8-q4096-k4096-d128": 440, "b2-h32:8-q4096-k4096-d128-causal": 362,
            "b1-h32:8-q16384-k16384-d128-causal": 374, "b4-h16:16-q4096-k4096-d64": 378,
            "b2-h32:8-q4096-k4096-d96": 331, "b2-h32:8-q2048-k2048-d128-padmask": 334}
K = KernelConfig
TMA = dict(tma=True)
H2 = dict(halves=2)
# The warp-specialised Gluon kernel (gluon_sm90.py): persistent grids beside the defaults.
WS_ = dict(**TMA, ws=True)
WS = {128: [K(128, 128, 4, 2, **WS_, pingpong=True),
            K(128, 128, 4, 2, **WS_, pingpong=True, persistent=True, snake=True),
            K(128, 128, 4, 2, **WS_, persistent=True),
            K(128, 64, 4, 4, **WS_, pingpong=True, persistent=True, snake=True)],
      64: [K(128, 256, 4, 2, **WS_, persistent=True), K(128, 128, 4, 2, **WS_, persistent=True),
           K(128, 128, 4, 3, **WS_, persistent=True),
           K(128, 128, 4, 2, **WS_, persistent=True, snake=True),
           K(128, 128, 4, 2, **WS_, pingpong=True, persistent=True)]}
# Candidate configurations per (head dim, masked): kernel.py's sm90 defaults before the ws rows
# (long and short rows), the ws kernel's, and the masked and split rows' runners-up of the sweeps
# in benchmarks/results/h200-2026-11-30*.md. The candidates that lost since (h200-2026-11-30-
# qregs.md, h200-2026-12-01c.md: 128x128 w8 s3, 256x64 w8 s3 h2) are left out.
VARIANTS = {
    (128, False): [K(128, 64, 4, 2, **H2, **TMA), K(64, 64, 4, 3, **TMA), *WS[128]],
    (64, False): [K(128, 64, 4, 3, **H2, **TMA), *WS[64]],
    (96, False): [K(128, 64, 4, 3, **H2, **TMA), K(128, 64, 4, 3, **TMA)],
    (128, True): [K(128, 64, 8, 3, **TMA), K(128, 64, 4, 2, **H2, **TMA)],
}
# Relative error (norm) against the reference above which an entry is wrong, not imprecise: on
# the bf16 rows correct kernels read at most 3.0e-3 (SDPA flash), while the miscompiled
# variants of h200-2026-12-01b.md read 0.12-0.53. A wrong entry shows no speed and fails the run.
WRONG_ERROR = 1e-2
# Entries timed on other inputs than the row's (a mask that hides nothing): not compared.
OTHER_INPUTS = ("tqfa-unpadded-mask",)
GRAPH_ROUNDS = 3  # replays of each entry's CUDA graph per row, interleaved (time_row)
SMOKE_SHAPES = [Shape(1, 4, 2, 200, 200, 64), Shape(1, 4, 2, 200, 200, 96, causal=True),
                Shape(2, 4, 2, 150, 150, 128, padding=True), Shape(2, 4, 2, 150, 150, 64, hf_mask=True)]


def variants_for(shape: Shape) -> list[KernelConfig]:
    return VARIANTS.get((shape.head_dim, shape.padding or shape.hf_mask), [])


def on_gpu(device: str) -> bool:
    return torch.device(device).type == "cuda"


# ---------------------------------------------------------------------------------------------
# 1. Ceilings


def ceilings(device: str) -> dict:
    if not on_gpu(device):
        return {}
    a, b = (torch.randn(8192, 8192, device=device, dtype=torch.bfloat16) for _ in range(2))
    matmul = providers.median_seconds(lambda: a @ b, device)
    x = torch.empty(2**30, dtype=torch.uint8, device=device).fill_(1)
    y = torch.empty_like(x)
    copy = providers.median_seconds(lambda: y.copy_(x), device)
    return {"matmul_tflops": 2 * 8192**3 / matmul / 1e12, "copy_gbps": 2 * 2**30 / copy / 1e9}


# ---------------------------------------------------------------------------------------------
# 2. Correctness (pytest) and compilation (workers), both time-bounded


def worker(jobs: list, device: str, log_path: str) -> None:
    """Compile by running each timed entry once; a line in the job log when a job starts and
    when it ends, so that a job that never ends (a hung kernel) is known."""
    with open(log_path, "a") as log:
        for job in jobs:
            log.write(json.dumps({"job": job, "event": "start"}) + "\n")
            log.flush()
            try:
                shape, name, entry = Shape(*job[0]), job[1], job[2]
                build_entry(shape, DTYPES[name], entry, device)[1]()
                if on_gpu(device):
                    torch.cuda.synchronize()
                why = None
            except Unavailable:  # not a failure: the timing row records the reason
                why = None
            except Exception as exc:  # recorded; the entry is then not timed
                why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
            log.write(json.dumps({"job": job, "event": "end", "error": why}) + "\n")
            log.flush()


def start_workers(jobs: list, device: str, count: int, log_path: str) -> list[subprocess.Popen]:
    """The jobs dealt round-robin: a job that hangs stops its own worker only."""
    shares = [jobs[i::count] for i in range(count)]
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
    return [subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(share), "--device",
                              device, "--job-log", log_path], env=env)
            for share in shares if share]


def wait(procs: list[subprocess.Popen], deadline: float) -> bool:
    """True if every process ended before the deadline; the others are killed."""
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.5)
    late = [p for p in procs if p.poll() is None]
    for p in late:
        p.kill()
        p.wait()
    return not late


def job_status(log_path: str) -> dict[tuple, str | None]:
    """(shape id, dtype, entry) -> None (compiled and ran), an error, or "did not finish"."""
    status = {}
    if os.path.exists(log_path):
        with open(log_path) as f:
            for line in f:
                record = json.loads(line)
                key = (Shape(*record["job"][0]).id, record["job"][1], record["job"][2])
                status[key] = "did not finish (killed)" if record["event"] == "start" else record["error"]
    return status


# ---------------------------------------------------------------------------------------------
# 3. Timing


def entries(shape: Shape, variants: bool, flex: bool) -> list[str]:
    """Timed entries of one row: "tqfa" is the public call; "cfg:<json>" one configuration.
    Compiled Flex costs seconds per shape and dtype: it runs in the first dtype only."""
    names = ["tqfa", *[p for p in PEERS if flex or p != "flex-attention"]]
    if variants:
        names += ["cfg:" + json.dumps(dataclasses.asdict(c)) for c in variants_for(shape)]
        if shape.padding:
            names.append("tqfa-unpadded-mask")
        if shape.hf_mask:
            names.append("tqfa-additive-mask")
    return names


def entry_label(entry: str) -> str:
    return f"tqfa {KernelConfig(**json.loads(entry[4:]))}" if entry.startswith("cfg:") else entry


def build_entry(shape: Shape, dtype, entry: str, device: str, inputs=None):
    """(inputs, zero-argument callable) of one timed entry on fresh random inputs."""
    seed = zlib.crc32(shape.id.encode())
    q, k, v, mask = inputs or providers.make_inputs(shape, dtype, device, seed=seed)
    if entry == "tqfa-unpadded-mask":  # the same mask path with nothing to skip
        return (q, k, v, mask), providers.PROVIDERS["tqfa-triton"](shape, q, k, v, torch.zeros_like(mask))
    if entry == "tqfa-additive-mask":  # the same visibility as a float mask: no tile skipped
        additive = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, float("-inf"))
        return (q, k, v, mask), providers.PROVIDERS["tqfa-triton"](shape, q, k, v, additive)
    if entry.startswith("cfg:"):
        build = providers.tqfa_config(KernelConfig(**json.loads(entry[4:])))
    else:
        build = providers.PROVIDERS["tqfa-triton" if entry == "tqfa" else entry]
    return (q, k, v, mask), build(shape, q, k, v, mask)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm()).item()


def time_row(shape: Shape, name: str, names: list[str], device: str, deadline: float, rep_ms: float,
             blocked: dict[str, str]):
    """Each entry's median on one set of inputs; `blocked` entries failed or hung in a worker."""
    dtype = DTYPES[name]
    inputs = providers.make_inputs(shape, dtype, device, seed=zlib.crc32(shape.id.encode()))
    # On the HF mask row cuDNN's output is 0.14 away (relative error) from tqfa's, SDPA's
    # efficient kernel's and Flex's, which agree (h200-2026-12-01d.md, run 5; its mask has rows
    # that see no key): a masked row takes the efficient kernel's output as its reference.
    reference_entry = "sdpa-efficient" if shape.padding or shape.hf_mask else "sdpa-cudnn"
    reference, rows, timers = None, [], []
    for entry in names:
        row = {"shape": shape.id, "dtype": name, "entry": entry_label(entry)}
        rows.append(row)
        if entry in blocked or time.monotonic() > deadline:
            row["error"] = blocked.get(entry) or "skipped: time budget"
            continue
        try:
            _, fn = build_entry(shape, dtype, entry, device, inputs)
            got = fn()
            if getattr(fn, "kv_repeated", False):
                row["note"] = "K/V repeated per q head outside the timing"
            if reference is None and entry == reference_entry:
                reference = got.clone()
            if isinstance(got, torch.Tensor) and entry not in OTHER_INPUTS:
                row["nan"] = bool(got.isnan().any())
                row["out"] = got.clone()  # compared once the reference exists
            seconds = providers.median_seconds(fn, device, rep_ms=rep_ms)
            row.update(ms=seconds * 1e3, tflops=shape.flops / seconds / 1e12)
            # The same calls replayed from a CUDA graph: GPU time alone, without the host time
            # of the calls (which do_bench shows wherever it exceeds the kernel's time).
            try:
                timers.append((row, providers.graph_timer(
                    [fn], device, calls=max(2, min(40, int(0.02 / seconds))))))
            except Exception as exc:  # a provider that cannot be captured keeps its do_bench time
                row["graph_error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}"
                torch.cuda.synchronize()
        except Unavailable as exc:
            row["error"] = str(exc)
        except Exception as exc:  # a provider failing must not lose the other rows
            row["error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
    # The graphs are replayed in GRAPH_ROUNDS rounds over the row's entries, each round starting
    # one entry later: the GPU's clock drifts with its recent load (power, heat), and timing one
    # entry right after another's heavy replays biased single measurements by up to 6%.
    for turn in range(GRAPH_ROUNDS * len(timers)):
        row, replay = timers[(turn + turn // len(timers)) % len(timers)]
        row.setdefault("graph_rounds_ms", []).append(replay() * 1e3)
    for row, _ in timers:
        graph = statistics.median(row["graph_rounds_ms"]) / 1e3
        row.update(graph_ms=graph * 1e3, graph_tflops=shape.flops / graph / 1e12)
    for row in rows:
        out = row.pop("out", None)
        if out is not None and reference is not None:
            row["rel_err"] = relative_error(out, reference)
            row["wrong"] = row.get("nan", False) or not row["rel_err"] <= WRONG_ERROR
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def host_seconds(device: str) -> dict:
    """Python time per prefill call and per stage of it, with and without a key-padding mask, on
    a shape whose GPU time is a few microseconds (the host path is the same at any size). On sm90
    both of its calls launch with tensor descriptors; gpu_pieces.py compares them with pointers."""
    import torch.nn.functional as F

    import tqfa
    from tqfa import dispatch
    from tqfa.device import probe
    from tqfa.problem import build_problem
    from tqfa.triton import backend, fast_launch, launch
    from tqfa.triton.tuning import INTERPRETER, select_config

    size = (1, 32, 8, 256, 256, 128) if on_gpu(device) else (1, 4, 2, 40, 40, 64)
    calls = {}
    for shape in (Shape(*size, padding=True), Shape(*size)):
        q, k, v, mask = providers.make_inputs(shape, torch.float16, device)
        tag = "key padding" if shape.padding else "no mask"
        problem = build_problem(q, k, v, mask)
        target = probe(q.device) if on_gpu(device) else INTERPRETER
        config = select_config(problem, target)
        out, lse = torch.empty_like(q), torch.empty(q.shape[:3], device=q.device)
        grid, kwargs = launch.kernel_arguments(problem, out, lse, config, False)
        calls.update({
            f"tqfa.attention ({tag})": lambda q=q, k=k, v=v, m=mask: tqfa.attention(
                q, k, v, m, backend="triton"),
            f"build_problem ({tag})": lambda q=q, k=k, v=v, m=mask: build_problem(q, k, v, m),
            f"dispatch.choose ({tag})": lambda p=problem: dispatch.choose(p, "triton"),
            f"backend.forward ({tag})": lambda p=problem: backend.forward(p),
            f"output allocation ({tag})": lambda q=q: (torch.empty_like(q), torch.empty(
                q.shape[:3], dtype=torch.float32, device=q.device)),
            f"select_config ({tag})": lambda p=problem, t=target: select_config(p, t),
            f"kernel_arguments ({tag})": lambda p=problem, o=out, lse=lse, c=config:
                launch.kernel_arguments(p, o, lse, c, False),
            f"attention_forward ({tag})": lambda p=problem, o=out, lse=lse, c=config:
                launch.attention_forward(p, o, lse, c, False),
            f"Triton's launch ({tag})": lambda g=grid, a=kwargs: launch.attention_fwd_kernel[g](
                **fast_launch.triton_kwargs(a)),
            f"cached launch ({tag})": lambda g=grid, a=kwargs: launch.launch_attention(g, a),
            f"sdpa ({tag})": lambda q=q, k=k, v=v, m=mask: F.scaled_dot_product_attention(
                q, k, v, m, enable_gqa=True),
        })
    q, k, v, _ = providers.make_inputs(Shape(4, 32, 8, 1, 512, 128), torch.float16, device)
    calls["tqfa.attention (decode)"] = lambda: tqfa.attention(q, k, v, backend="triton")
    calls["sdpa (decode)"] = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    return providers.host_microseconds(calls, device, profiled="tqfa.attention (decode)")


# ---------------------------------------------------------------------------------------------
# Tables


def side_by_side(rows: list[dict], ceil: dict, key: str = "tflops") -> str:
    """One line per (shape, dtype): TFLOP/s of tqfa and each peer (`key`: "tflops" per call by
    do_bench, "graph_tflops" from CUDA-graph replay), ratios, matmul fraction; a wrong entry
    reads "-"."""
    head = ["shape", "dtype", "tqfa", *PEERS, "tqfa / best peer", "tqfa / FA2", "tqfa / original",
            "tqfa / matmul"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * 2 + " ---: |" * (len(head) - 2)]
    keys = dict.fromkeys((r["shape"], r["dtype"]) for r in rows)
    for shape_id, name in keys:
        rate = {r["entry"]: None if r.get("wrong") else r.get(key)
                for r in rows if (r["shape"], r["dtype"]) == (shape_id, name)}
        mine = rate.get("tqfa")
        peers = {p: rate.get(p) for p in PEERS if rate.get(p)}
        best = max(peers.values(), default=None)
        original = ORIGINAL.get(shape_id) if name == "bf16" else None

        def ratio(x, y):
            return f"{x / y:.2f}" if x and y else "-"

        cells = [shape_id, name, f"{mine:.0f}" if mine else "-",
                 *[f"{rate[p]:.0f}" if rate.get(p) else "-" for p in PEERS],
                 ratio(mine, best) + (f" ({max(peers, key=peers.get)})" if peers else ""),
                 ratio(mine, rate.get("sdpa-flash")), ratio(mine, original),
                 ratio(mine, ceil.get("matmul_tflops"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def entry_table(rows: list[dict]) -> str:
    lines = ["| shape | dtype | entry | ms | TFLOP/s | graph ms | graph TFLOP/s | rel. err vs peer |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "error" in r:
            cells = f"| {r['shape']} | {r['dtype']} | {r['entry']} | - | - | - | - |"
            lines.append(f"{cells} {r['error'][:80]} |")
        else:
            err = f"{r['rel_err']:.1e}" if "rel_err" in r else "-"
            err += " NaN!" if r.get("nan") else ""
            err += " WRONG" if r.get("wrong") else ""
            graph = (f"{r['graph_ms']:.3f} | {r['graph_tflops']:.0f}" if "graph_ms" in r
                     else f"- | {r.get('graph_error', '')[:40]}")
            lines.append(f"| {r['shape']} | {r['dtype']} | {r['entry']} | {r['ms']:.3f} | "
                         f"{r['tflops']:.0f} | {graph} | {err} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    providers.benchmark_arguments(parser, "gpu_compare", budget_s=400)
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp16"], choices=sorted(DTYPES))
    parser.add_argument("--variants", action="store_true", help="also time the candidate configurations")
    parser.add_argument("--host", action="store_true", help="also time the host (Python) side of calls")
    parser.add_argument("--only", nargs="+", help="the rows whose shape id contains one of these")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rep-ms", type=float, default=100, help="do_bench time per measurement")
    parser.add_argument("--prepare-s", type=float, default=150, help="kill tests and workers after this")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--job-log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker), args.device, args.job_log)
        return 0

    start = time.monotonic()
    os.makedirs(args.out, exist_ok=True)
    results = {"environment": providers.environment(args.device), "command": " ".join(sys.argv)}
    print(json.dumps(results["environment"]), flush=True)
    results["ceilings"] = ceilings(args.device)
    print(json.dumps(results["ceilings"]), flush=True)
    bench = [s for s in (SMOKE_SHAPES if args.smoke else shapes.GPU_PREFILL)
             if not args.only or any(text in s.id for text in args.only)]
    # Variants run in the first dtype only: the others time the default against the peers.
    plan = [(s, name, entries(s, args.variants and name == args.dtypes[0], name == args.dtypes[0]))
            for name in args.dtypes for s in bench]

    procs = [] if args.skip_tests or args.smoke else [providers.start_pytest(
        args.out, args.device, "triton or not agreement",
        ["tests/test_agreement.py", "tests/test_triton_kernel.py"], workers=10)]
    log_path = os.path.join(args.out, "jobs.jsonl")
    jobs = [(dataclasses.astuple(s), name, e) for s, name, names in plan for e in names
            if e not in ("sdpa-cudnn", "sdpa-flash", "sdpa-efficient")]
    procs += start_workers(jobs, args.device, max(3, args.workers), log_path)
    results["prepared_in_time"] = wait(procs, start + args.prepare_s)
    status = job_status(log_path)
    results["job_errors"] = {" ".join(k): v for k, v in status.items() if v}
    if procs and not (args.skip_tests or args.smoke):
        results.update(providers.pytest_summary(args.out, procs[0].returncode))
    results["prepare_s"] = time.monotonic() - start
    print(json.dumps({k: results.get(k) for k in ("prepared_in_time", "job_errors", "pytest_tail",
                                                  "pytest_failures", "prepare_s")})[:4000], flush=True)

    rows = []
    for shape, name, names in plan:
        # An entry whose worker job failed, hung or never started is not run here.
        why = {e: status.get((shape.id, name, e), "not started before the workers were killed")
               for e in names if not e.startswith("sdpa")}
        rows += time_row(shape, name, names, args.device, start + args.budget_s, args.rep_ms,
                         {e: w for e, w in why.items() if w})
    results["rows"] = rows
    if args.host:
        providers.guarded(results, "host", host_seconds, args.device)
    results["total_s"] = time.monotonic() - start
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    text = "\n\n".join([json.dumps(results["environment"]), json.dumps(results["ceilings"]),
                        entry_table(rows), "Per call (do_bench):", side_by_side(rows, results["ceilings"]),
                        "GPU time (CUDA-graph replay):",
                        side_by_side(rows, results["ceilings"], "graph_tflops")]) + "\n"
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    wrong = [f"{r['shape']} {r['dtype']} {r['entry']}" for r in rows if r.get("wrong")]
    if wrong:
        print(f"wrong results (relative error above {WRONG_ERROR} or NaN): {wrong}", flush=True)
    ok = results.get("pytest_returncode", 0) == 0 and not results["job_errors"] and not wrong
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
