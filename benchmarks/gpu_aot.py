"""Compile the triton kernel ahead of time for a GPU we may not have, and report its resources.

Runs on a CPU-only machine: the launch arguments come from the real launcher applied to meta
tensors, specialised the way triton.jit would (pointers 16-byte aligned, ints equal to 1 become
constants, multiples of 16 get a divisibility hint, except the do_not_specialize lengths). For
each configuration it prints shared memory, registers, local memory (spills) and the number of
wgmma (HGMMA) / mma (HMMA) instructions in the SASS.

    python benchmarks/gpu_aot.py                     # sm90 defaults and candidates
    python benchmarks/gpu_aot.py --arch 80 --d 64 128 256 --dtype fp16 fp32
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

import torch
import triton
from triton.backends.compiler import GPUTarget

from tqfa.device import target_from_properties
from tqfa.problem import build_problem
from tqfa.triton import launch
from tqfa.triton.kernel import attention_fwd_kernel
from tqfa.triton.tuning import KernelConfig, head_block, select_config, smem_estimate

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
TRITON_TYPES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32",
                torch.float64: "fp64", torch.bool: "i1", torch.int32: "i32"}
BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
# Shared memory per block (opt-in) of the targets we tune for.
SMEM = {80: 166912, 86: 101376, 89: 101376, 90: 232448}


def specialise(kwargs: dict):
    """(signature, constexprs, attrs) as triton.jit would build them for these arguments."""
    fn = attention_fwd_kernel
    dont = set(fn.do_not_specialize)
    signature, constexprs, attrs = {}, {}, {}
    for i, param in enumerate(fn.params):
        name, value = param.name, kwargs[param.name]
        if param.is_constexpr or value is None:
            signature[name], constexprs[name] = "constexpr", value
        elif isinstance(value, launch.TensorDescriptor):
            block = ",".join(map(str, value.block_shape))
            signature[name] = f"tensordesc<{TRITON_TYPES[value.base.dtype]}[{block}]>"
        elif isinstance(value, torch.Tensor):
            signature[name] = "*" + TRITON_TYPES[value.dtype]
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


def problem_on_meta(b, hq, hkv, s, d, dtype, causal, mask, layout):
    def make(h, n):
        if layout == "bshd":
            return torch.empty(b, n, h, d, dtype=dtype, device="meta").transpose(1, 2)
        return torch.empty(b, h, n, d, dtype=dtype, device="meta")

    q, k, v = make(hq, s), make(hkv, s), make(hkv, s)
    attn_mask = None
    if mask == "keypad":
        attn_mask = torch.empty(b, 1, 1, s, dtype=dtype, device="meta")
    elif mask == "bool":
        attn_mask = torch.empty(b, hq, s, s, dtype=torch.bool, device="meta")
    return build_problem(q, k, v, attn_mask, causal is not None, causal_alignment=causal or "top_left")


def compile_report(problem, config: KernelConfig, arch: int) -> dict:
    out = torch.empty_like(problem.q)
    lse = torch.empty(problem.batch, problem.q_heads, problem.q_len, device="meta")
    _, kwargs = launch.kernel_arguments(problem, out, lse, config, allow_tf32=False)
    num_warps, num_stages = kwargs.pop("num_warps"), kwargs.pop("num_stages")
    signature, constexprs, attrs = specialise(kwargs)
    src = triton.compiler.ASTSource(fn=attention_fwd_kernel, signature=signature,
                                    constexprs=constexprs, attrs=attrs)
    target = GPUTarget("cuda", arch, 32)
    backend = triton.compiler.make_backend(target)
    options = backend.parse_options({"num_warps": num_warps, "num_stages": num_stages})
    compiled = triton.compile(src, target=target, options=options.__dict__)
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        res = subprocess.run([os.path.join(BIN, "cuobjdump"), "-res-usage", f.name],
                             capture_output=True, text=True).stdout
        sass = subprocess.run([os.path.join(BIN, "cuobjdump"), "-sass", f.name],
                              capture_output=True, text=True).stdout

    def field(key):
        m = re.search(rf"{key}:(\d+)", res)
        return int(m.group(1)) if m else -1

    return dict(shared=compiled.metadata.shared, regs=field("REG"), stack=field("STACK"),
                local=field("LOCAL"), hgmma=sass.count("HGMMA"), hmma=sass.count("HMMA"),
                spill_ops=len(re.findall(r"\b(?:STL|LDL)\b", sass)))


CANDIDATES = [
    KernelConfig(128, 64, 8, 2), KernelConfig(128, 64, 8, 3), KernelConfig(128, 128, 8, 2),
    KernelConfig(128, 128, 8, 3), KernelConfig(128, 64, 4, 3), KernelConfig(64, 64, 4, 3),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", type=int, default=90)
    parser.add_argument("--d", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--dtype", nargs="+", default=["bf16"], choices=sorted(DTYPES))
    parser.add_argument("--candidates", action="store_true", help="also compile CANDIDATES")
    args = parser.parse_args()
    target = target_from_properties(name=f"sm{args.arch}", is_hip=False,
                                    capability=divmod(args.arch, 10), shared_memory=SMEM[args.arch])
    print(f"triton {triton.__version__}, target sm{args.arch}")
    print(f"{'dtype':5} {'D':>4} {'causal':6} {'mask':7} {'layout':6} {'config':18} "
          f"{'smem':>7} {'est':>7} {'regs':>4} {'local':>5} {'spill':>5} {'hgmma':>5} {'hmma':>4}")
    for dtype_name in args.dtype:
        for d in args.d:
            for causal, mask, layout in [(None, None, "bhsd"), ("top_left", None, "bhsd"),
                                         ("bottom_right", "keypad", "bshd"), (None, "bool", "bhsd")]:
                problem = problem_on_meta(2, 32, 8, 4096, d, DTYPES[dtype_name], causal, mask, layout)
                configs = [select_config(problem, target)]
                if args.candidates and causal is None and mask is None:
                    configs += [c for c in CANDIDATES if c != configs[0]]
                for config in configs:
                    r = compile_report(problem, config, args.arch)
                    name = f"{config.block_m}x{config.block_n} w{config.num_warps} s{config.num_stages}"
                    mask_bytes = 0 if problem.mask is None else problem.mask.element_size()
                    estimate = smem_estimate(config, head_block(d), problem.q.element_size(), mask_bytes)
                    over = " OVER THE LIMIT" if r["shared"] > SMEM[args.arch] else ""
                    print(f"{dtype_name:5} {d:>4} {str(causal is not None):6} {str(mask):7} {layout:6} "
                          f"{name:18} {r['shared']:>7} {estimate:>7} {r['regs']:>4} {r['local']:>5} "
                          f"{r['spill_ops']:>5} {r['hgmma']:>5} {r['hmma']:>4}{over}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
