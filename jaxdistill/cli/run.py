"""``jaxdistill run``: sample transfer sets, train a student on each, report.

Writes (with ``--out DIR``) ``manifest.json``, ``chunks/*.npz`` (one per
finished chunk, written atomically), ``sets.csv`` (one row per set) and
``summary.json`` (keys include risk_mean, risk_se, num_sets, failed_sets,
angle_mean, max_rel_dist_closed_form).  Rerunning the same command on the
same folder resumes after an interruption (Ctrl-C, SIGKILL, a lost Colab
runtime): finished chunks are kept, a chunk file that cannot be read is
recomputed, and the result equals an uninterrupted run's.  A different
configuration on the same folder is refused (exit status 2).

Several devices are used automatically (each chunk is sharded over the
local devices).  Several hosts: run the same command on every host after
``jax.distributed.initialize()`` with a shared ``--out``; process i of P
computes the chunks c with c % P == i and process 0 writes the summary
(see ``jaxdistill.simulate``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from .common import add_task_arguments, finite_float, nonnegative_int, positive_int, task_from_args, task_label


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="simulate distillation on many transfer sets",
                       description="Sample transfer sets from a task, train a student on each (closed form, "
                                   "gradient flow or an optax optimiser) and estimate the expected transfer risk.")
    add_task_arguments(p)
    p.add_argument("--n", type=positive_int("--n"), default=20, help="transfer-set size n >= 1 (default 20)")
    p.add_argument("--num-sets", type=positive_int("--num-sets"), default=1000, help="number of transfer sets B (default 1000)")
    p.add_argument("--method", choices=("closed-form", "flow", "gd"), default="flow",
                   help="closed-form (Thm 1), flow (gradient flow, eq. 3; default) or gd (optax)")
    p.add_argument("--seed", type=nonnegative_int("--seed", maximum=2**63 - 1), default=0,
                   help="PRNG seed >= 0 (default 0); set i uses fold_in(seed key, i)")
    p.add_argument("--out", default=None, help="output folder (resumable); nothing is written without it")
    p.add_argument("--chunk-size", type=positive_int("--chunk-size"), default=None,
                   help="sets per compiled chunk (default: bounded memory, at most 1000)")
    p.add_argument("--targets", choices=("soft", "hard"), default="soft", help="teacher targets (default soft)")
    p.add_argument("--temperature", type=finite_float("--temperature", gt=0.0), default=1.0,
                   help="temperature T > 0 of soft targets sigma(w*.x / T) (default 1)")
    g = p.add_argument_group("gradient flow")
    g.add_argument("--solver", default=None, help="diffrax solver name (default Kvaerno3)")
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
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="float64 (default) or float32 (flows then stop at newton_tol >= 1e-5; about 1e-5 relative "
                        "distance to the closed form)")
    g.add_argument("--save-students", action="store_true", help="also store the students w [B, d] in the chunk files")
    g.add_argument("--strict", action="store_true", help="exit with status 3 if any transfer set failed")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no resume/progress messages")
    g.add_argument("--wait-timeout", type=finite_float("--wait-timeout", gt=0.0), default=86400.0,
                   help="multi-host runs: seconds process 0 waits for the other hosts' chunks (default 86400)")
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

    import jax

    from ..runstore import RunStore, write_json, write_sets_csv
    from ..simulate import (FLOAT32_MIN_NEWTON_TOL, _progress_bar, assemble, chunks_for_process, default_chunk_size,
                            distill_chunks, has_exact_risk, precision_adjusted, run_config)
    from ..students.flow import STATUS_NAMES
    from ..teachers import TargetSpec
    from ..validation import JaxDistillError

    if args.dtype == "float32" and args.newton_tol is not None and args.newton_tol < FLOAT32_MIN_NEWTON_TOL:
        raise JaxDistillError(f"--newton-tol must be >= {FLOAT32_MIN_NEWTON_TOL:g} with --dtype float32 "
                              f"(float32 cannot certify a smaller relative distance), got {args.newton_tol:g}")
    task = task_from_args(args)
    learner = precision_adjusted(learner_from_args(args), args.dtype)
    targets = TargetSpec(kind=args.targets, temperature=args.temperature)
    if args.method == "closed-form" and args.targets == "hard":
        raise JaxDistillError("--method closed-form needs --targets soft: with hard labels the loss has no finite minimiser")
    if args.risk == "exact" and not has_exact_risk(task):
        raise JaxDistillError(f"--risk exact is not available for --task {args.task}; use --risk mc or auto")
    chunk = args.chunk_size or min(default_chunk_size(args.n, task.d), args.num_sets)
    risk = args.risk if args.risk != "auto" else ("exact" if has_exact_risk(task) else "mc")
    config = run_config(task, args.n, args.num_sets, learner, targets, str(args.seed), chunk, risk, args.num_test, args.dtype)
    num_chunks = math.ceil(args.num_sets / chunk)
    pid, nproc = jax.process_index(), jax.process_count()
    if nproc > 1 and not args.out:
        raise JaxDistillError("a multi-host run (jax.process_count() > 1) needs --out on a filesystem shared by all hosts")
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    store = RunStore(args.out, config) if args.out else None
    done = set(store.finished_chunks(num_chunks, on_corrupt=say)) if store else set()
    todo = [c for c in range(num_chunks) if c not in done]
    if nproc > 1:
        todo = [c for c in todo if c in set(chunks_for_process(num_chunks, pid, nproc))]
    sets_done = args.num_sets - sum(_chunk_len(c, chunk, args.num_sets) for c in todo)
    if store and done:
        say(f"resuming {args.out}: {len(done)} of {num_chunks} chunks ({_sets_in(done, chunk, args.num_sets)} sets) already done")
    if nproc > 1:
        say(f"process {pid} of {nproc}: computing {len(todo)} chunks (c % {nproc} == {pid})")
    t0 = time.perf_counter()
    bar = _progress_bar(args.num_sets if nproc == 1 else sets_done + sum(_chunk_len(c, chunk, args.num_sets) for c in todo),
                        not args.quiet, initial=sets_done)
    in_memory = {}
    if todo:
        for c, arrays in distill_chunks(
            args.seed, task, args.n, args.num_sets, learner=learner, targets=targets, chunk_size=chunk, risk=risk,
            num_test=args.num_test, keep_students=args.save_students, dtype=args.dtype, chunks=todo,
        ):
            if store:
                store.save_chunk(c, arrays)
            else:
                in_memory[c] = arrays
            bar.update(len(arrays["status"]))
    bar.close()
    elapsed = time.perf_counter() - t0
    if nproc > 1:
        if pid != 0:
            say(f"process {pid} of {nproc}: done; process 0 writes {args.out}/summary.json")
            return 0
        _wait_for_chunks(store, num_chunks, args.wait_timeout, say)
    chunks = [in_memory[c] if c in in_memory else store.load_chunk(c) for c in range(num_chunks)]
    result = assemble(chunks, config, risk, elapsed)
    summary = result.summary()
    summary.update(_deep_summary(result))
    summary["sets_computed_this_run"] = sum(_chunk_len(c, chunk, args.num_sets) for c in todo)
    summary["num_devices"] = jax.local_device_count()
    summary["num_processes"] = nproc
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


def _chunk_len(c: int, chunk: int, num_sets: int) -> int:
    return min(chunk, num_sets - c * chunk)


def _sets_in(chunks, chunk: int, num_sets: int) -> int:
    return sum(_chunk_len(c, chunk, num_sets) for c in chunks)


def _wait_for_chunks(store, num_chunks: int, timeout: float, say) -> None:
    """Multi-host: process 0 waits for the chunk files of the other hosts."""
    from ..validation import JaxDistillError

    t0 = time.monotonic()
    missing = [c for c in range(num_chunks) if not store.has_chunk(c)]
    if missing:
        say(f"waiting for {len(missing)} chunks from the other hosts")
    while missing:
        if time.monotonic() - t0 > timeout:
            raise JaxDistillError(f"--wait-timeout: {len(missing)} chunks (first: {missing[0]}) never arrived; "
                                  "rerun the same command to compute them")
        time.sleep(1.0)
        missing = [c for c in missing if not store.has_chunk(c)]


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
