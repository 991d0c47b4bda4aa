"""The Rosenbrock solver ``Rodas3`` (jaxdistill/students/rosenbrock.py,
docs/design.md fact 14): its order, its error estimate, L-stability and
stiff accuracy, dense output, and that the flows it drives reach the same
trajectory and limit as diffrax's Kvaerno solvers."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.students import Rodas3
from jaxdistill.students.rosenbrock import FieldWithJacobian
from jaxdistill.students.closed_form import closed_form
from jaxdistill.students.flow import gradient_flow


def _vdp(t, y, args):
    """A nonlinear, non-autonomous test problem (forced Van der Pol)."""
    return jnp.stack([y[1], -y[0] + 0.5 * (1.0 - y[0] ** 2) * y[1] + jnp.sin(3.0 * t)])


def _solve(solver, vf, t1, y0, **kw):
    return diffrax.diffeqsolve(diffrax.ODETerm(vf), solver, 0.0, t1, kw.pop("dt0", None), y0, **kw)


def test_third_order_convergence_on_a_nonautonomous_problem():
    """Constant steps h = 1/N: the global error falls like h^3 (so the
    stage weights, the time-derivative terms and the stage times are right)."""
    with precision():
        y0 = jnp.array([2.0, 0.0])
        ref = _solve(diffrax.Kvaerno5(), _vdp, 1.0, y0, dt0=1e-3,
                     stepsize_controller=diffrax.PIDController(rtol=1e-13, atol=1e-13), max_steps=100_000).ys[-1]
        errs = [float(jnp.linalg.norm(_solve(Rodas3(), _vdp, 1.0, y0, dt0=1.0 / N).ys[-1] - ref)) for N in (10, 20, 40, 80)]
    slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((slopes > 2.8) & (slopes < 3.4)), slopes


def test_error_estimate_is_third_order_and_drives_the_controller():
    """One step's error estimate (the order-3 minus the embedded order-2
    solution) scales like h^3; with a PID controller the global error
    follows the tolerance."""
    with precision():
        y0 = jnp.array([2.0, 0.0])
        term = diffrax.ODETerm(_vdp)
        est = []
        for h in (0.1, 0.05, 0.025):
            _, err, *_ = Rodas3().step(term, 0.0, h, y0, None, None, False)
            est.append(float(jnp.linalg.norm(err)))
        ref = _solve(diffrax.Kvaerno5(), _vdp, 5.0, y0, dt0=1e-3,
                     stepsize_controller=diffrax.PIDController(rtol=1e-13, atol=1e-13), max_steps=100_000).ys[-1]
        glob = [float(jnp.linalg.norm(_solve(Rodas3(), _vdp, 5.0, y0,
                                             stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol)).ys[-1] - ref))
                for tol in (1e-4, 1e-6, 1e-8)]
    slopes = np.log2(np.array(est[:-1]) / np.array(est[1:]))
    assert np.all((slopes > 2.7) & (slopes < 3.3)), slopes
    assert glob[0] > glob[1] > glob[2] and glob[2] < 1e-6, glob


def test_l_stable_and_stiffly_accurate():
    """y' = -lam (y - cos t), lam = 1e9: steps of 0.1 (h lam = 1e8) land on
    the slow manifold y = cos t (stiff accuracy), and the linear test
    equation's stability function vanishes at infinity (L-stability)."""
    lam = 1e9
    with precision():
        ts = jnp.linspace(0.0, 2.0, 21)
        sol = _solve(Rodas3(), lambda t, y, a: -lam * (y - jnp.cos(t)), 2.0, jnp.array([3.0]), dt0=0.1,
                     saveat=diffrax.SaveAt(ts=ts))
        one = Rodas3().step(diffrax.ODETerm(lambda t, y, a: -lam * y), 0.0, 1.0, jnp.array([1.0]), None, None, False)[0]
    # after the first step the solution stays on the manifold (an A- but not L-stable method, e.g. the
    # trapezoidal rule with R(inf) = -1, would carry the initial offset 2 along with alternating sign)
    np.testing.assert_allclose(np.asarray(sol.ys[1:, 0]), np.cos(np.asarray(ts[1:])), rtol=0, atol=1e-6)
    assert abs(float(one[0])) < 1e-8


