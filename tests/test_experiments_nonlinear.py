"""Issue 13 point 5: ``jaxdistill reproduce nonlinear`` (quick mode)."""

from __future__ import annotations

import csv
import math

from jaxdistill.experiments import EXPERIMENTS, get, nonlinear


def _z(a, b):
    """z-score of a - b for two independent estimates (rows with risk_mean, risk_se)."""
    return (a["risk_mean"] - b["risk_mean"]) / math.hypot(a["risk_se"], b["risk_se"])


def test_nonlinear_quick(tmp_path):
    assert "nonlinear" in EXPERIMENTS and get("nonlinear") is nonlinear
    rows = nonlinear.run(tmp_path, quick=True, progress=False)
    with open(tmp_path / "nonlinear.csv") as f:
        assert next(csv.reader(f)) == list(nonlinear.COLUMNS)
    assert (tmp_path / "nonlinear.png").stat().st_size > 0
    assert len(rows) == len(nonlinear.QUICK_STUDENTS) * 2 * len(nonlinear.QUICK_NS)
    by = {(r["student"], r["targets"], r["n"]): r for r in rows}
    for r in rows:
        assert 0.0 <= r["risk_mean"] <= 1.0 and r["risk_se"] > 0 and r["num_sets"] == 48 and r["num_failed"] == 0
        assert 0.0 <= r["monotonicity"] <= 1.0 and r["monotonicity_se"] > 0 and r["monotonicity_sets"] == 48
        assert math.isclose(r["monotonicity"] + r["monotonicity_ties"] + r["monotonicity_increases"], 1.0)
        # soft targets: the closed form (converged); hard: the flow stopped at its horizon
        assert r["status"] == ("converged:48" if r["targets"] == "soft" else "finite_horizon:48")
        assert (r["horizon"] is None) == (r["targets"] == "soft")
    lo, hi = nonlinear.QUICK_NS
    soft_lo, soft_hi, hard_hi = by[("rbf", "soft", lo)], by[("rbf", "soft", hi)], by[("rbf", "hard", hi)]
    # the kernel student's soft-target risk falls with n, by many SE
    assert _z(soft_lo, soft_hi) > 5
    # at the largest n soft targets beat hard ones (stopped at t = HORIZON), by many SE
    assert _z(hard_hi, soft_hi) > 5
    again = nonlinear.run(tmp_path, quick=True, progress=False)
    assert again == rows  # resumed from the stored points


def _former_point(student: str, targets: str, n: int, num_sets: int, num_test: int) -> tuple:
    """(risk_mean, risk_se, monotonicity, monotonicity_ties) of a point as nonlinear.py computed it before its
    points were ``jaxdistill run`` options: distill and risk_monotonicity_index of the learner built directly."""
    from jaxdistill.multiclass import MultiTargetSpec, make_softmax_learner
    from jaxdistill.nonlinear import ReluTeacherTask, make_mlp_learner, risk_monotonicity_index
    from jaxdistill.simulate import distill
    from jaxdistill.students import FlowConfig
    from jaxdistill.students.discrete import GDConfig

    if student == "mlp":
        learner = make_mlp_learner(nonlinear.MLP_WIDTH, gd=GDConfig(learning_rate=nonlinear.MLP_LR, steps=100))
    else:
        learner = make_softmax_learner("flow", flow=FlowConfig(t_end=nonlinear.HORIZON) if targets == "hard" else None)
    task = ReluTeacherTask(nonlinear.D, nonlinear.TEACHER_WIDTH, nonlinear.K, seed=0)
    spec = MultiTargetSpec(targets)
    chunk = 1 if targets == "hard" and student != "mlp" else num_sets
    est = distill(0, task, n, num_sets, learner=learner, targets=spec, num_test=num_test, chunk_size=chunk,
                  keep_students=False).expected_risk()
    mono = risk_monotonicity_index(0, task, n, num_sets, learner, spec, num_test=num_test,
                                   chunk_size=max(chunk // 2, 1))
    return est.mean, est.se, float(mono.index), float(mono.ties)


def test_the_sweep_points_are_the_former_computation_of_every_student_kind(tmp_path):
    rows = nonlinear.run(tmp_path, progress=False, students=("linear", "mlp"), ns=(5,), num_sets=4, mlp_num_sets=4,
                         num_test=200)
    assert [(r["student"], r["targets"]) for r in rows] == [(s, t) for s in ("linear", "mlp") for t in ("soft", "hard")]
    for r in rows:
        former = _former_point(r["student"], r["targets"], 5, 4, 200)
        assert (r["risk_mean"], r["risk_se"], r["monotonicity"], r["monotonicity_ties"]) == former
        assert math.isclose(r["monotonicity"] + r["monotonicity_ties"] + r["monotonicity_increases"], 1.0)
    assert (tmp_path / "nonlinear_sweep" / "mlp_hard_sweep" / "sweep.csv").exists()
