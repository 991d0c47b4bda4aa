"""The K-class flow for n > d in rank-revealing span coordinates (docs/design.md facts 1, 5, 8, 14).

A transfer set with n > d whose inputs do not span R^d (zero pixels, linear
dependencies) has a well-defined flow limit: the flow from zero stays in the
numerical span of X and tends to the minimiser of the cross-entropy there
(for a linear teacher, the centred teacher projected onto that span, eq. 6).
``closed_form.reveal_span`` finds the span by a pivoted QR, the flow runs in
``logit_flow.RevealedSpanCoordinates``, and its Rodas3 stages and Newton
stopping test are solved by ``span_solve`` (K r-square systems and one
n-square capacitance system) instead of an (r K)-square dense LU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.multiclass import LimitKind, softmax_closed_form, softmax_limit, softmax_minimiser
from jaxdistill.multiclass.learners import SoftmaxClosedFormLearner, log_targets, softmax_gradient_flow
from jaxdistill.students.closed_form import RANK_GAP, reveal_span
from jaxdistill.students.links import centre, helmert_basis, reduced_newton_system, softmax_jacobians
from jaxdistill.students.span_solve import span_newton_step, span_softmax_factor
from jaxdistill.status import Status


def _rank_deficient_inputs(n=12, d=6, seed=0):
    """X [n, d] of rank d - 2: a zero feature and a feature that is the sum of two others."""
    X = np.random.default_rng(seed).normal(size=(n, d))
    X[:, 2] = 0.0
    X[:, 4] = X[:, 0] + X[:, 1]
    return jnp.asarray(X)


def _null_projector(X):
    """I - P_X: the projector onto the orthogonal complement of span(X) (numpy SVD, the independent reference)."""
    _, s, vh = np.linalg.svd(np.asarray(X), full_matrices=True)
    rank = int(np.sum(s > 1e-10 * s[0]))
    return np.eye(X.shape[1]) - vh[:rank].T @ vh[:rank]


def test_reveal_span_rank_keep_and_ambiguity():
    with precision():
        X = _rank_deficient_inputs()
        red = reveal_span(X)
        assert int(jnp.sum(red.keep)) == 4 and bool(red.rank_ok)
        assert list(np.asarray(red.keep)) == [True] * 4 + [False] * 2  # null rows last
        np.testing.assert_array_equal(np.asarray(red.R)[~np.asarray(red.keep)], 0.0)
        np.testing.assert_allclose(red.Q @ red.R, X.T, atol=1e-13)  # X^T = Q R with the null rows dropped
        # a feature orthogonal to the others whose norm is sqrt(RANK_GAP) times the cut: a
        # direction too close to rounding to tell data from noise
        Xa = np.asarray(X).copy()
        cut = np.finfo(float).eps * max(Xa.shape) * np.linalg.norm(Xa, axis=0).max()
        q = np.random.default_rng(5).normal(size=Xa.shape[0])
        q -= np.linalg.lstsq(Xa, q, rcond=None)[0] @ Xa.T  # orthogonal to every column
        Xa[:, 2] = RANK_GAP ** 0.5 * cut * q / np.linalg.norm(q)
        assert not bool(reveal_span(jnp.asarray(Xa)).rank_ok)
        Xa[:, 2] *= 10 * RANK_GAP ** 0.5  # now 10 RANK_GAP times the cut: a direction of the data
        red = reveal_span(jnp.asarray(Xa))
        assert bool(red.rank_ok) and int(jnp.sum(red.keep)) == 5


def test_structured_solve_equals_dense():
    """(c I + a sum_i (R_i R_i^T) kron H_i) x = rhs: the Woodbury solve equals the dense one on
    the centred, kept subspace, for every shift c down to 0 (the Newton step)."""
    shifted = jax.jit(lambda R, keep, S, a, c, rhs: span_softmax_factor(R, keep, S, a, c)(rhs))
    newton = jax.jit(lambda R, keep, S, a, rhs: span_softmax_factor(R, keep, S, a, 0.0, newton=True)(rhs))
    with precision():
        rng = np.random.default_rng(1)
        for K, d, n in ((3, 6, 12), (10, 8, 20)):
            X = _rank_deficient_inputs(n, d, seed=K)
            red = reveal_span(X)
            keep = np.asarray(red.keep)
            B = jnp.asarray(rng.normal(size=(d, K)) * keep[:, None])
            S = jax.nn.softmax(red.R.T @ B, axis=-1)
            dense_J = jnp.einsum("ai,ikl,bi->akbl", red.R, softmax_jacobians(S), red.R).reshape(d * K, d * K)
            rhs = centre(jnp.asarray(rng.normal(size=(d, K)) * keep[:, None]))
            for c in (1.0, 1e-3, 1e-9, 0.0):
                a = 0.37
                x = newton(red.R, red.keep, S, a, rhs) if c == 0.0 else shifted(red.R, red.keep, S, a, c, rhs)
                W = c * jnp.eye(d * K) + a * dense_J
                assert float(jnp.max(jnp.abs(W @ x.reshape(-1) - rhs.reshape(-1)))) <= 1e-12
                np.testing.assert_allclose(jnp.sum(x, axis=-1), 0.0, atol=1e-13)  # centred
                np.testing.assert_array_equal(np.asarray(x)[~keep], 0.0)  # null rows stay 0
            # the Newton step equals the dense one in the Helmert basis of the kept rows
            E = helmert_basis(K, X.dtype)
            V = jnp.asarray(rng.normal(size=(n, K)))
            Z = red.R.T @ B
            g, H = reduced_newton_system(red.R[keep], Z, log_targets(V), E)
            dense = (jnp.linalg.solve(H, g.reshape(-1)).reshape(g.shape)) @ E.T
            resid = jax.nn.softmax(Z, -1) - jnp.exp(log_targets(V))
            step = jax.jit(span_newton_step)(red.R, red.keep, Z, resid)
            np.testing.assert_allclose(step[keep], dense, atol=1e-12 * float(jnp.max(jnp.abs(dense))))


def test_three_way_limit_on_a_rank_deficient_set():
    """Flow, independent minimiser / projection and small-step gradient descent agree on
    a rank-deficient n > d set, K = 3; the status is converged, not rank deficient."""
    with precision():
        X = _rank_deficient_inputs()
        n, d = X.shape
        rng = np.random.default_rng(2)
        W_star = jnp.asarray(rng.normal(size=(3, d)))
        cases = {"linear": X @ W_star.T, "nonlinear": jnp.asarray(2.0 * rng.normal(size=(n, 3)))}
        for name, V in cases.items():
            W, status, steps, *_ = softmax_gradient_flow(X, V)
            assert int(status) == Status.CONVERGED, (name, int(status))
            limit, kind = softmax_limit(X, V)
            W_min, converged, _ = softmax_minimiser(X, V)
            assert bool(converged)
            logp = log_targets(V)
            grad = jax.jit(lambda W: (jax.nn.softmax(X @ W.T, -1) - jnp.exp(logp)).T @ X / n)
            gd = jax.jit(lambda W: jax.lax.fori_loop(0, 100_000, lambda i, W: W - 0.5 * grad(W), W))
            W_gd = gd(gd(jnp.zeros((3, d))))
            scale = float(jnp.linalg.norm(W_min))
            for other in (limit, W_gd):
                assert float(jnp.linalg.norm(W - other)) <= 1e-8 * scale, name
            assert float(jnp.linalg.norm(W_min - W_gd)) <= 1e-8 * scale
            np.testing.assert_allclose(np.asarray(W) @ _null_projector(X), 0.0, atol=1e-14)  # in span X
            if name == "linear":  # eq. 6: the centred teacher projected onto span X, the interpolant
                assert int(kind) == LimitKind.INTERPOLANT
                projection = np.asarray(centre(W_star.T).T) @ (np.eye(d) - _null_projector(X))
                assert float(np.linalg.norm(np.asarray(W) - projection)) <= 1e-8 * scale
                W_cf, rank_ok, realisable = softmax_closed_form(X, V)
                assert bool(rank_ok) and bool(realisable)
                np.testing.assert_allclose(W_cf, projection, atol=1e-12 * scale)
            else:
                assert int(kind) == LimitKind.MINIMISER


def test_digits_n100_rank_deficient_set_converges_to_the_projection():
    """A digits transfer set of 100 images (rank < 64: pixels that are 0 in every image) converges
    with status converged; its student is the teacher's centred weights projected onto span X."""
    with precision():
        task = jd.digits_task()
        X = jnp.asarray(task.pool[:100])
        V = X @ task.w_star.T if task.w_star is not None else jnp.asarray(task.teacher_logits[:100])
        assert np.linalg.matrix_rank(np.asarray(X)) < 64
        W, status, steps, _, newton_rel, _, _ = jax.jit(softmax_gradient_flow)(X, V)
        assert int(status) == Status.CONVERGED and float(newton_rel) <= 1e-9
        # the teacher is linear in the pixels: the limit is its centred part on span X (eq. 6)
        W_star = np.linalg.lstsq(np.asarray(task.pool), np.asarray(task.teacher_logits), rcond=None)[0].T
        projection = np.asarray(centre(jnp.asarray(W_star.T)).T) @ (np.eye(64) - _null_projector(X))
        assert float(np.linalg.norm(np.asarray(W) - projection)) <= 1e-7 * float(np.linalg.norm(projection))
        out = SoftmaxClosedFormLearner().fit_inputs(None, X, V)
        assert int(out.status) == Status.CONVERGED
        np.testing.assert_allclose(out.w, projection, atol=1e-9 * float(np.abs(projection).max()))
