"""ltvsim: customer lifetime value as a distribution, not a number.

>>> import ltvsim
>>> config = ltvsim.load_config("configs/saas.toml")        # doctest: +SKIP
>>> ds = ltvsim.simulate(config, trials=500)                 # doctest: +SKIP
>>> ds.ltv_cac_band.sel(segment="all", quantile=0.05)        # doctest: +SKIP
"""

import gc
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ltvsim")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

# Importing numba, xarray, pandas and scipy makes a few hundred thousand
# objects, and the garbage collector's passes over them while they are made
# cost ~10% of the import (0.1 s of a warm CLI command): import with it
# paused, then leave it as it was.
_collecting = gc.isenabled()
gc.disable()
try:
    from .analysis import band_probabilities, probability, summarize, summary_table, tail_risk
    from .config import Config, ConfigError, load_config
    from .datafile import DataError

    # Not lazy like the fits: a lazily loaded submodule named like the function
    # would replace the function on ``ltvsim`` when first imported.
    from .forecast import forecast
    from .io import open_result, write_result
    from .scenarios import compare, goal_seek, sensitivity
    from .simulate import simulate
finally:
    if _collecting:
        gc.enable()
    del _collecting

# Fitting needs scipy.optimize (slow to import): loaded on first use.
_LAZY = {"fit_sbg": "fit", "fit_bgnbd": "fit", "fit_gamma_gamma": "fit"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "__version__",
    "band_probabilities",
    "compare",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "fit_sbg",
    "forecast",
    "goal_seek",
    "load_config",
    "open_result",
    "probability",
    "sensitivity",
    "simulate",
    "summarize",
    "summary_table",
    "tail_risk",
    "write_result",
]
