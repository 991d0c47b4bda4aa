"""The exact limit of the K-class flow of a linear student (docs/design.md fact 8).

The flow from W = 0 keeps every row of W in span(X) and the class-sum of its
rows at 0, and on that subspace it minimises the convex mean cross-entropy

    L(W) = (1/n) sum_i CE(softmax(W x_i), p_i).

With a thin QR X^T = Q R (r = rank) and an orthonormal basis E [K, K-1] of the
centred classes (``helmert_basis``), the subspace is W^T = Q C E^T with
C [r, K-1], the logits are Z = R^T C E^T, and

    grad = (1/n) R (softmax(Z) - P) E,   Hess = (1/n) sum_i kron(R_i R_i^T, E^T H_i E),

H_i = diag(s_i) - s_i s_i^T.  For soft targets (every p_ik > 0) L is coercive
on the subspace and, when X has full rank, strictly convex there (the
Hessian is positive definite), so the limit is its unique minimiser:

* n <= d (r = n): the logits are free, the minimiser interpolates the
  centred log targets, the closed form ``softmax_closed_form`` (exact);
* n > d: it interpolates them only when they are realisable (a linear
  teacher); otherwise the flow tends to the minimiser of L, which is not
  the least-squares fit of the log targets.  ``softmax_minimiser`` computes
  it by damped Newton in C, started from the least-squares fit or 0, with an
  Armijo backtracking line search, inside ``jax.lax.while_loop``
  (vmappable, no Python branch on traced values).

``softmax_limit`` returns the flow's true limit and its kind
(``LimitKind``): the interpolant where it is the limit, else the minimiser.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .learners import helmert_basis, log_targets, reduced_closed_form, reduced_newton_system

ARMIJO_C = 1e-4
MAX_HALVINGS = 40


class LimitKind(enum.IntEnum):
    """Which exact reference a set's ``rel_dist_closed_form`` was measured against."""

    NONE = 0
    """The student has no exact limit (hard targets, finite networks): rel is NaN."""
    INTERPOLANT = 1
    """The minimum-norm interpolant of the centred log targets (closed form)."""
    MINIMISER = 2
    """The minimiser of the convex cross-entropy on the flow's subspace (Newton, converged)."""
    MINIMISER_NOT_CONVERGED = 3
    """Newton stopped at ``max_iter``, on a non-finite iterate or without a decrease: the reference is not exact."""

    @property
    def label(self) -> str:
        return LIMIT_KIND_NAMES[self]


LIMIT_KIND_NAMES: dict[int, str] = {
    LimitKind.NONE: "none",
    LimitKind.INTERPOLANT: "interpolant",
    LimitKind.MINIMISER: "convex_minimiser",
    LimitKind.MINIMISER_NOT_CONVERGED: "convex_minimiser_not_converged",
}


def default_tol(dtype) -> float:
    """sqrt(eps) of ``dtype`` (1.5e-8 in float64): the last Newton step taken
    is below tol ||W||, so the returned iterate is exact to ~tol^2 (quadratic
    convergence), down to rounding."""
    return float(np.sqrt(np.finfo(dtype).eps))


def mean_kl(Z: Float[Array, "n K"], logp: Float[Array, "n K"]) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """(1/n) sum_i KL(p_i || softmax(z_i)) (the cross-entropy minus a constant)
    and the scale of its rounding, (1/n) sum_ik p_ik (|log p_ik| + |log s_ik|)."""
    n = Z.shape[0]
    logs = jax.nn.log_softmax(Z, axis=-1)
    p = jnp.exp(logp)
    return jnp.sum(p * (logp - logs)) / n, jnp.sum(p * (jnp.abs(logp) + jnp.abs(logs))) / n


def newton_direction(g: Float[Array, "r Km1"], H: Float[Array, "m m"]) -> tuple[Float[Array, "r Km1"], Bool[Array, ""]]:
    """(D, ok): the Newton direction D = -H^{-1} g by Cholesky; where H is
    numerically singular (a saturated softmax far from the minimiser; ok is
    False) the Cauchy step -(g.g / g.H g) g instead."""
    tiny = jnp.finfo(g.dtype).tiny
    gv = g.reshape(-1)
    D = -jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(H, lower=True), gv).reshape(g.shape)
    ok = jnp.all(jnp.isfinite(D))
    cauchy = -(jnp.vdot(gv, gv) / jnp.maximum(jnp.vdot(gv, H @ gv), tiny)) * g
    return jnp.where(ok, D, cauchy), ok


