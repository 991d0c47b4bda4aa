"""Gradient flow of the linear student (eq. 3 with N = 1), solved with diffrax.

The flow  dw/dt = -grad L^1(w) = -(1/n) X^T (sigma(X w) - y)  (eq. 38)
started at w(0) = 0 stays in span(X) (Lemma B.1), so by default it is
integrated in n reduced coordinates (docs/design.md fact 1).  For n <= d these
are the logits z = X w:

    dz/dt = -(1/n) G (sigma(z) - sigma(u)),   G = X X^T = L L^T,

with w(t) = X^T G^{-1} z(t) exactly; for n > d, with X^T = Q R and w = Q b,
db/dt = -(1/n) R (sigma(R^T b) - y).  Both are the same trajectory as the
d-dimensional flow, at O(n^2) a step after the O(n^2 d) Gram matrix.
Default solver (``FlowConfig``): Rodas3 (``students.rosenbrock``: an L-stable
Rosenbrock method, one n x n LU a step, no Newton iterations; the flows
give it their Jacobian -(1/n) G diag(sigma'(z)) in closed form,
``rosenbrock.FieldWithJacobian``, docs/design.md fact 14) with a loose
PID tolerance (rtol 1e-2).  For this linear student
(N = 1) the flow contracts to a unique limit, so the stopping test below,
not the trajectory tolerance, sets the accuracy of the limit (measured:
1e-9 relative distance, about 20 steps a set on average for the kappa = 1,
d = 1000, n = 20 workload).  That holds for N = 1 only: a deep student's
limit depends on its path (``students.deep``), so it needs a tight rtol.
Tighten rtol too when you record trajectories (``ts``).
``coordinates="plain"`` integrates the d-dimensional flow itself; tests use
it as the reference for the reduced one.

Arrival is decided in parameter space (docs/design.md fact 5): a diffrax Event
fires when the Newton step ||H^{-1} grad|| (an r x r solve; H = (1/n) R D R^T
is the Hessian of eq. 42 restricted to the span) is below
``newton_tol * ||w||``.  Near the limit the Newton step equals w - w_hat to
second order, so this bounds the relative distance to the Thm 1 limit,
whatever the stiffness.  A small vector field would not: with ||x|| = |nu|
tiny, some directions relax on time scales of 1e5 and more.
``flow_to_steady_state`` holds this test, the solve and the status for
every flow of the library (binary here, K-class in ``multiclass.learners``,
deep in ``students.deep.integrators``): each gives it only its vector
field, its state-to-w map and its (Newton step, ||w||) norms.

Every set returns a status code (``jaxdistill.status.Status``) and its step count; the
solver never raises for one bad set (``throw=False``).
"""

from __future__ import annotations

from typing import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PyTree

from ..sequencing import after
from ..status import Status
from ..teachers import cross_entropy, residual
from .closed_form import ReducedData, reduce_data
from .flow_config import FlowConfig
from .rosenbrock import FieldWithJacobian

class FlowResult(eqx.Module):
    """Outcome of one gradient flow (batched along a leading axis by vmap).

    Attributes:
        w: final student, [d].
        status: status code (``jaxdistill.status.Status``).
        num_steps: accepted + rejected solver steps.
        t_final: time at which the flow stopped.
        newton_rel: final Newton step / ||w|| (estimated relative distance to the limit).
        loss: final L^1 (eq. 1).
        trajectory: w(t) at the requested times, [T, d] (empty when none asked).
    """

    w: Float[Array, " d"]
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    t_final: Float[Array, ""]
    newton_rel: Float[Array, ""]
    loss: Float[Array, ""]
    trajectory: Float[Array, "T d"]


def sigmoid_derivative(z: Float[Array, " n"]) -> Float[Array, " n"]:
    """sigma'(z) = sigma(z) sigma(-z) (eq. 43's D), without cancellation for large |z|."""
    return jax.nn.sigmoid(z) * jax.nn.sigmoid(-z)


