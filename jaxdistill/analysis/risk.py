"""Transfer risk (eq. 4): exact where the task allows, Monte-Carlo otherwise.

Exact risk, rotationally symmetric tasks (DESIGN.md fact 3).  Write
x = nu z with z = (cos a) e + (sin a) v, v uniform on the unit sphere of the
complement of e = w*/||w*||.  For a student at signed angle phi to w*, with
t = <v, e_phi> where e_phi is the unit direction of the student's component
orthogonal to w*, (t + 1)/2 ~ Beta((d-2)/2, (d-2)/2), and an error happens iff
cos a cos phi + sin a sin phi t < 0.  For phi <= pi/2 that is t < 0 and
tan(pi/2 - a) < |t| tan phi, so with p the reverse CDF of a (eq. 17)

    R(phi) = int_{t<0} f_t(t) p(pi/2 - arctan(|t| tan phi)) dt,

and R(pi - phi) = 1 - R(phi) (x -> -x symmetry).  The 1-D integral is done
by tanh-sinh quadrature, which is exact to ~1e-12 even with the s^kappa
endpoint behaviour of p; for margin tasks the interval starts at the kink
where the integrand leaves 0.

Gaussian tasks (isotropic or with covariance Sigma): R(w) = arccos(rho)/pi,
rho = w' Sigma w* / sqrt(w' Sigma w  w*' Sigma w*) (Sheppard's formula).

Finite pools: the disagreement rate over all test inputs.
Any task: Monte-Carlo on held-out inputs, with the binomial standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..tasks import AngularMarginTask, GaussianTask, IsotropicGaussianTask, PoolTask, Task, is_rotationally_symmetric
from .angles import signed_angle

HALF_PI = math.pi / 2


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
    log_beta = 2 * jax.scipy.special.gammaln(al) - jax.scipy.special.gammaln(2 * al)
    return (al - 1.0) * jnp.log1p(-(s**2)) - (2 * al - 1.0) * math.log(2.0) - log_beta


def exact_risk_from_angle(task: Task, phi: Float[Array, "..."]) -> Float[Array, "..."]:
    """R(phi) of DESIGN.md fact 3 for a rotationally symmetric task.

    Args:
        task: a task with ``p_theta`` and rotational symmetry.
        phi: signed student-teacher angle(s) (eq. 28), any shape, in [0, pi].

    Returns:
        The exact transfer risk (eq. 4), same shape as phi.
    """
    if not is_rotationally_symmetric(task):
        raise ValueError(f"exact_risk_from_angle needs a rotationally symmetric task, got {type(task).__name__}")
    phi = jnp.asarray(phi)
    d = task.d
    flip = phi > HALF_PI
    ph = jnp.clip(jnp.where(flip, jnp.pi - phi, phi), 0.0, HALF_PI)
    tan_phi = jnp.tan(ph)
    if d == 2:
        # t = +-1 with probability 1/2 each
        r = 0.5 * task.p_theta(HALF_PI - ph)
    else:
        nodes, weights = _tanh_sinh()
        nodes = jnp.asarray(nodes, phi.dtype)
        weights = jnp.asarray(weights, phi.dtype)
        s_max = min(1.0, 14.0 / math.sqrt(d - 2))
        margin = getattr(task, "margin", 0.0) if isinstance(task, AngularMarginTask) else 0.0
        # integrand is 0 for arctan(s tan phi) < margin
        s_lo = jnp.where(tan_phi > 0, jnp.minimum(math.tan(margin) / jnp.maximum(tan_phi, 1e-300), s_max), s_max)
        s_lo = jnp.where(margin > 0, s_lo, 0.0)
        width = s_max - s_lo
        s = s_lo[..., None] + width[..., None] * nodes
        # keep s < 1: for d = 3 the density (1 - s^2)^(-1/2) is infinite at s = 1, and an empty interval
        # (width 0, the whole integrand inside the margin wedge) must give 0, not 0 * inf
        s = jnp.minimum(s, 1.0 - jnp.finfo(s.dtype).epsneg)
        pv = task.p_theta(HALF_PI - jnp.arctan(s * tan_phi[..., None]))
        integrand = jnp.where(pv > 0, jnp.exp(_log_t_density(s, d)) * pv, 0.0)
        r = jnp.where(width > 0, width * jnp.sum(weights * integrand, axis=-1), 0.0)
    r = jnp.where(ph >= HALF_PI, 0.5, r)
    r = jnp.where(ph <= 0.0, 0.0, r)
    return jnp.where(flip, 1.0 - r, r)


def has_exact_risk(task: Task) -> bool:
    """True when ``exact_risk`` needs no sampling for this task."""
    return is_rotationally_symmetric(task) or isinstance(task, (GaussianTask, PoolTask))


def exact_risk(task: Task, W: Float[Array, "... d"]) -> Float[Array, "..."]:
    """Exact transfer risk of students W (eq. 4) where the task allows it.

    Rotationally symmetric tasks use the angle formula; Gaussian tasks
    Sheppard's formula; finite pools the disagreement over all test inputs.
    """
    W = jnp.asarray(W)
    if isinstance(task, IsotropicGaussianTask):
        return signed_angle(W, task.w_star) / jnp.pi
    if is_rotationally_symmetric(task):
        return exact_risk_from_angle(task, signed_angle(W, task.w_star))
    if isinstance(task, GaussianTask):
        S = task.cov
        ws = task.w_star
        num = W @ (S @ ws)
        den = jnp.sqrt(jnp.einsum("...i,ij,...j->...", W, S, W) * (ws @ S @ ws))
        return jnp.arccos(jnp.clip(num / den, -1.0, 1.0)) / jnp.pi
    if isinstance(task, PoolTask):
        return mc_risk(W, task.held_out(None, 0), task.w_star)[0]
    raise ValueError(f"no exact risk for {type(task).__name__}; use mc_risk")


def mc_risk(
    W: Float[Array, "... d"], X_test: Float[Array, "M d"], w_star: Float[Array, " d"]
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """Monte-Carlo transfer risk: disagreement rate of sign(w.x) and
    sign(w*.x) over held-out inputs, with its binomial standard error."""
    teacher = (X_test @ w_star) >= 0
    student = (jnp.asarray(W) @ X_test.T) >= 0
    r = jnp.mean(student != teacher, axis=-1)
    se = jnp.sqrt(r * (1.0 - r) / X_test.shape[0])
    return r, se


@dataclass(frozen=True)
class RiskEstimate:
    """Expected transfer risk over transfer sets.

    Attributes:
        mean: average risk over the successful sets.
        se: standard error of the mean over sets (std / sqrt(num_sets)).
        num_sets: number of sets behind the estimate.
        ci95: (low, high) normal 95% confidence interval.
    """

    mean: float
    se: float
    num_sets: int

    @property
    def ci95(self) -> tuple[float, float]:
        return (self.mean - 1.959963984540054 * self.se, self.mean + 1.959963984540054 * self.se)


def expected_risk(risks, mask=None) -> RiskEstimate:
    """Mean risk over sets (optionally only where ``mask``), with its SE."""
    r = np.asarray(risks, dtype=np.float64)
    if mask is not None:
        r = r[np.asarray(mask, bool)]
    m = r.size
    if m == 0:
        return RiskEstimate(float("nan"), float("nan"), 0)
    se = float(np.std(r, ddof=1) / math.sqrt(m)) if m > 1 else float("nan")
    return RiskEstimate(float(np.mean(r)), se, int(m))


def transfer_risk(
    task: Task,
    W: Float[Array, "B d"],
    *,
    key: PRNGKeyArray | None = None,
    num_test: int = 10_000,
    method: str = "auto",
) -> tuple[Float[Array, " B"], Float[Array, " B"]]:
    """Per-student transfer risk and its standard error (0 when exact).

    Args:
        method: "exact", "mc", or "auto" (exact when ``has_exact_risk``).
    """
    if method == "auto":
        method = "exact" if has_exact_risk(task) else "mc"
    if method == "exact":
        r = exact_risk(task, W)
        return r, jnp.zeros_like(r)
    if method != "mc":
        raise ValueError(f"method must be one of auto, exact, mc; got {method!r}")
    if key is None:
        key = jax.random.PRNGKey(0)
    return mc_risk(W, task.held_out(key, num_test), task.w_star)
