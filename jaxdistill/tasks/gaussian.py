"""Gaussian input laws: isotropic N(0, I_d) and N(0, Sigma) for a user Sigma.

Both have an exact transfer risk, R(w) = arccos(rho) / pi (Sheppard's
formula), so no held-out sample is needed.
"""

from __future__ import annotations

from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..validation import JaxDistillError, check_array, check_int
from .base import AbstractSymmetricTask, AbstractTask, as_float64, context_dtype, teacher_for
from .riskmath import HALF_PI, gaussian_risk, isotropic_gaussian_risk
from .gram import bartlett_factor, check_gram_n, gaussian_frame, gram_of_frame


@final
class IsotropicGaussianTask(AbstractSymmetricTask):
    """x ~ N(0, I_d).  The angle between x and w* is that of a uniform point
    on the sphere: cos(a) = |t| with (t + 1)/2 ~ Beta((d-1)/2, (d-1)/2).
    Rotationally symmetric; its exact risk is the student's angle over pi.

    Args:
        d: input dimension (>= 2).
        w_star: the teacher (default teacher_norm * e_1).
        teacher_norm: ||w*|| of the default teacher (> 0).
    """

    d: int = eqx.field(static=True)
    w_star: Float[Array, " d"]
    name: ClassVar[str] = "gaussian"

    def __init__(self, d: int, *, w_star=None, teacher_norm: float = 1.0):
        self.d = check_int("d", d, minimum=2, maximum=10**8)
        self.w_star = teacher_for(self.d, w_star, teacher_norm)

    def sample(self, key, num):
        return jax.random.normal(key, (num, self.d), dtype=context_dtype(self.w_star))

    def p_theta(self, theta):
        # p(theta) = P[|cos a| <= cos theta] with cos(a)^2 ~ Beta(1/2, (d-1)/2) for a uniform
        # direction; this form stays accurate for d up to 1e8 (the difference of two symmetric
        # Beta CDFs near 1/2 lost all digits there: p = -0.29 at d = 1e8).
        theta = jnp.clip(jnp.asarray(theta), 0.0, HALF_PI)
        c = jnp.cos(theta)
        return jax.scipy.special.betainc(0.5, (self.d - 1) / 2.0, c * c)

    def exact_risk(self, W):
        """The signed angle of W to w* over pi (Sheppard's formula, Sigma = I)."""
        return isotropic_gaussian_risk(W, self.w_star)

    @property
    def supports_gram(self) -> bool:
        return True

    def sample_gram(self, key, n: int):
        """(G, u) of ``n`` <= d - 1 inputs drawn in O(n^2) (docs/design.md fact 13):
        x = c e + g with c ~ N(0, 1) and the Gram of the g's a Bartlett
        Wishart_n(d - 1, I)."""
        check_gram_n(n, self.d)
        k_c, k_dir = jax.random.split(key)
        w = jnp.asarray(self.w_star)
        c = jax.random.normal(k_c, (n,), dtype=w.dtype)
        return gram_of_frame(gaussian_frame(c, bartlett_factor(k_dir, n, self.d - 1, w.dtype)), jnp.linalg.norm(w))

    def exact_risk_from_angle(self, phi):
        """phi / pi (Sheppard's formula, Sigma = I), as ``exact_risk``."""
        return jnp.asarray(phi) / jnp.pi


@final
class GaussianTask(AbstractTask):
    """x ~ N(0, Sigma) for a user covariance Sigma (shape [d, d], positive
    definite).  Not rotationally symmetric in general; its transfer risk is
    nevertheless exact: R(w) = arccos(rho) / pi with rho the correlation of
    w.x and w*.x (Sheppard's formula).

    Args:
        cov: Sigma, [d, d], symmetric positive definite.
        w_star: the teacher (default teacher_norm * e_1).
        teacher_norm: ||w*|| of the default teacher (> 0).
    """

    d: int = eqx.field(static=True)
    w_star: Float[Array, " d"]
    cov: Float[Array, "d d"]
    chol: Float[Array, "d d"]
    name: ClassVar[str] = "gaussian-cov"

    def __init__(self, cov, *, w_star=None, teacher_norm: float = 1.0):
        cov_np = check_array("cov", cov, ndim=2, shape_text="[d, d]")
        if cov_np.shape[0] != cov_np.shape[1]:
            raise JaxDistillError(f"cov must be square with shape [d, d], got shape {cov_np.shape}")
        self.d = check_int("d", cov_np.shape[0], minimum=2)
        if not np.allclose(cov_np, cov_np.T, rtol=1e-10, atol=1e-12):
            raise JaxDistillError("cov must be symmetric")
        try:
            chol = np.linalg.cholesky(cov_np)
        except np.linalg.LinAlgError:
            raise JaxDistillError("cov must be positive definite (its Cholesky factorisation failed)") from None
        self.cov = as_float64(cov_np)
        self.chol = as_float64(chol)
        self.w_star = teacher_for(self.d, w_star, teacher_norm)

    def __check_init__(self):
        d = self.d
        if jnp.shape(self.cov) != (d, d) or jnp.shape(self.chol) != (d, d):
            raise JaxDistillError(f"cov and its Cholesky factor must have shape [d, d] = [{d}, {d}]")

    def sample(self, key, num):
        g = jax.random.normal(key, (num, self.d), dtype=context_dtype(self.w_star))
        return g @ jnp.asarray(self.chol).T

    @property
    def has_exact_risk(self) -> bool:
        return True

    def exact_risk(self, W):
        """arccos(rho) / pi, rho = w' Sigma w* / sqrt(w' Sigma w  w*' Sigma w*)."""
        return gaussian_risk(W, self.w_star, self.cov)


__all__ = ["IsotropicGaussianTask", "GaussianTask"]
