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
local devices).  Several hosts: run the same command in every process with
``--coordinator HOST:PORT --num-processes P --process-id I`` (or JAX's
environment) and a shared ``--out``; process i of P computes the chunks
c with c % P == i (of the run and of ``--monotonicity``'s pairs) and
process 0 writes the summary (``jaxdistill.hosts``).
"""

from __future__ import annotations

import json
import math
import sys

from ..defaults import DEFAULTS
from ..students.discrete import OPTIMISERS
from ..students.flow_config import SOLVER_NAMES
from .common import add_task_arguments, finite_float, nonnegative_int, positive_int, task_label, written_line
from .hosts import add_host_options
from .run_estimands import add_estimand_arguments, monotonicity_summary, multiclass_monotonicity_summary
from .run_nonlinear import add_student_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="simulate distillation on many transfer sets",
                       description="Sample transfer sets from a task, train a student on each (closed form, "
                                   "gradient flow or an optax optimiser) and estimate the expected transfer risk. "
                                   "Every option either takes effect or is refused with a message saying when it "
                                   "applies.")
    add_run_arguments(p)
    p.set_defaults(func=main)


def add_run_arguments(p) -> None:
    """Every option of ``jaxdistill run`` (also the options of ``jaxdistill sweep``)."""
    add_task_arguments(p)
    p.add_argument("--n", type=positive_int("--n"), default=DEFAULTS.n,
                   help=f"transfer-set size n >= 1 (default {DEFAULTS.n})")
    p.add_argument("--num-sets", type=positive_int("--num-sets"), default=DEFAULTS.num_sets,
                   help=f"number of transfer sets B (default {DEFAULTS.num_sets})")
    p.add_argument("--method", choices=("closed-form", "flow", "gd"), default=None,
                   help="closed-form (Thm 1; depth 1 only), flow (gradient flow, eq. 3; default) or gd (optax); "
                        "with --depth >= 2, flow or gd trains the deep factors; with --learner wdelta how w_hat is "
                        "computed (closed-form, the default there, or flow)")
    p.add_argument("--seed", type=nonnegative_int("--seed", maximum=2**63 - 1), default=DEFAULTS.seed,
                   help="PRNG seed >= 0 (default 0); set i uses fold_in(seed key, i)")
    p.add_argument("--out", default=None, help="output folder (resumable); nothing is written without it")
    p.add_argument("--chunk-size", type=positive_int("--chunk-size"), default=None,
                   help="sets per compiled chunk (default: on the CPU bounded memory, at most 256; on a GPU or TPU "
                        "as many as fit in a quarter of the smallest device's memory, at most 65536 per device)")
    p.add_argument("--targets", choices=("soft", "hard", "mixed"), default=None,
                   help=f"teacher targets (default {DEFAULTS.targets}); mixed = rho softmax(u / T) + (1 - rho) onehot(label) needs "
                        "ground-truth labels (a pool file with 'labels'); a flow on hard targets needs --t-end "
                        "(no steady state)")
    p.add_argument("--temperature", type=finite_float("--temperature", gt=0.0), default=None,
                   help="temperature T > 0 of soft targets sigma(w*.x / T) (default 1; soft and mixed targets only)")
    p.add_argument("--soft-ratio", type=finite_float("--soft-ratio", ge=0.0), default=None,
                   help="rho in [0, 1] of --targets mixed (1: soft, 0: the ground-truth labels)")
    g = p.add_argument_group("gradient flow (--method flow)")
    g.add_argument("--solver", choices=SOLVER_NAMES, default=None, help="ODE solver: Rodas3 (the default; jaxdistill's Rosenbrock solver) or a diffrax solver name; "
                        "deep students default to Kvaerno3 (--integrator reduced) and Kvaerno5 (induced/full), see "
                        "students.deep.default_flow_config")
    g.add_argument("--rtol", type=finite_float("--rtol", gt=0.0, lt=1.0), default=None,
                   help="PID step-size controller rtol (default 1e-2; deep --integrator induced/full: 1e-8 with "
                        "Kvaerno5, see students.deep.default_flow_config)")
    g.add_argument("--atol", type=finite_float("--atol", gt=0.0), default=None,
                   help="PID step-size controller atol (default 1e-5; deep --integrator induced/full: 1e-14)")
    g.add_argument("--newton-tol", type=finite_float("--newton-tol", gt=0.0, lt=1.0), default=None,
                   help="stop when the Newton step is below this times ||w|| (default 1e-9)")
    g.add_argument("--max-steps", type=positive_int("--max-steps"), default=None, help="solver step limit (default 4096; deep --integrator induced/full: 16384)")
    g.add_argument("--t-end", type=finite_float("--t-end", gt=0.0), default=None,
                   help="finite training time: integrate the flow to exactly t = T (status finite_horizon; the "
                        "student at time T, not the limit); default: train to the steady state; required for a "
                        "flow on hard targets (or --learner hard-max-margin, their t -> infinity direction)")
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
    g.add_argument("--width", type=positive_int("--width"), default=None, help=f"hidden width of the factors of deep students trained by --integrator full or "
                        f"--method gd (default {DEFAULTS.deep_width}; the reduced and induced flows never form "
                        f"them), or of --student mlp (default {DEFAULTS.mlp_width})")
    g.add_argument("--init-scale", type=finite_float("--init-scale", gt=0.0), default=None,
                   help="||w(0)|| of deep students (default: from eq. 11 with --epsilon)")
    g.add_argument("--epsilon", type=finite_float("--epsilon", gt=0.0), default=None,
                   help="target accuracy epsilon of Thm 2 (eq. 11, 15)")
    g.add_argument("--integrator", choices=("reduced", "induced", "full"), default=None,
                   help="deep flow integrator: reduced (docs/design.md fact 2; default), induced (eq. 56) or full "
                        "W_1..W_N (--method flow only)")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--risk", choices=("auto", "exact", "mc"), default=DEFAULTS.risk,
                   help="transfer risk: exact where the task allows (default auto) or Monte-Carlo")
    g.add_argument("--num-test", type=positive_int("--num-test"), default=None,
                   help="held-out inputs for Monte-Carlo risk (default 10000; MC risk only)")
    g.add_argument("--dtype", choices=("float64", "float32"), default=DEFAULTS.dtype,
                   help="float64 (default) or float32 (flows then stop at newton_tol >= 1e-5; relative distance to the "
                        "float64 closed form: median ~5e-6, 99%% of sets within 1e-4 at d = 1000, n = 20)")
    g.add_argument("--save-students", action="store_true",
                   help="also store the students (w [B, d]; K-class W [B, K, d]; kernel students their feature "
                        "coordinates [B, K, n]) in the chunk files of --out and in --out/students.npy (row i = set "
                        "i; NaN rows for failed sets)")
    g.add_argument("--sampler", choices=("auto", "gram", "inputs"), default=DEFAULTS.sampler,
                   help="auto (default): gram where it applies, else inputs; gram: draw each set's Gram matrix "
                        "X X^T and teacher logits directly, O(n^2) whatever d (kappa, margin and gaussian tasks, "
                        "--depth 1 flow or closed-form or --learner wdelta, exact risk, n < d, no --save-students; "
                        "refused elsewhere; the --monotonicity pairs of --learner wdelta need the inputs); "
                        "inputs: draw the inputs X [n, d] (docs/design.md fact 13)")
    g.add_argument("--strict", action="store_true", help="exit with status 3 if any transfer set failed")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no resume/progress messages")
    g.add_argument("--json", action="store_true",
                   help="print summary.json instead of the readable report (failed_sets listed up to "
                        f"{DEFAULTS.failed_sets_shown}; summary.json keeps them all)")
    add_estimand_arguments(p)
    add_student_arguments(p)
    add_host_options(p)


def main(args) -> int:
    from .hosts import initialize_from_args
    from ..results import describe_failures, write_run_files
    from ..runner import run_program
    from ..runstore import RunStore
    from .run_multiclass import multiclass_report

    hosts = initialize_from_args(args)  # before anything touches a JAX backend
    setup = setup_from_args(args)
    task, multiclass = setup.task, setup.multiclass
    plan = setup.plan
    if hosts.several and not args.out:
        from ..validation import JaxDistillError

        raise JaxDistillError(f"a multi-host run ({hosts.process_count} processes) needs --out on a filesystem "
                              "shared by all processes")
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    store = RunStore(args.out, setup.config) if args.out else None
    if hosts.several:
        say(f"process {hosts.process_index} of {hosts.process_count}: computing the chunks c with "
            f"c % {hosts.process_count} == {hosts.process_index}")
    run = run_program(setup.program, setup.key, plan, shared=setup.shared, dtype=setup.dtype, store=store,
                      progress=not args.quiet, say=say, hosts=hosts)
    info = estimand_info(args, setup, store.root if store else None, hosts)  # every process: its chunks of the pairs
    if not run.merged:
        say(f"process {hosts.process_index} of {hosts.process_count}: done; process 0 writes {args.out}/summary.json")
        return 0
    result = setup.result(run)
    result.info.update(info)
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


def setup_from_args(args):
    """The ``simulate.RunSetup`` of parsed ``run`` options: ``spec.run_spec``
    (every option used or refused) then ``simulate.setup_run`` (used by
    ``jaxdistill run`` and by each point of ``jaxdistill sweep``)."""
    from ..simulate import setup_run
    from .spec import run_spec

    spec = run_spec(args)
    return setup_run(args.seed, spec.task, args.n, args.num_sets, learner=spec.learner, targets=spec.targets,
                     chunk_size=args.chunk_size, risk=args.risk, num_test=args.num_test,
                     keep_students=args.save_students, dtype=args.dtype, sampler=args.sampler)


def estimand_info(args, setup, out_dir=None, hosts=None) -> dict:
    """The summary keys of the estimands beside the run (``--monotonicity``,
    stored under ``out_dir/monotonicity`` when given); {} without them (and
    on the processes other than 0 of a multi-host run, ``hosts``, which
    compute their chunks of the estimand's run)."""
    mono_dir = None if out_dir is None else out_dir / "monotonicity"
    if setup.multiclass:
        return multiclass_monotonicity_summary(args, setup.task, setup.learner, setup.targets, mono_dir, hosts)
    return monotonicity_summary(args, setup.task, setup.learner, setup.targets, mono_dir, hosts)


def printable_summary(summary: dict) -> dict:
    """summary.json for printing: at most ``DEFAULTS.failed_sets_shown``
    failed sets listed (``failed_sets_listed`` says how many of how many;
    summary.json keeps them all)."""
    failed = summary["failed_sets"]
    if len(failed) <= DEFAULTS.failed_sets_shown:
        return summary
    return {**summary, "failed_sets": failed[:DEFAULTS.failed_sets_shown],
            "failed_sets_listed": f"{DEFAULTS.failed_sets_shown} of {len(failed)} (summary.json lists every one)"}


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
        lines.append(written_line(args))
    print("\n".join(lines))


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4g}"
