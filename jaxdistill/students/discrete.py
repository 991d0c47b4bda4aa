"""Discrete optimisers (optax) on the linear student's loss (eq. 1).

Gradient descent with step size eta is the explicit Euler discretisation
of the flow of eq. 3; with eta small it agrees with the flow and hence with
the closed form (the three-way consistency test).  Any optax
``GradientTransformation`` can be used; it runs on the full d-dimensional
w (optimisers such as Adam are not rotation invariant, so reducing
coordinates would change them).
"""

from __future__ import annotations

from typing import Callable, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from ..status import Status
from ..teachers import cross_entropy, residual
from ..validation import JaxDistillError, check_int, check_real

OPTIMISERS = ("sgd", "momentum", "adam")

Params = TypeVar("Params")  # a pytree of arrays: w [d], W [K, d], the factors (W_1 .. W_N), a network's parameters


class GDConfig(eqx.Module):
    """Discrete optimiser settings (keyword-only).

    Attributes:
        optimizer: any ``optax.GradientTransformation`` (it carries its own
            step size and settings, e.g. ``optax.adamw(1e-3)``), or one of
            the shortcuts "sgd" (plain gradient descent, the default),
            "momentum" (``optax.sgd(learning_rate, momentum=momentum)``) and
            "adam" (``optax.adam(learning_rate)``).
        learning_rate: step size eta > 0 of a shortcut (default 1.0).
            Refused with a GradientTransformation (set it there instead);
            None then.
        momentum: the momentum of the "momentum" shortcut (default 0.9, in
            [0, 1)); refused for the other optimizers, None then.
        steps: number of updates (>= 1).
    """

    optimizer: str | optax.GradientTransformation
    learning_rate: float | None
    momentum: float | None
    steps: int

    def __init__(self, *, optimizer: str | optax.GradientTransformation = "sgd", learning_rate: float | None = None,
                 momentum: float | None = None, steps: int = 10_000):
        if isinstance(optimizer, str):
            if optimizer not in OPTIMISERS:
                raise JaxDistillError(
                    f"optimizer must be one of {', '.join(OPTIMISERS)} or an optax.GradientTransformation; got {optimizer!r}")
            learning_rate = 1.0 if learning_rate is None else check_real("learning_rate", learning_rate, gt=0.0)
            if optimizer == "momentum":
                momentum = 0.9 if momentum is None else check_real("momentum", momentum, ge=0.0, lt=1.0)
            elif momentum is not None:
                raise JaxDistillError(f"momentum applies only to optimizer='momentum', not {optimizer!r}")
        elif isinstance(optimizer, optax.GradientTransformation):
            given = [k for k, v in (("learning_rate", learning_rate), ("momentum", momentum)) if v is not None]
            if given:
                raise JaxDistillError(
                    f"{' and '.join(given)} cannot be combined with an optax.GradientTransformation optimizer: "
                    f"{'they apply' if len(given) > 1 else 'it applies'} only to the named optimizers "
                    f"({', '.join(OPTIMISERS)}); set it in the transformation (e.g. optax.sgd(0.5, momentum=0.9))")
        else:
            raise JaxDistillError(
                f"optimizer must be one of {', '.join(OPTIMISERS)} or an optax.GradientTransformation; got {optimizer!r}")
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.steps = check_int("steps", steps, minimum=1)

    def transformation(self) -> optax.GradientTransformation:
        """The optax transformation the run uses."""
        if not isinstance(self.optimizer, str):
            return self.optimizer
        if self.optimizer == "sgd":
            return optax.sgd(self.learning_rate)
        if self.optimizer == "momentum":
            return optax.sgd(self.learning_rate, momentum=self.momentum)
        return optax.adam(self.learning_rate)

    def config(self) -> dict:
        """JSON-able description (a transformation as a one-line repr)."""
        opt = self.optimizer if isinstance(self.optimizer, str) else " ".join(repr(self.optimizer).split())
        return {"optimizer": opt, "learning_rate": self.learning_rate, "momentum": self.momentum, "steps": self.steps}


class GDResult(eqx.Module):
    """Outcome of one discrete run: final w [d], status, steps, loss."""

    w: Float[Array, " d"]
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    loss: Float[Array, ""]


def optimise(grad: Callable[[Params], Params], params0: Params, config: GDConfig) -> Params:
    """``config.steps`` updates of ``config.transformation()`` from ``params0``:
    params <- params + update(grad(params)) in one ``jax.lax.scan`` (the
    discrete counterpart of the flow of eq. 3: plain gradient descent is its
    explicit Euler scheme).  Every discrete learner trains through this loop:
    the linear student (``gradient_descent``, soft or hard targets), the
    K-class softmax student, the deep factors and the two-layer network.

    Args:
        grad: the gradient of the loss at the parameters, a pytree shaped as they are.
        params0: the starting parameters (any pytree of arrays).
        config: ``GDConfig`` (its transformation and number of steps).

    Returns:
        The parameters after ``config.steps`` updates (non-finite if the
        iterates blew up: the callers mark that ``NON_FINITE``).
    """
    opt = config.transformation()

    def step(carry, _):
        params, state = carry
        updates, state = opt.update(grad(params), state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params0, opt.init(params0)), None, length=config.steps)
    return params


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

    def grad(w):
        return X.T @ residual(X @ w, u) / n

    w = optimise(grad, jnp.zeros(d, X.dtype), config)
    finite = jnp.all(jnp.isfinite(w))
    return GDResult(
        w=w,
        status=jnp.where(finite, Status.FINITE_HORIZON, Status.NON_FINITE).astype(jnp.int32),
        num_steps=jnp.asarray(config.steps, jnp.int32),
        loss=cross_entropy(X @ w, u),
    )
