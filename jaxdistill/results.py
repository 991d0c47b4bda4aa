"""``DistillResult``: the one result of every run (binary, K-class, kernel,
network, deep), its statistics, its files and ``load``.

A result is a dict of per-set numpy arrays (``arrays``: leading axis = the
global set index, the same names on every path) plus the run's
configuration.  ``summary()`` returns exactly the keys ``summary.json``
holds; ``write_run_files`` writes ``sets.csv``, ``summary.json`` and
(optionally) ``students.npy`` for ``jd.distill(out=...)`` and ``jaxdistill
run --out`` alike, and ``load(out_dir)`` rebuilds the same result from a
finished run folder.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analysis.risk import RiskEstimate, expected_risk
from .defaults import DEFAULTS
from .multiclass.minimiser import LIMIT_KIND_NAMES
from .runner import PerSetStatus, concatenate
from .runstore import CHUNK_DIR, MANIFEST, write_json, write_sets_csv
from .status import STATUS_NAMES
from .validation import JaxDistillError

PER_SET_KEYS = ("status", "num_steps", "loss", "angle", "risk", "risk_se", "rel_dist_closed_form")
SUMMARY_FILE = "summary.json"
SETS_FILE = "sets.csv"
STUDENTS_FILE = "students.npy"
# summary keys that describe how the run went, not the per-set arrays: kept in ``DistillResult.info``
RUN_INFO_KEYS = ("sets_computed_this_run", "num_devices", "num_processes")


class FailedSetsWarning(UserWarning):
    """Some transfer sets of a run failed (their statistics are left out)."""


@dataclass
class DistillResult(PerSetStatus):
    """Per-set outputs of a run and their statistics.

    Attributes:
        arrays: per-set numpy arrays, leading axis B: ``status``
            (``status.Status`` codes), ``num_steps``, ``loss``, ``risk``,
            ``risk_se``, ``rel_dist_closed_form``; binary linear students add
            ``angle`` (eq. 28); tasks with labels add ``error``; learners add
            ``extra_*``; ``students`` ([B, d] binary, [B, K, d] K-class) when
            kept.
        config: the run's configuration (manifest.json).
        elapsed: seconds spent computing.
        teacher_error: the teacher's own error on held-out labels (K-class
            tasks with labels), else None.
        info: further summary keys (monotonicity, devices, ...).

    The arrays are also attributes (``res.risk``, ``res.students``; None when
    absent) and ``res.extras`` holds the ``extra_*`` arrays without prefix.
    """

    arrays: dict
    config: dict
    elapsed: float = 0.0
    teacher_error: float | None = None
    info: dict = field(default_factory=dict)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], config: dict, risk_method: str | None = None,
                    elapsed: float = 0.0) -> "DistillResult":
        """A result from the runner's per-set arrays (``risk_method`` is the
        config's "risk"; accepted for older callers)."""
        return cls(dict(arrays), config, elapsed)

    def __getattr__(self, name):
        arrays = self.__dict__.get("arrays")
        if arrays is not None and (name in PER_SET_KEYS or name == "students"):
            return arrays.get(name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def extras(self) -> dict:
        return {k[len("extra_"):]: v for k, v in self.arrays.items() if k.startswith("extra_")}

    @property
    def risk_method(self) -> str:
        return self.config["risk"]

    @property
    def num_classes(self) -> int:
        return int(self.config.get("num_classes", 2))

    def expected_risk(self) -> RiskEstimate:
        """Mean transfer risk over the successful sets, with its SE."""
        return expected_risk(self.arrays["risk"], self.ok)

    def expected_error(self) -> RiskEstimate | None:
        """Mean test error against ground-truth labels (None without labels)."""
        return expected_risk(self.arrays["error"], self.ok) if "error" in self.arrays else None

    def summary(self) -> dict:
        """JSON-able statistics over the successful sets: exactly the keys
        of ``summary.json``."""
        ok = self.ok
        est = self.expected_risk()
        rel = self.arrays["rel_dist_closed_form"][ok]
        steps = self.arrays["num_steps"][ok]
        angle = self.arrays.get("angle")
        ang = angle[ok] if angle is not None else np.zeros(0)
        out = {
            "num_classes": self.num_classes,
            "risk_mean": est.mean,
            "risk_se": est.se,
            "risk_ci95": list(est.ci95),
            "risk_method": self.risk_method,
            "num_sets": est.num_sets,
            "num_sets_requested": self.num_sets,
            "num_failed": int((~ok).sum()),
            "failed_sets": self.failed_sets(),
            "angle_mean": (float(np.mean(ang)) if ang.size else float("nan")) if angle is not None else None,
            "angle_se": float(np.std(ang, ddof=1) / math.sqrt(ang.size)) if ang.size > 1 else None,
            "max_rel_dist_closed_form": (None if self.config.get("method") == "closed-form" or rel.size == 0
                                         or np.all(np.isnan(rel)) else float(np.nanmax(rel))),
            "closed_form_reference": reference_kind(self.arrays, ok),
            "mean_num_steps": float(np.mean(steps)) if steps.size else float("nan"),
            "max_num_steps": int(np.max(steps)) if steps.size else 0,
            "elapsed_s": self.elapsed,
            "config": self.config,
        }
        err = self.expected_error()
        if err is not None:
            out.update({"error_mean": err.mean, "error_se": err.se, "error_ci95": list(err.ci95),
                        "teacher_error": self.teacher_error})
        out.update(bound_summary(self.extras, ok))
        out.update(self.info)
        return jsonable(out)

    def to_pandas(self):
        """The per-set table (one row per set, the columns of sets.csv) as a
        pandas DataFrame (pandas is an optional extra: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            raise JaxDistillError("to_pandas needs pandas (an optional extra): pip install pandas") from None
        return pd.DataFrame(per_set_table(self.arrays)).rename_axis("index")


def reference_kind(arrays: dict, ok: np.ndarray) -> str | None:
    """What ``rel_dist_closed_form`` measures the distance to over the
    successful sets: "interpolant" (the closed form: Thm 1, fact 8's
    interpolant, a kernel student's), "convex_minimiser" (a K-class flow's
    limit where no interpolant exists: the minimiser of the cross-entropy,
    ``multiclass.minimiser``), both joined by " and " when sets differ, or
    None where there is no reference (hard targets, networks)."""
    rel = arrays["rel_dist_closed_form"][ok]
    if rel.size == 0 or np.all(np.isnan(rel)):
        return None
    if "limit_kind" not in arrays:  # binary students: w_hat of Thm 1 is the limit of every soft-target flow
        return "interpolant"
    names = sorted({LIMIT_KIND_NAMES[int(k)] for k in arrays["limit_kind"][ok]} - {"none"})
    return " and ".join(names) or None


def bound_summary(extras: dict, ok: np.ndarray) -> dict:
    """Summary keys of learners that report a distance to w_hat and its
    eq. 76 bound (deep students): the largest distance, the largest bound,
    and the number of sets above their own bound."""
    out = {}
    if "dist_w_hat" in extras:
        v = extras["dist_w_hat"][ok]
        out["max_dist_w_hat"] = float(np.max(v)) if v.size else None
    if "eq76_bound" in extras:
        v = extras["eq76_bound"][ok]
        out["eq76_bound"] = float(np.max(v)) if v.size else None  # the largest bound, not per set
    if "dist_w_hat" in extras and "eq76_bound" in extras:
        dist, bound = np.asarray(extras["dist_w_hat"])[ok], np.asarray(extras["eq76_bound"])[ok]
        both = np.isfinite(dist) & ~np.isnan(bound)
        out["eq76_violations"] = int(np.sum(dist[both] > bound[both]))  # sets above their own bound
    return out


SETS_COLUMNS = ("status_name", "status", "num_steps", "risk", "risk_se", "angle", "rel_dist_closed_form", "loss",
                "error")


def per_set_table(arrays: dict) -> dict:
    """The columns of sets.csv (and of ``to_pandas``), in order: the status
    by name and code, the per-set statistics, then the learner's extras
    (``extra_*``, named without the prefix)."""
    table = {"status_name": np.array([STATUS_NAMES[int(s)] for s in arrays["status"]])}
    table.update({k: arrays[k] for k in SETS_COLUMNS[1:] if k in arrays})
    table.update({k.removeprefix("extra_"): arrays[k] for k in sorted(arrays)
                  if k.startswith("extra_") and np.ndim(arrays[k]) == 1})
    return table


def describe_failures(failed: list[dict], num_sets: int, shown: int = DEFAULTS.failed_sets_shown) -> str:
    """'3 of 100 transfer sets failed (#4 max_steps_reached, ...)', at most ``shown`` listed."""
    listed = ", ".join(f"#{f['index']} {f['status']}" for f in failed[:shown])
    more = f", and {len(failed) - shown} more" if len(failed) > shown else ""
    return f"{len(failed)} of {num_sets} transfer sets failed ({listed}{more})"


def warn_if_failed(result: DistillResult, stacklevel: int = 3) -> None:
    """A ``FailedSetsWarning`` with the count (and the first failures) when a set failed."""
    failed = result.failed_sets()
    if failed:
        warnings.warn(describe_failures(failed, result.num_sets) + f"; the statistics use the other "
                      f"{result.num_sets - len(failed)} sets, res.failed_sets() lists every one",
                      FailedSetsWarning, stacklevel=stacklevel)


def write_students(path, students, ok) -> None:
    """``students.npy``: row i = set i ([B, d] or [B, K, d]), NaN for failed sets."""
    W = np.array(students, dtype=np.float64 if np.asarray(students).dtype == np.float64 else np.float32)
    W[~np.asarray(ok, bool)] = np.nan
    np.save(path, W)


def write_run_files(out_dir, result: DistillResult, *, save_students: bool = False) -> dict:
    """Write ``sets.csv``, ``summary.json`` and, with ``save_students``,
    ``students.npy`` into a run folder; returns the summary."""
    root = Path(out_dir)
    summary = result.summary()
    write_sets_csv(root / SETS_FILE, per_set_table(result.arrays))
    if save_students:
        if result.students is None:
            raise JaxDistillError("save_students needs the students: keep_students=True (--save-students)")
        write_students(root / STUDENTS_FILE, result.students, result.ok)
    write_json(root / SUMMARY_FILE, summary)
    return summary


def load(out_dir) -> DistillResult:
    """The result of a finished run folder (``jaxdistill run --out DIR`` or
    ``jd.distill(..., out=DIR)``): the same ``DistillResult`` the run
    returned, so ``load(DIR).summary()`` equals DIR/summary.json."""
    root = Path(out_dir)
    for name in (MANIFEST, SUMMARY_FILE):
        if not (root / name).exists():
            raise JaxDistillError(f"{root} holds no finished run: {name} is missing (rerun the same command to "
                                  "finish it)")
    config = json.loads((root / MANIFEST).read_text())
    summary = json.loads((root / SUMMARY_FILE).read_text())
    num_chunks = math.ceil(config["num_sets"] / config["chunk_size"])
    parts = []
    for c in range(num_chunks):
        path = root / CHUNK_DIR / f"chunk_{c:05d}.npz"
        if not path.exists():
            raise JaxDistillError(f"{root}: chunk file {path.name} is missing; rerun the same command to compute it")
        with np.load(path) as z:
            parts.append({k: z[k] for k in z.files})
    info = {k: summary[k] for k in summary if k in RUN_INFO_KEYS or k.startswith("monotonicity") or k == "coupling"}
    return DistillResult(concatenate(parts), summary["config"], summary["elapsed_s"] or 0.0,
                         summary.get("teacher_error"), info)


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
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


__all__ = ["DistillResult", "FailedSetsWarning", "jsonable", "load", "write_run_files", "write_students",
           "warn_if_failed", "describe_failures", "per_set_table", "bound_summary", "PER_SET_KEYS"]
