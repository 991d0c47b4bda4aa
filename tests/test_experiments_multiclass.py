"""Issue 12 experiments: ``jaxdistill reproduce temperature`` and ``softratio`` (quick mode, and the
digits flow and closed-form paths of softratio on 4 sets)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from jaxdistill import JaxDistillError
from jaxdistill.experiments import EXPERIMENTS, get, temperature


def test_temperature_quick(tmp_path):
    assert "temperature" in EXPERIMENTS and get("temperature") is temperature
    rows = temperature.run(tmp_path, quick=True, progress=False, num_sets=8, ns=(4, 12), temperatures=(0.5, 4.0))
    with open(tmp_path / "temperature.csv") as f:
        assert next(csv.reader(f)) == list(temperature.COLUMNS)
    assert (tmp_path / "temperature.png").stat().st_size > 0
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        assert 0.0 <= r["risk_mean"] <= 1.0 and r["num_sets"] == 8 and r["flow"] in ("converged", "stopped")
    conv = {(r["n"], r["temperature"]): r["risk_mean"] for r in rows if r["flow"] == "converged"}
    stop = {(r["n"], r["temperature"]): r["risk_mean"] for r in rows if r["flow"] == "stopped"}
    for n in (4, 12):
        # converged: the same sets give the same predicted classes at every T
        assert conv[(n, 0.5)] == conv[(n, 4.0)]
    assert conv[(12, 0.5)] < conv[(4, 0.5)]
    # stopped at a fixed time, the temperature changes the risk
    assert any(not np.isclose(stop[(n, 0.5)], stop[(n, 4.0)]) for n in (4, 12))
    again = temperature.run(tmp_path, quick=True, progress=False, num_sets=8, ns=(4, 12), temperatures=(0.5, 4.0))
    assert again == rows  # resumed from the stored points
    assert (tmp_path / "temperature_sweep" / "sweep.csv").exists()
    # the sweep's points are the experiment's former computation, to the last bit: distill of the softmax flow
    # (stopped: by its horizon t_max = t_stop, over all sets)
    former = _former_temperature_point(n=4, T=4.0, num_sets=8)
    row = next(r for r in rows if (r["n"], r["temperature"], r["flow"]) == (4, 4.0, "stopped"))
    assert (row["risk_mean"], row["risk_se"], row["num_sets"]) == former


def _former_temperature_point(n: int, T: float, num_sets: int) -> tuple:
    """(risk_mean, risk_se, num_sets) of the stopped flow as temperature.py computed it before it was a sweep."""
    from jaxdistill.multiclass import MultiClassGaussianTask, MultiTargetSpec, make_softmax_learner
    from jaxdistill.simulate import distill
    from jaxdistill.students import FlowConfig

    res = distill(0, MultiClassGaussianTask(temperature.D, temperature.K, seed=0), n, num_sets,
                  learner=make_softmax_learner("flow", flow=FlowConfig(t_max=temperature.T_STOP)), num_test=2000,
                  targets=MultiTargetSpec("soft", T), chunk_size=num_sets, keep_students=False)
    risk = np.asarray(res.arrays["risk"], float)
    return float(risk.mean()), float(risk.std(ddof=1) / np.sqrt(len(risk))), len(risk)


def test_softratio_quick(tmp_path):
    from jaxdistill.experiments import softratio

    assert get("softratio") is softratio
    rows = softratio.run(tmp_path, quick=True, progress=False)
    with open(tmp_path / "softratio.csv") as f:
        assert next(csv.reader(f)) == list(softratio.COLUMNS)
    assert (tmp_path / "softratio.png").stat().st_size > 0
    assert [r["rho"] for r in rows] == [0.0, 0.5, 1.0] and all(r["task"] == "gaussian" for r in rows)
    for r in rows:
        assert 0.0 <= r["error_mean"] <= 1.0 and 0.0 <= r["risk_mean"] <= 1.0 and r["num_sets"] == 8
        assert 0.05 < r["teacher_error"] < 0.5  # an imperfect teacher
    # pure soft targets follow the teacher more closely than pure labels do
    assert rows[-1]["risk_mean"] < rows[0]["risk_mean"]
    # rho = 0 (labels only) has no finite minimiser: the flow stops at the explicit horizon, said in the row;
    # rho > 0 flows converge; every set succeeds
    assert rows[0]["student"] == "flow_finite_horizon" and rows[0]["t_max"] == softratio.HARD_HORIZON
    assert all(r["student"] == "flow_converged" and r["t_max"] is None for r in rows[1:])
    assert all(r["num_failed"] == 0 for r in rows)
    # the horizon takes effect (a shorter one gives another student) and is part of the run's configuration
    short = softratio.run(tmp_path / "short", quick=True, progress=False, rhos=(0.0,), hard_horizon=1.0)
    assert short[0]["t_max"] == 1.0 and short[0]["num_failed"] == 0
    assert (short[0]["error_mean"], short[0]["risk_mean"]) != (rows[0]["error_mean"], rows[0]["risk_mean"])
    with pytest.raises(JaxDistillError, match="hard_horizon"):
        softratio.run(tmp_path / "bad", quick=True, progress=False, hard_horizon=0.0)


def test_softratio_digits_flow_and_its_limit_by_closed_form(tmp_path):
    """On the digits task rho > 0 students are the converged flow (issue 23 point 4: the K = 10 flow is fast
    again), or with ``limit_by_closed_form`` the flow's exact limit by its closed form (stated in the row):
    the same argmax errors and risks."""
    from jaxdistill.experiments import softratio

    rows = softratio.run(tmp_path / "flow", progress=False, tasks=("digits",), rhos=(0.5, 1.0), num_sets=4)
    assert [r["student"] for r in rows] == ["flow_converged"] * 2 and all(r["num_failed"] == 0 for r in rows)
    assert all(0.0 <= r["risk_mean"] < 0.5 and r["n"] == 20 and r["teacher_error"] < 0.1 for r in rows)
    limit = softratio.run(tmp_path / "limit", progress=False, tasks=("digits",), rhos=(0.5, 1.0), num_sets=4,
                          limit_by_closed_form=("digits",))
    assert [r["student"] for r in limit] == ["closed_form_limit"] * 2 and all(r["num_failed"] == 0 for r in limit)
    assert [(r["error_mean"], r["risk_mean"]) for r in limit] == [(r["error_mean"], r["risk_mean"]) for r in rows]
