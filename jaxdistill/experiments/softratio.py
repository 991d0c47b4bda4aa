"""Soft ratio (issue 12, docs/design.md fact 10): test error (against the
true labels) and transfer risk (against the teacher) of linear softmax
students trained on mixed targets rho softmax(u / T) + (1 - rho) onehot(y),
vs rho, with an imperfect teacher.

Tasks: "gaussian", ``MultiClassGaussianTask(d=20, K=4)`` whose labels come
from a different linear rule (``label_w`` = the teacher + half of an
independent random teacher, so the teacher errs on about a fifth of the
inputs), n = 12; and "digits", the shipped 8x8 digits (``digits_task``, a
logistic-regression teacher, K = 10), n = 20.  Learner: the gradient flow
(rho = 0: pure labels, no finite minimiser: the flow stopped at its
horizon, as for every hard-target run; skipped on the digits task, where
that flow takes too long).  ``quick`` runs the Gaussian task only.  Every rho uses the same transfer
sets; means over all sets with a finite risk.

Columns: task, rho, n, error_mean, error_se, risk_mean, risk_se,
teacher_error, num_sets.
"""

from __future__ import annotations

import numpy as np

from ._common import Grid, pyplot, savefig, write_csv

NAME = "softratio"
COLUMNS = ("task", "rho", "n", "error_mean", "error_se", "risk_mean", "risk_se", "teacher_error", "num_sets")
RHOS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
QUICK_RHOS = (0.0, 0.5, 1.0)
TASK_N = {"gaussian": 12, "digits": 20}


def _task(name: str, seed: int):
    from ..multiclass import MultiClassGaussianTask, digits_task, random_teacher

    if name == "gaussian":
        w = random_teacher(20, 4, seed)
        return MultiClassGaussianTask(20, 4, w_star=w, seed=seed, label_w=w + 0.5 * random_teacher(20, 4, seed + 1))
    return digits_task(seed)


def _mean_se(a):
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(a.mean()), (float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")), len(a)


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_sets: int | None = None,
        rhos=None, tasks=None, temperature: float = 1.0, num_test: int | None = None) -> list[dict]:
    """Error and risk vs rho on each task.  Defaults: both tasks, 400 sets per
    point and 10,000 test inputs for the Gaussian task (the Gaussian task, 8
    sets, rho in {0, 0.5, 1} and 2,000 test inputs with ``quick``)."""
    from ..multiclass import MultiTargetSpec, distill_multiclass
    from ..validation import check_choice

    tasks = tuple(tasks or (("gaussian",) if quick else tuple(TASK_N)))
    for t in tasks:
        check_choice("task", t, tuple(TASK_N))
    num_sets = num_sets or (8 if quick else 400)
    num_test = num_test or (2000 if quick else 10_000)
    rhos = tuple(float(r) for r in (rhos or (QUICK_RHOS if quick else RHOS)))
    grid = Grid(out_dir, NAME, {"seed": seed, "quick": quick, "num_sets": num_sets, "rhos": list(rhos),
                                "tasks": list(tasks), "temperature": temperature, "num_test": num_test})

    def compute(key):
        name, rho = key.split("_rho=")
        rho, n = float(rho), TASK_N[name]
        res = distill_multiclass(seed, _task(name, seed), n, num_sets, method="flow", num_test=num_test,
                                 targets=MultiTargetSpec("mixed", temperature, rho), chunk_size=num_sets,
                                 keep_students=False)
        e, e_se, _ = _mean_se(res.arrays["error"])
        r, r_se, m = _mean_se(res.arrays["risk"])
        return [{"task": name, "rho": rho, "n": n, "error_mean": e, "error_se": e_se, "risk_mean": r, "risk_se": r_se,
                 "teacher_error": float(res.teacher_error), "num_sets": m}]

    rows = grid.run([f"{t}_rho={r:g}" for t in tasks for r in rhos if t != "digits" or r > 0], compute, progress=progress)
    write_csv(grid.out / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, grid.out / f"{NAME}.png")
    return rows


def plot(rows, path):
    plt = pyplot()
    names = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        rs = sorted((r for r in rows if r["task"] == name), key=lambda r: r["rho"])
        rho = [r["rho"] for r in rs]
        ax.errorbar(rho, [r["error_mean"] for r in rs], yerr=[r["error_se"] for r in rs], fmt="o-", ms=3,
                    capsize=2, label="test error (true labels)")
        ax.errorbar(rho, [r["risk_mean"] for r in rs], yerr=[r["risk_se"] for r in rs], fmt="s-", ms=3,
                    capsize=2, label="transfer risk (teacher)")
        ax.axhline(rs[0]["teacher_error"], color="gray", ls="--", label="teacher's error")
        ax.set_xlabel(r"soft ratio $\rho$")
        ax.set_title(f"{name} (n = {rs[0]['n']})")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Mixed targets with an imperfect teacher", fontsize=10)
    savefig(fig, path)


def summary_rows(rows):
    return rows
