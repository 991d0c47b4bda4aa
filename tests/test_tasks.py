"""Tasks own their behaviour (issue 10, point 2): sampling, nested sets, held-out
data, validation of n, exact risk and p(theta) are methods of the task, and a
user-defined task gets the same power by implementing the same methods.

Every test asserts a property of the maths or of the contract, not that code ran.
"""

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.analysis import empirical_p_theta, exact_risk, has_exact_risk, mc_risk, pool_angles, sample_angles
from jaxdistill.tasks import (
    EXTRA_STREAM,
    AbstractSymmetricTask,
    AbstractTask,
    AngularMarginTask,
    CustomTask,
    GaussianTask,
    IsotropicGaussianTask,
    KappaPolynomialTask,
    PoolTask,
    make_task,
)
from jaxdistill.tasks.riskmath import gaussian_risk, signed_angle

HALF_PI = math.pi / 2
D = 8


# ---------------------------------------------------------------- user-defined tasks


class UniformAngleTask(AbstractSymmetricTask):
    """A user's rotationally symmetric task: x = nu (cos a e_1 + sin a g), a ~ U[0, pi/2],
    g uniform on the unit sphere orthogonal to e_1, nu ~ N(0, 1).  The same law as
    KappaPolynomialTask(d, 1), written independently."""

    d: int = eqx.field(static=True)
    w_star: jax.Array
    name: ClassVar[str] = "uniform-angle"

    def __init__(self, d):
        self.d = d
        self.w_star = np.eye(d)[0]

    def sample(self, key, num):
        k1, k2, k3 = jax.random.split(key, 3)
        a = jax.random.uniform(k1, (num,), maxval=HALF_PI)
        g = jax.random.normal(k2, (num, self.d)).at[:, 0].set(0.0)
        g = g / jnp.linalg.norm(g, axis=1, keepdims=True)
        z = (g * jnp.sin(a)[:, None]).at[:, 0].set(jnp.cos(a))
        return jax.random.normal(k3, (num,))[:, None] * z

    def p_theta(self, theta):
        return 1.0 - jnp.clip(jnp.asarray(theta), 0.0, HALF_PI) / HALF_PI


class ScaledGaussianTask(AbstractTask):
    """A user's non-symmetric task with its own closed-form risk: x ~ N(0, diag(scales^2)),
    R(w) = angle(S w, S w*) / pi (Sheppard's formula after whitening)."""

    d: int = eqx.field(static=True)
    w_star: jax.Array
    scales: jax.Array
    name: ClassVar[str] = "scaled-gaussian"

    def __init__(self, scales, w_star):
        self.scales = np.asarray(scales, np.float64)
        self.d = self.scales.shape[0]
        self.w_star = np.asarray(w_star, np.float64)

    def sample(self, key, num):
        return jax.random.normal(key, (num, self.d)) * self.scales

    @property
    def has_exact_risk(self):
        return True

    def exact_risk(self, W):
        return signed_angle(jnp.asarray(W) * self.scales, self.w_star * self.scales) / jnp.pi

    def config(self):
        return {"task": self.name, "d": self.d, "scales": [float(s) for s in self.scales]}


def uniform_angle_sampler(key, num):  # a plain function: CustomTask keeps it as a static (hashed) field
    return UniformAngleTask(D).sample(key, num)


def uniform_angle_p(theta):
    return 1.0 - jnp.clip(jnp.asarray(theta), 0.0, HALF_PI) / HALF_PI


SCALES = np.linspace(0.3, 2.0, D)
W_SCALED = np.linspace(1.0, -0.5, D)


def _tasks():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(D, D))
    return {
        "kappa0.5": KappaPolynomialTask(D, 0.5),
        "kappa3": KappaPolynomialTask(D, 3.0, w_star=rng.normal(size=D)),
        "margin": AngularMarginTask(D, 0.3, 2.0),
        "gaussian": IsotropicGaussianTask(D, teacher_norm=2.0),
        "gaussian-cov": GaussianTask(A @ A.T + np.eye(D), w_star=rng.normal(size=D)),
        "custom-sym": CustomTask(uniform_angle_sampler, np.eye(D)[0], p_theta=uniform_angle_p, rotationally_symmetric=True),
        "user-uniform-angle": UniformAngleTask(D),
        "user-scaled-gaussian": ScaledGaussianTask(SCALES, W_SCALED),
    }


