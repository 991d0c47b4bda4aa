"""Discrete optimisers (optax) on the linear student's loss (eq. 1).

Gradient descent with step size eta is the explicit Euler discretisation
of the flow of eq. 3; with eta small it agrees with the flow and hence with
the closed form (the three-way consistency test).  Any optax
``GradientTransformation`` can be used; it runs on the full d-dimensional
w (optimisers such as Adam are not rotation invariant, so reducing
coordinates would change them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from ..teachers import cross_entropy, residual
from ..validation import JaxDistillError, check_int, check_real
from .flow import HORIZON, NONFINITE

OPTIMISERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class GDConfig:
    """Discrete optimiser settings.

    Attributes:
        learning_rate: step size eta > 0.
        steps: number of updates (>= 1).
        optimizer: "sgd" (plain gradient descent), "momentum", "adam", or an
            ``optax.GradientTransformation``.
    """

    learning_rate: float = 1.0
    steps: int = 10_000
    optimizer: Any = "sgd"

    def __post_init__(self):
        check_real("learning_rate", self.learning_rate, gt=0.0)
        check_int("steps", self.steps, minimum=1)
        if isinstance(self.optimizer, str):
            if self.optimizer not in OPTIMISERS:
                raise JaxDistillError(
                    f"optimizer must be one of {', '.join(OPTIMISERS)} or an optax.GradientTransformation; got {self.optimizer!r}"
                )
        elif not isinstance(self.optimizer, optax.GradientTransformation):
            raise JaxDistillError("optimizer must be a name or an optax.GradientTransformation")

    def transformation(self) -> optax.GradientTransformation:
        if not isinstance(self.optimizer, str):
            return self.optimizer
        if self.optimizer == "sgd":
            return optax.sgd(self.learning_rate)
        if self.optimizer == "momentum":
            return optax.sgd(self.learning_rate, momentum=0.9)
        return optax.adam(self.learning_rate)


class GDResult(eqx.Module):
    """Outcome of one discrete run: final w [d], status, steps, loss."""

    w: Float[Array, " d"]
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    loss: Float[Array, ""]


def gradient_descent(X: Float[Array, "n d"], u: Float[Array, " n"], config: GDConfig = GDConfig()) -> GDResult:
    """Run ``config.steps`` optimiser updates on L^1 (eq. 1) from w = 0.

    Args:
        X: transfer set [n, d].
        u: teacher logits [n].
        config: ``GDConfig``.

    Returns:
        ``GDResult`` with status "finite_horizon", or "non_finite" if the
        iterates blew up (e.g. a too-large step size).
    """
    n, d = X.shape
    opt = config.transformation()

    def grad(w):
        return X.T @ residual(X @ w, u) / n

    def step(carry, _):
        w, state = carry
        updates, state = opt.update(grad(w), state, w)
        return (optax.apply_updates(w, updates), state), None

    w0 = jnp.zeros(d, X.dtype)
    (w, _), _ = jax.lax.scan(step, (w0, opt.init(w0)), None, length=config.steps)
    finite = jnp.all(jnp.isfinite(w))
    return GDResult(
        w=w,
        status=jnp.where(finite, HORIZON, NONFINITE).astype(jnp.int32),
        num_steps=jnp.asarray(config.steps, jnp.int32),
        loss=cross_entropy(X @ w, u),
    )
