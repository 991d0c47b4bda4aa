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
