"""Issue 11, Must hold 4: the exact transfer risk of the kappa task (docs/design.md
fact 3, tanh-sinh quadrature over t = <v, e_phi>) against an independent
high-precision integration: scipy.integrate.quad over the input's angle to the
teacher instead of over t, with the regularised incomplete beta function for the
law of t.  For a student at angle phi <= pi/2 an input at unsigned angle theta is
misclassified iff t < -cot(theta) cot(phi), so with s = 1 - 2 theta / pi
(density kappa s^(kappa-1), eq. 17) and v = s^kappa,

    R(phi) = int_0^{(2 phi / pi)^kappa} I_{(1 - tan(pi s / 2) cot phi) / 2}((d-2)/2, (d-2)/2) dv,

and R(pi - phi) = 1 - R(phi).  Claim checked: below 1e-12 absolute, and 1e-10
relative wherever min(R, 1 - R) >= 1e-2, for d = 3, 20, 1000 and kappa 0.5 .. 5.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill import precision

integrate = pytest.importorskip("scipy.integrate")
special = pytest.importorskip("scipy.special")

PHIS = [1e-3, 0.01, 0.1, 0.5, 1.0, 1.5, math.pi / 2, 2.0, 3.0, 3.14]


def reference_risk(phi: float, d: int, kappa: float) -> float:
    if phi > math.pi / 2:
        return 1.0 - reference_risk(math.pi - phi, d, kappa)
    if phi == 0.0:
        return 0.0
    a = (d - 2) / 2
    cot = 1.0 / math.tan(phi)

    def f(v):
        c = math.tan(math.pi * v ** (1.0 / kappa) / 2) * cot
        return 0.0 if c >= 1 else float(special.betainc(a, a, (1 - c) / 2))

    vmax = (2 * phi / math.pi) ** kappa
    # break points where t's law changes fastest (|t| ~ k / sqrt(d))
    pts = sorted({((2 / math.pi) * math.atan(k / math.sqrt(d) * math.tan(phi))) ** kappa
                  for k in (0.25, 0.5, 1, 2, 3, 4, 6, 8)})
    pts = [p for p in pts if p < vmax] or None
    val, _ = integrate.quad(f, 0.0, vmax, points=pts, epsabs=1e-15, epsrel=1e-13, limit=1000)
    return val


@pytest.mark.parametrize("d", [3, 20, 1000])
@pytest.mark.parametrize("kappa", [0.5, 1.0, 2.0, 5.0])
def test_kappa_task_exact_risk_matches_independent_quadrature(d, kappa):
    task = jd.KappaPolynomialTask(d, kappa)
    with precision():
        lib = np.asarray(task.risk_from_angle(jnp.asarray(PHIS)))
    ref = np.array([reference_risk(p, d, kappa) for p in PHIS])
    err = np.abs(lib - ref)
    assert err.max() < 1e-12, (d, kappa, err.max())
    big = np.minimum(ref, 1 - ref) >= 1e-2
    assert np.all(err[big] <= 1e-10 * np.minimum(ref, 1 - ref)[big])


def test_risk_of_students_goes_through_the_same_quadrature():
    """task.exact_risk(W) of students at known angles equals R(angle)."""
    d, kappa = 20, 2.0
    task = jd.KappaPolynomialTask(d, kappa)
    e = np.asarray(task.w_star) / np.linalg.norm(np.asarray(task.w_star))
    v = np.zeros(d)
    v[np.argmin(np.abs(e))] = 1.0
    v -= (v @ e) * e
    v /= np.linalg.norm(v)
    phis = np.array([0.2, 1.0, 2.5])
    W = np.cos(phis)[:, None] * e + np.sin(phis)[:, None] * v
    with precision():
        lib = np.asarray(task.exact_risk(jnp.asarray(W)))
    ref = np.array([reference_risk(p, d, kappa) for p in phis])
    np.testing.assert_allclose(lib, ref, rtol=1e-10, atol=1e-12)
