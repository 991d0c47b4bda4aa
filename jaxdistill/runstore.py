"""Resumable on-disk runs: a manifest plus one file per finished chunk.

Layout of an output folder::

    manifest.json        the run's configuration (refuses a different one)
    chunks/chunk_00000.npz ...   per-set arrays of each finished chunk
    sets.csv             per-set table (written at the end)
    summary.json         statistics (written at the end)

Every file is written to a temporary name in the same folder and then
``os.replace``d into place, so an interrupted run (Ctrl-C, SIGKILL, a lost
Colab runtime) leaves only whole files.  Rerunning the same command on the
same folder skips the finished chunks; since each set's key depends only on
the seed and its global index, the result equals an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .validation import JaxDistillError

MANIFEST = "manifest.json"
CHUNK_DIR = "chunks"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


class RunStore:
    """A run folder bound to one configuration."""

    def __init__(self, out: str | os.PathLike, config: dict):
        if not isinstance(out, (str, os.PathLike)):
            raise JaxDistillError(f"out (--out) must be a folder path, a str or os.PathLike, got {out!r}")
        self.root = Path(out)
        self.config = json.loads(json.dumps(config))  # normalise types
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JaxDistillError(f"--out {self.root} cannot be used as an output folder: {e.strerror or e}") from None
        man = self.root / MANIFEST
        if man.exists():
            try:
                old = json.loads(man.read_text())
            except json.JSONDecodeError:
                raise JaxDistillError(f"{man} is corrupt; delete the folder or choose another --out") from None
            if old != self.config:
                diff = sorted(k for k in set(old) | set(self.config) if old.get(k) != self.config.get(k))
                raise JaxDistillError(
                    f"--out {self.root} holds a run with a different configuration (differs in: {', '.join(diff)}); "
                    "use another --out folder or delete this one"
                )
        else:
            write_json(man, self.config)

    def chunk_path(self, c: int) -> Path:
        return self.root / CHUNK_DIR / f"chunk_{c:05d}.npz"

    def has_chunk(self, c: int) -> bool:
        return self.chunk_path(c).exists()

    def save_chunk(self, c: int, arrays: dict) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(self.chunk_path(c), buf.getvalue())

    def load_chunk(self, c: int) -> dict:
        try:
            with np.load(self.chunk_path(c)) as z:
                arrays = {k: z[k] for k in z.files}
            if "status" not in arrays:
                raise ValueError("no 'status' array")
            return arrays
        except Exception as e:  # truncated or corrupt: recompute it
            raise JaxDistillError(f"chunk file {self.chunk_path(c)} is corrupt ({e}); delete it to recompute") from None

    def finished_chunks(self, num_chunks: int, on_corrupt=None) -> list[int]:
        """Chunks whose files exist and can be read.  A file that cannot be
        read (possible only through outside damage: writes are atomic) is
        removed, reported through ``on_corrupt(message)``, and recomputed."""
        done = []
        for c in range(num_chunks):
            if not self.has_chunk(c):
                continue
            try:
                self.load_chunk(c)
            except JaxDistillError as e:
                self.chunk_path(c).unlink(missing_ok=True)
                if on_corrupt is not None:
                    on_corrupt(f"{e}; removed, it will be recomputed".replace("; delete it to recompute", ""))
                continue
            done.append(c)
        return done


def write_sets_csv(path: Path, table: dict) -> None:
    """One row per set: an ``index`` column, then the table's columns in order."""
    cols = list(table)
    n = len(next(iter(table.values())))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index"] + cols)
    for i in range(n):
        w.writerow([i] + [_fmt(table[c][i]) for c in cols])
    atomic_write_text(path, buf.getvalue())


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (np.integer,)):
        return int(v)
    return v
