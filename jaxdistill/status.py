"""Per-set solver status: one enum shared by every learner, the runner and
the analysis (a neutral module: it imports nothing from the library).

A transfer set's fit ends in exactly one of these states.  Codes are small
integers so they travel through ``jit``/``vmap`` as int32 arrays and are
stored in chunk files and ``sets.csv``; always refer to them by name
(``Status.CONVERGED``), never by number.
"""

from __future__ import annotations

import enum

import numpy as np


class Status(enum.IntEnum):
    """Outcome of one transfer set's fit."""

    CONVERGED = 0
    """Reached its steady state (or an exact closed form)."""
    MAX_STEPS = 1
    """Hit the solver's / optimiser's step limit."""
    NON_FINITE = 2
    """Non-finite inputs, teacher logits or outputs."""
    SOLVER_FAILED = 3
    """The ODE solver failed for another reason."""
    RANK_DEFICIENT = 4
    """The transfer inputs are (numerically) linearly dependent."""
    NOT_CONVERGED = 5
    """Soft-label flow reached t_max without meeting the stopping test."""
    FINITE_HORIZON = 6
    """A run of fixed length by design (hard labels, a step budget): a success."""

    @property
    def label(self) -> str:
        return STATUS_NAMES[self]


STATUS_NAMES: dict[int, str] = {
    Status.CONVERGED: "converged",
    Status.MAX_STEPS: "max_steps_reached",
    Status.NON_FINITE: "non_finite",
    Status.SOLVER_FAILED: "solver_failed",
    Status.RANK_DEFICIENT: "rank_deficient",
    Status.NOT_CONVERGED: "not_converged_by_t_max",
    Status.FINITE_HORIZON: "finite_horizon",
}

SUCCESS_CODES: tuple[int, ...] = (int(Status.CONVERGED), int(Status.FINITE_HORIZON))


def is_success(status) -> np.ndarray:
    """Boolean mask of successful sets for an array of status codes."""
    return np.isin(np.asarray(status), SUCCESS_CODES)


def status_name(code) -> str:
    """The word for one status code (``"converged"``, ...)."""
    return STATUS_NAMES[int(code)]


__all__ = ["Status", "STATUS_NAMES", "SUCCESS_CODES", "is_success", "status_name"]
