"""Transfer risk (eq. 4): exact where the task allows, Monte-Carlo otherwise.

Each task owns its exact risk (``task.has_exact_risk``,
``task.exact_risk(W)``): rotationally symmetric tasks (kappa, margin,
isotropic Gaussian, or a user's) by the angle quadrature of
docs/design.md fact 3, Gaussian tasks by Sheppard's formula, finite pools by
the disagreement over all test inputs.  The formulas live in
``jaxdistill.tasks.riskmath`` (tasks sit below analysis); this module gives
the functional spellings ``exact_risk(task, W)``, ``has_exact_risk(task)``,
``exact_risk_from_angle(task, phi)`` and the Monte-Carlo tools: ``mc_risk``
(disagreement on held-out inputs with its binomial standard error),
``expected_risk`` (mean over sets with its SE) and ``transfer_risk``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..defaults import DEFAULTS
from ..tasks import AbstractTask, PoolTask
from ..tasks.riskmath import mc_risk
from ..validation import JaxDistillError, check_choice, check_int


def exact_risk_from_angle(task: AbstractTask, phi: Float[Array, "..."]) -> Float[Array, "..."]:
    """R(phi) of docs/design.md fact 3 for a rotationally symmetric task
    (``task.risk_from_angle(phi)``).

    Args:
        task: a task with ``rotationally_symmetric`` True (and so an exact
            ``p_theta``).
        phi: signed student-teacher angle(s) (eq. 28), any shape, in [0, pi].

    Returns:
        The exact transfer risk (eq. 4), same shape as phi.
    """
    return task.risk_from_angle(phi)


def has_exact_risk(task: AbstractTask) -> bool:
    """True when ``exact_risk`` needs no sampling for this task (``task.has_exact_risk``)."""
    return task.has_exact_risk


def exact_risk(task: AbstractTask, W: Float[Array, "... d"]) -> Float[Array, "..."]:
    """Exact transfer risk of students W (eq. 4) where the task allows it
    (``task.exact_risk(W)``; a ``JaxDistillError`` otherwise)."""
    return task.exact_risk(W)


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
    task: AbstractTask,
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


__all__ = [
    "RiskEstimate",
    "exact_risk",
    "exact_risk_from_angle",
    "expected_risk",
    "has_exact_risk",
    "mc_risk",
    "resolve_num_test",
    "resolve_risk_method",
    "transfer_risk",
]


RISK_METHODS = ("auto", "exact", "mc")


def resolve_risk_method(task: AbstractTask, risk: str) -> str:
    """"auto" -> "exact" where the task has an exact risk, else "mc"; refuses
    "exact" for a task without one (``JaxDistillError`` naming ``risk``)."""
    check_choice("risk", risk, RISK_METHODS)
    if risk == "auto":
        return "exact" if task.has_exact_risk else "mc"
    if risk == "exact" and not task.has_exact_risk:
        raise JaxDistillError(f"risk='exact' is not available for {type(task).__name__}; use risk='mc' or 'auto'")
    return risk


def resolve_num_test(task: AbstractTask, risk: str, num_test: int | None) -> int:
    """``num_test`` checked against the run: refused (naming it) with exact
    risk and on a pool task, whose Monte-Carlo risk is over its own test
    inputs (or the whole pool) whatever num_test; ``DEFAULTS.num_test`` when
    None."""
    if num_test is None:
        return DEFAULTS.num_test
    num_test = check_int("num_test", num_test, minimum=1)
    if risk == "exact":
        raise JaxDistillError(f"num_test applies only to Monte-Carlo risk (risk='mc', or 'auto' on a task without "
                              f"exact risk); this run's risk is exact, got num_test={num_test}")
    if isinstance(task, PoolTask):
        raise JaxDistillError(f"num_test does not apply to a pool task: its risk is over the pool's own test inputs "
                              f"(or the whole pool), got num_test={num_test}")
    return num_test
