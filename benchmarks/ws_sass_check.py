"""Whether every wgmma of the sm90 ws kernel (gluon_sm90.py) reads descriptors that are set on
every path to it, in the SASS that this machine's triton and its bundled ptxas make (no GPU).

    PYTHONPATH=src python benchmarks/ws_sass_check.py
    PYTHONPATH=/path/to/triton-3.6:src python benchmarks/ws_sass_check.py   # another triton

Why: with two Q buffers, triton 3.6's ptxas (12.8) set the masked tile loop's Q descriptors of
k-steps 1-7 only in the preheader of the unmasked loop, so an item that skips that loop read stale
or undefined descriptors: wrong outputs and illegal addresses on the H200
(benchmarks/results/h200-2026-12-01d.md). The check is a must-be-set dataflow over the SASS's
basic blocks: a uniform register counts as set at an instruction when every path from the
kernel's entry writes it first. Reading SASS by pattern is a heuristic: it knows the
instructions this kernel uses (a destination is the first operand; `.64` writes two registers).
The kernel keeps one copy of its item loop per Q buffer since (static buffer indices): this
check finds every case clean under triton 3.6 and 3.9 (h200-2026-12-01e.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import torch
import triton

from tqfa.triton import compile_check
from tqfa.triton.tuning import KernelConfig

K = KernelConfig
PP_PERS = K(128, 128, 4, 2, tma=True, ws=True, pingpong=True, persistent=True, snake=True)
# (label, head dim, causal, configuration, Q buffers): the launcher's choices (gluon_launch).
CASES = [
    ("d128 ws pp pers snake, causal (the default)", 128, True, PP_PERS, 2),
    ("d128 ws pp pers snake, not causal (the default)", 128, False, PP_PERS, 2),
    ("d128 ws pers, causal (the short causal default)", 128, True,
     K(128, 128, 4, 2, tma=True, ws=True, persistent=True), 2),
    ("d128 ws pp, causal (one item per program)", 128, True,
     K(128, 128, 4, 2, tma=True, ws=True, pingpong=True), 1),
    ("d64 ws pers 256 keys, not causal (the default)", 64, False,
     K(128, 256, 4, 2, tma=True, ws=True, persistent=True), 2),
    ("d64 ws pers 256 keys, causal", 64, True, K(128, 256, 4, 2, tma=True, ws=True, persistent=True), 2),
    ("d64 ws pers 128 keys, causal (the short causal default)", 64, True,
     K(128, 128, 4, 2, tma=True, ws=True, persistent=True), 2),
]
_BRANCH = re.compile(r"\bBRA (?:`\(\.L_x_\d+\) )?0x([0-9a-f]+)")
_NO_DESTINATION = ("HGMMA", "BRA", "SYNCS", "UTMA", "BAR", "WARPGROUP", "ST", "EXIT", "RET", "CALL",
                   "NOP", "USETMAXREG", "UISETP", "ISETP", "WARPSYNC", "FENCE", "MEMBAR", "RED",
                   "ATOM")


def sass(config: KernelConfig, head_dim: int, causal: bool, q_buffers: int) -> str:
    problem = compile_check.meta_problem(head_dim, "bf16", "plain" if causal else "dense")
    fn, kwargs = compile_check._prefill_launch(config, problem)
    kwargs["Q_BUFFERS"] = q_buffers
    compiled = compile_check.compile_kernel(fn, kwargs, "sm90", config)
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    path = f"/tmp/ws_sass_check_{os.getpid()}.cubin"
    with open(path, "wb") as f:
        f.write(compiled.asm["cubin"])
    try:
        return subprocess.run([cuobjdump, "-sass", path], capture_output=True, text=True,
                              check=True).stdout
    finally:
        os.remove(path)


def _instructions(text: str) -> list[tuple[int, str]]:
    return [(int(m.group(1), 16), m.group(2).strip())
            for m in re.finditer(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", text)]


def _destinations(text: str) -> set[int]:
    op, _, rest = re.sub(r"^@!?U?P\w+\s+", "", text).partition(" ")
    first = rest.split(",")[0].strip()
    m = re.fullmatch(r"UR(\d+)", first)
    if op.startswith(_NO_DESTINATION) or not m:
        return set()
    return {int(m.group(1)) + i for i in range(2 if ".64" in op else 1)}


def unset_reads(text: str) -> tuple[int, list[str]]:
    """(wgmma count, the wgmmas that read a descriptor register not set on every path)."""
    ins = _instructions(text)
    index = {a: i for i, (a, _) in enumerate(ins)}
    leaders = {0}
    for i, (_, t) in enumerate(ins):
        m = _BRANCH.search(t)
        if m or t.startswith("EXIT"):
            leaders.add(i + 1)
            if m and int(m.group(1), 16) in index:
                leaders.add(index[int(m.group(1), 16)])
    leaders = sorted(x for x in leaders if x < len(ins))
    blocks = list(zip(leaders, leaders[1:] + [len(ins)]))
    block_at = {s: k for k, (s, _) in enumerate(blocks)}
    preds: dict[int, set[int]] = {k: set() for k in range(len(blocks))}
    for k, (_, e) in enumerate(blocks):
        t = ins[e - 1][1]
        m = _BRANCH.search(t)
        if m and int(m.group(1), 16) in index:
            preds[block_at[index[int(m.group(1), 16)]]].add(k)
        if (not m or t.startswith("@")) and not t.startswith("EXIT") and k + 1 < len(blocks):
            preds[k + 1].add(k)
    set_out = {k: set(range(64)) for k in preds}  # the greatest fixpoint: start from "all set"

    def set_in(k):
        return set() if k == 0 or not preds[k] else set.intersection(*(set_out[p] for p in preds[k]))

    changed = True
    while changed:
        changed = False
        for k, (s, e) in enumerate(blocks):
            now = set_in(k).union(*(_destinations(t) for _, t in ins[s:e]))
            if now != set_out[k]:
                set_out[k], changed = now, True
    count, bad = 0, []
    for k, (s, e) in enumerate(blocks):
        now = set_in(k)
        for a, t in ins[s:e]:
            if "HGMMA" in t:
                count += 1
                base = int(re.search(r"gdesc\[UR(\d+)\]", t).group(1))
                # A from registers (PV): only B's descriptor, in the upper pair.
                a_in_registers = re.search(r"HGMMA\S* R\d+, R\d+", t) is not None
                need = {base + 2, base + 3} if a_in_registers else set(range(base, base + 4))
                if need - now:
                    bad.append(f"{a:#06x} {t[:60]} reads UR{sorted(need - now)}")
            now |= _destinations(t)
    return count, bad


def main() -> int:
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    version = subprocess.run([ptxas, "--version"], capture_output=True, text=True).stdout.split()[-1]
    print(f"triton {triton.__version__}, ptxas {version}, torch {torch.__version__}")
    print("| kernel | Q buffers | wgmma | reads of descriptors not set on every path |")
    print("| --- | ---: | ---: | --- |")
    for label, head_dim, causal, config, q_buffers in CASES:
        count, bad = unset_reads(sass(config, head_dim, causal, q_buffers))
        print(f"| {label} | {q_buffers} | {count} | {'; '.join(bad) or 'none'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
