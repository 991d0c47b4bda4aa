"""Figure 3 (section 5.1, data geometry): expected transfer risk of the
distilled linear student vs kappa, on the kappa-polynomial tasks with
d = 1000 and n = 20, with the Theorem 3 bound (eq. 19) beside it.

Learner: the gradient flow of eq. 3 (``FlowLearner``, diffrax, to its
steady state; ``soft_learner="closed-form"`` uses its Thm 1 limit instead).
Risk: exact (docs/design.md fact 3, no test-set noise); risk_se is the standard
error of the mean over transfer sets.  bound: min over beta of
p(beta) + p(pi/2 - beta)^n with the exact p of the task.

Columns: kappa, risk_mean, risk_se, num_sets, bound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import pyplot, run_study, savefig, write_csv

NAME = "fig3"
COLUMNS = ("kappa", "risk_mean", "risk_se", "num_sets", "bound")
KAPPAS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
D, N = 1000, 20


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_sets: int | None = None,
        kappas=KAPPAS, d: int = D, n: int = N, soft_learner: str = "flow") -> list[dict]:
    """Risk vs kappa: a sweep over kappa (``OUT/fig3_sweep/``).  Defaults: the
    paper's d = 1000, n = 20; 1000 transfer sets per kappa (100 with ``quick``)."""
    from ..validation import check_choice

    check_choice("soft_learner", soft_learner, ("flow", "closed-form"))
    num_sets = num_sets or (100 if quick else 1000)
    study = run_study(out_dir, NAME, grid={"kappa": [float(k) for k in kappas]}, with_bound=True, progress=progress,
                      task="kappa", d=d, n=n, num_sets=num_sets, seed=seed, method=soft_learner,
                      chunk_size=min(250, num_sets))
    rows = [{**{c: r[c] for c in COLUMNS}, "num_failed": r["num_failed"],
             "max_rel_dist_closed_form": res.summary()["max_rel_dist_closed_form"]}
            for r, res in zip(study.table, study.results)]
    write_csv(Path(out_dir) / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, Path(out_dir) / f"{NAME}.png", n=n, d=d)
    return rows


def plot(rows, path, *, n=N, d=D):
    plt = pyplot()
    k = np.array([r["kappa"] for r in rows])
    m = np.array([r["risk_mean"] for r in rows])
    se = np.array([r["risk_se"] for r in rows])
    b = np.array([r["bound"] for r in rows])
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    pos = m > 0
    ax.errorbar(k[pos], m[pos], yerr=np.minimum(se[pos], 0.999 * m[pos]), fmt="o-", ms=4, capsize=3,
                label="distilled student (gradient flow), mean $\\pm$ SE")
    ax.plot(k, b, "s--", ms=3, color="gray", label="Theorem 3 bound (eq. 19)")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\kappa$ (angular alignment)")
    ax.set_ylabel("expected transfer risk")
    ax.set_title(f"Fig. 3: risk vs data geometry (d={d}, n={n})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    savefig(fig, path)


def summary_rows(rows):
    return rows
