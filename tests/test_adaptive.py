"""Running to a target precision: reproducible, and the same as a fixed run of that size."""

import math

import numba
import pytest
import xarray as xr

import ltvsim
from ltvsim.config import ConfigError
from ltvsim.simulate import ADAPTIVE_STEP

SAAS = "configs/saas.toml"
SMALL = {"customers": 200}
ADAPTIVE_ATTRS = ("target_rel_error", "achieved_rel_error", "reached_target")


def fixed_part(ds):
    out = ds.copy()
    for key in ADAPTIVE_ATTRS:
        out.attrs.pop(key)
    return out


@pytest.fixture(scope="module")
def adaptive():
    return ltvsim.simulate(SAAS, target_rel_error=0.01, **SMALL)


def test_stops_at_the_first_step_meeting_the_target(adaptive):
    n = adaptive.attrs["trials"]
    assert n % ADAPTIVE_STEP == 0 and n > ADAPTIVE_STEP
    assert adaptive.attrs["achieved_rel_error"] <= 0.01 and adaptive.attrs["reached_target"] == 1
    # the step before did not meet it
    shorter = ltvsim.simulate(SAAS, trials=n - ADAPTIVE_STEP, **SMALL)
    expected = shorter.expected_ltv_discounted.sel(segment="all").values
    rel = expected.std(ddof=1) / math.sqrt(expected.size) / expected.mean()
    assert rel > 0.01


def test_is_the_fixed_run_of_that_size(adaptive):
    fixed = ltvsim.simulate(SAAS, trials=adaptive.attrs["trials"], **SMALL)
    xr.testing.assert_identical(fixed_part(adaptive), fixed)


def test_stopping_point_does_not_depend_on_threads_or_blocks(adaptive):
    other = ltvsim.simulate(SAAS, target_rel_error=0.01, threads=1, block_trials=7, **SMALL)
    assert numba.config.NUMBA_NUM_THREADS >= 1
    xr.testing.assert_identical(other, adaptive)


def test_reported_error_is_the_summary_error(adaptive):
    s = ltvsim.summarize(adaptive).sel(segment="all", measure="ltv_discounted")
    assert adaptive.attrs["achieved_rel_error"] == pytest.approx(float(s.mc_se / s.trial_mean))


def test_max_trials_caps_the_run():
    ds = ltvsim.simulate(SAAS, target_rel_error=1e-5, max_trials=250, **SMALL)
    assert ds.attrs["trials"] == 250 and ds.attrs["reached_target"] == 0


def test_deterministic_config_stops_after_one_step():
    ds = ltvsim.simulate("configs/seed-formula.toml", target_rel_error=0.005, customers=100)
    assert ds.attrs["trials"] == ADAPTIVE_STEP
    assert ds.attrs["achieved_rel_error"] < 1e-12


@pytest.mark.parametrize("bad", [0, 1.5, -0.1, True])
def test_bad_target(bad):
    with pytest.raises(ConfigError, match="target_rel_error"):
        ltvsim.simulate(SAAS, target_rel_error=bad, **SMALL)


def test_uncertain_segment_mix_error_uses_each_trials_shares():
    """With a Dirichlet mix the stopping error is the summary's error of the blend."""
    ds = ltvsim.simulate("configs/segments-costs.toml", target_rel_error=0.02, customers=100)
    s = ltvsim.summarize(ds).sel(segment="all", measure="ltv_discounted")
    assert ds.attrs["achieved_rel_error"] == pytest.approx(float(s.mc_se / s.trial_mean))
