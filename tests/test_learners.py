"""Issue 5: reduced-bias learners w_delta (section 5.2) and the hard-target
learner with its max-margin limit (section 5.3)."""

import dataclasses
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.analysis import signed_angle
from jaxdistill.status import Status
from jaxdistill.students.hard import HardTargetLearner, hard_logits, max_margin
from jaxdistill.students.wdelta import WDeltaLearner, orthogonal_gaussian, w_delta


from conftest import transfer_sets as _sets  # noqa: E402  (the shared helper)


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
        out = jax.vmap(lambda k, a, b: WDeltaLearner(delta=50.0).fit_logits(k, a, b))(jax.random.split(jax.random.PRNGKey(0), 4), X, u)
        assert np.all(np.asarray(orthogonal_gaussian(jax.random.PRNGKey(3), X[0])) == 0.0)
    np.testing.assert_allclose(np.asarray(out.w), np.tile(np.asarray(task.w_star), (4, 1)), atol=1e-10)
    assert np.all(np.asarray(out.status) == Status.CONVERGED)
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
        WDeltaLearner(base="closed-form")
    with pytest.raises(jd.JaxDistillError, match="method"):
        HardTargetLearner(method="svm")


def test_max_margin_matches_generic_qp_and_kkt():
    """The dual solve gives the hard-margin SVM through the origin (checked
    against scipy SLSQP on the primal) and satisfies its KKT conditions."""
    task = jd.KappaPolynomialTask(12, 2.0)
    X, u = _sets(task, 7, 6, seed=4)
    with precision():
        s = jnp.where(u >= 0, 1.0, -1.0)
        res = jax.vmap(max_margin)(X, s)
    assert np.all(np.asarray(res.status) == Status.CONVERGED)
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
    with precision():
        s = jnp.where(u >= 0, 1.0, -1.0)
        uh = hard_logits(u)
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
        soft = jax.vmap(HardTargetLearner().fit_logits)(keys, X, u)
        hard = jax.vmap(HardTargetLearner().fit_logits)(keys, X, hard_logits(u))
        fl = jax.vmap(HardTargetLearner(method="flow", flow=jd.FlowConfig(t_max=1e4)).fit_logits)(keys, X, u)
    np.testing.assert_array_equal(np.asarray(soft.w), np.asarray(hard.w))
    # the finite-time flow fits every hard label (all logits have the teacher's sign)
    assert np.all(np.asarray(fl.status) == Status.FINITE_HORIZON)
    assert np.all(np.sign(np.einsum("bnd,bd->bn", np.asarray(X), np.asarray(fl.w))) == np.sign(np.asarray(u)))
    # and through distill with hard targets
    res = jd.distill(0, task, 5, 50, learner=HardTargetLearner(), targets=jd.TargetSpec(kind="hard"))
    assert res.ok.all() and 0.0 < res.expected_risk().mean < 0.5


# ---------------------------------------------------------------- issue 10: the learner API


def test_learners_are_equinox_modules_usable_as_static_filter_jit_args():
    """Every learner is an AbstractLearner (equinox Module), hashable and equal by value; passed
    to eqx.filter_jit as an argument it gives the same numbers as a closure, and equal learners
    share one compilation."""
    import equinox as eqx
    import optax

    from jaxdistill.students import (AbstractLearner, ClosedFormLearner, DeepGDLearner, DeepLearner, FlowLearner,
                                     GDLearner)

    learners = [ClosedFormLearner(), FlowLearner(), GDLearner(jd.GDConfig(steps=20)), WDeltaLearner(0.5),
                WDeltaLearner(1.0, base=jd.FlowLearner()), HardTargetLearner(), HardTargetLearner(method="gd"),
                DeepLearner(depth=2), DeepGDLearner(depth=2, width=3, gd=jd.GDConfig(steps=5)),
                GDLearner(jd.GDConfig(optimizer=optax.adam(0.1), steps=5))]
    for lr in learners:
        assert isinstance(lr, AbstractLearner) and isinstance(lr, eqx.Module)
        assert hash(lr) == hash(type(lr)(**{f.name: getattr(lr, f.name) for f in dataclasses.fields(lr)}))
        cfg = lr.config()
        assert cfg["method"] == lr.name and list(cfg)[0] == "method"
        json.dumps(cfg)
    assert FlowLearner() == FlowLearner(jd.FlowConfig()) and hash(FlowLearner()) == hash(FlowLearner(jd.FlowConfig()))
    assert WDeltaLearner(0.5) != WDeltaLearner(0.25)

    task = jd.KappaPolynomialTask(12, 1.0)
    X, u = _sets(task, 4, 3)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    traces = []

    @eqx.filter_jit
    def run(learner, keys, X, u):
        traces.append(1)
        return jax.vmap(learner.fit_logits)(keys, X, u)

    with precision():
        for lr in (FlowLearner(), WDeltaLearner(0.5), DeepLearner(depth=2)):
            a = run(lr, keys, X, u)
            b = jax.jit(jax.vmap(lr.fit_logits))(keys, X, u)
            np.testing.assert_array_equal(np.asarray(a.w), np.asarray(b.w))
        n = len(traces)
        run(FlowLearner(jd.FlowConfig()), keys, X, u)  # equal learner: no retrace
        assert len(traces) == n


