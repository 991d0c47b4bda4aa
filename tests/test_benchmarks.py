"""Issue 14, Must hold 6: the accelerator check runs unchanged at small sizes
on CPU, so it never goes stale."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_small_runs_on_cpu(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.__main__ import main

    assert main(["--gpu-check", "--small", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("gpu-check-*-small-*.json")
    data = json.loads(path.read_text())
    assert data["meta"]["small"] is True
    assert [r["method"] for r in data["rows"]] == ["flow", "closed-form", "flow"]
    for r in data["rows"]:
        assert r["sets_per_s"] > 0 and r["num_failed"] == 0 and 0 < r["risk_mean"] < 0.5
    assert data["rows"][0]["max_rel_dist_closed_form"] < 2e-9


def test_small_needs_gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit):
        main(["--small"])
