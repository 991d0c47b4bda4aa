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

from ..students.discrete import OPTIMISERS
from ..students.flow_config import FLOAT32_MIN_NEWTON_TOL, SOLVER_NAMES
from ..defaults import DEFAULTS
from .run_estimands import (add_estimand_arguments, check_estimand_task, estimand_learner, monotonicity_summary,
                            multiclass_monotonicity_summary)
from .run_nonlinear import add_student_arguments, nonlinear_learner, take_mlp_options
from .common import (add_task_arguments, finite_float, nonnegative_int, positive_int, refuse_inapplicable,
                     task_from_args, task_label)


FLOW_OPTIONS = {
    "--solver": ("solver", None, ("flow",)),
    "--rtol": ("rtol", None, ("flow",)),
    "--atol": ("atol", None, ("flow",)),
    "--newton-tol": ("newton_tol", None, ("flow",)),
    "--max-steps": ("max_steps", None, ("flow",)),
    "--coordinates": ("coordinates", None, ("flow",)),
    "--t-end": ("t_end", None, ("flow",)),
}
GD_OPTIONS = {
    "--lr": ("lr", None, ("gd",)),
    "--steps": ("steps", None, ("gd",)),
    "--optimizer": ("optimizer", None, ("gd",)),
}
DEEP_OPTIONS = {
    "--width": ("width", 64, ("depth >= 2",)),
    "--init-scale": ("init_scale", None, ("depth >= 2",)),
    "--epsilon": ("epsilon", None, ("depth >= 2",)),
    "--integrator": ("integrator", "reduced", ("depth >= 2",)),
}


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="simulate distillation on many transfer sets",
                       description="Sample transfer sets from a task, train a student on each (closed form, "
                                   "gradient flow or an optax optimiser) and estimate the expected transfer risk. "
                                   "Every option either takes effect or is refused with a message saying when it "
                                   "applies.")
    add_task_arguments(p)
    p.add_argument("--n", type=positive_int("--n"), default=20, help="transfer-set size n >= 1 (default 20)")
    p.add_argument("--num-sets", type=positive_int("--num-sets"), default=1000, help="number of transfer sets B (default 1000)")
    p.add_argument("--method", choices=("closed-form", "flow", "gd"), default=None,
                   help="closed-form (Thm 1; depth 1 only), flow (gradient flow, eq. 3; default) or gd (optax); "
                        "with --depth >= 2, flow or gd trains the deep factors; with --learner wdelta how w_hat is "
                        "computed (closed-form, the default there, or flow)")
    p.add_argument("--seed", type=nonnegative_int("--seed", maximum=2**63 - 1), default=0,
                   help="PRNG seed >= 0 (default 0); set i uses fold_in(seed key, i)")
    p.add_argument("--out", default=None, help="output folder (resumable); nothing is written without it")
    p.add_argument("--chunk-size", type=positive_int("--chunk-size"), default=None,
                   help="sets per compiled chunk (default: bounded memory, at most 256)")
    p.add_argument("--targets", choices=("soft", "hard", "mixed"), default="soft",
                   help="teacher targets (default soft); mixed = rho softmax(u / T) + (1 - rho) onehot(label) needs "
                        "ground-truth labels (a pool file with 'labels')")
    p.add_argument("--temperature", type=finite_float("--temperature", gt=0.0), default=None,
                   help="temperature T > 0 of soft targets sigma(w*.x / T) (default 1; soft and mixed targets only)")
    p.add_argument("--soft-ratio", type=finite_float("--soft-ratio", ge=0.0), default=None,
                   help="rho in [0, 1] of --targets mixed (1: soft, 0: the ground-truth labels)")
    g = p.add_argument_group("gradient flow (--method flow)")
    g.add_argument("--solver", choices=SOLVER_NAMES, default=None, help="ODE solver: Rodas3 (the default; jaxdistill's Rosenbrock solver) or a diffrax solver name")
    g.add_argument("--rtol", type=finite_float("--rtol", gt=0.0, lt=1.0), default=None,
                   help="PID step-size controller rtol (default 1e-2; deep --integrator induced/full: 1e-8 with "
                        "Kvaerno5, see students.deep.default_flow_config)")
    g.add_argument("--atol", type=finite_float("--atol", gt=0.0), default=None,
                   help="PID step-size controller atol (default 1e-5; deep --integrator induced/full: 1e-14)")
    g.add_argument("--newton-tol", type=finite_float("--newton-tol", gt=0.0, lt=1.0), default=None,
                   help="stop when the Newton step is below this times ||w|| (default 1e-9)")
    g.add_argument("--max-steps", type=positive_int("--max-steps"), default=None, help="solver step limit (default 4096)")
    g.add_argument("--t-end", type=finite_float("--t-end", gt=0.0), default=None,
                   help="finite training time: integrate the flow to exactly t = T (status finite_horizon; the "
                        "student at time T, not the limit); default: train to the steady state")
    g.add_argument("--coordinates", choices=("reduced", "plain"), default=None,
                   help="integrate in the reduced coordinates of docs/design.md fact 1 (default) or in d dimensions "
                        "(depth 1, or the full deep integrator's W_1)")
    g = p.add_argument_group("discrete optimiser (--method gd)")
    g.add_argument("--lr", type=finite_float("--lr", gt=0.0), default=None,
                   help="learning rate (default 1; deep students 0.5)")
    g.add_argument("--steps", type=positive_int("--steps"), default=None,
                   help="optimiser steps (default 10000; deep students 20000)")
    g.add_argument("--optimizer", choices=OPTIMISERS, default=None, help="sgd (default), momentum (0.9) or adam")
    g = p.add_argument_group("deep linear student (Thm 2; --depth >= 2)")
    g.add_argument("--depth", type=positive_int("--depth"), default=1, help="N >= 1 factors (default 1: linear student)")
    g.add_argument("--width", type=positive_int("--width"), default=None, help="hidden width of deep students (default 64)")
    g.add_argument("--init-scale", type=finite_float("--init-scale", gt=0.0), default=None,
                   help="||w(0)|| of deep students (default: from eq. 11 with --epsilon)")
    g.add_argument("--epsilon", type=finite_float("--epsilon", gt=0.0), default=None,
                   help="target accuracy epsilon of Thm 2 (eq. 11, 15)")
    g.add_argument("--integrator", choices=("reduced", "induced", "full"), default=None,
                   help="deep flow integrator: reduced (docs/design.md fact 2; default), induced (eq. 56) or full "
                        "W_1..W_N (--method flow only)")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--risk", choices=("auto", "exact", "mc"), default="auto",
                   help="transfer risk: exact where the task allows (default auto) or Monte-Carlo")
    g.add_argument("--num-test", type=positive_int("--num-test"), default=None,
                   help="held-out inputs for Monte-Carlo risk (default 10000; MC risk only)")
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="float64 (default) or float32 (flows then stop at newton_tol >= 1e-5; relative distance to the "
                        "float64 closed form: median ~5e-6, 99%% of sets within 1e-4 at d = 1000, n = 20)")
    g.add_argument("--save-students", action="store_true",
                   help="also store the students w [B, d] in the chunk files of --out and in --out/students.npy "
                        "(row i = set i; NaN rows for failed sets)")
    g.add_argument("--sampler", choices=("auto", "gram", "inputs"), default="auto",
                   help="auto (default): gram where it applies, else inputs; gram: draw each set's Gram matrix "
                        "X X^T and teacher logits directly, O(n^2) whatever d (kappa, margin and gaussian tasks, "
                        "--depth 1 flow or closed-form or --learner wdelta, exact risk, n < d, no --save-students; "
                        "refused elsewhere; the --monotonicity pairs of --learner wdelta need the inputs); "
                        "inputs: draw the inputs X [n, d] (docs/design.md fact 13)")
    g.add_argument("--strict", action="store_true", help="exit with status 3 if any transfer set failed")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no resume/progress messages")
    g.add_argument("--wait-timeout", type=finite_float("--wait-timeout", gt=0.0), default=None,
                   help="multi-host runs only: seconds process 0 waits for the other hosts' chunks (default 86400)")
    g.add_argument("--json", action="store_true", help="print summary.json instead of the readable report")
    add_estimand_arguments(p)
    add_student_arguments(p)
    p.set_defaults(func=main)


