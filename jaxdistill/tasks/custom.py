"""A task from a user sampler function, without writing a class."""

from __future__ import annotations

from typing import Callable, ClassVar, final

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..validation import JaxDistillError
from .base import AbstractTask, check_teacher, context_dtype
from .riskmath import signed_angle


@final
class CustomTask(AbstractTask):
    """A user task: ``sampler(key, num) -> [num, d]`` plus a teacher w*.

    ``p_theta`` (optional) is the exact reverse CDF of eq. 17 if the user
    knows it; ``rotationally_symmetric=True`` declares the symmetry of
    docs/design.md fact 3 (then the exact risk follows from ``p_theta``).
    For anything more (an exact risk of a non-symmetric law, a finite pool,
    held-out data) subclass ``AbstractTask`` instead (see ``jaxdistill.tasks``).
    """

    sampler: Callable = eqx.field(static=True)
    w_star: Float[Array, " d"]
    p_fn: Callable | None = eqx.field(static=True)
    symmetric: bool = eqx.field(static=True)
    name: ClassVar[str] = "custom"

    def __init__(self, sampler: Callable, w_star, *, p_theta: Callable | None = None, rotationally_symmetric: bool = False):
        if not callable(sampler):
            raise JaxDistillError(f"sampler must be callable(key, num) -> [num, d], got {type(sampler).__name__}")
        self.w_star = check_teacher(w_star)
        if self.w_star.shape[0] < 2:
            raise JaxDistillError("w_star must have d >= 2 entries")
        self.sampler = sampler
        self.p_fn = p_theta
        if rotationally_symmetric and p_theta is None:
            raise JaxDistillError("rotationally_symmetric=True needs p_theta (the exact reverse CDF of eq. 17)")
        self.symmetric = bool(rotationally_symmetric)

    @property
    def d(self) -> int:
        return self.w_star.shape[0]

    def sample(self, key, num):
        x = self.sampler(key, num)
        if x.shape != (num, self.d):
            raise JaxDistillError(f"sampler must return shape [num, d] = [{num}, {self.d}], got {x.shape}")
        return x.astype(context_dtype(self.w_star))

    @property
    def has_exact_p(self) -> bool:
        return self.p_fn is not None

    def p_theta(self, theta):
        if self.p_fn is None:
            return super().p_theta(theta)
        return self.p_fn(theta)

    @property
    def rotationally_symmetric(self) -> bool:
        return self.symmetric

    @property
    def has_exact_risk(self) -> bool:
        return self.symmetric

    def exact_risk(self, W):
        if not self.symmetric:
            return super().exact_risk(W)
        return self.risk_from_angle(signed_angle(jnp.asarray(W), self.w_star))


__all__ = ["CustomTask"]
