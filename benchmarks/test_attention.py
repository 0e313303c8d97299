"""pytest-benchmark: providers x shapes on this machine's default device.

Run: `tox -e bench` (or `pytest benchmarks --benchmark-only`). On a CPU the chunked backend is
compared with torch SDPA; on a GPU every provider runs the prefill and decode rows. Throughput
lands in extra_info: TFLOP/s for prefill, GB/s of K/V read for decode.
"""

from __future__ import annotations

import time

import pytest
import torch

import shapes
from providers import PROVIDERS, Unavailable, make_inputs

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu":
    ROWS = [(s, dt) for s in shapes.CPU for dt in (torch.float32, torch.bfloat16)]
    NAMES = ["tqfa-chunked", "sdpa"]
else:
    ROWS = [(s, dt) for s in shapes.GPU_PREFILL for dt in (torch.bfloat16, torch.float16)]
    ROWS += [(s, torch.bfloat16) for s in shapes.GPU_DECODE]
    NAMES = [n for n in PROVIDERS if n != "sdpa"]


def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("provider", NAMES)
@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r[0].id}-{str(r[1])[6:]}")
def test_attention(benchmark, provider, row):
    shape, dtype = row
    q, k, v, mask = make_inputs(shape, dtype, DEVICE)
    try:
        fn = PROVIDERS[provider](shape, q, k, v, mask)
    except Unavailable as why:
        pytest.skip(str(why))
    start = time.perf_counter()
    fn()  # compile / warm up outside the timed region
    _sync()
    first_call = time.perf_counter() - start

    def timed():
        fn()
        _sync()

    benchmark.pedantic(timed, rounds=5 if DEVICE == "cpu" else 50, warmup_rounds=1)
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(first_call_s=round(first_call, 3), median_s=seconds)
    if shape.q_len <= 16:
        benchmark.extra_info["GB/s"] = round(shape.kv_bytes(dtype) / seconds / 1e9, 1)
    else:
        benchmark.extra_info["TFLOP/s"] = round(shape.flops / seconds / 1e12, 4)
