"""Issue 13 point 4: the risk-monotonicity index (docs/design.md fact 12) for
students without an angle to a teacher vector, its relation to the angle
index (eq. 34) for binary linear students, and `--monotonicity` for K-class
tasks (`monotonicity_kind`, `--monotonicity-kind`)."""

import json
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill.analysis import monotonicity_from_risks, monotonicity_index
from jaxdistill.cli import main
from jaxdistill.multiclass import (AbstractSoftmaxLearner, MultiClassGaussianTask, MultiClassPoolTask, MultiTargetSpec,
                                   make_softmax_learner)
from jaxdistill.nonlinear import KernelLearner, RBFKernel, risk_monotonicity_index
from jaxdistill.status import STATUS_NAMES, Status
from jaxdistill.students.base import LearnerOutput
from jaxdistill.validation import JaxDistillError


# ---------------------------------------------------------------- binary linear students: risk kind vs angle kind

def test_risk_index_vs_angle_index_for_linear_students():
    """Exact risk: the kappa task is rotationally symmetric without a margin, so its exact risk is strictly
    increasing in the signed angle (fact 3); a distilled student has w.w* = ||P_X w*||^2 >= 0, so signed = unsigned
    angle, and the risk falls iff the angle falls: the two indices agree pair for pair on the same keys.

    Finite sample: on M held-out inputs (one sample shared by both students) the disagreement regions of w(X) and
    w([X, x]) are not nested, so the sampled change is the exact one plus noise ~ sqrt(P(symmetric difference) / M):
    ties and increases appear and the index falls below the exact one.  Measured (kappa 1, d 20, n 5, closed form,
    400 pairs, seed 0): exact 1.0 = angle 1.0; 0.31 +- 0.02 (M 300, ties 0.56, increases 0.13), 0.57 +- 0.02
    (M 3000, ties 0.27), 0.77 +- 0.02 (M 30000, ties 0.08, increases 0.15).  The z-test of M 30000 against M 300
    (measured z ~ 15) fails for an index that does not depend on M."""
    task = jd.KappaPolynomialTask(20, 1.0)
    kw = dict(chunk_size=200)
    angle = monotonicity_index(0, task, 5, 400, jd.ClosedFormLearner(), **kw)
    exact = monotonicity_index(0, task, 5, 400, jd.ClosedFormLearner(), kind="risk", **kw)
    assert exact.kind == "risk" and exact.risk_method == "exact" and exact.num_test is None
    assert exact.num_sets == angle.num_sets == 400
    a, r = np.asarray(angle.angle_changes), np.asarray(exact.risk_changes)
    np.testing.assert_array_equal(a < -1e-12, r < -exact.atol)
    np.testing.assert_array_equal(a > 1e-12, r > exact.atol)
    assert exact.index == angle.index == 1.0 and exact.ties == angle.ties == 0.0
    assert exact.risk_X_mean == pytest.approx(angle.risk_X_mean, rel=1e-12)

    small = monotonicity_index(0, task, 5, 400, jd.ClosedFormLearner(), kind="risk", risk="mc", num_test=300, **kw)
    large = monotonicity_index(0, task, 5, 400, jd.ClosedFormLearner(), kind="risk", risk="mc", num_test=30_000,
                               **kw)
    assert small.risk_method == "mc" and large.num_test == 30_000
    for est in (small, large):
        assert est.index + est.ties + est.increases == pytest.approx(1.0, abs=1e-12)
        assert est.index + 3 * est.se < exact.index
        # risks on M inputs move in steps of 1/M: ties are exact equalities (atol 0)
        steps = est.risk_changes * est.num_test
        assert est.atol == 0.0 and np.all(np.abs(steps - np.round(steps)) < 1e-6)
        # the sampled change is unbiased for the exact one (same X, same students)
        assert abs(est.risk_change_mean - exact.risk_change_mean) < 4 * est.risk_change_se
    z = (large.index - small.index) / math.hypot(large.se, small.se)
    assert z > 5 and large.ties < small.ties
    agree = [np.mean(np.sign(e.risk_changes) == np.sign(exact.risk_changes)) for e in (small, large)]
    assert agree[1] > agree[0]


def test_binary_risk_kind_options():
    task = jd.KappaPolynomialTask(10, 1.0)
    with pytest.raises(JaxDistillError, match="kind"):
        monotonicity_index(0, task, 3, 4, jd.ClosedFormLearner(), kind="loss")
    with pytest.raises(JaxDistillError, match="atol"):
        monotonicity_index(0, task, 3, 4, jd.ClosedFormLearner(), kind="risk", atol=-1.0)
    with pytest.raises(JaxDistillError, match="binary task with a teacher vector"):
        risk_monotonicity_index(0, task, 3, 4, make_softmax_learner("closed-form"))


