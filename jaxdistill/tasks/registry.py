"""Built-in tasks by name (the CLI's ``--task``)."""

from __future__ import annotations

from ..validation import JaxDistillError
from .angular import AngularMarginTask, KappaPolynomialTask
from .base import AbstractTask
from .gaussian import IsotropicGaussianTask

TASK_CLASSES = {"kappa": KappaPolynomialTask, "margin": AngularMarginTask, "gaussian": IsotropicGaussianTask}
# the options each named task takes besides d
TASK_OPTIONS = {"kappa": ("kappa", "teacher_norm"), "margin": ("margin", "kappa", "teacher_norm"),
                "gaussian": ("teacher_norm",)}


def make_task(name: str, *, d: int, kappa: float | None = None, margin: float | None = None,
              teacher_norm: float | None = None) -> AbstractTask:
    """Build a built-in task by name.

    Args:
        name: "kappa" (``KappaPolynomialTask``), "margin"
            (``AngularMarginTask``) or "gaussian" (``IsotropicGaussianTask``).
            Finite pools and MNIST are built from their data:
            ``PoolTask(inputs, w_star)``, ``datasets.mnist01_task()``.
        d: input dimension.
        kappa: the angle exponent (tasks kappa and margin; default 1).
        margin: the angular margin beta0 (task margin; default 0.2).
        teacher_norm: ||w*|| (every task; default 1).

    An option left at None takes the task's default; an option given to a
    task it does not apply to is refused with an error naming it.
    """
    if name not in TASK_CLASSES:
        raise JaxDistillError(
            f"task must be one of {', '.join(TASK_CLASSES)}; got {name!r} (finite pools: PoolTask(inputs, w_star); "
            "MNIST 0/1: datasets.mnist01_task())"
        )
    given = {k: v for k, v in (("kappa", kappa), ("margin", margin), ("teacher_norm", teacher_norm)) if v is not None}
    for option in given:
        if option not in TASK_OPTIONS[name]:
            takers = [t for t, opts in TASK_OPTIONS.items() if option in opts]
            raise JaxDistillError(f"{option} applies only to task {', '.join(takers)}, not to task {name!r}")
    return TASK_CLASSES[name](d, **given)


__all__ = ["make_task", "TASK_CLASSES", "TASK_OPTIONS"]
