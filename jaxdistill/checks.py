"""Theorem checks a user can run on any batch, with a readable report.

(A layer above ``simulate``: the Thm 3 check distils transfer sets.)

* Lemma 1 (strong monotonicity, eq. 24): on nested sets X subset [X; x],
  the distilled student's unsigned angle to w* never increases.
* Theorem 3 (eq. 18, 19): the bound is >= the estimated expected transfer
  risk, up to the estimate's margin of error (z standard errors).

Each check returns a ``CheckResult`` (``passed``, the numbers behind it and
``str(result)``, a one-paragraph report); ``run_checks`` runs both and
``format_report`` joins the reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .analysis.bounds import thm3_bound
from .analysis.monotonicity import MonotonicityEstimate, monotonicity_from_angles, monotonicity_index
from .analysis.ptheta import p_function
from .analysis.risk import expected_risk
from .simulate import distill
from .students.base import ClosedFormLearner
from .tasks import Task
from .validation import JaxDistillError, check_int, check_real


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one theorem check.

    Attributes:
        name: what was checked (e.g. "Lemma 1 (eq. 24)").
        passed: True when the data agree with the theorem.
        details: the numbers behind the verdict (JSON-able).
        message: one readable paragraph.
    """

    name: str
    passed: bool
    details: dict = field(default_factory=dict)
    message: str = ""

    def __str__(self) -> str:
        return f"[{'PASS' if self.passed else 'FAIL'}] {self.name}: {self.message}"


def check_lemma1_from_angles(angle_X, angle_plus, mask=None, *, tol: float = 1e-6, label: str = "") -> CheckResult:
    """Lemma 1 on a batch: alpha-bar(w*, w([X; x])) <= alpha-bar(w*, w(X)) + tol for every pair.

    ``tol`` (radians) absorbs the learner's numerical error (the gradient
    flow stops at a relative distance ~newton_tol from its limit).
    """
    tol = check_real("tol", tol, ge=0.0)
    est = monotonicity_from_angles(angle_X, angle_plus, mask)
    return _lemma1_result(est, tol, label)


def _lemma1_result(est: MonotonicityEstimate, tol: float, label: str) -> CheckResult:
    if est.num_sets == 0:
        return CheckResult("Lemma 1 (strong monotonicity, eq. 24)", False, {"num_sets": 0},
                           f"no successful pairs to check{label}")
    ch = est.angle_changes
    worst = float(np.max(ch))
    violations = int(np.sum(ch > tol))
    strict = int(np.sum(ch < 0))
    passed = violations == 0
    details = {"num_sets": est.num_sets, "num_failed": est.num_failed, "violations": violations, "tol": tol,
               "max_angle_change": worst, "index": est.index, "index_se": est.se,
               "angle_change_mean": est.angle_change_mean, "angle_change_se": est.angle_change_se}
    msg = (f"{est.num_sets} nested pairs{label}: the angle to w* "
           + ("never increased" if passed else f"increased by more than {tol:g} rad in {violations} pair(s)")
           + f" (largest change {worst:+.3e} rad, tolerance {tol:g}); strictly decreased in {strict}/{est.num_sets} "
           f"(monotonicity index {est.index:.4f} +- {est.se:.4f}); mean change {est.angle_change_mean:+.4e} "
           f"+- {est.angle_change_se:.1e} rad"
           + (f"; {est.num_failed} pair(s) failed to fit and were left out" if est.num_failed else ""))
    return CheckResult("Lemma 1 (strong monotonicity, eq. 24)", passed, details, msg)


def check_lemma1(key, task: Task, n: int, num_sets: int, learner=None, *, tol: float = 1e-6, **kwargs) -> CheckResult:
    """Lemma 1 for a learner (default: the gradient flow) on ``num_sets`` nested pairs."""
    tol = check_real("tol", tol, ge=0.0)
    est = monotonicity_index(key, task, n, num_sets, learner, **kwargs)
    name = getattr(learner, "name", "flow") if learner is not None else "flow"
    return _lemma1_result(est, tol, f" ({name} learner, n={n} -> {n + 1}, d={task.d})")


def check_thm3_from_risks(p_fn, n: int, d: int, risks, mask=None, *, z: float = 3.0, label: str = "") -> CheckResult:
    """Thm 3 on a batch of per-set risks of distilled students trained on n inputs.

    Passes when bound >= mean - z * SE, i.e. the data show no significant
    violation (one-sided test at z standard errors).
    """
    n = check_int("n", n, minimum=1)
    z = check_real("z", z, ge=0.0)
    est = expected_risk(risks, mask)
    if est.num_sets == 0:
        raise JaxDistillError("check_thm3_from_risks: no successful sets (all masked out)")
    b = thm3_bound(p_fn, n, d)
    bound, beta, tight = float(b.bound), float(b.beta), float(b.bound_tight)
    se = est.se if math.isfinite(est.se) else 0.0
    margin = z * se
    passed = bound >= est.mean - margin
    details = {"n": n, "d": d, "bound": bound, "beta": None if math.isnan(beta) else beta, "bound_tight": tight,
               "risk_mean": est.mean, "risk_se": est.se, "num_sets": est.num_sets, "z": z,
               "slack": bound - est.mean}
    where = "n >= d, eq. 18" if n >= d else f"eq. 19 at beta = {beta:.4f}"
    msg = (f"n={n}, d={d}{label}: bound {bound:.4e} ({where}; sharper form {tight:.4e}) vs expected risk "
           f"{est.mean:.4e} +- {est.se:.1e} (SE, {est.num_sets} sets); "
           + (f"bound - risk = {bound - est.mean:+.3e}" if passed else
              f"the risk exceeds the bound by {est.mean - bound:.3e} > {z:g} SE = {margin:.3e}"))
    return CheckResult("Theorem 3 (eq. 18-19)", passed, details, msg)


def check_thm3(key, task: Task, n: int, num_sets: int, learner=None, *, z: float = 3.0, p_fn=None,
               p_key=None, **distill_kwargs) -> CheckResult:
    """Thm 3 by simulation: distill ``num_sets`` sets (default learner: the closed
    form, the flow's exact limit) and compare their expected risk with the bound.

    p_fn defaults to the task's exact p (or the empirical p of 100,000 sampled angles).
    """
    learner = learner if learner is not None else ClosedFormLearner()
    res = distill(key, task, n, num_sets, learner=learner, keep_students=False, **distill_kwargs)
    p_fn = p_fn if p_fn is not None else p_function(task, key=p_key)
    return check_thm3_from_risks(p_fn, n, task.d, res.risk, res.ok, z=z,
                                 label=f", {learner.name} learner, {res.risk_method} risk")


def run_checks(key, task: Task, n: int, num_sets: int, *, flow_learner=None, risk_learner=None,
               z: float = 3.0, tol: float = 1e-6) -> list[CheckResult]:
    """Lemma 1 (flow learner) and Thm 3 (closed form by default) on one task."""
    return [
        check_lemma1(key, task, n, num_sets, flow_learner, tol=tol),
        check_thm3(key, task, n, num_sets, risk_learner, z=z),
    ]


def format_report(results: list[CheckResult]) -> str:
    """A readable multi-line report of several checks."""
    ok = sum(r.passed for r in results)
    return "\n".join([f"theorem checks: {ok}/{len(results)} passed"] + [f"  {r}" for r in results])


__all__ = ["CheckResult", "check_lemma1", "check_lemma1_from_angles", "check_thm3", "check_thm3_from_risks",
           "run_checks", "format_report"]
