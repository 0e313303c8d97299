"""Repeated launches of a Triton kernel without Triton's per-call binder.

`kernel[grid](**kwargs)` binds and specialises every argument again on every call and builds a
string key from the result: for the forward kernel's fifty arguments that was about 65 of the
~190 us a short `tqfa.attention` call spent on the H200's host. `Launcher` keeps each compiled
variant it has launched under a key of its own and launches a known variant directly, through
`CompiledKernel[grid](*args)`; a new variant goes through Triton once (which compiles it).

The key must be at least as fine as Triton's specialisation, or a call would run a variant
compiled for other arguments. Triton's rules on NVIDIA (BaseBackend and native_specialize_impl in
triton 3.6 and 3.9; tests/test_fast_launch.py checks them against this machine's triton, and on
a GPU that each launch runs the variant Triton itself selects):
- a tensor: its dtype and whether data_ptr() is a multiple of 16;
- an int: int32 or int64 by range and, unless the parameter is do_not_specialize, whether it
  is 1 and whether it is a multiple of 16;
- a float, a bool or None: its type; a tensor descriptor: dtype and block shape;
- constexprs and launch options (num_warps, ...): their values; Triton's debug and
  instrumentation knobs too.
Launch hooks (profilers) still run: `CompiledKernel[grid]` passes them on as Triton's launch
does. Other backends specialise on more (AMD: tensor sizes, for buffer loads) and the interpreter
has no compiled variants: those keep `kernel[grid]`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import triton
from packaging.version import Version

try:
    from triton import knobs
except ImportError:  # triton < 3.4: no knobs, and not a version this module was checked on
    knobs = None

try:
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:
    TensorDescriptor = None
from triton.compiler import CompiledKernel

# Versions whose launch path and specialisation rules this module was written against.
CHECKED_TRITON = (Version("3.6"), Version("3.10"))
# Launch options: keyword arguments of a launch that are not kernel parameters.
OPTION_NAMES = ("num_warps", "num_stages", "num_ctas", "maxnreg", "waves_per_eu",
                "matrix_instr_nonkdim")
MAX_VARIANTS = 512  # a bound on the cache; real workloads use a handful of variants per kernel

_MOD16 = (16).__rmod__  # x -> x % 16, mapped in C over a tuple of ints
_IS_ONE = (1).__eq__
_INT32_MIN, _INT32_END = -(2**31), 2**31


def _triton_checked() -> bool:
    low, high = CHECKED_TRITON
    return knobs is not None and low <= Version(Version(triton.__version__).base_version) < high


def _getter(indices: list[int]):
    """values -> tuple of values[i] for i in indices (operator.itemgetter, always a tuple)."""
    if not indices:
        return lambda values: ()
    if len(indices) == 1:
        i = indices[0]
        return lambda values: (values[i],)
    return operator.itemgetter(*indices)


@dataclass(frozen=True)
class _Layout:
    """Getters (runtime values -> tuple) of each kind of runtime argument, for one tuple of
    runtime argument types."""

    tensors: object
    descriptors: object
    ints: object  # every int argument
    specialised_ints: object  # the ints of parameters Triton specialises


class Launcher:
    """`launcher(grid, kwargs)` launches `kernel` as `kernel[grid](**kwargs)` would: every kernel
    parameter by name, and launch options among OPTION_NAMES."""

    def __init__(self, kernel):
        self.kernel = kernel
        params = tuple(getattr(kernel, "params", ()))  # a JITFunction's; none when interpreted
        self.enabled = bool(params) and torch.version.hip is None and _triton_checked()
        self.names = tuple(p.name for p in params)
        self._values = operator.itemgetter(*self.names) if params else None  # kwargs -> tuple
        self._constexprs = _getter([i for i, p in enumerate(params) if p.is_constexpr])
        self._runtime_params = [(i, p) for i, p in enumerate(params) if not p.is_constexpr]
        self._runtime = _getter([i for i, _ in self._runtime_params])
        self._layouts: dict[tuple, _Layout | None] = {}
        self._variants: dict[tuple, object] = {}

    def __call__(self, grid: tuple[int, ...], kwargs: dict) -> None:
        key = None
        if self.enabled:
            values = self._values(kwargs)
            key = self._key(values, kwargs)
            compiled = self._variants.get(key) if key is not None else None
            if compiled is not None:
                compiled[(*grid, 1, 1)[:3]](*values)  # CompiledKernel reads three grid sizes
                return
        compiled = self.kernel[grid](**kwargs)
        if key is not None and isinstance(compiled, CompiledKernel):  # not a pending compile
            if len(self._variants) >= MAX_VARIANTS:
                self._variants.clear()
            self._variants[key] = compiled

    def key(self, kwargs: dict) -> tuple | None:
        """What Triton specialises `kernel` on for these arguments (see the module docstring),
        or finer; None when an argument is of a kind this module does not mirror."""
        return self._key(self._values(kwargs), kwargs)

    def _key(self, values: tuple, kwargs: dict) -> tuple | None:
        options = tuple([(name, kwargs[name]) for name in OPTION_NAMES if name in kwargs])
        if len(kwargs) != len(values) + len(options):  # an option this module does not know
            return None
        runtime = self._runtime(values)
        types = tuple(map(type, runtime))
        layout = self._layouts.get(types, False)
        if layout is False:
            layout = self._layouts[types] = self._layout(types)
        if layout is None:
            return None
        ints = layout.ints(runtime)
        if ints and (min(ints) < _INT32_MIN or max(ints) >= _INT32_END):  # int64: Triton's path
            return None
        specialised = layout.specialised_ints(runtime)
        return (torch.cuda.current_device(), knobs.runtime.debug,
                knobs.compilation.instrumentation_mode, options, types, self._constexprs(values),
                tuple(map(_MOD16, specialised)), tuple(map(_IS_ONE, specialised)),
                tuple([(t.dtype, t.data_ptr() % 16 == 0) for t in layout.tensors(runtime)]),
                tuple([(d.base.dtype, tuple(d.block_shape), d.padding)
                       for d in layout.descriptors(runtime)]))

    def _layout(self, types: tuple[type, ...]) -> _Layout | None:
        """Where each kind sits among the runtime arguments; None if one is of a type this
        module does not mirror (Triton's path then)."""
        kinds = {"tensors": [], "descriptors": [], "ints": [], "specialised_ints": []}
        for j, ((_, param), kind) in enumerate(zip(self._runtime_params, types)):
            if issubclass(kind, torch.Tensor):
                kinds["tensors"].append(j)
            elif kind is int:
                kinds["ints"].append(j)
                if not param.do_not_specialize:
                    kinds["specialised_ints"].append(j)
            elif TensorDescriptor is not None and kind is TensorDescriptor:
                kinds["descriptors"].append(j)
            elif kind not in (float, bool, type(None)):  # these by type alone, as Triton
                return None
        return _Layout(**{name: _getter(indices) for name, indices in kinds.items()})
