"""Nonlinear students (docs/design.md facts 9 and 12):
transfer risk vs n and the risk-monotonicity index of linear, kernel and
finite-width network students distilled from a ReLU-network teacher, with
soft and with hard targets.

Task: ``nonlinear.ReluTeacherTask(d=10, teacher_width=32, num_classes=2)``
(x ~ N(0, I_10) labelled by a seeded random two-layer ReLU network, logits
[0, u]; the teacher's seed is the experiment's seed).  No student here can
represent the teacher exactly except in the limit of infinite data for the
universal kernels, so unlike the linear theorem the risk need not reach 0.

Students (``STUDENTS``):

* ``linear``: the linear softmax student (``make_softmax_learner``);
* ``rbf`` (bandwidth 3 ~ sqrt(d)), ``arccos``, ``ntk``: kernel students
  ``KernelLearner(kernel, base)`` (the linear learner on kernel features);
* ``mlp``: a two-layer bias-free ReLU network of 512 hidden units in the
  NTK parameterisation (``make_mlp_learner``), trained by full-batch plain
  GD at learning rate 1 for ``HORIZON`` = 100 steps (so t = eta S = 100 in
  the time of the kernel flow it approximates), soft and hard targets alike.

Targets: ``soft`` (softmax(u), T = 1): the students are the limit of the
flow: for kernel students the closed form (the minimum-RKHS-norm
interpolant of the centred target logits; fact 9), for the linear student
the flow run to its steady state (for n > d there is no interpolant and
the limit is the minimiser of the cross-entropy); ``hard`` (onehot of the
teacher's argmax): no finite minimiser, so the flow is run to the finite
horizon ``FlowConfig(t_end=HORIZON)`` (status ``finite_horizon``), the same
time as the network's GD.  Hard flows run in chunks of ``HARD_CHUNK`` sets:
a vmapped batch of 20 hard rbf-kernel flows at n = 40 did not finish in 5
minutes (nor a batch of 8 ntk flows at n = 80 in 2) where the same sets one
by one take seconds (see the report of this
experiment's commit).

One sweep per (student, targets) over n (``OUT/nonlinear_sweep/<student>_<targets>/``),
each point ``jaxdistill run --task relu-teacher --d 10 --teacher-width 32
--task-seed SEED --monotonicity`` with the student's options
(``student_settings``): the risk (argmax disagreement with the teacher on
``num_test`` held-out inputs, mean over the successful sets, its SE) and
the risk-monotonicity index (``nonlinear.risk_monotonicity_index``) with
the SAME learner, targets and held-out sample (the same seed): the share
of nested pairs (X, [X, x]) where the extra input strictly lowers the
risk, with its binomial SE, the share of ties (no change on the held-out
sample), the share of increases and the mean risk change with its SE.

Columns: see ``COLUMNS``; ``status`` counts the statuses of the risk run
(``name:count`` joined by ``;``), ``num_failed`` / ``monotonicity_failed``
the sets / pairs dropped because a fit failed.
"""

from __future__ import annotations

from pathlib import Path

from ._common import pyplot, run_study, savefig, write_csv

NAME = "nonlinear"
COLUMNS = ("student", "targets", "n", "risk_mean", "risk_se", "num_sets", "num_failed", "status",
           "monotonicity", "monotonicity_se", "monotonicity_ties", "monotonicity_increases", "monotonicity_sets",
           "monotonicity_failed", "risk_change_mean", "risk_change_se", "horizon")
STUDENTS = ("linear", "rbf", "arccos", "ntk", "mlp")
TARGETS = ("soft", "hard")
D, TEACHER_WIDTH, K = 10, 32, 2
BANDWIDTH = 3.0
HORIZON = 100.0  # t_end of the hard-target flows = GD steps of the network at learning rate 1
MLP_WIDTH, MLP_LR = 512, 1.0
HARD_CHUNK = 1
NS = (5, 20, 80)
QUICK_NS = (5, 40)
QUICK_STUDENTS = ("rbf",)


def student_settings(student: str, targets: str, *, horizon: float = HORIZON, mlp_width: int = MLP_WIDTH,
                     bandwidth: float = BANDWIDTH) -> dict:
    """The ``jaxdistill run`` options of ``student`` for ``targets`` (module docstring)."""
    from ..validation import check_choice

    check_choice("student", student, STUDENTS)
    check_choice("targets", targets, TARGETS)
    if student == "mlp":
        return {"student": "mlp", "width": mlp_width, "lr": MLP_LR, "steps": int(round(horizon / MLP_LR))}
    if targets == "hard":
        train = {"method": "flow", "t_end": float(horizon)}
    elif student == "linear":  # n > d: no interpolant, the flow converges to the cross-entropy minimiser
        train = {"method": "flow"}
    else:  # kernel features are n-dimensional: the closed form (the interpolant) always exists
        train = {"method": "closed-form"}
    if student == "linear":
        return train
    return {"student": "kernel", "kernel": student, **({"bandwidth": bandwidth} if student == "rbf" else {}), **train}