def test_dense_output_is_the_cubic_hermite_interpolant():
    """SaveAt(ts) between steps: y' = y from 1, steps of 0.25.  Inside a step
    the saved value adds at most the cubic Hermite interpolation error
    (h^4 / 384 max|y^(4)| = 3e-5) to the step ends' own errors; a linear
    interpolant would add h^2 / 8 max|y''| = 0.02."""
    with precision():
        ts = jnp.linspace(0.0, 1.0, 41)
        sol = _solve(Rodas3(), lambda t, y, a: y, 1.0, jnp.array(1.0), dt0=0.25, saveat=diffrax.SaveAt(ts=ts))
    err = np.abs(np.asarray(sol.ys) - np.exp(np.asarray(ts)))
    ends = err[::10]
    for i in range(40):
        k = i // 10
        assert err[i] <= max(ends[k], ends[k + 1]) + 3.5e-5


def test_pytree_state():
    """The state may be any pytree: it is flattened for the linear algebra."""
    with precision():
        vf = lambda t, y, a: {"x": -y["x"] + y["v"], "v": -10.0 * y["v"]}
        sol = _solve(Rodas3(), vf, 1.0, {"x": jnp.array([1.0, 2.0]), "v": jnp.array(1.0)},
                     stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10))
    x1 = np.exp(-1.0) * np.array([1.0, 2.0]) + (np.exp(-1.0) - np.exp(-10.0)) / 9.0
    np.testing.assert_allclose(np.asarray(sol.ys["x"][-1]), x1, rtol=1e-6)
    np.testing.assert_allclose(float(sol.ys["v"][-1]), np.exp(-10.0), rtol=1e-5)


@pytest.mark.parametrize("t_end", [3.0, None])
def test_flow_with_rodas3_matches_kvaerno_and_the_closed_form(t_end):
    """Three ways on the default workload's sets (kappa = 1, d = 200,
    n = 15): at a finite time the Rodas3 flow (tight tolerance) equals
    Kvaerno5's trajectory; at the steady state both default-tolerance flows
    reach the closed form to the stopping test (1e-9)."""
    task = jd.KappaPolynomialTask(200, 1.0)
    with precision():
        X = jd.sample_transfer_sets(0, task, 15, 32)
        u = X @ jnp.asarray(task.w_star, jnp.float64)
        if t_end is None:
            cfgs = [jd.FlowConfig(), jd.FlowConfig(solver=diffrax.Kvaerno3())]
        else:
            tight = dict(stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12), t_end=t_end)
            cfgs = [jd.FlowConfig(solver=Rodas3(), **tight), jd.FlowConfig(solver=diffrax.Kvaerno5(), **tight)]
        a, b = (jax.vmap(lambda x, y, c=c: gradient_flow(x, y, c))(X, u) for c in cfgs)
        w_hat = jax.vmap(closed_form)(X, u)
    # the difference in numpy: outside precision() jax 0.6 computes float64 - float64 in float32 (1e-7 noise)
    rel = lambda w, ref: (np.linalg.norm(np.asarray(w) - np.asarray(ref), axis=1)
                          / np.linalg.norm(np.asarray(ref), axis=1))
    if t_end is None:
        assert np.all(np.asarray(a.status) == 0) and np.all(np.asarray(b.status) == 0)
        assert rel(a.w, w_hat).max() < 2e-9 and rel(b.w, w_hat).max() < 2e-9
        assert float(jnp.mean(a.num_steps)) < float(jnp.mean(b.num_steps))  # fewer (and cheaper) steps
    else:
        assert rel(a.w, b.w).max() < 1e-8


def _stiff(t, y, args):
    """y' = -lam (y - cos t) in two uncoupled components, lam = 1e6."""
    return -1e6 * (y - jnp.cos(t))


def test_a_supplied_jacobian_is_used_and_gives_the_autodiff_trajectory():
    """``FieldWithJacobian``: with the exact Jacobian the trajectory is the
    autodiff one (to rounding); with a wrong one (zero: the stages become
    explicit) the stiff problem goes unstable, so the supplied matrix is
    what the solver uses."""
    with precision():
        y0 = jnp.array([2.0, 0.0])
        jac = lambda t, y, args: jax.jacfwd(lambda z: _vdp(t, z, args))(y)  # noqa: E731
        ctrl = dict(stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8))
        auto = _solve(Rodas3(), _vdp, 3.0, y0, **ctrl).ys[-1]
        supplied = diffrax.diffeqsolve(diffrax.ODETerm(FieldWithJacobian(_vdp, jac)), Rodas3(), 0.0, 3.0, None, y0,
                                       **ctrl).ys[-1]
        fixed = dict(dt0=0.01, max_steps=200)
        right = diffrax.diffeqsolve(diffrax.ODETerm(FieldWithJacobian(_stiff, lambda t, y, a: -1e6 * jnp.eye(2))),
                                    Rodas3(), 0.0, 1.0, **fixed, y0=y0).ys[-1]
        wrong = diffrax.diffeqsolve(diffrax.ODETerm(FieldWithJacobian(_stiff, lambda t, y, a: jnp.zeros((2, 2)))),
                                    Rodas3(), 0.0, 1.0, **fixed, y0=y0, throw=False).ys[-1]
    np.testing.assert_allclose(np.asarray(supplied), np.asarray(auto), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(right), np.cos(1.0), atol=1e-6)
    assert not np.all(np.abs(np.asarray(wrong) - np.cos(1.0)) < 1e-2)


