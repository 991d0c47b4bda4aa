"""``jaxdistill reproduce NAME``: the paper's figures (section 5) and learning curves.

NAME is one of fig1, fig2, fig3, fig4, fig5, curves, temperature (K-class
soft targets at temperature T), softratio (mixed targets, imperfect teacher),
nonlinear (linear, kernel and ReLU-network students of a ReLU-network teacher,
soft vs hard targets: risk and risk-monotonicity index vs n).  Writes NAME.csv (one
row per grid point) and NAME.png into --out (default ``results``), prints a
short table.  Resumable: fig3, temperature and nonlinear are sweeps
(``jd.sweep``), whose points are run folders under OUT/NAME_sweep/; the
other experiments keep every finished grid point as a file under
OUT/NAME_points/ (with a manifest).  Rerunning the same command skips
finished points, and a different configuration on the same --out is refused.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import nonnegative_int


def add_parser(sub) -> None:
    from ..experiments import EXPERIMENTS

    p = sub.add_parser("reproduce", help="reproduce the paper's figures (fig1-fig5) and learning curves",
                       description="Run one experiment of section 5 of the paper with its default (paper) settings; "
                                   "writes NAME.csv and NAME.png into --out.")
    p.add_argument("name", choices=EXPERIMENTS, metavar="NAME", help="one of: " + ", ".join(EXPERIMENTS))
    p.add_argument("--out", default="results", help="output folder (default: results); resumable")
    p.add_argument("--seed", type=nonnegative_int("--seed", maximum=2**63 - 1), default=0,
                   help="PRNG seed (default 0)")
    p.add_argument("--quick", action="store_true",
                   help="for CI: fewer transfer sets, and for temperature, softratio and nonlinear also a smaller "
                        "grid (fewer n, temperatures, rho values or students; docs/experiments.md); the points it "
                        "runs have the full run's d and n, so their numbers estimate the same quantities")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..experiments import get
    from ..experiments._common import format_table
    from ..validation import JaxDistillError

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise JaxDistillError(f"--out {args.out} is a file; give a folder for the results")
    mod = get(args.name)
    t0 = time.perf_counter()
    rows = mod.run(args.out, seed=args.seed, quick=args.quick, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    shown = mod.summary_rows(rows)
    print(f"jaxdistill reproduce {args.name}{' --quick' if args.quick else ''} (seed {args.seed}): "
          f"{len(rows)} rows" + (f", showing {len(shown)}" if len(shown) != len(rows) else ""))
    print(format_table(shown, mod.COLUMNS))
    print(f"written {args.out}/{args.name}.csv, {args.out}/{args.name}.png  ({elapsed:.1f} s)")
    sys.stdout.flush()
    return 0
