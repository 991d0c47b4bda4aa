"""Structured linear solves of the K-class flow in span coordinates (n > d;
docs/design.md facts 8, 14).

In span coordinates the state is B [r, K] (w = Q B), the logits are
Z = R^T B (R [r, n], rows of the null directions zero) and the Jacobian of
the field is J = -(1/n) (R kron I_K) D (R^T kron I_K), D = blockdiag_i H_i,
H_i = diag(s_i) - s_i s_i^T (fact 8).  Rodas3's stage systems
(c I - s J) x = rhs and the Newton step of the stopping test (fact 5,
H x = g with H = -J) are both

    (c I + a sum_i (R_i R_i^T) kron H_i) x = rhs,    a = s / n or 1 / n, c >= 0.

Per class k the diagonal part of H_i gives A_k = c I + a R diag(S_k) R^T
(K independent r-square systems); the rest, -a sum_i (R_i kron s_i)(R_i kron s_i)^T,
has rank n.  With y_i = s_i . (R^T x)_i (one scalar an example) column k
reads A_k x_k = rhs_k + a R (S_k * y), and y solves the n-square
capacitance system (Woodbury)

    N y = sum_k G_k^T L_k^{-1} rhs_k,    N = I - a sum_k G_k^T G_k,

A_k = L_k L_k^T (Cholesky), G_k = L_k^{-1} R diag(S_k); then
x_k = L_k^{-T} (L_k^{-1} rhs_k + a G_k y).  J annihilates the all-ones
directions x = v 1^T, and N is (nearly, c -> 0) singular exactly along
y = R^T v: an error of y there moves x along v 1^T (plus O(c) terms), which
the class-centring of the result removes, so the solve stays accurate as
the steps grow (as ``links.logit_shifted_solver``).  At c = 0 (the Newton
step) N is singular along R^T v; N + R^T R / ||R||^2 is definite and its
solution is one of the solutions of N y = rhs (the family is y + R^T v).
Null rows (where R and every right-hand side are 0) are solved as x = rhs.

Cost: K r-square Cholesky factors and triangular solves with n right-hand
sides, one (r K, n) by (r K, n) product and one n-square LU a
factorisation (O(K r n (r + n))), O(K r (r + n)) a stage; the dense solve
factors an (r K)-square matrix, O(r^3 K^3).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


def span_softmax_factor(R: Float[Array, "r n"], keep: Bool[Array, " r"], S: Float[Array, "n K"],
                        a: Float[Array, ""] | float, c: Float[Array, ""] | float, *, newton: bool = False
                        ) -> Callable[[Float[Array, "r K"]], Float[Array, "r K"]]:
    """Factor (c I + a sum_i (R_i R_i^T) kron H_i) (module docstring) at the
    probabilities S [n, K] and return rhs [r, K] -> the centred solution x [r, K]
    (exact for a centred rhs).  ``newton``: c = 0, the singular capacitance
    matrix made definite along R^T v (module docstring)."""
    r, n = R.shape
    eye_r = jnp.eye(r, dtype=R.dtype)
    RS = R[None, :, :] * S.T[:, None, :]  # [K, r, n]: R diag(S_k)
    A = a * jnp.einsum("kin,jn->kij", RS, R) + eye_r * jnp.where(keep, c, 1.0)[None, :, None]
    L = jnp.linalg.cholesky(A)  # [K, r, r]
    G = jax.scipy.linalg.solve_triangular(L, RS, lower=True)  # [K, r, n]: L_k^{-1} R diag(S_k)
    G_stacked = G.reshape(-1, n)  # [K r, n]: one plain matrix product (3x faster on the CPU than the 2-axis einsum)
    N = jnp.eye(n, dtype=R.dtype) - a * (G_stacked.T @ G_stacked)
    if newton:
        N = N + (R.T @ R) / jnp.maximum(jnp.sum(R * R), jnp.finfo(R.dtype).tiny)
    lu = jax.scipy.linalg.lu_factor(N)

    def solve(rhs: Float[Array, "r K"]) -> Float[Array, "r K"]:
        q = jax.scipy.linalg.solve_triangular(L, rhs.T[:, :, None], lower=True)[..., 0]  # [K, r]
        y = jax.scipy.linalg.lu_solve(lu, jnp.einsum("kin,ki->n", G, q))
        x = jax.scipy.linalg.solve_triangular(L, (q + a * jnp.einsum("kin,n->ki", G, y))[:, :, None],
                                              lower=True, trans=1)[..., 0]  # [K, r]
        return x.T - jnp.mean(x.T, axis=-1, keepdims=True)  # class-centred

    return solve


def span_shifted_solver(R: Float[Array, "r n"], keep: Bool[Array, " r"]):
    """The ``rosenbrock.FieldWithJacobian.shifted_solver`` of the span flow
    dB/dt = -(1/n) R (softmax(R^T B) - P): (c I - s J) x = rhs through K
    r-square systems and one n-square one (module docstring)."""
    n = R.shape[1]

    def shifted_solver(t, B, args, c, s):
        solve = span_softmax_factor(R, keep, jax.nn.softmax(R.T @ B, axis=-1), s / n, c)
        return lambda rhs: solve(rhs.reshape(B.shape)).reshape(-1)

    return shifted_solver


def span_newton_step(R: Float[Array, "r n"], keep: Bool[Array, " r"], Z: Float[Array, "n K"],
                     residual: Float[Array, "n K"]) -> Float[Array, "r K"]:
    """The centred Newton step H^{-1} g of the mean cross-entropy in span
    coordinates (eq. 42/43 restricted to span X and the centred classes,
    fact 5): g = (1/n) R residual (residual = softmax(Z) - P), H = -J."""
    n = R.shape[1]
    solve = span_softmax_factor(R, keep, jax.nn.softmax(Z, axis=-1), 1.0 / n, 0.0, newton=True)
    return solve((R @ residual) / n)


__all__ = ["span_softmax_factor", "span_shifted_solver", "span_newton_step"]
