"""Reading and writing results: netCDF4 via h5netcdf, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xarray as xr

ENGINE = "h5netcdf"


class ResultFileError(OSError):
    """A result file that cannot be read or written; the message says why."""


def write_result(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` atomically: a temporary file, then a rename.

    A failed or interrupted write leaves any existing file untouched and no
    partial file behind.
    """
    path = Path(path)
    if path.is_dir():
        raise ResultFileError(f"output path is a directory: {path}")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ResultFileError(f"output directory does not exist: {directory}")
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    os.close(handle)
    try:
        ds.to_netcdf(tmp, engine=ENGINE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def open_result(path: str | os.PathLike) -> xr.Dataset:
    """Load a result written by :func:`write_result` fully into memory."""
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"result file not found: {path}")
    try:
        with xr.open_dataset(path, engine=ENGINE, decode_times=False, decode_timedelta=False) as ds:
            loaded = ds.load()
    except (OSError, ValueError) as exc:
        raise ResultFileError(f"{path} is not an ltvsim result (netCDF4): {exc}") from None
    if "ltvsim_version" not in loaded.attrs:
        raise ResultFileError(f"{path} is a netCDF file but not an ltvsim result")
    return loaded
