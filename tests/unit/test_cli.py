"""Tests of the `gearlib` command line: help, info, data check, and clear errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

from gearlib.cli import main


def test_help_lists_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("info", "data", "bench"):
        assert command in out


def test_data_check_synthetic_and_missing(tmp_path, capsys):
    assert main(["data", "check", "synthetic"]) == 0
    assert "synthetic is usable" in capsys.readouterr().out
    assert main(["data", "check", "cifar100", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and str(tmp_path) in err


def test_info_runs_and_names_the_energy_backend(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "gearlib.cli", "info", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "torch" in out and "energy backend" in out and "synthetic" in out