def learner_from_args(args):
    """The learner object named by the options; refuses options that do not
    apply to the chosen method and depth."""
    from ..students import FlowConfig, GDConfig, deep_learner, make_learner, solver_from_name
    from ..students.deep import default_flow_config
    from ..validation import JaxDistillError

    take_mlp_options(args)  # --student mlp: --width is the network's
    refuse_inapplicable(args, DEEP_OPTIONS, "depth >= 2" if args.depth > 1 else "depth 1", "students of")
    other = estimand_learner(args, FLOW_OPTIONS, GD_OPTIONS)  # --learner wdelta / hard-*; fills args.method
    if other is not None:
        return other
    refuse_inapplicable(args, FLOW_OPTIONS, args.method, "--method")
    refuse_inapplicable(args, GD_OPTIONS, args.method, "--method")
    if args.depth > 1 and args.method == "closed-form":
        raise JaxDistillError("--method closed-form applies only to --depth 1 (a deep student has no closed form; "
                              "use --method flow or gd)")
    if args.depth > 1 and args.method == "gd" and args.integrator is not None:
        raise JaxDistillError("--integrator applies only to --method flow (with --method gd the factors are trained "
                              "by the optimiser)")
    if args.coordinates == "plain" and args.depth > 1 and args.integrator != "full":
        raise JaxDistillError("--coordinates applies to deep students only with --integrator full")
    flow = gd = None
    if args.method == "flow":
        kw = {k: v for k, v in {"rtol": args.rtol, "atol": args.atol, "newton_tol": args.newton_tol,
                                "max_steps": args.max_steps, "coordinates": args.coordinates,
                                "t_end": args.t_end}.items() if v is not None}
        if args.solver is not None:
            kw["solver"] = solver_from_name(args.solver)
        flow = FlowConfig(**kw) if args.depth == 1 else (
            default_flow_config(args.integrator or "reduced", **kw) if kw else None)  # deep: over its own default
    if args.method == "gd":
        kw = {k: v for k, v in {"learning_rate": args.lr, "steps": args.steps, "optimizer": args.optimizer}.items()
              if v is not None}
        gd = GDConfig(**kw) if (kw or args.depth == 1) else None
    if args.depth == 1:
        return make_learner(args.method, flow=flow, gd=gd)
    return deep_learner(depth=args.depth, width=64 if args.width is None else args.width, init_scale=args.init_scale,
                        epsilon=args.epsilon, integrator=args.integrator, method=args.method, flow=flow, gd=gd)