def newton_step(red: ReducedData, z: Float[Array, " n"], u: Float[Array, " n"]) -> Float[Array, " r"]:
    """H^{-1} grad L^1 in span coordinates b (w = Q b), as a function of the
    logits z; near the limit it equals b - b_hat to second order.

    With D = diag(sigma'(z)) (eq. 43): for n <= d the step is
    R^{-T} D^{-1} (sigma(z) - y) (a triangular solve); for n > d it is
    (R D R^T)^{-1} R (sigma(z) - y).
    """
    res = residual(z, u)
    s = jax.nn.sigmoid(z)
    D = s * (1.0 - s)
    r, n = red.R.shape
    if r == n:
        return jax.scipy.linalg.solve_triangular(red.R.T, res / D, lower=True)
    H = (red.R * D[None, :]) @ red.R.T
    return jnp.linalg.solve(H, red.R @ res)


def newton_step_norm(red: ReducedData, z: Float[Array, " n"], u: Float[Array, " n"]) -> Float[Array, ""]:
    """||H^{-1} grad L^1|| restricted to span(X) (``newton_step``'s norm): the
    estimated distance to the limit used by the steady-state event."""
    return jnp.linalg.norm(newton_step(red, z, u))


def solve_to_steady_state(vector_field, y0, config: FlowConfig, ts, cond_fn, soft) -> diffrax.Solution:
    """diffrax solve from t = 0 until ``cond_fn`` (the steady-state Event)
    fires, the horizon (``config.horizon(soft)``: t_max, or hard_t_max for
    hard labels) or max_steps; never raises (``throw=False``).  With
    ``config.t_end`` the solve runs to exactly t_end, with no Event."""
    saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=ts, t1=True)
    return diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        config.solver,
        t0=0.0,
        t1=config.horizon(soft),
        dt0=config.dt0,
        y0=y0,
        saveat=saveat,
        stepsize_controller=config.controller,
        event=None if config.finite_time else diffrax.Event(cond_fn),
        max_steps=config.max_steps,
        throw=False,
        adjoint=config.adjoint,
    )


def flow_status(rank_ok, finite, soft, converged, result, finite_time: bool = False) -> Int[Array, ""]:
    """The per-set status code of a flow (``jaxdistill.status.Status``), by priority:
    rank deficiency, non-finite output, step limit, finite horizon (hard
    labels, or a fixed training time ``finite_time``: ``FlowConfig.t_end``),
    converged, t_max reached, other solver failure."""
    return jnp.where(
        ~rank_ok,
        Status.RANK_DEFICIENT,
        jnp.where(
            ~finite,
            Status.NON_FINITE,
            jnp.where(
                result == diffrax.RESULTS.max_steps_reached,
                Status.MAX_STEPS,
                jnp.where(
                    ~soft | finite_time,
                    Status.FINITE_HORIZON,
                    jnp.where(converged, Status.CONVERGED,
                              jnp.where(result == diffrax.RESULTS.successful, Status.NOT_CONVERGED,
                                        Status.SOLVER_FAILED)),
                ),
            ),
        ),
    ).astype(jnp.int32)


class SteadyState(eqx.Module):
    """What ``flow_to_steady_state`` returns (one set; batched by vmap).

    Attributes:
        sol: the diffrax solution (``ts``: the state at the requested times,
            then the final one; ``stats``, ``result``).
        y: the final state, in the flow's own coordinates (a pytree).
        w: the final student ``to_w(y)``.
        newton_rel: final ||Newton step|| / ||w|| (the estimated relative
            distance to the limit, docs/design.md fact 5).
        finite: w finite, and newton_rel too for targets with a steady state.
        status: ``flow_status`` of the run.
    """

    sol: diffrax.Solution
    y: PyTree
    w: Array
    newton_rel: Float[Array, ""]
    finite: Bool[Array, ""]
    status: Int[Array, ""]


