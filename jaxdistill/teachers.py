"""Teacher targets (eq. 1): soft labels sigma(w*.x / T), hard labels.

Targets are carried as *teacher logits* ``u = w*.x / T`` (shape [..., n]),
not as probabilities: sigma(u) rounds to exactly 1.0 in float64 once
u > 37, which would leave the loss with no finite minimiser.  The learners
use the stable difference sigma(z) - sigma(u) = -sigma(z) sigma(-u)
expm1(u - z).  Hard labels 1{w*.x >= 0} are carried as u = +-inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
from jaxtyping import Array, Float

from .traced import register_traced_dataclass, scalar_div, traced_field
from .validation import JaxDistillError, check_choice, check_real

TARGET_KINDS = ("soft", "hard")


@register_traced_dataclass
@dataclass(frozen=True)
class TargetSpec:
    """Which targets the teacher gives.

    Attributes:
        kind: "soft" (sigma(w*.x / T), eq. 1 with T = 1) or "hard" (1{w*.x >= 0}).
        temperature: T > 0 for soft targets; the flow then converges to the
            projection of w*/T (Thm 1 with teacher w*/T).

    A pytree whose leaf is the temperature (``kind`` is static), so runs
    that differ only in T share one compiled program.
    """

    kind: str = "soft"
    temperature: float = traced_field(default=1.0)  # a traced argument of the compiled run (jaxdistill.traced)

    def __post_init__(self):
        check_choice("targets", self.kind, TARGET_KINDS)
        check_real("temperature", self.temperature, gt=0.0)
        if self.kind == "hard":
            refuse_unused_temperature(self.temperature, "targets='hard' (the teacher's labels)")

    @property
    def is_soft(self) -> bool:
        return self.kind == "soft"


def refuse_unused_temperature(temperature, targets: str) -> None:
    """A temperature other than 1 given with targets that have no soft part
    is refused naming it (it would change nothing)."""
    if float(temperature) != 1.0:
        raise JaxDistillError(f"temperature applies only to targets with a soft part; {targets} has none, "
                              f"got temperature={temperature!r}")


def check_target_spec(targets) -> TargetSpec:
    """``targets`` if it is a ``TargetSpec``, else a ``JaxDistillError`` naming it."""
    if not isinstance(targets, TargetSpec):
        raise JaxDistillError(f"targets must be a TargetSpec (e.g. TargetSpec('soft', temperature=1.0)), got {targets!r}")
    return targets


def teacher_logits(
    X: Float[Array, "... n d"], w_star: Float[Array, " d"], spec: TargetSpec = TargetSpec()
) -> Float[Array, "... n"]:
    """Teacher logits u (soft: w*.x / T; hard: +inf where w*.x >= 0 else -inf)."""
    raw = X @ w_star
    if spec.kind == "hard":
        return jnp.where(raw >= 0, jnp.inf, -jnp.inf)
    return scalar_div(raw, spec.temperature)


def soft_labels(X, w_star, temperature: float = 1.0):
    """y_i = sigma(w*.x_i / T) (eq. 1)."""
    return jnp.asarray(1.0) / (1.0 + jnp.exp(-(X @ w_star) / temperature))


def hard_labels(X, w_star):
    """y_i = 1{w*.x_i >= 0}."""
    return (X @ w_star >= 0).astype(X.dtype)


def labels_from_logits(u: Float[Array, "... n"]) -> Float[Array, "... n"]:
    """sigma(u), with sigma(+-inf) = 1, 0 (hard labels)."""
    return 1.0 / (1.0 + jnp.exp(-u))


def residual(z: Float[Array, "... n"], u: Float[Array, "... n"]) -> Float[Array, "... n"]:
    """sigma(z) - sigma(u), computed without cancellation.

    For finite u: -sigma(z) sigma(-u) expm1(u - z) (relative accuracy near
    z = u).  For hard labels (u = +-inf): sigma(z) - 1{u > 0}.
    """
    sz = 1.0 / (1.0 + jnp.exp(-z))
    finite = jnp.isfinite(u)
    u_safe = jnp.where(finite, u, 0.0)
    smu = 1.0 / (1.0 + jnp.exp(u_safe))
    soft = -sz * smu * jnp.expm1(u_safe - z)
    hard = sz - (u > 0).astype(z.dtype)
    return jnp.where(finite, soft, hard)


def cross_entropy(z: Float[Array, "... n"], u: Float[Array, "... n"]) -> Float[Array, "..."]:
    """Normalised cross-entropy L^1 of eq. 1 (minimum 0) as a function of the
    student logits z and teacher logits u, averaged over the last axis.

    Per example: KL(Bern(sigma(u)) || Bern(sigma(z))), which is the
    cross-entropy minus its minimum l_i^* (eq. 36).
    """
    finite = jnp.isfinite(u)
    u_safe = jnp.where(finite, u, 0.0)
    y = 1.0 / (1.0 + jnp.exp(-u_safe))
    # softplus(z) - y z  minus its value at z = u
    sp = lambda t: jnp.logaddexp(0.0, t)
    soft = (sp(z) - y * z) - (sp(u_safe) - y * u_safe)
    yh = (u > 0).astype(z.dtype)
    hard = sp(z) - yh * z
    return jnp.mean(jnp.where(finite, soft, hard), axis=-1)
