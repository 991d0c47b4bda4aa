"""Issue 3: deep linear students (Thm 2, Appendix C)."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.students.deep import (DeepGDLearner, DeepLearner, balanced_init, balancedness_defect, check_eq11,
                                      deep_flow, eq11_max_init_scale, eq11_sup_over_sets, eq76_bound, gaussian_init)
from jaxdistill.status import Status
from jaxdistill.students import FlowConfig
from jaxdistill.teachers import cross_entropy
from jaxdistill.validation import JaxDistillError

TIGHT = FlowConfig(rtol=1e-9, atol=1e-12, newton_tol=1e-10)
# explicit solver: small, well-conditioned test problems compile much faster than with Kvaerno5
FAST = FlowConfig(solver=diffrax.Tsit5(), rtol=1e-10, atol=1e-12, newton_tol=1e-10, max_steps=100_000)


from conftest import transfer_sets as _sets  # noqa: E402  (the shared helper)


def _keys(B, seed=7):
    return jax.random.split(jax.random.PRNGKey(seed), B)


@pytest.mark.parametrize("depth", [2, 3])
def test_n_ge_d_recovers_teacher(depth):
    """Thm 2, eq. 14: for n >= d the deep student converges to w* itself."""
    task = jd.IsotropicGaussianTask(5)
    X, u = _sets(task, 8, 6)
    learner = DeepLearner(depth=depth, init_scale=0.05, flow=FAST)
    with precision():
        out = jax.vmap(learner.fit_logits)(_keys(6), X, u)
    assert np.all(np.asarray(out.status) == Status.CONVERGED)
    err = np.linalg.norm(np.asarray(out.w) - np.asarray(task.w_star)[None], axis=1)
    assert np.max(err) < 1e-7
    assert np.all(np.asarray(out.extras["eq76_bound"]) == 0.0)  # n >= d: the bound is 0 (eq. 14)


def test_n_lt_d_eq76_bound_holds_and_shrinks_with_scale():
    """Thm 2, eq. 15 / 76: ||w(inf) - w_hat|| <= eq. 76 over a batch and init
    scales; the distance (and the bound) shrink with the init scale."""
    task = jd.KappaPolynomialTask(10, 1.0)
    B = 6
    X, u = _sets(task, 4, B)
    scales = jnp.array([3e-1, 1e-1, 1e-2, 1e-3])
    cfg = FlowConfig(rtol=1e-8, atol=1e-12, newton_tol=1e-10)  # stiff task: implicit solver

    def one(key, X, u, s):
        ini = balanced_init(key, X, u, depth=2, width=3, init_scale=s)
        res = deep_flow(X, u, ini, integrator="reduced", config=cfg)
        a = jnp.linalg.norm(jd.closed_form(X, u))
        return res.status, res.dist_w_hat, eq76_bound(ini.init_norm, a, 2), res.loss, ini.cond12

    with precision():
        f = jax.vmap(jax.vmap(one, in_axes=(0, 0, 0, None)), in_axes=(None, None, None, 0))
        status, dist, bound, loss, c12 = map(np.asarray, f(_keys(B), X, u, scales))
    assert np.all(status == Status.CONVERGED) and np.all(c12)
    assert np.all(loss < 1e-15)  # in-span part reaches w_hat: L^1 -> 0
    finite = np.isfinite(bound)
    assert finite[1:].all()  # the three smallest scales are below ||w_hat|| for every set
    assert np.all(dist[finite] <= bound[finite])
    assert np.all(dist > 0)  # n < d: a non-zero orthogonal part remains
    assert np.all(np.diff(dist, axis=0) < 0)  # smaller init -> closer to w_hat, set by set
    assert np.all(np.diff(bound[1:], axis=0) < 0)


@pytest.mark.parametrize("depth", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_full_induced_reduced_agree_balanced_and_eq66(depth):
    """Under balanced init (eq. 13) the full flow on all W_i, the induced flow
    (eq. 56) and the reduced flow (docs/design.md fact 2) are one trajectory; the
    full flow preserves balancedness; the orthogonal part keeps its direction
    and follows eq. 66."""
    task = jd.KappaPolynomialTask(7, 1.0)
    X, u = _sets(task, 3, 2)
    ts = jnp.array([0.5, 2.0, 10.0, 50.0])
    cfg = FAST

    def one(key, X, u):
        ini = balanced_init(key, X, u, depth=depth, width=4, init_scale=0.05)
        red = deep_flow(X, u, ini, integrator="reduced", config=cfg, ts=ts)
        ind = deep_flow(X, u, ini, integrator="induced", config=cfg, ts=ts)
        full = deep_flow(X, u, ini, integrator="full", config=cfg, ts=ts)
        if depth == 2:  # the plain d-column W_1 is exercised in the slow N = 3 case
            return ini, red, ind, full, full
        fullp = deep_flow(X, u, ini, integrator="full", config=FlowConfig(solver=diffrax.Tsit5(), rtol=1e-10, atol=1e-12,
                                                                           newton_tol=1e-10, max_steps=100_000,
                                                                           coordinates="plain"), ts=ts)
        return ini, red, ind, full, fullp

    with precision():
        ini, red, ind, full, fullp = jax.vmap(one)(_keys(2), X, u)
        Q = jax.vmap(lambda x: jnp.linalg.qr(x.T)[0])(X)
    for r in (red, ind, full, fullp):
        assert np.all(np.asarray(r.status) == Status.CONVERGED)
        np.testing.assert_allclose(np.asarray(r.ts_w), np.asarray(red.ts_w), atol=1e-7)
        np.testing.assert_allclose(np.asarray(r.w), np.asarray(red.w), atol=1e-7)
    # balancedness is a conserved quantity of the full gradient flow (Arora et al. 2018)
    assert np.max(np.asarray(ini.balancedness_defect)) < 1e-14
    assert np.max(np.asarray(full.ts_balancedness_defect)) < 1e-7
    assert np.max(np.asarray(fullp.balancedness_defect)) < 1e-7
    # orthogonal component: fixed direction, eq. 66 q(t)/q(0) = (||w(t)||/||w(0)||)^{2(N-1)/N}
    Qn = np.asarray(Q)
    w0 = np.asarray(ini.w0)
    for b in range(2):
        P = np.eye(7) - Qn[b] @ Qn[b].T
        q0 = P @ w0[b]
        for w_t in np.asarray(full.ts_w)[b]:
            q_t = P @ w_t
            cos = q_t @ q0 / (np.linalg.norm(q_t) * np.linalg.norm(q0))
            assert cos > 1 - 1e-12
            ratio = (q_t @ q_t) / (q0 @ q0)
            pred = (np.linalg.norm(w_t) / np.linalg.norm(w0[b])) ** (2 * (depth - 1) / depth)
            assert abs(ratio / pred - 1) < 1e-6
    assert np.all(np.diff(np.asarray(red.ts_loss), axis=1) < 0)  # L^1 decreases along the flow (eq. 57)


@pytest.mark.slow
def test_discrete_gd_on_factors_matches_flow():
    """Small-step GD (optax) on all W_i approaches the full flow's limit."""
    task = jd.IsotropicGaussianTask(6)
    X, u = _sets(task, 3, 3)
    flow_l = DeepLearner(depth=2, init_scale=0.05, integrator="reduced", flow=FAST)
    gd_l = DeepGDLearner(depth=2, width=3, init_scale=0.05, gd=jd.GDConfig(learning_rate=0.05, steps=40_000))
    with precision():
        a = jax.vmap(flow_l.fit_logits)(_keys(3), X, u)
        b = jax.vmap(gd_l.fit_logits)(_keys(3), X, u)
    # GD is the explicit Euler discretisation of the flow: its limit differs by O(eta) (measured 2e-4
    # at eta = 0.05); a wrong gradient or factor update is off by O(1)
    assert np.max(np.abs(np.asarray(a.w) - np.asarray(b.w))) < 1e-3
    assert np.max(np.asarray(b.extras["balancedness_defect"])) < 1e-2  # GD conserves it only approximately