def backtrack(loss: Callable[[Array], Array], C: Float[Array, "r Km1"], D: Float[Array, "r Km1"],
              f0: Float[Array, ""], slope: Float[Array, ""], allowance: Float[Array, ""]
              ) -> tuple[Float[Array, ""], Bool[Array, ""]]:
    """(t, accepted): the first t = 1, 1/2, 1/4, ... (at most ``MAX_HALVINGS``
    halvings) with loss(C + t D) <= f0 + 1e-4 t slope + allowance (Armijo; a
    non-finite loss counts as too high)."""
    bound = lambda t: f0 + ARMIJO_C * t * slope + allowance

    def too_high(ls):
        t, f_t, j = ls
        return ~(f_t <= bound(t)) & (j < MAX_HALVINGS)

    def halve(ls):
        t, _, j = ls
        return t / 2, loss(C + (t / 2) * D), j + 1

    t, f_t, _ = jax.lax.while_loop(too_high, halve, (jnp.asarray(1.0, C.dtype), loss(C + D), 0))
    return t, f_t <= bound(t)


def newton_minimise(R: Float[Array, "r n"], logp: Float[Array, "n K"], C0: Float[Array, "r Km1"], *,
                    active: Bool[Array, ""] | bool = True, tol: float, max_iter: int,
                    keep: Bool[Array, " r"] | None = None
                    ) -> tuple[Float[Array, "r Km1"], Bool[Array, ""], Int[Array, ""]]:
    """Damped Newton for min_C (1/n) sum_i KL(p_i || softmax(R_i^T C E^T)) from C0.

    Each iteration takes the Newton direction (``reduced_newton_system``,
    ``newton_direction``) and backtracks (``backtrack``) with a rounding
    allowance of 64 eps times the loss's scale (``mean_kl``): near the
    minimiser the decrease, ~||D||^2, drowns in rounding, and there the
    full step is right.  It stops after the first iteration whose Newton
    step is at most ``tol`` ||C|| (that step is taken: the result is exact
    to ~tol^2), at ``max_iter``, on a non-finite iterate, when no step
    decreases the loss, or at once when ``active`` is False.

    ``keep`` (a rank-revealed R, ``closed_form.reveal_span``): the rows where
    it is False are zero rows of R (null directions); the Hessian gets a unit
    diagonal there, so they keep C0's value there (0).

    Returns (C, converged, num_iter); converged: the last Newton step was
    at most tol ||C|| and C is finite.
    """
    K = logp.shape[-1]
    dtype = logp.dtype
    E = helmert_basis(K, dtype)
    eps, tiny = jnp.finfo(dtype).eps, jnp.finfo(dtype).tiny
    logits = lambda C: R.T @ (C @ E.T)
    # unit diagonal on the null rows' K - 1 coordinates (their gradient is 0): the same at every iteration
    null_diagonal = None if keep is None else jnp.diag(jnp.repeat(jnp.where(keep, 0.0, 1.0).astype(dtype), K - 1))

    def step(state):
        C, _, it = state
        g, H = reduced_newton_system(R, logits(C), logp, E)
        if null_diagonal is not None:
            H = H + null_diagonal
        D, newton_ok = newton_direction(g, H)
        f0, scale = mean_kl(logits(C), logp)
        t, accepted = backtrack(lambda C1: mean_kl(logits(C1), logp)[0], C, D, f0, jnp.vdot(g, D), 64.0 * eps * scale)
        rel = jnp.where(newton_ok, jnp.linalg.norm(D) / jnp.maximum(jnp.linalg.norm(C), tiny), jnp.inf)
        # no decrease found: stay, and stop (rel NaN)
        return jnp.where(accepted, C + t * D, C), jnp.where(accepted, rel, jnp.nan), it + 1

    def going(state):
        C, rel, it = state
        return active & (it < max_iter) & (rel > tol) & jnp.all(jnp.isfinite(C))

    C, rel, it = jax.lax.while_loop(going, step, (C0, jnp.asarray(jnp.inf, dtype), jnp.asarray(0, jnp.int32)))
    return C, (rel <= tol) & jnp.all(jnp.isfinite(C)), it


