"""Tests of `gearlib bench cpu`: every variant runs in its own process with its own environment, and the
ratios are against eager measured in the same rounds (no speed is asserted: benchmarks, not timed tests)."""

from __future__ import annotations

import json
import os

import pytest

from gearlib.bench import cpu
from gearlib.cli import main

TINY = ["--profile", "smoke", "--steps", "1", "--repeats", "1", "--rounds", "1", "--json"]


def test_variants_run_in_their_own_processes_and_ratios_are_against_eager(
    capsys: pytest.CaptureFixture,
) -> None:
    assert main(["bench", "cpu", "--variants", "threads-all,malloc-keep", *TINY]) == 0
    results = json.loads(capsys.readouterr().out)
    for key in ("eager", "threads_all", "malloc_keep"):  # eager is added: every ratio needs it
        assert results[f"{key}_step_s"] > 0 and results[f"{key}_setup_s"] > 0, key
    assert results["eager_torch_threads"] == 1 and results["threads_all_torch_threads"] == os.cpu_count()
    ratio = results["threads_all_step_s"] / results["eager_step_s"]
    assert results["threads_all_over_eager"] == pytest.approx(ratio)
    assert results["profile"] == "smoke" and results["views"] == 1


def test_variant_environments() -> None:
    keep = cpu._variant_env("malloc-keep", threads=1)
    assert keep["OMP_NUM_THREADS"] == "1" and cpu.MALLOC_KEEP in keep["GLIBC_TUNABLES"]
    assert cpu._variant_env("malloc-thp", threads=1)["GLIBC_TUNABLES"].endswith("glibc.malloc.hugetlb=1")
    assert cpu._variant_env("threads-all", threads=1)["OMP_NUM_THREADS"] == str(os.cpu_count())
    eager = cpu._variant_env("eager", threads=2)
    assert eager["OMP_NUM_THREADS"] == "2" and eager.get("GLIBC_TUNABLES") == os.environ.get("GLIBC_TUNABLES")


def test_a_failing_variant_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(variant, args):
        return {"error": "RuntimeError: no C++ compiler"} if variant == "compile" else {
            "step_s": 1.0, "setup_s": 2.0, "threads": 1}  # fmt: skip

    monkeypatch.setattr(cpu, "_run_child", failing)
    parser = __import__("argparse").ArgumentParser()
    cpu.add_arguments(parser)
    results = cpu.run(parser.parse_args(["--variants", "compile", "--rounds", "2"]))
    assert results["compile_error"] == "RuntimeError: no C++ compiler" and "compile_over_eager" not in results
    assert results["eager_step_s"] == 1.0


def test_unknown_variant_and_bad_counts_are_refused(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "cpu", "--variants", "jit", *TINY]) == 2
    assert "unknown variant(s) ['jit']" in capsys.readouterr().err
    assert main(["bench", "cpu", "--rounds", "0", *TINY[:-3]]) == 2
    assert "--rounds must be >= 1" in capsys.readouterr().err