def test_eq11_algebra():
    """Eq. 11 simplifies to ||w_hat|| (1 + ||w_hat||^2/eps^2)^{-N/2}; at equality eq. 76 is exactly eps."""
    with precision():
        for N in (1, 2, 3, 5):
            for a in (0.05, 0.7, 3.0):
                eps = 0.1
                lim = float(eq11_max_init_scale(eps, a, N))
                raw = min(a, eps ** N * (eps ** 2 * a ** (-2 / N) + a ** (2 - 2 / N)) ** (-N / 2))
                assert abs(lim - raw) < 1e-12 * raw
                assert abs(float(eq76_bound(lim, a, N)) - eps) < 1e-9
                assert lim <= eq11_sup_over_sets(eps, N) + 1e-15
        assert float(eq76_bound(1.0, 0.5, 2)) == np.inf  # ||w(0)|| >= ||w_hat||: no guarantee
        assert float(eq76_bound(0.1, 0.5, 2, full_rank_cover=True)) == 0.0


def test_epsilon_guarantee_per_set():
    """init_scale from epsilon (eq. 11) gives eq. 76 bounds <= epsilon and distances below them."""
    task = jd.KappaPolynomialTask(10, 1.0)
    res = jd.distill(0, task, 4, 6, learner=DeepLearner(depth=2, epsilon=0.05))
    ok = res.ok
    assert ok.all()
    e = res.extras
    assert np.all(e["eq11_satisfied"] == 1.0)
    assert np.all(e["eq76_bound"] <= 0.05 + 1e-12)
    assert np.all(e["dist_w_hat"] <= e["eq76_bound"])
    assert np.all(e["init_balancedness_defect"] < 1e-14)


