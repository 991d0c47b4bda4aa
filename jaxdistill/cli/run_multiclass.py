"""``jaxdistill run`` for K-class tasks, teacher logits and labels
(``jaxdistill.multiclass``).

``cli/run.py`` hands over here when the task is a K-class task (``--task
gaussian --classes K``, or a pool file with a [K, d] ``w_star``,
``teacher_logits`` or ``labels``).  Same output folder layout as the binary
run (manifest, chunks, ``sets.csv``, ``summary.json``); ``summary.json``
adds ``num_classes`` and, with ground-truth labels, ``error_mean``,
``error_se`` and ``teacher_error``.
"""

from __future__ import annotations

import json
import sys


def is_multiclass_task(task) -> bool:
    from ..multiclass.tasks import AbstractMultiClassTask

    return isinstance(task, AbstractMultiClassTask)


def refuse_mixed_without_labels(args) -> None:
    """Binary tasks with a teacher vector have no ground-truth labels: --targets mixed is refused there."""
    from ..validation import JaxDistillError

    if args.soft_ratio is not None and args.targets != "mixed":
        raise JaxDistillError("--soft-ratio applies only to --targets mixed")
    raise JaxDistillError("--targets mixed needs ground-truth labels: use --task pool with a pool file holding "
                          "'labels' [P] (and 'test_labels' [M] with 'test_inputs')")


def softmax_learner_from(learner, args):
    """The K-class learner matching the binary learner built from the options."""
    from ..multiclass.learners import AbstractSoftmaxLearner, make_softmax_learner
    from ..students import ClosedFormLearner, FlowLearner, GDLearner
    from ..validation import JaxDistillError

    if isinstance(learner, AbstractSoftmaxLearner):  # kernel / network students (cli/run_nonlinear.py)
        return learner
    if args.depth > 1:
        raise JaxDistillError("--depth >= 2 applies only to binary tasks with a teacher vector (deep linear students "
                              "of Thm 2); K-class students are linear")
    if isinstance(learner, FlowLearner):
        return make_softmax_learner("flow", flow=learner.flow)
    if isinstance(learner, GDLearner):
        return make_softmax_learner("gd", gd=learner.gd)
    if isinstance(learner, ClosedFormLearner):
        return make_softmax_learner("closed-form")
    raise JaxDistillError(f"method {learner.name!r} has no K-class version")


def check_multiclass_options(args) -> None:
    from ..validation import JaxDistillError

    if args.targets == "hard" and args.temperature is not None:
        raise JaxDistillError("--temperature applies only to --targets soft or mixed")
    if args.targets == "mixed" and args.soft_ratio is None:
        raise JaxDistillError("--targets mixed needs --soft-ratio RHO in [0, 1]")
    if args.soft_ratio is not None and args.targets != "mixed":
        raise JaxDistillError("--soft-ratio applies only to --targets mixed")
    if args.soft_ratio is not None and args.soft_ratio > 1.0:
        raise JaxDistillError(f"--soft-ratio must be in [0, 1], got {args.soft_ratio}")
    if args.risk == "exact":
        pass  # checked against the task below
    if args.wait_timeout is not None:
        raise JaxDistillError("--wait-timeout: multi-host runs (the only runs it applies to) are not supported for "
                              "K-class tasks yet; run on one host, without --wait-timeout")


