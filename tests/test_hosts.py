"""Issue 23 point 6: several hosts for real.  Two processes on 127.0.0.1
(CPU backend) call ``jax.distributed.initialize`` through ``jaxdistill run``
/ ``sweep --coordinator --num-processes --process-id`` and share one
output folder; their results are bit-identical to one process's, for a
binary run with ``--monotonicity``, a K-class run, a kernel-student run and
a sweep, and after one process of a run is killed and both are restarted."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxdistill import hosts
from jaxdistill.keys import set_key_pair
from jaxdistill.runner import SetProgram
from jaxdistill.status import Status

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds, any one subprocess (they take ~10-30 s each)

# the per-set columns and summary keys that say how (not what) a run computed
TIMING = {"elapsed_s", "sets_computed_this_run", "num_processes", "seconds"}

BINARY = ["run", "--d", "10", "--n", "4", "--num-sets", "24", "--chunk-size", "2", "--method", "closed-form",
          "--monotonicity", "--seed", "3"]
CASES = {
    "kclass": ["run", "--task", "gaussian", "--classes", "3", "--d", "6", "--n", "4", "--num-sets", "10",
               "--chunk-size", "2", "--method", "closed-form", "--num-test", "300", "--seed", "4"],
    "kernel": ["run", "--task", "gaussian", "--classes", "3", "--d", "6", "--n", "4", "--num-sets", "10",
               "--chunk-size", "2", "--student", "kernel", "--kernel", "rbf", "--bandwidth", "2",
               "--num-test", "300", "--seed", "5"],
    # 3 points of 3 chunks: numbered 0..8 in one sequence, so each process has chunks of every point
    "sweep": ["sweep", "--d", "10", "--n", "4", "--num-sets", "6", "--chunk-size", "2", "--method", "closed-form",
              "--grid", "seed=1,2,3"],
}

# each process runs the commands one after another in one jax.distributed session (one start-up)
DRIVER = """
import json, sys
from jaxdistill.cli import main
cases, root, extra = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
for name, argv in cases.items():
    rc = main([*argv, "--quiet", "--out", f"{root}/{name}", *extra])
    if rc:
        sys.exit(rc)
"""


def _env(tmp_path):
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                XLA_FLAGS="--xla_cpu_multi_thread_eigen=false", JAX_PLATFORMS="cpu",
                JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jaxcache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _host_args(port: int | None, pid: int) -> list[str]:
    if port is None:  # JAX's environment says it (_cluster_env)
        return []
    return ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(pid)]


def _cluster_env(env, port: int, pid: int) -> dict:
    """JAX's environment for plain ``jax.distributed.initialize()``: the coordinator from JAX_COORDINATOR_ADDRESS,
    the process count and index from a (simulated) SLURM job step, as jax's cluster detection reads them."""
    return dict(env, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", SLURM_JOB_ID="1", SLURM_STEP_NODELIST="127.0.0.1",
                SLURM_NTASKS="2", SLURM_PROCID=str(pid), SLURM_LOCALID=str(pid))


def _start_pair(cmd_of, env, via_env: bool = False) -> list[subprocess.Popen]:
    port = _free_port()
    env = dict(env, JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}")  # loopback only (jax's default: [::]:port)
    return [subprocess.Popen(cmd_of(None if via_env else port, pid), env=_cluster_env(env, port, pid) if via_env else env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for pid in (0, 1)]


def _finish(procs, timeout=TIMEOUT) -> list[tuple[int, str]]:
    out = []
    try:
        for p in procs:
            text, _ = p.communicate(timeout=timeout)
            out.append((p.returncode, text))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


def _table(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _summary(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMING}


def _assert_same_run(multi: Path, single: Path) -> None:
    assert (multi / "sets.csv").read_text() == (single / "sets.csv").read_text()  # every per-set value, bit for bit
    assert _summary(multi / "summary.json") == _summary(single / "summary.json")
    assert json.loads((multi / "summary.json").read_text())["num_processes"] == 2


@pytest.fixture(scope="module")
def single_runs(tmp_path_factory):
    """Every case in one process (the reference; it also fills the compilation cache)."""
    root = tmp_path_factory.mktemp("single")
    cases = {"binary": BINARY, **CASES}
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases), str(root)], env=_env(root.parent),
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return root


def test_two_processes_equal_one(single_runs, tmp_path):
    """K-class, kernel-student and sweep runs by two jax.distributed processes: every per-set value and every
    summary number equals one process's; each process computed only its chunks."""
    root = tmp_path / "two"
    procs = _start_pair(lambda port, pid: [sys.executable, "-c", DRIVER, json.dumps(CASES), str(root),
                                           *_host_args(port, pid)], _env(single_runs.parent))
    for rc, text in _finish(procs):
        assert rc == 0, text[-4000:]
    for name in ("kclass", "kernel"):
        _assert_same_run(root / name, single_runs / name)
        assert json.loads((root / name / "summary.json").read_text())["sets_computed_this_run"] == 6  # chunks 0, 2, 4
    assert _table(root / "sweep" / "sweep.csv") == _table(single_runs / "sweep" / "sweep.csv")
    for seed in (1, 2, 3):
        _assert_same_run(root / "sweep" / "points" / f"seed={seed}", single_runs / "sweep" / "points" / f"seed={seed}")


