"""The paper's bounds (Thm 3, Cor. 1, Cor. 2, Thm D.1): hypotheses enforced, values against
independent closed forms and an independent minimiser (scipy), `jaxdistill bound` options.

Hypotheses (paper, Section 4.2 and Appendix D; docs/design.md fact 4):
  Thm 3   n >= 1, d >= 1 integers; p a probability (reverse CDF of eq. 17); eq. 18 needs X of
          full rank almost surely (not so for finite pools).
  Cor. 1  some beta with p(beta) = 0 and gamma = p(pi/2 - beta) < 1 (NaN otherwise).
  Cor. 2  kappa >= 0 and p(theta) <= c (1 - 2 theta / pi)^kappa on [0, pi/2]: p(0) = 1 forces
          c >= 1, the proof (c^n <= c) needs c <= 1, so c = 1.
  Thm D.1 n < d, 0 < epsilon <= ||w_hat|| / 2, delta = sqrt(2 pi epsilon / ||w_hat||).
"""

import inspect
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.analysis import bounds
from jaxdistill.analysis.bounds import cor1_bound, cor1_margin, cor2_bound, cor2_constant, thm3_bound, thm_d1_bound

HALF_PI = math.pi / 2


def p_kappa1(theta):
    """p of the kappa = 1 task (uniform angle), written out independently of the library."""
    return 1.0 - theta / HALF_PI


def scipy_min(f, lo, hi, grid=200_001, candidates=()):
    """Independent minimiser: a dense numpy grid, then scipy's bounded Brent around the best point,
    plus known candidates (kinks of f, where Brent only approaches the minimum)."""
    b = np.linspace(lo, hi, grid)
    v = f(b)
    i = int(np.argmin(v))
    a, c = b[max(i - 1, 0)], b[min(i + 1, grid - 1)]
    r = minimize_scalar(f, bounds=(a, c), method="bounded", options={"xatol": 1e-14})
    return min([float(r.fun), float(v[i])] + [float(f(np.array([x]))[0]) for x in candidates])


# ---------------------------------------------------------------- refusals (each names its parameter)

def test_cor2_refuses_c_other_than_one():
    for c in (2.0, 1.0 + 1e-9, 0.5):
        with pytest.raises(jd.JaxDistillError, match=r"c must be 1 \(allowed range: c = 1\)"):
            cor2_bound(5, 1.0, c)
    with pytest.raises(jd.JaxDistillError, match="c must be 1"):
        cor2_bound(5, 1.0, np.array([1.0, 1.5]))
    with pytest.raises(jd.JaxDistillError, match="kappa must be finite and >= 0"):
        cor2_bound(5, -0.5)
    with pytest.raises(jd.JaxDistillError, match="n must be an integer >= 1"):
        cor2_bound(0, 1.0)
    # under a trace the value of c is unknown: the result is flagged instead
    with precision():
        assert np.isnan(float(jax.jit(lambda c: cor2_bound(5, 1.0, c))(2.0)))
        assert float(jax.jit(lambda c: cor2_bound(5, 1.0, c))(1.0)) == pytest.approx(float(cor2_bound(5, 1.0)), rel=1e-15)


def test_thm_d1_refuses_epsilon_above_half_w_hat_norm():
    with pytest.raises(jd.JaxDistillError, match=r"epsilon must be in \(0, w_hat_norm / 2\]"):
        thm_d1_bound(p_kappa1, 5, 100, 0.6, 1.0)
    with pytest.raises(jd.JaxDistillError, match=r"epsilon = 1.5 with w_hat_norm = 2.0"):
        thm_d1_bound(p_kappa1, np.array([5, 6]), 100, np.array([0.1, 1.5]), 2.0)
    with pytest.raises(jd.JaxDistillError, match="epsilon must be finite and > 0"):
        thm_d1_bound(p_kappa1, 5, 100, 0.0, 1.0)
    with pytest.raises(jd.JaxDistillError, match="epsilon must be finite and > 0"):
        thm_d1_bound(p_kappa1, 5, 100, np.nan, 1.0)
    with pytest.raises(jd.JaxDistillError, match="w_hat_norm must be finite and > 0"):
        thm_d1_bound(p_kappa1, 5, 100, 0.1, -1.0)
    with pytest.raises(jd.JaxDistillError, match="must broadcast"):
        thm_d1_bound(p_kappa1, np.array([5, 6, 7]), 100, np.array([0.1, 0.2]), 1.0)
    with pytest.raises(jd.JaxDistillError, match="grid_size"):
        thm_d1_bound(p_kappa1, 5, 100, 0.1, 1.0, grid_size=2)
    # epsilon = ||w_hat|| / 2 exactly is inside the hypothesis; there delta > pi / 2 (epsilon / ||w_hat|| > pi / 8)
    # leaves no beta: the trivial bound 1
    edge = thm_d1_bound(p_kappa1, 5, 100, 0.5, 1.0)
    assert float(edge.bound) == 1.0 and np.isnan(float(edge.beta))
    # traced epsilon: the hypothesis cannot be checked at trace time, the result is NaN where it fails
    with precision():
        out = jax.jit(lambda e: thm_d1_bound(p_kappa1, 5, 100, e, 1.0).bound)(jnp.array([1e-3, 0.6]))
    assert np.isnan(out[1])
    with precision():
        eager = float(thm_d1_bound(p_kappa1, 5, 100, 1e-3, 1.0).bound)
    assert 0 < eager < 1 and float(out[0]) == pytest.approx(eager, rel=1e-12)


