"""Kernel configurations per target family, and how one is chosen for a call.

The data lives in one module per family (sm80, sm86, sm90, cdna, rdna3, rdna4, the generic
nvidia and amd fallbacks, the interpreter); this module maps a probed Target to its family and
picks a configuration, in this order of authority:
  1. TQFA_TRITON_CONFIG: one configuration as JSON, for experts (invalid values raise);
  2. TQFA_AUTOTUNE=1: the family's pruned space, timed once per bucketed key per process;
  3. the family's deterministic default for (head-dim bucket, element size[, tag]).
Both variables are read here, at selection; kernels and launchers never read the environment.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
from dataclasses import replace

import torch

from ...device import Target
from ...problem import Problem
from ..tma_layout import tma_strides
from . import amd, autotune, cdna, interpreter, nvidia, rdna3, rdna4, sm80, sm86, sm90
from .config import SHORT_LENGTH, TAGS, Family, KernelConfig, Key, Tuning

__all__ = [
    "AUTOTUNE_ENV", "CONFIG_ENV", "FAMILIES", "INTERPRETER", "Family", "KernelConfig", "Tuning",
    "autotune_requested", "candidates", "default_config", "family_of", "head_block", "head_bucket",
    "head_parts", "nvidia_capability", "override_config", "problem_key", "problem_tags",
    "select_config", "serves_dense", "smem_estimate", "target_for_arch",
]

CONFIG_ENV = "TQFA_TRITON_CONFIG"
AUTOTUNE_ENV = "TQFA_AUTOTUNE"

# The Triton interpreter (TRITON_INTERPRET=1) as a target: whatever device the tensors are on.
INTERPRETER = Target("interpreter", "interpreter", "Triton interpreter", 1, 0, 1)

# Every family by name; the generic ones last: they take what no other family of their vendor claims.
FAMILIES = {family.name: family for family in (
    sm80.FAMILY, sm86.FAMILY, sm90.FAMILY, cdna.FAMILY, rdna3.FAMILY, rdna4.FAMILY,
    interpreter.FAMILY, nvidia.FAMILY, amd.FAMILY,
)}

_log = logging.getLogger("tqfa")


def nvidia_capability(target: Target) -> int:
    """"sm90" -> 90; 0 for other vendors."""
    return int(target.arch[2:]) if target.vendor == "nvidia" else 0


def head_block(head_dim: int) -> int:
    """Head dim padded in registers to a power of two; tl.dot needs at least 16."""
    return max(16, 1 << (head_dim - 1).bit_length())


@functools.cache
def head_parts(head_dim: int) -> tuple[int, int]:
    """(BLOCK_D, BLOCK_D1): the head dim as one power of two (padded), or as two when that pads
    less (96 = 64 + 32, 80 = 64 + 16, 40 = 32 + 16; 112 stays 128, 24 stays 32)."""
    padded = head_block(head_dim)
    low = 1 << (head_dim.bit_length() - 1)
    if low < 16 or low == head_dim:
        return padded, 0
    high = max(16, 1 << (head_dim - low - 1).bit_length())
    return (low, high) if low + high < padded else (padded, 0)


def head_bucket(head_dim: int) -> int:
    return 64 if head_dim <= 64 else 128 if head_dim <= 128 else 256


def problem_key(problem: Problem) -> Key:
    return head_bucket(problem.head_dim), problem.q.element_size()


# Every subset of TAGS, in TAGS order, indexed by its membership bits (first tag = highest bit):
# problem_tags runs on every call, decode steps included.
_TAG_SETS = tuple(tuple(tag for tag, on in zip(TAGS, bits) if on)
                  for bits in itertools.product((False, True), repeat=len(TAGS)))


def serves_dense(problem: Problem, layouts: bool = True) -> bool:
    """The "dense" tag: the calls gluon_sm90.py's kernel serves (on sm90), by their features:
    16-bit, head dim 64 or 128, no mask, a positive scale, and (layouts) Q, K and V readable
    through tensor descriptors."""
    return (problem.mask is None and problem.q.dtype in (torch.float16, torch.bfloat16)
            and problem.head_dim in (64, 128) and problem.v_head_dim == problem.head_dim
            and problem.scale > 0 and (not layouts or all(
                tma_strides(t) is not None for t in (problem.q, problem.k, problem.v))))


def problem_tags(problem: Problem, kind: str = "prefill", dense: bool = True) -> tuple[str, ...]:
    """The tags of config.TAGS ("keymask", "masked", "dense-causal-short", "dense-causal",
    "dense", "short", "split") that `problem` carries, in their order of precedence. The "dense"
    ones only for a prefill call and with `dense` (a table with rows for them): their check (three
    tensors' layouts, 5-6 us on a CPU) is the costliest here, and decode steps are served by
    another kernel."""
    mask = problem.mask
    masked = mask is not None
    # The kernel reads one mask vector per tile when the query-row stride is 0 (MASK_ROWS).
    keymask = masked and (mask.stride(2) == 0 or mask.shape[2] == 1)
    short = max(problem.q_len, problem.kv_len) <= SHORT_LENGTH
    split = head_parts(problem.head_dim)[1] > 0
    dense = dense and kind == "prefill" and not masked and serves_dense(problem)  # no split dims
    dense_causal = dense and problem.causal is not None
    return _TAG_SETS[64 * keymask + 32 * masked + 16 * (dense_causal and short) + 8 * dense_causal
                     + 4 * dense + 2 * short + split]


def _describe(target: Target) -> str:
    return target.arch if target.name == target.arch else f"{target.name} ({target.arch})"


@functools.cache
def _log_generic(family: str, device: str) -> None:
    _log.info("tqfa: no tuning table for %s; using the generic %s configurations", device, family)


@functools.lru_cache(maxsize=64)
def family_of(target: Target) -> Family:
    """The family that tunes `target`: the first that claims its arch, else its vendor's generic
    family (logged once per arch). NVIDIA below sm80 has none (the backend refuses it first).
    Cached: it runs on every call."""
    if target.vendor == "nvidia" and nvidia_capability(target) < 80:
        raise ValueError(f"the triton kernel needs sm80 or newer, got {_describe(target)}")
    for family in FAMILIES.values():
        if family.vendor == target.vendor and family.claims_arch(target.arch):
            return family
    generic = FAMILIES.get(target.vendor)
    if generic is None:
        raise ValueError(f"no triton tuning for {target.vendor} device {_describe(target)}")
    _log_generic(generic.name, _describe(target))
    return generic


def target_for_arch(arch: str) -> Target:
    """A Target for an arch name ("sm89", "gfx942"), with the shared memory of the family that
    lists it (0 = unknown): what compile-check compiles for and `info --arch` describes."""
    vendor = "amd" if arch.startswith("gfx") else "nvidia"
    shared = next((f.archs[arch] for f in FAMILIES.values() if arch in f.archs), 0)
    warp = 64 if arch.startswith("gfx9") else 32
    return Target(vendor, arch, arch, 0, shared, warp)


def smem_estimate(config: KernelConfig, block_d: int, elt_bytes: int, mask_bytes: int = 0,
                  q_in_smem: bool = True) -> int:
    """Shared memory of the pipelined K/V tiles, the Q tile (sm90+ MMAs read it from shared
    memory; sm80's keep it in registers) and the pipelined mask tile (its element size; 0 without
    a mask): Triton's allocation on sm80 and sm90 in the compile check, an upper bound on AMD."""
    rows = config.num_stages * 2 * config.block_n + (config.block_m if q_in_smem else 0)
    return rows * block_d * elt_bytes + (config.num_stages - 1) * config.block_m * config.block_n * mask_bytes


def _q_in_smem(target: Target) -> bool:
    return target.vendor != "nvidia" or nvidia_capability(target) >= 90


def _fit(config: KernelConfig, problem: Problem, target: Target, limit: int) -> KernelConfig:
    """Shallower pipeline, then narrower KV tiles, until the estimate fits `limit`."""
    sizes = head_block(problem.head_dim), problem.q.element_size(), _mask_bytes(problem), _q_in_smem(target)
    while smem_estimate(config, *sizes) > limit:
        if config.num_stages > 1:
            config = replace(config, num_stages=config.num_stages - 1)
        elif config.block_n > 16:
            config = replace(config, block_n=config.block_n // 2)
        else:
            break
    return config


def _tuning(family: Family, kind: str) -> Tuning:
    if kind not in family.kinds:
        raise ValueError(f"no {kind!r} tuning for the {family.name} family; it has {sorted(family.kinds)}")
    return family.kinds[kind]


def _fit_limit(family: Family, target: Target) -> int | None:
    """The shared memory to fit configurations into by estimate, or None: the interpreter has no
    limit, and compile-check measures a named family's data on the archs it lists (the compiler's
    numbers beat the estimate, which overshoots on AMD) for devices with at least that much.
    Generic families run on archs nobody listed for them: always by estimate."""
    checked = family.archs.get(target.arch) if family.claims else None
    if not target.shared_memory or (checked is not None and target.shared_memory >= checked):
        return None
    return target.shared_memory


def _mask_bytes(problem: Problem) -> int:
    return 0 if problem.mask is None else problem.mask.element_size()


def candidates(problem: Problem, target: Target, kind: str = "prefill", family: Family | None = None
               ) -> list[KernelConfig]:
    """The space for `problem` of the target's family (or of `family`): pruned by the family's
    rule and, where the data is not compile-checked, by the shared-memory estimate (dropped, not
    shrunk)."""
    family = family or family_of(target)
    key = problem_key(problem)
    limit = _fit_limit(family, target)
    sizes = head_block(problem.head_dim), key[1], _mask_bytes(problem), _q_in_smem(target)
    return [config for config in _tuning(family, kind).candidates(key)
            if limit is None or smem_estimate(config, *sizes) <= limit]


def override_config(target: Target) -> KernelConfig | None:
    text = os.environ.get(CONFIG_ENV, "").strip()
    if not text:
        return None
    config = _parse_override(text)
    if target.vendor == "nvidia" and config.amd_options():
        raise ValueError(f"{CONFIG_ENV}={text!r}: {sorted(config.amd_options())} apply to AMD GPUs "
                         f"only, this is {_describe(target)}")
    if target.vendor == "amd" and config.tma:
        raise ValueError(f"{CONFIG_ENV}={text!r}: tma needs an NVIDIA sm90+ GPU, this is "
                         f"{_describe(target)}")
    if config.ws and target.arch != "sm90":
        raise ValueError(f"{CONFIG_ENV}={text!r}: ws is a kernel for NVIDIA sm90 (H100, H200), "
                         f"this is {_describe(target)}")
    return config


@functools.lru_cache(maxsize=16)
def _parse_override(text: str) -> KernelConfig:
    return KernelConfig.from_json(text, source=CONFIG_ENV)


def autotune_requested() -> bool:
    value = os.environ.get(AUTOTUNE_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"{AUTOTUNE_ENV} must be 0 or 1, got {value!r}")
    return value == "1"


# default_config's results for the target's own family, by everything they depend on.
_defaults: dict[tuple, KernelConfig] = {}


def default_config(problem: Problem, target: Target, kind: str = "prefill", family: Family | None = None
                   ) -> KernelConfig:
    """The default of the target's family (or of `family`), fitted to the shared memory where the
    data is not compile-checked. Cached for the target's family: it runs on every call."""
    if family is not None:
        return _family_default(problem, target, kind, family)
    mask = problem.mask
    tuning = family_of(target).kinds.get(kind)  # a missing kind raises in _family_default
    key = (target, kind, problem.head_dim, problem.q.dtype, None if mask is None else mask.dtype,
           problem_tags(problem, kind, tuning is not None and tuning.has_dense_rows))
    config = _defaults.get(key)
    if config is None:
        config = _defaults[key] = _family_default(problem, target, kind, family_of(target))
    return config


def _family_default(problem: Problem, target: Target, kind: str, family: Family) -> KernelConfig:
    key = problem_key(problem)
    tuning = _tuning(family, kind)
    config = tuning.default(key, problem_tags(problem, kind, tuning.has_dense_rows))
    limit = _fit_limit(family, target)
    if limit is None:
        return config
    return _fit(config, problem, target, limit)


def select_config(problem: Problem, target: Target, *, kind: str = "prefill") -> KernelConfig:
    """The configuration for `problem` on `target` (see the module docstring for the order)."""
    override = override_config(target)
    if override is not None:
        return override
    default = default_config(problem, target, kind)
    if not autotune_requested():
        return default
    if target.vendor == "interpreter":
        autotune.log_once("TQFA_AUTOTUNE=1 has no effect under TRITON_INTERPRET=1: nothing to time")
        return default
    key = autotune.tuning_key(problem, target.arch, kind)
    return autotune.tune(key, candidates(problem, target, kind), default, autotune.prefill_timer(problem))
