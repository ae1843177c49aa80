"""Reading and writing results: netCDF4 files or a zarr store; written atomically.

netCDF4 files are written by the netCDF-C library (``netCDF4``): it creates a
result's ~80 variables in 0.2 s, where h5netcdf takes 0.5-0.6 s (dimension
scales handled per variable, in Python). They are read through h5netcdf.

A result is data: nothing in a result file is evaluated or unpickled. netCDF
is read through h5py (no pickle support at all); a zarr store is refused if
its metadata asks for a pickle codec, the only way a zarr store could make
the reader run code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

ENGINE = "h5netcdf"  # reading
WRITE_ENGINE = "netcdf4"
# phony_dims: an HDF5 file that is not netCDF opens (and is then rejected) quietly.
OPEN_OPTIONS = {"decode_times": False, "decode_timedelta": False, "phony_dims": "access"}


class ResultFileError(OSError):
    """A result file that cannot be read or written; the message says why."""


def write_result(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` (netCDF4) atomically; see :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine=WRITE_ENGINE))


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    A failed or interrupted write leaves any existing file untouched and no
    partial file behind. The file gets the usual permissions (0666 less the
    umask), not the private ones of a temporary file.
    """
    path = Path(path)
    if path.is_dir():
        raise ResultFileError(f"output path is a directory: {path}")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ResultFileError(f"output directory does not exist: {directory}")
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ResultFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    os.close(handle)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ResultFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def open_result(path: str | os.PathLike, lazy: bool = False) -> xr.Dataset:
    """Load a result (netCDF file or zarr store) fully into memory.

    ``lazy=True`` opens a zarr store without loading it (variables load on
    access; close the Dataset when done).
    """
    path = Path(path)
    if is_zarr(path):
        return _open_zarr(path, lazy)
    if path.is_dir():
        raise ResultFileError(f"result path is a directory, not a result file: {path}")
    if not path.is_file():
        raise ResultFileError(f"result file not found: {path}")
    try:
        with xr.open_dataset(path, engine=ENGINE, **OPEN_OPTIONS) as ds:
            loaded = ds.load()
    except (OSError, ValueError) as exc:
        raise ResultFileError(f"{path} is not an ltvsim result (netCDF4): {exc}") from None
    if "ltvsim_version" not in loaded.attrs:
        raise ResultFileError(f"{path} is a netCDF file but not an ltvsim result")
    return loaded


# zarr: large results, streamed to disk block by block (trial dimension chunked).
ZARR_SUFFIX = ".zarr"
# Codecs that would make the reader unpickle, i.e. run code (numcodecs.Pickle).
UNSAFE_CODECS = {"pickle"}


def is_zarr(path: str | os.PathLike) -> bool:
    """A zarr result: named ``*.zarr`` (a directory)."""
    return Path(path).suffix == ZARR_SUFFIX


