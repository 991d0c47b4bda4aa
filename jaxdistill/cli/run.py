"""``jaxdistill run``: sample transfer sets, train a student on each, report.

Writes (with ``--out DIR``) ``manifest.json``, ``chunks/*.npz`` (one per
finished chunk, written atomically), ``sets.csv`` (one row per set) and
``summary.json`` (keys include risk_mean, risk_se, num_sets, failed_sets,
angle_mean, max_rel_dist_closed_form).  Rerunning the same command on the
same folder resumes after an interruption.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from .common import add_task_arguments, finite_float, positive_int, task_from_args, task_label


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="simulate distillation on many transfer sets",
                       description="Sample transfer sets from a task, train a student on each (closed form, "
                                   "gradient flow or an optax optimiser) and estimate the expected transfer risk.")
    add_task_arguments(p)
    p.add_argument("--n", type=positive_int("--n"), default=20, help="transfer-set size n >= 1 (default 20)")
    p.add_argument("--num-sets", type=positive_int("--num-sets"), default=1000, help="number of transfer sets B (default 1000)")
    p.add_argument("--method", choices=("closed-form", "flow", "gd"), default="flow",
                   help="closed-form (Thm 1), flow (gradient flow, eq. 3; default) or gd (optax)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--out", default=None, help="output folder (resumable); nothing is written without it")
    p.add_argument("--chunk-size", type=positive_int("--chunk-size"), default=None,
                   help="sets per compiled chunk (default: bounded memory, at most 1000)")
    p.add_argument("--targets", choices=("soft", "hard"), default="soft", help="teacher targets (default soft)")
    p.add_argument("--temperature", type=finite_float("--temperature", gt=0.0), default=1.0,
                   help="temperature T > 0 of soft targets sigma(w*.x / T) (default 1)")
    g = p.add_argument_group("gradient flow")
    g.add_argument("--solver", default="Kvaerno5", help="diffrax solver name (default Kvaerno5)")
    g.add_argument("--rtol", type=finite_float("--rtol", gt=0.0, lt=1.0), default=None, help="step-size controller rtol")
    g.add_argument("--atol", type=finite_float("--atol", gt=0.0), default=None, help="step-size controller atol")
    g.add_argument("--newton-tol", type=finite_float("--newton-tol", gt=0.0, lt=1.0), default=None,
                   help="stop when the Newton step is below this times ||w|| (default 1e-9)")
    g.add_argument("--max-steps", type=positive_int("--max-steps"), default=None, help="solver step limit")
    g.add_argument("--coordinates", choices=("reduced", "plain"), default="reduced",
                   help="integrate in the reduced coordinates of DESIGN.md fact 1 (default) or in d dimensions")
    g = p.add_argument_group("discrete optimiser (--method gd)")
    g.add_argument("--lr", type=finite_float("--lr", gt=0.0), default=1.0, help="learning rate (default 1)")
    g.add_argument("--steps", type=positive_int("--steps"), default=10_000, help="optimiser steps (default 10000)")
    g.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="sgd")
    g = p.add_argument_group("deep linear student (Thm 2)")
    g.add_argument("--depth", type=positive_int("--depth"), default=1, help="N >= 1 factors (default 1: linear student)")
    g.add_argument("--width", type=positive_int("--width"), default=64, help="hidden width of deep students (default 64)")
    g.add_argument("--init-scale", type=finite_float("--init-scale", gt=0.0), default=None,
                   help="||w(0)|| of deep students (default: from eq. 11 with --epsilon)")
    g.add_argument("--epsilon", type=finite_float("--epsilon", gt=0.0), default=None,
                   help="target accuracy epsilon of Thm 2 (eq. 11, 15)")
    g.add_argument("--integrator", choices=("reduced", "induced", "full"), default="reduced",
                   help="deep flow integrator: reduced (DESIGN.md fact 2), induced (eq. 56) or full W_1..W_N")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--risk", choices=("auto", "exact", "mc"), default="auto",
                   help="transfer risk: exact where the task allows (default auto) or Monte-Carlo")
    g.add_argument("--num-test", type=positive_int("--num-test"), default=10_000, help="held-out inputs for MC risk")
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    g.add_argument("--save-students", action="store_true", help="also store the students w [B, d] in the chunk files")
    g.add_argument("--strict", action="store_true", help="exit with status 3 if any transfer set failed")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--json", action="store_true", help="print summary.json instead of the readable report")
    p.set_defaults(func=main)


def learner_from_args(args):
    """The learner object named by the options."""
    from ..students.discrete import GDConfig
    from ..students.flow import FlowConfig
    from ..simulate import make_learner

    flow_kwargs = {k: v for k, v in {
        "solver": args.solver, "rtol": args.rtol, "atol": args.atol, "newton_tol": args.newton_tol,
        "max_steps": args.max_steps, "coordinates": args.coordinates}.items() if v is not None}
    flow = FlowConfig(**flow_kwargs)
    if args.depth > 1:
        from ..students.deep import deep_learner_from_options

        return deep_learner_from_options(args, flow)
    return make_learner(args.method, flow=flow, gd=GDConfig(learning_rate=args.lr, steps=args.steps, optimizer=args.optimizer))


def main(args) -> int:
    import numpy as np

    from .._precision import precision
    from ..runstore import RunStore, write_json, write_sets_csv
    from ..simulate import (DistillResult, _progress_bar, assemble, default_chunk_size, distill_chunks, has_exact_risk,
                            run_config)
    from ..students.flow import STATUS_NAMES
    from ..teachers import TargetSpec

    task = task_from_args(args)
    learner = learner_from_args(args)
    targets = TargetSpec(kind=args.targets, temperature=args.temperature)
    chunk = args.chunk_size or min(default_chunk_size(args.n, task.d), args.num_sets)
    risk = args.risk if args.risk != "auto" else ("exact" if has_exact_risk(task) else "mc")
    config = run_config(task, args.n, args.num_sets, learner, targets, str(args.seed), chunk, risk, args.num_test, args.dtype)
    num_chunks = math.ceil(args.num_sets / chunk)
    store = RunStore(args.out, config) if args.out else None
    done = store.finished_chunks(num_chunks) if store else []
    start = 0
    while start in done:
        start += 1
    sets_done = min(start * chunk, args.num_sets)
    if store and start:
        print(f"resuming {args.out}: {start} of {num_chunks} chunks ({sets_done} sets) already done", file=sys.stderr)
    t0 = time.perf_counter()
    bar = _progress_bar(args.num_sets, not args.quiet, initial=sets_done)
    in_memory = {}
    if start < num_chunks:
        for c, arrays in distill_chunks(
            args.seed, task, args.n, args.num_sets, learner=learner, targets=targets, chunk_size=chunk, risk=risk,
            num_test=args.num_test, keep_students=args.save_students, dtype=args.dtype, start_chunk=start,
        ):
            if store:
                if not store.has_chunk(c):
                    store.save_chunk(c, arrays)
            else:
                in_memory[c] = arrays
            bar.update(len(arrays["status"]))
    bar.close()
    elapsed = time.perf_counter() - t0
    chunks = [in_memory[c] if c in in_memory else store.load_chunk(c) for c in range(num_chunks)]
    result = assemble(chunks, config, risk, elapsed)
    summary = result.summary()
    summary.update(_deep_summary(result))
    summary["sets_computed_this_run"] = args.num_sets - sets_done
    if store:
        per_set = {k: v for k, v in _concat(chunks).items() if k != "students"}
        per_set["status_name"] = np.array([STATUS_NAMES[int(s)] for s in per_set["status"]])
        write_sets_csv(store.root / "sets.csv", per_set)
        write_json(store.root / "summary.json", summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _report(task, args, summary, result)
    if args.strict and summary["num_failed"]:
        print(f"jaxdistill run: --strict: {summary['num_failed']} transfer set(s) failed", file=sys.stderr)
        return 3
    return 0


def _concat(chunks):
    import numpy as np

    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _deep_summary(result) -> dict:
    import numpy as np

    out = {}
    ok = result.ok
    if "dist_w_hat" in result.extras:
        v = result.extras["dist_w_hat"][ok]
        out["max_dist_w_hat"] = float(np.max(v)) if v.size else None
    if "eq76_bound" in result.extras:
        v = result.extras["eq76_bound"][ok]
        out["eq76_bound"] = float(np.max(v)) if v.size else None
    return out


def _report(task, args, s, result) -> None:
    lines = [
        f"jaxdistill run: {task_label(task)}, n={args.n}, {s['num_sets_requested']} transfer sets, "
        f"method {s['config']['method']}{'' if args.depth == 1 else f' (depth {args.depth})'}",
        f"  expected transfer risk   {_num(s['risk_mean'])} +- {_num(s['risk_se'])} (SE; {s['risk_method']} risk over {s['num_sets']} sets)",
        f"  mean angle to teacher    {_num(s['angle_mean'])} rad ({_num(math.degrees(s['angle_mean']) if s['angle_mean'] is not None else None)} deg)",
    ]
    if s.get("max_rel_dist_closed_form") is not None:
        lines.append(f"  max ||w - w_hat||/||w_hat||  {s['max_rel_dist_closed_form']:.3e}")
    if "max_dist_w_hat" in s:
        lines.append(f"  max ||w - w_hat||        {_num(s['max_dist_w_hat'])} (eq. 76 bound {_num(s.get('eq76_bound'))})")
    lines.append(f"  failed sets              {s['num_failed']}" + (
        "" if not s["num_failed"] else " (first: " + ", ".join(f"#{f['index']} {f['status']}" for f in s["failed_sets"][:5]) + ")"))
    rate = s["sets_computed_this_run"] / s["elapsed_s"] if s["elapsed_s"] > 0 and s["sets_computed_this_run"] else None
    lines.append(f"  time                     {s['elapsed_s']:.2f} s" + (f" ({rate:.0f} sets/s incl. compilation)" if rate else ""))
    if args.out:
        lines.append(f"  written                  {args.out}/summary.json, {args.out}/sets.csv")
    print("\n".join(lines))


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4g}"
