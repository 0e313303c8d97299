"""Compile the triton kernel ahead of time for an NVIDIA GPU we may not have, and report its
resources per launch variant (layouts, masks) and its MMA instructions.

`python -m tqfa compile-check` checks the tuning data of every target; this script looks closer
at one NVIDIA arch: for the configuration select_config picks (and, with --candidates, the rest
of that family's space) it prints shared memory (and the estimate the fit uses), registers,
local memory (spills), STL/LDL spill instructions and the wgmma (HGMMA) / mma (HMMA) count in
the SASS. Compilation and specialisation are the library's (tqfa.triton.compile_check).

    python benchmarks/gpu_aot.py                     # sm90 defaults
    python benchmarks/gpu_aot.py --arch 80 --d 64 128 256 --dtype fp16 fp32 --candidates
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

from tqfa.problem import build_problem
from tqfa.triton import compile_check, launch
from tqfa.triton.tuning import candidates, head_block, select_config, smem_estimate, target_for_arch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


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


def compile_report(problem, config, arch: str) -> dict:
    out = torch.empty_like(problem.q)
    lse = torch.empty(problem.batch, problem.q_heads, problem.q_len, device="meta")
    _, kwargs = launch.kernel_arguments(problem, out, lse, config, allow_tf32=False)
    compiled = compile_check.compile_kernel(launch.attention_fwd_kernel, kwargs, arch, config)
    regs, local = compile_check.resources(compiled, arch)
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        sass = subprocess.run([CUOBJDUMP, "-sass", f.name], capture_output=True, text=True).stdout
    return dict(shared=compiled.metadata.shared, regs=regs, local=local, hgmma=sass.count("HGMMA"),
                hmma=sass.count("HMMA"), spill_ops=len(re.findall(r"\b(?:STL|LDL)\b", sass)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", type=int, default=90)
    parser.add_argument("--d", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--dtype", nargs="+", default=["bf16"], choices=sorted(DTYPES))
    parser.add_argument("--candidates", action="store_true", help="also compile the family's space")
    args = parser.parse_args()
    arch = f"sm{args.arch}"
    target = target_for_arch(arch)
    print(f"triton {triton.__version__}, target {arch} ({target.shared_memory} B shared memory)")
    print(f"{'dtype':5} {'D':>4} {'causal':6} {'mask':7} {'layout':6} {'config':18} "
          f"{'smem':>7} {'est':>7} {'regs':>4} {'local':>5} {'spill':>5} {'hgmma':>5} {'hmma':>4}")
    for dtype_name in args.dtype:
        for d in args.d:
            for causal, mask, layout in [(None, None, "bhsd"), ("top_left", None, "bhsd"),
                                         ("bottom_right", "keypad", "bshd"), (None, "bool", "bhsd")]:
                problem = problem_on_meta(2, 32, 8, 4096, d, DTYPES[dtype_name], causal, mask, layout)
                configs = [select_config(problem, target)]
                if args.candidates and causal is None and mask is None:
                    configs += [c for c in candidates(problem, target) if c != configs[0]]
                for config in configs:
                    r = compile_report(problem, config, arch)
                    mask_bytes = 0 if problem.mask is None else problem.mask.element_size()
                    estimate = smem_estimate(config, head_block(d), problem.q.element_size(), mask_bytes,
                                             q_in_smem=args.arch >= 90)
                    over = " OVER THE LIMIT" if r["shared"] > target.shared_memory else ""
                    print(f"{dtype_name:5} {d:>4} {str(causal is not None):6} {str(mask):7} {layout:6} "
                          f"{config!s:18} {r['shared']:>7} {estimate:>7} {r['regs']:>4} {r['local']:>5} "
                          f"{r['spill_ops']:>5} {r['hgmma']:>5} {r['hmma']:>4}{over}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
