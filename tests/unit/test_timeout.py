"""The suite's per-test timeout (pytest-timeout, set in pyproject.toml): a hanging test fails with its name."""

from __future__ import annotations

import subprocess
import sys

import pytest

HANGING = """
import threading

def test_that_hangs_forever():
    threading.Event().wait()  # never set: blocks like a kernel that never returns
"""


@pytest.mark.parametrize("workers, says", [(None, "Timeout"), ("1", "crashed while running")])
def test_a_hanging_test_is_cut_off_with_its_name(tmp_path, workers, says):
    """Alone, pytest-timeout reports the timeout and the stacks; under xdist (as `make test` runs) the
    worker is ended and xdist names the test it was running."""
    (tmp_path / "test_hang.py").write_text(HANGING)
    (tmp_path / "pytest.ini").write_text("[pytest]\ntimeout = 3\ntimeout_method = thread\n")
    argv = [sys.executable, "-m", "pytest", str(tmp_path / "test_hang.py"), "-p", "no:cacheprovider"]
    argv += ["-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)]
    if workers:
        argv += ["-n", workers]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert says in text and "test_that_hangs_forever" in text
