"""Issue 2: tasks, transfer sets, linear students three ways, risk, CLI."""

import json
import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.analysis import exact_risk_from_angle, mc_risk, unsigned_angle
from jaxdistill.status import Status


from conftest import transfer_sets as _sets  # noqa: E402  (the shared helper)


@pytest.mark.parametrize("n", [4, 12])  # n < d and n >= d (d = 8)
def test_three_way_consistency_thm1(n):
    """Thm 1: closed form, gradient flow and small-step GD agree, over a batch."""
    task = jd.IsotropicGaussianTask(8)
    X, u = _sets(task, n, 16)
    with precision():
        w_cf = jax.vmap(jd.closed_form)(X, u)
        fl = jax.vmap(lambda a, b: jd.gradient_flow(a, b))(X, u)
        gd = jax.vmap(lambda a, b: jd.gradient_descent(a, b, jd.GDConfig(learning_rate=0.5, steps=40_000)))(X, u)
    assert np.all(np.asarray(fl.status) == Status.CONVERGED)
    rel = lambda w: np.max(np.linalg.norm(w - w_cf, axis=1) / np.linalg.norm(w_cf, axis=1))
    assert rel(fl.w) < 1e-6
    assert rel(gd.w) < 1e-6
    if n >= 8:  # the student recovers w* exactly
        assert np.max(np.abs(np.asarray(w_cf) - np.asarray(task.w_star))) < 1e-10
        assert np.max(np.abs(np.asarray(fl.w) - np.asarray(task.w_star))) < 1e-6


def test_closed_form_is_projection_of_teacher():
    task = jd.KappaPolynomialTask(50, 2.0)
    X, u = _sets(task, 10, 8)
    with precision():
        w = jax.vmap(jd.closed_form)(X, u)
        Xn = np.asarray(X)
        for i in range(8):
            P = Xn[i].T @ np.linalg.pinv(Xn[i].T)
            np.testing.assert_allclose(np.asarray(w[i]), P @ np.asarray(task.w_star), atol=1e-10)


def test_flow_stays_in_span_and_loss_vanishes():
    """Lemma B.1: the plain d-dimensional flow never leaves span(X); L^1 -> 0 (eq. 39)."""
    task = jd.KappaPolynomialTask(12, 1.0)
    X, u = _sets(task, 5, 4)
    ts = jnp.array([0.1, 1.0, 10.0, 100.0])
    cfg = jd.FlowConfig(coordinates="plain", solver=diffrax.Kvaerno5(), rtol=1e-8, atol=1e-10, max_steps=100_000)
    with precision():
        res = jax.vmap(lambda a, b: jd.gradient_flow(a, b, cfg, ts=ts))(X, u)
        for i in range(4):
            Q, _ = np.linalg.qr(np.asarray(X[i]).T)
            traj = np.asarray(res.trajectory[i])
            off_span = traj - traj @ Q @ Q.T
            assert np.max(np.abs(off_span)) < 1e-12
    assert np.all(np.asarray(res.loss) < 1e-15)


def test_reduced_flow_equals_plain_flow():
    task = jd.KappaPolynomialTask(15, 1.0)
    X, u = _sets(task, 6, 6)
    ts = jnp.array([0.5, 5.0, 50.0])
    with precision():
        cfg = dict(solver=diffrax.Kvaerno5(), rtol=1e-9, atol=1e-12, max_steps=100_000)
        red = jax.vmap(lambda a, b: jd.gradient_flow(a, b, jd.FlowConfig(**cfg), ts=ts))(X, u)
        pla = jax.vmap(lambda a, b: jd.gradient_flow(a, b, jd.FlowConfig(**cfg, coordinates="plain"), ts=ts))(X, u)
    assert np.all(np.asarray(red.status) == Status.CONVERGED) and np.all(np.asarray(pla.status) == Status.CONVERGED)
    np.testing.assert_allclose(np.asarray(red.trajectory), np.asarray(pla.trajectory), atol=1e-7)
    np.testing.assert_allclose(np.asarray(red.w), np.asarray(pla.w), atol=1e-8)


@pytest.mark.parametrize("kappa", [0.5, 1.0, 3.0])
def test_kappa_sampler_angle_law(kappa):
    """P[angle >= theta] = (1 - 2 theta / pi)^kappa (KS test, fixed seed)."""
    task = jd.KappaPolynomialTask(30, kappa)
    with precision():
        X = task.sample(jax.random.PRNGKey(3), 20_000)
        a = np.asarray(unsigned_angle(X, task.w_star))
    cdf = lambda t: 1.0 - (1.0 - 2.0 * np.clip(t, 0, np.pi / 2) / np.pi) ** kappa
    assert stats.kstest(a, cdf).pvalue > 0.01