def test_thm_d1_flags_n_at_least_d():
    """Thm D.1 covers n < d only: an epsilon-close student need not have zero risk for n >= d."""
    res = thm_d1_bound(p_kappa1, np.array([5, 99, 100, 150]), 100, 1e-3, 1.0)
    b, beta = np.asarray(res.bound), np.asarray(res.beta)
    assert np.all(np.isfinite(b[:2])) and np.all(b[:2] > 0) and np.all(np.isnan(b[2:])) and np.all(np.isnan(beta[2:]))
    assert np.all(np.isnan(np.asarray(res.bound_tight)[2:]))
    # d = None: the caller asserts n < d, nothing is flagged; at n < d the same bound as with d given
    free = np.asarray(thm_d1_bound(p_kappa1, np.array([5, 150]), None, 1e-3, 1.0).bound)
    assert np.all(np.isfinite(free)) and free[0] == b[0] and free[1] < free[0]
    # delta > pi/2 (epsilon / ||w_hat|| > pi / 8) leaves no beta: the trivial bound 1
    r = thm_d1_bound(p_kappa1, 5, 100, 0.45, 1.0)
    assert float(r.bound) == 1.0 and np.isnan(float(r.beta))


def test_bounds_refuse_a_p_that_is_not_a_probability():
    for fn, match in ((lambda t: 2.0 * t, r"p\(0.50\d*\) = "), (lambda t: t - 0.5, r"p\(0\) = -0.5"),
                      (lambda t: jnp.full_like(t, jnp.nan), "nan")):
        for call in (lambda: thm3_bound(fn, 5, 10), lambda: thm_d1_bound(fn, 5, 10, 0.01, 1.0),
                     lambda: cor1_bound(fn, 5, 10), lambda: cor1_margin(fn), lambda: cor2_constant(fn, 1.0)):
            with pytest.raises(jd.JaxDistillError, match="p_fn must return probabilities in \\[0, 1\\]") as e:
                call()
            assert e.match(match)
    with pytest.raises(jd.JaxDistillError, match="p_fn must be a function"):
        thm3_bound(0.5, 5, 10)
    with pytest.raises(jd.JaxDistillError, match="p_fn must map an array of angles to a real array of the same shape"):
        thm3_bound(lambda t: jnp.sum(p_kappa1(t)) / t.size, 5, 10)
    # a float32 p that rounds a hair below 0 at pi/2 is still a probability, and gives p's bound to float32 accuracy
    f32 = float(thm3_bound(lambda t: p_kappa1(t).astype(jnp.float32) - 6e-8, 5, 10).bound)
    assert f32 == pytest.approx(float(thm3_bound(p_kappa1, 5, 10).bound), abs=1e-5)


def test_thm3_refusals_name_the_parameter():
    for kwargs, match in (({"n": 0}, "n must be an integer >= 1"), ({"n": np.array([2, 2.5])}, "n must be an integer >= 1"),
                          ({"d": 0}, "d must be an integer"), ({"grid_size": 2}, "grid_size must be an integer"),
                          ({"refine_iters": -1}, "refine_iters must be an integer")):
        args = {"n": 5, "d": 10, **kwargs}
        with pytest.raises(jd.JaxDistillError, match=match):
            thm3_bound(p_kappa1, args.pop("n"), args.pop("d"), **args)


