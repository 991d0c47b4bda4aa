"""Issue 12: the real K = 10 tasks (shipped 8x8 digits; full MNIST with all digits)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

import jaxdistill as jd
import pytest

from jaxdistill.cli import main
from jaxdistill.datasets import DigitData
from jaxdistill.multiclass import (MultiClassPoolTask, digits_task, digits_teacher,
                                   load_digits8x8, mnist_multiclass_task)
from jaxdistill.validation import JaxDistillError


def test_shipped_digits_and_teacher():
    x, y = load_digits8x8()
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert x.min() == 0.0 and x.max() == 1.0 and np.all(x * 16 == np.round(x * 16))
    assert np.array_equal(np.bincount(y), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    fit = digits_teacher(0)
    assert fit.w_star.shape == (10, 64) and fit.test_accuracy > 0.9 and fit.grad_norm < 1e-6
    parts = [fit.teacher_idx, fit.pool_idx, fit.test_idx]
    assert sum(map(len, parts)) == 1797 and len(np.unique(np.concatenate(parts))) == 1797
    task = digits_task(0)
    assert isinstance(task, MultiClassPoolTask) and task.d == 64 and task.num_classes == 10 and task.has_labels
    assert task.pool_size == len(fit.pool_idx)
    np.testing.assert_allclose(task.test_teacher_logits, x[fit.test_idx] @ fit.w_star.T)
    other = digits_teacher(1)
    assert not np.array_equal(other.pool_idx, fit.pool_idx)
    np.testing.assert_array_equal(digits_teacher(1).w_star, other.w_star)  # deterministic


def test_digits_does_not_import_sklearn():
    code = ("import sys, jaxdistill.multiclass as m; t = m.digits_task(2); "
            "assert not any(k.split('.')[0] == 'sklearn' for k in sys.modules), 'sklearn imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_digits_flow_matches_closed_form_and_risk_decreases():
    task = digits_task(0)
    # n = 16: the K class inverses of the stage solves without pivoting (students.small_inverse)
    res = {n: jd.distill(0, task, n, 16, method="flow", chunk_size=16) for n in (5, 16)}
    for r in res.values():
        assert r.ok.all()
        assert np.nanmax(r.arrays["rel_dist_closed_form"]) <= 2e-9  # the stopping test: 1e-9 relative
        assert r.teacher_error is not None and r.teacher_error < 0.1
    a, b = res[5].expected_risk(), res[16].expected_risk()
    assert a.mean - b.mean > 4 * np.hypot(a.se, b.se), (a, b)
    assert res[16].expected_error().mean < res[5].expected_error().mean


def test_cli_digits(tmp_path, capsys):
    out = tmp_path / "d"
    code = main(["run", "--task", "digits", "--task-seed", "1", "--n", "6", "--num-sets", "4", "--quiet",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["num_classes"] == 10 and s["max_rel_dist_closed_form"] <= 1e-6
    assert {"error_mean", "error_se", "risk_mean", "risk_se"} <= set(s)
    code = main(["run", "--task", "digits", "--classes", "3", "--n", "6", "--num-sets", "2", "--quiet"])
    assert code != 0 and "--classes" in capsys.readouterr().err


def _fake_mnist(digits=range(10), n_train=300, n_test=100, seed=0):
    rng = np.random.default_rng(seed)
    protos = rng.uniform(size=(10, 784))
    ytr = rng.choice(list(digits), n_train)
    yte = rng.choice(list(digits), n_test)
    noisy = lambda y: np.clip(protos[y] + 0.3 * rng.normal(size=(len(y), 784)), 0, 1)
    return DigitData(noisy(ytr), ytr, noisy(yte), yte, source="fake")


def test_mnist_multiclass_task_from_digit_data():
    task = mnist_multiclass_task(_fake_mnist(), seed=0)
    assert task.num_classes == 10 and task.d == 784 and task.pool_size == 150 and task.has_labels
    res = jd.distill(0, task, 8, 4, method="closed-form", chunk_size=4)
    assert res.teacher_error < 0.1 and res.ok.all()
    with pytest.raises(JaxDistillError, match="all ten"):
        mnist_multiclass_task(_fake_mnist(digits=(0, 1)))
