"""``jaxdistill run`` options that make an estimand explicit: which learner
(``--learner``, ``--delta``), the monotonicity index of the same learner on
the same sets (``--monotonicity``, ``--monotonicity-kind``, ``--coupling``), students written to
``students.npy`` (``--save-students``).

Kept apart from ``run.py`` (which calls these functions) so that each
option's meaning, default and refusals are in one place.
"""

from __future__ import annotations

import argparse

from ..analysis.monotonicity import COUPLINGS, MONOTONICITY_KINDS
from .common import finite_float, refuse_inapplicable

LEARNERS = ("distill", "wdelta", "hard-max-margin", "hard-gd")
HARD_LEARNERS = ("hard-max-margin", "hard-gd")
# Default kind for binary linear students (eq. 34: the unsigned student-teacher angle strictly decreases); students
# without a teacher vector (K-class tasks, kernel / network students) have only "risk" (docs/design.md fact 12).
MONOTONICITY_KIND = "angle"


def add_estimand_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("learner and estimands")
    g.add_argument("--learner", choices=LEARNERS, default="distill",
                   help="distill (default: the student of --method / --depth on the teacher's targets); wdelta "
                        "(reduced-bias w_delta of section 5.2, needs --delta; w_hat by --method closed-form (default) "
                        "or flow); hard-max-margin (hard-target learner in its long-run limit, the max-margin "
                        "separator); hard-gd (finite-time gradient descent on the hard labels, --lr/--steps/"
                        "--optimizer; default lr 1, 10000 steps).  The hard-target learners train on the teacher's "
                        "hard labels (--targets hard is implied).  Depth 1 only")
    g.add_argument("--delta", type=finite_float("--delta"), default=None,
                   help="delta of --learner wdelta: w_hat + delta ||w_hat|| q / ||q||, q a Gaussian direction "
                        "orthogonal to the data (required there, refused elsewhere)")
    g.add_argument("--monotonicity", action="store_true",
                   help="also estimate the monotonicity index of the same learner on the same task, n, number of "
                        "sets and seed (nested sets X and [X, x]): by the angle to the teacher vector (eq. 34) or by "
                        "the transfer risk (--monotonicity-kind); adds monotonicity, monotonicity_se, "
                        "monotonicity_ties (share of ties, counted as no decrease), monotonicity_atol (the tie "
                        "tolerance: 10 x newton_tol for a flow, 1e-12 for exact learners), monotonicity_kind and "
                        "coupling to summary.json")
    g.add_argument("--monotonicity-kind", choices=MONOTONICITY_KINDS, default=None,
                   help="with --monotonicity: angle (default for binary linear students; eq. 34, the unsigned angle "
                        "to w* strictly decreases) or risk (the transfer risk strictly decreases, both students' "
                        "risks on the same held-out inputs; the only kind for K-class tasks and kernel / mlp "
                        "students, which have no angle to a teacher vector)")
    g.add_argument("--coupling", choices=COUPLINGS, default=None,
                   help="with --monotonicity and a randomised learner (--learner wdelta, --depth >= 2, --student "
                        "mlp; refused for the others, which ignore their key): shared (default) = the learner reuses "
                        "its random draw for X and [X, x]; independent = a fresh draw for [X, x].  Different "
                        "estimands (w_delta at delta 1/16, kappa 1, d 100, n 5: 0.88 shared, 0.73 independent; "
                        "docs/experiments.md)")