def flow_to_steady_state(vector_field, y0: PyTree, rank_ok: Bool[Array, ""], soft: Bool[Array, ""],
                         config: FlowConfig, ts: Float[Array, " T"] | None, *,
                         norms: Callable[[PyTree], tuple[Float[Array, ""], Float[Array, ""]]],
                         to_w: Callable[[PyTree], Array], norm_of_w: bool = False) -> SteadyState:
    """Integrate ``vector_field`` from y0 until the Newton-step test fires,
    then measure where it stopped: the stop-test/solve/status block of every
    flow (binary, K-class, deep).

    Arrival is decided in parameter space (docs/design.md fact 5): the run
    stops when ``norms(y) = (||Newton step in w-space||, ||w||)`` satisfies
    step <= newton_tol * ||w|| (soft targets only: hard labels have no
    steady state and run to their horizon).  Whatever the coordinates of y,
    ``norms`` measures in w-space.

    After the loop the final Newton step waits for w (``sequencing.after``):
    both may be batched LAPACK calls (a triangular solve, an LU), and two
    independent ones after the loop deadlock jaxlib on small CPUs
    (docs/design.md fact 11).  The values are unchanged (y + 0).

    Args:
        vector_field: the flow's right-hand side f(t, y, args), or a
            ``rosenbrock.FieldWithJacobian``.
        y0: the initial state (any pytree).
        rank_ok: the set's rank test (``flow_status``'s first priority).
        soft: whether the targets have a steady state (finite logits).
        config: ``FlowConfig``; ts: optional times to record the state at.
        norms: y -> (||Newton step||, ||w||), both in w-space.
        to_w: y -> the student w.
        norm_of_w: divide the final step by ||to_w(y)|| itself instead of
            ``norms``' estimate of it (the binary and K-class flows: exact;
            the deep flow keeps the norm its test uses).
    """
    def cond_fn(t, y, args, **kwargs):
        step, w_norm = norms(y)
        return soft & (step <= config.newton_tol * jnp.maximum(w_norm, jnp.finfo(w_norm.dtype).tiny))

    sol = solve_to_steady_state(vector_field, y0, config, ts, cond_fn, soft)
    y = jax.tree_util.tree_map(lambda a: a[-1], sol.ys)
    w = to_w(y)
    step, w_norm = norms(jax.tree_util.tree_map(lambda a: after(a, w), y))  # waits for w (fact 11)
    if norm_of_w:
        w_norm = jnp.linalg.norm(w)
    newton_rel = step / jnp.maximum(w_norm, jnp.finfo(w_norm.dtype).tiny)
    # hard labels have no steady state: their Newton step is infinite by nature
    finite = jnp.all(jnp.isfinite(w)) & (jnp.isfinite(newton_rel) | ~soft)
    status = flow_status(rank_ok, finite, soft, newton_rel <= config.newton_tol, sol.result, config.finite_time)
    return SteadyState(sol=sol, y=y, w=w, newton_rel=newton_rel, finite=finite, status=status)


def _solve(vector_field, y0, rank_ok, u, config: FlowConfig, ts, to_w, logits, newton_and_norm) -> FlowResult:
    """The binary flow's ``FlowResult``: ``flow_to_steady_state`` with
    newton_rel relative to ||w|| itself, the loss at the final logits and
    the trajectory w(t) at ``ts`` ([0, d] when none asked).

    ``newton_and_norm(y)`` returns (||Newton step in w-space||, ||w||) for the
    state y, whatever its coordinates; ``logits(y)`` the logits X w.
    """
    soft = jnp.all(jnp.isfinite(u))
    run = flow_to_steady_state(vector_field, y0, rank_ok, soft, config, ts, norms=newton_and_norm, to_w=to_w,
                               norm_of_w=True)
    w = run.w
    if ts is None:
        traj = jnp.zeros((0, w.shape[0]), w.dtype)
    else:
        traj = jax.vmap(to_w)(run.sol.ys[:-1])
    return FlowResult(
        w=w,
        status=run.status,
        num_steps=run.sol.stats["num_steps"].astype(jnp.int32),
        t_final=run.sol.ts[-1],
        newton_rel=run.newton_rel,
        loss=cross_entropy(logits(run.y), u),
        trajectory=traj,
    )