class ZarrResult:
    """A zarr result written block by block, appearing at ``path`` only when complete.

    The store is built in a temporary directory beside ``path`` and renamed
    over it by :meth:`commit`; :meth:`abort` removes it. Blocks are regions of
    the ``trial`` dimension (one chunk each) and may arrive in any order.

    Parameters
    ----------
    path : path
        The final store, ``*.zarr``.
    first_block : Dataset
        Any block of the result: gives every per-trial variable's shape, type
        and attributes (the other dimensions are complete in every block).
    trials, chunk_trials : int
        Trials in the whole result; trials per chunk (the block size).
    attrs : dict
        The result's global attributes.
    """

    def __init__(self, path, first_block: xr.Dataset, trials: int, chunk_trials: int, attrs):
        try:
            import dask.array as da
            import zarr  # noqa: F401
        except ImportError:
            raise ResultFileError('writing zarr needs: pip install "ltvsim[cluster]"') from None

        self.path = Path(path)
        directory = self.path.parent
        if not directory.is_dir():
            raise ResultFileError(f"output directory does not exist: {directory}")
        if self.path.exists() and not self.path.is_dir():
            raise ResultFileError(f"zarr output must be a directory, {self.path} is a file")
        self.attrs = attrs
        self.tmp = Path(
            tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        )
        template = first_block.drop_vars("trial").isel(trial=0, drop=True)
        variables = {}
        for name, var in template.data_vars.items():
            shape = (trials, *var.shape)
            chunks = (chunk_trials, *var.shape)
            data = da.zeros(shape, dtype=var.dtype, chunks=chunks)
            variables[name] = (("trial", *var.dims), data, var.attrs)
        coords = dict(template.coords)
        coords["trial"] = ("trial", np.arange(trials), first_block["trial"].attrs)
        store = xr.Dataset(variables, coords=coords, attrs=attrs)
        encoding = {name: {"chunks": variables[name][1].chunksize} for name in variables}
        self._write(
            lambda: store.to_zarr(
                self.tmp, mode="w", compute=False, encoding=encoding, **ZARR_WRITE
            )
        )

    def _write(self, write):
        try:
            write()
        except OSError as exc:
            self.abort()
            raise ResultFileError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def write_block(self, block: xr.Dataset) -> None:
        """Write the per-trial variables of ``block`` into its trial range."""
        first = int(block["trial"][0])
        region = {"trial": slice(first, first + block.sizes["trial"])}
        other = [name for name, var in block.variables.items() if "trial" not in var.dims]
        part = block.drop_vars([*other, "trial"])
        self._write(lambda: part.to_zarr(self.tmp, region=region, mode="r+", **ZARR_WRITE))

    def partial(self) -> xr.Dataset:
        """The store as written so far, opened lazily (variables load on access)."""
        options = {**ZARR_OPTIONS, "consolidated": False}
        return xr.open_dataset(self.tmp, engine="zarr", chunks=None, **options)

    def add(self, variables: dict[str, xr.Variable]) -> None:
        """Add whole variables that have no trial dimension (the quantile bands)."""
        # mode "a" replaces the global attributes with the written Dataset's.
        extra = xr.Dataset(variables, attrs=self.attrs)
        self._write(lambda: extra.to_zarr(self.tmp, mode="a", **ZARR_WRITE))

    def commit(self) -> Path:
        """Consolidate the metadata and move the store to ``path`` (replacing an old one)."""
        import zarr

        self._write(lambda: zarr.consolidate_metadata(str(self.tmp), zarr_format=2))
        old = None

        def move_into_place():
            nonlocal old
            if self.path.exists():
                old = Path(
                    tempfile.mkdtemp(
                        prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent
                    )
                )
                os.replace(self.path, old / "store")
            os.replace(self.tmp, self.path)

        self._write(move_into_place)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Remove the temporary store."""
        shutil.rmtree(self.tmp, ignore_errors=True)


# Zarr format 2: a stable specification every zarr reader knows (format 3 has
# no settled text type yet); metadata consolidated at commit.
ZARR_WRITE = {"zarr_format": 2, "consolidated": False}
ZARR_OPTIONS = {"decode_times": False, "decode_timedelta": False, "consolidated": None}


def _open_zarr(path: Path, lazy: bool = False) -> xr.Dataset:
    if not path.is_dir():
        raise ResultFileError(f"result store not found: {path}")
    _refuse_unsafe_zarr(path)
    try:
        if lazy:
            loaded = xr.open_dataset(path, engine="zarr", chunks=None, **ZARR_OPTIONS)
        else:
            with xr.open_dataset(path, engine="zarr", chunks=None, **ZARR_OPTIONS) as ds:
                loaded = ds.load()
    except ImportError:
        raise ResultFileError('reading zarr needs: pip install "ltvsim[cluster]"') from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultFileError(f"{path} is not an ltvsim result (zarr): {exc}") from None
    if "ltvsim_version" not in loaded.attrs:
        raise ResultFileError(f"{path} is a zarr store but not an ltvsim result")
    return loaded


def _refuse_unsafe_zarr(path: Path) -> None:
    """Refuse a store that asks for a pickle codec, before reading any data."""
    names = {"zarr.json", ".zarray", ".zmetadata", ".zgroup"}
    found = False
    for meta in path.rglob("*"):
        if meta.name not in names:
            continue
        found = True
        try:
            codecs = set(_codec_names(json.loads(meta.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            raise ResultFileError(f"{path}: unreadable zarr metadata {meta.name}") from None
        if codecs & UNSAFE_CODECS:
            raise ResultFileError(
                f"{path} asks for a pickle codec ({meta.relative_to(path)}); an ltvsim "
                "result holds only numbers and text: refused"
            )
    if not found:
        raise ResultFileError(f"{path} is a directory, not a zarr result store")


def _codec_names(meta):
    """Every codec "id" (zarr 2) or "name" (zarr 3) in a metadata document, attributes aside."""
    if isinstance(meta, dict):
        for key, value in meta.items():
            if key in ("attributes", ".zattrs") or key.endswith("/.zattrs"):
                continue
            if key in ("id", "name") and isinstance(value, str):
                yield value.lower()
            else:
                yield from _codec_names(value)
    elif isinstance(meta, list):
        for value in meta:
            yield from _codec_names(value)