def status_counts(status) -> str:
    """The statuses of a run as ``name:count`` joined by ``;``."""
    import numpy as np

    from ..status import status_name

    codes, counts = np.unique(np.asarray(status), return_counts=True)
    return ";".join(f"{status_name(int(c))}:{int(m)}" for c, m in zip(codes, counts))


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_sets: int | None = None,
        mlp_num_sets: int | None = None, ns=None, students=None, num_test: int | None = None,
        horizon: float = HORIZON, mlp_width: int = MLP_WIDTH) -> list[dict]:
    """Risk and monotonicity index vs n for every student and target kind.
    Defaults: all five students, n in {5, 20, 80}, 200 sets (pairs)
    per point (100 for the network) and 4,000 held-out inputs (the rbf
    student, n in {5, 40}, 48 sets and 1,000 held-out inputs with ``quick``)."""
    from ..validation import check_choice

    students = tuple(students or (QUICK_STUDENTS if quick else STUDENTS))
    for s in students:
        check_choice("student", s, STUDENTS)
    num_sets = num_sets or (48 if quick else 200)
    mlp_num_sets = mlp_num_sets or (num_sets if quick else 100)
    num_test = num_test or (1000 if quick else 4000)
    ns = [int(n) for n in (ns or (QUICK_NS if quick else NS))]
    rows = []
    for student in students:
        for targets in TARGETS:
            sets = mlp_num_sets if student == "mlp" else num_sets
            flow_hard = targets == "hard" and student != "mlp"
            study = run_study(Path(out_dir) / f"{NAME}_sweep", f"{student}_{targets}", grid={"n": ns},
                              progress=progress, task="relu-teacher", d=D, teacher_width=TEACHER_WIDTH, classes=K,
                              task_seed=seed, seed=seed, targets=targets, num_sets=sets, num_test=num_test,
                              chunk_size=min(HARD_CHUNK, sets) if flow_hard else min(sets, 100), monotonicity=True,
                              **student_settings(student, targets, horizon=horizon, mlp_width=mlp_width))
            finite = flow_hard or student == "mlp"
            rows += [row_of(student, targets, res, float(horizon) if finite else None) for res in study.results]
    write_csv(Path(out_dir) / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, Path(out_dir) / f"{NAME}.png", horizon=horizon)
    return rows


def row_of(student: str, targets: str, res, horizon: float | None) -> dict:
    """The nonlinear.csv row of a point's ``DistillResult`` (run with ``--monotonicity``).
    ``monotonicity_increases`` is the share of pairs whose risk strictly
    increased, count / pairs; summary.json has its complement
    (``monotonicity_nonincreasing``), from which the count is recovered exactly."""
    s = res.summary()
    pairs = s["monotonicity_num_sets"]
    return {"student": student, "targets": targets, "n": s["config"]["n"], "risk_mean": s["risk_mean"],
            "risk_se": s["risk_se"], "num_sets": s["num_sets"], "num_failed": s["num_failed"],
            "status": status_counts(res.arrays["status"]), "monotonicity": s["monotonicity"],
            "monotonicity_se": s["monotonicity_se"], "monotonicity_ties": s["monotonicity_ties"],
            "monotonicity_increases": round((1.0 - s["monotonicity_nonincreasing"]) * pairs) / pairs,
            "monotonicity_sets": pairs, "monotonicity_failed": s["monotonicity_num_failed"],
            "risk_change_mean": s["monotonicity_risk_change_mean"], "risk_change_se": s["monotonicity_risk_change_se"],
            "horizon": horizon}


def plot(rows, path, *, horizon=HORIZON):
    """Risk (top) and monotonicity index (bottom) against n, one panel per
    target kind (soft: the students' limits; hard: stopped at t = horizon),
    one line per student, ticks at the n of the run."""
    plt = pyplot()
    targets = [t for t in TARGETS if any(r["targets"] == t for r in rows)]
    fig, axes = plt.subplots(2, len(targets), figsize=(5.0 * len(targets) + 1.6, 6.6), squeeze=False, sharex=True)
    students = list(dict.fromkeys(r["student"] for r in rows))
    colours = dict(zip(STUDENTS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    ns = sorted({r["n"] for r in rows})
    for j, t in enumerate(targets):
        for s in students:
            rs = sorted((r for r in rows if r["student"] == s and r["targets"] == t), key=lambda r: r["n"])
            if not rs:
                continue
            x = [r["n"] for r in rs]
            kw = dict(fmt="o-", ms=3, capsize=2, color=colours[s], label=s)
            axes[0, j].errorbar(x, [r["risk_mean"] for r in rs], yerr=[r["risk_se"] for r in rs], **kw)
            axes[1, j].errorbar(x, [r["monotonicity"] for r in rs], yerr=[r["monotonicity_se"] for r in rs], **kw)
        axes[0, j].set_title("soft targets (each student's limit)" if t == "soft"
                             else f"hard targets (stopped at t = {horizon:g})")
        axes[1, j].set_xlabel("n (transfer-set size)")
        for ax in axes[:, j]:
            ax.set_xscale("log")
            ax.set_xticks(ns)
            ax.set_xticklabels([str(n) for n in ns])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("transfer risk\n(argmax disagreement)")
    axes[1, 0].set_ylabel("monotonicity index\nP(one more input lowers the risk)")
    axes[0, -1].legend(title="student", fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle(f"ReLU-network teacher (d={D}, width {TEACHER_WIDTH}); mlp: width {MLP_WIDTH}, "
                 f"GD to t = {horizon:g}; mean $\\pm$ SE", fontsize=9)
    savefig(fig, path)


def summary_rows(rows):
    return rows