def test_flow_config_takes_diffrax_objects():
    """Any diffrax solver, step-size controller and adjoint; names only through solver_from_name;
    rtol/atol are refused together with a controller; defaults are Rodas3 / PID(1e-2, 1e-5) / ForwardMode."""
    import diffrax

    from jaxdistill.students import SOLVER_NAMES, Rodas3, solver_from_name

    c = jd.FlowConfig()
    assert c.solver == Rodas3() and c.adjoint == diffrax.ForwardMode()
    assert c.controller == diffrax.PIDController(rtol=1e-2, atol=1e-5) and (c.rtol, c.atol) == (1e-2, 1e-5)
    assert solver_from_name("Kvaerno5") == diffrax.Kvaerno5() and "Tsit5" in SOLVER_NAMES
    assert solver_from_name("Rodas3") == Rodas3() and SOLVER_NAMES[0] == "Rodas3"
    with pytest.raises(jd.JaxDistillError, match="solver"):
        solver_from_name("Euler2")
    with pytest.raises(jd.JaxDistillError, match="solver must be a diffrax solver object"):
        jd.FlowConfig(solver="Kvaerno5")
    with pytest.raises(jd.JaxDistillError, match="rtol cannot be combined with stepsize_controller"):
        jd.FlowConfig(stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8), rtol=1e-3)
    with pytest.raises(jd.JaxDistillError, match="rtol and atol"):
        jd.FlowConfig(stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8), rtol=1e-3, atol=1e-9)
    with pytest.raises(jd.JaxDistillError, match="stepsize_controller"):
        jd.FlowConfig(stepsize_controller="pid")
    with pytest.raises(jd.JaxDistillError, match="adjoint"):
        jd.FlowConfig(adjoint="forward")

    task = jd.KappaPolynomialTask(10, 1.0)
    X, u = _sets(task, 4, 3)
    explicit = jd.FlowConfig(solver=Rodas3(), stepsize_controller=diffrax.PIDController(rtol=1e-2, atol=1e-5),
                             adjoint=diffrax.ForwardMode())
    tight = jd.FlowConfig(solver=diffrax.Kvaerno5(), stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10),
                          adjoint=diffrax.RecursiveCheckpointAdjoint(), newton_tol=1e-12)
    const = jd.FlowConfig(solver=diffrax.Tsit5(), stepsize_controller=diffrax.ConstantStepSize(), dt0=0.5,
                          t_max=1e4, max_steps=20_000, newton_tol=1e-8)
    Xi, ui = _sets(jd.IsotropicGaussianTask(4), 8, 3)  # well conditioned: few constant steps
    with precision():
        ref = jax.vmap(lambda a, b: jd.gradient_flow(a, b))(X, u)
        same = jax.vmap(lambda a, b: jd.gradient_flow(a, b, explicit))(X, u)
        t = jax.vmap(lambda a, b: jd.gradient_flow(a, b, tight))(X, u)
        k = jax.vmap(lambda a, b: jd.gradient_flow(a, b, const))(Xi, ui)
        w_hat = jax.vmap(jd.closed_form)(X, u)
        w_hat_i = jax.vmap(jd.closed_form)(Xi, ui)
    np.testing.assert_array_equal(np.asarray(ref.w), np.asarray(same.w))  # the defaults, spelled out
    for r, w in ((t, w_hat), (k, w_hat_i)):
        assert np.all(np.asarray(r.status) == Status.CONVERGED)
        w = np.asarray(w)
        assert np.all(np.linalg.norm(np.asarray(r.w) - w, axis=1) < 1e-6 * np.linalg.norm(w, axis=1))
    np.testing.assert_array_equal(np.asarray(k.num_steps), np.asarray(k.t_final) / 0.5)  # really constant steps


