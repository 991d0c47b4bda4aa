"""The one chunked runner: every batched computation of the library goes through it.

A computation over B transfer sets is a :class:`SetProgram`: what to compute
for ONE set (``one_set(key, index, shared)``, vmapped by the runner) plus an
optional batched post-processing (``finish``).  The runner owns everything
else (docs/design.md, "Data flow"):

* keys: set i gets ``fold_in(key, i)`` (``keys.set_key_pair``), so results do
  not depend on the chunk size, the device count or where a run resumed;
* chunks: sets are processed ``chunk_size`` at a time by one compiled
  function of fixed shape; the last chunk is padded and the padding dropped,
  so B = 100,000 never materialises [B, n, d] and changing B, the seed or
  the data does not recompile;
* devices: each chunk's set indices are sharded over all local devices (a
  ``Mesh`` with one axis ``"sets"``, sharding constraints on the indices and
  on every output; no ``shard_map``, see docs/jax-cpu-lapack-deadlock.md);
* lanes: each device computes its share of a chunk ``lane`` sets at a time
  (a ``lax.map`` over lanes of one vmapped set program, ``lane_size``), so
  the compiled per-set computation has the same batch shape whatever the
  chunk size and the device count, and set i sits at place i % lane of
  lane i // lane: XLA orders the sums inside a vmapped computation by its
  batch shape (and a set's place in it), so this is what makes every set's
  numbers bit-identical for any chunk size and device count; the compiled
  batch is whole lanes on every device from the lane boundary at or before
  the chunk's first set (``padded_batch``, ``chunk_window``);
* compilations: one per program structure and shape; the scalar settings
  a program declares traced (``traced.traced_field``: kappa, margin,
  temperature, delta, ...) are arguments of the compiled chunk, so runs
  that differ only in them, or in the seed, reuse it;
* failures: a per-set ``status`` (``status.Status``) travels with the
  outputs; a set whose outputs named in ``finite_outputs`` are not finite is
  marked ``NON_FINITE``; ``RunOutput.failed_sets()`` lists every failed set
  by global index and reason, and statistics use the other sets;
* resuming: with a ``runstore.RunStore`` every finished chunk is written
  atomically and skipped when the same run is started again;
* progress: an optional bar counting sets.

Several hosts (``jax.distributed``, ``hosts.py``): with ``hosts`` and a
store in a shared folder, process i of P computes the chunks c with
c % P == i (``chunks_for_process``) on its local devices and process 0
merges every process's chunk files; no cross-process collective.
"""

from __future__ import annotations

import abc
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Iterator

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Int, PRNGKeyArray

from ._precision import precision
from .progress import progress_bar
from .status import STATUS_NAMES, Status, is_success
from .traced import lift_traced
from .threefry_lowering import unrolled_threefry
from .validation import JaxDistillError, check_int

SETS_AXIS = "sets"


class SetProgram(eqx.Module):
    """What the runner computes for each transfer set.

    Subclasses are equinox Modules (their array fields are traced, the rest
    static) and implement ``one_set``; the runner vmaps it over the set
    indices of a chunk and then calls ``finish`` on the batch.

    ``one_set`` returns a flat dict of arrays for one set and must contain
    ``"status"`` (an int32 ``status.Status`` code).  ``finite_outputs`` names
    outputs that must be finite for a successful set.
    """

    finite_outputs: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def one_set(self, key: PRNGKeyArray, index: Int[Array, ""], shared: Any) -> dict[str, Array]:
        """The outputs of set ``index`` (use ``keys.set_key_pair(key, index)``)."""

    def finish(self, batch: dict[str, Array], shared: Any) -> dict[str, Array]:
        """Batched post-processing of a chunk's outputs (default: none)."""
        return batch


