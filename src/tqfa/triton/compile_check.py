"""`python -m tqfa compile-check`: compile the tuning data ahead of time for GPUs we do not have.

Each job compiles the kernel with one configuration for one architecture with Triton's own
compiler (triton.compile(ASTSource(...), target=GPUTarget(...))), on a machine without a GPU,
and reads what the compiler reports: shared memory (LDS), registers (VGPRs + AGPRs on AMD),
spills. A job fails when the compiler fails or the shared memory exceeds the arch's limit.

The arguments come from the real launcher applied to meta tensors (b2, 32:8 heads, 4096 keys,
causal bottom-right), specialised the way triton.jit would: pointers 16-byte aligned, integers
equal to 1 folded to constants, multiples of 16 tagged, except the never-specialised lengths.
Variants: "plain" (causal, no mask), "masked" (also an additive [B, 1, Sq, Skv] mask in the
input dtype, HF's 4-D mask: the heaviest tile set), "split" (a head dim of three quarters of the
bucket, which the kernel computes as two parts: 48, 96, 192), "short" (1024 queries and keys;
only where a table has a "short" or "dense-causal-short" row, since the kernel is the plain
one) and "keymask" (a
key-padding mask [B, 1, 1, Skv] in the input dtype; only where a table has a "keymask" row)
and "dense" (not causal; only where a table has a "dense" row, since "plain" takes its
"dense-causal" row where there is one).
The decode kind compiles its split kernel for the first max_q_len queries of that problem: its
largest packed row block.

Sets:
  --quick (CI)  each family's defaults on its first arch at every head-dim bucket: bf16 in
                every variant, fp32 plain.
  default       every configuration of each family's pruned space, on every arch it lists,
                fp16, bf16 and fp32, in every variant.
Jobs run in worker processes (--jobs, default: one per CPU) that compile for real GPU targets
whatever TRITON_INTERPRET says (tox -e cpu sets it for the tests).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context

from .tuning import FAMILIES, Family, candidates, default_config, target_for_arch

DTYPES = ("fp16", "bf16", "fp32")
VARIANTS = ("plain", "masked", "split", "short", "keymask", "dense")
# The tag rows some variants exist for: without one of them in a table, "plain" compiles the same.
ROWS_OF = {"short": ("short", "dense-causal-short"), "keymask": ("keymask",), "dense": ("dense",)}


@dataclass(frozen=True)
class Job:
    family: str
    arch: str
    kind: str
    dtype: str
    head_dim: int
    variant: str
    config: object  # the kind's configuration type
    default: bool  # the family's default for this key (and variant)


@dataclass(frozen=True)
class Result:
    job: Job
    shared: int = -1
    registers: int = -1  # per thread; on AMD VGPRs + AGPRs
    spills: int = -1  # NVIDIA: bytes of local memory (stack + local); AMD: spilled registers
    seconds: float = 0.0
    error: str = ""


def _in_quick_set(dtype: str, bucket: int, variant: str) -> bool:
    """CI's subset: the 16-bit defaults (bf16) in every variant, the fp32 ones (FMA dots on
    NVIDIA and RDNA, fp32 MFMA on CDNA) plain; every head-dim bucket."""
    return dtype == "bf16" or (dtype == "fp32" and variant == "plain")


def jobs(families: list[Family], quick: bool) -> list[Job]:
    """What select_config picks on each arch (the default, fitted where the data is not
    compile-checked), or every candidate of the pruned space."""
    out = []
    for family in families:
        for arch in list(family.archs)[:1] if quick else family.archs:
            target = replace(target_for_arch(arch), shared_memory=family.archs[arch])
            for kind, tuning in family.kinds.items():
                for bucket, elt in sorted(key for key in tuning.defaults if len(key) == 2):
                    for dtype, variant in itertools.product(DTYPES, VARIANTS):
                        skip = quick and not _in_quick_set(dtype, bucket, variant)
                        if (dtype == "fp32") != (elt == 4) or skip:
                            continue
                        if variant in ROWS_OF and not any(
                                (bucket, elt, row) in tuning.defaults for row in ROWS_OF[variant]):
                            continue
                        head_dim = bucket * 3 // 4 if variant == "split" else bucket
                        problem = meta_problem(head_dim, dtype, variant)
                        default = default_config(problem, target, kind, family)
                        configs = [default] if quick else candidates(problem, target, kind, family)
                        out += [Job(family.name, arch, kind, dtype, head_dim, variant, c, c == default)
                                for c in configs]
    return out


# ----------------------------------------------------------------------------------------------
# Worker side: everything below runs in the worker processes.


def _worker_init() -> None:
    # The check compiles for GPU targets: kernel.py must import as a JITFunction, not interpreted.
    os.environ.pop("TRITON_INTERPRET", None)
    warnings.filterwarnings("ignore", message=".*TRITON_DEFAULT_FP_FUSION.*")


def _triton_type(dtype) -> str:
    import torch

    names = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64",
             torch.bool: "i1", torch.int32: "i32"}
    return names[dtype]


def specialise(fn, kwargs: dict):
    """(signature, constexprs, attrs) of `fn` for these arguments, as triton.jit builds them."""
    import torch

    from .fast_launch import HostDescriptor, TensorDescriptor

    descriptors = (HostDescriptor, TensorDescriptor) if TensorDescriptor else (HostDescriptor,)
    dont = set(fn.do_not_specialize)
    signature, constexprs, attrs = {}, {}, {}
    for i, param in enumerate(fn.params):
        name, value = param.name, kwargs[param.name]
        if param.is_constexpr or value is None:
            signature[name], constexprs[name] = "constexpr", value
        elif isinstance(value, HostDescriptor) and value.layout is not None:  # a Gluon one
            block = ", ".join(map(str, value.block_shape))
            signature[name] = f"tensordesc<{_triton_type(value.base.dtype)}[{block}],{value.layout!r}>"
        elif isinstance(value, descriptors):
            block = ",".join(map(str, value.block_shape))
            signature[name] = f"tensordesc<{_triton_type(value.base.dtype)}[{block}]>"
        elif isinstance(value, torch.Tensor):
            signature[name] = "*" + _triton_type(value.dtype)
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(value, float):
            signature[name] = "fp32"
        elif name not in dont and value == 1:
            signature[name], constexprs[name] = "constexpr", 1
        else:
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
            if name not in dont and value % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
    return signature, constexprs, attrs


def meta_problem(head_dim: int, dtype_name: str, variant: str):
    import torch

    from ..problem import build_problem
    from .tuning.config import SHORT_LENGTH

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    b, hq, hkv, s = 2, 32, 8, SHORT_LENGTH if variant == "short" else 4096
    q = torch.empty(b, hq, s, head_dim, dtype=dtype, device="meta")
    k = v = torch.empty(b, hkv, s, head_dim, dtype=dtype, device="meta")
    rows = {"masked": s, "keymask": 1}.get(variant)
    mask = None if rows is None else torch.empty(b, 1, rows, s, dtype=dtype, device="meta")
    return build_problem(q, k, v, mask, is_causal=variant != "dense", causal_alignment="bottom_right")


def _prefill_launch(config, problem):
    """kernel.py's launch, or gluon_sm90.py's for a ws configuration on a call it serves (as
    launch.attention_forward routes them)."""
    import torch

    from . import launch

    out = torch.empty_like(problem.q)
    lse = torch.empty(problem.q.shape[:3], dtype=torch.float32, device="meta")
    if config.ws:
        from . import gluon_launch

        strides = gluon_launch.ws_strides(problem, out)
        if strides is not None:
            _, kwargs = gluon_launch.ws_arguments(problem, out, lse, config, strides)
            return gluon_launch.attention_fwd_ws_kernel, kwargs
        config = config.without_ws()
    _, kwargs = launch.kernel_arguments(problem, out, lse, config, allow_tf32=False)
    return launch.attention_fwd_kernel, kwargs


def _decode_launch(config, problem):
    """The split kernel at the longest query the decode configuration serves (its largest row
    block), with one split (SPLIT and the merge kernel add no tiles)."""
    import torch

    from ..problem import build_problem
    from . import decode_launch

    q_len = config.max_q_len
    mask = None if problem.mask is None else problem.mask[:, :, :q_len]
    problem = build_problem(problem.q[:, :, :q_len], problem.k, problem.v, mask, is_causal=True,
                            causal_alignment="bottom_right")
    plan = decode_launch.plan_splits(problem, config, multiprocessors=1, num_splits=1)
    lse = torch.empty(problem.q.shape[:3], dtype=torch.float32, device="meta")
    out = torch.empty_like(problem.q)
    return decode_launch.decode_split_kernel, decode_launch.split_arguments(problem, out, lse, plan, config)


# Problem kind -> (configuration, meta problem) -> (jit function, launch keyword arguments).
LAUNCHES = {"prefill": _prefill_launch, "decode": _decode_launch}


def _gpu_target(arch: str):
    from triton.backends.compiler import GPUTarget

    if arch.startswith("sm"):
        return GPUTarget("cuda", int(arch[2:]), 32)
    return GPUTarget("hip", arch, 64 if arch.startswith("gfx9") else 32)


def _nvidia_resources(cubin: bytes) -> tuple[int, int]:
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        usage = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True,
                               check=True).stdout

    def field(name):
        match = re.search(rf"\b{name}:(\d+)", usage)
        return int(match.group(1)) if match else 0

    return field("REG"), field("STACK") + field("LOCAL")


def _amd_resources(amdgcn: str) -> tuple[int, int]:
    def field(name):
        match = re.search(rf"\.{name}:\s+(\d+)", amdgcn)
        return int(match.group(1)) if match else 0

    registers = field("vgpr_count") + field("agpr_count")
    return registers, field("vgpr_spill_count") + field("sgpr_spill_count")


def compile_kernel(fn, kwargs: dict, arch: str, config):
    """Compile the jit function `fn` for `arch` with the launch keyword arguments `kwargs` (the
    compiler options among them are taken out) and `config`'s AMD options on HIP."""
    import triton

    from .fast_launch import OPTION_NAMES

    target = _gpu_target(arch)
    options = {name: kwargs.pop(name) for name in OPTION_NAMES if name in kwargs}
    if target.backend == "hip":
        options.update(config.amd_options())
    signature, constexprs, attrs = specialise(fn, kwargs)
    if type(fn).__module__.startswith("triton.experimental.gluon"):  # gluon_sm90.py's kernel
        from triton.experimental.gluon._runtime import GluonASTSource as Source
    else:
        Source = triton.compiler.ASTSource
    source = Source(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    backend = triton.compiler.make_backend(target)
    return triton.compile(source, target=target, options=backend.parse_options(options).__dict__)


def resources(compiled, arch: str) -> tuple[int, int]:
    """(registers per thread, spills) of a compiled kernel; see Result."""
    if arch.startswith("gfx"):
        return _amd_resources(compiled.asm["amdgcn"])
    return _nvidia_resources(compiled.asm["cubin"])


def compile_job(job: Job) -> Result:
    """Compile one job; compiler output on stderr is captured and summarised on failure."""
    start = time.perf_counter()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as log:
        os.dup2(log.fileno(), 2)  # MLIR and LLVM print failures to the C-level stderr
        try:
            problem = meta_problem(job.head_dim, job.dtype, job.variant)
            fn, kwargs = LAUNCHES[job.kind](job.config, problem)
            compiled = compile_kernel(fn, kwargs, job.arch, job.config)
            registers, spills = resources(compiled, job.arch)
        except Exception as exc:  # a failing configuration is a row of the table, not a crash
            log.seek(0)
            lines = [line for line in log.read().splitlines() if "error" in line.lower()]
            detail = lines[0].strip() if lines else str(exc).splitlines()[0] if str(exc) else ""
            error = f"{type(exc).__name__}: {detail}"[:160]
            return Result(job, seconds=time.perf_counter() - start, error=error)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return Result(job, compiled.metadata.shared, registers, spills, time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------
# Parent side.


def _verdict(result: Result, limit: int) -> str:
    if result.error:
        return "FAIL " + result.error
    if result.shared > limit:
        return f"FAIL shared memory {result.shared} > {limit}"
    return "ok, spills" if result.spills else "ok"


def run(families: list[Family], quick: bool, workers: int, out=sys.stdout) -> bool:
    """Compile and print the table; True when every job compiled within its limits."""
    todo = jobs(families, quick)
    limits = {(f.name, arch): limit for f in families for arch, limit in f.archs.items()}
    start = time.perf_counter()
    print(f"{'family':11} {'arch':8} {'kind':7} {'dtype':5} {'D':>3} {'variant':7} {'config':26} "
          f"{'smem':>6} {'limit':>6} {'regs':>4} {'spill':>5} {'s':>5}  verdict", file=out, flush=True)
    failed, spilling_defaults = 0, []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
        for result in pool.map(compile_job, todo):
            job = result.job
            limit = limits[job.family, job.arch]
            verdict = _verdict(result, limit)
            failed += verdict.startswith("FAIL")
            if job.default and result.spills > 0:
                spilling_defaults.append(
                    f"{job.family}/{job.arch} {job.kind} {job.dtype} d{job.head_dim} {job.variant}")
            config = f"{job.config}{' *' if job.default else ''}"
            print(f"{job.family:11} {job.arch:8} {job.kind:7} {job.dtype:5} {job.head_dim:>3} "
                  f"{job.variant:7} {config:26} {result.shared:>6} {limit:>6} {result.registers:>4} "
                  f"{result.spills:>5} {result.seconds:5.1f}  {verdict}", file=out, flush=True)
    print(f"{len(todo)} compiles ({'quick: defaults only' if quick else 'full spaces'}) in "
          f"{time.perf_counter() - start:.0f} s on {workers} workers; {failed} failed; * = default", file=out)
    if spilling_defaults:
        print(f"defaults that spill ({len(spilling_defaults)}): " + "; ".join(spilling_defaults), file=out)
    return failed == 0


def select_families(name: str | None) -> list[Family]:
    """Every family with compile targets, or the one named (a family, or an arch it lists)."""
    compiled = [f for f in FAMILIES.values() if f.archs]
    if name is None:
        return compiled
    if name in FAMILIES and FAMILIES[name].archs:
        return [FAMILIES[name]]
    for family in compiled:
        if name in family.archs:
            return [replace(family, archs={name: family.archs[name]})]
    names = sorted({f.name for f in compiled} | {a for f in compiled for a in f.archs})
    raise SystemExit(f"compile-check: unknown target {name!r}; targets: {', '.join(names)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tqfa compile-check",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return command(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=None, help="one family (sm90, cdna, ...) or arch (gfx950, ...)")
    parser.add_argument("--quick", action="store_true",
                        help="each family's defaults on its first arch (what CI runs)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--kind", default=None, help="one problem kind only (prefill, decode)")


def command(args: argparse.Namespace) -> int:
    families = select_families(args.target)
    if args.kind is not None:
        families = [replace(f, kinds={args.kind: f.kinds[args.kind]})
                    for f in families if args.kind in f.kinds]
    return 0 if run(families, args.quick, max(1, args.jobs)) else 1

