"""The ``jaxdistill`` command.

Subcommands live in sibling modules, each with ``add_parser(subparsers)``
and ``main(args) -> int``: run (simulate and train students), sweep (a grid of runs), bound (the
paper's bounds), reproduce (the paper's figures), bench (benchmarks).
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("run", "sweep", "bound", "reproduce", "bench", "make-pool")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxdistill",
        description="Exact, batched experiments on linear knowledge distillation (Phuong & Lampert, ICML 2019).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name.replace('-', '_')}":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..validation import JaxDistillError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except JaxDistillError as e:
        print(f"jaxdistill {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\njaxdistill {args.command}: interrupted; finished chunks are saved, rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
