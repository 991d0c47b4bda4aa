"""Issue 6: compilation behaviour (speed itself is measured in benchmarks/)."""

from typing import ClassVar

import numpy as np

import jaxdistill as jd
from jaxdistill.students.base import AbstractBinaryLearner, FlowLearner

TRACES = []


class CountingLearner(AbstractBinaryLearner):
    """A flow learner that records every time JAX traces (compiles) it."""

    name: ClassVar[str] = "flow"

    def fit_logits(self, key, X, u):
        TRACES.append(X.shape)
        return FlowLearner().fit_logits(key, X, u)

    def check_targets(self, targets):
        pass


def test_no_recompilation_when_only_B_seed_or_data_change():
    learner = CountingLearner()
    task = jd.KappaPolynomialTask(40, 1.0)
    jd.distill(0, task, 6, 8, learner=learner, chunk_size=8)
    assert len(TRACES) == 1
    jd.distill(1, task, 6, 8, learner=learner, chunk_size=8)  # new seed
    jd.distill(2, task, 6, 21, learner=learner, chunk_size=8)  # new B (3 chunks, last padded)
    other = jd.KappaPolynomialTask(40, 1.0, w_star=np.random.default_rng(0).normal(size=40))  # new teacher data
    jd.distill(0, other, 6, 5, learner=learner, chunk_size=8)
    rng = np.random.default_rng(1)
    pool_a = jd.PoolTask(rng.normal(size=(50, 40)), rng.normal(size=40))
    pool_b = jd.PoolTask(rng.normal(size=(50, 40)), rng.normal(size=40))
    jd.distill(0, pool_a, 6, 8, learner=learner, chunk_size=8)
    n_before = len(TRACES)
    jd.distill(0, pool_b, 6, 8, learner=learner, chunk_size=8)  # new pool data, same shapes
    assert len(TRACES) == n_before == 2  # one trace per task type, none for seed / B / data
