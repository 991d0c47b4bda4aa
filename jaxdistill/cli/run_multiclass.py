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

from .common import targets_of



def is_multiclass_task(task) -> bool:
    from ..multiclass.tasks import AbstractMultiClassTask

    return isinstance(task, AbstractMultiClassTask)


def refuse_mixed_without_labels(args) -> None:
    """Binary tasks with a teacher vector have no ground-truth labels: --targets mixed is refused there."""
    from ..validation import JaxDistillError

    if args.soft_ratio is not None and targets_of(args) != "mixed":
        raise JaxDistillError("--soft-ratio applies only to --targets mixed")
    raise JaxDistillError("--targets mixed needs ground-truth labels: use --task pool with a pool file holding "
                          "'labels' [P] (and 'test_labels' [M] with 'test_inputs')")


def check_multiclass_options(args) -> None:
    from ..validation import JaxDistillError

    if targets_of(args) == "hard" and args.temperature is not None:
        raise JaxDistillError("--temperature applies only to --targets soft or mixed")
    if targets_of(args) == "mixed" and args.soft_ratio is None:
        raise JaxDistillError("--targets mixed needs --soft-ratio RHO in [0, 1]")
    if args.soft_ratio is not None and targets_of(args) != "mixed":
        raise JaxDistillError("--soft-ratio applies only to --targets mixed")
    if args.soft_ratio is not None and args.soft_ratio > 1.0:
        raise JaxDistillError(f"--soft-ratio must be in [0, 1], got {args.soft_ratio}")
    if args.depth > 1:
        raise JaxDistillError("--depth >= 2 applies only to binary tasks with a teacher vector (deep linear students "
                              "of Thm 2); K-class students are linear")


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def multiclass_report(task, args, s) -> None:
    from .common import task_label, written_line

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
        lines.append(f"  max ||W - W_hat||/||W_hat||  {s['max_rel_dist_closed_form']:.3e} (W_hat: the flow's limit, "
                     f"{s['closed_form_reference'].replace('_', ' ')})")
    lines.append(f"  failed sets              {s['num_failed']}")
    lines.append(f"  time                     {s['elapsed_s']:.2f} s")
    if s.get("monotonicity") is not None:
        lines.append(f"  monotonicity index       {_num(s['monotonicity'])} +- {_num(s['monotonicity_se'])} (SE; "
                     f"{s['monotonicity_kind']} kind, {s['coupling']} coupling; ties {_num(s['monotonicity_ties'])} "
                     "counted as no decrease)")
    if args.out:
        lines.append(written_line(args))
    print("\n".join(lines))
