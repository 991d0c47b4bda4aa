"""Issue 11: estimands explicit (--learner, --delta, --monotonicity, --coupling,
--save-students, eq. 76 set by set) and the float32 accuracy stated in the README."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.cli import main
from jaxdistill.results import bound_summary
from jaxdistill.students import FlowLearner

from conftest import transfer_sets


@pytest.mark.parametrize("argv, needle", [
    (["--delta", "0.5"], "--delta applies only to --learner wdelta"),
    (["--monotonicity", "--coupling", "shared", "--learner", "distill", "--coupling", "independent", "--monotonicity"],
     "--coupling applies only to a randomised learner"),
    (["--coupling", "independent"], "--coupling applies only with --monotonicity"),
    (["--learner", "wdelta"], "needs --delta"),
    (["--learner", "wdelta", "--delta", "1", "--depth", "2"], "applies only to --depth 1"),
    (["--learner", "wdelta", "--delta", "1", "--method", "gd"], "--method gd does not apply"),
    (["--learner", "hard-gd", "--method", "flow"], "--method applies only to --learner distill and wdelta"),
    (["--learner", "hard-max-margin", "--lr", "0.1"], "--lr applies only to --method gd"),
    (["--learner", "hard-gd", "--temperature", "2"], "hard labels"),
])
def test_estimand_options_refused_where_they_do_not_apply(argv, needle, capsys):
    assert main(["run", "--d", "10", "--n", "3", "--num-sets", "2", "--quiet", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_monotonicity_coupling_changes_the_estimand(tmp_path):
    """The Done-means runs: w_delta at delta = 1/16, kappa = 1, d = 100, n = 5, 1000 sets.  Measured 0.879 +- 0.010
    (shared) and 0.729 +- 0.014 (independent), an 8.6-SE difference: the 3-SE z-test below has power > 0.999, and an
    implementation that ignores --coupling (equal indices) passes it with probability < 0.0014."""
    out = {}
    for coupling in ("shared", "independent"):
        d = tmp_path / coupling
        assert main(["run", "--task", "kappa", "--kappa", "1", "--d", "100", "--n", "5", "--num-sets", "1000",
                     "--learner", "wdelta", "--delta", "0.0625", "--monotonicity", "--coupling", coupling, "--quiet",
                     "--out", str(d)]) == 0
        out[coupling] = json.loads((d / "summary.json").read_text())
    s, i = out["shared"], out["independent"]
    for x, c in ((s, "shared"), (i, "independent")):
        assert x["coupling"] == c and x["monotonicity_kind"] == "angle" and x["monotonicity_ties"] == 0.0
        assert x["monotonicity_num_sets"] == 1000 and 0 < x["monotonicity_se"] < 0.02
        assert x["config"]["method"] == "w-delta"
    z = (s["monotonicity"] - i["monotonicity"]) / math.hypot(s["monotonicity_se"], i["monotonicity_se"])
    assert z > 3.0
    assert s["risk_mean"] == i["risk_mean"]  # same students on X: only the second draw differs


def test_hard_max_margin_reports_ties(tmp_path, capsys):
    assert main(["run", "--d", "30", "--n", "5", "--num-sets", "40", "--learner", "hard-max-margin", "--monotonicity",
                 "--json", "--quiet"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["config"]["method"] == "hard-target" and s["config"]["targets"] == "hard"
    assert s["monotonicity_ties"] > 0.2 and s["coupling"] == "shared"  # non-support additions leave w_mm unchanged
    assert s["monotonicity"] <= 1 - s["monotonicity_ties"]


def test_save_students_npy_rows_and_nan_for_failed_sets(tmp_path):
    out = tmp_path / "r"
    assert main(["run", "--d", "20", "--n", "5", "--num-sets", "6", "--max-steps", "3", "--save-students", "--quiet",
                 "--out", str(out)]) == 0
    W = np.load(out / "students.npy")
    summary = json.loads((out / "summary.json").read_text())
    failed = {f["index"] for f in summary["failed_sets"]}
    assert W.shape == (6, 20) and failed  # 3 steps: the flow cannot arrive
    for i in range(6):
        assert np.all(np.isnan(W[i])) == (i in failed) and (i in failed or np.all(np.isfinite(W[i])))
    out2 = tmp_path / "ok"
    assert main(["run", "--d", "20", "--n", "5", "--num-sets", "6", "--save-students", "--quiet", "--method",
                 "closed-form", "--out", str(out2)]) == 0
    res = jd.distill(0, jd.KappaPolynomialTask(20, 1.0), 5, 6, method="closed-form", keep_students=True)
    np.testing.assert_array_equal(np.load(out2 / "students.npy"), res.students)  # row i = set i


def test_eq76_violations_are_counted_set_by_set():
    # the largest distance (0.5) is below the largest bound (1.0), but set 0 exceeds its own bound
    extras = {"dist_w_hat": np.array([0.5, 0.1, 0.3]), "eq76_bound": np.array([0.2, 1.0, np.inf])}
    assert bound_summary(extras, np.array([True, True, True]))["eq76_violations"] == 1
    assert bound_summary(extras, np.array([False, True, True]))["eq76_violations"] == 0
    assert "eq76_violations" not in bound_summary({}, np.array([True]))


def test_deep_run_summary_has_eq76_violations(capsys):
    assert main(["run", "--d", "10", "--n", "3", "--num-sets", "4", "--depth", "2", "--json", "--quiet"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["eq76_violations"] == 0 and s["max_dist_w_hat"] <= s["eq76_bound"]


@pytest.mark.parametrize("d, bound", [(10, 2e-5), (1000, 1e-4)])
def test_float32_students_accuracy_as_stated(d, bound):
    """README "Precision": float32 flow students (newton_tol 1e-5), n = 20, relative distance to the float64
    closed form of the same sets: median below 1e-5 (measured over 1000 sets: 2.5e-6 at d = 10, 5.0e-6 at
    d = 1000); 90% of sets within 2e-5 (d = 10) / 1e-4 (d = 1000) (measured 99th percentiles 9.9e-6 and
    7.3e-5); ill-conditioned sets reach a few 1e-4 at d = 1000 (largest seen 2.4e-4), never 1e-3."""
    task = jd.KappaPolynomialTask(d, 1.0)
    B = 64 if d == 10 else 24
    X, _ = transfer_sets(task, 20, B)
    X32 = np.asarray(X).astype(np.float32)
    learner = FlowLearner().for_dtype("float32")
    with precision("float32"):
        u32 = jd.teacher_logits(jnp.asarray(X32), jnp.asarray(task.w_star, jnp.float32))
        out = jax.jit(jax.vmap(learner.fit_logits))(jax.random.split(jax.random.PRNGKey(0), B), jnp.asarray(X32), u32)
    with precision():
        Xd = jnp.asarray(X32.astype(np.float64))
        w_hat = np.asarray(jax.vmap(jd.closed_form)(Xd, jd.teacher_logits(Xd, task.w_star)))
    ok = np.asarray(out.status) == 0
    assert ok.mean() > 0.95
    rel = np.linalg.norm(np.asarray(out.w, np.float64)[ok] - w_hat[ok], axis=1) / np.linalg.norm(w_hat[ok], axis=1)
    assert np.median(rel) <= 1e-5 and np.quantile(rel, 0.9) <= bound and rel.max() <= 1e-3
