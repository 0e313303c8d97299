"""TQFA_AUTOTUNE=1: time a family's pruned space on the call's own inputs, once per bucketed key,
and keep the fastest configuration for the rest of the process.

The key never holds a raw sequence length: lengths are bucketed to powers of two, so a new
prompt length reuses the winner of its bucket instead of timing (and compiling) the space again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Hashable

from ...problem import Problem
from .config import KernelConfig

_log = logging.getLogger("tqfa")
_best: dict[Hashable, KernelConfig] = {}
MAX_LENGTH_BUCKET = 1 << 16  # past 64k keys the best tile no longer depends on the length


def length_bucket(n: int) -> int:
    """The power of two at or above n (1, 2, 4, ...), at most MAX_LENGTH_BUCKET."""
    return min(1 << max(n - 1, 0).bit_length(), MAX_LENGTH_BUCKET)


def tuning_key(problem: Problem, arch: str, kind: str) -> tuple:
    """What the winner may depend on: everything that changes the compiled kernel or the shape of
    the work, with lengths bucketed."""
    mask = None if problem.mask is None else (str(problem.mask.dtype), problem.mask.stride(2) != 0)
    return (arch, kind, problem.head_dim, str(problem.dtype), problem.causal, mask, problem.group > 1,
            length_bucket(problem.q_len), length_bucket(problem.kv_len))


@functools.cache
def log_once(message: str) -> None:
    _log.info("tqfa: %s", message)


def cache_clear() -> None:
    _best.clear()


def tune(key: Hashable, configs: list[KernelConfig], default: KernelConfig,
         time_ms: Callable[[KernelConfig], float]) -> KernelConfig:
    """The fastest of `configs` by `time_ms`, cached under `key`. A configuration that fails to
    compile or launch (too much shared memory on this device, say) is skipped; if all fail,
    `default`."""
    best = _best.get(key)
    if best is not None:
        return best
    timings = {}
    for config in configs:
        try:
            timings[config] = time_ms(config)
        except Exception as exc:  # compiler and driver errors share no narrower base
            _log.info("tqfa: autotune skips %s: %s: %s", config, type(exc).__name__, exc)
    best = min(timings, key=timings.get) if timings else default
    ranked = sorted(timings.items(), key=lambda item: item[1])
    summary = ", ".join(f"{config} {ms:.3f} ms" for config, ms in ranked)
    _log.info("tqfa: autotuned %s -> %s (%s)", key, best, summary or "nothing ran")
    _best[key] = best
    return best


def prefill_timer(problem: Problem) -> Callable[[KernelConfig], float]:
    """Milliseconds of one prefill launch with a configuration, into scratch outputs."""
    import torch
    from triton.testing import do_bench

    from .. import launch  # imports tuning: only at call time

    out = torch.empty_like(problem.q)
    lse = torch.empty(problem.q.shape[:3], dtype=torch.float32, device=problem.device)

    def time_ms(config: KernelConfig) -> float:
        return do_bench(lambda: launch.attention_forward(problem, out, lse, config, problem.allow_tf32))

    return time_ms