def test_monotonicity_from_risks_counts_ties_as_no_decrease():
    est = monotonicity_from_risks(np.array([0.2, 0.2, 0.2, 0.2]), np.array([0.1, 0.2, 0.3, 0.2]),
                                  np.array([True, True, True, False]))
    assert (est.index, est.ties, est.increases, est.num_sets, est.num_failed) == (1 / 3, 1 / 3, 1 / 3, 3, 1)
    assert est.se == pytest.approx(math.sqrt((1 / 3) * (2 / 3) / 3))
    assert est.summary()["kind"] == "risk"


# ---------------------------------------------------------------- K-class and kernel students

class KeyOnlySoftmax(AbstractSoftmaxLearner):
    """Ignores its data: W = normal(key) [K, d].  Equal for X and [X, x] iff both fits get the same key; with
    ``fail_plus`` the fit on n + 1 inputs fails when the key's first draw is below -0.5 (~31% of pairs)."""

    fail_plus: int = 0
    name: ClassVar[str] = "key-only"
    randomised: ClassVar[bool] = True

    def fit_inputs(self, key, X, V):
        W = jax.random.normal(key, (V.shape[-1], X.shape[1]), X.dtype)
        bad = (X.shape[0] == self.fail_plus) & (jax.random.normal(jax.random.fold_in(key, 7), ()) < -0.5)
        status = jnp.where(bad, Status.NOT_CONVERGED, Status.CONVERGED).astype(jnp.int32)
        return LearnerOutput(w=W, status=status, num_steps=jnp.asarray(0, jnp.int32), loss=jnp.asarray(0.0, X.dtype))


def test_a_learner_ignoring_its_data_has_index_zero_shared_and_symmetric_independent():
    task = MultiClassGaussianTask(6, 3)
    shared = risk_monotonicity_index(0, task, 4, 60, KeyOnlySoftmax(), num_test=500, chunk_size=60)
    assert (shared.index, shared.ties, shared.increases, shared.se) == (0.0, 1.0, 0.0, 0.0)
    indep = risk_monotonicity_index(0, task, 4, 400, KeyOnlySoftmax(), num_test=500, chunk_size=200,
                                    coupling="independent")
    assert indep.coupling == "independent" and indep.ties < 0.05
    # two independent random students: a decrease is as likely as an increase
    assert abs(indep.index - indep.increases) < 4 * math.sqrt(0.5 / 400)
    # failures of the second fit: reported by pair index and status, left out of the estimate
    failing = risk_monotonicity_index(0, task, 4, 60, KeyOnlySoftmax(fail_plus=5), num_test=500, chunk_size=60)
    assert 0 < failing.num_failed < 60 and failing.num_sets == 60 - failing.num_failed
    assert all(f["status"] == STATUS_NAMES[Status.NOT_CONVERGED] for f in failing.failed_sets)
    assert len({f["index"] for f in failing.failed_sets}) == failing.num_failed


def test_kernel_student_properties(tmp_path):
    """rbf kernel student on a K = 3 Gaussian task: index in [0, 1], decreases + ties + increases = 1, same seed same
    numbers, the coupling refused for a deterministic learner (both couplings are one estimand), resumable with out=."""
    task = MultiClassGaussianTask(5, 3)
    learner = KernelLearner(RBFKernel(2.0), make_softmax_learner("closed-form"))
    kw = dict(num_test=1000)
    est = risk_monotonicity_index(3, task, 8, 64, learner, chunk_size=64, out=str(tmp_path / "m"), **kw)
    assert 0.0 <= est.index <= 1.0 and est.num_sets == 64 and est.num_failed == 0 and est.kind == "risk"
    assert est.index + est.ties + est.increases == pytest.approx(1.0, abs=1e-12)
    assert est.index > 0.5 and est.risk_change_mean < 0  # one more input helps this student on average
    with pytest.raises(JaxDistillError, match="coupling='independent' applies only to a randomised learner"):
        risk_monotonicity_index(3, task, 8, 64, learner, chunk_size=64, coupling="independent", **kw)
    resumed = risk_monotonicity_index(3, task, 8, 64, learner, chunk_size=64, out=str(tmp_path / "m"), **kw)
    np.testing.assert_array_equal(resumed.risk_changes, est.risk_changes)


