"""Command line: `python -m tqfa info | check | compile-check`."""

from __future__ import annotations

import argparse
import sys

import torch


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 6 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"B,Hq,Hkv,Sq,Skv,D: six positive integers, got {text!r}")
    return shape


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tqfa", description=__doc__)
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present, else cpu)")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, the probed device and target, which backend would run")
    info.add_argument("--shape", type=_shape, help="B,Hq,Hkv,Sq,Skv,D: show the triton configuration it gets")
    info.add_argument("--dtype", default="bf16", choices=("fp16", "bf16", "fp32"))
    info.add_argument("--causal", action="store_true")
    info.add_argument("--mask", action="store_true", help="with an additive [B, 1, Sq, Skv] mask")
    info.add_argument("--arch", help="describe this arch (sm89, gfx942, ...) instead of the device's")
    sub.add_parser("check", help="run every available backend against SDPA in float64 and time it")
    from .triton import compile_check  # imports no triton: its workers do

    compile_check.add_arguments(sub.add_parser(
        "compile-check", help="compile the tuning data ahead of time for every target (no GPU needed)"))
    args = parser.parse_args(argv)

    if args.command == "compile-check":
        return compile_check.command(args)

    from . import diagnostics

    device = torch.device(args.device) if args.device else diagnostics.default_device()
    if args.command == "info":
        print(diagnostics.info(device))
        print(diagnostics.tuning_info(device, args.arch, args.shape, args.dtype, args.causal, args.mask))
        return 0
    table, ok = diagnostics.check(device)
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
