"""Small workloads whose numbers were saved from the code before the
one-engine refactor (tests/data/engine_reference_*.npz); the refactor must
reproduce them bit for bit (issue: "Nothing changes numerically").

Only public API that existed before and after the refactor is used, so the
same function produced the saved file (run on the old checkout) and runs in
the test.  ``python tests/reference_workloads.py OUT.npz`` writes a file.
"""

from __future__ import annotations

import sys

import numpy as np


def compute() -> dict[str, np.ndarray]:
    import jaxdistill as jd
    from jaxdistill.analysis.monotonicity import monotonicity_index
    from jaxdistill.experiments.curves import learner_risks
    from jaxdistill.experiments.fig4 import w_delta_risks
    from jaxdistill.students.hard import HardTargetLearner
    from jaxdistill.students.wdelta import WDeltaLearner

    out: dict[str, np.ndarray] = {}

    def distill(*args, **kwargs):
        # the recorded runs drew the inputs and kept the students (the defaults of the day); a hard-target flow
        # ran to its default horizon 1e20, which a flow on hard targets now has to be given (t_end)
        return jd.distill(*args, sampler="inputs", keep_students=True, **kwargs)

    def put(prefix, res):
        for k in ("students", "status", "num_steps", "loss", "angle", "risk", "risk_se", "rel_dist_closed_form"):
            v = getattr(res, k)
            if v is not None:
                out[f"{prefix}/{k}"] = np.asarray(v)
        for k, v in res.extras.items():
            out[f"{prefix}/extra_{k}"] = np.asarray(v)

    kappa = jd.KappaPolynomialTask(200, 1.0)
    put("flow", distill(0, kappa, n=10, num_sets=48))
    put("closed_form", distill(0, kappa, n=10, num_sets=48, method="closed-form"))
    put("gd", distill(1, jd.KappaPolynomialTask(30, 2.0), n=6, num_sets=16, method="gd", gd=jd.GDConfig(steps=300)))
    put("hard", distill(2, jd.AngularMarginTask(30, 0.2), n=8, num_sets=16, targets=jd.TargetSpec("hard"),
                        flow=jd.FlowConfig(t_end=1e20)))
    put("mc", distill(3, jd.GaussianTask(np.diag(np.linspace(0.5, 2.0, 12))), n=6, num_sets=16, risk="mc",
                         num_test=500))
    put("float32", distill(4, jd.KappaPolynomialTask(50, 1.0), n=8, num_sets=16, dtype="float32"))
    put("wdelta", distill(5, jd.KappaPolynomialTask(50, 1.0), n=8, num_sets=16, learner=WDeltaLearner(0.25)))
    small = jd.KappaPolynomialTask(10, 1.0)
    put("deep2_reduced", distill(6, small, n=3, num_sets=4, learner=jd.DeepLearner(depth=2)))
    put("deep3_induced", distill(6, small, n=3, num_sets=4,
                                    learner=jd.DeepLearner(depth=3, integrator="induced")))
    rng = np.random.default_rng(0)
    pool = jd.PoolTask(rng.normal(size=(120, 12)), np.ones(12), test_inputs=rng.normal(size=(200, 12)))
    put("pool", distill(7, pool, n=8, num_sets=16))
    mono = jd.KappaPolynomialTask(50, 1.0)
    for name, task, learner, targets in [
        ("mono_flow", mono, None, jd.TargetSpec()),
        ("mono_wdelta", mono, WDeltaLearner(1 / 16), jd.TargetSpec()),
        ("mono_hard", mono, HardTargetLearner(), jd.TargetSpec("hard")),
        ("mono_pool", pool, None, jd.TargetSpec()),
    ]:
        est = monotonicity_index(8, task, 5, 24, learner, targets, sampler="inputs")  # the recorded pairs drew inputs
        out[f"{name}/angle_changes"] = np.asarray(est.angle_changes)
        out[f"{name}/scalars"] = np.array([est.index, est.se, est.num_sets, est.risk_X_mean, est.risk_X_se,
                                           est.nonincreasing])
    for j, (r, ok) in enumerate(w_delta_risks(9, jd.mnist01_task(seed=0), 20, 8, (0.0, 10.0, 50.0))):
        out[f"fig4/risk{j}"] = np.asarray(r)
        out[f"fig4/ok{j}"] = np.asarray(ok)
    r, ok = learner_risks(10, jd.KappaPolynomialTask(20, 1.0), 8, 16)
    out["curves/risk"] = np.asarray(r)
    out["curves/ok"] = np.asarray(ok)
    return out


if __name__ == "__main__":
    import jax

    arrays = compute()
    np.savez_compressed(sys.argv[1], jax_version=np.array(jax.__version__), **arrays)
    print(f"saved {len(arrays)} arrays (jax {jax.__version__}) to {sys.argv[1]}")
