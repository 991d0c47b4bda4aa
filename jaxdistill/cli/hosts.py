"""The options of a multi-host run, shared by ``jaxdistill run`` and
``jaxdistill sweep`` (the split itself: ``jaxdistill.hosts``)."""

from __future__ import annotations

import argparse
import re

from ..hosts import COORDINATOR_ENV, DEFAULT_WAIT_TIMEOUT, Hosts, initialize
from .common import finite_float, nonnegative_int, positive_int

HOST_OPTIONS = ("coordinator", "num_processes", "process_id", "wait_timeout")


def coordinator_address(text: str) -> str:
    """--coordinator: HOST:PORT."""
    if not re.fullmatch(r"\S+:\d{1,5}", text) or not 0 < int(text.rsplit(":", 1)[1]) < 65536:
        raise argparse.ArgumentTypeError(f"--coordinator takes HOST:PORT (e.g. 10.0.0.1:1234), got {text!r}")
    return text


def add_host_options(parser) -> None:
    """The options of a multi-host run (``jaxdistill run`` and ``sweep``)."""
    g = parser.add_argument_group(
        "several hosts (jax.distributed)",
        "Run the same command in P processes (one per host) on one --out folder shared by all; each calls "
        "jax.distributed.initialize, process i computes the chunks c with c % P == i on its local devices, waits for "
        "the others' chunk files, and process 0 merges them and writes the results (bit-identical to one process).  Give the three "
        f"options below, or start the processes with JAX's environment ({COORDINATOR_ENV}=HOST:PORT on a cluster "
        "jax.distributed.initialize() detects: SLURM, Open MPI, ...).  A killed run resumes when the same commands "
        "are started again.")
    g.add_argument("--coordinator", type=coordinator_address, default=None, metavar="HOST:PORT",
                   help="address of process 0 (the coordinator), reachable from every process")
    g.add_argument("--num-processes", type=positive_int("--num-processes"), default=None, metavar="P",
                   help="number of processes P of the multi-host run")
    g.add_argument("--process-id", type=nonnegative_int("--process-id"), default=None, metavar="I",
                   help="this process's index I in 0..P-1 (process 0 writes the results)")
    g.add_argument("--wait-timeout", type=finite_float("--wait-timeout", gt=0.0), default=None, metavar="SECONDS",
                   help="multi-host runs only: seconds a process waits for the other processes' chunks of a run "
                        f"once its own are written (default {DEFAULT_WAIT_TIMEOUT:g}); when it expires the finished "
                        "chunks are kept and the same commands resume")


def initialize_from_args(args) -> Hosts:
    """``hosts.initialize`` with the parsed options: calls
    ``jax.distributed.initialize`` where they (or JAX's environment) ask for
    several processes; this process's ``Hosts``."""
    return initialize(args.coordinator, args.num_processes, args.process_id, wait_timeout=args.wait_timeout)


__all__ = ["HOST_OPTIONS", "add_host_options", "initialize_from_args", "coordinator_address"]
