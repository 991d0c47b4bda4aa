"""Several hosts (``jax.distributed``): one implementation for ``jaxdistill
run`` and ``jaxdistill sweep``.

A multi-host run is P processes (one per host, or several on one machine)
that run the same command on the same shared ``--out`` folder.  Each
process is started with ``--coordinator HOST:PORT --num-processes P
--process-id I`` (or with JAX's own environment: ``JAX_COORDINATOR_ADDRESS``
and a cluster that ``jax.distributed.initialize()`` detects, e.g. SLURM or
Open MPI), and ``initialize`` (the command's options: ``cli/hosts.py``)
calls ``jax.distributed.initialize`` before anything touches a JAX backend.

The work is split without any cross-process collective:

* every run (the main run, the ``--monotonicity`` pairs, each point of a
  sweep) is a chunked ``runner.run_program`` on a ``runstore.RunStore`` in
  the shared folder; process i of P computes the chunks c with
  c % P == i (``runner.chunks_for_process``) on its LOCAL devices
  (``runner.local_mesh``) and writes each as a chunk file;
* every process then waits for the other processes' chunk files (at most
  ``--wait-timeout`` seconds); process 0 merges them and writes sets.csv /
  summary.json (and a sweep's files), the other processes go on to the
  next run of the command (the ``--monotonicity`` pairs, the next sweep
  point) or exit, so that all reach jax's shutdown barrier together.

Each set's key depends only on the seed and its global index, so the
result is bit-identical to one process's, and a killed multi-host run
resumes like a single-host one: rerun the same commands (any number of
processes), finished chunks are kept.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from dataclasses import dataclass
from typing import Callable

from .validation import JaxDistillError

DEFAULT_WAIT_TIMEOUT = 86400.0
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"


@dataclass(frozen=True)
class Hosts:
    """This process's place in a (possibly single-process) run.

    Attributes:
        process_index: i in 0..P-1 (``jax.process_index()``).
        process_count: P (``jax.process_count()``).
        wait_timeout: seconds process 0 waits for the other processes' chunks.
        offset: added to the chunk index before the split (a sweep numbers
            the chunks of all its points in one sequence, so that points of
            one chunk each are spread over the processes too).
    """

    process_index: int = 0
    process_count: int = 1
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT
    offset: int = 0

    @property
    def several(self) -> bool:
        """True for a multi-host run (P > 1)."""
        return self.process_count > 1

    @property
    def merges(self) -> bool:
        """True on the process that merges the chunks and writes the results (process 0)."""
        return self.process_index == 0

    def chunks(self, num_chunks: int) -> list[int]:
        """The chunks this process computes: (c + offset) % P == i."""
        from .runner import chunks_for_process

        return chunks_for_process(num_chunks, self.process_index, self.process_count, self.offset)

    def shifted(self, offset: int) -> "Hosts":
        """The same process with chunk offset ``offset``."""
        return dataclasses.replace(self, offset=int(offset))

    def sets_of(self, plan) -> int:
        """The number of sets of ``plan`` this process computes."""
        return plan.sets_in(self.chunks(plan.num_chunks)) if self.several else plan.num_sets


SINGLE = Hosts()


def current_hosts(wait_timeout: float | None = None) -> Hosts:
    """The ``Hosts`` of this process from ``jax.process_index()`` / ``jax.process_count()``."""
    import jax

    return Hosts(int(jax.process_index()), int(jax.process_count()),
                 DEFAULT_WAIT_TIMEOUT if wait_timeout is None else float(wait_timeout))


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None, *,
               wait_timeout: float | None = None) -> Hosts:
    """Call ``jax.distributed.initialize`` when the arguments or JAX's
    environment (``JAX_COORDINATOR_ADDRESS``) ask for several processes, and
    return this process's ``Hosts``.  Must run before anything initialises a
    JAX backend.  A process already initialised (e.g. by the caller) is
    accepted when the arguments agree with it.  ``jaxdistill run`` / ``sweep``
    call it with ``--coordinator``, ``--num-processes``, ``--process-id``,
    ``--wait-timeout`` (``cli/hosts.py``)."""
    import jax

    given = {"coordinator_address": coordinator, "num_processes": num_processes, "process_id": process_id}
    if any(v is not None for v in given.values()):
        missing = [opt for opt, v in zip(("--coordinator", "--num-processes", "--process-id"), given.values())
                   if v is None]
        if "--coordinator" in missing and not os.environ.get(COORDINATOR_ENV):
            raise JaxDistillError(f"a multi-host run needs --coordinator HOST:PORT (or {COORDINATOR_ENV}), "
                                  f"--num-processes P and --process-id I (missing: {', '.join(missing)})")
        if num_processes is not None and process_id is not None and process_id >= num_processes:
            raise JaxDistillError(f"--process-id must be in 0..{num_processes - 1} (--num-processes "
                                  f"{num_processes}), got {process_id}")
        _initialize(wait_timeout, **given)
    elif os.environ.get(COORDINATOR_ENV) and not jax.distributed.is_initialized():
        _initialize(wait_timeout)
    hosts = current_hosts(wait_timeout)
    for opt, name, want in (("--num-processes", "process_count", num_processes),
                            ("--process-id", "process_index", process_id)):
        if want is not None and getattr(hosts, name) != want:
            raise JaxDistillError(f"{opt} {want} disagrees with jax.{name}() = {getattr(hosts, name)} (jax.distributed "
                                  "was initialised before with other values)")
    if wait_timeout is not None and not hosts.several:
        raise JaxDistillError("--wait-timeout applies only to multi-host runs (several processes: --num-processes "
                              "P > 1, or jax.process_count() > 1)")
    return hosts


def _initialize(wait_timeout: float | None, **kwargs) -> None:
    """``jax.distributed.initialize`` with the given arguments (the others
    from JAX's environment).  A process whose chunks are done waits for the
    others at jax's shutdown barrier when it exits, for at most
    ``shutdown_timeout_seconds`` where jax has it (>= 0.7; set to
    ``wait_timeout``, at least 300 s) but in any case at most about 5
    minutes (the barrier's RPC deadline, measured with jax 0.10.2; jax 0.6's
    fixed timeout): ``wait_for_chunks`` keeps the processes in step so that
    only process 0's merge of the last run lies between them."""
    import jax

    if jax.distributed.is_initialized():
        return  # the caller's initialisation stands; ``initialize`` checks that it agrees
    extra = {}
    if "shutdown_timeout_seconds" in inspect.signature(jax.distributed.initialize).parameters:
        extra["shutdown_timeout_seconds"] = int(DEFAULT_WAIT_TIMEOUT if wait_timeout is None else max(wait_timeout, 300))
    try:
        jax.distributed.initialize(**{k: v for k, v in kwargs.items() if v is not None}, **extra)
    except (ValueError, TypeError, RuntimeError) as e:
        raise JaxDistillError(f"jax.distributed.initialize failed: {e} (give --coordinator HOST:PORT, --num-processes "
                              "P and --process-id I, or run on a cluster that jax.distributed.initialize() detects)"
                              ) from None


def wait_for_chunks(store, num_chunks: int, hosts: Hosts, say: Callable[[str], None]) -> None:
    """Every process of a multi-host run, once its own chunks are written:
    wait until every chunk file of ``store`` exists (polling the shared
    folder), at most ``hosts.wait_timeout`` seconds.  Process 0 then merges
    them; the other processes wait too, so that all processes move on to
    the next run (and finally exit) together: a process that reaches jax's
    shutdown barrier more than 5 minutes before process 0 is aborted by jax,
    and so is process 0, still at work, unless ``shutdown_timeout_seconds``
    is raised (jax >= 0.7; ``initialize`` does): measured with jax 0.6.2
    and 0.10.2."""
    t0 = time.monotonic()
    missing = [c for c in range(num_chunks) if not store.has_chunk(c)]
    if missing:
        say(f"process {hosts.process_index}: waiting for {len(missing)} chunks of {store.root} from the other "
            "processes")
    while missing:
        if time.monotonic() - t0 > hosts.wait_timeout:
            raise JaxDistillError(f"--wait-timeout: {len(missing)} chunks of {store.root} (first: {missing[0]}) never "
                                  "arrived; the finished chunks are kept: rerun the same commands to compute the rest")
        time.sleep(0.2)
        missing = [c for c in missing if not store.has_chunk(c)]


__all__ = ["Hosts", "SINGLE", "current_hosts", "initialize", "wait_for_chunks", "COORDINATOR_ENV",
           "DEFAULT_WAIT_TIMEOUT"]
