"""Angles and transfer-risk formulas: the maths that tasks and analysis share.

This module is neutral: it imports no task, learner or analysis module, so
tasks can compute their exact risk here and ``jaxdistill.analysis``
re-exports the same functions.

Angles (batched over leading axes): ``signed_angle`` is alpha of eq. 28 (in
[0, pi], the sign of u.v counts), ``unsigned_angle`` is alpha-bar of eq. 16
(in [0, pi/2]).  Both use 2 atan2(||u^ - v^||, ||u^ + v^||), accurate for
tiny and near-pi angles where arccos of a cosine loses half the digits.

Exact risk of a rotationally symmetric task (docs/design.md fact 3).  Write
x = nu z with z = (cos a) e + (sin a) v, v uniform on the unit sphere of the
complement of e = w*/||w*||.  For a student at signed angle phi to w*, with
t = <v, e_phi> where e_phi is the unit direction of the student's component
orthogonal to w*, (t + 1)/2 ~ Beta((d-2)/2, (d-2)/2), and an error happens iff
cos a cos phi + sin a sin phi t < 0.  For phi <= pi/2 that is t < 0 and
tan(pi/2 - a) < |t| tan phi, so with p the reverse CDF of a (eq. 17)

    R(phi) = int_{t<0} f_t(t) p(pi/2 - arctan(|t| tan phi)) dt,

and R(pi - phi) = 1 - R(phi) (x -> -x symmetry).  The 1-D integral is done
by tanh-sinh quadrature (for d = 3 in u = arcsin|t|, which removes the
density's endpoint singularity), which agrees with an independent adaptive
quadrature (scipy.integrate.quad over the input angle,
tests/test_exact_risk.py) to below 1e-12 absolute (measured 2e-13) for d = 3, 20, 1000 and
kappa = 0.5 to 5, even with the s^kappa endpoint behaviour of p; when P_x puts no mass within angle ``wedge`` of the
teacher's decision boundary (an angular margin), the interval starts at the
kink where the integrand leaves 0.

Gaussian inputs x ~ N(0, Sigma): R(w) = arccos(rho) / pi with
rho = w' Sigma w* / sqrt(w' Sigma w  w*' Sigma w*) (Sheppard's formula);
for Sigma = I this is the signed angle over pi.

Any finite set of inputs: the disagreement rate of sign(w.x) and sign(w*.x)
(``mc_risk``, with its binomial standard error).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

HALF_PI = math.pi / 2


def signed_angle(u: Float[Array, "... d"], v: Float[Array, "... d"]) -> Float[Array, "..."]:
    """alpha(u, v) = arccos(u.v / (||u|| ||v||)) in [0, pi] (eq. 28)."""
    uh = u / jnp.linalg.norm(u, axis=-1, keepdims=True)
    vh = v / jnp.linalg.norm(v, axis=-1, keepdims=True)
    return 2.0 * jnp.arctan2(jnp.linalg.norm(uh - vh, axis=-1), jnp.linalg.norm(uh + vh, axis=-1))


def unsigned_angle(u: Float[Array, "... d"], v: Float[Array, "... d"]) -> Float[Array, "..."]:
    """alpha-bar(u, v) = arccos(|u.v| / (||u|| ||v||)) in [0, pi/2] (eq. 16)."""
    a = signed_angle(u, v)
    return jnp.minimum(a, jnp.pi - a)


@lru_cache(maxsize=8)
def _tanh_sinh(level: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Tanh-sinh nodes/weights on (0, 1) with step h = 2^-level * 8."""
    h = 8.0 / 2**level
    k = np.arange(-int(3.2 / h), int(3.2 / h) + 1)
    t = k * h
    s = np.pi / 2 * np.sinh(t)
    x = np.tanh(s)
    w = h * np.pi / 2 * np.cosh(t) / np.cosh(s) ** 2
    keep = (np.abs(x) < 1.0) & (w > 1e-300)
    return (x[keep] + 1.0) / 2.0, w[keep] / 2.0


def _log_t_density(s: Float[Array, "..."], d: int) -> Float[Array, "..."]:
    """log density of t at -s, t in [-1, 1] with (t+1)/2 ~ Beta(al, al), al = (d-2)/2."""
    al = (d - 2) / 2.0
    if s.dtype == jnp.float32:
        # two log-gammas of size ~ d log d cancel: in float32 that loses the constant (d = 1e6: a factor
        # of 2.4 on the risk), so take it in Python's double precision (d is static)
        log_beta = 2 * math.lgamma(al) - math.lgamma(2 * al)
    else:
        log_beta = 2 * jax.scipy.special.gammaln(al) - jax.scipy.special.gammaln(2 * al)
    return (al - 1.0) * jnp.log1p(-(s**2)) - (2 * al - 1.0) * math.log(2.0) - log_beta


