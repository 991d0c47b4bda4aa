"""The CPU lane size of the runner (``runner.LANE_SIZES``): sets/s of
``jd.distill`` on four workloads with lanes of 16 (the default), of 64 and
without lanes (one vmap over each device's whole chunk), in one process,
each after its compilation, the three variants alternating per workload so
that a change of machine load hits all three.

    python -m benchmarks.lanes OUT.json [--quick]

Each number is the best of ``repeats`` timed runs of B sets in chunks of 256.
"""

from __future__ import annotations

import json
import sys
import time

from .machine import machine_meta


def workloads(quick: bool) -> list[tuple[str, dict]]:
    import jaxdistill as jd

    B = 256 if quick else 2048
    return [
        ("default workload: kappa 1, d 1000, n 20, flow, Gram sampler",
         dict(task=jd.KappaPolynomialTask(1000, 1.0), n=20, num_sets=B, method="flow")),
        ("closed form, inputs sampler, d 200, n 20",
         dict(task=jd.KappaPolynomialTask(200, 1.0), n=20, num_sets=B, method="closed-form", sampler="inputs")),
        ("K-class flow: Gaussian, K 3, d 20, n 10",
         dict(task=jd.MultiClassGaussianTask(20, 3), n=10, num_sets=B // 2, learner=jd.make_softmax_learner("flow"),
              num_test=1000)),
        ("kernel student: rbf, Gaussian K 3, d 10, n 40",
         dict(task=jd.MultiClassGaussianTask(10, 3), n=40, num_sets=B // 2,
              learner=jd.KernelLearner(jd.make_kernel("rbf", bandwidth=3.0)), num_test=1000)),
    ]


def main(out: str, quick: bool = False, repeats: int = 2) -> dict:
    import jaxdistill as jd
    from jaxdistill import runner

    variants = {"lanes of 16": 16, "lanes of 64": 64, "no lanes": None}
    default_lanes = dict(runner.LANE_SIZES)
    rows = []
    try:
        for label, kw in workloads(quick):
            kw = dict(kw)
            task, n, B = kw.pop("task"), kw.pop("n"), kw.pop("num_sets")
            row = {"workload": label, "num_sets": B}
            for name, lane in variants.items():
                if lane is None:
                    runner.LANE_SIZES.pop("cpu", None)
                else:
                    runner.LANE_SIZES["cpu"] = lane
                jd.distill(0, task, n, min(B, 256), chunk_size=256, progress=False, **kw)  # compile
                best = min(_timed(jd, task, n, B, kw, seed) for seed in range(1, repeats + 1))
                row[name] = B / best
            row["ratio 16 / no lanes"] = row["lanes of 16"] / row["no lanes"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:  # the runner's lanes as they were, whatever happened
        runner.LANE_SIZES.clear()
        runner.LANE_SIZES.update(default_lanes)
    result = {"rows": rows, **machine_meta()}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    return result


def _timed(jd, task, n, B, kw, seed) -> float:
    t = time.perf_counter()
    jd.distill(seed, task, n, B, chunk_size=256, progress=False, **kw)
    return time.perf_counter() - t


if __name__ == "__main__":
    main(sys.argv[1], quick="--quick" in sys.argv[2:])
