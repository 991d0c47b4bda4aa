"""Integrators of deep linear students w^T = W_N ... W_1 (Thm 2, Appendix C).

Three integrators of the same gradient flow (eq. 3), all solved with
diffrax and stopped at a steady state decided in parameter space
(docs/design.md fact 5):

* ``"full"``: gradient flow on every factor W_1 .. W_N (the deep linear
  network itself).  ``FlowConfig.coordinates="plain"`` integrates W_1 in
  all d columns; ``"reduced"`` (default) uses that dW_1/dt = -v g^T with
  g = grad L^1 in span(X) (Lemma B.1), so W_1 = W_1(0) (I - Q Q^T) + B Q^T
  and only B = W_1 Q [H, r] moves: the same trajectory, exactly.
* ``"induced"``: the end-to-end flow of Lemma C.1 (eq. 56) in d dimensions,
  dw/dt = -||w||^{2(N-1)/N} (g + (N-1) P_w g), valid under balancedness (13).
* ``"reduced"``: docs/design.md fact 2.  With X^T = Q R and w = Q b + s q_hat,
  q_hat the fixed unit direction of the part of w(0) orthogonal to span(X)
  (it keeps its direction, eq. 63), eq. 56 becomes, with
  gamma = R (sigma(R^T b) - y) / n and m = ||w||^{2(N-1)/N}:

      db/dt = -m (gamma + (N-1) b (b.gamma) / ||w||^2)
      ds/dt = -m (N-1) s (b.gamma) / ||w||^2           (eq. 63-64)

  an (r + 1)-dimensional ODE whose cost per step is O(n r), independent of
  d and of the widths.  Its solution obeys eq. 66,
  s(t)/s(0) = (||w(t)|| / ||w(0)||)^{(N-1)/N}.

Arrival: the Newton step of L^1 restricted to span(X) (an r x r solve)
estimates b - b_hat; the orthogonal scalar's remaining change follows from
eq. 66, |ds| ~ (N-1)/N * s |b.step| / ||w||^2.  The flow stops when both are
below ``newton_tol * ||w||``.

Accuracy and default tolerances (``default_flow_config``).  Unlike the
linear student's, a deep student's limit depends on the path (the
orthogonal part, eq. 66, is fixed by the trajectory), so for the induced
and full integrators the stopping test alone does not set the accuracy:
trajectory errors move the limit (with the linear default rtol = 1e-2 the
induced flow lands 2e-4 (N = 2) to 2e-3 (N = 3) relative from the exact
limit).  Their default is therefore ``PATH_FLOW_CONFIG``: Kvaerno5 with
rtol = 1e-8, atol = 1e-14 (the orthogonal part is of the size of w(0),
so a loose atol alone costs 2e-8 at N = 3) and max_steps = 16384.  The
reduced integrator reads the orthogonal part off the eq. 66 invariant
(``s_exact`` below), which removes the path dependence, so its accuracy is
set by ``newton_tol``; its default is the linear default ``FlowConfig()``
with diffrax's Kvaerno3 instead of the Rosenbrock Rodas3 (``REDUCED_FLOW_SETTINGS``):
on the benchmark's N = 3 workload (d = 100, n = 20, width 64, 1000 sets)
Rodas3 ran 21 sets/s with 6 sets at max_steps, Kvaerno3 193 sets/s
(under load) with none (N = 2: 616 vs 296 sets/s, both without failures).
Measured on d = 10, n = 3, width 4, 32 sets, against the exact limit of
docs/design.md fact 2 (a) (``exact_deep_limit``): largest relative error
in w 1.0e-9 (N = 2) and 1.2e-9 (N = 3) for all three integrators with
their defaults (tests/test_deep.py checks <= 1e-8).

``deep_gradient_descent``: a discrete optax optimiser on all the factors.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ...status import Status
from ...teachers import cross_entropy, residual
from ...validation import check_choice
from ..closed_form import ReducedData, reduce_data, reduced_target
from ..discrete import GDConfig, optimise
from ..flow import FlowConfig, flow_to_steady_state, newton_step
from .algebra import balancedness_defect, end_to_end, head_vector
from .inits import DeepInit

INTEGRATORS = ("reduced", "induced", "full")

# Default solver of the reduced integrator (the linear defaults otherwise): see the module docstring.
REDUCED_FLOW_SETTINGS = dict(solver=diffrax.Kvaerno3())
# Defaults of the path-dependent integrators (induced, full): see the module docstring.
PATH_FLOW_SETTINGS = dict(solver=diffrax.Kvaerno5(), rtol=1e-8, atol=1e-14, max_steps=16_384)
PATH_FLOW_CONFIG = FlowConfig(**PATH_FLOW_SETTINGS)


def default_flow_config(integrator: str = "reduced", **overrides) -> FlowConfig:
    """The default ``FlowConfig`` of a deep integrator, with ``overrides``
    (any ``FlowConfig`` keyword) applied on top of it.

    "reduced": the linear default ``FlowConfig()`` with Kvaerno3
    (``REDUCED_FLOW_SETTINGS``; the eq. 66 invariant makes its limit path
    independent; accuracy set by newton_tol = 1e-9).
    "induced", "full": ``PATH_FLOW_CONFIG`` (Kvaerno5, rtol 1e-8, atol
    1e-14, max_steps 16384), which keeps them within 1e-8 relative of the
    exact limit (module docstring).  Overrides replace single settings, e.g.
    ``default_flow_config("full", rtol=1e-10)`` keeps Kvaerno5 and atol 1e-14;
    ``stepsize_controller=...`` drops the default rtol/atol.
    """
    check_choice("integrator", integrator, INTEGRATORS)
    base = dict(REDUCED_FLOW_SETTINGS) if integrator == "reduced" else dict(PATH_FLOW_SETTINGS)
    if "stepsize_controller" in overrides:
        base.pop("rtol", None)
        base.pop("atol", None)
    return FlowConfig(**{**base, **overrides})


def exact_deep_limit(X: Float[Array, "n d"], u: Float[Array, " n"], w0: Float[Array, " d"], depth: int,
                     red: ReducedData | None = None) -> Float[Array, " d"]:
    """The exact limit of the balanced deep flow (docs/design.md fact 2 (a)),
    no integration: w_hat + s_inf q_hat, with q_hat the direction of the part
    of w(0) orthogonal to span(X) and s_inf the unique root of
    s = s(0) (sqrt(||w_hat||^2 + s^2) / ||w(0)||)^{(N-1)/N} (eq. 66 at t = inf).
    The reference the integrators are tested against."""
    red = reduce_data(X) if red is None else red
    b_hat = reduced_target(red, u)
    w_hat = red.Q @ b_hat
    qvec = w0 - red.Q @ (red.Q.T @ w0)
    s0 = jnp.linalg.norm(qvec)
    tiny = jnp.finfo(X.dtype).tiny
    q_hat = qvec / jnp.maximum(s0, tiny)
    p = (depth - 1) / depth
    # in x = s^2: h(x) = x - c (A + x)^p = 0 with c = s0^2 ||w0||^{-2p}, A = ||w_hat||^2.  h is convex
    # (p < 1), h(0) <= 0, and h(x_up) >= 0 at x_up = max(A, (2c)^{1/(1-p)}) (there (A + x)^p <= 2^p x^p), so
    # Newton from x_up decreases monotonically to the unique root
    A = jnp.sum(b_hat * b_hat)
    c = s0 ** 2 * jnp.maximum(jnp.sum(w0 * w0), tiny) ** (-p)

    def newton(_, x):
        h = x - c * (A + x) ** p
        dh = 1.0 - c * p * (A + x) ** (p - 1.0)
        return jnp.where(dh > 0, jnp.maximum(x - h / dh, 0.0), x)

    x = jax.lax.fori_loop(0, 100, newton, jnp.maximum(A, (2.0 * c) ** (1.0 / (1.0 - p))))
    return w_hat + jnp.sqrt(x) * q_hat


class DeepFlowResult(eqx.Module):
    """Outcome of one deep flow (batched along a leading axis by vmap).

    Attributes:
        w: final end-to-end student [d].
        status, num_steps, t_final: as in ``flow.FlowResult``.
        newton_rel: max(Newton step, remaining orthogonal change) / ||w||.
        loss: final L^1.
        dist_w_hat: ||w - w_hat||.
        orth_norm: ||P_Q w|| (the orthogonal component, eq. 60).
        balancedness_defect: at the end (full flow); the init's otherwise.
        ts_*: diagnostics at the requested times (empty when none asked):
            ts_w [T, d], ts_loss, ts_dist_w_hat, ts_orth_norm, ts_norm,
            ts_balancedness_defect [T].
    """

    w: Float[Array, " d"]
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    t_final: Float[Array, ""]
    newton_rel: Float[Array, ""]
    loss: Float[Array, ""]
    dist_w_hat: Float[Array, ""]
    orth_norm: Float[Array, ""]
    balancedness_defect: Float[Array, ""]
    ts_w: Float[Array, "T d"]
    ts_loss: Float[Array, " T"]
    ts_dist_w_hat: Float[Array, " T"]
    ts_orth_norm: Float[Array, " T"]
    ts_norm: Float[Array, " T"]
    ts_balancedness_defect: Float[Array, " T"]


def _remaining(red, b, sigma, z, u, depth):
    """The deep flow's distance to its limit: (max(||Newton step||, remaining
    change of the orthogonal scalar by eq. 66), ||w||) with w = Q b + sigma q_hat
    (module docstring, "Arrival"); the flow has arrived when both parts are
    below newton_tol ||w||, i.e. their maximum is."""
    step = newton_step(red, z, u)
    wn2 = jnp.sum(b * b) + sigma * sigma
    wn = jnp.sqrt(wn2)
    orth = (depth - 1) / depth * jnp.abs(sigma) * jnp.abs(jnp.dot(b, step)) / jnp.maximum(wn2, jnp.finfo(b.dtype).tiny)
    return jnp.maximum(jnp.linalg.norm(step), orth), wn


def _solve(vf, y0, red: ReducedData, u, config: FlowConfig, ts, depth: int, *, logits, b_sigma, to_w, defect):
    """``steady_state.flow_to_steady_state`` with the deep test (``_remaining``);
    returns (solution, status, w, final logits, newton_rel, final
    balancedness defect, trajectory (w, logits, defect at ``ts``) or None)."""
    def norms(y):
        b, sigma = b_sigma(y)
        return _remaining(red, b, sigma, logits(y), u, depth)

    run = flow_to_steady_state(vf, y0, red.rank_ok, jnp.all(jnp.isfinite(u)), config, ts, norms=norms, to_w=to_w)
    if ts is None:
        traj = None
    else:
        ys = jax.tree_util.tree_map(lambda a: a[:-1], run.sol.ys)
        traj = (jax.vmap(to_w)(ys), jax.vmap(logits)(ys), jax.vmap(defect)(ys))
    return run.sol, run.status, run.w, logits(run.y), run.newton_rel, defect(run.y), traj


def deep_flow(
    X: Float[Array, "n d"],
    u: Float[Array, " n"],
    init: DeepInit,
    *,
    integrator: str = "reduced",
    config: FlowConfig | None = None,
    ts: Float[Array, " T"] | None = None,
    red: ReducedData | None = None,
    b_hat: Float[Array, " r"] | None = None,
) -> DeepFlowResult:
    """Gradient flow of eq. 3 for a deep linear student, to its steady state.

    Args:
        X: transfer set [n, d]; u: teacher logits [n].
        init: ``DeepInit`` (``balanced_init``, ``gaussian_init`` or ``make_init``).
            The induced and reduced integrators assume balancedness (eq. 13)
            and use only w(0); the full integrator uses the factors.
        integrator: "reduced" (docs/design.md fact 2), "induced" (eq. 56) or "full".
        config: ``FlowConfig`` (solver, tolerances, newton_tol, max_steps,
            t_max; ``coordinates`` selects the W_1 storage of the full flow);
            None: ``default_flow_config(integrator)`` (accurate to 1e-8
            relative, see the module docstring).
        ts: optional times at which to record the diagnostics.
        red, b_hat: this set's ``reduce_data(X)`` and ``reduced_target(red, u)``
            when already computed (the learners pass them: no second
            factorisation of X).

    Returns:
        ``DeepFlowResult``; for n >= d, w -> w* (eq. 14), otherwise
        ||w - w_hat|| <= ``eq76_bound`` (eq. 15, 76).
    """
    check_choice("integrator", integrator, INTEGRATORS)
    config = default_flow_config(integrator) if config is None else config
    depth = len(init.Ws)
    n, d = X.shape
    red = reduce_data(X) if red is None else red
    Q, R = red.Q, red.R
    b_hat = reduced_target(red, u) if b_hat is None else b_hat
    w_hat = Q @ b_hat
    N = depth

    def rate(wn2):  # ||w||^{2(N-1)/N}
        return wn2 ** ((N - 1) / N)

    zero_defect = lambda y: init.balancedness_defect

    if integrator == "reduced":
        b0 = Q.T @ init.w0
        qvec = init.w0 - Q @ b0
        s0 = jnp.linalg.norm(qvec)
        q_hat = qvec / jnp.maximum(s0, jnp.finfo(X.dtype).tiny)

        def vf(t, y, args):
            b, s = y
            gam = R @ residual(R.T @ b, u) / n
            wn2 = jnp.sum(b * b) + s * s
            m = rate(wn2)
            bg = jnp.dot(b, gam)
            return (-m * (gam + (N - 1) * b * bg / wn2), -m * (N - 1) * s * bg / wn2)

        # eq. 66 as an invariant: s^2 ||w||^{-2(N-1)/N} is conserved, so the orthogonal size
        # is a function of b alone; s is read off it (not off the integrated s, whose
        # trajectory error would accumulate along the path: the limit of s is path dependent)
        p = (N - 1) / N
        c = s0 ** 2 * jnp.maximum(jnp.sum(init.w0 ** 2), jnp.finfo(X.dtype).tiny) ** (-p)

        def s_exact(y):
            b, s = y
            B2 = jnp.sum(b * b)

            def newton(_, x):  # root of x = c (B2 + x)^p, unique, x = s^2
                h = x - c * (B2 + x) ** p
                dh = 1.0 - c * p * (B2 + x) ** (p - 1.0)
                return jnp.maximum(x - h / dh, 0.0)

            return jnp.sqrt(jax.lax.fori_loop(0, 12, newton, s * s))

        sol, status, w, z, newton_rel, defect, traj = _solve(
            vf, (b0, s0), red, u, config, ts, N,
            logits=lambda y: R.T @ y[0], b_sigma=lambda y: (y[0], y[1]),
            to_w=lambda y: Q @ y[0] + s_exact(y) * q_hat, defect=zero_defect)
    elif integrator == "induced":
        def vf(t, w, args):
            g = X.T @ residual(X @ w, u) / n
            wn2 = jnp.sum(w * w)
            return -rate(wn2) * (g + (N - 1) * w * jnp.dot(w, g) / wn2)

        def bs(w):
            b = Q.T @ w
            return b, jnp.linalg.norm(w - Q @ b)

        sol, status, w, z, newton_rel, defect, traj = _solve(
            vf, init.w0, red, u, config, ts, N, logits=lambda w: X @ w, b_sigma=bs, to_w=lambda w: w,
            defect=zero_defect)
    else:
        sol, status, w, z, newton_rel, defect, traj = _full_flow(X, u, init, red, config, ts)

    loss = cross_entropy(z, u)
    orth = jnp.linalg.norm(w - Q @ (Q.T @ w))
    dist = jnp.linalg.norm(w - w_hat)
    if traj is None:
        e = jnp.zeros((0,), X.dtype)
        tw, tl, td, to, tn, tb = jnp.zeros((0, d), X.dtype), e, e, e, e, e
    else:
        tw, tz, tb = traj
        tl = jax.vmap(lambda zz: cross_entropy(zz, u))(tz)
        td = jnp.linalg.norm(tw - w_hat[None, :], axis=1)
        to = jnp.linalg.norm(tw - (tw @ Q) @ Q.T, axis=1)
        tn = jnp.linalg.norm(tw, axis=1)
    return DeepFlowResult(
        w=w, status=status.astype(jnp.int32), num_steps=sol.stats["num_steps"].astype(jnp.int32),
        t_final=sol.ts[-1], newton_rel=newton_rel, loss=loss, dist_w_hat=dist, orth_norm=orth,
        balancedness_defect=defect, ts_w=tw, ts_loss=tl, ts_dist_w_hat=td, ts_orth_norm=to, ts_norm=tn,
        ts_balancedness_defect=tb)


def _full_flow(X, u, init: DeepInit, red: ReducedData, config: FlowConfig, ts):
    """Gradient flow on all factors.  The vector field is -dL/dW_i, computed as
    the VJP of the logits with cotangent (sigma(z) - sigma(u)) / n (the
    accurate residual of ``teachers.residual``)."""
    n, d = X.shape
    N = len(init.Ws)
    Q, R = red.Q, red.R
    Ws = init.Ws
    if config.coordinates == "reduced":
        B0 = Ws[0] @ Q  # [H, r]
        W1perp = Ws[0] - B0 @ Q.T  # frozen: dW_1/dt has rows in span(X)
        gram_perp = W1perp @ W1perp.T
        y0 = (B0,) + tuple(Ws[1:])

        def head(y):
            return head_vector(y[1:]) if N > 1 else jnp.ones((1,), X.dtype)

        def logits(y):
            return R.T @ (y[0].T @ head(y))

        def to_w(y):
            v = head(y)
            return Q @ (y[0].T @ v) + W1perp.T @ v

        def b_sigma(y):
            v = head(y)
            return y[0].T @ v, jnp.linalg.norm(W1perp.T @ v)

        def defect(y):  # W_1 W_1^T = W1perp W1perp^T + B B^T (the cross terms vanish)
            if N == 1:
                return jnp.zeros((), X.dtype)
            return balancedness_defect((None,) + tuple(y[1:]), gram1=gram_perp + y[0] @ y[0].T)
    else:
        y0 = tuple(Ws)

        def logits(y):
            return X @ end_to_end(y)

        to_w = end_to_end

        def b_sigma(y):
            w = end_to_end(y)
            b = Q.T @ w
            return b, jnp.linalg.norm(w - Q @ b)

        defect = balancedness_defect

    def vf(t, y, args):
        z, pullback = jax.vjp(logits, y)
        return jax.tree_util.tree_map(jnp.negative, pullback(residual(z, u) / n)[0])

    return _solve(vf, y0, red, u, config, ts, N, logits=logits, b_sigma=b_sigma, to_w=to_w, defect=defect)


def deep_gradient_descent(X: Float[Array, "n d"], u: Float[Array, " n"], init: DeepInit, config: GDConfig = GDConfig()):
    """Discrete optimiser (optax) on all factors W_1 .. W_N of the loss of eq. 1.

    Plain gradient descent with a small step is the explicit Euler scheme of
    the full flow.  Returns (w [d], final factors, status FINITE_HORIZON or NON_FINITE).
    """
    n = X.shape[0]

    def grad(Ws):
        z, pullback = jax.vjp(lambda W: X @ end_to_end(W), Ws)
        return pullback(residual(z, u) / n)[0]

    Ws = optimise(grad, tuple(init.Ws), config)
    w = end_to_end(Ws)
    status = jnp.where(jnp.all(jnp.isfinite(w)), Status.FINITE_HORIZON, Status.NON_FINITE).astype(jnp.int32)
    return w, Ws, status


__all__ = ["INTEGRATORS", "PATH_FLOW_CONFIG", "DeepFlowResult", "default_flow_config", "deep_flow",
           "deep_gradient_descent", "exact_deep_limit"]