def starting_point(R: Float[Array, "r n"], B: Float[Array, "r K"], logp: Float[Array, "n K"],
                   E: Float[Array, "K Km1"]) -> Float[Array, "r Km1"]:
    """Newton's start: the least-squares fit B of the centred log targets
    (close to the minimiser for nearly linear teachers) or 0 (the flow's
    start, where the Hessian is (1/(nK)) R R^T per class: far better
    conditioned when the fit's logits are large), whichever has the lower loss."""
    fit_better = mean_kl(R.T @ B, logp)[0] < mean_kl(jnp.zeros_like(logp), logp)[0]
    return jnp.where(fit_better, B @ E, jnp.zeros((B.shape[0], E.shape[1]), B.dtype))


def softmax_minimiser(X: Float[Array, "n d"], V: Float[Array, "n K"], *, tol: float | None = None,
                      max_iter: int = 100) -> tuple[Float[Array, "K d"], Bool[Array, ""], Int[Array, ""]]:
    """The exact minimiser of (1/n) sum_i CE(softmax(W x_i), softmax(v_i)) over
    W [K, d] with rows in span(X) and class-sum 0: the flow's limit for soft
    targets, for any n and d (module docstring).  Damped Newton from the
    least-squares fit of the centred log targets or 0 (``starting_point``).

    Args:
        X: transfer inputs [n, d] (full rank); V: log targets [n, K], finite.
        tol: stop after a Newton step below tol ||W|| (default sqrt(eps)).
        max_iter: at most this many Newton iterations.

    Returns:
        (W [K, d], converged, num_iter).
    """
    tol = default_tol(X.dtype) if tol is None else tol
    red, B, _ = reduced_closed_form(X, V)
    E = helmert_basis(V.shape[-1], X.dtype)
    logp = log_targets(V)
    C, converged, it = newton_minimise(red.R, logp, starting_point(red.R, B, logp, E), tol=tol, max_iter=max_iter,
                                       keep=red.keep)
    return (red.Q @ (C @ E.T)).T, converged, it


def softmax_limit(X: Float[Array, "n d"], V: Float[Array, "n K"], *, tol: float | None = None,
                  max_iter: int = 100) -> tuple[Float[Array, "K d"], Int[Array, ""]]:
    """The flow's exact limit (fact 8) and its ``LimitKind`` for one set of soft targets.

    n <= d: the closed form (``softmax_closed_form``, INTERPOLANT) and nothing
    else is computed.  n > d: the closed form where the targets are
    realisable (bit for bit ``softmax_closed_form``), else the Newton
    minimiser (MINIMISER, or MINIMISER_NOT_CONVERGED); Newton runs only on
    the sets that need it (a batch of realisable sets skips the loop) and
    starts from the closed form's coordinates or 0 (its LAPACK calls wait
    for the QRs: docs/design.md fact 11)."""
    tol = default_tol(X.dtype) if tol is None else tol
    red, B, realisable = reduced_closed_form(X, V)
    W_cf = (red.Q @ B).T
    r, n = red.R.shape
    if r == n:
        return W_cf, jnp.asarray(LimitKind.INTERPOLANT, jnp.int32)
    E = helmert_basis(V.shape[-1], X.dtype)
    logp = log_targets(V)
    C, converged, _ = newton_minimise(red.R, logp, starting_point(red.R, B, logp, E), active=~realisable, tol=tol,
                                      max_iter=max_iter, keep=red.keep)
    W = jnp.where(realisable, W_cf, (red.Q @ (C @ E.T)).T)
    kind = jnp.where(realisable, LimitKind.INTERPOLANT,
                     jnp.where(converged, LimitKind.MINIMISER, LimitKind.MINIMISER_NOT_CONVERGED))
    return W, kind.astype(jnp.int32)


__all__ = ["LimitKind", "LIMIT_KIND_NAMES", "default_tol", "mean_kl", "newton_direction", "backtrack", "newton_minimise",
           "starting_point", "softmax_minimiser", "softmax_limit"]
