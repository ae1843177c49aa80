"""Completed blocks of trials kept on disk, so an interrupted run resumes where it stopped.

A checkpoint is a directory: ``run.json`` says which run it belongs to (a
hash of the config, seed included, and of the block layout) and every
completed block is one ``block-<first trial>.npz`` of plain numeric arrays,
written atomically (temporary file + rename). Files are read with
``allow_pickle=False``: a checkpoint is data, never code. A checkpoint made
for another config, seed or block size is refused, never mixed in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from . import __version__
from .config import Config, ConfigError
from .io import ResultFileError, atomic_write

MANIFEST = "run.json"
RUN_ARRAYS = ("alive", "revenue", "paid_first", "retained", "weights", "customer_hist", "orders")


def run_key(config: Config, blocks: list[tuple[int, int]]) -> str:
    """Hash of what determines the blocks' contents: config (with seed) and block layout."""
    text = json.dumps({"config": config.to_json(), "blocks": blocks, "version": __version__})
    return hashlib.sha256(text.encode()).hexdigest()


class Checkpoint:
    """The completed blocks of one run in ``directory`` (created if missing).

    Parameters
    ----------
    directory : path
        Where the blocks live; usually ``<output>.partial`` next to the result.
    config : Config
        The run's config; the directory must belong to it.
    blocks : list of (first trial, count)
        The run's blocks.
    """

    def __init__(self, directory, config: Config, blocks: list[tuple[int, int]]):
        self.directory = Path(directory)
        self.config = config
        self.blocks = dict(blocks)
        self.key = run_key(config, [list(b) for b in blocks])
        manifest = self.directory / MANIFEST
        if manifest.is_file():
            try:
                found = json.loads(manifest.read_text()).get("key")
            except (OSError, ValueError, AttributeError):
                found = None
            if found != self.key:
                raise ConfigError(
                    f"checkpoint {self.directory} belongs to another run (different config, "
                    "seed, trials or block size); delete it or choose another checkpoint "
                    "directory",
                    "checkpoint",
                )
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultFileError(f"cannot create checkpoint {self.directory}: {exc}") from None
        body = json.dumps({"key": self.key, "blocks": blocks, "config": config.to_json()})
        atomic_write(manifest, lambda tmp: Path(tmp).write_text(body))

    def _path(self, first: int) -> Path:
        return self.directory / f"block-{first:012d}.npz"

    def completed(self) -> set[int]:
        """First trials of the blocks already saved."""
        return {first for first in self.blocks if self._path(first).is_file()}

    def save(self, first: int, runs) -> None:
        """Save block ``first`` (its per-segment runs) atomically."""
        arrays = {}
        for i, run in enumerate(runs):
            for name in RUN_ARRAYS:
                arrays[f"{i}/{name}"] = getattr(run, name)
            for path, values in run.inputs.items():
                arrays[f"{i}/input/{path}"] = values

        def write(tmp):
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        atomic_write(self._path(first), write)

    def load(self, first: int):
        """Block ``first`` as it was saved: a list of ``SegmentRun``, one per segment."""
        from .simulate import SegmentRun

        path = self._path(first)
        count = self.blocks[first]
        try:
            with np.load(path, allow_pickle=False) as saved:
                arrays = {name: saved[name] for name in saved.files}
        except (OSError, ValueError) as exc:
            raise ResultFileError(f"checkpoint block {path} is unreadable: {exc}") from None
        runs = []
        for i, segment in enumerate(self.config.segments):
            try:
                values = {name: arrays[f"{i}/{name}"] for name in RUN_ARRAYS}
            except KeyError as exc:
                raise ResultFileError(f"checkpoint block {path} lacks {exc}") from None
            prefix = f"{i}/input/"
            inputs = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            if values["alive"].shape != (count, self.config.horizon_months):
                raise ResultFileError(f"checkpoint block {path} has the wrong shape")
            runs.append(SegmentRun(segment=segment, inputs=inputs, **values))
        return runs
