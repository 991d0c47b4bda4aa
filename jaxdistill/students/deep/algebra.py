"""Algebra of deep linear students: Thm 2's conditions and guarantee
(eq. 11, 76), the end-to-end vector w^T = W_N ... W_1 and balancedness
(eq. 13).  Pure functions of numbers and factors; no solving."""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, Float

from ...validation import JaxDistillError, check_int, check_real

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
# Factors and balancedness
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


def head_vector(Ws_rest) -> Float[Array, " H"]:
    """v with v^T = W_N ... W_2 (so that w = W_1^T v); ``Ws_rest`` = (W_2, ..., W_N)."""
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


__all__ = ["DEFAULT_EPSILON", "eq11_max_init_scale", "eq11_sup_over_sets", "eq76_bound", "check_eq11", "layer_dims",
           "end_to_end", "head_vector", "balancedness_defect"]
