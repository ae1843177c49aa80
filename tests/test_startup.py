"""Start-up: ``import ltvsim`` pauses the garbage collector only while it imports.

It must leave the collector as it found it: on for almost every process (a
collector left off would leak every reference cycle a user's program makes),
off for one that turned it off itself. Each check needs an interpreter that
has not imported ltvsim yet.
"""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("before", [True, False])
def test_import_leaves_the_garbage_collector_as_it_was(before):
    code = (
        "import gc\n"
        f"{'gc.enable()' if before else 'gc.disable()'}\n"
        "import ltvsim\n"
        "print(gc.isenabled(), hasattr(ltvsim, '_collecting'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(before), "False"]
