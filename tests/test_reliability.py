"""Issue 7: failures reported (never averaged), reproducible, resumable after
SIGKILL, float32 accuracy, progress bar.  (Sharding: test_sharding.py;
random bad input: test_properties.py; notebooks: test_notebooks.py.)"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill import precision
from jaxdistill.cli import main

D, N = 10, 5  # one compiled shape shared by most tests in this file
TIMING_KEYS = {"elapsed_s", "sets_computed_this_run"}


def _cli(*args) -> list[str]:
    return [sys.executable, "-c", "import sys; from jaxdistill.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def _nan_poisoned_task(rate=0.3):
    """A CustomTask whose sampler returns NaN inputs for some keys."""

    def sampler(key, num):
        x = jax.random.normal(key, (num, D))
        bad = jax.random.uniform(jax.random.fold_in(key, 99)) < rate
        return jnp.where(bad, jnp.nan, x)

    return jd.CustomTask(sampler, np.eye(D)[0]), sampler


def _expected_bad(seed, num_sets, rate=0.3):
    with precision():
        key = jax.random.PRNGKey(seed)
        out = []
        for i in range(num_sets):
            k_data = jax.random.split(jax.random.fold_in(key, i))[0]
            if float(jax.random.uniform(jax.random.fold_in(k_data, 99))) < rate:
                out.append(i)
    return out


def test_poisoned_sets_are_reported_with_index_and_reason_and_excluded():
    task, _ = _nan_poisoned_task()
    B = 12
    res = jd.distill(3, task, N, B, chunk_size=4, num_test=2000, keep_students=True)
    bad = _expected_bad(3, B)
    assert 0 < len(bad) < B
    s = res.summary()
    assert [f["index"] for f in s["failed_sets"]] == bad
    assert {f["status"] for f in s["failed_sets"]} == {"non_finite"}
    assert s["num_failed"] == len(bad) and s["num_sets"] == B - len(bad) and s["num_sets_requested"] == B
    ok = np.setdiff1d(np.arange(B), bad)
    assert np.isclose(s["risk_mean"], np.mean(res.risk[ok]), rtol=0, atol=1e-15)
    assert np.all(np.isfinite(res.students[ok])) and np.all(res.status[ok] == 0)
    assert s["max_rel_dist_closed_form"] < 1e-6  # the good sets still reach Thm 1's limit
    # summary is valid JSON with no NaN anywhere
    json.loads(json.dumps(s, allow_nan=False))


def test_degenerate_pool_sets_rank_deficient_and_cli_strict(tmp_path):
    """A pool with a duplicated row and a zero row: every set that draws
    both copies or the zero row is rank deficient, by index, in the CLI's
    summary.json and sets.csv; --strict exits 3."""
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(9, D))
    pool[1] = pool[0]
    pool[5] = 0.0
    w = rng.normal(size=D)
    f = tmp_path / "pool.npz"
    np.savez(f, inputs=pool, w_star=w)
    task = jd.PoolTask(pool, w)
    B = 10
    with precision():
        X = np.asarray(jd.sample_transfer_sets(0, task, N, B))
    expect = [i for i in range(B) if np.linalg.matrix_rank(X[i]) < N]
    assert 0 < len(expect) < B
    out = tmp_path / "run"
    rc = main(["run", "--task", "pool", "--pool-file", str(f), "--n", str(N), "--num-sets", str(B), "--method",
               "closed-form", "--chunk-size", "4", "--out", str(out), "--quiet", "--strict"])
    assert rc == 3
    s = json.loads((out / "summary.json").read_text())
    assert [x["index"] for x in s["failed_sets"]] == expect
    assert {x["status"] for x in s["failed_sets"]} == {"rank_deficient"}
    assert s["num_sets"] == B - len(expect)
    rows = list(csv.DictReader((out / "sets.csv").open()))
    assert [int(r["index"]) for r in rows if r["status_name"] != "converged"] == expect
    ok_risk = [float(r["risk"]) for r in rows if r["status_name"] == "converged"]
    assert s["risk_mean"] == pytest.approx(np.mean(ok_risk), abs=1e-15)
    # without --strict the same run (resumed from its chunks) exits 0
    assert main(["run", "--task", "pool", "--pool-file", str(f), "--n", str(N), "--num-sets", str(B), "--method",
                 "closed-form", "--chunk-size", "4", "--out", str(out), "--quiet"]) == 0


def test_tiny_max_steps_fail_every_set_and_strict_exits_3(tmp_path, capsys):
    out = tmp_path / "ms"
    rc = main(["run", "--d", str(D), "--n", str(N), "--num-sets", "6", "--chunk-size", "4", "--max-steps", "2",
               "--out", str(out), "--quiet", "--strict"])
    assert rc == 3
    assert "--strict: 6 transfer set(s) failed" in capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["num_sets"] == 0 and s["num_failed"] == 6 and s["risk_mean"] is None
    assert [f["index"] for f in s["failed_sets"]] == list(range(6))
    assert {f["status"] for f in s["failed_sets"]} == {"max_steps_reached"}


@pytest.mark.parametrize("method, sizes", [("flow", (4,)), ("closed-form", (1, 3, 9))])
def test_bit_identical_for_any_chunk_size_and_on_rerun(method, sizes):
    """Same seed: bit-identical students, risks and statistics for chunk
    sizes 1 (per-device batch padded to 2), 3, 4, 9 and on a rerun.  (The
    flow over chunk sizes: test_core; over device counts: test_sharding.)"""
    task = jd.KappaPolynomialTask(D, 1.0)
    ref = jd.distill(11, task, N, 9, chunk_size=4, method=method, keep_students=True)
    strip = lambda s: {k: v for k, v in s.items() if k not in TIMING_KEYS and k != "config"}
    for cs in sizes:
        r = jd.distill(11, task, N, 9, chunk_size=cs, method=method, keep_students=True)
        np.testing.assert_array_equal(r.students, ref.students)
        np.testing.assert_array_equal(r.risk, ref.risk)
        np.testing.assert_array_equal(r.num_steps, ref.num_steps)
        assert strip(r.summary()) == strip(ref.summary())
    # each set's key depends only on (seed, global index): set 5 alone
    one = jd.sample_transfer_sets(11, task, N, 1, start=5)
    np.testing.assert_array_equal(np.asarray(one[0]), np.asarray(jd.sample_transfer_sets(11, task, N, 9)[5]))


def _kill_after_chunks(cmd, chunk_dir: Path, min_chunks: int, env) -> int:
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 240:
            if chunk_dir.exists() and len(list(chunk_dir.glob("chunk_*.npz"))) >= min_chunks:
                p.send_signal(signal.SIGKILL)
                break
            if p.poll() is not None:
                break
            time.sleep(0.01)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    return p.returncode


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    """Kill `jaxdistill run` with SIGKILL mid-run, rerun the same command:
    the result equals an uninterrupted run's; a different config is refused."""
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jaxcache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    B, C = 300, 2
    args = ["run", "--d", str(D), "--n", str(N), "--num-sets", str(B), "--chunk-size", str(C), "--seed", "7"]
    out_k, out_u = tmp_path / "killed", tmp_path / "uninterrupted"
    rc = _kill_after_chunks(_cli(*args, "--out", str(out_k), "--quiet"), out_k / "chunks", 3, env)
    assert rc == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = len(list((out_k / "chunks").glob("chunk_*.npz")))
    assert not (out_k / "summary.json").exists() and 3 <= done_before < B // C
    r = subprocess.run(_cli(*args, "--out", str(out_k), "--json"), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"resuming {out_k}: {done_before} of {B // C} chunks ({done_before * C} sets) already done" in r.stderr
    resumed = json.loads((out_k / "summary.json").read_text())
    assert resumed["sets_computed_this_run"] == B - done_before * C
    r2 = subprocess.run(_cli(*args, "--out", str(out_u), "--quiet"), env=env, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr
    full = json.loads((out_u / "summary.json").read_text())
    strip = lambda s: {k: v for k, v in s.items() if k not in TIMING_KEYS}
    assert strip(resumed) == strip(full)
    assert (out_k / "sets.csv").read_text() == (out_u / "sets.csv").read_text()
    (tmp_path / "interruption.json").write_text(json.dumps({"sets_before_kill": done_before * C, "num_sets": B}))
    print(f"\nSIGKILL after {done_before} of {B // C} chunks ({done_before * C} of {B} sets); resumed == uninterrupted")
    # a different configuration on the same folder is refused, naming the difference
    rc = main([*args[:-1], "8", "--out", str(out_k), "--quiet"])
    assert rc == 2


def test_different_config_refused_and_corrupt_chunk_recomputed(tmp_path, capsys):
    out = tmp_path / "r"
    base = ["run", "--d", str(D), "--n", str(N), "--num-sets", "8", "--chunk-size", "4", "--method", "closed-form",
            "--out", str(out), "--quiet"]
    assert main(base) == 0
    first = (out / "sets.csv").read_text()
    assert main([*base, "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "holds a run with a different configuration (differs in: seed)" in err and "--out" in err
    # damage one chunk file (truncate): it is detected, removed and recomputed
    c1 = out / "chunks" / "chunk_00001.npz"
    c1.write_bytes(c1.read_bytes()[:50])
    assert main([*base[:-1]]) == 0
    assert "corrupt" in capsys.readouterr().err
    assert (out / "sets.csv").read_text() == first


def test_float32_selectable_and_accuracy_stated():
    """float32: flows stop at newton_tol 1e-5 (raised from the 1e-9 default,
    recorded in the config); students are float32 and within 1e-4 relative
    distance of the float64 closed form of the same sets."""
    task = jd.KappaPolynomialTask(D, 1.0)
    before = jax.config.read("jax_enable_x64")
    r32 = jd.distill(0, task, N, 8, chunk_size=4, dtype="float32", keep_students=True)
    assert jax.config.read("jax_enable_x64") == before
    assert r32.students.dtype == np.float32 and r32.config["dtype"] == "float32"
    assert r32.config["flow"]["newton_tol"] == 1e-5
    assert r32.summary()["num_failed"] == 0
    with precision("float32"):
        X32 = np.asarray(jd.sample_transfer_sets(0, task, N, 8, dtype="float32"))
    with precision():
        X = jnp.asarray(X32.astype(np.float64))
        w_hat = np.asarray(jax.vmap(jd.closed_form)(X, jd.teacher_logits(X, task.w_star)))
    rel = np.linalg.norm(r32.students - w_hat, axis=1) / np.linalg.norm(w_hat, axis=1)
    print(f"\nfloat32 flow: max rel distance to float64 closed form {rel.max():.2e}")
    assert rel.max() < 1e-4
    r64 = jd.distill(0, task, N, 8, chunk_size=4, keep_students=True)
    assert r64.students.dtype == np.float64 and r64.config["flow"]["newton_tol"] == 1e-9
    # the CLI refuses a float32 tolerance float32 cannot certify
    assert main(["run", "--dtype", "float32", "--newton-tol", "1e-9", "--quiet"]) == 2


def test_progress_bar_shows_sets_rate_and_time_left_and_quiet_silences(capsys):
    base = ["run", "--d", str(D), "--n", str(N), "--num-sets", "8", "--chunk-size", "4", "--method", "closed-form"]
    assert main(base) == 0
    err = capsys.readouterr().err
    assert "8/8" in err and "set/s" in err and "<00:00" in err  # done/total, rate, time left
    assert main([*base, "--quiet"]) == 0
    cap = capsys.readouterr()
    assert cap.err == "" and "expected transfer risk" in cap.out