def test_gaussian_init_is_unbalanced_and_scaled():
    with precision():
        X, u = _sets(jd.KappaPolynomialTask(6, 1.0), 3, 1)
        ini = gaussian_init(jax.random.PRNGKey(0), X[0], u[0], depth=3, width=4, init_scale=0.02)
        bal = balanced_init(jax.random.PRNGKey(0), X[0], u[0], depth=3, width=4, init_scale=0.02)
        L = lambda w: float(cross_entropy(X[0] @ w, u[0]))
        l_init, l_zero = L(bal.w0), L(jnp.zeros(6))
        defect_bal = float(balancedness_defect(bal.Ws))
    assert abs(float(ini.init_norm) - 0.02) < 1e-15
    assert float(ini.balancedness_defect) > 1e-2
    assert defect_bal < 1e-14
    assert l_init < l_zero  # condition 12 met (by a sign flip if needed)


def test_bad_input_errors():
    with pytest.raises(JaxDistillError, match="depth"):
        DeepLearner(depth=0)
    with pytest.raises(JaxDistillError, match="width"):
        DeepLearner(width=0)
    for integrator in ("reduced", "induced"):  # they never form the factors: a width would do nothing
        with pytest.raises(JaxDistillError, match=f"width applies to DeepLearner only with integrator='full'.*the "
                                                  f"{integrator} integrator never forms them"):
            DeepLearner(width=8, integrator=integrator)
    assert DeepLearner(width=8, integrator="full").hidden_width == 8
    assert DeepLearner().hidden_width == DeepLearner(integrator="full").hidden_width == jd.DEFAULTS.deep_width == 64
    with pytest.raises(JaxDistillError, match="init_scale"):
        DeepLearner(init_scale=0.0)
    with pytest.raises(JaxDistillError, match="init_scale"):
        DeepLearner(init_scale=-1.0)
    with pytest.raises(JaxDistillError, match="eq. 11"):
        DeepLearner(depth=2, init_scale=0.1, epsilon=0.01)  # sup of eq. 11 over sets is eps/2 for N = 2
    DeepLearner(depth=2, init_scale=0.004, epsilon=0.01)  # allowed for some sets
    with pytest.raises(JaxDistillError, match="eq. 11"):
        check_eq11(0.01, 0.01, 1.0, 2)
    with pytest.raises(JaxDistillError, match="integrator"):
        DeepLearner(integrator="euler")
    with pytest.raises(JaxDistillError, match="balanced"):
        DeepLearner(init="gaussian", integrator="reduced")


# ---------------------------------------------------------------- issue 10: one constructor, one job per module


def test_deep_learner_constructor_and_refusals():
    """deep_learner(method="gd") gives DeepGDLearner (reachable from the CLI as --depth N --method gd);
    options that do not apply to the method are refused, naming them."""
    from jaxdistill.students import deep_learner

    fl = deep_learner(depth=3, epsilon=0.02, integrator="induced", flow=FAST)
    assert fl == DeepLearner(depth=3, epsilon=0.02, integrator="induced", flow=FAST)
    assert deep_learner(depth=2) == DeepLearner(depth=2)
    gd = deep_learner(depth=2, width=3, init_scale=0.05, method="gd", gd=jd.GDConfig(learning_rate=0.1, steps=5))
    assert gd == DeepGDLearner(depth=2, width=3, init_scale=0.05, gd=jd.GDConfig(learning_rate=0.1, steps=5))
    assert deep_learner(depth=2, method="gd") == DeepGDLearner(depth=2)
    assert gd.config()["method"] == "deep-gd" and gd.config()["gd"]["learning_rate"] == 0.1
    with pytest.raises(JaxDistillError, match="integrator applies only to method='flow'"):
        deep_learner(depth=2, method="gd", integrator="full")
    with pytest.raises(JaxDistillError, match="flow applies only to method='flow'"):
        deep_learner(depth=2, method="gd", flow=FlowConfig())
    with pytest.raises(JaxDistillError, match="gd applies only to method='gd'"):
        deep_learner(depth=2, gd=jd.GDConfig())
    with pytest.raises(JaxDistillError, match="method"):
        deep_learner(depth=2, method="adam")
    with pytest.raises(JaxDistillError, match="depth"):
        deep_learner(depth=0, method="gd")


