"""``jaxdistill bound``: the paper's transfer-risk bounds for a task, over n.

Prints, for each n, the Theorem 3 bound (eq. 19, minimised over beta; 0 for
n >= d, eq. 18), its minimising beta, the sharper form at the end of the
proof of Thm 3, Cor. 1 (gamma^n, margin tasks) and Cor. 2
(c (1 + (log n)^kappa) / n^kappa with c = 1, polynomial tasks); with
``--epsilon EPS --w-hat-norm W`` also Theorem D.1 (eq. 78) for a student
within EPS of the distillation solution w_hat with ||w_hat|| >= W; and with
``--simulate B`` the expected transfer risk of the distilled student over B
simulated transfer sets (closed form of Thm 1, the exact limit of the
gradient flow), with its standard error.

Each bound is printed only where its theorem's hypotheses hold (docs/design.md
fact 4); "-" (null in JSON) marks where it does not apply: Cor. 1 without an
angular margin, Cor. 2 for tasks without a polynomial p(theta) with c = 1,
Thm D.1 for n >= d.  Arguments outside a hypothesis are refused (--cor2-c
other than 1; --epsilon above --w-hat-norm / 2).  For pool tasks (finite data)
eq. 18 is not used: X need not have full rank, so eq. 19 is printed for
every n.

``--json`` prints one object for a single n (keys bound, beta, bound_tight,
beta_tight, cor1, cor2, n, d; with --epsilon also thm_d1, thm_d1_beta,
thm_d1_tight, thm_d1_beta_tight, delta, epsilon, w_hat_norm; with --simulate
also risk_mean, risk_se, num_sets), or a list of such objects for several n;
null where a quantity does not apply.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from .common import add_task_arguments, finite_float, nonnegative_int, positive_int, task_from_args, task_label


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


def _cor2_c(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cor2-c must be 1, got {text!r}") from None
    if v != 1.0:
        raise argparse.ArgumentTypeError(
            f"--cor2-c must be 1 (allowed range: c = 1), got {text!r}: Corollary 2 needs p(0) = 1 <= c "
            "and its proof uses c^n <= c, i.e. c <= 1")
    return v


def add_parser(sub) -> None:
    p = sub.add_parser("bound", help="the paper's risk bounds (Thm 3, Cor. 1-2, Thm D.1) over n, optionally vs simulation",
                       description="Theorem 3 bound (eq. 19, minimised over beta; 0 for n >= d), its minimising beta, "
                                   "the sharper form from its proof, Corollaries 1 and 2 where they apply, with "
                                   "--epsilon/--w-hat-norm Theorem D.1 (eq. 78) for an epsilon-close student, and with "
                                   "--simulate B the simulated expected transfer risk beside them. "
                                   "See docs/design.md fact 4.")
    add_task_arguments(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--n", type=_n_list, default=None, help="transfer-set size n, or a list such as 5,10,20 (default 20)")
    g.add_argument("--n-range", nargs="+", type=positive_int("--n-range"), metavar="N",
                   help="START STOP [STEP]: every n from START to STOP inclusive (default step 1)")
    p.add_argument("--simulate", type=positive_int("--simulate"), default=None, metavar="B",
                   help="also simulate B transfer sets per n (closed-form student = the gradient flow's limit)")
    p.add_argument("--seed", type=nonnegative_int("--seed", maximum=2**63 - 1), default=None,
                   help="PRNG seed of --simulate (default 0); only with --simulate")
    p.add_argument("--cor2-c", type=_cor2_c, default=1.0,
                   help="constant c of Cor. 2 (eq. 21); must be 1, the only value the corollary is proved for "
                        "(p(0) = 1 forces c >= 1, the proof needs c <= 1); exact for the kappa and margin tasks")
    d1 = p.add_argument_group("Theorem D.1 (eq. 78): a student within epsilon of w_hat; give both options")
    d1.add_argument("--epsilon", type=finite_float("--epsilon", gt=0.0), default=None, metavar="EPS",
                    help="distance bound ||w - w_hat|| <= EPS of the student; needs --w-hat-norm, and "
                         "EPS <= W / 2 (the theorem's hypothesis)")
    d1.add_argument("--w-hat-norm", type=finite_float("--w-hat-norm", gt=0.0), default=None, metavar="W",
                    help="||w_hat|| of the transfer sets, or a lower bound of it over them; needs --epsilon")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--quiet", action="store_true",
                   help="with --simulate: no progress bar and no line per finished n (on stderr)")
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


def _check_d1_args(args) -> None:
    from ..validation import JaxDistillError

    if (args.epsilon is None) != (args.w_hat_norm is None):
        given, missing = ("--epsilon", "--w-hat-norm") if args.w_hat_norm is None else ("--w-hat-norm", "--epsilon")
        raise JaxDistillError(f"{given} needs {missing}: Theorem D.1 (eq. 78) takes both the distance EPS to w_hat "
                              "and ||w_hat|| (delta = sqrt(2 pi EPS / ||w_hat||))")
    if args.epsilon is not None and args.epsilon > args.w_hat_norm / 2:
        raise JaxDistillError(f"--epsilon must be in (0, --w-hat-norm / 2] = (0, {args.w_hat_norm / 2!r}] "
                              f"(Theorem D.1 assumes epsilon <= ||w_hat|| / 2), got {args.epsilon!r}")


def _simulate(rows: list, task, seed: int, num_sets: int, *, progress: bool) -> None:
    """Add the simulated expected risk (closed-form student, Thm 1) to each row,
    with one progress bar over every n's sets and a line per finished n."""
    import time

    from ..progress import progress_bar
    from ..runner import run_program
    from ..simulate import setup_run

    bar = progress_bar(len(rows) * num_sets, progress, desc="simulated sets")
    try:
        for row in rows:
            t0 = time.perf_counter()
            setup = setup_run(seed, task, row["n"], num_sets, method="closed-form", keep_students=False)
            r = setup.result(run_program(setup.program, setup.key, setup.plan, shared=setup.shared,
                                         dtype=setup.dtype, on_sets=bar.update))
            est = r.expected_risk()
            row.update({"risk_mean": _none_if_nan(est.mean), "risk_se": _none_if_nan(est.se),
                        "num_sets": est.num_sets, "risk_method": r.risk_method,
                        "num_failed": int((~r.ok).sum())})
            bar.write(f"n = {row['n']}: E[R] = {est.mean:.4e} +- {est.se:.1e} over {est.num_sets} sets "
                      f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    finally:
        bar.close()


def main(args) -> int:
    import jax.numpy as jnp
    import numpy as np

    from .._precision import precision
    from ..analysis.bounds import cor1_bound, cor2_bound, thm3_bound, thm_d1_bound
    from ..analysis.ptheta import p_function
    from ..tasks import AngularMarginTask, KappaPolynomialTask, PoolTask, Task

    _check_d1_args(args)
    if args.teacher_norm is not None:
        from ..validation import JaxDistillError

        raise JaxDistillError("--teacher-norm has no effect on jaxdistill bound: p(theta), the bounds and the "
                              "simulated transfer risk depend on the direction of w* only")
    if args.seed is not None and not args.simulate:
        from ..validation import JaxDistillError

        raise JaxDistillError("--seed applies only with --simulate B (the bounds themselves are deterministic: "
                              "every task of this command has an exact p(theta), pools through all their angles)")
    if args.quiet and not args.simulate:
        from ..validation import JaxDistillError

        raise JaxDistillError("--quiet applies only with --simulate B (it silences the simulation's progress)")
    seed = 0 if args.seed is None else args.seed
    task = task_from_args(args)
    if not isinstance(task, Task):  # K classes / teacher logits: the bounds are for a binary linear teacher
        from ..validation import JaxDistillError

        raise JaxDistillError("jaxdistill bound applies to binary tasks with a teacher vector w_star [d] (the bounds "
                              "of Thm 3 are for a binary linear teacher); got a K-class or teacher-logits task")
    ns = _ns(args)
    d = task.d
    pool = isinstance(task, PoolTask)
    d_eq18 = None if pool else d  # eq. 18 needs X of full rank almost surely: not so for a finite pool
    with precision():
        p_fn = p_function(task)  # exact for kappa, margin, gaussian; every angle of a pool
        n_arr = jnp.asarray(ns)
        res = thm3_bound(p_fn, n_arr, d_eq18)
        c1 = cor1_bound(p_fn, n_arr, d_eq18)
        if isinstance(task, (KappaPolynomialTask, AngularMarginTask)):
            c2 = np.asarray(cor2_bound(n_arr, task.kappa, args.cor2_c))
        else:
            c2 = np.full(len(ns), np.nan)
        d1 = None
        if args.epsilon is not None:
            small = [n for n in ns if n < d]  # Thm D.1 covers n < d only
            d1 = {}
            if small:
                r = thm_d1_bound(p_fn, jnp.asarray(small), d, args.epsilon, args.w_hat_norm)
                d1 = {n: (r.bound[i], r.beta[i], r.bound_tight[i], r.beta_tight[i]) for i, n in enumerate(small)}
    rows = []
    for i, n in enumerate(ns):
        row = {
            "n": n, "d": d,
            "bound": float(res.bound[i]), "beta": _none_if_nan(res.beta[i]),
            "bound_tight": float(res.bound_tight[i]), "beta_tight": _none_if_nan(res.beta_tight[i]),
            "cor1": _none_if_nan(c1[i]), "cor2": _none_if_nan(c2[i]),
        }
        if d1 is not None:
            vals = d1.get(n, (math.nan,) * 4)
            row.update({"thm_d1": _none_if_nan(vals[0]), "thm_d1_beta": _none_if_nan(vals[1]),
                        "thm_d1_tight": _none_if_nan(vals[2]), "thm_d1_beta_tight": _none_if_nan(vals[3]),
                        "delta": math.sqrt(2 * math.pi * args.epsilon / args.w_hat_norm),
                        "epsilon": args.epsilon, "w_hat_norm": args.w_hat_norm})
        rows.append(row)
    if args.simulate:
        _simulate(rows, task, seed, args.simulate, progress=not args.quiet)
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 and args.n_range is None else rows, indent=2))
        return 0
    p_kind = "p(theta) of the pool (all its angles)" if pool else "exact p(theta)"
    print(f"jaxdistill bound: {task_label(task)}; {p_kind}")
    head = f"{'n':>6}  {'Thm 3 bound':>11}  {'beta':>7}  {'sharper':>10}  {'Cor. 1':>10}  {'Cor. 2':>10}"
    if d1 is not None:
        head += f"  {'Thm D.1':>10}"
    if args.simulate:
        head += f"  {'E[R] simulated':>14}  {'SE':>8}  {'sets':>6}"
    print(head)
    fmt = lambda v, w, spec=".4e": f"{'-':>{w}}" if v is None else f"{v:>{w}{spec}}"
    for r in rows:
        line = (f"{r['n']:>6}  {r['bound']:>11.4e}  {fmt(r['beta'], 7, '.4f')}  {r['bound_tight']:>10.4e}  "
                f"{fmt(r['cor1'], 10)}  {fmt(r['cor2'], 10)}")
        if d1 is not None:
            line += f"  {fmt(r['thm_d1'], 10)}"
        if args.simulate:
            line += f"  {fmt(r['risk_mean'], 14)}  {fmt(r['risk_se'], 8, '.1e')}  {r['num_sets']:>6}"
        print(line)
    notes = ["bound: eq. 19 minimised over beta " + ("(eq. 18 not used: a finite pool need not give X full rank)"
                                                    if pool else "(0 for n >= d, eq. 18)")
             + "; sharper: p(b) + (1 - p(b)) p(pi/2 - b)^n",
             "Cor. 1: - where p(theta) has no angular margin; Cor. 2 (c = 1): - where the task has no polynomial "
             "p(theta) <= (1 - 2 theta / pi)^kappa"]
    if d1 is not None:
        notes.append(f"Thm D.1: eq. 78 with epsilon = {args.epsilon:g}, ||w_hat|| = {args.w_hat_norm:g}, "
                     f"delta = {math.sqrt(2 * math.pi * args.epsilon / args.w_hat_norm):.4g}; - where n >= d "
                     "(the theorem covers n < d only)")
    if args.simulate:
        notes.append("E[R] simulated: closed-form student (Thm 1, the gradient flow's limit), "
                     f"{rows[0].get('risk_method')} risk, mean over transfer sets +- SE")
    print("\n".join("  " + s for s in notes))
    if args.simulate and any(r.get("num_failed") for r in rows):
        print("jaxdistill bound: some simulated sets failed and were left out (see num_failed in --json)", file=sys.stderr)
    return 0
