"""Deep linear students w^T = W_N ... W_1 (Thm 2, Appendix C).

Three integrators of the same gradient flow (eq. 3), all solved with
diffrax and stopped at a steady state decided in parameter space
(DESIGN.md fact 5):

* ``"full"``: gradient flow on every factor W_1 .. W_N (the deep linear
  network itself).  ``FlowConfig.coordinates="plain"`` integrates W_1 in
  all d columns; ``"reduced"`` (default) uses that dW_1/dt = -v g^T with
  g = grad L^1 in span(X) (Lemma B.1), so W_1 = W_1(0) (I - Q Q^T) + B Q^T
  and only B = W_1 Q [H, r] moves: the same trajectory, exactly.
* ``"induced"``: the end-to-end flow of Lemma C.1 (eq. 56) in d dimensions,
  dw/dt = -||w||^{2(N-1)/N} (g + (N-1) P_w g), valid under balancedness (13).
* ``"reduced"``: DESIGN.md fact 2.  With X^T = Q R and w = Q b + s q_hat,
  q_hat the fixed unit direction of the part of w(0) orthogonal to span(X)
  (it keeps its direction, eq. 63), eq. 56 becomes, with
  gamma = R (sigma(R^T b) - y) / n and m = ||w||^{2(N-1)/N}:

      db/dt = -m (gamma + (N-1) b (b.gamma) / ||w||^2)
      ds/dt = -m (N-1) s (b.gamma) / ||w||^2           (eq. 63-64)

  an (r + 1)-dimensional ODE whose cost per step is O(n r), independent of
  d and of the widths.  Its solution obeys eq. 66,
  s(t)/s(0) = (||w(t)|| / ||w(0)||)^{(N-1)/N}.

Initialisation (``balanced_init``): w(0) = init_scale * v with v uniform on
the sphere, factored exactly as rank-one matrices W_j = c e_j e_{j-1}^T,
c = init_scale^{1/N}, so that W_{j+1}^T W_{j+1} = c^2 e_j e_j^T = W_j W_j^T
(eq. 13; with a scalar output a balanced init is necessarily rank one).
Condition 12 (L(w(0)) < L(0)) is met by flipping the sign of W_N when
L(-w0) < L(w0).  The init scale is either given, or derived per set from
epsilon: ``eq11_fraction`` times the largest ||w(0)|| allowed by eq. 11,
which simplifies to ||w_hat|| (1 + ||w_hat||^2 / eps^2)^{-N/2}.

Guarantee (eq. 76): limsup ||w(t) - w_hat|| <= ||w_hat|| sqrt(rho / (1 - rho)),
rho = (||w(0)|| / ||w_hat||)^{2/N}, when ||w(0)|| < ||w_hat||; 0 when n >= d
(eq. 14); +inf when ||w(0)|| >= ||w_hat|| (the theorem gives no bound).

Arrival: the Newton step of L^1 restricted to span(X) (an r x r solve)
estimates b - b_hat; the orthogonal scalar's remaining change follows from
eq. 66, |ds| ~ (N-1)/N * s |b.step| / ||w||^2.  The flow stops when both are
below ``newton_tol * ||w||``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..teachers import cross_entropy, residual
from ..validation import JaxDistillError, check_choice, check_int, check_real
from .base import LearnerOutput
from .closed_form import ReducedData, reduce_data, reduced_target
from .discrete import GDConfig
from .flow import (CONVERGED, HORIZON, MAX_STEPS, NONFINITE, NOT_CONVERGED, RANK_DEFICIENT, SOLVER_FAILED,
                   FlowConfig, flow_status, newton_step, solve_to_steady_state)

INTEGRATORS = ("reduced", "induced", "full")
INITS = ("balanced", "gaussian")
DEFAULT_EPSILON = 1e-2


# ----------------------------------------------------------------------------------------------
# Theorem 2 conditions and guarantee
# ----------------------------------------------------------------------------------------------


def eq11_max_init_scale(epsilon, w_hat_norm, depth: int):
    """Largest ||w(0)|| allowed by eq. 11 (the condition is strict: ||w(0)|| < this).

    min{a, eps^N (eps^2 a^{-2/N} + a^{2-2/N})^{-N/2}} with a = ||w_hat||
    equals a (1 + a^2 / eps^2)^{-N/2} (the second term is always the smaller).
    At equality eq. 76 gives exactly epsilon.
    """
    a = jnp.asarray(w_hat_norm)
    return a * (1.0 + (a / epsilon) ** 2) ** (-depth / 2.0)


def eq11_sup_over_sets(epsilon: float, depth: int) -> float:
    """sup over ||w_hat|| of eq. 11's limit: eps / sqrt(N-1) * (N/(N-1))^{-N/2}
    (attained at ||w_hat|| = eps / sqrt(N-1)); eps for N = 1.  An init scale at
    or above it violates eq. 11 for every transfer set."""
    if depth == 1:
        return float(epsilon)
    return float(epsilon / math.sqrt(depth - 1) * (depth / (depth - 1)) ** (-depth / 2.0))


def eq76_bound(init_norm, w_hat_norm, depth: int, full_rank_cover=False):
    """Square root of the right-hand side of eq. 76: the Thm 2 bound on
    limsup ||w(t) - w_hat||.

    ||w_hat|| sqrt(rho / (1 - rho)) with rho = (||w(0)|| / ||w_hat||)^{2/N}
    (the algebraically equal form of eq. 75-76, without cancellation);
    0 when ``full_rank_cover`` (n >= d: w(t) -> w_hat, eq. 14);
    +inf when ||w(0)|| >= ||w_hat|| (condition 11 fails; no bound).
    """
    s = jnp.asarray(init_norm)
    a = jnp.asarray(w_hat_norm)
    rho = (s / jnp.where(a > 0, a, 1.0)) ** (2.0 / depth)
    ok = (s < a) & (a > 0)
    rho_safe = jnp.where(ok, rho, 0.5)
    val = a * jnp.sqrt(rho_safe / (1.0 - rho_safe))
    val = jnp.where(ok, val, jnp.inf)
    return jnp.where(full_rank_cover, jnp.zeros_like(val), val)


def check_eq11(init_scale: float, epsilon: float, w_hat_norm: float, depth: int) -> None:
    """Raise ``JaxDistillError`` unless ||w(0)|| = init_scale satisfies eq. 11
    for a set with the given ||w_hat|| (concrete numbers, e.g. a known set)."""
    depth = check_int("depth", depth, minimum=1)
    init_scale = check_real("init_scale", init_scale, gt=0.0)
    epsilon = check_real("epsilon", epsilon, gt=0.0)
    w_hat_norm = check_real("w_hat_norm", w_hat_norm, gt=0.0)
    lim = float(eq11_max_init_scale(epsilon, w_hat_norm, depth))
    if not init_scale < lim:
        raise JaxDistillError(
            f"init_scale must be < {lim:.6g} (eq. 11 with epsilon={epsilon:g}, ||w_hat||={w_hat_norm:.6g}, N={depth}) "
            f"for the Thm 2 guarantee; got {init_scale:g}")


# ----------------------------------------------------------------------------------------------
# Factors, balancedness, initialisation
# ----------------------------------------------------------------------------------------------


def layer_dims(d: int, depth: int, width: int) -> list[int]:
    """[d, H, ..., H, 1]: W_i has shape [dims[i], dims[i-1]]."""
    return [d] + [width] * (depth - 1) + [1]


def end_to_end(Ws) -> Float[Array, " d"]:
    """w with w^T = W_N ... W_1."""
    M = Ws[0]
    for W in Ws[1:]:
        M = W @ M
    return M[0]


def _head(Ws_rest) -> Float[Array, " H"]:
    """v with v^T = W_N ... W_2 (so that w = W_1^T v)."""
    M = Ws_rest[-1]
    for W in reversed(Ws_rest[:-1]):
        M = M @ W
    return M[0]


def balancedness_defect(Ws, gram1=None) -> Float[Array, ""]:
    """max_j ||W_{j+1}^T W_{j+1} - W_j W_j^T||_F / max_j ||W_j W_j^T||_F (eq. 13).

    0 for a balanced network; ``gram1`` optionally gives W_1 W_1^T (used by
    the reduced full flow, where W_1 is stored in parts).  0 for N = 1.
    """
    if len(Ws) == 1:
        return jnp.zeros((), Ws[-1].dtype)
    grams = [Ws[0] @ Ws[0].T if gram1 is None else gram1] + [W @ W.T for W in Ws[1:-1]]
    defects = [jnp.linalg.norm(Ws[j + 1].T @ Ws[j + 1] - grams[j]) for j in range(len(Ws) - 1)]
    scale = jnp.maximum(jnp.max(jnp.stack([jnp.linalg.norm(g) for g in grams])), jnp.finfo(Ws[-1].dtype).tiny)
    return jnp.max(jnp.stack(defects)) / scale


class DeepInit(eqx.Module):
    """An initialisation of the factors, after the condition-12 sign check.

    Attributes:
        Ws: tuple of factors W_1 [H, d], W_2 .. W_{N-1} [H, H], W_N [1, H].
        w0: end-to-end w(0) [d].
        init_norm: ||w(0)||.
        balancedness_defect: ``balancedness_defect(Ws)`` (0 when balanced).
        cond12: L(w(0)) < L(0) (eq. 12) after the optional flip.
        flipped: whether W_N's sign was flipped to meet eq. 12.
    """

    Ws: tuple
    w0: Float[Array, " d"]
    init_norm: Float[Array, ""]
    balancedness_defect: Float[Array, ""]
    cond12: Array
    flipped: Array


def make_init(Ws, X: Float[Array, "n d"], u: Float[Array, " n"], *, flip: bool = True) -> DeepInit:
    """Wrap user factors (e.g. a small Gaussian init) with their diagnostics.

    With ``flip`` the sign of W_N is flipped when that lowers L^1(w(0)),
    which meets condition 12 whenever either sign does.
    """
    Ws = tuple(jnp.asarray(W) for W in Ws)
    w0 = end_to_end(Ws)
    L0 = cross_entropy(jnp.zeros_like(u), u)
    Lp = cross_entropy(X @ w0, u)
    Lm = cross_entropy(-(X @ w0), u)
    flipped = jnp.asarray(flip) & (Lm < Lp)
    sign = jnp.where(flipped, -1.0, 1.0).astype(w0.dtype)
    Ws = Ws[:-1] + (sign * Ws[-1],)
    w0 = sign * w0
    return DeepInit(
        Ws=Ws,
        w0=w0,
        init_norm=jnp.linalg.norm(w0),
        balancedness_defect=balancedness_defect(Ws),
        cond12=jnp.where(flipped, Lm, Lp) < L0,
        flipped=flipped,
    )


def _unit(key, m, dtype):
    v = jax.random.normal(key, (m,), dtype)
    return v / jnp.linalg.norm(v)


def balanced_init(key: PRNGKeyArray, X: Float[Array, "n d"], u: Float[Array, " n"], *, depth: int, width: int,
                  init_scale) -> DeepInit:
    """Exactly balanced factors (eq. 13) with ||w(0)|| = init_scale, eq. 12 met by a sign flip.

    W_j = c e_j e_{j-1}^T with c = init_scale^{1/N}, e_0 = v uniform on the
    unit sphere of R^d, e_1 .. e_{N-1} uniform on the sphere of R^H, e_N = 1.
    """
    d = X.shape[1]
    dims = layer_dims(d, depth, width)
    keys = jax.random.split(key, depth)
    es = [_unit(keys[j], dims[j], X.dtype) for j in range(depth)] + [jnp.ones((1,), X.dtype)]
    c = jnp.asarray(init_scale, X.dtype) ** (1.0 / depth)
    Ws = tuple(c * jnp.outer(es[j + 1], es[j]) for j in range(depth))
    return make_init(Ws, X, u)


def gaussian_init(key: PRNGKeyArray, X, u, *, depth: int, width: int, init_scale) -> DeepInit:
    """Independent Gaussian factors, rescaled by one common factor so that
    ||w(0)|| = init_scale: the "in practice" init of the paper (approximately,
    not exactly, balanced; use the full integrator)."""
    d = X.shape[1]
    dims = layer_dims(d, depth, width)
    keys = jax.random.split(key, depth)
    Ws = [jax.random.normal(keys[j], (dims[j + 1], dims[j]), X.dtype) / jnp.sqrt(dims[j]) for j in range(depth)]
    c = (jnp.asarray(init_scale, X.dtype) / jnp.linalg.norm(end_to_end(Ws))) ** (1.0 / depth)
    return make_init([c * W for W in Ws], X, u)


# ----------------------------------------------------------------------------------------------
# Flows
# ----------------------------------------------------------------------------------------------


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
    """(||Newton step||, remaining change of the orthogonal scalar by eq. 66), ||w||."""
    step = newton_step(red, z, u)
    wn2 = jnp.sum(b * b) + sigma * sigma
    wn = jnp.sqrt(wn2)
    orth = (depth - 1) / depth * jnp.abs(sigma) * jnp.abs(jnp.dot(b, step)) / jnp.maximum(wn2, jnp.finfo(b.dtype).tiny)
    return jnp.linalg.norm(step), orth, wn


def _solve(vf, y0, red: ReducedData, u, config: FlowConfig, ts, depth: int, *, logits, b_sigma, to_w, defect):
    soft = jnp.all(jnp.isfinite(u))

    def cond_fn(t, y, args, **kwargs):
        b, sigma = b_sigma(y)
        nstep, orth, wn = _remaining(red, b, sigma, logits(y), u, depth)
        tol = config.newton_tol * jnp.maximum(wn, jnp.finfo(wn.dtype).tiny)
        return soft & (nstep <= tol) & (orth <= tol)

    sol = solve_to_steady_state(vf, y0, config, ts, cond_fn)
    y_final = jax.tree_util.tree_map(lambda a: a[-1], sol.ys)
    b, sigma = b_sigma(y_final)
    z = logits(y_final)
    nstep, orth, wn = _remaining(red, b, sigma, z, u, depth)
    newton_rel = jnp.maximum(nstep, orth) / jnp.maximum(wn, jnp.finfo(wn.dtype).tiny)
    w = to_w(y_final)
    finite = jnp.all(jnp.isfinite(w)) & (jnp.isfinite(newton_rel) | ~soft)
    converged = newton_rel <= config.newton_tol
    status = flow_status(red.rank_ok, finite, soft, converged, sol.result)
    if ts is None:
        traj = None
    else:
        ys = jax.tree_util.tree_map(lambda a: a[:-1], sol.ys)
        traj = (jax.vmap(to_w)(ys), jax.vmap(logits)(ys), jax.vmap(defect)(ys))
    return sol, status, w, z, newton_rel, defect(y_final), traj


def deep_flow(
    X: Float[Array, "n d"],
    u: Float[Array, " n"],
    init: DeepInit,
    *,
    integrator: str = "reduced",
    config: FlowConfig = FlowConfig(),
    ts: Float[Array, " T"] | None = None,
) -> DeepFlowResult:
    """Gradient flow of eq. 3 for a deep linear student, to its steady state.

    Args:
        X: transfer set [n, d]; u: teacher logits [n].
        init: ``DeepInit`` (``balanced_init``, ``gaussian_init`` or ``make_init``).
            The induced and reduced integrators assume balancedness (eq. 13)
            and use only w(0); the full integrator uses the factors.
        integrator: "reduced" (DESIGN.md fact 2), "induced" (eq. 56) or "full".
        config: ``FlowConfig`` (solver, tolerances, newton_tol, max_steps,
            t_max; ``coordinates`` selects the W_1 storage of the full flow).
        ts: optional times at which to record the diagnostics.

    Returns:
        ``DeepFlowResult``; for n >= d, w -> w* (eq. 14), otherwise
        ||w - w_hat|| <= ``eq76_bound`` (eq. 15, 76).
    """
    check_choice("integrator", integrator, INTEGRATORS)
    depth = len(init.Ws)
    n, d = X.shape
    red = reduce_data(X)
    Q, R = red.Q, red.R
    b_hat = reduced_target(red, u)
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
            return _head(y[1:]) if N > 1 else jnp.ones((1,), X.dtype)

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
    the full flow.  Returns (w [d], final factors, status HORIZON or NONFINITE).
    """
    n = X.shape[0]
    opt = config.transformation()

    def grad(Ws):
        z, pullback = jax.vjp(lambda W: X @ end_to_end(W), Ws)
        return pullback(residual(z, u) / n)[0]

    def step(carry, _):
        Ws, state = carry
        updates, state = opt.update(grad(Ws), state, Ws)
        return (optax.apply_updates(Ws, updates), state), None

    Ws0 = tuple(init.Ws)
    (Ws, _), _ = jax.lax.scan(step, (Ws0, opt.init(Ws0)), None, length=config.steps)
    w = end_to_end(Ws)
    status = jnp.where(jnp.all(jnp.isfinite(w)), HORIZON, NONFINITE).astype(jnp.int32)
    return w, Ws, status