@pytest.mark.parametrize("supply_jacobian", [False, True])
def test_backwards_in_time(supply_jacobian):
    """t1 < t0 (diffrax reverses time through a WrapTerm): the same end
    point as Kvaerno5, with the solver's own or a supplied Jacobian."""
    with precision():
        y0 = jnp.array([2.0, 0.5])
        ctrl = dict(stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10), max_steps=100_000)
        ref = diffrax.diffeqsolve(diffrax.ODETerm(_vdp), diffrax.Kvaerno5(), 1.0, 0.0, -0.01, y0, **ctrl).ys[-1]
        vf = FieldWithJacobian(_vdp, lambda t, y, a: jax.jacfwd(lambda z: _vdp(t, z, a))(y)) if supply_jacobian else _vdp
        got = diffrax.diffeqsolve(diffrax.ODETerm(vf), Rodas3(), 1.0, 0.0, -0.01, y0, **ctrl).ys[-1]
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-8)


def _captured_field(monkeypatch, run):
    """The vector field a flow hands to diffrax (``solve_to_steady_state``,
    which every flow reaches through ``flow_to_steady_state``)."""
    from jaxdistill.students import steady_state as fl
    seen = []
    original = fl.solve_to_steady_state

    def spy(vector_field, *args, **kwargs):
        seen.append(vector_field)
        return original(vector_field, *args, **kwargs)

    monkeypatch.setattr(fl, "solve_to_steady_state", spy)
    with precision():
        run()
    (field,) = seen
    return field


@pytest.mark.parametrize("case", ["logit", "gram", "span", "softmax-logit", "softmax-span"])
def test_the_flows_supply_their_exact_jacobian(monkeypatch, case):
    """Every default (reduced) flow gives Rodas3 its Jacobian in closed form
    (-(1/n) G diag(sigma'), -(1/n) R D R^T and their softmax analogues); it
    equals ``jax.jacfwd`` of the vector field at a random state."""
    from jax.flatten_util import ravel_pytree

    from jaxdistill.multiclass.learners import softmax_gradient_flow
    from jaxdistill.students.flow import gram_gradient_flow
    with precision():
        key = jax.random.PRNGKey(3)
        n, d = (12, 5) if case.endswith("span") else (6, 9)
        X = jax.random.normal(key, (n, d))
        u = 2.0 * jax.random.normal(jax.random.fold_in(key, 1), (n,))
        V = jax.nn.softmax(jax.random.normal(jax.random.fold_in(key, 2), (n, 3)), axis=-1)
    run = {"logit": lambda: gradient_flow(X, u), "span": lambda: gradient_flow(X, u),
           "gram": lambda: gram_gradient_flow(X @ X.T, u),
           "softmax-logit": lambda: softmax_gradient_flow(X, V), "softmax-span": lambda: softmax_gradient_flow(X, V)}[case]
    field = _captured_field(monkeypatch, run)
    assert isinstance(field, FieldWithJacobian)
    # the K-class flows also solve their stage systems by their structure (K n-square systems in logit
    # coordinates; K r-square ones and an n-square capacitance system in span coordinates)
    assert (field.shifted_solver is not None) == case.startswith("softmax")
    with precision():
        shape = {"logit": (n,), "gram": (n,), "span": (d,), "softmax-logit": (n, 3), "softmax-span": (d, 3)}[case]
        y = jax.random.normal(jax.random.fold_in(key, 4), shape)
        flat, unravel = ravel_pytree(y)
        auto = jax.jacfwd(lambda v: ravel_pytree(field(0.0, unravel(v), None))[0])(flat)
        given = field.jacobian(0.0, y, None)
    np.testing.assert_allclose(np.asarray(given), np.asarray(auto), rtol=1e-12, atol=1e-14)
