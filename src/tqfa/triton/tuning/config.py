"""The shapes of tuning data: one kernel configuration, one problem kind's table, one target family.

The target modules beside this one hold values of these types and nothing else; the selection
logic lives in __init__.py.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import ClassVar

# (head-dim bucket, element size in bytes): (64 | 128 | 256, 2 | 4). A table may add rows
# (bucket, size, tag) for the calls that carry the tag (tuning.problem_tags), the first tag that
# has a row winning: "keymask" (a mask that is the same for every query row, such as key padding:
# one [BLOCK_N] vector per tile; such a call is "masked" too, so a table without a "keymask" row
# gives it the "masked" one), "masked" (a mask, whose tile is pipelined too), "dense-causal-short"
# (a "dense-causal" call that is "short" too), "dense-causal" (a "dense" call that is causal),
# "dense" (a prefill call the sm90 Gluon kernel can serve, tuning.serves_dense), "short" (Sq and
# Skv at most SHORT_LENGTH), "split" (a head dim the kernel computes as two parts, such as
# 96 = 64 + 32).
Key = tuple
TAGS = ("keymask", "masked", "dense-causal-short", "dense-causal", "dense", "short", "split")
DENSE_TAGS = ("dense-causal-short", "dense-causal", "dense")
SHORT_LENGTH = 1024


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _power_of_two(value) -> bool:
    return _is_int(value) and value > 0 and not value & (value - 1)


@dataclass(frozen=True)
class KernelConfig:
    """Tile sizes and compiler knobs of one launch of the prefill kernel."""

    block_m: int  # query rows per program
    block_n: int  # keys per streamed K/V tile
    num_warps: int
    num_stages: int  # software-pipelining depth of the K/V loads
    # AMD only, passed to the HIP compiler and nowhere else; 0 leaves the compiler's choice.
    waves_per_eu: int = 0  # waves per SIMD the register allocation must leave room for
    matrix_instr_nonkdim: int = 0  # CDNA MFMA shape: 16 (16x16) or 32 (32x32)
    # NVIDIA sm90+ tensor descriptors (kernel.py: TMA); off unless a table turns them on.
    tma: bool = False
    # Row blocks per program (kernel.py: HALVES): 2 splits block_m into two halves that share
    # the K/V tiles, so one half's softmax can overlap the other's matrix products.
    halves: int = 1
    # NVIDIA sm90 only: gluon_sm90.py's warp-specialised kernel (a producer warp and two consumer
    # warpgroups of 64 rows) for the calls it serves (gluon_launch.ws_strides; kernel.py's kernel
    # on the same tiles for the others); pingpong makes the warpgroups issue their products in turn;
    # persistent launches at most one program per SM, each looping over work items; snake makes a
    # persistent causal grid take each round of items in the other direction from the one before
    # (gluon_sm90._work).
    ws: bool = False
    pingpong: bool = False
    persistent: bool = False
    snake: bool = False

    def __post_init__(self):
        for name in ("block_m", "block_n"):
            value = getattr(self, name)
            # tl.arange needs powers of two and tl.dot operands at least 16 wide.
            if not (_power_of_two(value) and value >= 16):
                raise ValueError(f"{name} must be a power of two >= 16, got {value!r}")
        if not (_power_of_two(self.num_warps) and self.num_warps <= 16):
            raise ValueError(f"num_warps must be a power of two <= 16, got {self.num_warps!r}")
        if not (_is_int(self.num_stages) and 1 <= self.num_stages <= 8):
            raise ValueError(f"num_stages must be an integer from 1 to 8, got {self.num_stages!r}")
        if not (_is_int(self.waves_per_eu) and 0 <= self.waves_per_eu <= 16):
            raise ValueError(f"waves_per_eu must be an integer from 0 to 16, got {self.waves_per_eu!r}")
        if self.matrix_instr_nonkdim not in (0, 16, 32):
            raise ValueError(f"matrix_instr_nonkdim must be 0, 16 or 32, got {self.matrix_instr_nonkdim!r}")
        if not _is_int(self.halves) or self.halves not in (1, 2):
            raise ValueError(f"halves must be 1 or 2, got {self.halves!r}")
        if self.block_m // self.halves < 16:
            raise ValueError(f"block_m / halves must be at least 16 (tl.dot), got "
                             f"{self.block_m} / {self.halves}")
        for name in ("tma", "ws", "pingpong", "persistent", "snake"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.ws and not (self.tma and self.block_m == 128 and self.num_warps == 4
                            and self.halves == 1 and self.block_n in (64, 128, 256)):
            raise ValueError("ws needs tma, block_m 128 (two warpgroups of 64 rows), num_warps 4 "
                             f"(per warpgroup), halves 1 and block_n 64, 128 or 256, got {self}")
        if (self.pingpong or self.persistent) and not self.ws:
            raise ValueError("pingpong and persistent are options of the ws kernel: they need ws")
        if self.snake and not self.persistent:
            raise ValueError("snake is an order of persistent ws grids: it needs persistent")

    def without_ws(self) -> KernelConfig:
        """The configuration kernel.py runs for a call the ws kernel does not serve: the same
        tiles, without the ws options."""
        return replace(self, ws=False, pingpong=False, persistent=False, snake=False)

    def amd_options(self) -> dict[str, int]:
        """The AMD-only compiler options this configuration sets: launch keywords on HIP only."""
        return {name: value for name in ("waves_per_eu", "matrix_instr_nonkdim")
                if (value := getattr(self, name))}

    def __str__(self) -> str:
        extra = {"waves_per_eu": "wpe", "matrix_instr_nonkdim": "mfma", "tma": "tma", "ws": "ws",
                 "pingpong": "pp", "persistent": "pers", "snake": "snake"}
        tags = "".join(f" {tag}{'' if value is True else value}"
                       for name, tag in extra.items() if (value := getattr(self, name)))
        tags += f" h{self.halves}" if self.halves > 1 else ""
        return f"{self.block_m}x{self.block_n} w{self.num_warps} s{self.num_stages}{tags}"

    @classmethod
    def from_json(cls, text: str, source: str = "TQFA_TRITON_CONFIG") -> KernelConfig:
        """Parse one configuration, e.g. {"block_m": 128, "block_n": 64, "num_warps": 4,
        "num_stages": 2}; every mistake is a ValueError that names `source` and its value."""
        kinds = {f.name: f.type for f in fields(cls)}
        example = '{"block_m": 128, "block_n": 64, "num_warps": 4, "num_stages": 2}'
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}={text!r} is not JSON ({exc}); expected e.g. {example}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{source}={text!r} must be a JSON object, e.g. {example}")
        unknown = sorted(set(data) - set(kinds))
        if unknown:
            raise ValueError(f"{source}={text!r}: unknown key(s) {unknown}; the keys are {list(kinds)}")
        missing = [name for name in list(kinds)[:4] if name not in data]
        if missing:
            raise ValueError(f"{source}={text!r}: missing key(s) {missing}; e.g. {example}")
        for name, value in data.items():
            want_bool = kinds[name] == "bool"
            if isinstance(value, bool) != want_bool or not isinstance(value, int):
                raise ValueError(f"{source}={text!r}: {name} must be "
                                 f"{'true or false' if want_bool else 'an integer'}, got {value!r}")
        try:
            return cls(**data)
        except ValueError as exc:
            raise ValueError(f"{source}={text!r}: {exc}") from None


@dataclass(frozen=True)
class DecodeConfig:
    """Tile sizes, compiler knobs and split rule of the decode (split-KV) kernels,
    decode_kernel.py. Field names shared with KernelConfig mean the same, so the shared-memory
    estimate and fit above apply to both."""

    block_m: int  # the largest packed row block (group x Sq rows, padded to a power of two >= 16)
    block_n: int  # keys per streamed K/V tile
    num_warps: int
    num_stages: int  # software-pipelining depth of the K/V loads
    programs_per_sm: int  # split rule: at most this many programs per SM...
    min_split_tiles: int  # ...and never fewer K/V tiles per split than this
    max_q_len: int  # the decode kernel serves Sq <= max_q_len; longer queries go to prefill
    tma: ClassVar[bool] = False  # no TMA path in the decode kernel

    def amd_options(self) -> dict[str, int]:
        return {}

    def __str__(self) -> str:
        return (f"{self.block_m}x{self.block_n} w{self.num_warps} s{self.num_stages} "
                f"pps{self.programs_per_sm} min{self.min_split_tiles} q{self.max_q_len}")


def _keep_all(config, head_bucket: int, elt_bytes: int) -> bool:
    return True


@dataclass(frozen=True)
class Tuning:
    """One problem kind on one target family: a deterministic default per key, and the space that
    TQFA_AUTOTUNE=1 searches (at most a dozen configurations for any key, after the pruning).
    `keep(config, head_bucket, elt_bytes)` is the family's pruning rule; the shared-memory fit
    applies on top of it."""

    defaults: Mapping[Key, object]
    space: tuple = ()
    keep: Callable[[object, int, int], bool] = _keep_all

    @functools.cached_property
    def has_dense_rows(self) -> bool:
        """Whether a row is for one of DENSE_TAGS: only then does problem_tags check them."""
        return any(key[2:] and key[2] in DENSE_TAGS for key in self.defaults)

    def default(self, key: Key, tags: tuple[str, ...] = ()):
        """The row of the first of `tags` (in TAGS order) that has one, else the key's."""
        return next((self.defaults[key + (tag,)] for tag in tags if key + (tag,) in self.defaults),
                    self.defaults[key])

    def candidates(self, key: Key) -> list:
        """The space pruned by the family's rule for `key` (before the shared-memory fit)."""
        return [config for config in self.space if self.keep(config, key[0], key[1])]


@dataclass(frozen=True)
class Family:
    """A group of GPU architectures that share one set of tuning data."""

    name: str
    vendor: str  # "nvidia", "amd" or "interpreter"
    # Target.arch values this family tunes, as names or prefixes ("sm89", "gfx11"); a generic
    # family claims nothing and takes its vendor's architectures that no other family claims.
    claims: tuple[str, ...]
    # What `python -m tqfa compile-check` compiles for -> shared memory (LDS) bytes per block;
    # CI compiles the first.
    archs: Mapping[str, int]
    # Problem kind -> its data: "prefill" (KernelConfig) and "decode" (DecodeConfig).
    kinds: Mapping[str, Tuning] = field(default_factory=dict)

    def claims_arch(self, arch: str) -> bool:
        return any(arch.startswith(claim) for claim in self.claims)
