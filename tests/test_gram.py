"""Issue 14, Must hold 1: the Gram sampler (docs/design.md fact 13).

For the kappa, margin and isotropic Gaussian tasks ``task.sample_gram`` draws
(G = X X^T, u = X w*) directly.  These tests check that it has the law of
the inputs sampler (two-sample Kolmogorov-Smirnov tests on Gram entries,
teacher logits and the closed-form student's angle), that the Gram-space
learners equal the input-space ones, and that ``distill(sampler="gram")``
agrees with ``distill(sampler="inputs")`` within standard errors, for the
flow, the closed form and the reduced-bias learner w_delta (section 5.2).

Power of the KS tests: every KS test compares two samples of M = 2000
values at level 1e-3.  Simulated (shifted normals, 300 repetitions), it
rejects a difference of sup |F - G| = 0.05 between the two CDFs with
probability 0.49, 0.07 with 0.92 and 0.09 with 0.997.  So a sampler error
that moves any tested CDF by 0.09 or more fails these tests with
probability > 0.99.  The seeds are fixed: the tests are deterministic.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.keys import as_key, set_keys
from jaxdistill.students.gram import gram_problem, resolve_sampler
from jaxdistill.students.closed_form import closed_form
from jaxdistill.students.flow import gradient_flow, gram_gradient_flow
from jaxdistill.design import GramDesign, two_class_logits
from jaxdistill.students.gram import (gram_learner_problem,
                                     gram_student_stats)
from jaxdistill.students.wdelta import complement_direction, orthogonal_gaussian, w_delta_from
from jaxdistill.tasks.riskmath import signed_angle
from jaxdistill.validation import JaxDistillError

M = 2000
ALPHA = 1e-3


def gram_closed_form(G, u):
    """The closed form of Thm 1 fitted on the Gram design of G (its coordinates c_hat = L^{-1} u)."""
    return jd.ClosedFormLearner().fit(None, GramDesign(G, G.shape[0]), two_class_logits(u))


def _tasks(d):
    rng = np.random.default_rng(d)
    w = rng.normal(size=d)  # a teacher that is not an axis, of norm != 1
    return [jd.KappaPolynomialTask(d, 1.0), jd.AngularMarginTask(d, 0.2, 2.0, w_star=w),
            jd.IsotropicGaussianTask(d, teacher_norm=2.0)]


CASES = [(task, n) for d, ns in ((3, (1, 2)), (50, (5, 49)), (1000, (20,))) for task in _tasks(d) for n in ns]


def _inputs_stats(task, n, seed):
    """Per set: G, u and the closed-form angle, from the inputs sampler."""
    Gs, us, angs = [], [], []
    with precision():
        w = jnp.asarray(task.w_star)
        f = jax.jit(jax.vmap(lambda X: (X @ X.T, X @ w, signed_angle(closed_form(X, X @ w), w))))
        for X in jd.iter_transfer_sets(seed, task, n, M, 250):
            G, u, a = f(X)
            Gs.append(np.asarray(G)), us.append(np.asarray(u)), angs.append(np.asarray(a))
    return np.concatenate(Gs), np.concatenate(us), np.concatenate(angs)


def _gram_stats(task, n, seed):
    with precision():
        t = task.cast("float64")
        w_norm = jnp.linalg.norm(t.w_star)

        def one(k):
            G, u = t.sample_gram(jax.random.split(k)[0], n)
            c = gram_closed_form(G, u).w
            return G, u, gram_student_stats(G, c, u, u, w_norm, True).angle

        G, u, a = jax.jit(jax.vmap(one))(set_keys(as_key(seed), jnp.arange(M)))
    return np.asarray(G), np.asarray(u), np.asarray(a)


@pytest.mark.parametrize("task,n", CASES, ids=[f"{t.name}-d{t.d}-n{n}" for t, n in CASES])
def test_gram_sampler_has_the_law_of_the_inputs(task, n):
    G1, u1, a1 = _inputs_stats(task, n, 11)
    G2, u2, a2 = _gram_stats(task, n, 12)
    last = n - 1
    samples = {"||x_0||^2": (G1[:, 0, 0], G2[:, 0, 0]), "||x_last||^2": (G1[:, last, last], G2[:, last, last]),
               "u_0": (u1[:, 0], u2[:, 0]), "u_last": (u1[:, last], u2[:, last]), "angle": (a1, a2)}
    if n >= 2:
        samples["G_01"] = (G1[:, 0, 1], G2[:, 0, 1])
        samples["G_last"] = (G1[:, last, last - 1], G2[:, last, last - 1])
        # the cosine between two inputs: the direction part alone
        cos = lambda G: G[:, last, 0] / np.sqrt(G[:, 0, 0] * G[:, last, last])
        samples["cos_0_last"] = (cos(G1), cos(G2))
    bad = {k: stats.ks_2samp(a, b).pvalue for k, (a, b) in samples.items() if stats.ks_2samp(a, b).pvalue < ALPHA}
    assert not bad, f"KS p-values below {ALPHA}: {bad}"
    assert np.all(np.linalg.eigvalsh(G2) > -1e-12 * np.abs(G2).max())


def test_gram_flow_equals_input_flow_and_closed_form():
    """The Gram-space flow is the input-space flow (same ops after X X^T) and
    reaches the closed form to the stopping tolerance (1e-9)."""
    task = jd.KappaPolynomialTask(200, 1.0)
    with precision():
        X = jd.sample_transfer_sets(0, task, 15, 64)
        w = jnp.asarray(task.w_star, jnp.float64)
        u = X @ w
        G = jnp.einsum("bnd,bmd->bnm", X, X)
        ref = jax.vmap(lambda a, b: gradient_flow(a, b))(X, u)
        res = jax.vmap(lambda g, b: gram_gradient_flow(g, b))(G, u)
        cf = jax.vmap(gram_closed_form)(G, u)
        L = jnp.linalg.cholesky(G)
        # w = X^T L^{-T} c
        W = jnp.einsum("bnd,bn->bd", X, jax.vmap(lambda l, c: jax.scipy.linalg.solve_triangular(l.T, c))(L, res.w))
        stats_ = jax.vmap(lambda g, c, uu: gram_student_stats(g, c, uu, uu, jnp.linalg.norm(w), True))(G, res.w, u)
        ref_angle = signed_angle(ref.w, w)
    assert np.all(np.asarray(res.status) == 0) and np.all(np.asarray(ref.status) == 0)
    np.testing.assert_array_equal(np.asarray(res.num_steps), np.asarray(ref.num_steps))
    np.testing.assert_allclose(np.asarray(W), np.asarray(ref.w), rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(ref.w))))
    # differences in numpy: outside precision() jax 0.6 computes float64 - float64 in float32 (1e-7 noise)
    rel = np.linalg.norm(np.asarray(res.w) - np.asarray(cf.w), axis=1) / np.linalg.norm(np.asarray(cf.w), axis=1)
    assert rel.max() < 1e-9
    np.testing.assert_allclose(np.asarray(stats_.rel_dist_closed_form), rel, rtol=1e-6, atol=1e-15)
    np.testing.assert_allclose(np.asarray(stats_.angle), np.asarray(ref_angle), rtol=0, atol=1e-10)


def test_flow_converges_with_a_near_zero_input():
    """An input of norm 5e-8 among inputs of norm ~30 (the kappa task's
    Gaussian scale draws such sets about once in 300,000 at n = 20; the
    H200 check's million sets had three) slows the flow to a time scale of
    ~1e17: the default horizon (FlowConfig.t_max, 1e35) lets it converge to
    the closed form (it used to stop at t = 1e20 as not_converged_by_t_max)."""
    task = jd.KappaPolynomialTask(1000, 1.0)
    with precision():
        X = jd.sample_transfer_sets(3, task, 20, 8)
        X = X.at[:, 0, :].multiply(5e-8 / jnp.linalg.norm(X[:, 0, :], axis=1, keepdims=True))
        u = X @ jnp.asarray(task.w_star, jnp.float64)
        G = jnp.einsum("bnd,bmd->bnm", X, X)
        res = jax.vmap(lambda g, b: gram_gradient_flow(g, b))(G, u)
        ref = jax.vmap(lambda a, b: gradient_flow(a, b))(X, u)
        cf = jax.vmap(gram_closed_form)(G, u)
    assert np.all(np.asarray(res.status) == 0) and np.all(np.asarray(ref.status) == 0)
    assert float(jnp.max(res.t_final)) > 1e20
    rel = np.linalg.norm(np.asarray(res.w - cf.w), axis=1) / np.linalg.norm(np.asarray(cf.w), axis=1)
    assert rel.max() < 1e-8


def test_gram_student_stats_equal_the_input_space_ones():
    task = jd.AngularMarginTask(30, 0.2, 1.0, w_star=np.random.default_rng(1).normal(size=30))
    with precision():
        X = jd.sample_transfer_sets(1, task, 7, 32)
        w = jnp.asarray(task.w_star, jnp.float64)
        u = X @ w / 2.0  # temperature 2
        G = jnp.einsum("bnd,bmd->bnm", X, X)
        W = jax.vmap(closed_form)(X, X @ w)  # the student: w_hat of the raw logits
        # its coordinates c = L^{-1} X w_hat = L^{-1} u_raw
        c = jax.vmap(lambda g, b: gram_closed_form(g, b).w)(G, X @ w)
        s = jax.vmap(lambda g, cc, uu, ur: gram_student_stats(g, cc, uu, ur, jnp.linalg.norm(w), True))(G, c, u, X @ w)
        W_hat_T = jax.vmap(closed_form)(X, u)
        ref_angle = signed_angle(W, w)
    np.testing.assert_allclose(np.asarray(s.angle), np.asarray(ref_angle), atol=1e-10)
    # the difference in numpy: outside precision() jax 0.6 computes float64 - float64 in float32 (1e-7 noise)
    want = np.linalg.norm(np.asarray(W) - np.asarray(W_hat_T), axis=1) / np.linalg.norm(np.asarray(W_hat_T), axis=1)
    np.testing.assert_allclose(np.asarray(s.rel_dist_closed_form), want, rtol=1e-9)  # = 1 (w_hat scales with 1/T)


def test_exact_risk_from_angle_equals_exact_risk():
    for task in _tasks(40):
        with precision():
            W = jax.random.normal(jax.random.PRNGKey(0), (50, 40), jnp.float64)
            t = task.cast("float64")
            got, want = t.exact_risk_from_angle(signed_angle(W, t.w_star)), t.exact_risk(W)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-14)


@pytest.mark.parametrize("method", ["flow", "closed-form"])
def test_distill_gram_matches_inputs_within_se(method):
    """2000 sets each: risk means within 4 SE of the difference; the flow's
    mean steps within 4 SE; reproducible and independent of the chunk size."""
    task = jd.KappaPolynomialTask(50, 1.0)
    a = jd.distill(0, task, 10, 2000, method=method, keep_students=False, sampler="inputs")
    b = jd.distill(1, task, 10, 2000, method=method, keep_students=False, sampler="gram")
    assert b.config["sampler"] == "gram" and "sampler" not in a.config and b.students is None
    assert a.summary()["num_failed"] == 0 and b.summary()["num_failed"] == 0
    ra, rb = a.expected_risk(), b.expected_risk()
    assert abs(ra.mean - rb.mean) < 4 * np.hypot(ra.se, rb.se), (ra, rb)
    aa, ab = a.angle, b.angle
    assert abs(aa.mean() - ab.mean()) < 4 * np.hypot(aa.std() / np.sqrt(aa.size), ab.std() / np.sqrt(ab.size))
    assert stats.ks_2samp(aa, ab).pvalue > ALPHA
    if method == "flow":
        sa, sb = a.num_steps.astype(float), b.num_steps.astype(float)
        assert abs(sa.mean() - sb.mean()) < 4 * np.hypot(sa.std() / np.sqrt(sa.size), sb.std() / np.sqrt(sb.size))
        assert b.summary()["max_rel_dist_closed_form"] < 2e-9
    # reproducible: bit for bit on a rerun; to rounding for another chunk size (XLA compiles the batched
    # reductions of a different batch size differently, as for the inputs sampler)
    c = jd.distill(1, task, 10, 300, method=method, keep_students=False, sampler="gram", chunk_size=7)
    c2 = jd.distill(1, task, 10, 300, method=method, keep_students=False, sampler="gram", chunk_size=7)
    np.testing.assert_array_equal(c.risk, c2.risk)
    np.testing.assert_array_equal(c.angle, c2.angle)
    np.testing.assert_allclose(c.risk, b.risk[:300], rtol=1e-9)
    np.testing.assert_allclose(c.angle, b.angle[:300], rtol=1e-9)


@pytest.mark.slow
def test_distill_gram_matches_inputs_default_workload():
    task = jd.KappaPolynomialTask(1000, 1.0)
    a = jd.distill(0, task, 20, 2000, keep_students=False, sampler="inputs")
    b = jd.distill(1, task, 20, 2000, keep_students=False, sampler="gram")
    ra, rb = a.expected_risk(), b.expected_risk()
    assert abs(ra.mean - rb.mean) < 4 * np.hypot(ra.se, rb.se), (ra, rb)
    assert stats.ks_2samp(a.angle, b.angle).pvalue > ALPHA


def test_hard_targets_and_gaussian_task_run_with_gram():
    task = jd.IsotropicGaussianTask(40, teacher_norm=3.0)
    a = jd.distill(0, task, 6, 600, method="closed-form", keep_students=False, sampler="inputs")
    b = jd.distill(1, task, 6, 600, method="closed-form", keep_students=False, sampler="gram")
    assert abs(a.expected_risk().mean - b.expected_risk().mean) < 4 * np.hypot(a.expected_risk().se, b.expected_risk().se)
    h = jd.distill(0, jd.KappaPolynomialTask(40, 1.0), 6, 16, targets=jd.TargetSpec("hard"), keep_students=False,
                   sampler="gram", flow=jd.FlowConfig(t_end=1e20))
    # no steady state with hard labels: the flow runs to t_end or to its step limit, as with the inputs
    assert set(np.unique(h.status)) <= {int(jd.Status.FINITE_HORIZON), int(jd.Status.MAX_STEPS)}
    assert np.all(np.isfinite(h.angle))
    assert np.all(np.isnan(h.rel_dist_closed_form))


def test_sampler_resolution_and_refusals():
    kappa = jd.KappaPolynomialTask(20, 1.0)
    flow = jd.FlowLearner()
    assert resolve_sampler("auto", kappa, 5, flow, "exact", False) == "gram"
    assert resolve_sampler("auto", kappa, 5, flow, "exact", True) == "inputs"  # students kept
    assert resolve_sampler("inputs", kappa, 5, flow, "exact", False) == "inputs"
    cov = jd.GaussianTask(np.eye(20))
    cases = {
        "task": (cov, 5, flow, "exact", False),
        "n = 20 >= d": (kappa, 20, flow, "exact", False),
        "GDLearner": (kappa, 5, jd.GDLearner(), "exact", False),
        "coordinates='plain'": (kappa, 5, jd.FlowLearner(jd.FlowConfig(coordinates="plain")), "exact", False),
        "Monte-Carlo": (kappa, 5, flow, "mc", False),
        "--save-students": (kappa, 5, flow, "exact", True),
    }
    for why, args in cases.items():
        assert why in gram_problem(*args)
        assert resolve_sampler("auto", *args) == "inputs"
        with pytest.raises(JaxDistillError, match="sampler='gram'"):
            resolve_sampler("gram", *args)
    with pytest.raises(JaxDistillError, match="sampler"):
        resolve_sampler("fast", *cases["task"])
    # w_delta (section 5.2) runs in Gram space, with either base, but not on nested sets (monotonicity index)
    for wd in (jd.WDeltaLearner(delta=2.0), jd.WDeltaLearner(delta=2.0, base=jd.FlowLearner())):
        assert gram_problem(kappa, 5, wd, "exact", False) is None
        assert resolve_sampler("auto", kappa, 5, wd, "exact", False) == "gram"
        assert resolve_sampler("gram", kappa, 5, wd, "exact", False) == "gram"
        assert "nested" in gram_problem(kappa, 5, wd, "exact", False, nested=True)
        assert resolve_sampler("auto", kappa, 5, wd, "exact", False, nested=True) == "inputs"
    plain = jd.WDeltaLearner(delta=2.0, base=jd.FlowLearner(jd.FlowConfig(coordinates="plain")))
    assert "coordinates='plain'" in gram_learner_problem(plain)
    assert resolve_sampler("auto", kappa, 5, plain, "exact", False) == "inputs"
    for needs_inputs in (jd.GDLearner(), jd.FlowLearner(jd.FlowConfig(coordinates="plain")), jd.DeepLearner(depth=2)):
        with pytest.raises(JaxDistillError, match=f"{type(needs_inputs).__name__} needs the inputs"):
            needs_inputs.fit(jax.random.PRNGKey(0), GramDesign(jnp.eye(3), 5), two_class_logits(jnp.ones(3)))
    with pytest.raises(JaxDistillError, match="students"):
        jd.distill(0, kappa, 5, 4, sampler="gram", keep_students=True)  # the students need the inputs
    with pytest.raises(JaxDistillError):
        cov.sample_gram(jax.random.PRNGKey(0), 3)
    with pytest.raises(JaxDistillError, match="n"):
        kappa.sample_gram(jax.random.PRNGKey(0), 20)
    # the Python default is the command's: auto, the Gram sampler where it applies; students kept: the inputs
    assert jd.distill(0, kappa, 5, 4, method="closed-form").config["sampler"] == "gram"
    assert "sampler" not in jd.distill(0, kappa, 5, 4, method="closed-form", keep_students=True).config


def test_cli_sampler_default_auto_is_gram_and_refusals(tmp_path, capsys):
    import json

    from jaxdistill.cli import main

    out = tmp_path / "g"
    assert main(["run", "--d", "30", "--n", "5", "--num-sets", "8", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "manifest.json").read_text())["sampler"] == "gram"
    out2 = tmp_path / "s"
    assert main(["run", "--d", "30", "--n", "5", "--num-sets", "8", "--out", str(out2), "--save-students",
                 "--quiet"]) == 0
    assert "sampler" not in json.loads((out2 / "manifest.json").read_text())
    capsys.readouterr()
    assert main(["run", "--d", "30", "--n", "5", "--num-sets", "8", "--out", str(tmp_path / "r"), "--save-students",
                 "--sampler", "gram", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--sampler gram" in err and "--save-students" in err
    # w_delta: auto is gram for the run; its --monotonicity pairs fall back to the inputs (nested sets)
    for name, extra, want in (("wd", [], "gram"), ("wdi", ["--sampler", "inputs"], None),
                              ("wdm", ["--monotonicity"], "gram")):
        o = tmp_path / name
        assert main(["run", "--d", "30", "--n", "5", "--num-sets", "8", "--learner", "wdelta", "--delta", "2",
                     "--out", str(o), "--quiet", *extra]) == 0
        summary = json.loads((o / "summary.json").read_text())
        assert summary["config"].get("sampler") == want and summary["config"]["method"] == "w-delta"
        assert json.loads((o / "manifest.json").read_text()).get("sampler") == want
        assert summary["num_failed"] == 0 and 0 < summary["risk_mean"] < 0.5
    assert 0 <= summary["monotonicity"] <= 1


def test_monotonicity_index_gram_sampler_matches_inputs():
    """The monotonicity index drawn from the (n+1) x (n+1) Gram matrix has the
    law of the input sampler's: hard-target flow (finite horizon; index about
    0.7, so the test has power), kappa = 1, d = 50, n = 5, 1000 pairs each;
    index, mean angle change and risk of X within 4 combined SE; ``auto``
    picks gram here and inputs where it does not apply (w_delta)."""
    from jaxdistill.analysis.monotonicity import monotonicity_index

    task = jd.KappaPolynomialTask(50, 1.0)
    learner = jd.FlowLearner(jd.FlowConfig(t_max=50.0))
    est = {s: monotonicity_index(0, task, 5, 1000, learner, jd.TargetSpec(kind="hard"), sampler=s)
           for s in ("inputs", "gram")}
    a, b = est["inputs"], est["gram"]
    assert 0.55 < a.index < 0.85 and a.num_sets == b.num_sets == 1000
    for m0, s0, m1, s1 in ((a.index, a.se, b.index, b.se),
                           (a.angle_change_mean, a.angle_change_se, b.angle_change_mean, b.angle_change_se),
                           (a.risk_X_mean, a.risk_X_se, b.risk_X_mean, b.risk_X_se)):
        assert abs(m0 - m1) <= 4 * math.hypot(s0, s1), (m0, m1, s0, s1)
    with pytest.raises(jd.JaxDistillError, match="sampler='gram'"):
        monotonicity_index(0, task, 5, 4, jd.WDeltaLearner(delta=0.1), sampler="gram")


# ------------------------------------------------------------------ w_delta (section 5.2) in Gram space


def test_w_delta_gram_frame_equals_the_input_space_student():
    """Given X and q, the n + 2 coordinates of ``gram_w_delta`` (c_hat, then
    delta ||c_hat|| s along e_perp = (w* - P_X w*) / r and delta ||c_hat||
    sqrt(1 - s^2) for the rest, s = q.e_perp / ||q||) give the input-space
    w_delta's angle to w* and its distance to the closed form."""
    task = jd.AngularMarginTask(30, 0.2, 1.0, w_star=np.random.default_rng(2).normal(size=30))
    with precision():
        X = jd.sample_transfer_sets(4, task, 7, 32)
        w = jnp.asarray(task.w_star, jnp.float64)
        u = X @ w
        G = jnp.einsum("bnd,bmd->bnm", X, X)
        q = jax.vmap(orthogonal_gaussian)(jax.random.split(jax.random.PRNGKey(5), 32), X)
        for delta in (-3.0, 0.5):
            W_hat = jax.vmap(closed_form)(X, u)
            W = jax.vmap(lambda a, b: w_delta_from(a, b, delta))(W_hat, q)
            resid = w - W_hat  # w_hat = P_X w*: the teacher's residual
            e_perp = resid / jnp.linalg.norm(resid, axis=1, keepdims=True)
            s = jnp.sum(q * e_perp, axis=1) / jnp.linalg.norm(q, axis=1)
            c_hat = jax.vmap(lambda g, b: gram_closed_form(g, b).w)(G, u)
            nc = jnp.linalg.norm(c_hat, axis=1)
            coords = jnp.concatenate([c_hat, (delta * nc * s)[:, None], (delta * nc * jnp.sqrt(1 - s * s))[:, None]], 1)
            st = jax.vmap(lambda g, cc, uu: gram_student_stats(g, cc, uu, uu, jnp.linalg.norm(w), True))(G, coords, u)
            np.testing.assert_allclose(np.asarray(st.angle), np.asarray(signed_angle(W, w)), rtol=0, atol=1e-10)
            want = np.linalg.norm(np.asarray(W - W_hat), axis=1) / np.linalg.norm(np.asarray(W_hat), axis=1)
            np.testing.assert_allclose(np.asarray(st.rel_dist_closed_form), want, rtol=1e-9)
            np.testing.assert_allclose(want, abs(delta), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5, 1000])
