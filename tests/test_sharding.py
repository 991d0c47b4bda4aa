"""Issue 7, point 5: chunks sharded over several devices (a Mesh over the
batch axis), same numbers as one device; multi-host chunk assignment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill import runner
from jaxdistill.analysis import monotonicity_index
from jaxdistill.cli import main
from jaxdistill.experiments.fig4 import w_delta_risks

D, N, B = 10, 5, 16

EIGHT_DEVICES = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import PartitionSpec
    import jaxdistill as jd
    from jaxdistill import runner, simulate
    from jaxdistill.analysis import monotonicity_index
    from jaxdistill.experiments.fig4 import w_delta_risks
    assert jax.local_device_count() == 8, jax.devices()
    task = jd.KappaPolynomialTask(%(D)d, 1.0)
    out = {}
    for cs in (16, 5):  # per-device batch 2 (16 / 8) and 5 -> padded to 16
        r = jd.distill(3, task, %(N)d, %(B)d, chunk_size=cs, keep_students=True)
        for k in ("students", "risk", "angle", "status", "num_steps"):
            out[f"{k}_{cs}"] = getattr(r, k)
    out["mono"] = monotonicity_index(4, task, %(N)d, %(B)d, chunk_size=5).angle_changes
    out["mono_inputs"] = monotonicity_index(4, task, %(N)d, %(B)d, chunk_size=5, sampler="inputs").angle_changes
    out["fig4"] = w_delta_risks(5, task, %(N)d, %(B)d, (0.0, 1.0), chunk_size=5)[1][0]
    setup = simulate.setup_distill(3, task, %(N)d, 5, learner=jd.FlowLearner())
    with jd.precision():
        res = runner.device_chunk(setup.program, setup.key, setup.plan, 0)
        w = res["students"]
        info = {"spec_ok": w.sharding.spec == PartitionSpec("sets"), "mesh_axes": list(w.sharding.mesh.axis_names),
                "global_shape": list(w.shape),
                "shards": [[list(s.data.shape), s.device.id, s.index[0].start] for s in w.addressable_shards],
                "risk_spec_ok": res["risk"].sharding.spec == PartitionSpec("sets")}
    np.savez(sys.argv[1], **out)
    print("INFO" + json.dumps(info))
    """
) % {"D": D, "N": N, "B": B}


@pytest.fixture(scope="module")
def eight_device_run(tmp_path_factory):
    f = tmp_path_factory.mktemp("shard") / "eight.npz"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8 --xla_cpu_multi_thread_eigen=false")
    r = subprocess.run([sys.executable, "-c", EIGHT_DEVICES, str(f)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.split("INFO", 1)[1])
    with np.load(f) as z:
        return {k: z[k] for k in z.files}, info


def test_eight_devices_give_the_same_numbers_as_one(eight_device_run):
    arrays, _ = eight_device_run
    one = jd.distill(3, jd.KappaPolynomialTask(D, 1.0), N, B, chunk_size=4, keep_students=True)  # 1 device, 4 chunks
    assert np.all(one.status == 0)
    for cs in (16, 5):
        for k in ("students", "risk", "angle", "status", "num_steps"):
            np.testing.assert_array_equal(arrays[f"{k}_{cs}"], getattr(one, k), err_msg=f"{k}, chunk {cs}")
    # the monotonicity index (default sampler and inputs sampler) and Figure 4 run through the same sharded
    # runner: every device computes its sets in lanes of the same shape, so the bits do not depend on how the
    # sets are cut into chunks or spread over devices
    task = jd.KappaPolynomialTask(D, 1.0)
    np.testing.assert_array_equal(arrays["mono"], monotonicity_index(4, task, N, B, chunk_size=3).angle_changes)
    np.testing.assert_array_equal(arrays["mono_inputs"],
                                  monotonicity_index(4, task, N, B, chunk_size=3, sampler="inputs").angle_changes)
    np.testing.assert_array_equal(arrays["fig4"], w_delta_risks(5, task, N, B, (0.0, 1.0), chunk_size=3)[1][0])


def test_chunk_outputs_are_sharded_over_the_sets_axis(eight_device_run):
    _, info = eight_device_run
    assert info["mesh_axes"] == ["sets"] and info["spec_ok"] and info["risk_spec_ok"]
    # chunk of 5 sets on 8 CPU devices: padded to one lane of 16 sets per device (128), one slice per device
    lane = runner.lane_size("cpu")
    assert info["global_shape"] == [8 * lane, D]
    shards = info["shards"]
    assert len(shards) == 8 and len({s[1] for s in shards}) == 8
    assert all(s[0] == [lane, D] for s in shards)
    assert sorted(s[2] for s in shards) == list(range(0, 8 * lane, lane))


def test_padding_and_process_partition():
    assert runner.padded_batch(5, 8) == 16 and runner.padded_batch(16, 8) == 16
    assert runner.padded_batch(17, 8) == 24 and runner.padded_batch(1, 1) == 2
    # with lanes: whole lanes on every device, enough to cover a chunk that starts inside a lane
    assert runner.padded_batch(5, 8, 16) == 128 and runner.padded_batch(1, 1, 16) == 16
    assert runner.padded_batch(16, 1, 16) == 16 and runner.padded_batch(32, 2, 16) == 32
    assert runner.padded_batch(17, 1, 16) == 32 and runner.padded_batch(33, 2, 16) == 64
    assert runner.chunk_window(21, 7, 1, 16) == (16, 32) and runner.chunk_window(32, 16, 1, 16) == (32, 16)
    assert runner.lane_size("cpu") == 16 and runner.lane_size("gpu") is None
    for P in (1, 2, 3, 7):
        parts = [runner.chunks_for_process(10, i, P) for i in range(P)]
        assert sorted(sum(parts, [])) == list(range(10))  # every chunk exactly once
        assert all(c % P == i for i, p in enumerate(parts) for c in p)


def test_multi_host_mode_splits_chunks_and_process_0_summarises(tmp_path, monkeypatch):
    """Two 'hosts' (process_count patched to 2, run one after the other) share one --out: each writes
    only its chunks (c % 2 == i), then waits for the other's (process 1, run first, gives up after
    --wait-timeout with its chunks kept); process 0 writes the summary, equal to a single-process run's.
    tests/test_hosts.py runs two real processes."""
    import jax

    args = ["run", "--d", str(D), "--n", str(N), "--num-sets", "10", "--chunk-size", "2", "--method", "closed-form",
            "--quiet"]
    single = tmp_path / "single"
    assert main([*args, "--out", str(single)]) == 0
    shared = tmp_path / "shared"
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    assert main([*args, "--out", str(shared), "--wait-timeout", "0.5"]) == 2
    assert sorted(p.name for p in (shared / "chunks").iterdir()) == ["chunk_00001.npz", "chunk_00003.npz"]
    assert not (shared / "summary.json").exists()
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    assert main([*args, "--out", str(shared)]) == 0
    s_multi = json.loads((shared / "summary.json").read_text())
    s_single = json.loads((single / "summary.json").read_text())
    drop = {"elapsed_s", "sets_computed_this_run", "num_processes"}
    assert {k: v for k, v in s_multi.items() if k not in drop} == {k: v for k, v in s_single.items() if k not in drop}
    assert s_multi["num_processes"] == 2 and s_multi["sets_computed_this_run"] == 6
    assert (shared / "sets.csv").read_text() == (single / "sets.csv").read_text()
    assert main([*args]) == 2  # multi-host without --out is refused
