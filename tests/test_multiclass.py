"""Issue 12: any teacher, many classes (jaxdistill.multiclass; docs/design.md facts 8, 10)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill.design import InputsDesign
from jaxdistill import precision
from jaxdistill.cli import main
from jaxdistill.multiclass import (MultiClassGaussianTask, MultiClassPoolTask, MultiTargetSpec, SoftmaxFlowLearner,
                                   centre, pool_task_from_arrays, softmax_closed_form,
                                   softmax_gradient_flow, target_log_probs)
from jaxdistill.students import FlowConfig, closed_form, gradient_flow
from jaxdistill.traced import lift_traced

RNG = np.random.default_rng(12)


def _data(n, d, K, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(K, d)) / np.sqrt(d)


def test_k2_equals_binary_closed_form_and_flow():
    with precision():
        X, w = _data(7, 15, 1)
        X = jnp.asarray(X)
        u = X @ jnp.asarray(w[0]) / 1.5
        V = jnp.stack([jnp.zeros_like(u), u], axis=1)  # the K = 2 teacher [0, w] at T = 1.5
        W, rank_ok, _ = softmax_closed_form(X, V)
        w_hat = closed_form(X, u)
        assert bool(rank_ok)
        assert float(jnp.linalg.norm(W[1] - W[0] - w_hat) / jnp.linalg.norm(w_hat)) <= 1e-12
        assert float(jnp.max(jnp.abs(W.sum(0)))) <= 1e-15
        out = SoftmaxFlowLearner().fit(None, InputsDesign(X), V)
        ref = gradient_flow(X, u)
        assert float(jnp.linalg.norm(out.W[1] - out.W[0] - ref.w)) <= 1e-12 * float(jnp.linalg.norm(ref.w))
        assert int(out.status) == int(ref.status) == jd.Status.CONVERGED
        # the general K-class flow at K = 2 reaches the same limit
        W2, status, *_ = softmax_gradient_flow(X, V)
        assert int(status) == jd.Status.CONVERGED
        assert float(jnp.linalg.norm(W2[1] - W2[0] - w_hat) / jnp.linalg.norm(w_hat)) <= 1e-8


def test_k2_pool_run_equals_binary_run():
    X, w = _data(200, 12, 1, seed=3)
    test = RNG.normal(size=(300, 12))
    binary = jd.distill(0, jd.PoolTask(X, w[0], test_inputs=test), 5, 6, method="flow", chunk_size=3, keep_students=True)
    multi = jd.distill(0, MultiClassPoolTask(X, w[0], test_inputs=test), 5, 6, method="flow", chunk_size=3,
                       keep_students=True)
    Wm = multi.students
    np.testing.assert_allclose(Wm[:, 1] - Wm[:, 0], binary.students, rtol=0, atol=1e-12 * np.abs(binary.students).max())
    np.testing.assert_array_equal(multi.arrays["risk"], binary.risk)
    assert multi.summary()["num_classes"] == 2


@pytest.mark.parametrize("n,d,K", [(6, 12, 3), (16, 8, 3), (5, 10, 5), (4, 9, 10)])
def test_flow_equals_closed_form(n, d, K):
    with precision():
        X, W_star = _data(n, d, K, seed=K)
        X = jnp.asarray(X)
        V = target_log_probs(X @ jnp.asarray(W_star).T, None, MultiTargetSpec("soft", 0.7))
        W_hat, rank_ok, realisable = softmax_closed_form(X, V)
        assert bool(rank_ok) and bool(realisable)
        out = SoftmaxFlowLearner().fit(None, InputsDesign(X), V)
        assert int(out.status) == jd.Status.CONVERGED
        assert float(jnp.linalg.norm(out.W - W_hat) / jnp.linalg.norm(W_hat)) <= 1e-6
        # Thm 1 for K classes: W_inf = C W* P_X / T
        Q, _ = np.linalg.qr(np.asarray(X).T)
        expect = centre(jnp.asarray(W_star).T).T @ (Q @ Q.T) / 0.7
        assert float(jnp.linalg.norm(W_hat - expect) / jnp.linalg.norm(expect)) <= 1e-10


def _stage_system(n, K, d, c, direction, seed):
    """A K-class logit-flow stage system (c I - s J) x = rhs with a centred rhs, and its dense solution."""
    from jaxdistill.multiclass.learners import softmax_jacobians

    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.normal(size=(n, d)))
    G = X @ X.T
    Z = centre(jnp.asarray(3.0 * rng.normal(size=(n, K))))
    J = -jnp.einsum("ij,jkl->ikjl", G, softmax_jacobians(jax.nn.softmax(Z, axis=-1))).reshape(n * K, n * K) / n
    rhs = centre(jnp.asarray(rng.normal(size=(n, K)))).reshape(-1)
    M = c * jnp.eye(n * K) - direction * J
    # the dense solve puts its rounding along the all-ones directions, divided by c: compare centred parts
    dense = centre(jnp.linalg.solve(M, rhs).reshape(n, K)).reshape(-1)
    return G, Z, M, rhs, dense


@pytest.mark.parametrize("c", [1e3, 1.0, 1e-3, 1e-8, 1e-14])
@pytest.mark.parametrize("direction", [1, -1])
def test_logit_stage_solve_uses_the_kronecker_structure_and_equals_the_dense_solve(c, direction):
    """Issue 23 point 4: the logit flow's Rodas3 stage systems (c I - s J) x = rhs,
    J = -(G/n kron I) blockdiag(diag(s_i) - s_i s_i^T), are solved through K
    n-square systems (``logit_shifted_solver``, docs/design.md fact 14); on
    centred right-hand sides (the flow's) the solution equals the dense solve,
    also for the tiny c = 1 / (gamma h) of the last steps."""
    from jaxdistill.multiclass.learners import logit_shifted_solver

    n, K = 7, 4
    with precision():
        G, Z, M, rhs, dense = _stage_system(n, K, 9, c, direction, seed=23)
        x = logit_shifted_solver(G / n)(0.0, Z, None, c, direction)(rhs)
        M, x, dense, rhs = (np.asarray(a) for a in (M, x, dense, rhs))  # float64, checked outside precision()
    assert np.max(np.abs(x.reshape(n, K).sum(axis=1))) <= 1e-12 * np.max(np.abs(x))
    # measured: 2e-16 (c >= 1) to 2e-11 (c = 1e-14, cond(M) = 7e13) in both
    assert np.linalg.norm(x - dense) / np.linalg.norm(dense) <= 1e-10
    assert np.linalg.norm(M @ x - rhs) / np.linalg.norm(rhs) <= 1e-10


@pytest.mark.parametrize("c", [1e3, 1.0, 1e-3, 1e-8, 1e-14])
def test_forward_stage_solve_without_pivoting_equals_the_dense_solve(c, monkeypatch):
    """Forward in time (every flow of the library) the K class matrices c I + (G/n) diag(s_k)
    are column scalings of positive definite ones, so the logit flow inverts them without
    pivoting (``small_inverse``, on the CPU for n = 16 ... 28): the stage solution still
    equals the dense solve, down to the tiny c of the last steps."""
    from jaxdistill.multiclass.learners import logit_shifted_solver
    from jaxdistill.students import links
    from jaxdistill.students.small_inverse import prefers_unpivoted_inverse

    n, K = 20, 6
    assert prefers_unpivoted_inverse(n) or jax.default_backend() != "cpu"  # the CPU's choice at n = 20
    monkeypatch.setattr(links, "prefers_unpivoted_inverse", lambda m: True)  # the path under test, on any backend
    with precision():
        G, Z, M, rhs, dense = _stage_system(n, K, 30, c, 1, seed=24)
        x = logit_shifted_solver(G / n, forward_only=True)(0.0, Z, None, c, 1)(rhs)
        pivoted = logit_shifted_solver(G / n)(0.0, Z, None, c, 1)(rhs)
        M, x, pivoted, dense, rhs = (np.asarray(a) for a in (M, x, pivoted, dense, rhs))
    assert np.max(np.abs(x.reshape(n, K).sum(axis=1))) <= 1e-12 * np.max(np.abs(x))
    assert np.linalg.norm(x - dense) / np.linalg.norm(dense) <= 1e-10
    assert np.linalg.norm(M @ x - rhs) / np.linalg.norm(rhs) <= 1e-10
    assert np.linalg.norm(x - pivoted) / np.linalg.norm(pivoted) <= 1e-10


def test_forward_only_stage_solve_refuses_backward_time(monkeypatch):
    """A stage solver made for forward time returns NaN for a backward stage (s = -1), where
    elimination without pivoting is not safe, rather than an unchecked solution; the default
    (pivoted) solver serves both directions."""
    from jaxdistill.multiclass.learners import logit_shifted_solver
    from jaxdistill.students import links

    monkeypatch.setattr(links, "prefers_unpivoted_inverse", lambda m: True)  # as on the CPU at n = 20
    n, K = 20, 6
    with precision():
        G, Z, M, rhs, dense = _stage_system(n, K, 30, 1e-3, -1, seed=25)
        x = np.asarray(logit_shifted_solver(G / n, forward_only=True)(0.0, Z, None, 1e-3, -1)(rhs))
        both = np.asarray(logit_shifted_solver(G / n)(0.0, Z, None, 1e-3, -1)(rhs))
    assert np.isnan(x).all()
    assert np.linalg.norm(both - np.asarray(dense)) / np.linalg.norm(np.asarray(dense)) <= 1e-10


def test_risk_zero_when_n_at_least_d():
    X, W = _data(300, 8, 4, seed=5)
    task = MultiClassPoolTask(X, W, test_inputs=RNG.normal(size=(500, 8)))
    res = jd.distill(1, task, 10, 4, method="flow", chunk_size=4)
    s = res.summary()
    assert s["risk_mean"] == 0.0 and s["num_failed"] == 0
    assert s["max_rel_dist_closed_form"] <= 1e-6


def test_temperature_invariance_converged_and_its_failure_at_finite_time():
    with precision():
        X, W_star = _data(10, 20, 4, seed=7)
        X = jnp.asarray(X)
        U = X @ jnp.asarray(W_star).T
        X_test = jnp.asarray(np.random.default_rng(8).normal(size=(2000, 20)))
        preds, scaled, early = [], [], []
        for T in (0.5, 1.0, 2.0, 4.0):
            V = target_log_probs(U, None, MultiTargetSpec("soft", T))
            out = SoftmaxFlowLearner().fit(None, InputsDesign(X), V)
            assert int(out.status) == jd.Status.CONVERGED
            preds.append(np.asarray(jnp.argmax(X_test @ out.W.T, axis=1)))
            scaled.append(np.asarray(out.W) * T)
            W_t, status, *_ = softmax_gradient_flow(X, V, FlowConfig(t_max=0.5))
            assert int(status) == jd.Status.NOT_CONVERGED
            early.append(np.asarray(jnp.argmax(X_test @ W_t.T, axis=1)))
        for p, s in zip(preds[1:], scaled[1:]):
            np.testing.assert_array_equal(p, preds[0])  # the predicted class does not depend on T
            np.testing.assert_allclose(s, scaled[0], rtol=0, atol=1e-7 * np.abs(scaled[0]).max())
        # stopped at a fixed time, the temperature changes predictions
        assert np.mean(early[0] != early[-1]) > 0.005


def test_mixed_target_limit_interpolates_centred_log_targets():
    with precision():
        X, W_star = _data(8, 16, 3, seed=9)
        X = jnp.asarray(X)
        U = X @ jnp.asarray(W_star).T + jnp.asarray(np.random.default_rng(1).normal(size=(8, 3)))
        y = jnp.asarray([0, 1, 2, 0, 1, 2, 2, 1])
        rho, T = 0.3, 2.0
        V = target_log_probs(U, y, MultiTargetSpec("mixed", T, rho))
        p = rho * np.asarray(jax.nn.softmax(U / T, axis=1)) + (1 - rho) * np.eye(3)[np.asarray(y)]
        np.testing.assert_allclose(np.asarray(jax.nn.softmax(V, axis=1)), p, rtol=1e-13)
        out = SoftmaxFlowLearner().fit(None, InputsDesign(X), V)
        assert int(out.status) == jd.Status.CONVERGED
        logp = np.log(p)
        target = logp - logp.mean(axis=1, keepdims=True)
        np.testing.assert_allclose(np.asarray(X @ out.W.T), target, atol=1e-6 * np.abs(target).max())
        # rho = 1 is soft, rho = 0 is the ground truth one-hot (no finite minimiser)
        V1 = target_log_probs(U, y, MultiTargetSpec("mixed", T, 1.0))
        np.testing.assert_allclose(np.asarray(centre(V1)), np.asarray(centre(U / T)), atol=1e-13)
        V0 = target_log_probs(U, y, MultiTargetSpec("mixed", T, 0.0))
        assert not MultiTargetSpec("mixed", T, 0.0).has_finite_minimiser
        np.testing.assert_array_equal(np.isfinite(np.asarray(V0)), np.eye(3)[np.asarray(y)] > 0)
        # one formula for every rho, exact at the ends: log p itself at rho = 1, the hard labels at rho = 0,
        # with rho a traced argument of a compiled function as in the runner (jaxdistill.traced)
        logp_T = jax.nn.log_softmax(U / T, axis=1)
        traced = jax.jit(lambda spec: target_log_probs(U, y, spec))
        for r, want in ((1.0, logp_T), (0.0, jnp.where(jnp.asarray(np.eye(3)[np.asarray(y)] > 0), 0.0, -jnp.inf)),
                        (rho, V)):
            got = traced(lift_traced(MultiTargetSpec("mixed", T, r)))
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _pool(P=50, d=6, K=3, M=20):
    rng = np.random.default_rng(0)
    return dict(inputs=rng.normal(size=(P, d)), teacher_logits=rng.normal(size=(P, K)),
                test_inputs=rng.normal(size=(M, d)), test_teacher_logits=rng.normal(size=(M, K)),
                labels=rng.integers(0, K, P), test_labels=rng.integers(0, K, M))


@pytest.mark.parametrize("change,message", [
    ({"w_star": np.ones((3, 6))}, "exactly one teacher"),
    ({"teacher_logits": None}, "exactly one teacher"),
    ({"teacher_logits": np.ones((49, 3))}, "50 rows"),
    ({"test_teacher_logits": None}, "need test_teacher_logits"),
    ({"test_teacher_logits": np.ones((20, 4))}, "4 classes but the teacher has 3"),
    ({"labels": np.full(50, 3)}, "labels in 0..2"),
    ({"labels": np.full(50, 0.5)}, "integer class labels"),
    ({"test_labels": None}, "need test_labels"),
    ({"labels": None}, "test_labels needs labels"),
    ({"test_inputs": np.ones((20, 5))}, "test_inputs must have shape [M, 6]"),
    ({"inputs": np.ones((50, 6)), "bogus": np.ones(3)}, "unknown array"),
])
def test_pool_validation(change, message):
    arrays = _pool()
    for k, v in change.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    with pytest.raises(jd.JaxDistillError) as e:
        pool_task_from_arrays(arrays)
    assert message in str(e.value)


def test_binary_pool_with_logits_and_labels():
    a = _pool(K=2)
    a["teacher_logits"] = a["teacher_logits"][:, 0]
    a["test_teacher_logits"] = a["test_teacher_logits"][:, 0]
    a["labels"] = (a["labels"] > 0).astype(np.int64)
    task = pool_task_from_arrays(a)
    assert task.num_classes == 2 and task.has_labels
    with pytest.raises(jd.JaxDistillError, match="labels in 0..1"):
        pool_task_from_arrays({**a, "labels": np.full(50, 2)})


def test_cli_pool_k_classes_and_mixed(tmp_path, capsys):
    X, W = _data(200, 10, 4, seed=2)
    f = tmp_path / "pool.npz"
    np.savez(f, inputs=X, w_star=W, test_inputs=RNG.normal(size=(300, 10)))
    for n, out in ((5, tmp_path / "a"), (12, tmp_path / "b")):
        code = main(["run", "--task", "pool", "--pool-file", str(f), "--n", str(n), "--num-sets", "4", "--quiet",
                     "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        s = json.loads((out / "summary.json").read_text())
        assert s["num_classes"] == 4 and s["max_rel_dist_closed_form"] <= 1e-6
        assert s["risk_se"] is not None and (n < 10 or s["risk_mean"] == 0.0)
    g = tmp_path / "logits.npz"
    a = _pool(P=100, d=10, K=4)
    np.savez(g, **a)
    out = tmp_path / "c"
    code = main(["run", "--task", "pool", "--pool-file", str(g), "--n", "5", "--num-sets", "4", "--quiet",
                 "--targets", "mixed", "--soft-ratio", "0.5", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert {"error_mean", "error_se", "risk_mean", "risk_se", "num_classes"} <= set(s)


@pytest.mark.parametrize("argv,message", [
    (["--targets", "mixed", "--soft-ratio", "0.5"], "needs ground-truth labels"),
    (["--soft-ratio", "0.5"], "--soft-ratio applies only to --targets mixed"),
    (["--task-seed", "3"], "--task-seed applies to --task gaussian only with --classes"),
    (["--label-noise", "0.5"], "--label-noise applies to --task gaussian only with --classes"),
])
def test_cli_refuses_mixed_without_labels(capsys, argv, message):
    code = main(["run", "--task", "gaussian", "--d", "10", "--n", "3", "--num-sets", "2", "--quiet", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_k_class_runs_split_over_hosts(monkeypatch, tmp_path, capsys):
    """K-class runs take several hosts as binary ones do (tests/test_hosts.py runs two real processes): with
    jax.process_count() patched to 2, process 1 writes only its chunks (c % 2 == 1) and no summary (then waits
    for process 0's, here in vain: --wait-timeout); on one host --wait-timeout (multi-host only) is refused by name."""
    base = ["run", "--task", "gaussian", "--classes", "3", "--d", "10", "--n", "3", "--num-sets", "8",
            "--chunk-size", "2", "--method", "closed-form", "--num-test", "100", "--quiet"]
    out = tmp_path / "two_hosts"
    assert main([*base, "--out", str(out), "--wait-timeout", "10"]) == 2
    err = capsys.readouterr().err
    assert "--wait-timeout" in err and "multi-host" in err, err
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    assert main([*base, "--out", str(out), "--wait-timeout", "0.5"]) == 2
    assert "--wait-timeout: 2 chunks" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "chunks").iterdir()) == ["chunk_00001.npz", "chunk_00003.npz"]
    assert not (out / "summary.json").exists()


