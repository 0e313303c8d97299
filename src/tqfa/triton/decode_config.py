"""When the decode kernel serves a call, and with which configuration.

The data is tuning/'s: each target family's "decode" table of DecodeConfig (tuning caches the
selection: it runs on every decode step).
"""

from __future__ import annotations

from ..device import Target
from ..problem import Problem
from .tuning import FAMILIES, default_config
from .tuning.config import DecodeConfig

# The most queries any family's decode default serves: a longer call (every prefill call) is
# the prefill kernel's without a table lookup. Fitting a default to shared memory keeps its
# max_q_len.
LONGEST_DECODE = max(config.max_q_len for family in FAMILIES.values()
                     if "decode" in family.kinds
                     for config in family.kinds["decode"].defaults.values())


def select_decode_config(problem: Problem, target: Target) -> DecodeConfig | None:
    """The decode configuration of `problem` on `target`, or None when Sq is longer than the
    decode kernel serves there (the prefill kernel is faster from that length on)."""
    if problem.q_len > LONGEST_DECODE:
        return None
    config = default_config(problem, target, kind="decode")
    return config if problem.q_len <= config.max_q_len else None