def test_tracer_detection_uses_public_jax_only():
    src = inspect.getsource(bounds)
    assert "jax.core" not in src and "jax._src" not in src
    # jit over the task's parameter: p_fn's values are traced, the bound runs in the caller's precision
    with precision():
        k = jax.jit(lambda kappa: thm3_bound(lambda t: (1.0 - t / HALF_PI) ** kappa, 5, 100).bound)(1.0)
        v = jax.vmap(lambda n: thm3_bound(p_kappa1, n, 100).bound)(jnp.array([2, 5]))
    assert float(k) == pytest.approx(float(thm3_bound(p_kappa1, 5, 100).bound), rel=1e-12)
    np.testing.assert_allclose(np.asarray(v), np.asarray(thm3_bound(p_kappa1, np.array([2, 5]), 100).bound), rtol=1e-12)


# ---------------------------------------------------------------- independent closed forms

NS = np.array([1, 2, 3, 5, 10, 20, 50, 100, 999])


def test_thm3_kappa1_closed_form():
    """kappa = 1, p(theta) = 1 - 2 theta / pi.  With u = 2 beta / pi, eq. 19 is 1 - u + u^n,
    minimised at u = n^(-1/(n-1)) with value 1 - (1 - 1/n) n^(-1/(n-1)) (n >= 2; 1 for n = 1);
    the sharper form 1 - u + u^(n+1) at u = (n+1)^(-1/n), value 1 - (n/(n+1)) (n+1)^(-1/n)."""
    res = thm3_bound(jd.KappaPolynomialTask(1000, 1.0).p_theta, NS, 1000)
    n = NS.astype(float)
    u = np.where(n > 1, n ** (-1.0 / np.maximum(n - 1, 1)), 1.0)
    loose = np.where(n > 1, 1.0 - (1.0 - 1.0 / n) * u, 1.0)
    ut = (n + 1) ** (-1.0 / n)
    tight = 1.0 - n / (n + 1) * ut
    np.testing.assert_allclose(np.asarray(res.bound), loose, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(res.bound_tight), tight, rtol=0, atol=1e-12)
    # the minimiser itself (the objective is flat at its minimum: beta to ~1e-7)
    np.testing.assert_allclose(np.asarray(res.beta)[n > 1], (HALF_PI * u)[n > 1], atol=1e-6)
    np.testing.assert_allclose(np.asarray(res.beta_tight), HALF_PI * ut, atol=1e-6)
    # and an independent numerical minimisation (numpy grid + scipy Brent) agrees to 1e-8
    for i, k in enumerate(NS):
        brute = scipy_min(lambda b: p_kappa1(b) + p_kappa1(HALF_PI - b) ** k, 0.0, HALF_PI)
        assert float(res.bound[i]) == pytest.approx(min(brute, 1.0), abs=1e-8)


@pytest.mark.parametrize("make", [lambda: jd.KappaPolynomialTask(400, 2.5), lambda: jd.AngularMarginTask(400, 0.3, 0.7),
                                  lambda: jd.IsotropicGaussianTask(3)], ids=["kappa2.5", "margin", "gaussian-d3"])
def test_thm3_against_scipy_minimisation(make):
    """No closed form: compare with an independent minimisation of the written-out p (1e-8)."""
    task = make()
    if isinstance(task, jd.KappaPolynomialTask):
        p = lambda t: (1.0 - t / HALF_PI) ** 2.5
    elif isinstance(task, jd.AngularMarginTask):
        w = HALF_PI - 0.3
        p = lambda t: np.clip((w - t) / w, 0.0, 1.0) ** 0.7
    else:
        p = np.cos  # d = 3: |cos(angle)| is uniform on [0, 1], so p(theta) = cos(theta)
    # the margin task's objective has a kink at the first zero of p, beta = pi/2 - margin
    kinks = (HALF_PI - 0.3,) if isinstance(task, jd.AngularMarginTask) else ()
    ns = np.array([1, 2, 7, 30, 200])
    res = thm3_bound(task.p_theta, ns, None)
    for i, n in enumerate(ns):
        brute = scipy_min(lambda b: p(b) + p(HALF_PI - b) ** n, 0.0, HALF_PI, candidates=kinks)
        brute_t = scipy_min(lambda b: p(b) + (1 - p(b)) * p(HALF_PI - b) ** n, 0.0, HALF_PI, candidates=kinks)
        assert float(res.bound[i]) == pytest.approx(min(brute, 1.0), abs=1e-8)
        assert float(res.bound_tight[i]) == pytest.approx(min(brute_t, 1.0), abs=1e-8)