def check_common_options(args) -> None:
    """Options whose relevance is the same on every path (binary, K-class,
    kernel, network)."""
    import jax

    from ..validation import JaxDistillError

    if args.dtype == "float32" and args.newton_tol is not None and args.newton_tol < FLOAT32_MIN_NEWTON_TOL:
        raise JaxDistillError(f"--newton-tol must be >= {FLOAT32_MIN_NEWTON_TOL:g} with --dtype float32 "
                              f"(float32 cannot certify a smaller relative distance), got {args.newton_tol:g}")
    if args.save_students and not args.out:
        raise JaxDistillError("--save-students needs --out (the students are stored in the output folder)")
    if args.wait_timeout is not None and jax.process_count() == 1:
        raise JaxDistillError("--wait-timeout applies only to multi-host runs (jax.process_count() > 1)")


def check_run_options(args, task) -> None:
    """Options of a binary run whose relevance depends on the targets or the risk."""
    from ..validation import JaxDistillError

    if args.temperature is not None and args.targets != "soft":
        raise JaxDistillError("--temperature applies only to --targets soft")
    if args.targets == "mixed" or args.soft_ratio is not None:
        from .run_multiclass import refuse_mixed_without_labels

        refuse_mixed_without_labels(args)
    if args.num_test is not None and (args.risk == "exact" or (args.risk == "auto" and task.has_exact_risk)):
        raise JaxDistillError(f"--num-test applies only to Monte-Carlo risk (--risk mc, or --risk auto on a task "
                              f"without exact risk); --task {args.task} uses exact risk here")


def targets_from_args(args, multiclass: bool):
    """The targets object of ``--targets``, ``--temperature``, ``--soft-ratio``."""
    from ..multiclass.targets import MultiTargetSpec
    from ..teachers import TargetSpec

    temperature = DEFAULTS.temperature if args.temperature is None else args.temperature
    if multiclass:
        return MultiTargetSpec(kind=args.targets, temperature=temperature, soft_ratio=args.soft_ratio)
    return TargetSpec(kind=args.targets, temperature=temperature)


