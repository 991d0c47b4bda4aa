"""Temperature (issue 12, docs/design.md fact 10): transfer risk vs n of
linear softmax students distilled from a K-class teacher with soft targets
softmax(u / T), for T in {0.5, 1, 2, 4}.

Two students per transfer set: the gradient flow run to convergence (its
limit is the closed form divided by T, so its predicted classes, and hence
its risk, do not depend on T) and the same flow stopped at the fixed time
``t_stop`` (whose predictions do depend on T).  Every T uses the same
transfer sets (the same seed), so the converged risks agree exactly, up to
ties of the argmax.

Task: ``MultiClassGaussianTask(d, K)`` (x ~ N(0, I_d), K random teacher
rows); risk: argmax disagreement with the teacher on ``num_test`` held-out
inputs, averaged over transfer sets (all sets for the stopped flow, whose
status is "not converged" by construction).

Columns: n, temperature, flow ("converged" / "stopped"), risk_mean,
risk_se, num_sets.
"""

from __future__ import annotations

import numpy as np

from ._common import Grid, pyplot, savefig, write_csv

NAME = "temperature"
COLUMNS = ("n", "temperature", "flow", "risk_mean", "risk_se", "num_sets")
TEMPERATURES = (0.5, 1.0, 2.0, 4.0)
D, K, T_STOP = 20, 4, 0.5
NS = (2, 4, 8, 12, 16)
QUICK_NS = (4, 12)


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_sets: int | None = None,
        ns=None, temperatures=TEMPERATURES, d: int = D, num_classes: int = K, t_stop: float = T_STOP,
        num_test: int | None = None) -> list[dict]:
    """Risk vs n for each temperature, converged and stopped flows.  Defaults:
    d = 20, K = 4, n in {2, 4, 8, 12, 16}, 200 sets per point and 10,000
    test inputs (16 sets, n in {4, 12} and 2,000 test inputs with ``quick``).
    The full run compiles two programs per (n, T) point (T is static in the
    targets), a large part of its cost: 40 programs, 6.6 minutes measured on a
    loaded 2-core CPU; hence 5 sizes and 200 sets (SE ~0.003) rather than more."""
    from ..multiclass import MultiClassGaussianTask, MultiTargetSpec, make_softmax_learner
    from ..simulate import distill
    from ..students import FlowConfig

    num_sets = num_sets or (16 if quick else 200)
    num_test = num_test or (2000 if quick else 10_000)
    ns = tuple(int(n) for n in (ns or (QUICK_NS if quick else NS)))
    temperatures = tuple(float(t) for t in temperatures)
    grid = Grid(out_dir, NAME, {"seed": seed, "quick": quick, "num_sets": num_sets, "ns": list(ns),
                                "temperatures": list(temperatures), "d": d, "num_classes": num_classes,
                                "t_stop": t_stop, "num_test": num_test})
    task = MultiClassGaussianTask(d, num_classes, seed=seed)
    learners = {"converged": make_softmax_learner("flow"),
                "stopped": make_softmax_learner("flow", flow=FlowConfig(t_max=t_stop))}

    def compute(key):
        n, T = (float(v.split("=")[1]) for v in key.split("_"))
        rows = []
        for flow, learner in learners.items():
            res = distill(seed, task, int(n), num_sets, learner=learner, num_test=num_test,
                                     targets=MultiTargetSpec("soft", T), chunk_size=num_sets, keep_students=False)
            risk = np.asarray(res.arrays["risk"], float)
            if flow == "converged":
                risk = risk[res.ok]
            rows.append({"n": int(n), "temperature": T, "flow": flow, "risk_mean": float(risk.mean()),
                         "risk_se": float(risk.std(ddof=1) / np.sqrt(len(risk))) if len(risk) > 1 else float("nan"),
                         "num_sets": int(len(risk))})
        return rows

    rows = grid.run([f"n={n}_T={T:g}" for n in ns for T in temperatures], compute, progress=progress)
    write_csv(grid.out / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, grid.out / f"{NAME}.png", d=d, num_classes=num_classes, t_stop=t_stop)
    return rows


def plot(rows, path, *, d=D, num_classes=K, t_stop=T_STOP):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    temps = sorted({r["temperature"] for r in rows})
    for ax, flow in zip(axes, ("converged", "stopped")):
        for T in temps:
            rs = sorted((r for r in rows if r["flow"] == flow and r["temperature"] == T), key=lambda r: r["n"])
            ax.errorbar([r["n"] for r in rs], [r["risk_mean"] for r in rs], yerr=[r["risk_se"] for r in rs],
                        fmt="o-", ms=3, capsize=2, label=f"T = {T:g}")
        ax.set_xlabel("n (transfer set size)")
        ax.set_title(f"{flow} flow" + ("" if flow == "converged" else f" (t = {t_stop:g})"))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("transfer risk")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Soft targets at temperature T (d={d}, K={num_classes})", fontsize=10)
    savefig(fig, path)


def summary_rows(rows):
    return rows