def test_deep_gd_learner_through_distill():
    """gradient descent on the deep factors runs through the engine: finite horizon, the loss (0 at the limit)
    driven down by orders of magnitude from the small initialisation's (the flow's limit itself: the slow test
    test_discrete_gd_on_factors_matches_flow)."""
    task = jd.KappaPolynomialTask(8, 1.0)
    gd = DeepGDLearner(depth=2, width=3, init_scale=0.05, gd=jd.GDConfig(learning_rate=0.5, steps=400))
    res = jd.distill(1, task, 3, 4, learner=gd)
    first = jd.distill(1, task, 3, 4, learner=DeepGDLearner(depth=2, width=3, init_scale=0.05,
                                                            gd=jd.GDConfig(learning_rate=0.5, steps=1)))
    assert np.all(res.arrays["loss"] < 1e-2 * first.arrays["loss"])
    assert np.all(res.status == Status.FINITE_HORIZON) and res.ok.all()
    assert res.config["method"] == "deep-gd" and res.config["gd"]["steps"] == 400
    assert np.all(np.isfinite(res.extras["dist_w_hat"])) and np.all(np.isnan(res.extras["t_final"]))
    assert gd.for_dtype("float32") is gd  # no flow to adjust


def test_deep_package_modules():
    """students/deep is split by job; every public name is still importable from students.deep."""
    import importlib

    import jaxdistill.students.deep as deep

    jobs = {"algebra": {"eq11_max_init_scale", "eq76_bound", "check_eq11", "end_to_end", "balancedness_defect"},
            "inits": {"DeepInit", "balanced_init", "gaussian_init", "make_init"},
            "integrators": {"deep_flow", "deep_gradient_descent", "DeepFlowResult"},
            "learners": {"DeepLearner", "DeepGDLearner", "deep_learner"}}
    for mod, names in jobs.items():
        m = importlib.import_module(f"jaxdistill.students.deep.{mod}")
        for name in names:
            assert getattr(deep, name) is getattr(m, name)
    assert not hasattr(deep, "deep_learner_from_options")


# ---------------------------------------------------------------- issue 11: deep defaults are accurate


@pytest.mark.parametrize("depth", [2, 3])
def test_default_integrators_reach_the_exact_limit(depth):
    """With default settings (default_flow_config: the linear default for "reduced", Kvaerno5 with
    rtol 1e-8 / atol 1e-14 for "induced" and "full") every integrator lands within 1e-8 relative of the
    exact limit w_hat + s_inf q_hat of docs/design.md fact 2 (a), computed without integration (eq. 66).
    With the old shared default (rtol 1e-2) induced was 2e-4 (N = 2) / 2e-3 (N = 3) off: this fails then."""
    from jaxdistill.students.deep import exact_deep_limit
    from jaxdistill.students.deep.learners import _init_for_set

    task = jd.KappaPolynomialTask(10, 1.0)
    B = 4
    X, u = _sets(task, 3, B, seed=5)
    keys = _keys(B, seed=3)
    with precision():
        ref = np.stack([np.asarray(exact_deep_limit(X[b], u[b], _init_for_set(keys[b], X[b], u[b], depth, 4, None, None,
                                                                              0.5, "balanced")[0].w0, depth))
                        for b in range(B)])
        for integrator in ("reduced", "induced", "full"):
            out = jax.vmap(DeepLearner(depth=depth, width=4 if integrator == "full" else None,
                                       integrator=integrator).fit_logits)(keys, X, u)
            assert np.all(np.asarray(out.status) == Status.CONVERGED), integrator
            rel = np.linalg.norm(np.asarray(out.w) - ref, axis=1) / np.linalg.norm(ref, axis=1)
            assert rel.max() <= 1e-8, (integrator, rel.max())


def test_default_flow_config_per_integrator_and_overrides():
    from jaxdistill.students.deep import PATH_FLOW_CONFIG, default_flow_config

    # reduced: the linear default with Kvaerno3 (path independent, eq. 66; Rodas3 struggles at N = 3)
    assert DeepLearner(depth=2).flow == FlowConfig(solver=diffrax.Kvaerno3())
    for integ in ("induced", "full"):
        assert DeepLearner(depth=2, integrator=integ).flow == PATH_FLOW_CONFIG
        assert PATH_FLOW_CONFIG.rtol == 1e-8 and PATH_FLOW_CONFIG.atol == 1e-14
    c = default_flow_config("full", rtol=1e-10)
    assert c.rtol == 1e-10 and c.atol == 1e-14 and isinstance(c.solver, diffrax.Kvaerno5)
    assert DeepLearner(depth=2, flow=TIGHT).flow == TIGHT  # a user's config is kept
    f32 = DeepLearner(depth=2, integrator="induced").for_dtype("float32").flow
    assert f32.rtol == 1e-4 and f32.atol == 1e-6 and f32.newton_tol == 1e-5
    assert DeepLearner(depth=2, integrator="induced", flow=TIGHT).for_dtype("float32").flow.rtol == TIGHT.rtol