def test_gaussian_k_classes_task():
    task = MultiClassGaussianTask(12, 5, seed=1)
    res = jd.distill(0, task, 6, 4, method="closed-form", num_test=500, chunk_size=4, keep_students=True)
    s = res.summary()
    assert s["num_classes"] == 5 and s["risk_method"] == "mc" and 0.0 < s["risk_mean"] < 1.0
    # the closed form is the flow's limit (fact 8): centred classes, the same students and risks as the flow's
    flow = jd.distill(0, task, 6, 4, method="flow", num_test=500, chunk_size=4, keep_students=True)
    np.testing.assert_allclose(res.students.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(flow.students, res.students, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(flow.risk, res.risk, atol=1e-6)


def test_label_noise_is_the_teacher_plus_a_second_random_teacher(tmp_path, capsys):
    """``label_noise=S``: ground truth W* + S W' (W' the teacher of seed + 1); S = 0 labels by the teacher
    itself (teacher error 0), a larger S errs more; the option reaches the command line, is traced (points that
    differ only in it compile nothing new) and is part of the run's configuration (a resume with another S is
    refused)."""
    from jaxdistill.multiclass import random_teacher
    from jaxdistill.sweep import CompileCounter

    task = MultiClassGaussianTask(12, 3, seed=4, teacher_norm=2.0, label_noise=0.7)
    want = random_teacher(12, 3, 4, 2.0) + 0.7 * random_teacher(12, 3, 5, 2.0)
    assert np.array_equal(np.asarray(task.label_w), want) and task.config()["label_noise"] == 0.7
    with pytest.raises(jd.JaxDistillError, match="label_w .* or label_noise"):
        MultiClassGaussianTask(12, 3, label_w=want, label_noise=0.7)
    errors = []
    for S in (0.0, 0.3, 3.0):
        res = jd.distill(0, MultiClassGaussianTask(12, 3, seed=4, label_noise=S), 5, 4, method="closed-form",
                         num_test=2000, targets=MultiTargetSpec("mixed", 1.0, 0.5))
        errors.append(res.teacher_error)
    assert errors[0] == 0.0 and errors[0] < errors[1] < errors[2]
    base = ["run", "--task", "gaussian", "--classes", "3", "--d", "12", "--task-seed", "4", "--n", "5",
            "--num-sets", "4", "--method", "closed-form", "--num-test", "2000", "--targets", "mixed",
            "--soft-ratio", "0.5", "--quiet"]
    assert main([*base, "--label-noise", "0.3", "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["teacher_error"] == errors[1]
    with CompileCounter() as compiles:
        assert main([*base, "--label-noise", "3", "--out", str(tmp_path / "b")]) == 0
    assert compiles.count == 0
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["teacher_error"] == errors[2]
    assert main([*base, "--label-noise", "3", "--out", str(tmp_path / "a")]) == 2  # another S, same folder
    assert "label_noise" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--label-noise", "-0.1"])
    assert "--label-noise must be a finite real number >= 0.0" in capsys.readouterr().err
