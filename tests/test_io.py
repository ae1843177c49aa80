"""Result files: exact round trip, clear errors, atomic writes."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import ltvsim
from ltvsim.io import ResultFileError

from .conftest import CONFIGS

SMALL = {"trials": 20, "customers": 200}


@pytest.fixture(scope="module", params=["segments.toml", "saas.toml"])
def result(request):
    return ltvsim.simulate(CONFIGS / request.param, **SMALL)


def test_round_trip_is_exact(result, tmp_path):
    path = ltvsim.write_result(result, tmp_path / "out.nc")
    assert path == tmp_path / "out.nc"
    back = ltvsim.open_result(path)
    xr.testing.assert_identical(back, result)
    for name, variable in result.variables.items():
        assert back[name].dtype == variable.dtype, name
    assert sorted(os.listdir(tmp_path)) == ["out.nc"]


def test_round_trip_keeps_nan(result, tmp_path):
    # NaN marks "never paid back" and unused inputs: it must survive the file.
    back = ltvsim.open_result(ltvsim.write_result(result, tmp_path / "out.nc"))
    for name, variable in result.data_vars.items():
        np.testing.assert_array_equal(np.isnan(back[name].values), np.isnan(variable.values))


def test_write_replaces_existing_file(result, tmp_path):
    path = tmp_path / "out.nc"
    path.write_bytes(b"an older result")
    ltvsim.write_result(result, path)
    xr.testing.assert_identical(ltvsim.open_result(path), result)


def _fail_midway(error):
    """A Dataset.to_netcdf that writes part of a file, then raises ``error``."""

    def to_netcdf(self, path=None, *args, **kwargs):
        Path(path).write_bytes(b"\x89HDF\r\n\x1a\n partial")
        raise error

    return to_netcdf


@pytest.mark.parametrize(
    "error",
    [OSError(28, "No space left on device"), KeyboardInterrupt(), RuntimeError("boom")],
    ids=lambda e: type(e).__name__,
)
def test_failed_write_leaves_existing_file(result, tmp_path, monkeypatch, error):
    path = tmp_path / "out.nc"
    before = b"the previous result, byte for byte \x00\xff"
    path.write_bytes(before)
    monkeypatch.setattr(xr.Dataset, "to_netcdf", _fail_midway(error))
    # An OSError (disk full) becomes a ResultFileError naming the file; others pass through.
    expected = ResultFileError if isinstance(error, OSError) else type(error)
    with pytest.raises(expected) as info:
        ltvsim.write_result(result, path)
    if isinstance(error, OSError):
        assert str(path) in str(info.value)
        assert "No space left on device" in str(info.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.nc"]  # no temporary file left behind


def test_failed_write_leaves_no_file(result, tmp_path, monkeypatch):
    monkeypatch.setattr(xr.Dataset, "to_netcdf", _fail_midway(OSError(5, "I/O error")))
    with pytest.raises(ResultFileError):
        ltvsim.write_result(result, tmp_path / "out.nc")
    assert os.listdir(tmp_path) == []


def test_write_to_missing_directory(result, tmp_path):
    with pytest.raises(ResultFileError, match="output directory does not exist"):
        ltvsim.write_result(result, tmp_path / "nodir" / "out.nc")


def test_write_to_a_directory(result, tmp_path):
    with pytest.raises(ResultFileError, match="is a directory"):
        ltvsim.write_result(result, tmp_path)


def test_open_netcdf_that_is_not_a_result(tmp_path):
    path = tmp_path / "other.nc"
    xr.Dataset({"x": ("a", np.arange(3.0))}).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(ResultFileError, match="not an ltvsim result") as info:
        ltvsim.open_result(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"[simulation]\ntrials = 20\n", b"\x89HDF\r\n\x1a\n truncated"],
    ids=["empty", "toml", "truncated"],
)
def test_open_file_that_is_not_netcdf(tmp_path, content):
    path = tmp_path / "result.nc"
    path.write_bytes(content)
    with pytest.raises(ResultFileError, match="not an ltvsim result") as info:
        ltvsim.open_result(path)
    assert str(path) in str(info.value)


def test_open_missing_file(tmp_path):
    with pytest.raises(ResultFileError, match="not found"):
        ltvsim.open_result(tmp_path / "nothere.nc")


def test_open_directory(tmp_path):
    with pytest.raises(ResultFileError, match="is a directory"):
        ltvsim.open_result(tmp_path)


def test_written_file_has_ordinary_permissions(tmp_path):
    ds = ltvsim.simulate("configs/seed-formula.toml", trials=2, customers=10)
    out = ltvsim.write_result(ds, tmp_path / "r.nc")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