TASKS = _tasks()
EXACT_P = [k for k, t in TASKS.items() if t.has_exact_p]
EXACT_RISK = [k for k, t in TASKS.items() if t.has_exact_risk]


def _students(task, num=6, seed=1):
    """Random students plus ones near w*, near -w* and at right angles (all risk regimes)."""
    W = np.random.default_rng(seed).normal(size=(num, task.d))
    w = np.asarray(task.w_star)
    W[0] = w + 0.05 * np.linalg.norm(w) * W[0] / np.linalg.norm(W[0])
    W[1] = -w + 0.3 * np.linalg.norm(w) * W[1] / np.linalg.norm(W[1])
    return W


# ---------------------------------------------------------------- p(theta)


def test_capabilities_are_declared_by_the_tasks():
    assert set(EXACT_P) == {"kappa0.5", "kappa3", "margin", "gaussian", "custom-sym", "user-uniform-angle"}
    assert set(EXACT_RISK) == set(TASKS)  # every task above has an exact risk, the users' included
    assert not CustomTask(uniform_angle_sampler, np.eye(D)[0]).has_exact_risk
    assert not GaussianTask(np.eye(3)).rotationally_symmetric
    for k in EXACT_P:
        assert TASKS[k].rotationally_symmetric


@pytest.mark.parametrize("name", EXACT_P)
def test_p_theta_is_the_reverse_cdf_of_sampled_angles(name):
    """DKW: sup_theta |p_hat - p| <= sqrt(log(2 / alpha) / (2 M)) with probability 1 - alpha."""
    task = TASKS[name]
    M = 20_000
    with precision():
        angles = sample_angles(jax.random.PRNGKey(11), task, M)
        theta = jnp.linspace(0.0, HALF_PI, 401)
        gap = float(jnp.max(jnp.abs(empirical_p_theta(angles, theta) - task.p_theta(theta))))
        p = np.asarray(task.p_theta(theta))
        top = float(jnp.max(angles))
    assert gap < math.sqrt(math.log(2 / 1e-6) / (2 * M)), gap
    assert p[0] == pytest.approx(1.0) and np.all(np.diff(p) <= 1e-15)  # a reverse CDF
    if name == "margin":  # no input within 0.3 of the boundary: p = 0 beyond pi/2 - 0.3
        assert top <= HALF_PI - 0.3 + 1e-12
        assert np.all(p[np.asarray(theta) >= HALF_PI - 0.3] == 0.0)


def test_tasks_without_p_refuse_p_theta_and_pools_expose_every_angle():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 4))
    pool = PoolTask(X, np.ones(4))
    for task in (pool, GaussianTask(np.eye(4) * 2.0), TASKS["user-scaled-gaussian"]):
        assert not task.has_exact_p
        with pytest.raises(jd.JaxDistillError, match="empirical_p_theta"):
            task.p_theta(0.3)
    with precision():
        a = np.asarray(pool_angles(pool))
    np.testing.assert_allclose(a, np.arccos(np.abs(X @ np.ones(4)) / np.linalg.norm(X, axis=1) / 2.0), atol=1e-12)
    assert pool.finite_support() is pool.pool and TASKS["kappa3"].finite_support() is None
    with pytest.raises(jd.JaxDistillError, match="finite pool"):
        pool_angles(TASKS["kappa3"])


# ---------------------------------------------------------------- exact risk


@pytest.mark.parametrize("name", EXACT_RISK)
def test_exact_risk_agrees_with_monte_carlo_within_4_se(name):
    task = TASKS[name]
    W = _students(task)
    with precision():
        X = task.held_out(jax.random.PRNGKey(5), 200_000)
        exact = np.asarray(task.exact_risk(W))
        r, se = mc_risk(jnp.asarray(W), X, jnp.asarray(task.w_star))
        batched = np.asarray(task.exact_risk(W.reshape(2, 3, task.d)))
        jitted = np.asarray(eqx.filter_jit(lambda t, w: t.exact_risk(w))(task, jnp.asarray(W)))
        functional = np.asarray(exact_risk(task, W))
    se_true = np.sqrt(exact * (1 - exact) / X.shape[0])  # the MC estimate's SE under the exact risk
    assert np.all(np.abs(exact - np.asarray(r)) < 4 * np.maximum(se_true, np.asarray(se)) + 1e-9), (exact, r, se)
    assert exact[0] < 0.05 and exact[1] > 0.7  # near w*: small; near -w*: large
    np.testing.assert_allclose(batched.reshape(-1), exact, rtol=1e-14, atol=1e-15)  # batched over leading axes
    np.testing.assert_allclose(jitted, exact, rtol=1e-12, atol=1e-15)
    # the analysis functions are the task's methods
    assert has_exact_risk(task)
    np.testing.assert_array_equal(functional, exact)


