"""Soft ratio (issue 12, docs/design.md fact 10): test error (against the
true labels) and transfer risk (against the teacher) of linear softmax
students trained on mixed targets rho softmax(u / T) + (1 - rho) onehot(y),
vs rho, with an imperfect teacher.

Tasks: "gaussian", ``MultiClassGaussianTask(d=20, K=4)`` whose labels come
from a different linear rule (``label_w`` = the teacher + half of an
independent random teacher, so the teacher errs on about a fifth of the
inputs), n = 12; and "digits", the shipped 8x8 digits (``digits_task``, a
logistic-regression teacher, K = 10), n = 20.  Learner: the gradient flow
from W = 0.  For rho > 0 the targets have a finite minimiser and the flow
runs to its steady state (status "converged"), on both tasks (the digits
flow, K = 10, solves its implicit stages through K n-square systems,
docs/design.md fact 14; ``limit_by_closed_form`` takes the flow's limit
from its closed form instead).  For rho = 0 (labels only) there is none:
the logits grow like log t and the student converges only in direction
(max-margin), so the flow is stopped at the explicit horizon
``hard_horizon`` (default t = 1e4, the time of the binary hard-target GD
learner: 10,000 steps at learning rate 1; status "finite_horizon"), on both
tasks; the CSV (``student``, ``t_max``) and the figure say so.  Without it the flow would run
to FlowConfig's t_max (1e35) and most sets would stop at the step limit
instead.  ``quick`` runs the Gaussian task only.  Every rho uses the same
transfer sets; means and SEs over the successful sets (status converged or
finite_horizon; ``num_failed`` counts the others).

Columns: task, rho, n, error_mean, error_se, risk_mean, risk_se,
teacher_error, num_sets, student ("flow_converged", "closed_form_limit" or
"flow_finite_horizon"), t_max (the horizon of finite-horizon rows, empty
otherwise), num_failed.
"""

from __future__ import annotations

import numpy as np

from ._common import Grid, pyplot, savefig, write_csv

NAME = "softratio"
COLUMNS = ("task", "rho", "n", "error_mean", "error_se", "risk_mean", "risk_se", "teacher_error", "num_sets",
           "student", "t_max", "num_failed")
RHOS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
QUICK_RHOS = (0.0, 0.5, 1.0)
TASK_N = {"gaussian": 12, "digits": 20}
HARD_HORIZON = 1e4
FULL_SETS = {"gaussian": 200, "digits": 64}


def _task(name: str, seed: int):
    from ..multiclass import MultiClassGaussianTask, digits_task, random_teacher

    if name == "gaussian":
        w = random_teacher(20, 4, seed)
        return MultiClassGaussianTask(20, 4, w_star=w, seed=seed, label_w=w + 0.5 * random_teacher(20, 4, seed + 1))
    return digits_task(seed)


def _mean_se(a, ok):
    a = np.asarray(a, float)[ok]
    return float(a.mean()), (float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")), len(a)


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_sets: int | None = None,
        rhos=None, tasks=None, temperature: float = 1.0, num_test: int | None = None,
        hard_horizon: float = HARD_HORIZON, limit_by_closed_form=()) -> list[dict]:
    """Error and risk vs rho on each task.  Defaults: both tasks, 200 sets per
    point on the Gaussian task (10,000 test inputs) and 64 on the digits task
    (the Gaussian task, 8 sets, rho in {0, 0.5, 1} and 2,000 test inputs with
    ``quick``); ``num_sets`` sets the number for every task.  The
    rho = 0 flow stops at t = ``hard_horizon``.  Tasks named in
    ``limit_by_closed_form`` take their rho > 0 students from the flow's
    exact limit by its closed form (``closed_form_limit``) instead of
    running the flow."""
    from ..multiclass import MultiTargetSpec, make_softmax_learner
    from ..simulate import distill
    from ..status import is_success
    from ..students import FlowConfig
    from ..validation import check_choice, check_real

    tasks = tuple(tasks or (("gaussian",) if quick else tuple(TASK_N)))
    limit_by_closed_form = tuple(limit_by_closed_form)
    for t in tasks + limit_by_closed_form:
        check_choice("task", t, tuple(TASK_N))
    sets = {t: num_sets or (8 if quick else FULL_SETS[t]) for t in tasks}
    num_test = num_test or (2000 if quick else 10_000)
    rhos = tuple(float(r) for r in (rhos or (QUICK_RHOS if quick else RHOS)))
    hard_horizon = check_real("hard_horizon", hard_horizon, gt=0.0)
    grid = Grid(out_dir, NAME, {"seed": seed, "quick": quick, "num_sets": sets, "rhos": list(rhos),
                                "tasks": list(tasks), "temperature": temperature, "num_test": num_test,
                                "hard_horizon": hard_horizon, "limit_by_closed_form": list(limit_by_closed_form)})

    def compute(key):
        name, rho = key.split("_rho=")
        rho, n = float(rho), TASK_N[name]
        finite = rho == 0.0  # labels only: no finite minimiser, the flow stops at the horizon
        if finite:
            learner, student = make_softmax_learner("flow", flow=FlowConfig(t_end=hard_horizon)), "flow_finite_horizon"
        elif name in limit_by_closed_form:
            learner, student = make_softmax_learner("closed-form"), "closed_form_limit"
        else:
            learner, student = make_softmax_learner("flow"), "flow_converged"
        task = _task(name, seed)
        res = distill(seed, task, n, sets[name], learner=learner, num_test=None if task.risk_is_exact else num_test,
                                 targets=MultiTargetSpec("mixed", temperature, rho), chunk_size=sets[name],
                                 keep_students=False)
        ok = is_success(res.arrays["status"])
        e, e_se, _ = _mean_se(res.arrays["error"], ok)
        r, r_se, m = _mean_se(res.arrays["risk"], ok)
        return [{"task": name, "rho": rho, "n": n, "error_mean": e, "error_se": e_se, "risk_mean": r, "risk_se": r_se,
                 "teacher_error": float(res.teacher_error), "num_sets": m,
                 "student": student, "t_max": hard_horizon if finite else None,
                 "num_failed": int((~ok).sum())}]

    rows = grid.run([f"{t}_rho={r:g}" for t in tasks for r in rhos], compute, progress=progress)
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
        fh = [r for r in rs if r.get("student") == "flow_finite_horizon"]
        if fh:  # labels only: no steady state, the flow stopped at its horizon
            ax.scatter([r["rho"] for r in fh] * 2, [r["error_mean"] for r in fh] + [r["risk_mean"] for r in fh],
                       s=70, facecolors="none", edgecolors="black", zorder=3,
                       label=f"flow stopped at t = {fh[0]['t_max']:g} (no finite minimiser)")
        ax.set_xlabel(r"soft ratio $\rho$")
        limit = "closed form of the limit" if any(r.get("student") == "closed_form_limit" for r in rs) else "flow"
        ax.set_title(f"{name} (n = {rs[0]['n']}; $\\rho$ > 0: {limit})", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of test inputs misclassified")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle("Mixed targets with an imperfect teacher", fontsize=10)
    savefig(fig, path)


def summary_rows(rows):
    return rows