def gradient_flow(
    X: Float[Array, "n d"],
    u: Float[Array, " n"],
    config: FlowConfig = FlowConfig(),
    *,
    ts: Float[Array, " T"] | None = None,
) -> FlowResult:
    """Gradient flow of eq. 3 (N = 1) from w(0) = 0 to its steady state.

    Args:
        X: transfer set, [n, d].
        u: teacher logits (``teachers.teacher_logits``), [n].
        config: ``FlowConfig``; ``config.coordinates`` picks the reduced
            (default) or the plain d-dimensional integration.
        ts: optional times at which to record w(t) (trajectory).

    Returns:
        ``FlowResult``; ``w`` tends to w_hat of eq. 6 (Thm 1).

    Example:
        >>> res = jax.vmap(lambda X, u: gradient_flow(X, u))(Xs, us)
    """
    if config.coordinates == "plain":
        return plain_gradient_flow(X, u, config, ts=ts)
    n, d = X.shape
    if n <= d:
        return _logit_flow(X, u, config, ts)
    # n > d: the logits are confined to a d-dim subspace; integrate b = Q^T w
    red = reduce_data(X)
    R = red.R

    def field(t, b, args):
        return -(R @ residual(R.T @ b, u)) / n

    def jacobian(t, b, args):
        # -(1/n) R D R^T, D = diag(sigma'(R^T b))
        return -((R * sigmoid_derivative(R.T @ b)[None, :]) @ R.T) / n

    b0 = jnp.zeros(R.shape[0], X.dtype)
    return _solve(FieldWithJacobian(field, jacobian), b0, red.rank_ok, u, config, ts, to_w=lambda b: red.Q @ b,
                  logits=lambda b: R.T @ b, newton_and_norm=lambda b: (newton_step_norm(red, R.T @ b, u), jnp.linalg.norm(b)))


def _logit_flow(X, u, config: FlowConfig, ts):
    """The flow in logit coordinates z = X w (n <= d, X of full row rank).

        dz/dt = -(1/n) G (sigma(z) - sigma(u)),  G = X X^T = L L^T,

    and w(t) = X^T G^{-1} z(t) exactly (w stays in span(X), Lemma B.1), so
    this is the same trajectory as eq. 3.  Newton step and norm in w-space:
    ||dw|| = ||L^{-1} D^{-1} (sigma(z) - sigma(u))||, ||w|| = ||L^{-1} z||.
    """
    G = X @ X.T
    return _gram_logit_flow(G, u, config, ts, lambda L_inv: (lambda z: X.T @ (L_inv.T @ (L_inv @ z))))


def gram_gradient_flow(
    G: Float[Array, "n n"],
    u: Float[Array, " n"],
    config: FlowConfig = FlowConfig(),
    *,
    ts: Float[Array, " T"] | None = None,
) -> FlowResult:
    """The flow of eq. 3 (N = 1) from w(0) = 0 given only the Gram matrix
    G = X X^T (n <= d, full rank) and the teacher logits u: the logit flow
    dz/dt = -(1/n) G (sigma(z) - sigma(u)) with the same stopping test as
    ``gradient_flow`` (Newton step and ||w|| computed from G alone).

    Returns:
        ``FlowResult`` whose ``w`` (and ``trajectory``) hold c = L^{-1} z,
        shape [n], with G = L L^T (Cholesky): the student's coordinates in
        the orthonormal basis Q = X^T L^{-T} of span X, i.e. w = Q c =
        X^T alpha with alpha = L^{-T} c.  So ||w|| = ||c|| (``newton_rel``
        is relative to it, as in ``gradient_flow``) and
        w.w* = c.(L^{-1} X w*) (docs/design.md fact 13).  The same ops as
        ``gradient_flow`` after X X^T.
    """
    if config.coordinates != "reduced":
        raise ValueError("gram_gradient_flow integrates the logit (reduced) coordinates; coordinates='plain' needs X")
    return _gram_logit_flow(G, u, config, ts, lambda L_inv: (lambda z: L_inv @ z))