def test_user_tasks_match_their_built_in_equivalents():
    """A user class gets the built-in exact risk by implementing p_theta (symmetric) or exact_risk."""
    phi = np.linspace(0.0, math.pi, 23)
    user, builtin = UniformAngleTask(D), KappaPolynomialTask(D, 1.0)
    W = _students(builtin, 8)
    with precision():
        np.testing.assert_allclose(np.asarray(user.exact_risk(W)), np.asarray(builtin.exact_risk(W)), atol=1e-14)
        np.testing.assert_allclose(np.asarray(user.risk_from_angle(phi)), np.asarray(builtin.risk_from_angle(phi)),
                                   atol=1e-14)
        scaled = TASKS["user-scaled-gaussian"]
        cov = GaussianTask(np.diag(SCALES**2), w_star=W_SCALED)
        np.testing.assert_allclose(np.asarray(scaled.exact_risk(W)), np.asarray(cov.exact_risk(W)), atol=1e-12)
        np.testing.assert_allclose(np.asarray(cov.exact_risk(W)), np.asarray(gaussian_risk(W, W_SCALED, np.diag(SCALES**2))),
                                   atol=0)


def test_margin_students_inside_the_wedge_make_no_error():
    """The margin task's quadrature starts at its wedge: R(phi) = 0 for phi <= margin, > 0 beyond."""
    task = AngularMarginTask(D, 0.3, 1.0)
    assert task.risk_wedge == 0.3 and KappaPolynomialTask(D).risk_wedge == 0.0
    with precision():
        r = np.asarray(task.risk_from_angle(jnp.array([0.0, 0.1, 0.29, 0.31, 1.0, math.pi - 0.29])))
    assert np.all(r[:3] == 0.0) and np.all(r[3:5] > 0.0) and r[5] == 1.0


def test_isotropic_gaussian_exact_risk_is_angle_over_pi_both_ways():
    task = TASKS["gaussian"]
    W = _students(task)
    with precision():
        phi = signed_angle(jnp.asarray(W), jnp.asarray(task.w_star))
        np.testing.assert_allclose(np.asarray(task.exact_risk(W)), np.asarray(phi) / np.pi, rtol=1e-15)
        np.testing.assert_allclose(np.asarray(task.risk_from_angle(phi)), np.asarray(phi) / np.pi, atol=1e-9)


def test_tasks_without_exact_risk_refuse_it_naming_mc_risk():
    task = CustomTask(uniform_angle_sampler, np.eye(D)[0])
    assert not task.has_exact_risk and not has_exact_risk(task)
    with pytest.raises(jd.JaxDistillError, match="mc_risk"):
        task.exact_risk(np.ones(D))
    with pytest.raises(jd.JaxDistillError, match="rotationally symmetric"):
        task.risk_from_angle(0.3)


def test_pool_exact_risk_is_the_disagreement_over_its_test_inputs():
    rng = np.random.default_rng(3)
    pool, test = rng.normal(size=(40, 5)), rng.normal(size=(25, 5))
    w = rng.normal(size=5)
    W = rng.normal(size=(7, 5))
    with precision():
        for t, X in ((PoolTask(pool, w, test_inputs=test), test), (PoolTask(pool, w), pool)):
            ref = np.mean(np.sign(W @ X.T) != np.sign(X @ w), axis=1)
            np.testing.assert_allclose(np.asarray(t.exact_risk(W)), ref, rtol=1e-7)  # mc_risk: float32 mean


# ---------------------------------------------------------------- nested sets


