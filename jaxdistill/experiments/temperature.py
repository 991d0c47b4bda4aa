"""Temperature (docs/design.md fact 10): transfer risk vs n of linear
softmax students distilled from a K-class teacher with soft targets
softmax(u / T), for T in {0.5, 1, 2, 4}.

Two students per transfer set: the gradient flow run to convergence (its
limit is the closed form divided by T, so its predicted classes, and hence
its risk, do not depend on T) and the same flow stopped at the fixed time
``t_stop`` (``--t-end``, status "finite_horizon"; its predictions do depend
on T).  Every T uses the same transfer sets (the same seed), so the
converged risks agree exactly, up to ties of the argmax.

A sweep (``OUT/temperature_sweep/``) over n x temperature x t_end (None:
converged; ``t_stop``: stopped), each point ``jaxdistill run --task gaussian
--d 20 --classes 4 --task-seed SEED --method flow --num-test M``.  Task:
``MultiClassGaussianTask(d, K)`` (x ~ N(0, I_d), K random teacher rows);
risk: argmax disagreement with the teacher on ``num_test`` held-out inputs,
averaged over the successful transfer sets.  The temperature is a traced
setting, so the flows of all temperatures share one compiled program per n
and flow.

Columns: n, temperature, flow ("converged" / "stopped"), risk_mean,
risk_se, num_sets.
"""

from __future__ import annotations

from pathlib import Path

from ._common import pyplot, run_study, savefig, write_csv

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
    test inputs (16 sets, n in {4, 12} and 2,000 test inputs with ``quick``)."""
    num_sets = num_sets or (16 if quick else 200)
    num_test = num_test or (2000 if quick else 10_000)
    grid = {"n": [int(n) for n in (ns or (QUICK_NS if quick else NS))],
            "temperature": [float(t) for t in temperatures], "t_end": [None, float(t_stop)]}
    study = run_study(out_dir, NAME, grid=grid, progress=progress, task="gaussian", d=d, classes=num_classes,
                      task_seed=seed, seed=seed, method="flow", num_sets=num_sets, num_test=num_test,
                      chunk_size=num_sets)
    rows = [row_of(r) for r in study.table]
    write_csv(Path(out_dir) / f"{NAME}.csv", rows, COLUMNS)
    plot(rows, Path(out_dir) / f"{NAME}.png", d=d, num_classes=num_classes, t_stop=t_stop)
    return rows


def row_of(point: dict) -> dict:
    """The temperature.csv row of a sweep row (t_end None: the converged flow)."""
    return {"n": point["n"], "temperature": point["temperature"],
            "flow": "converged" if point["t_end"] is None else "stopped", "risk_mean": point["risk_mean"],
            "risk_se": point["risk_se"], "num_sets": point["num_sets"]}


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