def test_complement_direction_has_the_law_of_a_uniform_direction(k):
    """s = q.e / ||q|| for q uniform on the sphere of R^k: s^2 ~ Beta(1/2, (k-1)/2)
    and s symmetric (one-sample KS at 1e-3, 4000 draws); k = 1: s = +-1
    exactly; k = 0: no complement, (0, 0).  A chi-square with one degree too
    many or too few moves the CDF of s^2 by > 0.09 at k <= 5 (caught, see
    the module docstring for the power)."""
    with precision():
        v = np.asarray(jax.vmap(lambda kk: complement_direction(kk, k, jnp.float64))(
            jax.random.split(jax.random.PRNGKey(k), 4000)))
        assert np.all(np.asarray(complement_direction(jax.random.PRNGKey(0), 0, jnp.float64)) == 0)
    np.testing.assert_allclose(np.hypot(v[:, 0], v[:, 1]), 1.0, rtol=1e-14)
    assert np.all(v[:, 1] >= 0)
    if k == 1:
        assert set(np.unique(v[:, 0])) == {-1.0, 1.0} and np.all(v[:, 1] == 0)
        assert abs(np.mean(v[:, 0] > 0) - 0.5) < 4 * 0.5 / np.sqrt(4000)
        return
    assert stats.kstest(v[:, 0] ** 2, stats.beta(0.5, (k - 1) / 2).cdf).pvalue > ALPHA
    assert stats.ks_2samp(v[:, 0], -v[:, 0]).pvalue > ALPHA


