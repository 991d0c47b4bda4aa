"""Closed form of Theorem 1 (eq. 6) and the QR reduction of docs/design.md fact 1.

Two reductions: ``reduce_data`` (a plain thin QR; full rank required) and
``reveal_span`` (QR with column pivoting for n > d: the numerical rank is
read off the pivots, the null directions are kept as zero rows of R, so
rank-deficient sets keep their fixed shapes and a well-defined limit).

With a thin QR factorisation X^T = Q R (Q: d x r orthonormal, r = min(n, d)),
every w in span(X) is w = Q b and the student logits are X w = R^T b.  The
limit of the N = 1 gradient flow from w(0) = 0 is the minimum-norm solution
of X w = u (u the teacher logits): for soft labels u = X w*, so
w_hat = Q Q^T w* = X (X^T X)^{-1} X^T w* for n < d and w_hat = w* for
n >= d (eq. 6).  No inverse of a Gram matrix is formed.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ..sequencing import after


class ReducedData(eqx.Module):
    """QR reduction of one transfer set: X^T = Q R.

    Attributes:
        Q: [d, r] orthonormal basis of span(X).
        R: [r, n] with X = R^T Q^T (upper triangular when n <= d).
        rank_ok: False when X is (numerically) rank deficient (``reduce_data``)
            or its numerical rank is ambiguous (``reveal_span``).
        keep: None (``reduce_data``: every row is a direction of span X), or
            [r] which rows of R are directions of span X (``reveal_span``:
            the others are zero rows, null directions, always the last ones).
    """

    Q: Float[Array, "d r"]
    R: Float[Array, "r n"]
    rank_ok: Array
    keep: Bool[Array, " r"] | None = None


def pivots_and_tolerance(R: Float[Array, "r n"], n: int, d: int) -> tuple[Float[Array, " r"], Float[Array, ""]]:
    """(|R_ii|, tol): the pivots of a QR of X^T [d, n] and the rank cut
    tol = eps max(n, d) max |R_ii| of both reductions."""
    diag = jnp.abs(jnp.diagonal(R))
    return diag, jnp.finfo(R.dtype).eps * max(n, d) * jnp.max(diag)


def reduce_data(X: Float[Array, "n d"]) -> ReducedData:
    """Thin QR of X^T with a numerical-rank check (min |R_ii| > eps * max)."""
    n, d = X.shape
    Q, R = jnp.linalg.qr(X.T, mode="reduced")  # Q [d, r], R [r, n]
    # forming Q (orgqr) and a later solve with R (trsm) are independent LAPACK calls:
    # every consumer of R waits for Q (docs/design.md fact 11)
    R = after(R, Q)
    diag, tol = pivots_and_tolerance(R, n, d)
    rank_ok = jnp.min(diag) > tol
    return ReducedData(Q=Q, R=R, rank_ok=rank_ok)


RANK_GAP = 1e3
"""``reveal_span``'s rank is ambiguous when a pivot lies in (tol, RANK_GAP * tol]."""


def reveal_span(X: Float[Array, "n d"]) -> ReducedData:
    """Rank-revealing reduction X^T = Q R (QR with column pivoting of X^T;
    for n > d: Q [d, d], R [d, n]), with fixed shapes whatever the rank.

    The pivots |R_ii| decrease; with tol = eps max(n, d) max |R_ii| (the
    ``reduce_data`` test) the numerical rank is rank = #{|R_ii| > tol}, the
    rows i >= rank of R are set to 0 (``keep``) and the columns of R are put
    back in the order of the examples.  A flow from zero never leaves the
    kept directions (their rows of R are 0), so its limit is the minimiser
    on the numerical span of X (Lemma B.1; for a linear teacher the
    projection of the teacher onto it, eq. 6).  ``rank_ok`` is False only
    when the rank is ambiguous: a pivot within RANK_GAP of the cut
    (tol < |R_ii| <= RANK_GAP tol), a direction whose singular value is
    too close to rounding for its component of the limit (~ 1 / sigma) to
    be determined; pivots at or below tol are rounding of exact zeros."""
    n, d = X.shape
    Q, R, perm = jax.scipy.linalg.qr(X.T, mode="economic", pivoting=True)  # Q [d, r], R [r, n] (columns permuted)
    R = after(R, Q)  # one LAPACK call after the other (docs/design.md fact 11)
    diag, tol = pivots_and_tolerance(R, n, d)
    keep = jnp.arange(diag.shape[0]) < jnp.sum(diag > tol)
    rank_ok = ~jnp.any((diag > tol) & (diag <= RANK_GAP * tol))
    R = jnp.zeros_like(R).at[:, perm].set(jnp.where(keep[:, None], R, 0.0))
    return ReducedData(Q=Q, R=R, rank_ok=rank_ok, keep=keep)


def reduced_target(red: ReducedData, u: Float[Array, " n"]) -> Float[Array, " r"]:
    """Coordinates b_hat of the minimum-norm solution of X w = u: R^T b = u."""
    r, n = red.R.shape
    if r == n:  # n <= d: R square upper triangular
        return jax.scipy.linalg.solve_triangular(red.R.T, u, lower=True)
    # n > d: over-determined but consistent for soft labels; least squares by a
    # second thin QR (R^T = Q2 R2, b = R2^{-1} Q2^T u), never a batched SVD, which
    # jaxlib 0.9.1-0.9.2 split over the thread pool even on one CPU
    Q2, R2 = jnp.linalg.qr(red.R.T, mode="reduced")  # [n, r], [r, r]
    R2 = after(R2, Q2)
    if red.keep is None:
        return jax.scipy.linalg.solve_triangular(R2, Q2.T @ u, lower=False)
    # ``reveal_span``: the null rows of R are the last ones, so R2 = blockdiag(R2_kept, 0) exactly
    # (Householder reflections of zero columns); unit pivots there, and those coordinates are 0
    keep = red.keep.reshape(-1, *([1] * (u.ndim - 1)))
    R2 = R2 + jnp.diag(jnp.where(red.keep, 0.0, 1.0).astype(R2.dtype))
    return jnp.where(keep, jax.scipy.linalg.solve_triangular(R2, Q2.T @ u, lower=False), 0.0)


def closed_form(X: Float[Array, "n d"], u: Float[Array, " n"]) -> Float[Array, " d"]:
    """Thm 1, eq. 6: the limit of the N = 1 gradient flow from zero.

    Args:
        X: one transfer set, rows are inputs, shape [n, d].
        u: teacher logits w*.x_i / T, shape [n] (see ``teachers``).

    Returns:
        w_hat, shape [d]: the minimum-norm solution of X w = u, which for
        soft labels of teacher w* is the projection of w* onto span(X)
        (n < d) or w* itself (n >= d).
    """
    red = reduce_data(X)
    return red.Q @ reduced_target(red, u)


def projection_of_teacher(X: Float[Array, "n d"], w_star: Float[Array, " d"]) -> Float[Array, " d"]:
    """P_X w* (eq. 6 written with the teacher directly)."""
    Q, _ = jnp.linalg.qr(X.T, mode="reduced")
    return Q @ (Q.T @ w_star)