def test_killed_process_then_resume_equals_one_process(single_runs, tmp_path):
    """A binary run with --monotonicity on two processes: process 0 (the coordinator) is killed with SIGKILL once
    the first chunk is written (process 1 then stops: jax.distributed's coordinator is gone); the same two commands
    started again, this time with JAX's environment instead of the options (plain jax.distributed.initialize()),
    resume from the chunk files and give exactly the one-process result."""
    out = tmp_path / "binary"
    env = _env(single_runs.parent)

    def cmd(port, pid):
        return [sys.executable, "-c", "import sys; from jaxdistill.cli import main; sys.exit(main())", *BINARY,
                "--quiet", "--out", str(out), *_host_args(port, pid)]

    procs = _start_pair(cmd, env)
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT and procs[0].poll() is None:
        if (out / "chunks").exists() and any((out / "chunks").glob("chunk_*.npz")):
            procs[0].send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    results = _finish(procs, timeout=120)
    assert results[0][0] == -signal.SIGKILL, "the run finished before process 0 could be killed: " + results[0][1]
    assert results[1][0] != 0, "process 1 went on without its coordinator: " + results[1][1][-2000:]
    assert not (out / "summary.json").exists()
    mono = out / "monotonicity" / "chunks"
    assert len(list(mono.glob("chunk_*.npz")) if mono.exists() else []) < 12  # the pairs were not all done
    for rc, text in _finish(_start_pair(cmd, env, via_env=True)):
        assert rc == 0, text[-4000:]
    _assert_same_run(out, single_runs / "binary")
    s = json.loads((out / "summary.json").read_text())
    assert s["monotonicity"] == 1.0 and s["monotonicity_num_sets"] == 24


def test_host_options_are_checked_before_anything_runs(tmp_path, capsys):
    from jaxdistill.cli import main

    base = ["run", "--d", "10", "--n", "4", "--num-sets", "2", "--quiet", "--out", str(tmp_path / "x")]
    if not os.environ.get(hosts.COORDINATOR_ENV):
        assert main([*base, "--num-processes", "2", "--process-id", "0"]) == 2
        assert "needs --coordinator HOST:PORT" in capsys.readouterr().err
    assert main([*base, "--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"]) == 2
    assert "--process-id must be in 0..1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--coordinator", "localhost"])
    assert "HOST:PORT" in capsys.readouterr().err
    assert main([*base, "--wait-timeout", "5"]) == 2
    assert "--wait-timeout applies only to multi-host runs" in capsys.readouterr().err


class _Index(SetProgram):
    """Each set's output is its global index (plus a draw from its key)."""

    def one_set(self, key, index, shared):
        import jax
        import jax.numpy as jnp

        return {"value": index + jax.random.uniform(set_key_pair(key, index)[0]),
                "status": jnp.asarray(Status.CONVERGED, jnp.int32)}


def test_run_program_split_wait_timeout_and_merge(tmp_path):
    """runner.run_program(hosts=...) in one process: process 1 of 2 computes the chunks c % 2 == 1 and returns no
    arrays; process 0 computes its chunks and, with process 1's files missing, gives up after --wait-timeout keeping
    its chunks; once they are there it merges every set, equal to one process's run; a sweep's offset shifts the
    split; several processes need a store."""
    import numpy as np

    from jaxdistill.keys import as_key
    from jaxdistill.runner import ChunkPlan, run_program
    from jaxdistill.runstore import RunStore
    from jaxdistill.validation import JaxDistillError

    plan, key = ChunkPlan(num_sets=9, chunk_size=2), as_key(1)
    single = run_program(_Index(), key, plan)
    store = RunStore(tmp_path / "run", {"what": "index"})
    with pytest.raises(JaxDistillError, match="--wait-timeout: 2 chunks"):
        run_program(_Index(), key, plan, store=store, hosts=hosts.Hosts(0, 2, wait_timeout=0.3))
    assert sorted(p.name for p in (tmp_path / "run" / "chunks").iterdir()) == [
        "chunk_00000.npz", "chunk_00002.npz", "chunk_00004.npz"]
    one = run_program(_Index(), key, plan, store=store, hosts=hosts.Hosts(1, 2))
    assert not one.merged and one.arrays == {} and one.sets_computed == 4
    zero = run_program(_Index(), key, plan, store=store, hosts=hosts.Hosts(0, 2, wait_timeout=5))
    assert zero.merged and zero.sets_computed == 0
    np.testing.assert_array_equal(zero.arrays["value"], single.arrays["value"])
    assert hosts.Hosts(0, 2).shifted(3).chunks(5) == [1, 3] and hosts.Hosts(1, 2).shifted(3).chunks(5) == [0, 2, 4]
    with pytest.raises(JaxDistillError, match="shared by all processes"):
        run_program(_Index(), key, plan, hosts=hosts.Hosts(0, 2))