WDELTA_CASES = [(50, 10, 0.0, "closed-form"), (50, 10, 1.0, "closed-form"), (50, 10, 3.0, "closed-form"),
                (50, 10, 10.0, "closed-form"), (50, 10, 3.0, "flow"), (11, 10, -3.0, "closed-form")]


@pytest.mark.parametrize("d,n,delta,base", WDELTA_CASES,
                         ids=[f"d{d}-n{n}-delta{dl:g}-{b}" for d, n, dl, b in WDELTA_CASES])
def test_w_delta_gram_matches_inputs(d, n, delta, base):
    """w_delta on the kappa task, M = 2000 sets per sampler: the angle has the
    same law (two-sample KS at 1e-3, power as in the module docstring), the
    expected risks agree within 4 SE of the difference, and both report
    rel_offset = |delta| and rel_dist_closed_form = ||w_delta - w_hat|| /
    ||w_hat|| (= |delta| for the closed-form base; sqrt(delta^2 + flow error^2)
    for the flow).  d = n + 1: a one-dimensional complement (s = +-1, the
    chi-square has 0 degrees of freedom; a negative delta, same law)."""
    task = jd.KappaPolynomialTask(d, 1.0)
    learner = jd.WDeltaLearner(delta=delta, base=jd.make_learner(base))
    a = jd.distill(0, task, n, M, learner=learner, keep_students=False, sampler="inputs")
    b = jd.distill(1, task, n, M, learner=learner, keep_students=False, sampler="gram")
    assert b.config["sampler"] == "gram" and "sampler" not in a.config
    assert a.summary()["num_failed"] == 0 and b.summary()["num_failed"] == 0
    p = stats.ks_2samp(a.angle, b.angle).pvalue
    ra, rb = a.expected_risk(), b.expected_risk()
    print(f"w_delta d={d} n={n} delta={delta} {base}: KS p = {p:.3g}; risk inputs {ra.mean:.5f} +- {ra.se:.5f}, "
          f"gram {rb.mean:.5f} +- {rb.se:.5f}")
    assert p > ALPHA
    assert abs(ra.mean - rb.mean) < 4 * np.hypot(ra.se, rb.se), (ra, rb)
    for r in (a, b):
        np.testing.assert_allclose(r.extras["rel_offset"], abs(delta), rtol=1e-12, atol=1e-14)
        tol = dict(rtol=1e-12, atol=1e-14) if base == "closed-form" else dict(rtol=1e-9, atol=2e-9)
        np.testing.assert_allclose(r.rel_dist_closed_form, abs(delta), **tol)