# ----------------------------------------------------------------------------------------------
# Learners
# ----------------------------------------------------------------------------------------------


def _check_common(depth, width, init_scale, epsilon, eq11_fraction, init):
    check_int("depth", depth, minimum=1)
    check_int("width", width, minimum=1)
    if init_scale is not None:
        check_real("init_scale", init_scale, gt=0.0)
    if epsilon is not None:
        check_real("epsilon", epsilon, gt=0.0)
    check_real("eq11_fraction", eq11_fraction, gt=0.0, lt=1.0)
    check_choice("init", init, INITS)
    if init_scale is not None and epsilon is not None:
        sup = eq11_sup_over_sets(epsilon, depth)
        if not init_scale < sup:
            raise JaxDistillError(
                f"init_scale must be < {sup:.6g} to satisfy eq. 11 with epsilon={epsilon:g} and depth N={depth} "
                f"(the largest ||w(0)|| eq. 11 allows for any ||w_hat||); got {init_scale:g}. "
                "Omit init_scale to derive it from epsilon per set, or omit epsilon to drop the guarantee.")


def _init_for_set(key, X, u, depth, width, init_scale, epsilon, eq11_fraction, init):
    red = reduce_data(X)
    w_hat = red.Q @ reduced_target(red, u)
    soft = jnp.all(jnp.isfinite(u))
    a = jnp.where(soft, jnp.linalg.norm(w_hat), 1.0)  # hard labels: no w_hat; scale by 1
    eps = DEFAULT_EPSILON if epsilon is None else epsilon
    if init_scale is None:
        s = eq11_fraction * eq11_max_init_scale(eps, a, depth)
    else:
        s = jnp.asarray(init_scale, X.dtype)
    maker = balanced_init if init == "balanced" else gaussian_init
    ini = maker(key, X, u, depth=depth, width=width, init_scale=s)
    cover = red.R.shape[0] == X.shape[1]  # n >= d: span(X) = R^d
    bound = eq76_bound(ini.init_norm, a, depth, full_rank_cover=cover)
    eq11_ok = ini.init_norm < eq11_max_init_scale(eps, a, depth)
    return ini, red, w_hat, soft, bound, eq11_ok


