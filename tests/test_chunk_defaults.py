"""Default chunk sizes follow the backend (``runner.default_chunk_size``):
at most 256 sets on the CPU, on an accelerator as many as fit in a quarter
of the smallest device's memory at 32 working copies of a set's inputs, at
most 65,536 per device, times the device count.  Accelerators are stood in
for by objects with a platform and memory statistics (the GPU rates are
measured by ``python -m benchmarks --gpu-check``)."""

from __future__ import annotations

import pytest

import jaxdistill as jd
from jaxdistill import runner
from jaxdistill.cli import main
from jaxdistill.simulate import setup_run

GIB = 2**30


class FakeAccelerator:
    def __init__(self, memory: int | None, platform: str = "gpu"):
        self.platform, self._memory = platform, memory

    def memory_stats(self):
        return None if self._memory is None else {"bytes_limit": self._memory, "bytes_in_use": 0}


@pytest.mark.parametrize("n, d, want", [(20, 21, 256), (20, 1000, 256), (100, 1000, 83), (400, 4000, 5)])
def test_cpu_default_is_bounded_memory_at_most_256(n, d, want):
    assert runner.default_chunk_size(n, d) == want == min(256, (64 * 2**20) // (8 * n * d))


def test_accelerator_default_fills_a_quarter_of_the_smallest_device():
    h100 = FakeAccelerator(80 * GIB)
    gram = runner.default_chunk_size(20, 21, devices=[h100])  # the default workload's Gram sets: 3.4 kB each
    assert gram == runner.ACCELERATOR_CHUNK_CAP == 65_536
    inputs = runner.default_chunk_size(20, 1000, devices=[h100])  # inputs [20, 1000]: 160 kB each
    assert inputs == (20 * GIB) // (32 * 8 * 20 * 1000) == 4194
    assert runner.default_chunk_size(20, 1000, devices=[h100, h100]) == 2 * 4194  # per device, times devices
    assert runner.default_chunk_size(20, 1000, devices=[h100, FakeAccelerator(40 * GIB)]) == 2 * 2097
    unknown = FakeAccelerator(None, platform="tpu")  # reports no memory: 16 GiB assumed
    assert runner.default_chunk_size(20, 1000, devices=[unknown]) == (4 * GIB) // (32 * 8 * 20 * 1000)
    assert runner.default_chunk_size(10_000, 10_000, devices=[h100]) == 1  # never 0


def test_runs_take_the_default_of_their_backend(monkeypatch):
    """``jd.distill`` and ``jaxdistill run`` plan with the same rule: 256 sets on this CPU; with an
    accelerator's devices, its default (and at most the number of sets)."""
    task = jd.KappaPolynomialTask(1000, 1.0)
    assert setup_run(0, task, 20, 1000).plan.chunk_size == 256
    assert setup_run(0, task, 20, 100).plan.chunk_size == 100
    monkeypatch.setattr(runner.jax, "local_devices", lambda: [FakeAccelerator(80 * GIB)])
    assert setup_run(0, task, 20, 1_000_000).plan.chunk_size == 65_536
    assert setup_run(0, task, 20, 1_000_000, sampler="inputs").plan.chunk_size == 4194


def test_run_help_states_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "on the CPU bounded memory, at most 256" in text and "at most 65536 per device" in text