def symmetric_risk(
    p_theta: Callable[[Float[Array, "..."]], Float[Array, "..."]],
    d: int,
    phi: Float[Array, "..."],
    *,
    wedge: float = 0.0,
    tan_wedge=None,
) -> Float[Array, "..."]:
    """R(phi) of docs/design.md fact 3: the exact transfer risk (eq. 4) of a
    student at signed angle phi to w* under a rotationally symmetric P_x.

    Args:
        p_theta: the exact reverse CDF of the unsigned input-teacher angle
            (eq. 17), a jnp function broadcasting over its argument.
        d: input dimension (>= 2; d = 2 needs no quadrature).
        phi: signed student-teacher angle(s) (eq. 28), any shape, in [0, pi].
        wedge: a Python float in [0, pi/2): P_x has no input within this
            angle of the teacher's decision boundary (p(theta) = 0 for
            theta >= pi/2 - wedge); the quadrature starts where the integrand
            leaves 0.  0 for tasks without a margin.  May be a traced scalar
            (``jaxdistill.traced``), then with ``tan_wedge``.
        tan_wedge: tan(wedge) (default: ``math.tan(wedge)``, or ``jnp.tan``
            of a traced wedge).

    Returns:
        The exact transfer risk, same shape as phi.
    """
    phi = jnp.asarray(phi)
    flip = phi > HALF_PI
    ph = jnp.clip(jnp.where(flip, jnp.pi - phi, phi), 0.0, HALF_PI)
    tan_phi = jnp.tan(ph)
    if d == 2:
        # t = +-1 with probability 1/2 each
        r = 0.5 * p_theta(HALF_PI - ph)
    else:
        nodes, weights = _tanh_sinh()
        nodes = jnp.asarray(nodes, phi.dtype)
        weights = jnp.asarray(weights, phi.dtype)
        s_max = min(1.0, 14.0 / math.sqrt(d - 2))
        # integrand is 0 for arctan(s tan phi) < wedge
        if tan_wedge is None:
            tan_wedge = math.tan(wedge) if isinstance(wedge, (int, float)) else jnp.tan(wedge)
        s_lo = jnp.where(tan_phi > 0, jnp.minimum(tan_wedge / jnp.maximum(tan_phi, 1e-300), s_max), s_max)
        s_lo = jnp.where(wedge > 0, s_lo, 0.0)
        if d == 3:
            # the density (1 - s^2)^(-1/2)/pi is infinite at s = 1, and nodes within rounding of 1 would
            # lose ~sqrt(eps) = 1e-8 of the integral: integrate in u = arcsin(s) instead, where
            # f_t ds = du / pi exactly (no singularity)
            u_lo, u_hi = jnp.arcsin(s_lo), math.asin(s_max)
            width = u_hi - u_lo
            s = jnp.sin(u_lo[..., None] + width[..., None] * nodes)
            dens = jnp.full_like(s, 1.0 / math.pi)
        else:
            width = s_max - s_lo
            s = s_lo[..., None] + width[..., None] * nodes
            # keep s < 1; an empty interval (width 0, the whole integrand inside the margin wedge) gives 0
            s = jnp.minimum(s, 1.0 - jnp.finfo(s.dtype).epsneg)
            dens = jnp.exp(_log_t_density(s, d))
        pv = p_theta(HALF_PI - jnp.arctan(s * tan_phi[..., None]))
        integrand = jnp.where(pv > 0, dens * pv, 0.0)
        r = jnp.where(width > 0, width * jnp.sum(weights * integrand, axis=-1), 0.0)
    r = jnp.where(ph >= HALF_PI, 0.5, r)
    r = jnp.where(ph <= 0.0, 0.0, r)
    return jnp.where(flip, 1.0 - r, r)


def isotropic_gaussian_risk(W: Float[Array, "... d"], w_star: Float[Array, " d"]) -> Float[Array, "..."]:
    """Exact risk under x ~ N(0, I): the signed angle of w to w* over pi."""
    return signed_angle(jnp.asarray(W), w_star) / jnp.pi


def gaussian_risk(W: Float[Array, "... d"], w_star: Float[Array, " d"], cov: Float[Array, "d d"]) -> Float[Array, "..."]:
    """Exact risk under x ~ N(0, cov): arccos(rho) / pi (Sheppard's formula)."""
    W = jnp.asarray(W)
    num = W @ (cov @ w_star)
    den = jnp.sqrt(jnp.einsum("...i,ij,...j->...", W, cov, W) * (w_star @ cov @ w_star))
    return jnp.arccos(jnp.clip(num / den, -1.0, 1.0)) / jnp.pi


def mc_risk(
    W: Float[Array, "... d"], X_test: Float[Array, "M d"], w_star: Float[Array, " d"]
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """Monte-Carlo transfer risk: disagreement rate of sign(w.x) and
    sign(w*.x) over held-out inputs, with its binomial standard error."""
    teacher = (X_test @ w_star) >= 0
    student = (jnp.asarray(W) @ X_test.T) >= 0
    # average in the working dtype: jnp.mean of booleans is float32 on some jax versions whatever x64 says
    r = jnp.mean((student != teacher).astype(X_test.dtype), axis=-1)
    se = jnp.sqrt(r * (1.0 - r) / X_test.shape[0])
    return r, se


__all__ = [
    "HALF_PI",
    "signed_angle",
    "unsigned_angle",
    "symmetric_risk",
    "isotropic_gaussian_risk",
    "gaussian_risk",
    "mc_risk",
]