def test_thm_d1_kappa1_closed_form():
    """kappa = 1: with u = 2 beta / pi and s = 2 delta / pi, eq. 78 is 1 - u + (u + s)^n on
    [0, 1 - s]; with v = n^(-1/(n-1)) >= s the minimum is 1 + s - (1 - 1/n) v."""
    for eps, wn in ((1e-4, 1.0), (1e-3, 2.0), (1e-2, 3.0)):
        s = 2.0 / math.pi * math.sqrt(2 * math.pi * eps / wn)
        ns = np.array([2, 5, 20, 60])
        v = ns ** (-1.0 / (ns - 1.0))
        assert np.all(v >= s)
        expect = 1.0 + s - (1.0 - 1.0 / ns) * v
        res = thm_d1_bound(jd.KappaPolynomialTask(100, 1.0).p_theta, ns, 100, eps, wn)
        np.testing.assert_allclose(np.asarray(res.bound), np.minimum(expect, 1.0), rtol=0, atol=1e-12)
        # independent minimisation over beta in [0, pi/2 - delta]
        delta = math.sqrt(2 * math.pi * eps / wn)
        for i, n in enumerate(ns):
            brute = scipy_min(lambda b: p_kappa1(b) + p_kappa1(HALF_PI - delta - b) ** n, 0.0, HALF_PI - delta)
            assert float(res.bound[i]) == pytest.approx(min(brute, 1.0), abs=1e-8)


@pytest.mark.parametrize("kappa", [0.0, 0.5, 1.0, 2.0, 3.5])
def test_cor2_formula_by_hand(kappa):
    ns = [1, 2, 3, 10, 100, 12345]
    got = np.asarray(cor2_bound(np.array(ns), kappa))
    hand = [(1.0 + math.log(n) ** kappa) / n**kappa for n in ns]  # python: 0.0 ** 0 = 1
    np.testing.assert_allclose(got, hand, rtol=1e-14, atol=0)
    assert float(cor2_bound(7, kappa, c=1.0)) == pytest.approx((1 + math.log(7) ** kappa) / 7**kappa, rel=1e-14)


@pytest.mark.parametrize("margin,kappa", [(0.1, 1.0), (0.5, 2.0), (0.9, 0.5)])
def test_cor1_margin_task_closed_form(margin, kappa):
    """Margin task: p(theta) = ((w - theta) / w)^kappa on [0, w], w = pi/2 - margin, so the first
    zero is beta = w and gamma = p(margin) = ((w - margin) / w)^kappa (0 when margin >= w)."""
    task = jd.AngularMarginTask(50, margin, kappa)
    w = HALF_PI - margin
    gamma = max((w - margin) / w, 0.0) ** kappa
    beta, g = cor1_margin(task.p_theta)
    assert float(beta) == pytest.approx(w, abs=1e-12) and float(g) == pytest.approx(gamma, abs=1e-12)
    ns = np.array([1, 4, 49, 50, 80])
    c1 = np.asarray(cor1_bound(task.p_theta, ns, 50))
    np.testing.assert_allclose(c1, np.where(ns >= 50, 0.0, gamma**ns.astype(float)), rtol=1e-10, atol=1e-300)
    # no margin: Cor. 1's hypothesis fails, flagged NaN
    assert np.all(np.isnan(np.asarray(cor1_bound(p_kappa1, ns, 50))))


def test_cor2_constant_is_one_exactly_where_cor2_applies():
    assert float(cor2_constant(jd.KappaPolynomialTask(10, 2.0).p_theta, 2.0)) == pytest.approx(1.0, abs=1e-12)
    assert float(cor2_constant(jd.AngularMarginTask(10, 0.3, 2.0).p_theta, 2.0)) == pytest.approx(1.0, abs=1e-12)
    # the isotropic Gaussian has no kappa = 1 polynomial envelope with c = 1: Cor. 2 does not apply
    assert float(cor2_constant(jd.IsotropicGaussianTask(50).p_theta, 1.0)) > 1.0


# ---------------------------------------------------------------- `jaxdistill bound`

