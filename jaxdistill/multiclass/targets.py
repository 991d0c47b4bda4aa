"""K-class teacher targets: soft, hard and mixed (docs/design.md facts 8, 10).

Targets are carried as *log-target* matrices ``V`` [n, K] (row i is
log p_i up to a per-row constant, so ``softmax(V) = P``), the K-class
analogue of the binary teacher logits of ``jaxdistill.teachers``:

* soft:  V = U / T (teacher logits U over the temperature T);
* hard:  V = 0 at the teacher's argmax and -inf elsewhere (the teacher's
  hard labels, as 1{w*.x >= 0} in the binary case);
* mixed: V = log(rho softmax(U / T) + (1 - rho) onehot(y)), computed as a
  log-sum-exp (no cancellation), for rho in [0, 1]: rho = 1 is soft, rho = 0
  is hard.  For rho in (0, 1] every entry of p_i is positive, so the loss has
  a finite minimiser and the flow converges (fact 10).

A learner's limit is then the minimum-norm interpolant of the class-centred
V (``centre``), which for soft targets of a linear teacher W* is C W* P_X / T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ..students.links import centre, softmax_cross_entropy
from ..traced import register_traced_dataclass, scalar_div, traced_field
from ..validation import JaxDistillError, check_choice, check_real
from ..teachers import refuse_unused_temperature

MULTI_TARGET_KINDS = ("soft", "hard", "mixed")


@register_traced_dataclass
@dataclass(frozen=True)
class MultiTargetSpec:
    """Which targets a K-class teacher gives.

    Attributes:
        kind: "soft" (softmax(u / T)), "hard" (onehot of the label) or
            "mixed" (rho softmax(u / T) + (1 - rho) onehot(y)).
        temperature: T > 0 (soft and mixed targets).
        soft_ratio: rho in [0, 1] (mixed targets only; None otherwise).
        has_finite_minimiser: True when every target probability is
            positive (soft targets, or mixed with rho > 0); set at construction.

    A pytree whose leaves are the temperature and the soft ratio, so runs
    that differ only in T or in rho share one compiled program
    (``jaxdistill.traced``).  log(rho) and log(1 - rho) are taken in Python at
    construction (``log_soft_ratio``, ``log_hard_ratio``; -inf at rho = 0 and
    1), as XLA folded them when rho was compiled in, and carried as traced
    fields of their own.  ``kind`` and ``has_finite_minimiser`` (rho > 0) are
    static: rho = 0 (the hard labels, no finite minimiser) is a program of its
    own.
    """

    kind: str = "soft"
    temperature: float = traced_field(default=1.0)
    soft_ratio: float | None = traced_field(default=None)
    log_soft_ratio: float | None = traced_field(default=None, init=False, repr=False, compare=False)
    log_hard_ratio: float | None = traced_field(default=None, init=False, repr=False, compare=False)
    has_finite_minimiser: bool = field(default=True, init=False, repr=False)

    def __post_init__(self):
        check_choice("targets", self.kind, MULTI_TARGET_KINDS)
        check_real("temperature", self.temperature, gt=0.0)
        if self.kind == "mixed":
            if self.soft_ratio is None:
                raise JaxDistillError("targets='mixed' needs soft_ratio rho in [0, 1]")
            check_real("soft_ratio", self.soft_ratio, ge=0.0, le=1.0)
        elif self.soft_ratio is not None:
            raise JaxDistillError(f"soft_ratio applies only to targets='mixed', not {self.kind!r}")
        if self.kind == "hard":
            refuse_unused_temperature(self.temperature, "targets='hard' (the teacher's argmax)")
        if self.kind == "mixed":
            rho = float(self.soft_ratio)
            object.__setattr__(self, "log_soft_ratio", math.log(rho) if rho > 0.0 else -math.inf)
            object.__setattr__(self, "log_hard_ratio", math.log1p(-rho) if rho < 1.0 else -math.inf)
        # True when every target probability is positive (soft, or mixed with rho > 0)
        object.__setattr__(self, "has_finite_minimiser",
                           self.kind == "soft" or (self.kind == "mixed" and self.soft_ratio > 0.0))

    @property
    def needs_labels(self) -> bool:
        """Mixed targets use ground-truth labels (hard targets are the teacher's argmax)."""
        return self.kind == "mixed"

    def config(self) -> dict:
        return {"targets": self.kind, "temperature": self.temperature, "soft_ratio": self.soft_ratio}


def target_log_probs(U: Float[Array, "n K"], y: Int[Array, " n"] | None, spec: MultiTargetSpec) -> Float[Array, "n K"]:
    """The log-targets V of ``spec`` for teacher logits U [n, K] and labels y [n].

    Soft targets return U / T itself (not normalised: a per-row constant does
    not change softmax(V), and K = 2 then gives V_1 - V_0 = u / T, the binary
    teacher logit, exactly).  Hard targets are the teacher's own hard labels
    argmax(U) (as in the binary case, 1{w*.x >= 0}); mixed targets use the
    ground-truth labels y, so rho = 0 means training on the true labels."""
    U = jnp.asarray(U)
    K = U.shape[-1]
    if spec.kind == "soft":
        return scalar_div(U, spec.temperature)
    if spec.kind == "hard":
        y = jnp.argmax(U, axis=-1)
    elif y is None:
        raise JaxDistillError("targets='mixed' needs ground-truth labels (a task with labels)")
    onehot = jax.nn.one_hot(y, K, dtype=U.dtype) > 0
    if spec.kind == "hard":
        return jnp.where(onehot, 0.0, -jnp.inf).astype(U.dtype)
    # mixed: one formula for every rho (rho may be traced); exact at the ends: rho = 1 gives log p,
    # rho = 0 gives 0 at the label and -inf elsewhere (the hard labels)
    soft = spec.log_soft_ratio + jax.nn.log_softmax(scalar_div(U, spec.temperature), axis=-1)
    return jnp.where(onehot, jnp.logaddexp(soft, spec.log_hard_ratio), soft)


def predicted_class(logits: Float[Array, "... K"]) -> Int[Array, "..."]:
    """argmax over classes (the first class on ties)."""
    return jnp.argmax(logits, axis=-1)


__all__ = ["MultiTargetSpec", "MULTI_TARGET_KINDS", "centre", "target_log_probs", "softmax_cross_entropy",
           "predicted_class"]