def test_margin_inputs_never_enter_wedge():
    beta0 = 0.3
    task = jd.AngularMarginTask(20, beta0)
    with precision():
        X = task.sample(jax.random.PRNGKey(1), 50_000)
        a = np.asarray(unsigned_angle(X, task.w_star))
    assert a.max() <= np.pi / 2 - beta0 + 1e-12
    cdf = lambda t: 1.0 - np.asarray(task.p_theta(t))
    assert stats.kstest(a, cdf).pvalue > 0.01


@pytest.mark.parametrize("task", [jd.KappaPolynomialTask(40, 1.0), jd.AngularMarginTask(25, 0.25, 2.0),
                                  jd.IsotropicGaussianTask(30)])
def test_exact_risk_matches_monte_carlo(task):
    with precision():
        X = task.sample(jax.random.PRNGKey(7), 200_000)
        for phi in (0.1, 0.5, 1.3, 2.5):
            w = jnp.zeros(task.d).at[0].set(math.cos(phi)).at[1].set(math.sin(phi))
            exact = float(exact_risk_from_angle(task, jnp.asarray(phi)))
            r, se = mc_risk(w, X, task.w_star)
            assert abs(exact - float(r)) < 4 * float(se) + 1e-6, (phi, exact, float(r), float(se))


def test_exact_risk_of_isotropic_gaussian_is_angle_over_pi():
    for d in (3, 10, 1000):
        task = jd.IsotropicGaussianTask(d)
        with precision():
            phi = jnp.linspace(0.01, 3.1, 9)
            np.testing.assert_allclose(np.asarray(exact_risk_from_angle(task, phi)), np.asarray(phi) / np.pi, atol=1e-7)


def test_batch_equals_single_runs_and_chunk_size_invariance():
    task = jd.KappaPolynomialTask(30, 1.0)
    full = jd.distill(5, task, 6, 10, chunk_size=10, keep_students=True)
    chunked = jd.distill(5, task, 6, 10, chunk_size=3, keep_students=True)
    np.testing.assert_array_equal(full.students, chunked.students)
    X = jd.sample_transfer_sets(5, task, 6, 10)
    with precision():
        for i in range(10):
            u = jd.teacher_logits(X[i], task.w_star)
            single = jd.gradient_flow(X[i], u)
            np.testing.assert_allclose(np.asarray(single.w), full.students[i], rtol=0, atol=1e-12)
    assert full.summary() == {**chunked.summary(), "elapsed_s": full.summary()["elapsed_s"],
                              "config": full.summary()["config"]}


def test_same_seed_same_numbers_different_seed_different():
    task = jd.KappaPolynomialTask(20, 2.0)
    a = jd.distill(1, task, 5, 8, method="closed-form", keep_students=True)
    b = jd.distill(1, task, 5, 8, method="closed-form", keep_students=True)
    c = jd.distill(2, task, 5, 8, method="closed-form", keep_students=True)
    np.testing.assert_array_equal(a.students, b.students)
    assert not np.array_equal(a.students, c.students)


def test_temperature_scales_the_limit_and_hard_labels_have_no_closed_form():
    task = jd.IsotropicGaussianTask(6)
    res = jd.distill(0, task, 10, 4, method="flow", targets=jd.TargetSpec("soft", temperature=2.0),
                     keep_students=True)
    np.testing.assert_allclose(res.students, np.tile(np.asarray(task.w_star) / 2.0, (4, 1)), atol=1e-6)
    with pytest.raises(jd.JaxDistillError, match="closed-form"):
        jd.distill(0, task, 10, 4, method="closed-form", targets=jd.TargetSpec("hard"))


