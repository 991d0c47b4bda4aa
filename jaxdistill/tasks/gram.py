"""Drawing the Gram matrix of a transfer set directly (docs/design.md fact 13).

For a rotationally symmetric task every quantity of a linear student trained
from zero depends on the transfer set X [n, d] only through its Gram matrix
G = X X^T and the raw teacher logits u = X w* (fact 1: the student lives in
span X; fact 3: its risk depends only on its angle to w*).  Both can be drawn
exactly in distribution with O(n^2) random numbers, whatever d:

* Angular tasks: x_i = nu_i (cos a_i e + sin a_i v_i), e = w*/||w*||, v_i
  uniform on the unit sphere of the (d-1)-dimensional complement of e.  With
  v_i = g_i / ||g_i||, g_i ~ N(0, I_{d-1}), the Gram matrix of the g_i is
  Wishart_n(d - 1, I); by the Bartlett decomposition it has the law of
  L L^T with L lower triangular, L_ii = sqrt(chi^2_{d-1-i}) (i = 0..n-1) and
  L_ij ~ N(0, 1) below the diagonal, all independent (needs d - 1 >= n).
  The rows of L normalised to unit length are the v_i written in an
  orthonormal basis of their span, so

      F = [nu cos a, (nu sin a) * L_i / ||L_i||]   (n x (n + 1)),
      G = F F^T,   u = ||w*|| nu cos a.

* Isotropic Gaussian: x_i = c_i e + g_i with c_i ~ N(0, 1) independent of
  g_i ~ N(0, I_{d-1}) in the complement, so F = [c, L] with the same Bartlett
  factor (no normalisation) and u = ||w*|| c.

F is a transfer set of dimension n + 1 whose rows have exactly the joint law
of the rows of X up to one rotation of R^d that fixes w* (the "frame").  The
angles a_i and scales nu_i of the angular tasks use the same keys as
``sample``, so for one key the two samplers give the same u and ||x_i||;
only the directions differ (the sets are not bit-identical, each sampler is
reproducible).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..validation import check_int


def check_gram_n(n: int, d: int) -> int:
    """n as a Python int if 1 <= n <= d - 1 (the Wishart law of the Gram of n
    vectors in the (d-1)-dimensional complement of w* is then non-singular),
    else a ``JaxDistillError`` naming ``n``.  For n >= d a set costs O(n d) <=
    O(n^2) anyway: draw the inputs."""
    return check_int("n", n, minimum=1, maximum=d - 1)


def bartlett_factor(key: PRNGKeyArray, n: int, dof: int, dtype) -> Float[Array, "n n"]:
    """A lower-triangular L with L L^T ~ Wishart_n(dof, I) (Bartlett
    decomposition): L_ii = sqrt(chi^2_{dof - i}), L_ij ~ N(0, 1) for j < i.
    Needs dof >= n (a Python int)."""
    if dof < n:
        raise ValueError(f"the Bartlett decomposition needs dof >= n, got dof={dof}, n={n}")
    k_diag, k_off = jax.random.split(key)
    half_dof = (dof - jnp.arange(n, dtype=dtype)) / 2.0
    diag = jnp.sqrt(2.0 * jax.random.gamma(k_diag, half_dof, (n,), dtype=dtype))
    off = jnp.tril(jax.random.normal(k_off, (n, n), dtype=dtype), -1)
    return off + jnp.diag(diag)


def angular_frame(nu: Float[Array, " n"], cos_a: Float[Array, " n"], sin_a: Float[Array, " n"],
                  L: Float[Array, "n n"]) -> Float[Array, "n n+1"]:
    """F = [nu cos a, nu sin a * L_i/||L_i||]: the inputs of an angular task
    in a frame whose first axis is e = w*/||w*|| (module docstring)."""
    V = L / jnp.linalg.norm(L, axis=1, keepdims=True)
    return jnp.concatenate([(nu * cos_a)[:, None], (nu * sin_a)[:, None] * V], axis=1)


def gaussian_frame(c: Float[Array, " n"], L: Float[Array, "n n"]) -> Float[Array, "n n+1"]:
    """F = [c, L]: isotropic Gaussian inputs in a frame whose first axis is e."""
    return jnp.concatenate([c[:, None], L], axis=1)


def gram_of_frame(F: Float[Array, "n m"], w_norm) -> tuple[Float[Array, "n n"], Float[Array, " n"]]:
    """(G = F F^T, u = ||w*|| F[:, 0]): the Gram matrix and raw teacher logits."""
    return F @ F.T, w_norm * F[:, 0]


__all__ = ["check_gram_n", "bartlett_factor", "angular_frame", "gaussian_frame", "gram_of_frame"]
