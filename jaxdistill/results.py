"""``DistillResult``: the per-set outputs of ``distill`` and their statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .analysis.risk import RiskEstimate, expected_risk
from .runner import failed_sets
from .status import is_success

PER_SET_KEYS = ("status", "num_steps", "loss", "angle", "risk", "risk_se", "rel_dist_closed_form")


@dataclass
class DistillResult:
    """Per-set outputs of ``distill`` (numpy arrays, leading axis = set index).

    Attributes:
        students: [B, d] final students (None when keep_students=False).
        status: [B] ``status.Status`` codes; ``failed_sets()`` names them.
        num_steps: [B] solver/optimiser steps.
        loss: [B] final training loss (eq. 1).
        angle: [B] signed student-teacher angle (eq. 28).
        risk, risk_se: [B] transfer risk (eq. 4) and its MC standard error
            (0 when exact).
        rel_dist_closed_form: [B] ||w - w_hat|| / ||w_hat|| (NaN for hard labels).
        extras: learner-specific per-set arrays.
        config: the run's configuration; elapsed: seconds.
    """

    students: np.ndarray | None
    status: np.ndarray
    num_steps: np.ndarray
    loss: np.ndarray
    angle: np.ndarray
    risk: np.ndarray
    risk_se: np.ndarray
    rel_dist_closed_form: np.ndarray
    extras: dict
    config: dict
    risk_method: str
    elapsed: float = 0.0

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], config: dict, risk_method: str, elapsed: float) -> "DistillResult":
        """Build from the runner's per-set arrays (``extra_*`` keys become ``extras``)."""
        extras = {k[len("extra_"):]: v for k, v in arrays.items() if k.startswith("extra_")}
        return cls(students=arrays.get("students"), extras=extras, config=config, risk_method=risk_method,
                   elapsed=elapsed, **{k: arrays[k] for k in PER_SET_KEYS})

    @property
    def num_sets(self) -> int:
        return int(self.status.shape[0])

    @property
    def ok(self) -> np.ndarray:
        return is_success(self.status)

    def failed_sets(self) -> list[dict]:
        """Every failed set with its global index and reason."""
        return failed_sets(self.status, self.num_steps)

    def expected_risk(self) -> RiskEstimate:
        return expected_risk(self.risk, self.ok)

    def summary(self) -> dict:
        """JSON-able statistics over the successful sets (and the failures)."""
        ok = self.ok
        est = self.expected_risk()
        rel = self.rel_dist_closed_form[ok]
        is_cf = self.config.get("method") == "closed-form"
        ang = self.angle[ok]
        out = {
            "risk_mean": est.mean,
            "risk_se": est.se,
            "risk_ci95": list(est.ci95),
            "risk_method": self.risk_method,
            "num_sets": est.num_sets,
            "num_sets_requested": self.num_sets,
            "num_failed": int((~ok).sum()),
            "failed_sets": self.failed_sets(),
            "angle_mean": float(np.mean(ang)) if ang.size else float("nan"),
            "angle_se": float(np.std(ang, ddof=1) / math.sqrt(ang.size)) if ang.size > 1 else float("nan"),
            "max_rel_dist_closed_form": None if (is_cf or rel.size == 0 or np.all(np.isnan(rel))) else float(np.nanmax(rel)),
            "mean_num_steps": float(np.mean(self.num_steps[ok])) if ok.any() else float("nan"),
            "max_num_steps": int(np.max(self.num_steps[ok])) if ok.any() else 0,
            "elapsed_s": self.elapsed,
            "config": self.config,
        }
        return jsonable(out)


def jsonable(obj):
    """numpy scalars -> Python numbers, NaN -> None, recursively."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return None if math.isnan(f) else f
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


__all__ = ["DistillResult", "jsonable", "PER_SET_KEYS"]
