"""``jaxdistill bound``: the paper's transfer-risk bounds for a task, over n.

Prints, for each n, the Theorem 3 bound (eq. 19, minimised over beta; 0 for
n >= d, eq. 18), its minimising beta, the sharper form at the end of the
proof of Thm 3, Cor. 1 (gamma^n, margin tasks) and Cor. 2
(c (1 + (log n)^kappa) / n^kappa, polynomial tasks), and with
``--simulate B`` the expected transfer risk of the distilled student over B
simulated transfer sets (closed form of Thm 1, the exact limit of the
gradient flow), with its standard error.

``--json`` prints one object for a single n (keys bound, beta, bound_tight,
beta_tight, cor1, cor2, n, d; with --simulate also risk_mean, risk_se,
num_sets), or a list of such objects for several n; null where a quantity
does not apply.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from .common import add_task_arguments, finite_float, positive_int, task_from_args, task_label


def _n_list(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--n must be an integer >= 1 or a comma-separated list of them, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"--n values must be integers >= 1, got {v}")
        out.append(v)
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("bound", help="the paper's risk bounds (Thm 3, Cor. 1-2) over n, optionally vs simulation",
                       description="Theorem 3 bound (eq. 19, minimised over beta; 0 for n >= d), its minimising beta, "
                                   "the sharper form from its proof, Corollaries 1 and 2 where they apply, and with "
                                   "--simulate B the simulated expected transfer risk beside them.")
    add_task_arguments(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--n", type=_n_list, default=None, help="transfer-set size n, or a list such as 5,10,20 (default 20)")
    g.add_argument("--n-range", nargs="+", type=positive_int("--n-range"), metavar="N",
                   help="START STOP [STEP]: every n from START to STOP inclusive (default step 1)")
    p.add_argument("--simulate", type=positive_int("--simulate"), default=None, metavar="B",
                   help="also simulate B transfer sets per n (closed-form student = the gradient flow's limit)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the simulation and of sampled angles (default 0)")
    p.add_argument("--cor2-c", type=finite_float("--cor2-c", gt=0.0), default=1.0,
                   help="constant c of Cor. 2 (default 1, exact for the kappa and margin tasks)")
    p.add_argument("--num-angles", type=positive_int("--num-angles"), default=100_000,
                   help="sampled angles for the empirical p(theta) of tasks without a closed form (default 100000)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=main)


def _ns(args) -> list[int]:
    from ..validation import JaxDistillError

    if args.n_range is not None:
        if len(args.n_range) not in (2, 3):
            raise JaxDistillError(f"--n-range takes START STOP [STEP], got {len(args.n_range)} value(s)")
        start, stop = args.n_range[:2]
        step = args.n_range[2] if len(args.n_range) == 3 else 1
        if stop < start:
            raise JaxDistillError(f"--n-range STOP must be >= START, got START={start}, STOP={stop}")
        return list(range(start, stop + 1, step))
    return args.n if args.n is not None else [20]


def _none_if_nan(v):
    v = float(v)
    return None if math.isnan(v) else v


def main(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from .._precision import precision
    from ..analysis.bounds import cor1_bound, cor2_bound, thm3_bound
    from ..analysis.ptheta import p_function
    from ..tasks import AngularMarginTask, KappaPolynomialTask, has_exact_p

    task = task_from_args(args)
    ns = _ns(args)
    d = task.d
    with precision():
        p_fn = p_function(task, key=jax.random.fold_in(jax.random.PRNGKey(args.seed), 0xA6), num=args.num_angles)
        n_arr = jnp.asarray(ns)
        res = thm3_bound(p_fn, n_arr, d)
        c1 = cor1_bound(p_fn, n_arr, d)
        if isinstance(task, (KappaPolynomialTask, AngularMarginTask)):
            c2 = np.asarray(cor2_bound(n_arr, task.kappa, args.cor2_c))
        else:
            c2 = np.full(len(ns), np.nan)
    rows = []
    for i, n in enumerate(ns):
        rows.append({
            "n": n, "d": d,
            "bound": float(res.bound[i]), "beta": _none_if_nan(res.beta[i]),
            "bound_tight": float(res.bound_tight[i]), "beta_tight": _none_if_nan(res.beta_tight[i]),
            "cor1": _none_if_nan(c1[i]), "cor2": _none_if_nan(c2[i]),
        })
    if args.simulate:
        from ..simulate import distill

        for row in rows:
            r = distill(args.seed, task, row["n"], args.simulate, method="closed-form", keep_students=False)
            est = r.expected_risk()
            row.update({"risk_mean": _none_if_nan(est.mean), "risk_se": _none_if_nan(est.se),
                        "num_sets": est.num_sets, "risk_method": r.risk_method,
                        "num_failed": int((~r.ok).sum())})
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 and args.n_range is None else rows, indent=2))
        return 0
    p_kind = "exact p(theta)" if has_exact_p(task) else "empirical p(theta)"
    print(f"jaxdistill bound: {task_label(task)}; {p_kind}")
    head = f"{'n':>6}  {'Thm 3 bound':>11}  {'beta':>7}  {'sharper':>10}  {'Cor. 1':>10}  {'Cor. 2':>10}"
    if args.simulate:
        head += f"  {'E[R] simulated':>14}  {'SE':>8}  {'sets':>6}"
    print(head)
    fmt = lambda v, w, spec=".4e": f"{'-':>{w}}" if v is None else f"{v:>{w}{spec}}"
    for r in rows:
        line = (f"{r['n']:>6}  {r['bound']:>11.4e}  {fmt(r['beta'], 7, '.4f')}  {r['bound_tight']:>10.4e}  "
                f"{fmt(r['cor1'], 10)}  {fmt(r['cor2'], 10)}")
        if args.simulate:
            line += f"  {fmt(r['risk_mean'], 14)}  {fmt(r['risk_se'], 8, '.1e')}  {r['num_sets']:>6}"
        print(line)
    notes = ["bound: eq. 19 minimised over beta (0 for n >= d, eq. 18); sharper: p(b) + (1 - p(b)) p(pi/2 - b)^n"]
    if args.simulate:
        notes.append("E[R] simulated: closed-form student (Thm 1, the gradient flow's limit), "
                     f"{rows[0].get('risk_method')} risk, mean over transfer sets +- SE")
    print("\n".join("  " + s for s in notes))
    if args.simulate and any(r.get("num_failed") for r in rows):
        print("jaxdistill bound: some simulated sets failed and were left out (see num_failed in --json)", file=sys.stderr)
    return 0