@pytest.mark.parametrize("name", list(TASKS) + ["pool"])
def test_sample_nested_draws_the_set_sample_draws(name):
    task = TASKS.get(name) or PoolTask(np.random.default_rng(4).normal(size=(30, D)), np.ones(D))
    key = jax.random.PRNGKey(21)
    with precision():
        X, x = task.sample_nested(key, 7)
        np.testing.assert_array_equal(np.asarray(X), np.asarray(task.sample(key, 7)))
        assert x.shape == (task.d,)
        if name != "pool":  # an i.i.d. law: x is a fresh draw on the EXTRA_STREAM key
            np.testing.assert_array_equal(np.asarray(x), np.asarray(task.sample(jax.random.fold_in(key, EXTRA_STREAM), 1)[0]))
        # vmapped over keys (as the engine runs it): the same sets as sample vmapped
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(3))
        Xv, xv = jax.vmap(lambda k: task.sample_nested(k, 7))(keys)
        np.testing.assert_array_equal(np.asarray(Xv), np.asarray(jax.vmap(lambda k: task.sample(k, 7))(keys)))
    assert EXTRA_STREAM == 0xE87A


def test_pool_sample_nested_extra_input_is_outside_X():
    rng = np.random.default_rng(5)
    pool = rng.normal(size=(12, 4))
    task = PoolTask(pool, np.ones(4))
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    with precision():
        for n in (5, 11):
            X, x = jax.vmap(lambda k: task.sample_nested(k, n))(keys)
            idx = jax.vmap(lambda k: task.sample_indices(k, n))(keys)
            X, x, idx = np.asarray(X), np.asarray(x), np.asarray(idx)
            np.testing.assert_array_equal(X, pool[idx])  # sample_indices are the rows sample returns
            for b in range(len(keys)):
                assert len(set(idx[b])) == n  # without replacement
                j = np.flatnonzero(np.all(pool == x[b], axis=1))
                assert len(j) == 1 and j[0] not in idx[b]  # x is a pool row not in X
            if n == 11:  # only one row is left
                assert all(set(idx[b]) | {np.flatnonzero(np.all(pool == x[b], axis=1))[0]} == set(range(12))
                           for b in range(len(keys)))


# ---------------------------------------------------------------- validation of n


def test_check_n_names_n_and_the_allowed_range():
    pool = PoolTask(np.random.default_rng(6).normal(size=(30, 3)), np.ones(3))
    assert pool.check_n(30) == 30 and pool.check_n(29, extra=1) == 29 and pool.check_n(np.int64(3)) == 3
    with pytest.raises(jd.JaxDistillError, match=r"n must be <= the pool size 30 .*1 <= n <= 30\), got 31"):
        pool.check_n(31)
    with pytest.raises(jd.JaxDistillError, match=r"n must be <= pool size - 1 = 29 .*1 <= n <= 29\), got 30"):
        pool.check_n(30, extra=1)
    with pytest.raises(jd.JaxDistillError, match=r"num must be <= the pool size 30"):
        pool.check_n(31, name="num")
    with pytest.raises(jd.JaxDistillError, match=r"n must be <= pool size - 1"):
        pool.sample_nested(jax.random.PRNGKey(0), 30)
    for task in (pool, TASKS["kappa3"], TASKS["user-uniform-angle"]):
        for bad in (0, -2, 2.5, "3", True):
            with pytest.raises(jd.JaxDistillError, match=r"n must be an integer >= 1"):
                task.check_n(bad)
    assert TASKS["kappa3"].check_n(10**9, extra=5) == 10**9  # a law has no upper bound
    with pytest.raises(jd.JaxDistillError, match="extra"):
        pool.check_n(3, extra=-1)


# ---------------------------------------------------------------- make_task


def test_make_task_builds_only_with_options_that_apply():
    assert make_task("kappa", d=5, kappa=2.0) == KappaPolynomialTask(5, 2.0)
    assert make_task("margin", d=5, margin=0.25, kappa=1.5).config() == AngularMarginTask(5, 0.25, 1.5).config()
    g = make_task("gaussian", d=5, teacher_norm=3.0)
    assert isinstance(g, IsotropicGaussianTask) and float(np.linalg.norm(g.w_star)) == 3.0
    assert make_task("margin", d=5).config() == {"task": "margin", "d": 5, "margin": 0.2, "kappa": 1.0}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_task("gaussian", d=5, kappa=2.0), r"kappa applies only to task kappa, margin, not to task 'gaussian'"),
        (lambda: make_task("kappa", d=5, margin=0.1), r"margin applies only to task margin, not to task 'kappa'"),
        (lambda: make_task("gaussian", d=5, margin=0.1), r"margin applies only to task margin"),
        (lambda: make_task("kappa", d=5, width=3), r"width"),
        (lambda: make_task("kappa", d=1), r"d must be an integer in \[2, "),
        (lambda: make_task("margin", d=5, margin=2.0), r"margin must be"),
    ],
)
def test_make_task_refusals_name_the_option(call, match):
    with pytest.raises((jd.JaxDistillError, TypeError), match=match):
        call()


