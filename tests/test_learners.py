"""Issue 5: reduced-bias learners w_delta (section 5.2) and the hard-target
learner with its max-margin limit (section 5.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.analysis import signed_angle
from jaxdistill.students.flow import CONVERGED, HORIZON
from jaxdistill.students.hard import HardTargetLearner, hard_logits, max_margin
from jaxdistill.students.wdelta import WDeltaLearner, orthogonal_gaussian, w_delta


def _sets(task, n, B, seed=0):
    with precision():
        X = jd.sample_transfer_sets(seed, task, n, B)
        return X, jd.teacher_logits(X, task.w_star)


def test_w_delta_is_a_global_minimiser_at_the_stated_distance():
    """X w_delta = X w_hat (so L^1 = 0, Lemma B.3) and ||w_delta - w_hat|| = |delta| ||w_hat||."""
    task = jd.KappaPolynomialTask(30, 1.0)
    X, u = _sets(task, 6, 8)
    keys = jax.random.split(jax.random.PRNGKey(1), 8)
    deltas = jnp.array([0.0, 0.5, 3.0, -2.0])
    with precision():
        W = jax.vmap(lambda k, a, b: w_delta(k, a, b, deltas))(keys, X, u)  # [B, K, d]
        w_hat = jax.vmap(jd.closed_form)(X, u)
    W, w_hat, Xn = np.asarray(W), np.asarray(w_hat), np.asarray(X)
    np.testing.assert_allclose(W[:, 0], w_hat, atol=1e-14)
    for j, dl in enumerate(np.asarray(deltas)):
        logits = np.einsum("bnd,bd->bn", Xn, W[:, j])
        np.testing.assert_allclose(logits, np.asarray(u), atol=1e-10 * np.abs(np.asarray(u)).max())
        dist = np.linalg.norm(W[:, j] - w_hat, axis=1)
        np.testing.assert_allclose(dist, abs(dl) * np.linalg.norm(w_hat, axis=1), rtol=1e-10)
    # the added direction is orthogonal to the data and the same for every delta
    q = W[:, 1] - w_hat
    assert np.max(np.abs(np.einsum("bnd,bd->bn", Xn, q))) < 1e-10
    np.testing.assert_allclose(W[:, 2] - w_hat, 6.0 * q, rtol=1e-9, atol=1e-12)


def test_w_delta_learner_matches_function_and_is_unique_for_n_ge_d():
    task = jd.IsotropicGaussianTask(6)
    with precision():
        X, u = _sets(task, 9, 4)  # n > d: span(X) = R^d, no orthogonal complement
        out = jax.vmap(lambda k, a, b: WDeltaLearner(delta=50.0).fit(k, a, b))(jax.random.split(jax.random.PRNGKey(0), 4), X, u)
        assert np.all(np.asarray(orthogonal_gaussian(jax.random.PRNGKey(3), X[0])) == 0.0)
    np.testing.assert_allclose(np.asarray(out.w), np.tile(np.asarray(task.w_star), (4, 1)), atol=1e-10)
    assert np.all(np.asarray(out.status) == CONVERGED)
    assert np.all(np.asarray(out.loss) < 1e-12)


def test_w_delta_through_distill_uses_learner_key_and_degrades_with_delta():
    """Same seed -> same q for every delta; risk of w_delta grows with delta (Fig. 4/5 trend, exact risk)."""
    task = jd.KappaPolynomialTask(40, 1.0)
    risks = []
    for dl in (0.0, 0.5, 4.0):
        res = jd.distill(3, task, 5, 200, learner=WDeltaLearner(delta=dl), chunk_size=200)
        risks.append(res.expected_risk().mean)
        if dl == 0.0:
            ref = jd.distill(3, task, 5, 200, method="closed-form", chunk_size=200)
            np.testing.assert_allclose(res.risk, ref.risk, atol=1e-12)
    assert risks[0] < risks[1] < risks[2] <= 0.5


def test_w_delta_validation():
    with pytest.raises(jd.JaxDistillError, match="delta"):
        WDeltaLearner(delta=float("nan"))
    with pytest.raises(jd.JaxDistillError, match="base"):
        WDeltaLearner(base="sgd")
    with pytest.raises(jd.JaxDistillError, match="method"):
        HardTargetLearner(method="svm")


def test_max_margin_matches_generic_qp_and_kkt():
    """The dual solve gives the hard-margin SVM through the origin (checked
    against scipy SLSQP on the primal) and satisfies its KKT conditions."""
    task = jd.KappaPolynomialTask(12, 2.0)
    X, u = _sets(task, 7, 6, seed=4)
    s = jnp.where(u >= 0, 1.0, -1.0)
    with precision():
        res = jax.vmap(max_margin)(X, s)
    assert np.all(np.asarray(res.status) == CONVERGED)
    for i in range(6):
        Z = np.asarray(s[i])[:, None] * np.asarray(X[i])
        ref = minimize(lambda w: 0.5 * w @ w, np.zeros(12), jac=lambda w: w, method="SLSQP",
                       constraints=[{"type": "ineq", "fun": lambda w: Z @ w - 1.0, "jac": lambda w: Z}],
                       options={"ftol": 1e-15, "maxiter": 2000})
        w = np.asarray(res.w[i])
        assert np.linalg.norm(w - ref.x) < 1e-6 * np.linalg.norm(ref.x)
        a = np.asarray(res.alpha[i])
        margins = Z @ w
        assert np.all(a >= 0) and np.all(margins >= 1 - 1e-9)
        assert np.all(np.abs(margins[a > 0] - 1.0) < 1e-9)  # complementary slackness
        np.testing.assert_allclose(Z.T @ a, w, rtol=1e-12)  # stationarity


def test_long_run_gradient_descent_direction_approaches_max_margin():
    """Soudry et al.: on separable data GD from 0 gives w(t) = w_mm log t + rho(t) with rho bounded.
    The angle to w_mm shrinks with t, and the increment w(t2) - w(t1) (where rho cancels) is
    much closer in direction to w_mm than w itself."""
    task = jd.IsotropicGaussianTask(20)
    X, u = _sets(task, 8, 8, seed=2)
    s = jnp.where(u >= 0, 1.0, -1.0)
    uh = hard_logits(u)
    with precision():
        mm = jax.vmap(max_margin)(X, s)
        ws = {}
        for steps in (1_000, 10_000, 100_000):
            ws[steps] = jax.vmap(lambda a, b: jd.gradient_descent(a, b, jd.GDConfig(learning_rate=0.5, steps=steps)))(X, uh).w
        ang = {k: np.asarray(signed_angle(v, mm.w)) for k, v in ws.items()}
        inc = np.asarray(signed_angle(ws[100_000] - ws[10_000], mm.w))
    assert np.all(ang[10_000] < ang[1_000]) and np.all(ang[100_000] < ang[10_000])
    assert np.all(inc < 0.35 * ang[100_000])
    assert np.max(inc) < 0.05
    # ||w(t) - w_mm log t|| stays bounded while ||w_mm log t|| grows
    dev = np.linalg.norm(np.asarray(ws[100_000]) - np.log(100_000) * np.asarray(mm.w), axis=1)
    assert np.all(dev < 0.25 * np.log(100_000) * np.linalg.norm(np.asarray(mm.w), axis=1))


def test_hard_learner_binarises_targets_and_finite_time_methods():
    task = jd.KappaPolynomialTask(15, 1.0)
    X, u = _sets(task, 5, 4, seed=5)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    with precision():
        soft = jax.vmap(HardTargetLearner().fit)(keys, X, u)
        hard = jax.vmap(HardTargetLearner().fit)(keys, X, hard_logits(u))
        fl = jax.vmap(HardTargetLearner(method="flow", flow=jd.FlowConfig(t_max=1e4)).fit)(keys, X, u)
    np.testing.assert_array_equal(np.asarray(soft.w), np.asarray(hard.w))
    # the finite-time flow fits every hard label (all logits have the teacher's sign)
    assert np.all(np.asarray(fl.status) == HORIZON)
    assert np.all(np.sign(np.einsum("bnd,bd->bn", np.asarray(X), np.asarray(fl.w))) == np.sign(np.asarray(u)))
    # and through distill with hard targets
    res = jd.distill(0, task, 5, 50, learner=HardTargetLearner(), targets=jd.TargetSpec(kind="hard"))
    assert res.ok.all() and 0.0 < res.expected_risk().mean < 0.5