def test_pool_task_draws_without_replacement():
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(30, 5))
    task = jd.PoolTask(pool, np.ones(5))
    with precision():
        X = np.asarray(task.sample(jax.random.PRNGKey(0), 30))
    assert len({tuple(r) for r in np.round(X, 12)}) == 30
    with pytest.raises(jd.JaxDistillError, match="n must be <= the pool size 30"):
        jd.distill(0, task, 31, 2)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: jd.distill(0, jd.KappaPolynomialTask(10), 0, 5), "n must be"),
        (lambda: jd.KappaPolynomialTask(1), "d must be"),
        (lambda: jd.KappaPolynomialTask(10, 0.0), "kappa must be"),
        (lambda: jd.KappaPolynomialTask(10, -1.0), "kappa must be"),
        (lambda: jd.KappaPolynomialTask(4, w_star=np.zeros(4)), "w_star must not be all zero"),
        (lambda: jd.PoolTask(np.array([[1.0, np.nan], [0.0, 1.0]]), np.ones(2)), "inputs must be finite"),
        (lambda: jd.PoolTask(np.ones((3, 4)), np.ones(5)), "w_star must have shape"),
        (lambda: jd.distill(0, jd.KappaPolynomialTask(10), 5, 0), "num_sets must be"),
        (lambda: jd.FlowConfig(rtol=0.0), "rtol must be"),
        (lambda: jd.distill(0, jd.KappaPolynomialTask(10), 5, 3, chunk_size=0), "chunk_size must be"),
    ],
)
def test_bad_input_names_the_parameter(make, match):
    with pytest.raises(jd.JaxDistillError, match=match):
        make()


def test_failed_sets_are_reported_not_averaged():
    task = jd.KappaPolynomialTask(50, 1.0)
    res = jd.distill(0, task, 10, 6, flow=jd.FlowConfig(max_steps=3))
    s = res.summary()
    assert s["num_failed"] == 6 and s["num_sets"] == 0
    assert {f["status"] for f in s["failed_sets"]} == {"max_steps_reached"}
    assert [f["index"] for f in s["failed_sets"]] == list(range(6))


def test_caller_precision_is_untouched():
    before = jax.config.read("jax_enable_x64")
    jd.distill(0, jd.KappaPolynomialTask(10), 3, 2, method="closed-form")
    assert jax.config.read("jax_enable_x64") == before


def test_cli_run_writes_summary(tmp_path):
    from jaxdistill.cli import main

    out = tmp_path / "k1"
    rc = main(["run", "--task", "kappa", "--kappa", "1", "--d", "60", "--n", "8", "--num-sets", "40",
               "--method", "flow", "--seed", "0", "--out", str(out), "--chunk-size", "16", "--quiet"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    for key in ("risk_mean", "risk_se", "num_sets", "failed_sets", "angle_mean", "max_rel_dist_closed_form"):
        assert key in s
    assert s["num_sets"] == 40 and s["failed_sets"] == []
    assert s["max_rel_dist_closed_form"] < 1e-6
    assert 0.0 <= s["risk_mean"] <= 1.0
    rows = (out / "sets.csv").read_text().strip().splitlines()
    assert len(rows) == 41
    cf = tmp_path / "cf"
    assert main(["run", "--d", "60", "--n", "8", "--num-sets", "40", "--method", "closed-form", "--out", str(cf),
                 "--chunk-size", "16", "--quiet"]) == 0
    s_cf = json.loads((cf / "summary.json").read_text())
    assert s_cf["max_rel_dist_closed_form"] is None
    assert abs(s_cf["risk_mean"] - s["risk_mean"]) < 1e-8


def test_cli_rejects_bad_option(capsys):
    from jaxdistill.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--kappa", "-1"])
    assert "--kappa must be a finite real number > 0.0" in capsys.readouterr().err


def test_hard_label_flow_is_a_finite_horizon_success():
    """Hard labels have no finite minimiser: the flow runs to the training
    time it is given (t_end) and is reported as a finite-horizon run, not
    as a failure."""
    task = jd.KappaPolynomialTask(20, 1.0)
    res = jd.distill(0, task, 5, 4, targets=jd.TargetSpec("hard"), flow=jd.FlowConfig(t_end=100.0),
                     keep_students=True)
    assert set(res.status.tolist()) == {6}  # finite_horizon
    assert res.summary()["num_failed"] == 0
    assert np.all(np.isfinite(res.students))
    # gradient flow descends the loss, which has no finite minimiser on separable hard labels: a longer training
    # has a lower loss on every set and a longer student (its norm grows like log t)
    longer = jd.distill(0, task, 5, 4, targets=jd.TargetSpec("hard"), flow=jd.FlowConfig(t_end=1e4),
                        keep_students=True)
    assert np.all(longer.arrays["loss"] < res.arrays["loss"])
    assert np.all(np.linalg.norm(longer.students, axis=1) > np.linalg.norm(res.students, axis=1))