@pytest.mark.parametrize("name", ["pool", "mnist", "Kappa", ""])
def test_make_task_lists_only_names_it_accepts(name):
    with pytest.raises(jd.JaxDistillError) as e:
        make_task(name, d=5)
    listed = str(e.value).split(";")[0]
    assert listed == "task must be one of kappa, margin, gaussian"


# ---------------------------------------------------------------- cast and config


@pytest.mark.parametrize("name", ["kappa3", "gaussian-cov", "custom-sym", "user-scaled-gaussian", "pool"])
def test_cast_changes_the_dtype_of_every_array_and_of_samples(name):
    task = TASKS.get(name) or PoolTask(np.random.default_rng(7).normal(size=(20, D)), np.ones(D),
                                       test_inputs=np.ones((3, D)))
    for dtype, jdt in (("float32", jnp.float32), ("float64", jnp.float64)):
        with precision(dtype):
            t = task.cast(dtype)
            # the arrays (a traced setting such as kappa is a Python float leaf, lifted only by the runner)
            leaves = [leaf for leaf in jax.tree_util.tree_leaves(t) if not isinstance(leaf, float)]
            assert leaves and all(leaf.dtype == jdt for leaf in leaves)
            assert t.sample(jax.random.PRNGKey(0), 4).dtype == jdt
            assert t.config()["task"] == task.config()["task"] and t.d == task.d
            if not name.startswith("user"):  # built-in configs hold only static fields
                assert t.config() == task.config()
            if t.has_exact_risk and name != "pool":  # a pool's risk is a mean of booleans (mc_risk's dtype)
                assert t.exact_risk(jnp.ones((2, t.d), jdt)).dtype == jdt
    with precision("float32"):  # same numbers as sampling in float32 from the float64 task
        np.testing.assert_array_equal(np.asarray(task.cast("float32").sample(jax.random.PRNGKey(1), 3)),
                                      np.asarray(task.sample(jax.random.PRNGKey(1), 3)))
    with pytest.raises(jd.JaxDistillError, match="dtype must be one of float64, float32"):
        task.cast("float16")


def test_abstract_task_checks_what_a_user_task_declares():
    class NoSampler(AbstractTask):
        d: int = 3
        w_star: np.ndarray = eqx.field(default_factory=lambda: np.ones(3))
        name: ClassVar[str] = "no-sampler"

    with pytest.raises(TypeError, match="abstract"):
        NoSampler()

    class BadTeacher(AbstractTask):
        d: int = eqx.field(static=True)
        w_star: np.ndarray
        name: ClassVar[str] = "bad"

        def sample(self, key, num):
            return jnp.zeros((num, self.d))

    with pytest.raises(jd.JaxDistillError, match=r"w_star must have shape \[d\] = \[3\], got shape \(4,\)"):
        BadTeacher(3, np.ones(4))
    with pytest.raises(jd.JaxDistillError, match="d must be a Python integer >= 2"):
        BadTeacher(1, np.ones(1))
    ok = BadTeacher(3, np.ones(3))
    assert ok.config() == {"task": "bad", "d": 3} and not ok.has_exact_risk and not ok.has_exact_p
    with precision():
        X, x = ok.sample_nested(jax.random.PRNGKey(0), 4)
    assert X.shape == (4, 3) and x.shape == (3,)


# ---------------------------------------------------------------- end to end


def test_user_task_runs_end_to_end_through_distill():
    """The user's symmetric task through ``distill``: every student's risk is the task's exact risk,
    and the expected risk agrees with the built-in kappa = 1 task's within the sets' SE."""
    user, builtin = UniformAngleTask(20), KappaPolynomialTask(20, 1.0)
    res_u = jd.distill(0, user, 5, 64, method="closed-form", keep_students=True)
    res_b = jd.distill(0, builtin, 5, 64, method="closed-form")
    assert res_u.risk_method == "exact" and bool(np.all(res_u.ok))
    with precision():
        np.testing.assert_allclose(res_u.risk, np.asarray(user.exact_risk(res_u.students)), rtol=1e-12)
    mu, mb = res_u.expected_risk(), res_b.expected_risk()
    assert abs(mu.mean - mb.mean) < 4 * math.hypot(mu.se, mb.se)
