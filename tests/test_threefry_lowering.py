"""The runner compiles its chunk programs with JAX's unrolled threefry
lowering on the CPU (jaxdistill/threefry_lowering.py): the same bits, so the
same per-set outputs bit for bit, and the caller's own programs keep JAX's
CPU rule outside the runner."""

from __future__ import annotations

import contextlib
import threading

import jax
import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill import runner
from jaxdistill.threefry_lowering import AVAILABLE, unrolled_threefry


def _hlo_of_bits() -> str:
    """StableHLO text of a fresh jitted draw (a new function: no cache hit)."""
    return jax.jit(lambda k: jax.random.bits(k, (7, 3))).lower(jax.random.key(0)).as_text()


@pytest.mark.skipif(not AVAILABLE or jax.default_backend() != "cpu",
                    reason="needs the CPU backend and a JAX version with these lowering tables")
def test_context_switches_the_cpu_lowering_and_restores_it():
    from jax.extend.random import threefry2x32_p
    from jax.interpreters import mlir

    table = mlir._platform_specific_lowerings["cpu"]
    cpu_rule = table[threefry2x32_p]
    assert "stablehlo.while" in _hlo_of_bits()  # JAX's CPU rule: 5 rolled steps
    with unrolled_threefry():
        assert threefry2x32_p not in table
        with unrolled_threefry():  # reentrant: the inner exit keeps the generic rule
            pass
        assert threefry2x32_p not in table
        assert "stablehlo.while" not in _hlo_of_bits()  # the generic rule: 20 rounds written out
    assert table[threefry2x32_p] is cpu_rule
    assert "stablehlo.while" in _hlo_of_bits()


@pytest.mark.skipif(not AVAILABLE, reason="this JAX version keeps its lowering tables elsewhere")
def test_context_is_thread_safe():
    from jax.extend.random import threefry2x32_p
    from jax.interpreters import mlir

    table = mlir._platform_specific_lowerings["cpu"]
    cpu_rule = table[threefry2x32_p]
    barrier = threading.Barrier(4)

    def worker():
        for i in range(50):
            with unrolled_threefry():
                if i == 0:  # all four threads inside at once
                    barrier.wait(timeout=10)
                assert threefry2x32_p not in table

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert table[threefry2x32_p] is cpu_rule


def test_bits_are_equal_under_both_lowerings():
    key = jax.random.key(123)
    rolled = np.asarray(jax.jit(lambda k: jax.random.normal(k, (5, 9)))(key))
    with unrolled_threefry():
        unrolled = np.asarray(jax.jit(lambda k: jax.random.normal(k, (5, 9)))(key))
    np.testing.assert_array_equal(rolled, unrolled)


# The reference workloads of tests/test_refactor_numbers.py (flows, closed form, hard targets,
# Monte-Carlo risk, pools, w_delta, deep students; inputs sampler) were recorded before the runner
# used the unrolled lowering and are still reproduced bit for bit.  These two runs cover the Gram
# sampler (its gamma and normal draws), which those workloads do not use.
@pytest.mark.parametrize("kwargs", [
    dict(method="closed-form", sampler="gram"),
    dict(learner=jd.WDeltaLearner(0.3), sampler="gram"),
], ids=["closed-form-gram", "wdelta-gram"])
def test_runs_are_equal_bit_for_bit_under_both_lowerings(monkeypatch, kwargs):
    task = jd.KappaPolynomialTask(12, 1.5)
    jax.clear_caches()
    unrolled = jd.distill(3, task, 5, 40, **kwargs)
    monkeypatch.setattr(runner, "unrolled_threefry", contextlib.nullcontext)
    jax.clear_caches()
    rolled = jd.distill(3, task, 5, 40, **kwargs)
    assert set(unrolled.arrays) == set(rolled.arrays)
    for name in unrolled.arrays:
        np.testing.assert_array_equal(unrolled.arrays[name], rolled.arrays[name], err_msg=name)