def test_gd_config_takes_optax_and_refuses_unused_options():
    import optax

    g = jd.GDConfig(optimizer="momentum")
    assert (g.learning_rate, g.momentum) == (1.0, 0.9)  # the shortcut's settings, explicit
    assert jd.GDConfig().momentum is None and jd.GDConfig(optimizer=optax.sgd(0.1)).learning_rate is None
    with pytest.raises(jd.JaxDistillError, match="learning_rate cannot be combined with an optax"):
        jd.GDConfig(optimizer=optax.sgd(0.1), learning_rate=0.5)
    with pytest.raises(jd.JaxDistillError, match="momentum cannot be combined"):
        jd.GDConfig(optimizer=optax.sgd(0.1), momentum=0.5)
    with pytest.raises(jd.JaxDistillError, match="momentum applies only to optimizer='momentum'"):
        jd.GDConfig(optimizer="adam", momentum=0.5)
    with pytest.raises(jd.JaxDistillError, match="momentum"):
        jd.GDConfig(optimizer="momentum", momentum=1.5)
    task = jd.KappaPolynomialTask(10, 1.0)
    X, u = _sets(task, 4, 2)
    with precision():
        run = lambda cfg: np.asarray(jax.vmap(lambda a, b: jd.gradient_descent(a, b, cfg))(X, u).w)
        np.testing.assert_array_equal(run(jd.GDConfig(optimizer="momentum", learning_rate=0.3, steps=50)),
                                      run(jd.GDConfig(optimizer=optax.sgd(0.3, momentum=0.9), steps=50)))
        np.testing.assert_array_equal(run(jd.GDConfig(optimizer="momentum", learning_rate=0.3, momentum=0.5, steps=50)),
                                      run(jd.GDConfig(optimizer=optax.sgd(0.3, momentum=0.5), steps=50)))


def test_make_learner_refuses_configs_that_do_not_apply():
    from jaxdistill.students import ClosedFormLearner, FlowLearner, GDLearner, make_learner

    assert make_learner("closed-form") == ClosedFormLearner()
    assert make_learner("flow", flow=jd.FlowConfig(max_steps=7)).flow.max_steps == 7
    assert make_learner("gd", gd=jd.GDConfig(steps=7)) == GDLearner(jd.GDConfig(steps=7))
    assert isinstance(make_learner("flow"), FlowLearner)
    with pytest.raises(jd.JaxDistillError, match="flow= applies only to method='flow'"):
        make_learner("closed-form", flow=jd.FlowConfig())
    with pytest.raises(jd.JaxDistillError, match="flow= applies only to method='flow'"):
        make_learner("gd", flow=jd.FlowConfig())
    with pytest.raises(jd.JaxDistillError, match="gd= applies only to method='gd'"):
        make_learner("flow", gd=jd.GDConfig())
    with pytest.raises(jd.JaxDistillError, match="gd= applies only to method='gd'"):
        make_learner("closed-form", gd=jd.GDConfig())
    with pytest.raises(jd.JaxDistillError, match="method"):
        make_learner("newton")
    # the section-5 learners refuse their own unused options too
    for not_a_base in ("flow", jd.GDLearner()):  # a choice is an object (the strings are the command's --method)
        with pytest.raises(jd.JaxDistillError, match="base must be the learner of w_hat"):
            WDeltaLearner(0.5, base=not_a_base)
    with pytest.raises(jd.JaxDistillError, match="gd= applies only to method='gd'"):
        HardTargetLearner(gd=jd.GDConfig())
    with pytest.raises(jd.JaxDistillError, match="flow= applies only to method='flow'"):
        HardTargetLearner(method="gd", flow=jd.FlowConfig())
    with pytest.raises(jd.JaxDistillError, match="sweeps applies only to method='max-margin'"):
        HardTargetLearner(method="flow", sweeps=10)
    with pytest.raises(jd.JaxDistillError, match="sweeps and tol apply only to method='max-margin'"):
        HardTargetLearner(method="gd", sweeps=200, tol=1e-8)
    assert (HardTargetLearner().sweeps, HardTargetLearner().tol, HardTargetLearner(method="gd").sweeps) == (200, 1e-8, None)