def estimand_learner(args, method: str | None, flow_options: dict, gd_options: dict):
    """The learner of ``--learner`` (None for ``distill``: ``spec.linear_learner``
    builds it), after refusing the options that do not apply.  ``method``
    is the run's training method (``spec.method_of``: w_hat's for w_delta,
    None for the hard-target learners)."""
    from ..students import FlowConfig, GDConfig, solver_from_name
    from ..students.hard import HardTargetLearner
    from ..students.base import ClosedFormLearner, FlowLearner
    from ..students.wdelta import WDeltaLearner
    from ..validation import JaxDistillError

    if args.delta is not None and args.learner != "wdelta":
        raise JaxDistillError(f"--delta applies only to --learner wdelta; it has no effect with --learner {args.learner}")
    if args.coupling is not None and not args.monotonicity:
        raise JaxDistillError("--coupling applies only with --monotonicity (it chooses the random draw of the "
                              "second fit of each nested pair)")
    if args.monotonicity_kind is not None and not args.monotonicity:
        raise JaxDistillError("--monotonicity-kind applies only with --monotonicity")
    if args.learner == "distill":
        return None
    if getattr(args, "t_end", None) is not None:
        raise JaxDistillError(f"--t-end applies only to --learner distill (--learner {args.learner} is defined by "
                              "a converged or fixed-length training of its own)")
    if args.depth > 1:
        raise JaxDistillError(f"--learner {args.learner} applies only to --depth 1 (linear students); deep students "
                              "use --learner distill")
    if args.learner == "wdelta":
        if args.delta is None:
            raise JaxDistillError("--learner wdelta needs --delta (the weight of the orthogonal direction)")
        if method == "gd":
            raise JaxDistillError("--method gd does not apply to --learner wdelta (w_hat comes from --method "
                                  "closed-form or flow)")
        refuse_inapplicable(args, flow_options, method, "--method")
        refuse_inapplicable(args, gd_options, method, "--method")
        base = FlowLearner(FlowConfig(**_flow_kwargs(args, solver_from_name))) if method == "flow" else ClosedFormLearner()
        return WDeltaLearner(delta=args.delta, base=base)
    kind = "max-margin" if args.learner == "hard-max-margin" else "gd"
    refuse_inapplicable(args, flow_options, kind, "--method")
    refuse_inapplicable(args, gd_options, kind, "--method")
    if args.targets not in (None, "hard"):
        raise JaxDistillError(f"--learner {args.learner} trains on the teacher's hard labels: --targets {args.targets} "
                              "does not apply (give --targets hard, or leave it out)")
    if args.temperature is not None:
        raise JaxDistillError(f"--learner {args.learner} trains on the teacher's hard labels: --temperature does not "
                              "apply")
    if kind == "max-margin":
        return HardTargetLearner(method="max-margin")
    kw = {k: v for k, v in {"learning_rate": args.lr, "steps": args.steps, "optimizer": args.optimizer}.items()
          if v is not None}
    return HardTargetLearner(method="gd", gd=GDConfig(**kw) if kw else None)


def _flow_kwargs(args, solver_from_name) -> dict:
    kw = {k: v for k, v in {"rtol": args.rtol, "atol": args.atol, "newton_tol": args.newton_tol,
                            "max_steps": args.max_steps, "coordinates": args.coordinates}.items() if v is not None}
    if args.solver is not None:
        kw["solver"] = solver_from_name(args.solver)
    return kw


def check_estimand_task(args, task, is_multiclass: bool) -> None:
    """--learner other than distill needs a binary task with a teacher vector;
    --monotonicity-kind angle needs a binary linear student (an angle to w*)."""
    from ..validation import JaxDistillError

    if is_multiclass and args.learner != "distill":
        raise JaxDistillError("--learner (other than distill) applies only to binary tasks with a teacher vector")
    if args.monotonicity_kind == "angle" and not has_teacher_angle(args, is_multiclass):
        raise JaxDistillError("--monotonicity-kind angle needs a binary task with a teacher vector and a linear "
                              "student (the angle of eq. 34); K-class tasks and kernel / mlp students have only "
                              "--monotonicity-kind risk")


def has_teacher_angle(args, is_multiclass: bool) -> bool:
    """True when the run's students have an angle to a teacher vector: binary
    tasks with w* and linear students (``--student`` other than linear, once
    wired, has none)."""
    return not is_multiclass and getattr(args, "student", None) in (None, "linear")


