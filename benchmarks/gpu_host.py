"""Host (Python) time of tqfa's public call, to compare source trees on one machine: run it once
per tree, alternating, each in its own process.

    PYTHONPATH=src python3 benchmarks/gpu_host.py --out "$OUT/host-new.json"
    PYTHONPATH=old/src python3 benchmarks/gpu_host.py --out "$OUT/host-old.json"

Calls whose GPU time is a few microseconds (so the GPU queue never fills and blocks), no grad,
as in inference: the plain causal prefill call and with HF's causal-and-padding bool mask (B4 Hq8
Hkv2 S333 D128 bf16, q/k/v as views of [B, S, H, D] projections), and two decode steps (one query,
bottom-right causal), each against SDPA on the same inputs. Every call runs 200 times untimed
first; then the median over five batches of the mean of 200 calls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import tqfa


def _calls(device: str) -> dict:
    gen = torch.Generator(device=device).manual_seed(0)

    def bshd(b, s, h, d):
        return torch.randn(b, s, h, d, device=device, dtype=torch.bfloat16, generator=gen).transpose(1, 2)

    b, s = 4, 333
    q, k, v = bshd(b, s, 8, 128), bshd(b, s, 2, 128), bshd(b, s, 2, 128)
    pads = torch.tensor([0, 37, 150, 290], device=device)
    keep = torch.arange(s, device=device)[None, :] >= pads[:, None]
    mask = (torch.ones(s, s, dtype=torch.bool, device=device).tril()[None] & keep[:, None, :])[:, None]
    calls = {
        "prefill, is_causal: tqfa": lambda: tqfa.attention(q, k, v, is_causal=True),
        "prefill, is_causal: sdpa": lambda: F.scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=True),
        "prefill, HF mask: tqfa": lambda: tqfa.attention(q, k, v, mask),
        "prefill, HF mask: sdpa": lambda: F.scaled_dot_product_attention(q, k, v, mask, enable_gqa=True),
    }
    for batch, keys in ((1, 4096), (8, 8192)):
        dq = torch.randn(batch, 32, 1, 128, device=device, dtype=torch.bfloat16, generator=gen)
        dk, dv = (torch.randn(batch, 8, keys, 128, device=device, dtype=torch.bfloat16, generator=gen)
                  for _ in range(2))
        name = f"decode B{batch} Skv{keys}"
        calls[f"{name}: tqfa"] = lambda dq=dq, dk=dk, dv=dv: tqfa.attention(
            dq, dk, dv, is_causal=True, causal_alignment="bottom_right")
        calls[f"{name}: sdpa"] = lambda dq=dq, dk=dk, dv=dv: F.scaled_dot_product_attention(
            dq, dk, dv, enable_gqa=True)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    report = {"tqfa": tqfa.__file__, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "us": {}}
    with torch.no_grad():
        calls = _calls(args.device)
        for fn in calls.values():
            for _ in range(200):
                fn()
            torch.cuda.synchronize()
        for name, fn in calls.items():
            batches = []
            for _ in range(5):
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(200):
                    fn()
                batches.append((time.perf_counter() - start) / 200 * 1e6)
            torch.cuda.synchronize()
            report["us"][name] = round(statistics.median(batches), 1)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
