"""Issue 10: one engine (the chunked runner) and no option silently unused.

Each refusal names the option and says when it applies; each newly
reachable path (deep students trained by gd from the CLI, resumable and
failure-reporting monotonicity runs) is exercised with a property of its
output, not merely run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill.analysis import monotonicity_index
from jaxdistill.cli import main
from jaxdistill.runner import ChunkPlan, SetProgram, run_program
from jaxdistill.keys import as_key
from jaxdistill.runstore import RunStore
from jaxdistill.status import Status


def _err(capsys) -> str:
    return capsys.readouterr().err


# ---- refusals: CLI -------------------------------------------------------

@pytest.mark.parametrize(
    "argv, option, when",
    [
        (["--depth", "1", "--width", "64"], "--width", "depth >= 2"),
        (["--depth", "1", "--integrator", "full"], "--integrator", "depth >= 2"),
        (["--depth", "1", "--epsilon", "0.1"], "--epsilon", "depth >= 2"),
        (["--depth", "1", "--init-scale", "0.1"], "--init-scale", "depth >= 2"),
        (["--task", "mnist", "--d", "50"], "--d", "--task kappa, margin, gaussian"),
        (["--task", "gaussian", "--kappa", "2"], "--kappa", "--task kappa, margin"),
        (["--task", "kappa", "--margin", "0.1"], "--margin", "--task margin"),
        (["--task", "kappa", "--pool-file", "x.npz"], "--pool-file", "--task pool"),
        (["--task", "kappa", "--task-seed", "1"], "--task-seed", "--task mnist"),
        (["--method", "closed-form", "--rtol", "1e-3"], "--rtol", "--method flow"),
        (["--method", "gd", "--solver", "Kvaerno5"], "--solver", "--method flow"),
        (["--method", "flow", "--lr", "0.5"], "--lr", "--method gd"),
        (["--method", "closed-form", "--steps", "10"], "--steps", "--method gd"),
        (["--method", "flow", "--optimizer", "adam"], "--optimizer", "--method gd"),
        (["--depth", "2", "--method", "closed-form"], "--method closed-form", "--depth 1"),
        (["--depth", "2", "--method", "gd", "--integrator", "full"], "--integrator", "--method flow"),
        (["--targets", "hard", "--temperature", "2"], "--temperature", "--targets soft"),
        (["--num-test", "100"], "--num-test", "Monte-Carlo"),
        (["--save-students"], "--save-students", "--out"),
        (["--wait-timeout", "10"], "--wait-timeout", "multi-host"),
        (["--method", "closed-form", "--targets", "hard"], "hard", "soft"),
    ],
)
def test_cli_refuses_options_that_would_be_unused(capsys, argv, option, when):
    code = main(["run", "--d", "10", "--n", "3", "--num-sets", "2", "--quiet", *argv]
                if "--d" not in argv and "mnist" not in argv else ["run", "--n", "3", "--num-sets", "2", "--quiet", *argv])
    err = _err(capsys)
    assert code == 2, err
    assert option in err and when in err, err


def test_cli_deep_students_trained_by_gd(tmp_path, capsys):
    """--depth 2 --method gd runs gradient descent on the deep factors; the
    summary's config says so, and it descends: no set's loss (0 at the
    limit) after 200 steps is above its loss after one step, and their sum
    is less than half (from the small initialisation GD leaves the saddle
    at 0 slowly, some sets barely by 200 steps)."""
    out = tmp_path / "deep_gd"
    code = main(["run", "--d", "20", "--n", "5", "--num-sets", "8", "--depth", "2", "--method", "gd",
                 "--steps", "200", "--lr", "0.5", "--out", str(out), "--quiet", "--json"])
    assert code == 0, _err(capsys)
    summary = json.loads((out / "summary.json").read_text())
    cfg = summary["config"]
    assert cfg["depth"] == 2
    assert "gd" in cfg["method"]
    assert cfg["gd"]["steps"] == 200
    assert summary["num_failed"] == 0 and summary["num_sets"] == 8
    assert summary["mean_num_steps"] == 200
    assert main(["run", "--d", "20", "--n", "5", "--num-sets", "8", "--depth", "2", "--method", "gd",
                 "--steps", "1", "--lr", "0.5", "--out", str(tmp_path / "one_step"), "--quiet"]) == 0
    loss = [float(r["loss"]) for r in csv.DictReader(open(out / "sets.csv"))]
    first = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / "one_step" / "sets.csv"))]
    assert all(a <= b for a, b in zip(loss, first)) and sum(loss) < 0.5 * sum(first)


# ---- refusals: Python ----------------------------------------------------

def test_distill_refuses_settings_of_another_method():
    task = jd.KappaPolynomialTask(10, 1.0)
    with pytest.raises(jd.JaxDistillError, match="flow"):
        jd.distill(0, task, 3, 2, method="closed-form", flow=jd.FlowConfig(max_steps=1))
    with pytest.raises(jd.JaxDistillError, match="gd"):
        jd.distill(0, task, 3, 2, method="flow", gd=jd.GDConfig(steps=3))
    with pytest.raises(jd.JaxDistillError, match="method"):
        jd.distill(0, task, 3, 2, method="gd", learner=jd.ClosedFormLearner())
    with pytest.raises(jd.JaxDistillError, match="flow"):
        jd.distill(0, task, 3, 2, learner=jd.FlowLearner(), flow=jd.FlowConfig())


def test_distill_refuses_hard_targets_for_learners_that_need_soft_ones():
    task = jd.KappaPolynomialTask(10, 1.0)
    for learner in (jd.ClosedFormLearner(), jd.WDeltaLearner(0.5)):
        with pytest.raises(jd.JaxDistillError, match="soft"):
            jd.distill(0, task, 3, 2, learner=learner, targets=jd.TargetSpec("hard"))


# ---- the runner ----------------------------------------------------------

class _Fails(SetProgram):
    """A program whose odd sets produce NaN: the runner must report them by index."""

    finite_outputs = ("value",)

    def one_set(self, key, index, shared):
        import jax.numpy as jnp

        value = jnp.where(index % 2 == 1, jnp.nan, index.astype(jnp.float64))
        return {"value": value, "status": jnp.asarray(Status.CONVERGED, jnp.int32)}


def test_runner_reports_non_finite_sets_by_index_and_resumes(tmp_path):
    plan = ChunkPlan(num_sets=7, chunk_size=3)
    run = run_program(_Fails(), as_key(0), plan)
    assert [f["index"] for f in run.failed_sets()] == [1, 3, 5]
    assert all(f["status"] == "non_finite" for f in run.failed_sets())
    np.testing.assert_array_equal(run.arrays["value"][run.ok], [0.0, 2.0, 4.0, 6.0])
    store = RunStore(tmp_path / "r", {"what": "fails"})
    first = run_program(_Fails(), as_key(0), plan, store=store, chunks=[0, 2], collect=False)
    assert first.arrays == {} and first.sets_computed == 4 and sorted(p.name for p in (tmp_path / "r" / "chunks").iterdir()) == [
        "chunk_00000.npz", "chunk_00002.npz"]
    resumed = run_program(_Fails(), as_key(0), plan, store=RunStore(tmp_path / "r", {"what": "fails"}))
    assert resumed.sets_computed == 3  # only chunk 1 was left
    np.testing.assert_array_equal(resumed.arrays["status"], run.arrays["status"])


def test_monotonicity_index_resumes_and_reports_failures(tmp_path):
    task = jd.KappaPolynomialTask(20, 1.0)
    full = monotonicity_index(0, task, 4, 12, chunk_size=4)
    out = tmp_path / "mono"
    first = monotonicity_index(0, task, 4, 12, chunk_size=4, out=str(out))
    assert len(list((out / "chunks").iterdir())) == 3
    again = monotonicity_index(0, task, 4, 12, chunk_size=4, out=str(out))  # all chunks from the store
    np.testing.assert_array_equal(again.angle_changes, full.angle_changes)
    np.testing.assert_array_equal(first.angle_changes, full.angle_changes)
    # a learner that cannot converge: every pair fails and none is averaged
    broken = jd.FlowLearner(jd.FlowConfig(max_steps=1))
    est = monotonicity_index(0, task, 4, 6, broken, chunk_size=3)
    assert est.num_sets == 0 and est.num_failed == 6


def test_after_orders_without_changing_values():
    """sequencing.after(x, *done) returns x bit for bit (NaN and inf included)
    and makes the result depend on every array in done (in the jaxpr)."""
    import jax
    import jax.numpy as jnp

    from jaxdistill.sequencing import after

    x = jnp.array([1.5, -2.0, jnp.inf, -jnp.inf, jnp.nan, 0.0])
    for done in ((jnp.ones(3),), (jnp.array([jnp.nan]), jnp.array([jnp.inf]))):
        np.testing.assert_array_equal(np.asarray(after(x, *done)), np.asarray(x))
    jaxpr = jax.make_jaxpr(lambda a, b: after(a, b))(jnp.ones(2), jnp.ones(3)).jaxpr
    b = jaxpr.invars[1]
    used = {v for eqn in jaxpr.eqns for v in eqn.invars if not hasattr(v, "val")}
    assert b in used  # the output is computed from b