def main(args) -> int:
    import jax

    from ..results import describe_failures, write_run_files
    from ..runner import chunks_for_process, run_program
    from ..runstore import RunStore
    from ..simulate import setup_run
    from ..validation import JaxDistillError
    from .run_multiclass import check_multiclass_options, is_multiclass_task, multiclass_report

    task = task_from_args(args)
    learner = learner_from_args(args)
    student = nonlinear_learner(args, learner)  # kernel / network students: the K-class program, binary tasks as K = 2
    multiclass = student is not None or is_multiclass_task(task)
    check_estimand_task(args, task, multiclass)
    check_common_options(args)
    if multiclass:
        check_multiclass_options(args)
    else:
        check_run_options(args, task)
    targets = targets_from_args(args, multiclass)
    setup = setup_run(args.seed, task, args.n, args.num_sets, learner=learner if student is None else student,
                      targets=targets, chunk_size=args.chunk_size, risk=args.risk, num_test=args.num_test,
                      keep_students=args.save_students, dtype=args.dtype, sampler=args.sampler)
    plan = setup.plan
    pid, nproc = jax.process_index(), jax.process_count()
    if nproc > 1 and multiclass:
        raise JaxDistillError(f"multi-host runs (jax.process_count() = {nproc} > 1) are not supported for K-class "
                              "tasks and kernel / network students yet; run on one host (several local devices are "
                              "used as they are)")
    if nproc > 1 and not args.out:
        raise JaxDistillError("a multi-host run (jax.process_count() > 1) needs --out on a filesystem shared by all hosts")
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    store = RunStore(args.out, setup.config) if args.out else None
    mine = chunks_for_process(plan.num_chunks, pid, nproc) if nproc > 1 else None
    if nproc > 1:
        say(f"process {pid} of {nproc}: computing the chunks c with c % {nproc} == {pid}")
    run = run_program(setup.program, setup.key, plan, shared=setup.shared, dtype=setup.dtype, store=store, chunks=mine,
                      progress=not args.quiet, say=say, collect=nproc == 1)
    if nproc > 1:
        if pid != 0:
            say(f"process {pid} of {nproc}: done; process 0 writes {args.out}/summary.json")
            return 0
        _wait_for_chunks(store, plan.num_chunks, 86400.0 if args.wait_timeout is None else args.wait_timeout, say)
        mine_done = run
        run = run_program(setup.program, setup.key, plan, shared=setup.shared, dtype=setup.dtype, store=store,
                          chunks=[], progress=False, say=say)
        run.elapsed, run.sets_computed = mine_done.elapsed, mine_done.sets_computed
    result = setup.result(run)
    mono_dir = store.root / "monotonicity" if store else None
    if multiclass:
        result.info.update(multiclass_monotonicity_summary(args, setup.task, setup.learner, setup.targets, mono_dir))
    else:
        result.info.update(monotonicity_summary(args, task, setup.learner, setup.targets, mono_dir))
    summary = write_run_files(store.root, result, save_students=args.save_students) if store else result.summary()
    if args.json:
        print(json.dumps(printable_summary(summary), indent=2))
    elif multiclass:
        multiclass_report(setup.task, args, summary)
    else:
        _report(task, args, summary, result)
    if summary["num_failed"] and not args.json:
        print(f"jaxdistill run: {describe_failures(summary['failed_sets'], summary['num_sets_requested'])}"
              + (f"; {args.out}/summary.json lists every one" if args.out else ""), file=sys.stderr)
    if args.strict and summary["num_failed"]:
        print(f"jaxdistill run: --strict: {summary['num_failed']} transfer set(s) failed", file=sys.stderr)
        return 3
    return 0


def printable_summary(summary: dict) -> dict:
    """summary.json for printing: at most ``DEFAULTS.failed_sets_shown``
    failed sets listed (``failed_sets_listed`` says how many of how many;
    summary.json keeps them all)."""
    failed = summary["failed_sets"]
    if len(failed) <= DEFAULTS.failed_sets_shown:
        return summary
    return {**summary, "failed_sets": failed[:DEFAULTS.failed_sets_shown],
            "failed_sets_listed": f"{DEFAULTS.failed_sets_shown} of {len(failed)} (summary.json lists every one)"}


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
        lines.append(f"  max ||w - w_hat||        {_num(s['max_dist_w_hat'])} (largest eq. 76 bound "
                     f"{_num(s.get('eq76_bound'))}; sets above their own bound: {s.get('eq76_violations', 'n/a')})")
    lines.append(f"  failed sets              {s['num_failed']}")
    rate = s["sets_computed_this_run"] / s["elapsed_s"] if s["elapsed_s"] > 0 and s["sets_computed_this_run"] else None
    lines.append(f"  time                     {s['elapsed_s']:.2f} s" + (f" ({rate:.0f} sets/s incl. compilation)" if rate else ""))
    if s.get("monotonicity") is not None:
        lines.append(f"  monotonicity index       {_num(s['monotonicity'])} +- {_num(s['monotonicity_se'])} (SE; eq. 34, "
                     f"{s['coupling']} coupling; ties {_num(s['monotonicity_ties'])} counted as no decrease)")
    if args.out:
        lines.append(f"  written                  {args.out}/summary.json, {args.out}/sets.csv")
    print("\n".join(lines))


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4g}"