def main_multiclass(args, task, learner) -> int:
    import jax
    import numpy as np

    from ..multiclass.program import MultiClassResult, setup_multiclass
    from ..multiclass.targets import MultiTargetSpec
    from ..runner import run_program
    from ..runstore import RunStore, write_json, write_sets_csv
    from ..status import STATUS_NAMES
    from ..validation import JaxDistillError
    from .run_estimands import multiclass_monotonicity_summary

    check_multiclass_options(args)
    if jax.process_count() > 1:
        raise JaxDistillError(f"multi-host runs (jax.process_count() = {jax.process_count()} > 1) are not supported "
                              "for K-class tasks (--classes K, --task digits, K-class or teacher-logits pools) yet; "
                              "run on one host (several local devices are used as they are)")
    if args.risk == "exact" and not task.risk_is_exact:
        raise JaxDistillError("--risk exact is not available for this K-class task (Monte-Carlo risk on held-out "
                              "inputs); use --risk mc or auto")
    if args.risk == "mc" and task.risk_is_exact:
        raise JaxDistillError("--risk mc: the risk of a pool task is exact over its test inputs; use --risk auto")
    if args.num_test is not None and task.risk_is_exact:
        raise JaxDistillError("--num-test applies only to Monte-Carlo risk; this pool's risk is exact over its "
                              "test inputs")
    if args.save_students and not args.out:
        raise JaxDistillError("--save-students needs --out (the students are stored in the output folder)")
    soft_learner = softmax_learner_from(learner, args)
    targets = MultiTargetSpec(kind=args.targets, temperature=1.0 if args.temperature is None else args.temperature,
                              soft_ratio=args.soft_ratio)
    setup = setup_multiclass(args.seed, task, args.n, args.num_sets, learner=soft_learner, targets=targets,
                             chunk_size=args.chunk_size, num_test=10_000 if args.num_test is None else args.num_test,
                             keep_students=args.save_students, dtype=args.dtype)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    store = RunStore(args.out, setup.config) if args.out else None
    run = run_program(setup.program, setup.key, setup.plan, shared=setup.shared, dtype=setup.dtype, store=store,
                      progress=not args.quiet, say=say)
    result = MultiClassResult(run.arrays, setup.config, setup.teacher_error, run.elapsed)
    summary = result.summary()
    summary.update(multiclass_monotonicity_summary(args, task, soft_learner, targets,
                                                   store.root / "monotonicity" if store else None))
    summary["sets_computed_this_run"] = run.sets_computed
    summary["num_devices"] = jax.local_device_count()
    summary["num_processes"] = 1
    if store:
        per_set = {k: v for k, v in run.arrays.items() if k != "students"}
        per_set["status_name"] = np.array([STATUS_NAMES[int(s)] for s in per_set["status"]])
        write_sets_csv(store.root / "sets.csv", per_set)
        write_json(store.root / "summary.json", summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _report(task, args, summary)
    if args.strict and summary["num_failed"]:
        print(f"jaxdistill run: --strict: {summary['num_failed']} transfer set(s) failed", file=sys.stderr)
        return 3
    return 0


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _report(task, args, s) -> None:
    from .common import task_label

    cfg = s["config"]
    tgt = cfg["targets"] + (f", T={cfg['temperature']:g}" if cfg["targets"] != "hard" else "") + (
        f", rho={cfg['soft_ratio']:g}" if cfg["soft_ratio"] is not None else "")
    lines = [
        f"jaxdistill run: {task_label(task)}, n={args.n}, {s['num_sets_requested']} transfer sets, "
        f"method {cfg['method']}, {s['num_classes']} classes, targets {tgt}",
        f"  expected transfer risk   {_num(s['risk_mean'])} +- {_num(s['risk_se'])} (SE; argmax disagreement with "
        f"the teacher, {s['risk_method']} risk over {s['num_sets']} sets)",
    ]
    if "error_mean" in s:
        lines.append(f"  test error (labels)      {_num(s['error_mean'])} +- {_num(s['error_se'])} (SE; teacher's own "
                     f"error {_num(s['teacher_error'])})")
    if s.get("max_rel_dist_closed_form") is not None:
        lines.append(f"  max ||W - W_hat||/||W_hat||  {s['max_rel_dist_closed_form']:.3e}")
    lines.append(f"  failed sets              {s['num_failed']}" + (
        "" if not s["num_failed"] else " (first: " + ", ".join(f"#{f['index']} {f['status']}" for f in s["failed_sets"][:5]) + ")"))
    lines.append(f"  time                     {s['elapsed_s']:.2f} s")
    if s.get("monotonicity") is not None:
        lines.append(f"  monotonicity index       {_num(s['monotonicity'])} +- {_num(s['monotonicity_se'])} (SE; "
                     f"{s['monotonicity_kind']} kind, {s['coupling']} coupling; ties {_num(s['monotonicity_ties'])} "
                     "counted as no decrease)")
    if args.out:
        lines.append(f"  written                  {args.out}/summary.json, {args.out}/sets.csv")
    print("\n".join(lines))
