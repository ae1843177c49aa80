"""Result files and checkpoints are data: reading one never runs code.

Each test plants a payload that would create a marker file if anything
unpickled or evaluated it, and checks that reading refuses the file (or
reads it as inert text) and that the marker never appears.
"""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ltvsim
from ltvsim.cli import app
from ltvsim.config import load_config
from ltvsim.io import ResultFileError
from ltvsim.runner import run_to_file

from .conftest import CONFIGS

SMALL = {"simulation.trials": 4, "simulation.customers": 20}


class Payload:
    """Unpickling this creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_payload_works(tmp_path):
    # the tests below could fail: unpickling the payload does create the marker
    pickle.loads(pickle.dumps(Payload(tmp_path / "marker")))
    assert (tmp_path / "marker").exists()


def test_netcdf_attributes_are_read_as_text(tmp_path):
    marker = tmp_path / "marker"
    ds = ltvsim.simulate(load_config(CONFIGS / "saas.toml").with_overrides(SMALL))
    ds.attrs["config"] = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    ds.attrs["pickled"] = np.frombuffer(pickle.dumps(Payload(marker)), np.uint8)
    path = ltvsim.write_result(ds, tmp_path / "crafted.nc")
    back = ltvsim.open_result(path)
    assert back.attrs["config"].startswith("__import__")  # inert text
    # commands that parse the stored config use json: a clean error, no evaluation
    result = CliRunner().invoke(app, ["report", str(path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not marker.exists()


def test_zarr_store_asking_for_pickle_is_refused(tmp_path):
    marker = tmp_path / "marker"
    config = load_config(CONFIGS / "saas.toml").with_overrides(SMALL)
    store = tmp_path / "crafted.zarr"
    run_to_file(config, store).close()
    # an extra variable whose chunk is a pickle (numcodecs' "pickle" object codec)
    evil = store / "evil"
    evil.mkdir()
    meta = {
        "shape": [1],
        "chunks": [1],
        "dtype": "|O",
        "fill_value": None,
        "order": "C",
        "filters": [{"id": "pickle", "protocol": 5}],
        "compressor": None,
        "zarr_format": 2,
    }
    (evil / ".zarray").write_text(json.dumps(meta))
    (evil / ".zattrs").write_text(json.dumps({"_ARRAY_DIMENSIONS": ["evil"]}))
    (evil / "0").write_bytes(pickle.dumps(np.array([Payload(marker)], dtype=object)))
    (store / ".zmetadata").unlink()
    with pytest.raises(ResultFileError, match="pickle codec"):
        ltvsim.open_result(store)
    result = CliRunner().invoke(app, ["summary", str(store)])
    assert result.exit_code == 2 and "pickle codec" in result.output
    assert not marker.exists()


def test_checkpoint_block_holding_a_pickle_is_refused(tmp_path):
    marker = tmp_path / "marker"
    config = load_config(CONFIGS / "saas.toml").with_overrides(SMALL)
    checkpoint = tmp_path / "run.partial"
    ltvsim.simulate(config, checkpoint=checkpoint, block_trials=2)
    block = checkpoint / "block-000000000002.npz"
    with np.load(block) as saved:
        arrays = dict(saved)
    arrays["0/alive"] = np.array([Payload(marker)], dtype=object)
    with open(block, "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(ResultFileError, match="unreadable"):
        ltvsim.simulate(config, checkpoint=checkpoint, block_trials=2)
    assert not marker.exists()