def _extras(ini, w, w_hat, soft, bound, eq11_ok, defect, t_final, newton_rel, orth):
    dist = jnp.where(soft, jnp.linalg.norm(w - w_hat), jnp.nan)
    return {
        "dist_w_hat": dist,
        "eq76_bound": jnp.where(soft, bound, jnp.nan),
        "balancedness_defect": defect,
        "init_balancedness_defect": ini.balancedness_defect,
        "init_norm": ini.init_norm,
        "orth_norm": orth,
        "eq11_satisfied": eq11_ok.astype(w.dtype),
        "cond12_satisfied": ini.cond12.astype(w.dtype),
        "t_final": t_final,
        "newton_rel": newton_rel,
    }


@dataclass(frozen=True)
class DeepLearner:
    """Deep linear student (Thm 2) trained by gradient flow to its steady state.

    Attributes:
        depth: N >= 1 factors (N = 1 is a linear student started at w(0) != 0).
        width: hidden width H >= 1.
        init_scale: ||w(0)||; None derives it per set from epsilon by eq. 11
            (``eq11_fraction`` of the largest allowed value).
        epsilon: the Thm 2 accuracy; with init_scale also given, an init
            scale that violates eq. 11 for every possible set is an error and
            ``extras["eq11_satisfied"]`` reports each set.  None: 1e-2 when
            init_scale is None too.
        integrator: "reduced" (default), "induced" or "full".
        flow: ``FlowConfig`` (solver, tolerances, stopping).
        eq11_fraction: fraction of the eq. 11 limit used when init_scale is None.
        init: "balanced" (exact eq. 13) or "gaussian" (full integrator only).

    ``fit`` extras: dist_w_hat, eq76_bound, balancedness_defect (final, full
    flow), init_balancedness_defect, init_norm, orth_norm, eq11_satisfied,
    cond12_satisfied, t_final, newton_rel.
    """

    depth: int = 2
    width: int = 64
    init_scale: float | None = None
    epsilon: float | None = None
    integrator: str = "reduced"
    flow: FlowConfig = FlowConfig()
    eq11_fraction: float = 0.5
    init: str = "balanced"
    name: str = field(default="deep", init=False)

    def __post_init__(self):
        _check_common(self.depth, self.width, self.init_scale, self.epsilon, self.eq11_fraction, self.init)
        check_choice("integrator", self.integrator, INTEGRATORS)
        if self.init != "balanced" and self.integrator != "full":
            raise JaxDistillError(
                f"init={self.init!r} is not balanced (eq. 13); the {self.integrator} integrator assumes balancedness: "
                "use integrator='full'")

    def fit(self, key, X, u) -> LearnerOutput:
        ini, red, w_hat, soft, bound, eq11_ok = _init_for_set(
            key, X, u, self.depth, self.width, self.init_scale, self.epsilon, self.eq11_fraction, self.init)
        res = deep_flow(X, u, ini, integrator=self.integrator, config=self.flow)
        return LearnerOutput(
            w=res.w, status=res.status, num_steps=res.num_steps, loss=res.loss,
            extras=_extras(ini, res.w, w_hat, soft, bound, eq11_ok, res.balancedness_defect, res.t_final,
                           res.newton_rel, res.orth_norm))


