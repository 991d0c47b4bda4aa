"""Initialisations of deep linear students: exactly balanced rank-one
factors (eq. 13), scaled Gaussian factors, or user factors (``make_init``);
condition 12 (L(w(0)) < L(0)) met by a sign flip of W_N."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ...teachers import cross_entropy
from .algebra import balancedness_defect, end_to_end, layer_dims

INITS = ("balanced", "gaussian")


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
    unit sphere of R^d, e_1 .. e_{N-1} uniform on the sphere of R^H, e_N = 1
    (with a scalar output a balanced init is necessarily rank one).
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


__all__ = ["INITS", "DeepInit", "make_init", "balanced_init", "gaussian_init"]
