"""Issue 5: the figure reproductions (quick, with small internal sizes), the
resumable grid store, the reproduce CLI, and the MNIST 0/1 data and loader."""

import gzip
import json
import math
import struct

import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill.datasets import load_idx, load_mnist01, load_mnist_idx, mnist01_task, mnist01_teacher
from jaxdistill.experiments import curves, fig1, fig2, fig3, fig4, fig5


def _csv_columns(path):
    return path.read_text().splitlines()[0].split(",")


def _risk_ok(rows):
    for r in rows:
        assert 0.0 <= r["risk_mean"] <= 1.0 and r["risk_se"] >= 0.0 and r["num_sets"] >= 1


def _z(a, b, mean="risk_mean", se="risk_se"):
    """z statistic of b - a from two independent estimates with their SEs."""
    return (b[mean] - a[mean]) / math.sqrt(a[se] ** 2 + b[se] ** 2)


def test_fig1_p_theta_shapes_and_resume(tmp_path):
    rows = fig1.run(tmp_path, quick=True, progress=False, num_theta=31, num_samples=5000)
    assert _csv_columns(tmp_path / "fig1.csv") == list(fig1.COLUMNS) and (tmp_path / "fig1.png").stat().st_size > 0
    by = {t: np.array([r["p"] for r in rows if r["task"] == t]) for t in fig1.TASKS}
    for p in by.values():
        assert p[0] == 1.0 and np.all(np.diff(p) <= 1e-15) and p[-1] == 0.0  # reverse CDF
    a, b, c = by.values()
    assert np.all(c[1:-1] > a[1:-1])  # Task C decreases more slowly than Task A
    assert np.any(b[1:-1] == 0.0)  # Task B reaches 0 before pi/2 (margin)
    # the Monte-Carlo check of the exact p
    saved = json.loads((tmp_path / "fig1_points" / "A_kappa=3_.json").read_text())
    assert saved["rows"][0]["_mc_max_dev"] < 0.03
    # resumable: a rerun reuses the point files; another config is refused
    mtime = (tmp_path / "fig1_points" / "A_kappa=3_.json").stat().st_mtime_ns
    fig1.run(tmp_path, quick=True, progress=False, num_theta=31, num_samples=5000)
    assert (tmp_path / "fig1_points" / "A_kappa=3_.json").stat().st_mtime_ns == mtime
    with pytest.raises(jd.JaxDistillError, match="different configuration"):
        fig1.run(tmp_path, quick=True, seed=1, progress=False, num_theta=31, num_samples=5000)


def test_fig2_samples_respect_margin(tmp_path):
    rows = fig2.run(tmp_path, quick=True, progress=False, num_points=200)
    assert _csv_columns(tmp_path / "fig2.csv") == list(fig2.COLUMNS)
    X = np.array([[r["x1"], r["x2"]] for r in rows if r["task"].startswith("margin")])
    # no point within angle beta0 = 0.3 of the boundary x1 = 0
    assert len(X) == 200 and np.min(np.abs(np.arctan2(np.abs(X[:, 0]), np.abs(X[:, 1])))) >= 0.3 - 1e-9


def test_fig3_risk_falls_with_kappa(tmp_path):
    rows = fig3.run(tmp_path, quick=True, progress=False, num_sets=32, kappas=(0.5, 5.0))
    assert _csv_columns(tmp_path / "fig3.csv") == list(fig3.COLUMNS)
    _risk_ok(rows)
    # z-test at 3 SE.  Measured: 1.6e-2 +- 1.3e-3 (kappa 0.5) vs 2e-17 (kappa 5), a 12-SE effect, so the
    # test passes with probability > 0.999 (power); an implementation where kappa has no effect on the
    # risk passes with probability < 0.0014 (one-sided, normal approximation).
    assert _z(rows[1], rows[0]) > 3.0
    for x in rows:  # the gradient flow reached the Thm 1 limit; Thm 3 holds
        assert x["num_failed"] == 0 and x["max_rel_dist_closed_form"] < 1e-6
        assert x["risk_mean"] <= x["bound"] <= 1.0


def test_fig4_risk_rises_with_delta(tmp_path):
    rows = fig4.run(tmp_path, quick=True, progress=False, num_sets=16, deltas=(0.0, 30.0, 90.0))
    assert _csv_columns(tmp_path / "fig4.csv") == list(fig4.COLUMNS)
    _risk_ok(rows)
    # z-tests at 3 SE.  Measured on 16 sets: 0 (delta 0), 0.106 +- 0.005 (30), 0.315 +- 0.009 (90): effects
    # of 23 and 21 SE, power > 0.999; no effect of delta passes with probability < 0.0014 per comparison.
    assert _z(rows[0], rows[1]) > 3.0 and _z(rows[1], rows[2]) > 3.0


