"""Angular tasks: the kappa-polynomial task (section 5.1) and the angular
margin task (Cor. 1, Fig. 2 left).

x = nu z, nu ~ N(0, 1), z a unit vector at unsigned angle a from w*, uniform
among such vectors.  Each task gives the law of the angle to the teacher's
decision boundary, g = pi/2 - a, through its inverse CDF; p(theta) (eq. 17)
is then known exactly and so is the transfer risk (docs/design.md fact 3).
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..traced import scalar_div, scalar_pow, traced_field
from ..validation import check_int, check_real
from .base import AbstractSymmetricTask, teacher_for
from .gram import angular_frame, bartlett_factor, check_gram_n, gram_of_frame
from .riskmath import HALF_PI


class AbstractAngularTask(AbstractSymmetricTask):
    """x = nu * z with the angle of z to the boundary drawn by ``boundary_angle``."""

    @abc.abstractmethod
    def boundary_angle(self, u: Float[Array, " num"]) -> Float[Array, " num"]:
        """Inverse CDF of g = pi/2 - a, evaluated at uniforms u in [0, 1)."""

    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num d"]:
        k_angle, k_dir, k_scale = jax.random.split(key, 3)
        w = jnp.asarray(self.w_star)
        e = w / jnp.linalg.norm(w)
        u = jax.random.uniform(k_angle, (num,), dtype=w.dtype)
        a = HALF_PI - self.boundary_angle(u)
        g = jax.random.normal(k_dir, (num, self.d), dtype=w.dtype)
        g = g - (g @ e)[:, None] * e[None, :]
        g = g / jnp.linalg.norm(g, axis=1, keepdims=True)
        z = jnp.cos(a)[:, None] * e[None, :] + jnp.sin(a)[:, None] * g
        nu = jax.random.normal(k_scale, (num,), dtype=w.dtype)
        return nu[:, None] * z

    @property
    def supports_gram(self) -> bool:
        return True

    def sample_gram(self, key: PRNGKeyArray, n: int):
        """(G, u) of ``n`` <= d - 1 inputs drawn in O(n^2) (docs/design.md fact 13):
        the angles and scales use the keys of ``sample``, the directions a
        Bartlett factor of Wishart_n(d - 1, I)."""
        check_gram_n(n, self.d)
        k_angle, k_dir, k_scale = jax.random.split(key, 3)
        w = jnp.asarray(self.w_star)
        a = HALF_PI - self.boundary_angle(jax.random.uniform(k_angle, (n,), dtype=w.dtype))
        nu = jax.random.normal(k_scale, (n,), dtype=w.dtype)
        F = angular_frame(nu, jnp.cos(a), jnp.sin(a), bartlett_factor(k_dir, n, self.d - 1, w.dtype))
        return gram_of_frame(F, jnp.linalg.norm(w))


@final
class KappaPolynomialTask(AbstractAngularTask):
    """The kappa-polynomial angle task of section 5.1.

    The unsigned angle a between x and w* satisfies P[a >= theta] =
    (1 - 2 theta / pi)^kappa, i.e. p(theta) of eq. 17 is exactly this
    polynomial (Cor. 2 holds with c = 1).  kappa = 1 is a uniform angle.

    Args:
        d: input dimension (>= 2).
        kappa: the exponent (> 0).
        w_star: the teacher (default teacher_norm * e_1).
        teacher_norm: ||w*|| of the default teacher (> 0).
    """

    d: int = eqx.field(static=True)
    w_star: Float[Array, " d"]
    kappa: float = traced_field()  # a traced argument of the compiled run (jaxdistill.traced)
    name: ClassVar[str] = "kappa"

    def __init__(self, d: int, kappa: float = 1.0, *, w_star=None, teacher_norm: float = 1.0):
        self.d = check_int("d", d, minimum=2, maximum=10**8)
        self.kappa = check_real("kappa", kappa, gt=0.0)
        self.w_star = teacher_for(self.d, w_star, teacher_norm)

    def boundary_angle(self, u):
        # P[g <= s] = P[a >= pi/2 - s] = (2 s / pi)^kappa
        return HALF_PI * scalar_pow(u, 1.0 / self.kappa)

    def p_theta(self, theta):
        theta = jnp.clip(jnp.asarray(theta), 0.0, HALF_PI)
        return scalar_pow(1.0 - theta / HALF_PI, self.kappa)

    def config(self) -> dict:
        return {"task": self.name, "d": self.d, "kappa": self.kappa}


@final
class AngularMarginTask(AbstractAngularTask):
    """A task with an angular margin (Cor. 1, Fig. 2 left).

    No input lies within angle ``margin`` (beta0) of the teacher's decision
    boundary: the angle to the boundary, g = pi/2 - a, is distributed on
    [beta0, pi/2] with P[g - beta0 <= s] = (s / (pi/2 - beta0))^kappa.
    Then p(theta) = ((pi/2 - beta0 - theta) / (pi/2 - beta0))^kappa, which is
    0 for theta >= pi/2 - beta0, and Cor. 1 holds with beta = pi/2 - beta0,
    gamma = p(beta0).  The exact-risk quadrature starts at the edge of this
    empty wedge (``risk_wedge`` = margin).

    Args:
        d: input dimension (>= 2).
        margin: beta0 in [0, pi/2).
        kappa: the exponent (> 0).
        w_star, teacher_norm: as for ``KappaPolynomialTask``.
    """

    d: int = eqx.field(static=True)
    w_star: Float[Array, " d"]
    margin: float = traced_field()  # traced arguments of the compiled run (jaxdistill.traced)
    kappa: float = traced_field()
    tan_margin: float = traced_field()  # math.tan(margin), taken in Python (XLA's tan differs in the last bit)
    name: ClassVar[str] = "margin"

    def __init__(self, d: int, margin: float = 0.2, kappa: float = 1.0, *, w_star=None, teacher_norm: float = 1.0):
        self.d = check_int("d", d, minimum=2, maximum=10**8)
        self.margin = check_real("margin", margin, ge=0.0, lt=HALF_PI)
        self.kappa = check_real("kappa", kappa, gt=0.0)
        self.tan_margin = math.tan(self.margin)
        self.w_star = teacher_for(self.d, w_star, teacher_norm)

    @property
    def risk_wedge(self) -> float:
        return self.margin

    @property
    def risk_wedge_tan(self) -> float:
        return self.tan_margin

    def boundary_angle(self, u):
        return self.margin + (HALF_PI - self.margin) * scalar_pow(u, 1.0 / self.kappa)

    def p_theta(self, theta):
        theta = jnp.clip(jnp.asarray(theta), 0.0, HALF_PI)
        width = HALF_PI - self.margin
        return scalar_pow(jnp.clip(scalar_div(width - theta, width), 0.0, 1.0), self.kappa)

    def config(self) -> dict:
        return {"task": self.name, "d": self.d, "margin": self.margin, "kappa": self.kappa}


__all__ = ["AbstractAngularTask", "KappaPolynomialTask", "AngularMarginTask"]
