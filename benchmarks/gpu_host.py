"""Host (Python) time of tqfa's public call against SDPA and, optionally, against another source
tree of tqfa imported under another package name, all timed in one process in interleaved rounds
(separate processes on the GPU machine read up to 2x apart for the same call).

    PYTHONPATH=src python3 benchmarks/gpu_host.py --out "$OUT/host.json"
    mkdir -p old && git archive REV src/tqfa | tar -x -C old && mv old/src/tqfa old/tqfa_base
    PYTHONPATH=src:old python3 benchmarks/gpu_host.py --baseline tqfa_base --out "$OUT/host.json"

Calls whose GPU time is a few microseconds (so the GPU queue never fills and blocks), no grad,
as in inference: the plain causal prefill call and with HF's causal-and-padding bool mask (B4 Hq8
Hkv2 S333 D128 bf16, q/k/v as views of [B, S, H, D] projections), a causal prefill call just past
the short calls (B1 Hq2 Hkv1 S1100: the Gluon kernel's launch on sm90), two decode steps (one query,
bottom-right causal), and one token of a decode loop: 32 layers' calls with one key more than the
last token's (a prepared launch serves one layout: the first layer of a token prepares anew).
Timed by providers.host_microseconds: seven interleaved rounds of 200 calls of every entry after
an untimed round; the median and each round are reported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import providers  # noqa: E402  (benchmarks/, after the path set-up)
import tqfa  # noqa: E402

ROUNDS = 7


def _inputs(device: str) -> dict:
    """name -> (q, k, v, mask, keyword arguments)."""
    gen = torch.Generator(device=device).manual_seed(0)

    def bshd(b, s, h, d):
        return torch.randn(b, s, h, d, device=device, dtype=torch.bfloat16, generator=gen).transpose(1, 2)

    b, s = 4, 333
    q, k, v = bshd(b, s, 8, 128), bshd(b, s, 2, 128), bshd(b, s, 2, 128)
    pads = torch.tensor([0, 37, 150, 290], device=device)
    keep = torch.arange(s, device=device)[None, :] >= pads[:, None]
    mask = (torch.ones(s, s, dtype=torch.bool, device=device).tril()[None] & keep[:, None, :])[:, None]
    inputs = {"prefill, is_causal": (q, k, v, None, dict(is_causal=True)),
              "prefill, HF mask": (q, k, v, mask, {})}
    # Past SHORT_LENGTH: on sm90 the Gluon kernel's launch (gluon_launch), a few us of GPU time.
    dense = bshd(1, 1100, 2, 128), bshd(1, 1100, 1, 128), bshd(1, 1100, 1, 128)
    inputs["prefill S1100 (sm90: ws kernel), is_causal"] = (*dense, None, dict(is_causal=True))
    for batch, keys in ((1, 4096), (8, 8192)):
        dq = torch.randn(batch, 32, 1, 128, device=device, dtype=torch.bfloat16, generator=gen)
        dk, dv = (torch.randn(batch, 8, keys, 128, device=device, dtype=torch.bfloat16, generator=gen)
                  for _ in range(2))
        inputs[f"decode B{batch} Skv{keys}"] = (
            dq, dk, dv, None, dict(is_causal=True, causal_alignment="bottom_right"))
    return inputs


LAYERS = 32


def _decode_loop(attention, q, k, v, kwargs: dict):
    """One token of a decode loop: LAYERS calls over the keys [0, n), n one longer than the last
    token's (views of preallocated K/V, as a cache that grows by a key per token)."""
    state = {"n": 4096}

    def token():
        n = state["n"] = state["n"] + 1
        kn, vn = k[:, :, :n], v[:, :, :n]
        for _ in range(LAYERS):
            attention(q, kn, vn, None, **kwargs)
    return token


def _calls(device: str, implementations: dict) -> dict:
    gen = torch.Generator(device=device).manual_seed(1)
    q = torch.randn(1, 32, 1, 128, device=device, dtype=torch.bfloat16, generator=gen)
    k, v = (torch.randn(1, 8, 8192, 128, device=device, dtype=torch.bfloat16, generator=gen)
            for _ in range(2))
    causal = dict(is_causal=True, causal_alignment="bottom_right")
    # Per token of LAYERS calls (divide by LAYERS for one call).
    calls = {f"decode loop B1 Skv4096+, one token of {LAYERS} layers: {label}": _decode_loop(
        attention, q, k, v, causal) for label, attention in implementations.items()}
    calls[f"decode loop B1 Skv4096+, one token of {LAYERS} layers: sdpa"] = _decode_loop(
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), q, k, v, {})
    for case, (q, k, v, mask, kwargs) in _inputs(device).items():
        for label, attention in implementations.items():
            calls[f"{case}: {label}"] = lambda a=attention, q=q, k=k, v=v, m=mask, kw=kwargs: a(
                q, k, v, m, **kw)
        sdpa_kwargs = {"is_causal": True} if kwargs.get("is_causal") and q.shape[2] > 1 else {}
        calls[f"{case}: sdpa"] = lambda q=q, k=k, v=v, m=mask, kw=sdpa_kwargs: (
            F.scaled_dot_product_attention(q, k, v, m, enable_gqa=True, **kw))
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--baseline", help="a package (on the path) holding another tqfa tree")
    args = parser.parse_args()
    implementations = {"tqfa": tqfa.attention}
    if args.baseline:
        implementations[args.baseline] = importlib.import_module(args.baseline).attention
    report = {"tqfa": tqfa.__file__, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "implementations": {label: fn.__module__ for label, fn in implementations.items()}}
    with torch.no_grad():
        timed = providers.host_microseconds(_calls(args.device, implementations), args.device,
                                            rounds=ROUNDS)
    report["rounds"] = timed.pop("rounds")
    report["us"] = {name.removesuffix(" us"): us for name, us in timed.items()}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report["us"], indent=1))


if __name__ == "__main__":
    main()
