"""Issue 10, point 7: nothing changes numerically.

``tests/data/engine_reference_jax<version>.npz`` hold the numbers of the
workloads in ``tests/reference_workloads.py`` computed by the code BEFORE
the one-engine refactor (commit 907a69b), on jax 0.6.2 and on jax 0.10.2
(XLA's kernels differ between jax versions in the last bits, ~1e-12, so a
file is recorded per version).  On a recorded version the refactored code
must reproduce every array bit for bit; on any other jax version the
float64 results must agree to 1e-7 relative (float32 workloads skipped).

Two later, deliberate changes re-recorded a few keys (from the code after
them, same workloads): Monte-Carlo and pool risks average in the working
dtype instead of float32 (``mc/risk*``, ``pool/risk``, ``mono_pool/scalars``,
``fig4/risk*``: ~1e-8 relative), and the induced / full deep integrators use
tight default tolerances so their limits are exact to 1e-8 (``deep3_induced/*``).
A third (2026-11-30) re-recorded every key a default-solver flow computes
(``flow``, ``hard``, ``mc``, ``float32``, ``pool``,
``mono_flow``, ``mono_pool``; ``deep3_induced``'s balancedness defects moved at the
1e-18 rounding level; the deep reduced integrator kept Kvaerno3, so ``deep2_reduced`` is
still the original): the default solver became the Rosenbrock
``Rodas3`` (docs/design.md fact 14) and soft-label flows got the horizon 1e35.
Against the previous numbers: steady-state students and angles agree to the
stopping test (angles to 4e-11, every
status unchanged); the hard-label flows, which stop at t = 1e20 with a
loose rtol (1e-2), moved by up to 1.4e-2 in angle (their trajectory
error, not a limit); step counts fell by about 25%.  The same commit
re-recorded ``float32/risk`` (the float32 exact-risk quadrature takes its
log-Beta constant in double precision: ~1e-5 relative here, a factor 2.4 at
d = 1e6).  A fourth (later the same day) re-recorded the keys whose rounding
moved when the flows began to hand Rodas3 their Jacobian in closed form
(``rosenbrock.FieldWithJacobian``) instead of ``jax.jacfwd``: ``flow``,
``mc`` and ``pool`` only in ``extra_t_final`` (1e-12 relative), the
hard-label flows by up to 7e-11 in students and angles (1e-8 in loss),
``float32`` within its rounding (1e-4 in the students).  Record with the test suite's XLA_FLAGS (tests/conftest.py): the
rounding of a few diagnostics (``*newton_rel``, balancedness defects) depends
on Eigen's threading.

A fifth (issue 21) re-recorded, in the jax 0.6.2 file only, the keys fed by the
exact-risk quadrature: ``flow/risk``, ``closed_form/risk``, ``gd/risk``,
``hard/risk``, ``wdelta/risk``, ``deep2_reduced/risk``, ``deep3_induced/risk``,
``curves/risk``, ``mono_flow/scalars`` (its risk_X mean and SE) and
``mono_hard/scalars`` (its risk_X SE), all by 2e-16 to 7e-15 relative, nothing
else.  The file had been recorded with jax 0.6.2 beside numpy 2.x, while the
lowest-versions environment it is checked in (.ci/run-lowest,
.ci/lowest-constraints.txt) has numpy 1.26.4: the tanh-sinh nodes and weights of
the quadrature (``tasks.riskmath._tanh_sinh``) come from numpy's sinh, cosh and
tanh, whose last bit depends on the numpy version and, for numpy 1.26, on the
CPU (its AVX-512 SVML kernels; 67 of the 202 numbers move without AVX-512).
Record the 0.6.2 file in that environment.  The file also holds the nodes it
was recorded with (``quadrature_nodes``): where today's differ (another numpy
or CPU), the keys they feed are compared to 1e-13 relative instead of bit for
bit (one-ulp node changes move them by < 1e-14), every other key still exactly.
Every other array is still the pre-refactor code's, bit for bit.

A sixth (2026-12-05) re-recorded, in both files, every key whose last bits moved when the
runner began to compute each device's share of a chunk in lanes of a fixed number of sets
(``runner.lane_size``: 16 on the CPU) instead of one vmap over the whole chunk: XLA orders
the sums inside a vmapped computation by its batch shape, and the recorded workloads ran in
chunks of other sizes.  Against the previous numbers: angles and risks by at most 4e-15
absolute (hard-label flows, stopped at t = 1e20 with rtol 1e-2: 4e-13 in angle, 6e-10 in
the students), the float32 workload within float32 rounding (2e-4 relative in a student
coordinate), diagnostics such as ``extra_t_final`` and ``extra_newton_rel`` at their own
rounding; no status, step count or integer output moved.

A seventh (2026-12-05) re-recorded, in both files, ``deep2_reduced/*`` and ``deep3_induced/*``:
``DeepLearner`` refuses a width with the reduced and induced integrators (they never form the
factors), so these workloads no longer give width 4 and draw their balanced initialisation at the
default width 64.  w(0) = init_scale v does not depend on the width, but the product of unit
vectors that forms it rounds differently: students moved by 6e-15 relative (reduced) and 1e-11
absolute (induced, whose limit is exact to 1e-8), losses and balancedness defects by 1e-16
absolute; no status or step count moved.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from jaxdistill.tasks.riskmath import _tanh_sinh
from reference_workloads import compute

DATA = Path(__file__).parent / "data"
RECORDED = {p.stem.split("_jax")[1]: p for p in DATA.glob("engine_reference_jax*.npz")}
# keys (by their part after "/") computed from exact risks, i.e. from the quadrature's nodes
QUADRATURE_FED = ("risk", "risk_se", "scalars")


@pytest.fixture(scope="module")
def now():
    return compute()


def test_same_numbers_as_before_the_refactor(now):
    version = jax.__version__
    exact = version in RECORDED
    path = RECORDED.get(version) or RECORDED[max(RECORDED, key=lambda v: tuple(int(p) for p in v.split(".")))]
    with np.load(path) as z:
        ref = {k: z[k] for k in z.files if k not in ("jax_version", "quadrature_nodes")}
        nodes = z["quadrature_nodes"] if "quadrature_nodes" in z.files else None
    assert set(ref) <= set(now), f"missing outputs: {sorted(set(ref) - set(now))}"
    # the exact-risk quadrature's nodes come from numpy's transcendental functions (module docstring)
    same_nodes = nodes is None or np.array_equal(nodes, np.stack(_tanh_sinh()))
    mismatches = []
    for k, want in ref.items():
        got = now[k]
        if exact and not same_nodes and k.split("/")[1] in QUADRATURE_FED:
            if not (got.shape == want.shape and np.allclose(got, want, rtol=1e-13, atol=0, equal_nan=True)):
                mismatches.append(k)
        elif exact:
            if not (got.shape == want.shape and np.array_equal(got, want, equal_nan=True)):
                mismatches.append(k)
        elif not k.startswith("float32/") and want.dtype.kind == "f" and k.split("/")[1] in (
                "students", "risk", "angle", "angle_changes", "risk0", "risk1", "risk2"):
            if not np.allclose(got, want, rtol=1e-7, atol=1e-12, equal_nan=True):
                mismatches.append(k)
        elif want.dtype.kind in "iub" and not k.startswith("float32/") and "num_steps" not in k:
            if not np.array_equal(got, want):
                mismatches.append(k)
    assert not mismatches, f"differ from {path.name} ({'bitwise' if exact else 'rtol 1e-7'}): {mismatches}"
