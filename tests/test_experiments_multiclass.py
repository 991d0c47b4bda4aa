"""Issue 12 experiments: ``jaxdistill reproduce temperature`` (quick mode)."""

from __future__ import annotations

import csv

import numpy as np

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