@dataclass(frozen=True)
class DeepGDLearner:
    """Deep linear student trained by an optax optimiser on all factors (finite horizon)."""

    depth: int = 2
    width: int = 64
    init_scale: float | None = None
    epsilon: float | None = None
    gd: GDConfig = GDConfig(learning_rate=0.5, steps=20_000)
    eq11_fraction: float = 0.5
    init: str = "balanced"
    name: str = field(default="deep-gd", init=False)

    def __post_init__(self):
        _check_common(self.depth, self.width, self.init_scale, self.epsilon, self.eq11_fraction, self.init)

    def fit(self, key, X, u) -> LearnerOutput:
        ini, red, w_hat, soft, bound, eq11_ok = _init_for_set(
            key, X, u, self.depth, self.width, self.init_scale, self.epsilon, self.eq11_fraction, self.init)
        w, Ws, status = deep_gradient_descent(X, u, ini, self.gd)
        Q = red.Q
        orth = jnp.linalg.norm(w - Q @ (Q.T @ w))
        nan = jnp.asarray(jnp.nan, X.dtype)
        return LearnerOutput(
            w=w, status=status, num_steps=jnp.asarray(self.gd.steps, jnp.int32), loss=cross_entropy(X @ w, u),
            extras=_extras(ini, w, w_hat, soft, bound, eq11_ok, balancedness_defect(Ws), nan, nan, orth))


def deep_learner_from_options(args, flow: FlowConfig) -> DeepLearner:
    """The ``DeepLearner`` named by ``jaxdistill run`` options (--depth, --width,
    --init-scale, --epsilon, --integrator) and the gradient-flow options."""
    return DeepLearner(depth=args.depth, width=args.width, init_scale=args.init_scale, epsilon=args.epsilon,
                       integrator=args.integrator, flow=flow)