@pytest.mark.parametrize("base", ["closed-form", "flow"])
def test_w_delta_gram_at_delta_zero_is_the_base_learner_and_reproducible(base):
    """delta = 0 under the Gram sampler gives, set by set, exactly the angles,
    risks, steps and losses of the base learner (closed form / flow) on the
    same seed; a rerun gives the same numbers bit for bit; a nonzero delta
    moves the students (its direction comes from the learner key, not the
    data key: the data, hence steps and loss, are the base learner's)."""
    task = jd.KappaPolynomialTask(50, 1.0)
    kw = dict(keep_students=False, sampler="gram", chunk_size=64)
    z = jd.distill(3, task, 10, 64, learner=jd.WDeltaLearner(delta=0.0, base=jd.make_learner(base)), **kw)
    ref = jd.distill(3, task, 10, 64, method=base, **kw)
    for name in ("angle", "risk", "num_steps", "loss", "status"):
        np.testing.assert_array_equal(getattr(z, name), getattr(ref, name), err_msg=name)
    assert np.all(z.extras["rel_offset"] == 0)
    lr = jd.WDeltaLearner(delta=2.0, base=jd.make_learner(base))
    b = jd.distill(3, task, 10, 64, learner=lr, **kw)
    b2 = jd.distill(3, task, 10, 64, learner=lr, **kw)
    for name in ("angle", "risk", "rel_dist_closed_form", "num_steps", "loss"):
        np.testing.assert_array_equal(getattr(b, name), getattr(b2, name), err_msg=name)
    np.testing.assert_array_equal(b.extras["rel_offset"], b2.extras["rel_offset"])
    np.testing.assert_array_equal(b.num_steps, z.num_steps)
    np.testing.assert_array_equal(b.loss, z.loss)
    assert np.all(b.angle != z.angle) and b.angle.mean() > z.angle.mean() + 0.5  # offset 2 ||w_hat||, mostly orthogonal to w*
