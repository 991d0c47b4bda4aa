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

import numpy as np

from ._common import Grid, pyplot, savefig, write_csv

NAME = "fig3"
COLUMNS = ("kappa", "risk_mean", "risk_se", "num_sets", "bound")
KAPPAS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
D, N = 1000, 20


def run(out_dir, *, seed: int = 0, quick: bool = False, progress: bool = True, num_sets: int | None = None,
        kappas=KAPPAS, d: int = D, n: int = N, soft_learner: str = "flow") -> list[dict]:
    """Risk vs kappa.  Defaults: the paper's d = 1000, n = 20; 1000 transfer
    sets per kappa (100 with ``quick``)."""
    from ..analysis.bounds import thm3_bound
    from ..simulate import distill, make_learner
    from ..tasks import KappaPolynomialTask
    from ..validation import check_choice

    check_choice("soft_learner", soft_learner, ("flow", "closed-form"))
    num_sets = num_sets or (100 if quick else 1000)
    kappas = tuple(float(k) for k in kappas)
    grid = Grid(out_dir, NAME, {"seed": seed, "quick": quick, "num_sets": num_sets, "kappas": list(kappas), "d": d,
                                "n": n, "soft_learner": soft_learner})

    def compute(key):
        kappa = float(key.split("=")[1])
        task = KappaPolynomialTask(d, kappa)
        res = distill(seed, task, n, num_sets, learner=make_learner(soft_learner), chunk_size=min(250, num_sets),
                      keep_students=False)
        est = res.expected_risk()
        s = res.summary()
        b = float(thm3_bound(task.p_theta, n, d).bound)
        return [{"kappa": kappa, "risk_mean": est.mean, "risk_se": est.se, "num_sets": est.num_sets, "bound": b,
                 "num_failed": s["num_failed"], "max_rel_dist_closed_form": s["max_rel_dist_closed_form"]}]

    rows = grid.run([f"kappa={k:g}" for k in kappas], compute, progress=progress)
    write_csv(grid.out / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, grid.out / f"{NAME}.png", n=n, d=d)
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
                label=f"distilled student (gradient flow), mean $\\pm$ SE")
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
