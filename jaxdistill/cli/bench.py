"""``jaxdistill bench``: the benchmark suite (same as ``python -m benchmarks``).

The suite lives in the repository's ``benchmarks/`` folder and is not
installed with the package: this command runs it from the checkout the
package was installed from (``pip install -e .``), and otherwise says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import finite_float


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="run the benchmark suite against peers (scipy, scikit-learn, naive JAX)")
    p.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    p.add_argument("--only", nargs="*", default=None, help="run only these rows")
    p.add_argument("--timeout", type=finite_float("--timeout", gt=0.0), default=1800.0,
                   help="seconds per row (default 1800)")
    p.add_argument("--out", default=None, help="results folder (default ./benchmark-results)")
    p.set_defaults(func=main)


def checkout_root() -> Path | None:
    """The repository checkout this package runs from, if it has ``benchmarks/``."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "benchmarks" / "__main__.py").is_file() else None


def main(args) -> int:
    from ..validation import JaxDistillError

    root = checkout_root()
    if root is None:
        raise JaxDistillError("the benchmark suite is not installed with the package: run `python -m benchmarks` "
                              "from a checkout of the repository (or install it with pip install -e .)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.__main__ import main as bench_main

    argv = (["--quick"] if args.quick else []) + (["--only", *args.only] if args.only else []) + [
        "--timeout", str(args.timeout)] + (["--out", args.out] if args.out else [])
    return bench_main(argv)