def monotonicity_kind(args, is_multiclass: bool) -> str:
    """The kind of ``--monotonicity``: ``--monotonicity-kind`` when given, else
    angle where the students have one (binary linear), else risk."""
    if args.monotonicity_kind is not None:
        return args.monotonicity_kind
    return MONOTONICITY_KIND if has_teacher_angle(args, is_multiclass) else "risk"


def monotonicity_summary(args, task, learner, targets, out_dir=None, hosts=None) -> dict:
    """With ``--monotonicity`` on a binary task: ``analysis.monotonicity_index``
    of ``learner`` (kind of ``monotonicity_kind``) on the run's task, n, number
    of sets, seed, risk and dtype; the keys added to summary.json.  Without
    it, and on the processes other than 0 of a multi-host run (``hosts``:
    they compute their chunks of the pairs): {}."""
    if not args.monotonicity:
        return {}
    from ..analysis.monotonicity import monotonicity_index

    kind = monotonicity_kind(args, is_multiclass=False)
    coupling = "shared" if args.coupling is None else args.coupling
    est = monotonicity_index(args.seed, task, args.n, args.num_sets, learner, targets, chunk_size=args.chunk_size,
                             risk=args.risk, num_test=args.num_test,
                             dtype=args.dtype, progress=not args.quiet, coupling=coupling, kind=kind,
                             sampler=args.sampler,
                             out=None if out_dir is None else str(out_dir), hosts=hosts)
    return {} if est is None else _monotonicity_keys(est, kind, coupling)


def multiclass_monotonicity_summary(args, task, learner, targets, out_dir=None, hosts=None) -> dict:
    """With ``--monotonicity`` on a K-class task (any ``AbstractSoftmaxLearner``:
    linear, kernel, network students): ``nonlinear.risk_monotonicity_index`` on
    the run's task, n, number of sets, seed, held-out size and dtype (the risk
    kind: there is no teacher vector); the keys added to summary.json.
    Without it, and on the processes other than 0 of a multi-host run: {}."""
    if not args.monotonicity:
        return {}
    from ..nonlinear.monotonicity import risk_monotonicity_index

    coupling = "shared" if args.coupling is None else args.coupling
    num_test = None if task.risk_is_exact else (10_000 if args.num_test is None else args.num_test)
    est = risk_monotonicity_index(args.seed, task, args.n, args.num_sets, learner, targets, coupling=coupling,
                                  num_test=num_test, chunk_size=args.chunk_size, dtype=args.dtype,
                                  out=None if out_dir is None else str(out_dir), progress=not args.quiet,
                                  hosts=hosts)
    return {} if est is None else _monotonicity_keys(est, "risk", coupling)


def _monotonicity_keys(est, kind: str, coupling: str) -> dict:
    s = est.summary()
    out = {"monotonicity": s["index"], "monotonicity_se": s["se"], "monotonicity_ties": s["ties"],
           "monotonicity_num_sets": s["num_sets"], "monotonicity_num_failed": s["num_failed"],
           "monotonicity_kind": kind, "coupling": coupling, "monotonicity_atol": s["atol"]}
    if kind == "angle":
        out["monotonicity_nonincreasing"] = s["nonincreasing"]
    else:
        out["monotonicity_nonincreasing"] = None if s["increases"] is None else 1.0 - s["increases"]
        out["monotonicity_risk_method"] = s["risk_method"]
        out["monotonicity_risk_change_mean"] = s["risk_change_mean"]
        out["monotonicity_risk_change_se"] = s["risk_change_se"]
    return out


__all__ = ["LEARNERS", "MONOTONICITY_KIND", "add_estimand_arguments", "estimand_learner", "check_estimand_task",
           "has_teacher_angle", "monotonicity_kind", "monotonicity_summary", "multiclass_monotonicity_summary"]