def test_linear_softmax_student_with_n_at_least_d_recovers_the_teacher_all_ties():
    task = MultiClassGaussianTask(4, 3)
    est = risk_monotonicity_index(0, task, 6, 30, make_softmax_learner("closed-form"), num_test=500)
    assert (est.index, est.ties, est.risk_X_mean, est.risk_plus_mean) == (0.0, 1.0, 0.0, 0.0)


def test_pool_nested_sets_are_the_distill_sets_and_risk_is_exact():
    """A pool samples without replacement (a prefix of one permutation), so X of pair i is the transfer set
    jd.distill trains on for set i: the mean risk of w(X) is its expected risk."""
    rng = np.random.RandomState(0)
    P, M, d, K = 30, 200, 4, 3
    pool = MultiClassPoolTask(rng.randn(P, d), teacher_logits=rng.randn(P, K), test_inputs=rng.randn(M, d),
                              test_teacher_logits=rng.randn(M, K))
    learner = KernelLearner(RBFKernel(1.5), make_softmax_learner("closed-form"))
    est = risk_monotonicity_index(2, pool, 10, 40, learner, chunk_size=40)
    ref = jd.distill(2, pool, 10, 40, learner=learner, keep_students=False, chunk_size=40).expected_risk()
    assert est.risk_method == "exact" and est.num_test is None
    assert est.risk_X_mean == pytest.approx(ref.mean, rel=1e-12)
    with pytest.raises(JaxDistillError, match="n \\+ 1 = 31"):
        risk_monotonicity_index(2, pool, 30, 4, learner)
    with pytest.raises(JaxDistillError, match="num_test applies only to Monte-Carlo risk"):
        risk_monotonicity_index(2, pool, 10, 4, learner, num_test=100)
    with pytest.raises(JaxDistillError, match="coupling"):
        risk_monotonicity_index(2, pool, 10, 4, learner, coupling="both")
    with pytest.raises(JaxDistillError, match="needs ground-truth labels"):
        risk_monotonicity_index(2, pool, 10, 4, learner, MultiTargetSpec("mixed", soft_ratio=0.5))


# ---------------------------------------------------------------- CLI

def test_cli_multiclass_monotonicity_is_the_risk_kind(tmp_path, capsys):
    out = tmp_path / "k"
    base = ["run", "--task", "gaussian", "--classes", "3", "--d", "5", "--n", "4", "--num-sets", "24",
            "--method", "closed-form", "--num-test", "500", "--quiet"]
    assert main([*base, "--monotonicity", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["monotonicity_kind"] == "risk" and s["coupling"] == "shared"
    assert s["monotonicity_num_sets"] == 24 and s["monotonicity_risk_method"] == "mc"
    # the command computes what the Python call computes, to the last bit
    est = risk_monotonicity_index(0, MultiClassGaussianTask(5, 3), 4, 24, make_softmax_learner("closed-form"),
                                  MultiTargetSpec("soft", 1.0), num_test=500)
    assert (s["monotonicity"], s["monotonicity_se"], s["monotonicity_ties"]) == (est.index, est.se, est.ties)
    assert est.index + est.ties + est.increases == pytest.approx(1.0, abs=1e-12)
    assert any((out / "monotonicity").iterdir())  # the resumable store of the pairs
    capsys.readouterr()
    assert main([*base, "--monotonicity", "--monotonicity-kind", "angle"]) == 2
    assert "--monotonicity-kind angle needs a binary task with a teacher vector" in capsys.readouterr().err
    assert main([*base, "--monotonicity-kind", "risk"]) == 2
    assert "--monotonicity-kind applies only with --monotonicity" in capsys.readouterr().err
    # the closed-form student ignores its key: --coupling (either value) would not change the index
    for coupling in ("independent", "shared"):
        assert main([*base, "--monotonicity", "--coupling", coupling]) == 2
        assert "--coupling applies only to a randomised learner" in capsys.readouterr().err


def test_cli_binary_linear_students_have_both_kinds(capsys):
    base = ["run", "--task", "kappa", "--kappa", "1", "--d", "20", "--n", "5", "--num-sets", "40", "--method",
            "closed-form", "--monotonicity", "--json", "--quiet"]
    out = {}
    for kind in (None, "angle", "risk"):
        assert main(base + ([] if kind is None else ["--monotonicity-kind", kind])) == 0
        out[kind] = json.loads(capsys.readouterr().out)
    assert out[None]["monotonicity_kind"] == "angle" and out[None]["monotonicity"] == out["angle"]["monotonicity"]
    r = out["risk"]
    assert r["monotonicity_kind"] == "risk" and r["monotonicity_risk_method"] == "exact"
    assert r["monotonicity"] == out["angle"]["monotonicity"] == 1.0 and r["monotonicity_ties"] == 0.0
