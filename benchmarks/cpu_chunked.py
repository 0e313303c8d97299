"""The chunked backend against torch SDPA on this CPU: speed ratio and peak extra memory.

    python benchmarks/cpu_chunked.py            # prints a markdown table

Peak extra memory is measured in a fresh subprocess per (provider, row): the rise of the
process's peak resident set (Linux VmHWM, reset just before the call) over what it held then,
the inputs included; the output counts.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import shapes  # noqa: E402
from providers import PROVIDERS, make_inputs, median_seconds  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _peak_mb(provider: str, row: int, dtype: str) -> float:
    here = os.path.dirname(os.path.abspath(__file__))
    # The high-water mark is reset to the current resident set just before the call (Linux's
    # clear_refs 5): the peak of the imports would otherwise hide any smaller rise.
    code = (
        f"import sys, torch; sys.path.insert(0, {here!r}); import shapes;"
        "from providers import PROVIDERS, make_inputs;"
        f"s = shapes.CPU[{row}]; q, k, v, m = make_inputs(s, getattr(torch, {dtype!r}), 'cpu');"
        f"fn = PROVIDERS[{provider!r}](s, q, k, v, m);"
        "hwm = lambda: next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'));"
        "open('/proc/self/clear_refs', 'w').write('5'); before = hwm();"
        "torch.no_grad().__enter__(); fn(); print((hwm() - before) / 1024)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def main() -> None:
    print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}\n")
    print("| shape | dtype | SDPA ms | chunked ms | chunked / SDPA speed | SDPA peak MB | chunked peak MB |")
    print("|---|---|---|---|---|---|---|")
    for row, shape in enumerate(shapes.CPU):
        for name, dtype in DTYPES.items():
            q, k, v, mask = make_inputs(shape, dtype, "cpu")
            with torch.no_grad():
                sdpa = median_seconds(PROVIDERS["sdpa"](shape, q, k, v, mask), "cpu", repeats=5)
                chunked = median_seconds(PROVIDERS["tqfa-chunked"](shape, q, k, v, mask), "cpu", repeats=5)
            peaks = [_peak_mb(p, row, name) for p in ("sdpa", "tqfa-chunked")]
            print(f"| {shape.id} | {name} | {sdpa * 1e3:.1f} | {chunked * 1e3:.1f} | {sdpa / chunked:.2f}x "
                  f"| {peaks[0]:.0f} | {peaks[1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