def test_check_targets_refuses_hard_targets_for_soft_only_learners():
    from jaxdistill.students import ClosedFormLearner, DeepLearner, FlowLearner, GDLearner

    soft, hard = jd.TargetSpec(), jd.TargetSpec("hard")
    for lr in (ClosedFormLearner(), WDeltaLearner(0.5), WDeltaLearner(0.5, base=jd.FlowLearner())):
        lr.check_targets(soft)
        with pytest.raises(jd.JaxDistillError, match="needs soft targets"):
            lr.check_targets(hard)
    for lr in (FlowLearner(), GDLearner(), HardTargetLearner(), DeepLearner()):
        lr.check_targets(soft)
        lr.check_targets(hard)


def test_for_dtype_raises_newton_tol_in_float32_only():
    from jaxdistill.students import FLOAT32_MIN_NEWTON_TOL, ClosedFormLearner, DeepLearner, FlowLearner

    for lr in (FlowLearner(), WDeltaLearner(0.5, base=jd.FlowLearner()), DeepLearner(), HardTargetLearner(method="flow")):
        assert lr.for_dtype("float64") is lr
        f32 = lr.for_dtype("float32")
        assert type(f32) is type(lr) and f32.flow.newton_tol == FLOAT32_MIN_NEWTON_TOL
        assert f32.flow.solver == lr.flow.solver and f32.flow.rtol == lr.flow.rtol
    loose = FlowLearner(jd.FlowConfig(newton_tol=1e-3))
    assert loose.for_dtype("float32") is loose
    assert ClosedFormLearner().for_dtype("float32") == ClosedFormLearner()
    with pytest.raises(jd.JaxDistillError, match="dtype"):
        FlowLearner().for_dtype("float16")


def test_w_delta_flow_base_orders_its_factorisations():
    """The flow's factorisation and q's QR are sequenced by a data dependency
    (``sequencing.after``: no concurrent LAPACK calls within one fit, the
    deadlock itself is tested in test_jax_compat); the closed-form base
    factorises X once."""
    task = jd.KappaPolynomialTask(10, 1.0)
    X, u = _sets(task, 4, 1)
    with precision():
        flow_jaxpr = str(jax.make_jaxpr(WDeltaLearner(0.5, base=jd.FlowLearner()).fit_logits)(jax.random.PRNGKey(0), X[0], u[0]))
        cf_jaxpr = str(jax.make_jaxpr(WDeltaLearner(0.5).fit_logits)(jax.random.PRNGKey(0), X[0], u[0]))
    assert "is_finite" in flow_jaxpr or " ne " in flow_jaxpr  # after(): an isnan of w_hat feeds q's QR
    assert len(re.findall(r"\bqr\[", cf_jaxpr)) == 1


def test_user_defined_learner_runs_through_distill():
    """A new learner is a subclass of AbstractLearner with a name, fit and check_targets;
    missing pieces are caught when the class is instantiated."""
    from typing import ClassVar

    from jaxdistill.students import AbstractBinaryLearner, AbstractLearner, LearnerOutput

    class ScaledClosedForm(AbstractBinaryLearner):
        scale: float = 0.5
        name: ClassVar[str] = "scaled-closed-form"

        def fit_logits(self, key, X, u):
            w = self.scale * jd.closed_form(X, u)
            return LearnerOutput(w=w, status=jnp.asarray(Status.CONVERGED, jnp.int32),
                                 num_steps=jnp.asarray(0, jnp.int32), loss=jnp.asarray(0.0, X.dtype))

        def check_targets(self, targets):
            return None

    class NoTargets(AbstractLearner):
        name: ClassVar[str] = "incomplete"

        def fit(self, key, X, u):
            raise NotImplementedError

    with pytest.raises(TypeError):
        NoTargets()
    task = jd.KappaPolynomialTask(20, 1.0)
    res = jd.distill(0, task, 5, 8, learner=ScaledClosedForm(0.5), keep_students=True)
    ref = jd.distill(0, task, 5, 8, method="closed-form", keep_students=True)
    np.testing.assert_array_equal(res.students, 0.5 * ref.students)
    assert res.config["method"] == "scaled-closed-form" and res.config["scale"] == 0.5
