"""``jaxdistill bench``: the benchmark suite (same as ``python -m benchmarks``)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="run the benchmark suite against peers (scipy, scikit-learn, naive JAX)")
    p.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    p.add_argument("--only", nargs="*", default=None, help="run only these rows")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per row")
    p.set_defaults(func=main)


def main(args) -> int:
    from benchmarks.__main__ import main as bench_main

    argv = (["--quick"] if args.quick else []) + (["--only", *args.only] if args.only else []) + ["--timeout", str(args.timeout)]
    return bench_main(argv)
