"""When the decode kernel serves a call, and with which configuration.

The data is tuning/'s: each target family's "decode" table of DecodeConfig. Selection runs on
every decode step, so its result is cached per (target, head dim, dtype, mask dtype, tags).
"""

from __future__ import annotations

from ..device import Target
from ..problem import Problem
from .tuning import default_config, problem_tags
from .tuning.config import DecodeConfig

_selected: dict[tuple, DecodeConfig] = {}


def select_decode_config(problem: Problem, target: Target) -> DecodeConfig | None:
    """The decode configuration of `problem` on `target`, or None when Sq is longer than the
    decode kernel serves there (the prefill kernel is faster from that length on)."""
    mask = problem.mask
    key = (target, problem.head_dim, problem.q.dtype, None if mask is None else mask.dtype,
           problem_tags(problem))
    config = _selected.get(key)
    if config is None:
        config = _selected[key] = default_config(problem, target, kind="decode")
    return config if problem.q_len <= config.max_q_len else None