def test_fig5_flow_most_monotone_and_best(tmp_path):
    rows = fig5.run(tmp_path, quick=True, progress=False, num_sets=120, deltas=(1.0,))
    assert _csv_columns(tmp_path / "fig5.csv") == list(fig5.COLUMNS)
    _risk_ok(rows)
    flow = rows[0]
    assert [r["learner"] for r in rows] == ["gradient-flow", "hard-max-margin", "hard-gd", "w-delta"]
    assert flow["monotonicity"] >= 0.95  # Lemma 1 (ties at rounding aside)
    # z-tests at 3 SE.  Measured (200 sets): monotonicity 1.0 (flow) vs 0.20 / 0.72 / 0.61 (max-margin,
    # GD, w_delta at delta 1) with SE <= 0.035, risk 0.0061 +- 0.0005 vs 0.022 .. 0.032 with SE <= 0.002;
    # at 120 sets the smallest effect is ~6 SE, so the test passes with probability > 0.999 (power), and
    # a learner as monotone or as accurate as the flow passes with probability < 0.0014 per comparison.
    for r in rows[1:]:
        assert _z(r, flow, "monotonicity", "monotonicity_se") > 3.0
        assert _z(flow, r) > 3.0
    assert rows[1]["ties"] > 0.3 and flow["ties"] == 0.0  # max-margin: most additions leave it unchanged
    assert all(r["coupling"] == "shared" for r in rows)
    lines = (tmp_path / "fig5.csv").read_text().splitlines()
    assert lines[1].split(",")[1] == ""  # delta empty where not applicable


def test_curves_soft_risk_zero_from_n_equal_d(tmp_path):
    rows = curves.run(tmp_path, quick=True, progress=False, num_sets=16, ns=(5, 50), d=50)
    assert _csv_columns(tmp_path / "curves.csv") == list(curves.COLUMNS)
    _risk_ok(rows)
    get = lambda t, lr, n: next(r for r in rows if r["task"] == t and r["learner"] == lr and r["n"] == n)
    for t in curves.TASKS:
        assert get(t, "soft", 50)["risk_mean"] < 1e-9 and get(t, "w_delta", 50)["risk_mean"] < 1e-9  # eq. 18
        assert get(t, "soft", 5)["risk_mean"] <= get(t, "soft", 5)["thm3_bound"]
        assert get(t, "soft", 5)["risk_mean"] <= get(t, "w_delta", 5)["risk_mean"]
    assert get("kappa=1", "hard", 50)["risk_mean"] > 1e-3  # hard labels do not reach 0 at n = d
    assert get("kappa=1", "soft", 5)["cor1_bound"] is None and get("margin=0.3", "soft", 5)["cor1_bound"] > 0


def test_reproduce_cli_quick_and_refusal(tmp_path, capsys):
    from jaxdistill.cli import main

    assert main(["reproduce", "fig1", "--out", str(tmp_path), "--quick", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "task" in out and "theta" in out and (tmp_path / "fig1.png").exists()
    assert main(["reproduce", "fig1", "--out", str(tmp_path), "--quiet"]) == 2
    assert "different configuration" in capsys.readouterr().err


# ------------------------------------------------------------------ MNIST


def test_mnist_data_and_teacher():
    data = load_mnist01()
    assert data.x_train.shape == (12665, 784) and data.x_test.shape == (2115, 784)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    fit = mnist01_teacher(0)
    assert fit.test_accuracy > 0.99 and fit.grad_norm < 1e-8
    assert len(np.intersect1d(fit.teacher_idx, fit.pool_idx)) == 0
    assert len(fit.teacher_idx) + len(fit.pool_idx) == 12665
    task = mnist01_task(0)
    assert task.d == 784 and task.pool_size == len(fit.pool_idx) and task.test_inputs.shape == (2115, 784)
    # moderate logits (the L2 penalty) and a different split for another seed
    assert np.median(np.abs(task.test_inputs @ task.w_star)) < 50
    assert not np.array_equal(mnist01_teacher(1).teacher_idx, fit.teacher_idx)


def test_mnist_loader_rejects_corrupt_npz(tmp_path):
    good = (tmp_path / "ok.npz")
    src = load_mnist01.__globals__["default_path"]().read_bytes()
    (tmp_path / "trunc.npz").write_bytes(src[: len(src) // 3])
    with pytest.raises(jd.JaxDistillError, match="corrupt or truncated"):
        load_mnist01(tmp_path / "trunc.npz")
    np.savez(good, x_train=np.zeros((3, 783), np.uint8), y_train=np.zeros(3, np.uint8),
             x_test=np.zeros((2, 784), np.uint8), y_test=np.zeros(2, np.uint8))
    with pytest.raises(jd.JaxDistillError, match=r"shape \[N, 784\]"):
        load_mnist01(good)


def _idx(arr, magic_type=0x08):
    head = bytes([0, 0, magic_type, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def test_idx_loader_same_path_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labs = np.array([0, 1, 7, 1, 0, 3], np.uint8)
    (tmp_path / "ti.gz").write_bytes(gzip.compress(_idx(imgs)))
    (tmp_path / "tl").write_bytes(_idx(labs))
    data = load_mnist_idx(tmp_path / "ti.gz", tmp_path / "tl", tmp_path / "ti.gz", tmp_path / "tl")
    np.testing.assert_array_equal(data.x_train, imgs.reshape(6, 784) / 255.0)
    assert load_idx(tmp_path / "ti.gz", expect_magic=2051).shape == (6, 28, 28)
    (tmp_path / "short").write_bytes(_idx(imgs)[:-10])
    with pytest.raises(jd.JaxDistillError, match="truncated"):
        load_idx(tmp_path / "short")
    (tmp_path / "badgz.gz").write_bytes(gzip.compress(_idx(imgs))[:-20])
    with pytest.raises(jd.JaxDistillError, match="corrupt or truncated gzip"):
        load_idx(tmp_path / "badgz.gz")
    with pytest.raises(jd.JaxDistillError, match="magic number 2049 is not 2051"):
        load_idx(tmp_path / "tl", expect_magic=2051)
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(jd.JaxDistillError, match="not an IDX file"):
        load_idx(tmp_path / "junk")
