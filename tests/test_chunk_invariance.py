"""Same numbers at any chunk size, on every path.

The runner computes each device's share of a chunk in lanes of
``runner.lane_size`` sets (one vmapped set program mapped over the lanes),
so every set is computed by a program of the same batch shape whatever the
chunk size; XLA orders the sums inside a vmapped computation by its batch
shape and by a set's place in it, so without lanes the last bits of a set's
numbers followed the chunk size.  Each case runs the same computation in
chunks of 7 sets (each computed in lanes that start before the chunk) and
of 40 (several lanes) and asserts every per-set output and the summary
equal bit for bit.  Several devices: tests/test_sharding.py."""

from __future__ import annotations

import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill import runner
from jaxdistill.analysis import monotonicity_index
from jaxdistill.nonlinear import KernelLearner, make_kernel

CHUNKS = (7, 40)  # one lane starting inside a lane; several lanes


def _same(runs: dict, what: str):
    first = runs[CHUNKS[0]]
    for c, r in runs.items():
        assert r.arrays.keys() == first.arrays.keys()
        for k, v in first.arrays.items():
            np.testing.assert_array_equal(r.arrays[k], v, err_msg=f"{what}: {k}, chunk {c} vs {CHUNKS[0]}")
        assert r.summary()["risk_mean"] == first.summary()["risk_mean"], what


def test_the_lane_is_fixed_on_the_cpu():
    assert runner.lane_size("cpu") == 16
    # every chunk is computed in whole lanes, set i at place i % 16 of lane i // 16, whatever the chunking
    for c in (1, 7, 16, 40, 512):
        for lo in range(0, 2000, c):
            start, batch = runner.chunk_window(lo, c, 1, 16)
            assert start % 16 == 0 and batch % 16 == 0 and start <= lo and lo + c <= start + batch


def test_the_issue_example_gram_path():
    """kappa 1, d = 200, n = 10, 512 sets, seed 5: chunks of 512 and of 64 once gave per-set angles
    0.08149037902768225 vs 0.08149037902768158 on the Gram sampler (the default)."""
    task = jd.KappaPolynomialTask(200, 1.0)
    a = jd.distill(5, task, 10, 512, chunk_size=512, method="closed-form")
    b = jd.distill(5, task, 10, 512, chunk_size=64, method="closed-form")
    np.testing.assert_array_equal(a.angle, b.angle)
    assert a.summary()["risk_mean"] == b.summary()["risk_mean"]


@pytest.mark.parametrize("case", ["gram_flow", "inputs_flow", "wdelta", "deep"])
def test_binary_paths(case):
    task = jd.KappaPolynomialTask(12, 1.0)
    kw = {"gram_flow": dict(method="flow"),
          "inputs_flow": dict(method="flow", sampler="inputs"),
          "wdelta": dict(learner=jd.WDeltaLearner(0.5)),
          "deep": dict(learner=jd.deep_learner(depth=2, epsilon=0.1), sampler="inputs")}[case]
    runs = {c: jd.distill(3, task, 6, 40, chunk_size=c, **kw) for c in CHUNKS}
    _same(runs, case)


def test_kclass_flow_and_kernel_student():
    task = jd.MultiClassGaussianTask(6, 3)
    for what, learner in (("K-class flow", jd.make_softmax_learner("flow")),
                          ("kernel student", KernelLearner(make_kernel("rbf", bandwidth=2.0)))):
        runs = {c: jd.distill(4, task, 4, 40, chunk_size=c, learner=learner, num_test=200) for c in CHUNKS}
        _same(runs, what)



def test_kclass_flow_with_unpivoted_inverses():
    """n = 16: the K class inverses of the stage solves by elimination without pivoting
    (``students.small_inverse``), elementwise over the lane."""
    task = jd.MultiClassGaussianTask(20, 3)
    runs = {c: jd.distill(4, task, 16, 40, chunk_size=c, method="flow", num_test=200) for c in CHUNKS}
    _same(runs, "K-class flow, n = 16")

@pytest.mark.parametrize("sampler", ["gram", "inputs"])
def test_monotonicity_index(sampler):
    task = jd.KappaPolynomialTask(12, 1.0)
    runs = {c: monotonicity_index(4, task, 5, 40, chunk_size=c, sampler=sampler) for c in CHUNKS}
    first = runs[CHUNKS[0]]
    for c, r in runs.items():
        np.testing.assert_array_equal(r.angle_changes, first.angle_changes, err_msg=f"chunk {c}")
        assert (r.index, r.se, r.num_sets) == (first.index, first.se, first.num_sets)
