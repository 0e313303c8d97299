"""Command line: `python -m tqfa info | check`."""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tqfa", description=__doc__)
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present, else cpu)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, the probed device and target, which backend would run")
    sub.add_parser("check", help="run every available backend against SDPA in float64 and time it")
    args = parser.parse_args(argv)

    from . import diagnostics

    device = torch.device(args.device) if args.device else diagnostics.default_device()
    if args.command == "info":
        print(diagnostics.info(device))
        return 0
    table, ok = diagnostics.check(device)
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
