"""Soft ratio (docs/design.md fact 10): test error (against the
true labels) and transfer risk (against the teacher) of linear softmax
students trained on mixed targets rho softmax(u / T) + (1 - rho) onehot(y),
vs rho, with an imperfect teacher.

Tasks: "gaussian", ``MultiClassGaussianTask(d=20, K=4)`` whose labels come
from a different linear rule (``--label-noise 0.5``: the teacher + half of an
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

One sweep per task (``OUT/softratio_sweep/<task>_sweep/``) over the points
(soft ratio, t_end, method): rho = 0 with ``--t-end hard_horizon``, rho > 0
converged (``--method closed-form`` for the tasks in
``limit_by_closed_form``); each point ``jaxdistill run --task gaussian --d 20
--classes 4 --task-seed SEED --label-noise 0.5 --num-test M --n 12`` or
``--task digits --task-seed SEED --n 20``, with ``--targets mixed
--soft-ratio RHO --temperature T``.

Columns: task, rho, n, error_mean, error_se, risk_mean, risk_se,
teacher_error, num_sets, student ("flow_converged", "closed_form_limit" or
"flow_finite_horizon"), t_max (the horizon of finite-horizon rows, empty
otherwise), num_failed.
"""

from __future__ import annotations

from pathlib import Path

from ._common import pyplot, run_study, savefig, write_csv

NAME = "softratio"
COLUMNS = ("task", "rho", "n", "error_mean", "error_se", "risk_mean", "risk_se", "teacher_error", "num_sets",
           "student", "t_max", "num_failed")
RHOS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
QUICK_RHOS = (0.0, 0.5, 1.0)
TASK_N = {"gaussian": 12, "digits": 20}
HARD_HORIZON = 1e4
FULL_SETS = {"gaussian": 200, "digits": 64}
GAUSSIAN_D, GAUSSIAN_K, LABEL_NOISE = 20, 4, 0.5


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_sets: int | None = None,
        rhos=None, tasks=None, temperature: float = 1.0, num_test: int | None = None,
        hard_horizon: float = HARD_HORIZON, limit_by_closed_form=()) -> list[dict]:
    """Error and risk vs rho on each task: one sweep per task
    (``OUT/softratio_sweep/<task>_sweep/``, module docstring).  Defaults: both
    tasks, 200 sets per point on the Gaussian task (10,000 test inputs) and 64
    on the digits task (the Gaussian task, 8 sets, rho in {0, 0.5, 1} and
    2,000 test inputs with ``quick``); ``num_sets`` sets the number for every
    task.  The rho = 0 flow stops at t = ``hard_horizon``.  Tasks named in
    ``limit_by_closed_form`` take their rho > 0 students from the flow's
    exact limit by its closed form (``closed_form_limit``) instead of
    running the flow."""
    from ..validation import check_choice, check_real

    tasks = tuple(tasks or (("gaussian",) if quick else tuple(TASK_N)))
    limit_by_closed_form = tuple(limit_by_closed_form)
    for t in tasks + limit_by_closed_form:
        check_choice("task", t, tuple(TASK_N))
    num_test = num_test or (2000 if quick else 10_000)
    rhos = tuple(float(r) for r in (rhos or (QUICK_RHOS if quick else RHOS)))
    hard_horizon = check_real("hard_horizon", hard_horizon, gt=0.0)
    rows = []
    for name in tasks:
        sets = num_sets or (8 if quick else FULL_SETS[name])
        by_closed_form = name in limit_by_closed_form
        points = [{"soft_ratio": rho, "t_end": hard_horizon if rho == 0.0 else None,
                   "method": "closed-form" if rho > 0.0 and by_closed_form else "flow"} for rho in rhos]
        study = run_study(Path(out_dir) / f"{NAME}_sweep", name, points=points, progress=progress, seed=seed,
                          n=TASK_N[name], num_sets=sets, chunk_size=sets, targets="mixed", temperature=temperature,
                          **task_settings(name, seed, num_test))
        rows += [row_of(name, TASK_N[name], point, res) for point, res in zip(study.table, study.results)]
    write_csv(Path(out_dir) / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, Path(out_dir) / f"{NAME}.png")
    return rows


def task_settings(name: str, seed: int, num_test: int) -> dict:
    """The ``jaxdistill run`` options of a task: the Gaussian task with labels
    from W* + ``LABEL_NOISE`` W' (``--label-noise``), risk on ``num_test``
    held-out inputs; the digits task (its 449 test images, exact risk)."""
    if name == "gaussian":
        return {"task": "gaussian", "d": GAUSSIAN_D, "classes": GAUSSIAN_K, "task_seed": seed,
                "label_noise": LABEL_NOISE, "num_test": num_test}
    return {"task": "digits", "task_seed": seed}


def row_of(name: str, n: int, point: dict, res) -> dict:
    """The softratio.csv row of a sweep point (its table row and ``DistillResult``)."""
    finite = point["t_end"] is not None
    student = ("flow_finite_horizon" if finite else
               "closed_form_limit" if point["method"] == "closed-form" else "flow_converged")
    return {"task": name, "rho": point["soft_ratio"], "n": n, "error_mean": point["error_mean"],
            "error_se": point["error_se"], "risk_mean": point["risk_mean"], "risk_se": point["risk_se"],
            "teacher_error": float(res.teacher_error), "num_sets": point["num_sets"], "student": student,
            "t_max": point["t_end"], "num_failed": point["num_failed"]}


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
