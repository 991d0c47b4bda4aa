"""p(theta) of eq. 17: the reverse CDF of the unsigned angle between w* and x.

    p(theta) = P_{x ~ P_x}[ alpha-bar(w*, x) >= theta ],   theta in [0, pi/2].

``exact_p_theta`` gives it in closed form for every task that knows it
(``task.has_exact_p``: kappa-polynomial, (1 - 2 theta / pi)^kappa; angular
margin; isotropic Gaussian in dimension d, through the regularised incomplete
beta function; a ``CustomTask`` or user task that declares it).
``empirical_p_theta`` is the reverse CDF of a sample of angles, for any task,
including finite pools such as MNIST (``pool_angles`` gives every angle of a
finite law, ``task.finite_support()``).  Both are jnp functions, batched over
theta and jit-compatible.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..tasks import AbstractTask
from ..validation import JaxDistillError
from .angles import unsigned_angle

HALF_PI = math.pi / 2


def exact_p_theta(task: AbstractTask, theta: Float[Array, "..."]) -> Float[Array, "..."]:
    """Exact p(theta) of eq. 17 for a task that knows it.

    Args:
        task: a task with ``has_exact_p`` (``KappaPolynomialTask``,
            ``AngularMarginTask``, ``IsotropicGaussianTask``, a ``CustomTask``
            built with ``p_theta``, any task that implements it).
        theta: angles in [0, pi/2], any shape (values outside are clipped).

    Returns:
        p(theta), same shape as ``theta``.

    Raises:
        JaxDistillError: the task has no closed-form p (Gaussian with a
            covariance, pools, custom samplers without ``p_theta``); use
            ``empirical_p_theta(sample_angles(key, task, M), theta)``.
    """
    if not task.has_exact_p:
        raise JaxDistillError(
            f"exact_p_theta: {type(task).__name__} has no closed-form p(theta) (eq. 17); it is known for the "
            "kappa, margin and isotropic gaussian tasks and for CustomTask(p_theta=...). For any other task use "
            "empirical_p_theta(sample_angles(key, task, M), theta)."
        )
    return task.p_theta(jnp.asarray(theta))


def sample_angles(key: PRNGKeyArray, task: AbstractTask, num: int | None) -> Float[Array, " num"]:
    """Unsigned angles alpha-bar(w*, x) (eq. 16) of ``num`` inputs x ~ P_x.

    ``num`` is checked by ``task.check_n`` (for a ``PoolTask`` the inputs are
    drawn without replacement, so ``num`` must not exceed the pool size);
    ``num=None`` returns every angle of a finite law (``pool_angles``).
    """
    if num is None:
        if task.finite_support() is None:
            raise JaxDistillError(
                "num must be an integer >= 1 (None is only allowed for tasks with a finite pool of inputs, "
                "e.g. PoolTask: every pool input)")
        return pool_angles(task)
    num = task.check_n(num, name="num")
    X = task.sample(key, num)
    return unsigned_angle(X, jnp.asarray(task.w_star, X.dtype))


def pool_angles(task: AbstractTask) -> Float[Array, " P"]:
    """Unsigned angles of every input of a finite law (``task.finite_support()``,
    e.g. a ``PoolTask``'s pool): the pool's exact p is their reverse CDF."""
    X = task.finite_support()
    if X is None:
        raise JaxDistillError(f"pool_angles needs a task with a finite pool of inputs (e.g. PoolTask), got {type(task).__name__}")
    X = jnp.asarray(X)
    return unsigned_angle(X, jnp.asarray(task.w_star, X.dtype))


def empirical_p_theta(angles: Float[Array, " M"], theta: Float[Array, "..."]) -> Float[Array, "..."]:
    """Empirical reverse CDF of angles: #{m : angles_m >= theta} / M (eq. 17).

    Non-finite angles (e.g. from a zero input) are left out of both counts.
    Jit-compatible; O((M + T) log M) through a sort and ``searchsorted``.

    Args:
        angles: a sample of unsigned angles alpha-bar(w*, x_m), shape [M].
        theta: evaluation points, any shape.

    Returns:
        p_hat(theta), same shape as ``theta``; its binomial standard error is
        ``empirical_p_theta_se``.
    """
    a = jnp.asarray(angles)
    if a.ndim != 1:
        raise JaxDistillError(f"angles must have shape [M], got shape {a.shape}")
    theta = jnp.asarray(theta, a.dtype)
    finite = jnp.isfinite(a)
    valid = jnp.sum(finite)
    s = jnp.sort(jnp.where(finite, a, -jnp.inf))
    below = jnp.searchsorted(s, theta.reshape(-1), side="left").reshape(theta.shape)
    count_ge = a.shape[0] - below
    return count_ge / jnp.maximum(valid, 1).astype(a.dtype)


def empirical_p_theta_se(angles: Float[Array, " M"], theta: Float[Array, "..."]) -> Float[Array, "..."]:
    """Binomial standard error sqrt(p (1 - p) / M) of ``empirical_p_theta``."""
    a = jnp.asarray(angles)
    p = empirical_p_theta(a, theta)
    m = jnp.maximum(jnp.sum(jnp.isfinite(a)), 1)
    return jnp.sqrt(p * (1.0 - p) / m)


def empirical_p_fn(angles: Float[Array, " M"]):
    """The function theta -> empirical p(theta), ready for ``bounds.thm3_bound``."""
    a = jnp.asarray(angles)
    return lambda theta: empirical_p_theta(a, theta)


def p_function(task: AbstractTask, *, key: PRNGKeyArray | None = None, num: int = 100_000):
    """p as a function of theta for any task: exact where known, else the
    empirical reverse CDF of ``num`` sampled angles (all angles for a pool)."""
    if task.has_exact_p:
        return lambda theta: task.p_theta(jnp.asarray(theta))
    if key is None:
        key = jax.random.PRNGKey(0)
    angles = sample_angles(key, task, None if task.finite_support() is not None else num)
    return empirical_p_fn(angles)


__all__ = [
    "exact_p_theta",
    "empirical_p_theta",
    "empirical_p_theta_se",
    "empirical_p_fn",
    "sample_angles",
    "pool_angles",
    "p_function",
]