def run_cli(capsys, *argv):
    from jaxdistill.cli import main

    try:
        rc = main(["bound", *argv])
    except SystemExit as e:  # argparse refusals
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_refuses_arguments_outside_the_hypotheses(capsys):
    for c in ("2", "0.5"):
        rc, _, err = run_cli(capsys, "--cor2-c", c)
        assert rc == 2 and "--cor2-c must be 1 (allowed range: c = 1)" in err
    rc, _, err = run_cli(capsys, "--epsilon", "0.3", "--w-hat-norm", "0.5")
    assert rc == 2 and "--epsilon must be in (0, --w-hat-norm / 2]" in err
    rc, _, err = run_cli(capsys, "--epsilon", "0.01")
    assert rc == 2 and "--epsilon needs --w-hat-norm" in err
    rc, _, err = run_cli(capsys, "--w-hat-norm", "1")
    assert rc == 2 and "--w-hat-norm needs --epsilon" in err
    rc, _, err = run_cli(capsys, "--seed", "3")
    assert rc == 2 and "--seed applies only with --simulate" in err
    rc, _, err = run_cli(capsys, "--num-angles", "10")
    assert rc == 2 and "unrecognized arguments: --num-angles" in err
    rc, _, err = run_cli(capsys, "--quiet")
    assert rc == 2 and "--quiet applies only with --simulate" in err


def test_cli_simulate_reports_progress_and_matches_distill(capsys):
    """``bound --simulate`` shows one bar over every n's sets and a line per n
    on stderr (none with --quiet), and its E[R] is ``jd.distill``'s closed form."""
    argv = ("--task", "kappa", "--d", "12", "--n", "3,6", "--simulate", "16", "--seed", "4", "--json")
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0
    rows = json.loads(out)
    assert "simulated sets" in err and "n = 3: E[R] =" in err and "n = 6: E[R] =" in err
    for row in rows:
        ref = jd.distill(4, jd.KappaPolynomialTask(12, 1.0), row["n"], 16, method="closed-form").expected_risk()
        assert row["risk_mean"] == ref.mean and row["risk_se"] == ref.se and row["num_sets"] == 16
    rc, out_quiet, err = run_cli(capsys, *argv, "--quiet")
    assert rc == 0 and err == "" and json.loads(out_quiet) == rows


def test_cli_reaches_thm_d1(capsys):
    eps, wn, d = 1e-3, 0.8, 30
    rc, out, _ = run_cli(capsys, "--task", "kappa", "--kappa", "1", "--d", str(d), "--n", "5,29,30",
                         "--epsilon", str(eps), "--w-hat-norm", str(wn), "--cor2-c", "1", "--json")
    assert rc == 0
    rows = json.loads(out)
    assert [r["n"] for r in rows] == [5, 29, 30]
    delta = math.sqrt(2 * math.pi * eps / wn)
    s = 2 * delta / math.pi
    for r in rows[:2]:
        v = r["n"] ** (-1.0 / (r["n"] - 1))
        assert r["thm_d1"] == pytest.approx(1 + s - (1 - 1 / r["n"]) * v, abs=1e-12)  # closed form (kappa = 1)
        assert r["delta"] == pytest.approx(delta, rel=1e-15) and r["thm_d1"] >= r["bound"]
        assert r["thm_d1_tight"] <= r["thm_d1"] and 0 <= r["thm_d1_beta"] <= HALF_PI - delta
    assert rows[2]["thm_d1"] is None and rows[2]["thm_d1_beta"] is None and rows[2]["bound"] == 0.0
    rc, out, _ = run_cli(capsys, "--task", "kappa", "--d", str(d), "--n", "5,30", "--epsilon", str(eps),
                         "--w-hat-norm", str(wn))
    assert rc == 0 and "Thm D.1" in out and "the theorem covers n < d only" in out


def test_cli_pool_task_does_not_use_eq18(capsys, tmp_path):
    """A finite pool need not give X of full rank, so n >= d gets eq. 19, not eq. 18's 0."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 4))
    inputs = rng.normal(size=(60, 3)) @ base  # rank 3 in d = 4: every X is rank-deficient
    w_star = rng.normal(size=4)
    f = tmp_path / "pool.npz"
    np.savez(f, inputs=inputs, w_star=w_star)
    rc, out, _ = run_cli(capsys, "--task", "pool", "--pool-file", str(f), "--n", "2,6", "--json")
    assert rc == 0
    rows = json.loads(out)
    with precision():
        angles = np.arccos(np.abs(inputs @ w_star) / np.linalg.norm(inputs, axis=1) / np.linalg.norm(w_star))
        p = lambda t: np.mean(angles[None, :] >= np.atleast_1d(t)[:, None], axis=1)
    for r in rows:
        assert r["d"] == 4 and r["bound"] > 0
        grid = np.linspace(0, HALF_PI, 20001)
        brute = np.min(p(grid) + p(HALF_PI - grid) ** r["n"])
        assert r["bound"] <= brute + 1e-12  # never above the grid minimum of eq. 19
        assert r["bound"] >= brute - 0.02  # and close to it (a step function: the grid is within a step)
