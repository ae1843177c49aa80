"""Reading and writing results: netCDF4 via h5netcdf, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import xarray as xr

ENGINE = "h5netcdf"
# phony_dims: an HDF5 file that is not netCDF opens (and is then rejected) quietly.
OPEN_OPTIONS = {"decode_times": False, "decode_timedelta": False, "phony_dims": "access"}


class ResultFileError(OSError):
    """A result file that cannot be read or written; the message says why."""


def write_result(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` (netCDF4) atomically; see :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine=ENGINE))


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


def open_result(path: str | os.PathLike) -> xr.Dataset:
    """Load a result written by :func:`write_result` fully into memory."""
    path = Path(path)
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
