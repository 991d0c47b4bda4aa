"""Closed form of Theorem 1 (eq. 6) and the QR reduction of docs/design.md fact 1.

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
from jaxtyping import Array, Float

from ..sequencing import after


class ReducedData(eqx.Module):
    """QR reduction of one transfer set: X^T = Q R.

    Attributes:
        Q: [d, r] orthonormal basis of span(X).
        R: [r, n] with X = R^T Q^T (upper triangular when n <= d).
        rank_ok: False when X is (numerically) rank deficient.
    """

    Q: Float[Array, "d r"]
    R: Float[Array, "r n"]
    rank_ok: Array


def reduce_data(X: Float[Array, "n d"]) -> ReducedData:
    """Thin QR of X^T with a numerical-rank check (min |R_ii| > eps * max)."""
    n, d = X.shape
    Q, R = jnp.linalg.qr(X.T, mode="reduced")  # Q [d, r], R [r, n]
    # forming Q (orgqr) and a later solve with R (trsm) are independent LAPACK calls:
    # every consumer of R waits for Q (docs/design.md fact 11)
    R = after(R, Q)
    diag = jnp.abs(jnp.diagonal(R))
    tol = jnp.finfo(X.dtype).eps * max(n, d) * jnp.max(diag)
    rank_ok = jnp.min(diag) > tol
    return ReducedData(Q=Q, R=R, rank_ok=rank_ok)


def reduced_target(red: ReducedData, u: Float[Array, " n"]) -> Float[Array, " r"]:
    """Coordinates b_hat of the minimum-norm solution of X w = u: R^T b = u."""
    r, n = red.R.shape
    if r == n:  # n <= d: R square upper triangular
        return jax.scipy.linalg.solve_triangular(red.R.T, u, lower=True)
    # n > d: over-determined but consistent for soft labels; least squares by a
    # second thin QR (R^T = Q2 R2, b = R2^{-1} Q2^T u), never a batched SVD, which
    # jaxlib 0.9.1-0.9.2 split over the thread pool even on one CPU
    Q2, R2 = jnp.linalg.qr(red.R.T, mode="reduced")  # [n, r], [r, r]
    return jax.scipy.linalg.solve_triangular(after(R2, Q2), Q2.T @ u, lower=False)


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