def _gram_logit_flow(G, u, config: FlowConfig, ts, make_to_w):
    """The logit flow given G; ``make_to_w(L_inv)`` maps z to the returned w."""
    n = G.shape[0]
    L = jnp.linalg.cholesky(G)
    diag = jnp.abs(jnp.diagonal(L))
    rank_ok = jnp.all(jnp.isfinite(diag)) & (jnp.min(diag) > jnp.finfo(G.dtype).eps * n * jnp.max(diag))
    L_inv = jax.scipy.linalg.solve_triangular(L, jnp.eye(n, dtype=G.dtype), lower=True)
    # Hard labels (u = +-inf) become u = +-U with sigma(-U) ~ 0: the stable
    # residual below then equals sigma(z) - 1{u > 0} to within e^{-U}, so one
    # branch-free vector field serves both (fewer ops per solver stage).
    big = 600.0 if G.dtype == jnp.float64 else 60.0
    u_c = jnp.clip(u, -big, big)
    sig_minus_u = jax.nn.sigmoid(-u_c)

    def field(t, z, args):
        # -(1/n) G (sigma(z) - sigma(u)) with sigma(z) - sigma(u) = -sigma(z) sigma(-u) expm1(u - z)
        return (G @ (jax.nn.sigmoid(z) * sig_minus_u * jnp.expm1(u_c - z))) / n

    def jacobian(t, z, args):
        # -(1/n) G diag(sigma'(z)): an elementwise product, not jacfwd's n x n x n matmul
        return -(G * sigmoid_derivative(z)[None, :]) / n

    def newton_and_norm(z):
        # (sigma(z) - sigma(u)) / sigma'(z) = -sigma(-u) expm1(u - z) / sigma(-z), cancellation-free
        dz = -sig_minus_u * jnp.expm1(u_c - z) / jax.nn.sigmoid(-z)
        v = L_inv @ jnp.stack([dz, z], axis=1)
        return jnp.linalg.norm(v[:, 0]), jnp.linalg.norm(v[:, 1])

    to_w = make_to_w(L_inv)
    # the solver's loop (batched LU inside) reads only G and z0: without the
    # steady-state event (t_end) nothing else orders it after the Cholesky and
    # triangular solve above, and the two batched LAPACK calls deadlock jaxlib
    # on small CPUs (docs/design.md fact 11); z0 waits for L_inv
    z0 = after(jnp.zeros(n, G.dtype), L_inv)
    return _solve(FieldWithJacobian(field, jacobian), z0, rank_ok, u, config, ts, to_w=to_w, logits=lambda z: z,
                  newton_and_norm=newton_and_norm)


def plain_gradient_flow(
    X: Float[Array, "n d"],
    u: Float[Array, " n"],
    config: FlowConfig = FlowConfig(),
    *,
    ts: Float[Array, " T"] | None = None,
) -> FlowResult:
    """The d-dimensional flow dw/dt = -(1/n) X^T (sigma(X w) - y) (eq. 3, 38).

    The reference the reduced flow is tested against; cost O(n d) a step
    (and O(d^3) Newton solves for implicit solvers: keep d small).
    """
    n = X.shape[0]
    red = reduce_data(X)

    def vf(t, w, args):
        return -(X.T @ residual(X @ w, u)) / n

    w0 = jnp.zeros(X.shape[1], X.dtype)
    return _solve(vf, w0, red.rank_ok, u, config, ts, to_w=lambda w: w, logits=lambda w: X @ w,
                  newton_and_norm=lambda w: (newton_step_norm(red, X @ w, u), jnp.linalg.norm(w)))
