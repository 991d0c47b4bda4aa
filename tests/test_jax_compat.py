"""Regression tests for the jax/jaxlib CPU deadlocks described in
docs/jax-cpu-lapack-deadlock.md, run on whatever jax is installed.

jaxlib 0.10.x splits every batched LAPACK call along the batch dimension over
XLA's CPU thread pool and blocks the calling pool thread until the pieces are
done; when as many such calls are in flight as the pool has threads, nobody is
left to run the pieces and the program hangs (jaxlib 0.9.1-0.9.2 do the same
for batched SVD, already with one thread).  The reproducer pattern -- a jitted,
vmapped function over a batch of 256 transfer sets that issues a batched QR and
a batched Cholesky (or a Householder product and a triangular solve, or a
batched SVD) -- is run here through the library's own entry points, each in a fresh subprocess with a timeout:

* restricted to two CPUs (the 2-core machine of the report; on a 2-core
  machine this is the default configuration) and
* restricted to one CPU (``taskset -c 0``).

The child calls ``os.sched_setaffinity`` before importing jax, which is what
``taskset`` does (XLA sizes its thread pool from the affinity mask), so no
``taskset`` binary is needed.

The child runs on the CPU backend with XLA_FLAGS unset (the user's default
configuration, not the test suite's).  A working run takes seconds; the
timeout is generous so that a busy machine does not fail it, and a hang shows
up as a timeout, not as a stuck suite.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest

TIMEOUT_S = 240

CASES = {
    # Flow students (batched Cholesky) checked against the closed form (batched QR).
    "distill": """
        import jaxdistill as jd
        res = jd.distill(0, jd.KappaPolynomialTask(1000, 1.0), n=20, num_sets=256, chunk_size=256, risk="exact")
        s = res.summary()
        print("RESULT", s["risk_mean"], s["num_failed"])
    """,
    # n > d: the closed form's least-squares step (a batched SVD in jnp.linalg.lstsq; jaxlib
    # 0.9.1-0.9.2 parallelise batched SVD even on one CPU, and hang there).
    "distill_n_gt_d": """
        import jaxdistill as jd
        res = jd.distill(0, jd.KappaPolynomialTask(10, 1.0), n=20, num_sets=256, chunk_size=256,
                         method="closed-form", risk="exact")
        s = res.summary()
        print("RESULT", s["risk_mean"], s["num_failed"])
    """,
    # Flow students on nested sets X and [X; x].
    "monotonicity": """
        import jaxdistill as jd
        from jaxdistill.analysis import monotonicity_index
        est = monotonicity_index(0, jd.KappaPolynomialTask(1000, 1.0), n=20, num_sets=256, chunk_size=256)
        assert 0.0 <= est.index <= 1.0, est.index
        print("RESULT", est.risk_X_mean, est.num_failed)
    """,
    # A flow to a finite time (t_end: no steady-state event) from a Gram matrix: the solver's
    # loop (batched LU) is ordered after the Cholesky of the stopping test by a data dependency;
    # kernel students (rbf, K = 2, hard and soft targets) on 256 sets.
    "kernel_t_end": """
        import numpy as np
        import jaxdistill as jd
        from jaxdistill.multiclass import MultiTargetSpec, make_softmax_learner
        from jaxdistill.nonlinear import KernelLearner, RBFKernel, ReluTeacherTask
        from jaxdistill.students import FlowConfig
        learner = KernelLearner(RBFKernel(3.0), make_softmax_learner("flow", flow=FlowConfig(t_end=100.0)))
        res = jd.distill(0, ReluTeacherTask(10, 32), 40, 256, learner=learner, chunk_size=256,
                                 targets=MultiTargetSpec(kind="hard"), num_test=1000)
        s = res.summary()
        print("RESULT", s["risk_mean"], s["num_failed"])
    """,
    # Figure 4's w_delta path on MNIST 0/1 (batched QR, Householder product and triangular solve).
    "fig4_w_delta": """
        import numpy as np
        import jaxdistill as jd
        from jaxdistill.experiments import fig4
        out = fig4.w_delta_risks(0, jd.mnist01_task(), n=100, num_sets=256, deltas=(0.0, 50.0), chunk_size=256)
        risks, ok = out[-1]
        risks, ok = np.asarray(risks), np.asarray(ok)
        print("RESULT", float(np.mean(risks[ok])) if ok.any() else float("nan"), int((~ok).sum()))
    """,
}


def _cpus(count: int):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity control on this platform (taskset equivalent)")
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < count:
        pytest.skip(f"needs {count} CPUs, this process may use {len(allowed)}")
    return set(allowed[:count])


def _run(code: str, cpus: set[int]) -> tuple[float, int, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    # The child restricts itself to `cpus` before it imports jax, as `taskset` would (a preexec_fn
    # would fork this multithreaded, jax-loaded process).
    code = f"import os\nos.sched_setaffinity(0, {sorted(cpus)!r})\n" + textwrap.dedent(code)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no result within {TIMEOUT_S} s on CPUs {sorted(cpus)}: the batched-LAPACK thread-pool "
                    "deadlock of docs/jax-cpu-lapack-deadlock.md", pytrace=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    _, value, failed = line.split()
    return float(value), int(failed), proc.stderr


@pytest.mark.parametrize("num_cpus", [2, 1], ids=["2cpus", "1cpu"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_batched_lapack_does_not_deadlock(case, num_cpus):
    value, failed, _ = _run(CASES[case], _cpus(num_cpus))
    assert math.isfinite(value), (case, value)
    assert failed == 0, (case, failed)
