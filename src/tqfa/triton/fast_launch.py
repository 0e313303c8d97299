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
- a float, a bool or None: its type; a tensor descriptor: dtype and block shape (and a Gluon
  one's shared-memory layout);
- constexprs and launch options (num_warps, ...): their values; Triton's debug and
  instrumentation knobs too.
Launch hooks (profilers) still run: `CompiledKernel[grid]` passes them on as Triton's launch
does. Other backends specialise on more (AMD: tensor sizes, for buffer loads) and the interpreter
has no compiled variants: those keep `kernel[grid]`.

Host tensor descriptors come in as `HostDescriptor`s. Triton's `TensorDescriptor` checks its
arguments on construction, and Triton's launcher turns each one into a CUDA tensor map on every
launch, in a Python loop over all arguments: with the forward kernel's six descriptors that was
18-89 us per call on the H200's host. A variant with descriptors keeps the tensor maps it made,
under (data pointer, shape, strides) of each descriptor: a map encodes only those, the block
shape and the dtype (fixed per variant), so equal keys give equal maps. Under triton 3.6 it also
hands the expanded arguments to Triton's C launcher itself (`_DescriptorLaunch`); other versions
get `TensorDescriptor`s and Triton's per-launch maps.

A `PreparedLaunch` goes one step further for a caller that keys its calls itself (launch.py keys
them by everything the arguments depend on besides the tensors): it keeps one call's variant
and argument values, and later calls only put their tensors in, with no binding and no key.
`PreparedLaunches` holds them by the caller's key.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from typing import NamedTuple

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
from triton.runtime.driver import driver

# Versions whose launch path and specialisation rules this module was written against.
CHECKED_TRITON = (Version("3.6"), Version("3.10"))
# Launch options: keyword arguments of a launch that are not kernel parameters.
OPTION_NAMES = ("num_warps", "num_stages", "num_ctas", "maxnreg", "waves_per_eu",
                "matrix_instr_nonkdim")
# Versions whose launcher (triton/backends/nvidia/driver.py: wrap_handle_tensordesc and
# make_tensordesc_arg, CudaLauncher.__call__) _DescriptorLaunch was written against.
CHECKED_DESCRIPTOR_LAUNCH = (Version("3.6"), Version("3.7"))
MAX_VARIANTS = 512  # a bound on the cache; real workloads use a handful of variants per kernel
MAX_TENSOR_MAPS = 64  # per variant; a miss costs a few microseconds

_MOD16 = (16).__rmod__  # x -> x % 16, mapped in C over a tuple of ints
_IS_ONE = (1).__eq__
_INT32_MIN, _INT32_END = -(2**31), 2**31


def _triton_in(versions: tuple[Version, Version]) -> bool:
    low, high = versions
    return knobs is not None and low <= Version(Version(triton.__version__).base_version) < high


class HostDescriptor(NamedTuple):
    """A host-side tensor descriptor: the fields of triton.tools.tensor_descriptor's
    TensorDescriptor, without its checks (the caller makes them, tma_layout.tma_strides). With a
    shared-memory layout, one of Gluon's (gluon.nvidia.hopper.TensorDescriptor), for a Gluon
    kernel: Triton specialises those on the layout too."""

    base: torch.Tensor
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    block_shape: tuple[int, ...]
    padding: str = "zero"
    layout: object = None  # a Gluon NVMMASharedLayout (frozen, hashable)

    def triton(self):
        if self.layout is not None:
            from triton.experimental.gluon.nvidia.hopper import TensorDescriptor as GluonDescriptor

            return GluonDescriptor(self.base, list(self.shape), list(self.strides),
                                   list(self.block_shape), self.layout, self.padding)
        return TensorDescriptor(self.base, list(self.shape), list(self.strides),
                                list(self.block_shape), self.padding)


def triton_kwargs(kwargs: dict) -> dict:
    """kwargs with each HostDescriptor made a TensorDescriptor, for `kernel[grid](**kwargs)`."""
    return {name: value.triton() if type(value) is HostDescriptor else value
            for name, value in kwargs.items()}


def launch_environment() -> tuple:
    """What a variant's key holds besides the arguments: the current CUDA device and Triton's
    debug and instrumentation knobs."""
    return torch.cuda.current_device(), knobs.runtime.debug, knobs.compilation.instrumentation_mode


def tensor_traits(tensors: dict[str, torch.Tensor]) -> tuple:
    """What Launcher's key holds of each tensor argument: its dtype and whether its data pointer
    is a multiple of 16 (for the keys of PreparedLaunches' callers)."""
    return tuple([(t.dtype, t.data_ptr() % 16 == 0) for t in tensors.values()])


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
    descriptor_positions: tuple[int, ...]  # of the descriptors among all parameters


class Launcher:
    """`launcher(grid, kwargs)` launches `kernel` as `kernel[grid](**kwargs)` would: every kernel
    parameter by name, and launch options among OPTION_NAMES."""

    def __init__(self, kernel):
        self.kernel = kernel
        params = tuple(getattr(kernel, "params", ()))  # a JITFunction's; none when interpreted
        self.enabled = bool(params) and torch.version.hip is None and _triton_in(CHECKED_TRITON)
        self.names = tuple(p.name for p in params)
        self._values = operator.itemgetter(*self.names) if params else None  # kwargs -> tuple
        self._constexprs = _getter([i for i, p in enumerate(params) if p.is_constexpr])
        self._runtime_params = [(i, p) for i, p in enumerate(params) if not p.is_constexpr]
        self._runtime = _getter([i for i, _ in self._runtime_params])
        self._layouts: dict[tuple, _Layout | None] = {}
        self._variants: dict[tuple, _Variant] = {}

    def __call__(self, grid: tuple[int, ...], kwargs: dict) -> None:
        key = None
        if self.enabled:
            values = self._values(kwargs)
            key, layout = self._key(values, kwargs)
            variant = self._variants.get(key) if key is not None else None
            if variant is not None:
                variant.launch((*grid, 1, 1)[:3], values)  # CompiledKernel reads three grid sizes
                return
        compiled = self.kernel[grid](**triton_kwargs(kwargs))
        if key is not None and isinstance(compiled, CompiledKernel):  # not a pending compile
            if len(self._variants) >= MAX_VARIANTS:
                self._variants.clear()
            self._variants[key] = _Variant.of(compiled, layout.descriptor_positions)

    def key(self, kwargs: dict) -> tuple | None:
        """What Triton specialises `kernel` on for these arguments (see the module docstring),
        or finer; None when an argument is of a kind this module does not mirror."""
        return self._key(self._values(kwargs), kwargs)[0]

    def _key(self, values: tuple, kwargs: dict) -> tuple[tuple | None, _Layout | None]:
        options = tuple([(name, kwargs[name]) for name in OPTION_NAMES if name in kwargs])
        if len(kwargs) != len(values) + len(options):  # an option this module does not know
            return None, None
        runtime = self._runtime(values)
        types = tuple(map(type, runtime))
        layout = self._layouts.get(types, False)
        if layout is False:
            layout = self._layouts[types] = self._layout(types)
        if layout is None:
            return None, None
        ints = layout.ints(runtime)
        if ints and (min(ints) < _INT32_MIN or max(ints) >= _INT32_END):  # int64: Triton's path
            return None, None
        specialised = layout.specialised_ints(runtime)
        return (launch_environment(), options, types, self._constexprs(values),
                tuple(map(_MOD16, specialised)), tuple(map(_IS_ONE, specialised)),
                tuple([(t.dtype, t.data_ptr() % 16 == 0) for t in layout.tensors(runtime)]),
                tuple([(d.base.dtype, tuple(d.block_shape), d.padding, d.layout)
                       for d in layout.descriptors(runtime)])), layout

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
            elif kind is HostDescriptor:
                kinds["descriptors"].append(j)
            elif kind not in (float, bool, type(None)):  # these by type alone, as Triton
                return None  # a TensorDescriptor too: HostDescriptor is the fast one
        positions = tuple(self._runtime_params[j][0] for j in kinds["descriptors"])
        return _Layout(**{name: _getter(indices) for name, indices in kinds.items()},
                       descriptor_positions=positions)


class PreparedLaunch:
    """One call's launch of a known variant, whose tensors later calls replace: no argument
    binding, no key. Only for callers whose own key covers everything else the arguments depend
    on, and what Launcher's key holds of the tensors (dtype, 16-byte alignment); the launch
    environment is checked here. Holds no tensor of the call it was prepared from.

    Tensor parameters are passed as their data pointers: Triton's C launcher takes an int as the
    address as it is, where for a tensor it calls data_ptr() and asks the driver whether that is
    a device address (cuPointerGetAttribute), for every tensor of every launch. The callers pass
    CUDA tensors only (the triton backend refuses others), and Triton's launch hooks see the
    arguments only through a kernel's own launch_metadata function, which tqfa's kernels lack."""

    def __init__(self, launch, grid: tuple[int, int, int], values: list, pointers: dict[int, str],
                 described: dict[int, str]):
        self.launch, self.grid, self.values = launch, grid, values
        self.pointers, self.described = pointers, described
        self.environment = launch_environment()

    @classmethod
    def of(cls, launcher: Launcher, grid: tuple[int, ...], kwargs: dict,
           described: dict[str, str]) -> PreparedLaunch | None:
        """The launch of kwargs' variant, once `launcher` has launched it (else None); its tensor
        parameters take the tensors of their names, and each descriptor parameter `name` one
        describing the tensor named described[name]."""
        if not launcher.enabled:
            return None
        values = launcher._values(kwargs)
        key, _ = launcher._key(values, kwargs)
        variant = launcher._variants.get(key) if key is not None else None
        if variant is None:
            return None
        values, pointers, descriptors = list(values), {}, {}
        for i, name in enumerate(launcher.names):
            if isinstance(values[i], torch.Tensor):
                pointers[i], values[i] = name, None
            elif type(values[i]) is HostDescriptor:  # keeps its layout, not its tensor
                descriptors[i], values[i] = described[name], values[i]._replace(base=None)
        return cls(variant.launch, (*grid, 1, 1)[:3], values, pointers, descriptors)

    def __call__(self, tensors: dict[str, torch.Tensor]) -> bool:
        """Launch with `tensors` (by name) in place of the prepared call's; False, launching
        nothing, when the launch environment has changed."""
        if launch_environment() != self.environment:
            return False
        values = self.values.copy()
        for i, name in self.pointers.items():
            values[i] = tensors[name].data_ptr()
        for i, name in self.described.items():
            values[i] = HostDescriptor(tensors[name], *values[i][1:])
        self.launch(self.grid, values)
        return True


_UNSEEN = object()  # PreparedLaunches: a key not offered yet


class PreparedLaunches:
    """A launcher's prepared launches by the caller's key (see PreparedLaunch for what the key
    must cover). A key whose launch cannot be prepared (PreparedLaunch.of gives None) is not
    offered again; one prepared under another launch environment is prepared anew."""

    def __init__(self, launcher: Launcher, described: dict[str, str] | None = None,
                 limit: int = 256):
        self.launcher, self.described, self.limit = launcher, described or {}, limit
        self.by_key: dict[tuple, PreparedLaunch | None] = {}

    def launch_prepared(self, key: tuple, tensors: dict[str, torch.Tensor]) -> bool:
        """Launch with `tensors` through the launch prepared under `key` if there is one for this
        launch environment: whether it did (if not, nothing was launched)."""
        prepared = self.by_key.get(key)
        return prepared is not None and prepared(tensors)

    def __call__(self, key: tuple, tensors: dict[str, torch.Tensor], arguments) -> None:
        """Launch with `tensors`, through the launch prepared under `key` when there is one, else
        through the launcher with `arguments()` (grid, keyword arguments). A launcher without its
        fast path (interpreter, AMD, an unchecked triton) launches through Triton every time."""
        if not self.launcher.enabled:
            self.launcher(*arguments())
            return
        prepared = self.by_key.get(key, _UNSEEN)
        if prepared is not None and prepared is not _UNSEEN and prepared(tensors):
            return
        grid, kwargs = arguments()
        self.launcher(grid, kwargs)
        if prepared is not None:  # unseen, or prepared under another launch environment
            if len(self.by_key) >= self.limit:
                self.by_key.clear()
            self.by_key[key] = PreparedLaunch.of(self.launcher, grid, kwargs, self.described)


@dataclass
class _Variant:
    """One compiled variant and how to launch it with a tuple of parameter values."""

    compiled: CompiledKernel
    launch: object  # (grid of three, values) -> None

    @classmethod
    def of(cls, compiled: CompiledKernel, descriptor_positions: tuple[int, ...]) -> _Variant:
        if not descriptor_positions:
            return cls(compiled, lambda grid, values: compiled[grid](*values))
        fast = _DescriptorLaunch.of(compiled, descriptor_positions)
        if fast is not None:
            return cls(compiled, fast)

        def with_tensor_descriptors(grid, values):
            values = list(values)
            for i in descriptor_positions:
                values[i] = values[i].triton()
            compiled[grid](*values)
        return cls(compiled, with_tensor_descriptors)


class _DescriptorLaunch:
    """Triton 3.6's launch of a variant with host descriptors (CompiledKernel.__getitem__, then
    CudaLauncher.__call__), with each descriptor's expansion into [tensor map, *shape, *strides]
    (make_tensordesc_arg) kept under its (data pointer, shape, strides) rather than redone in
    Python for every argument of every launch."""

    def __init__(self, compiled, run, metas, positions, expand):
        self.compiled, self.run, self.metas, self.positions = compiled, run, metas, positions
        self.expand = expand  # Triton's make_tensordesc_arg
        self.expansions: dict[tuple, list] = {}

    @classmethod
    def of(cls, compiled: CompiledKernel, positions: tuple[int, ...]) -> _DescriptorLaunch | None:
        """None unless this is triton 3.6's launcher with one tensor-map layout per descriptor."""
        if not _triton_in(CHECKED_DESCRIPTOR_LAUNCH):
            return None
        from triton.backends.nvidia.driver import make_tensordesc_arg

        run = compiled.run  # loads the binary, builds the launcher
        wrapped = getattr(run, "launch", None)  # wrap_handle_tensordesc's `inner`
        cells = dict(zip(getattr(getattr(wrapped, "__code__", None), "co_freevars", ()),
                         getattr(wrapped, "__closure__", None) or ()))
        if "launcher" not in cells or "tensordesc_meta" not in cells:
            return None
        metas = cells["tensordesc_meta"].cell_contents
        if not metas or len(metas) != len(positions) or any(m is None for m in metas):
            return None
        direct = copy.copy(run)  # CudaLauncher.__call__ with the C launcher itself
        direct.launch = cells["launcher"].cell_contents
        return cls(compiled, direct, tuple(metas), positions, make_tensordesc_arg)

    def __call__(self, grid: tuple[int, int, int], values: tuple) -> None:
        described = [values[i] for i in self.positions]
        key = tuple([(d.base.data_ptr(), d.shape, d.strides) for d in described])
        expansion = self.expansions.get(key)
        if expansion is None:
            if len(self.expansions) >= MAX_TENSOR_MAPS:
                self.expansions.clear()
            expansion = self.expansions[key] = [
                self.expand(d, meta) for d, meta in zip(described, self.metas)]
        args, start = [], 0
        for i, expanded in zip(self.positions, expansion):
            args += values[start:i]
            args += expanded
            start = i + 1
        args += values[start:]
        compiled = self.compiled  # its handles were loaded by `of` (compiled.run)
        stream = driver.active.get_current_stream(driver.active.get_current_device())
        self.run(*grid, stream, compiled.function, compiled.packed_metadata,
                 compiled.launch_metadata(grid, stream, *values), knobs.runtime.launch_enter_hook,
                 knobs.runtime.launch_exit_hook, *args)