CPU_CHUNK_CAP = 256
"""Most sets in a default chunk on the CPU (``default_chunk_size``)."""
ACCELERATOR_CHUNK_CAP = 65_536
"""Most sets per device in a default chunk on a GPU or TPU."""
ACCELERATOR_MEMORY_SHARE = 0.25
"""Share of an accelerator's memory a default chunk's sets may take (the
rest is headroom for XLA's temporaries and the other live buffers)."""
WORKING_COPIES = 32
"""A set's working memory on an accelerator, in copies of its [n, width]
float64 inputs (the sampler's draws, the solver's state, stages and
factorisations): a conservative bound for sizing default chunks."""
ASSUMED_DEVICE_BYTES = 16 * 2**30
"""Memory assumed for an accelerator that does not report its own."""


def device_memory_bytes(device) -> int:
    """The memory of ``device`` in bytes as its allocator reports it
    (``memory_stats()["bytes_limit"]``), else ``ASSUMED_DEVICE_BYTES``."""
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - a backend without memory statistics
        stats = {}
    return int(stats.get("bytes_limit") or ASSUMED_DEVICE_BYTES)


def default_chunk_size(n: int, d: int, budget_bytes: int = 256 * 2**20, devices=None) -> int:
    """The default number of sets per chunk for sets of [n, d] numbers on
    ``devices`` (default: this process's local devices).

    On the CPU: the largest chunk whose [C, n, d] float64 sets fit in
    ``budget_bytes`` four times over, at most ``CPU_CHUNK_CAP`` (256): a
    vmapped adaptive solve steps until its slowest set is done, so smaller
    chunks waste fewer steps (measured for d = 1000, n = 20: 1,650 flows/s
    in chunks of 250 vs ~1,000/s in chunks of 1,000).  On a GPU or TPU,
    which need large batches: per device, the most sets whose working
    memory (``WORKING_COPIES`` copies of the inputs) fits in
    ``ACCELERATOR_MEMORY_SHARE`` of the smallest device's memory, at most
    ``ACCELERATOR_CHUNK_CAP``, times the number of devices."""
    devices = jax.local_devices() if devices is None else list(devices)
    set_bytes = 8 * n * d
    if devices[0].platform == "cpu":
        return int(max(1, min(CPU_CHUNK_CAP, budget_bytes // (set_bytes * 4))))
    memory = min(device_memory_bytes(x) for x in devices)
    per_device = int(ACCELERATOR_MEMORY_SHARE * memory) // (WORKING_COPIES * set_bytes)
    return int(max(1, min(ACCELERATOR_CHUNK_CAP, per_device)) * len(devices))


def plan_chunks(num_sets: int, chunk_size: int | None, *, n: int, width: int, fits_per_set: int = 1) -> "ChunkPlan":
    """The chunking of a run: ``chunk_size`` if given (checked), else the
    largest chunk of sets holding [n, width] numbers that fits the memory
    budget of the backend (``default_chunk_size``), divided by
    ``fits_per_set`` (2 for the nested pairs X, [X, x] of the monotonicity
    index), at least 1 and at most ``num_sets``.  The one chunk-size rule of
    every program."""
    num_sets = check_int("num_sets", num_sets, minimum=1)
    check_set_fits_memory(n, width)
    if chunk_size is None:
        chunk_size = min(max(default_chunk_size(n, width) // fits_per_set, 1), num_sets)
    return ChunkPlan(num_sets, check_int("chunk_size", chunk_size, minimum=1))


def memory_bytes(device) -> int:
    """What one set may use at most on ``device``: its allocator's limit on an
    accelerator (``device_memory_bytes``), the machine's physical memory on
    the CPU (``ASSUMED_DEVICE_BYTES`` where the OS does not say)."""
    if device.platform != "cpu":
        return device_memory_bytes(device)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):  # pragma: no cover - an OS without sysconf
        return ASSUMED_DEVICE_BYTES


def check_set_fits_memory(n: int, width: int, devices=None) -> None:
    """Refuse, before anything is compiled, a transfer set whose [n, width]
    float64 numbers alone exceed the memory of the smallest local device
    (XLA would fail allocating it after compiling)."""
    devices = jax.local_devices() if devices is None else list(devices)
    set_bytes = 8 * int(n) * int(width)
    memory = min(memory_bytes(x) for x in devices)
    if set_bytes > memory:
        raise JaxDistillError(f"one transfer set of n = {n} inputs needs [{n}, {width}] float64 numbers, "
                              f"{set_bytes / 2**30:,.1f} GiB, more than the {memory / 2**30:,.1f} GiB of memory of "
                              f"this machine's {devices[0].platform} device; reduce n (or d)")


def local_mesh() -> Mesh:
    """A 1-D mesh (axis ``"sets"``) over this process's local devices."""
    return Mesh(np.array(jax.local_devices()), (SETS_AXIS,))


LANE_SIZES = {"cpu": 16}
"""Sets per lane by platform (``lane_size``).  On the CPU 16: measured
within -18 % .. +15 % of one vmap over the whole chunk (lanes of 64 were
as fast or faster but pad a small run to 64 sets or more;
benchmarks/results/lanes-vm-2cpu-2026-12-05.md).  Other platforms: no lane
loop (one lane per device and chunk), since an accelerator needs large
batches; their per-set numbers then depend on the per-device batch."""


def lane_size(platform: str) -> int | None:
    """Sets per vmapped lane on ``platform`` ("cpu", "gpu", "tpu"), or None
    for one lane holding each device's whole share of a chunk."""
    return LANE_SIZES.get(platform)


def mesh_lane(mesh: Mesh) -> int | None:
    """``lane_size`` of the platform of ``mesh``'s devices."""
    return lane_size(mesh.devices.flat[0].platform)


def padded_batch(chunk_size: int, num_devices: int, lane: int | None = None) -> int:
    """The compiled batch of every chunk of ``chunk_size`` sets on
    ``num_devices`` devices: without a lane, ``chunk_size`` rounded up to a
    multiple of the device count with at least 2 sets per device; with
    lanes of ``lane`` sets, enough whole lanes to cover any chunk from the
    lane boundary at or before its first set (``chunk_window``), the same
    number of lanes on every device.

    Why at least 2: XLA compiles a vmap of size 1 without the batch axis,
    into different kernels whose results differ in the last bit (measured:
    3e-16).  Why lanes: from 2 sets on, the numbers of a set still depend
    in the last bits on the batch shape of the vmap that computes it and on
    the set's place in it (the order of XLA's sums), so the runner computes
    set i in lane i // lane at place i % lane, whatever the chunking.
    """
    if lane is None:
        return max(2, -(-chunk_size // num_devices)) * num_devices
    # a chunk of a multiple of the lane starts on a lane boundary; any other may start inside a lane
    span = chunk_size if chunk_size % lane == 0 else chunk_size + lane - 1
    lanes = -(-span // lane)
    return -(-lanes // num_devices) * lane * num_devices


def chunk_window(lo: int, chunk_size: int, num_devices: int, lane: int | None) -> tuple[int, int]:
    """(first set index, number of sets) the compiled chunk starting at set
    ``lo`` computes: from the lane boundary at or before ``lo``, ``padded_batch`` sets."""
    start = lo if lane is None else (lo // lane) * lane
    return start, padded_batch(chunk_size, num_devices, lane)


def chunks_for_process(num_chunks: int, process_index: int, process_count: int, offset: int = 0) -> list[int]:
    """Chunks computed by process i of P in a multi-host run: (c + offset) % P == i
    (``offset``: a sweep numbers the chunks of all its points in one sequence)."""
    return [c for c in range(num_chunks) if (c + offset) % process_count == process_index]


@dataclass(frozen=True)
class ChunkPlan:
    """How B sets are cut into chunks: chunk c holds the global indices
    [c * chunk_size, min((c + 1) * chunk_size, num_sets))."""

    num_sets: int
    chunk_size: int

    def __post_init__(self):
        check_int("num_sets", self.num_sets, minimum=1)
        check_int("chunk_size", self.chunk_size, minimum=1)

    @property
    def num_chunks(self) -> int:
        return math.ceil(self.num_sets / self.chunk_size)

    def bounds(self, c: int) -> tuple[int, int]:
        lo = c * self.chunk_size
        return lo, min(lo + self.chunk_size, self.num_sets)

    def size(self, c: int) -> int:
        lo, hi = self.bounds(c)
        return hi - lo

    def sets_in(self, chunks: Iterable[int]) -> int:
        return sum(self.size(c) for c in chunks)


@eqx.filter_jit
def _compiled_chunk(program: SetProgram, key, indices, shared, sharding: NamedSharding, num_devices: int,
                    lane: int | None):
    """The outputs of the sets ``indices`` [D * m * lane] (D = ``num_devices``),
    each device's share computed ``lane`` sets at a time."""
    indices = jax.lax.with_sharding_constraint(indices, sharding)

    def lane_outputs(idx):  # [lane] set indices -> their outputs
        batch = jax.vmap(lambda i: program.one_set(key, i, shared))(idx)
        return program.finish(batch, shared)

    total = indices.shape[0]
    per_device = total // num_devices
    lane = per_device if lane is None else lane
    lanes = indices.reshape(num_devices, per_device // lane, lane)  # row k: device k's share
    out = jax.vmap(lambda rows: jax.lax.map(lane_outputs, rows))(lanes)
    out = jax.tree.map(lambda a: a.reshape((total,) + a.shape[3:]), out)
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, sharding), out)


def mark_failures(arrays: dict[str, np.ndarray], finite_outputs: Iterable[str]) -> dict[str, np.ndarray]:
    """Mark as ``NON_FINITE`` every successful set with a non-finite value in
    one of ``finite_outputs`` (a NaN is never averaged silently)."""
    bad = np.zeros(arrays["status"].shape, bool)
    for k in finite_outputs:
        v = arrays[k]
        bad |= ~np.isfinite(v).reshape(v.shape[0], -1).all(axis=1)
    arrays["status"] = np.where(bad & is_success(arrays["status"]), int(Status.NON_FINITE), arrays["status"]).astype(
        arrays["status"].dtype)
    return arrays


def _chunk_arguments(program: SetProgram, key: PRNGKeyArray, plan: ChunkPlan, c: int, shared, mesh: Mesh) -> tuple:
    """The arguments of ``_compiled_chunk`` for chunk c: the sets of its
    ``chunk_window`` as a device array sharded over the mesh's ``"sets"`` axis."""
    sharding = NamedSharding(mesh, PartitionSpec(SETS_AXIS))
    if shared is not None:
        shared = jax.device_put(shared, NamedSharding(mesh, PartitionSpec()))
    lo, _ = plan.bounds(c)
    lane = mesh_lane(mesh)
    start, batch = chunk_window(lo, plan.chunk_size, mesh.size, lane)
    idx = jax.device_put(np.arange(start, start + batch, dtype=np.int32), sharding)
    # settings declared traced (kappa, margin, temperature, delta, ...) become arguments of the compiled chunk,
    # so runs that differ only in them share one compilation (jaxdistill.traced)
    return lift_traced(program), key, idx, shared, sharding, mesh.size, lane


def device_chunk(program: SetProgram, key: PRNGKeyArray, plan: ChunkPlan, c: int, *, shared=None,
                 mesh: Mesh | None = None) -> dict[str, jax.Array]:
    """The outputs of the sets ``chunk_window`` gives for chunk c, as global
    device arrays sharded over the mesh's ``"sets"`` axis: whole lanes on
    every device, from the lane boundary at or before the chunk's first set
    (the sets outside the chunk are real computation, dropped by
    ``iter_chunks``).  Call inside ``precision(dtype)``."""
    mesh = local_mesh() if mesh is None else mesh
    with unrolled_threefry():  # compiled (on the first call) with JAX's unrolled threefry
        return _compiled_chunk(*_chunk_arguments(program, key, plan, c, shared, mesh))


def program_signature(program: SetProgram, plan: ChunkPlan, *, shared=None, dtype: str = "float64") -> tuple:
    """What decides the compiled chunk program of a run on a given mesh (the
    key of jax's cache of ``_compiled_chunk``): the program's structure and
    static values with its traced settings lifted (``traced.lift_traced``),
    the shapes and dtypes of its arrays and of ``shared``, the chunk size and
    the precision.  Runs with equal signatures share one compilation."""
    with precision(dtype):
        dynamic, static = eqx.partition((lift_traced(program), shared), eqx.is_array)
    leaves, treedef = jax.tree.flatten(dynamic)
    return static, treedef, tuple((tuple(x.shape), str(x.dtype)) for x in leaves), plan.chunk_size, dtype


def compile_chunks(program: SetProgram, key: PRNGKeyArray, plan: ChunkPlan, *, shared=None,
                   dtype: str = "float64", mesh: Mesh | None = None) -> None:
    """Compile, without running anything, the one program every chunk of
    ``plan`` runs (all chunks have the batch ``padded_batch``), so that a
    later ``run_program`` of the same arguments finds it compiled (jax's
    compilation cache).  Thread-safe: ``sweep`` compiles the next points'
    programs in a second thread while a point runs (XLA's compiler and the
    chunk's execution release the GIL)."""
    mesh = local_mesh() if mesh is None else mesh
    with precision(dtype), unrolled_threefry():
        _compiled_chunk.lower(*_chunk_arguments(program, key, plan, 0, shared, mesh)).compile()


def iter_chunks(program: SetProgram, key: PRNGKeyArray, plan: ChunkPlan, chunks: Iterable[int], *, shared=None,
                mesh: Mesh | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Compute the given chunks of a run, yielding (chunk index, numpy outputs
    trimmed to the chunk's real sets, failures marked).  Call inside
    ``precision(dtype)``."""
    mesh = local_mesh() if mesh is None else mesh
    if shared is not None:
        shared = jax.device_put(shared, NamedSharding(mesh, PartitionSpec()))
    lane = mesh_lane(mesh)
    for c in chunks:
        batch = device_chunk(program, key, plan, c, shared=shared, mesh=mesh)
        lo, hi = plan.bounds(c)
        first = 0 if lane is None else lo % lane  # the chunk's place in its window (chunk_window)
        arrays = {k: np.asarray(v)[first: first + hi - lo] for k, v in batch.items()}
        yield c, mark_failures(arrays, program.finite_outputs)


class PerSetStatus:
    """The per-set status views of anything holding ``arrays`` with a
    ``status`` array (``RunOutput``, ``results.DistillResult``)."""

    arrays: dict[str, np.ndarray]

    @property
    def num_sets(self) -> int:
        return int(self.arrays["status"].shape[0])

    @property
    def ok(self) -> np.ndarray:
        """[B] bool: the sets whose status is a success (``status.is_success``)."""
        return is_success(self.arrays["status"])

    def failed_sets(self) -> list[dict]:
        """Every failed set with its global index, reason and step count."""
        return failed_sets(self.arrays["status"], self.arrays.get("num_steps"))


@dataclass
class RunOutput(PerSetStatus):
    """Per-set outputs of a run (numpy arrays, leading axis = global set index).

    Attributes:
        arrays: every output of the program, [B, ...]; ``arrays["status"]``
            holds ``status.Status`` codes.
        elapsed: seconds spent computing in this call.
        sets_computed: sets computed in this call (the rest came from the store).
        merged: False when ``arrays`` is empty (``collect=False``, or a
            process other than 0 of a multi-host run).
    """

    arrays: dict[str, np.ndarray]
    elapsed: float = 0.0
    sets_computed: int = 0
    merged: bool = True


def failed_sets(status: np.ndarray, num_steps: np.ndarray | None = None) -> list[dict]:
    """Every failed set with its global index and reason (and step count)."""
    out = []
    for i in np.flatnonzero(~is_success(status)):
        row = {"index": int(i), "status": STATUS_NAMES[int(status[i])]}
        if num_steps is not None:
            row["num_steps"] = int(num_steps[i])
        out.append(row)
    return out


def concatenate(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join chunk outputs along the set axis."""
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def run_program(
    program: SetProgram,
    key: PRNGKeyArray,
    plan: ChunkPlan,
    *,
    shared=None,
    dtype: str = "float64",
    store=None,
    chunks: Iterable[int] | None = None,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
    collect: bool = True,
    mesh: Mesh | None = None,
    on_sets: Callable[[int], None] | None = None,
    hosts=None,
) -> RunOutput:
    """Run ``program`` on every set of ``plan`` and collect the outputs.

    Args:
        program: the per-set computation (cast to ``dtype`` by the caller).
        key: the run's PRNG key.
        plan: number of sets and chunk size.
        shared: arrays every set needs (e.g. held-out inputs), replicated.
        dtype: precision context of the computation.
        store: a ``runstore.RunStore``: finished chunks are skipped and every
            new chunk is saved as soon as it is done (resumable).
        chunks: compute only these chunks (multi-host: ``chunks_for_process``).
        progress: show a progress bar; say: receives resume messages.
        collect: return the outputs of all chunks (False: only compute;
            ``arrays`` is then empty).
        on_sets: called with the number of sets of each chunk computed
            (e.g. to advance the one progress bar of a sweep).
        hosts: a ``hosts.Hosts``; with several processes (a multi-host run,
            ``store`` in a folder shared by all) this process computes only
            its chunks (``Hosts.chunks``), then waits for the others' chunk
            files (``Hosts.wait_timeout``); process 0 returns every set, the
            other processes return no arrays (``RunOutput.merged`` False).

    Returns:
        ``RunOutput``.
    """
    say = say or (lambda msg: None)
    several = hosts is not None and hosts.several
    if several:
        if store is None:
            raise JaxDistillError("a multi-host run needs an output folder shared by all processes (--out)")
        mine = hosts.chunks(plan.num_chunks)
        chunks = mine if chunks is None else sorted(set(chunks) & set(mine))
        collect = collect and hosts.merges
    done = set(store.finished_chunks(plan.num_chunks, on_corrupt=say)) if store is not None else set()
    wanted = range(plan.num_chunks) if chunks is None else sorted(set(chunks))
    todo = [c for c in wanted if c not in done]
    if done:
        say(f"resuming {store.root}: {len(done)} of {plan.num_chunks} chunks ({plan.sets_in(done)} sets) already done")
    t0 = time.perf_counter()
    computed: dict[int, dict] = {}
    bar = progress_bar(plan.sets_in(wanted), progress, initial=plan.sets_in(c for c in wanted if c in done))
    try:
        with precision(dtype):
            for c, arrays in iter_chunks(program, key, plan, todo, shared=shared, mesh=mesh):
                if store is not None:
                    store.save_chunk(c, arrays)
                if collect:
                    computed[c] = arrays
                bar.update(len(arrays["status"]))
                if on_sets is not None:
                    on_sets(len(arrays["status"]))
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    if several:  # every process: the others' chunks (process 0 merges them; the others then exit with it)
        from .hosts import wait_for_chunks

        wait_for_chunks(store, plan.num_chunks, hosts, say)
    if not collect:
        return RunOutput({}, elapsed=elapsed, sets_computed=plan.sets_in(todo), merged=False)
    parts = []
    for c in range(plan.num_chunks):
        if c in computed:
            parts.append(computed[c])
        elif store is not None and store.has_chunk(c):
            parts.append(store.load_chunk(c))
        else:
            raise JaxDistillError(f"chunk {c} of the run is missing (computed by another process?)")
    return RunOutput(concatenate(parts), elapsed=elapsed, sets_computed=plan.sets_in(todo))


__all__ = [
    "SetProgram",
    "ChunkPlan",
    "PerSetStatus",
    "RunOutput",
    "run_program",
    "iter_chunks",
    "device_chunk",
    "compile_chunks",
    "program_signature",
    "mark_failures",
    "failed_sets",
    "concatenate",
    "default_chunk_size",
    "device_memory_bytes",
    "CPU_CHUNK_CAP",
    "ACCELERATOR_CHUNK_CAP",
    "plan_chunks",
    "memory_bytes",
    "check_set_fits_memory",
    "local_mesh",
    "padded_batch",
    "chunk_window",
    "lane_size",
    "mesh_lane",
    "LANE_SIZES",
    "chunks_for_process",
    "SETS_AXIS",
]
