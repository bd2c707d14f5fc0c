"""Tests of the `gearlib` command line: help, info, data check, and clear errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def test_bench_grow_reports_ratios_and_the_widened_reference(capsys):
    """At a small scale: every documented key is there, the times are positive, and the reference network
    has K more channels in every unit than the backbone. Width 16 and K 16 keep every strided 1x1
    convolution at 16+ input channels, so growth and training run channels-last (safe from oneDNN 6035)."""
    argv = ["bench", "grow", "--json", "--archs", "resnet18", "--width", "16", "--new-neurons", "16"]
    assert main(argv + ["--batches", "2", "--batch-size", "4", "--repeats", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["channels_last"] is True and out["resnet18_channels_last"] is True
    for key in ("growth", "widened_epoch", "widened_passes"):
        assert out[f"resnet18_{key}_over_epoch"] > 0
    assert out["resnet18_mean_width_widened"] == 16 + 16
    assert out["resnet18_widened_passes_over_epoch"] > out["resnet18_widened_epoch_over_epoch"]
    assert out["resnet18_growth_s"] == out["resnet18_perturb_s"] + out["resnet18_score_s"]
    floor = out["resnet18_widened_epoch_s"] + out["resnet18_widened_score_s"]
    assert out["resnet18_growth_over_floor"] == pytest.approx(out["resnet18_growth_s"] / floor)
    assert out["resnet18_size_after"] > out["resnet18_size_before"]
    assert out["resnet18_candidate_over_widened_forward_elements"] > 1
    # the factored perturbation pass beside the one-convolution layout, timed in the same repeat
    ratio = out["resnet18_perturb_factored_s"] / out["resnet18_perturb_s"]
    assert out["resnet18_perturb_factored_over_unfactored"] == pytest.approx(ratio)
    # the growth step's share of a GEARnn-2 run at the paper's epochs, beside Table 6's (10 of 53 minutes)
    assert out["gearnn2_growth_share_paper"] == pytest.approx(10 / 53)
    assert out["resnet18_era_epoch_s"] > 0 and out["resnet18_backbone_epoch_s"] > 0
    assert 0 < out["resnet18_gearnn2_growth_share"] < 1


def test_gearnn2_growth_share_counts_growth_and_e2_against_the_whole_run():
    from gearlib.bench.grow import gearnn2_growth_share

    seconds = {"perturb": 2.0, "score": 1.0, "epoch": 0.5, "backbone_epoch": 0.25, "era_epoch": 2.0}
    # OSG-2 = 3 + 4 x 0.5 = 5; the run = 4 x 0.25 + 5 + 4 x 2 = 14
    assert gearnn2_growth_share(seconds, {"E1": 4, "E2": 4, "ER": 4}) == pytest.approx(5 / 14)


def test_bench_grow_rejects_an_unknown_architecture(capsys):
    assert main(["bench", "grow", "--archs", "vgg16", "--batches", "1", "--repeats", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown architecture 'vgg16'" in err and "vgg19" in err


@pytest.mark.parametrize(
    "option, says",
    [
        (["--severities", "9"], "unknown severity 9"),
        (["--corruptions", "fog2"], "unknown corruption 'fog2'"),
        (["--limit", "0"], "--limit must be a positive number of images, got 0"),
        (["--jpeg-quality", "99"], "--jpeg-quality must be in 0..95, got 99"),
    ],
)
def test_corrupt_checks_its_arguments_before_reading_data(tmp_path, capsys, option, says):
    """A bad value is named even where no data directory exists: arguments come before data access."""
    argv = ["corrupt", "--dataset", "cifar10", "--data-dir", str(tmp_path / "missing")] + option
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gearlib corrupt: error: ") and says in err
    assert "not found" not in err and "\n" not in err


def test_elements_written_counts_each_ops_output():
    """One bias-free convolution writes exactly its output; the candidate network of a thin VGG-19 writes
    more than the plain network K channels wider (its units carry 2c + K channels), well under 4x."""
    import torch

    from gearlib.bench.grow import _forward_elements, elements_written
    from gearlib.models import build

    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=False)
    assert elements_written(conv, torch.randn(2, 3, 8, 8)) == 2 * 5 * 8 * 8
    assert conv.training  # the count leaves the module's mode as it was
    torch.manual_seed(0)
    model = build("vgg19", 8, num_classes=10, input_size=32)
    widened = build("vgg19", [w + 8 for w in model.widths], num_classes=10, input_size=32)
    ratio = _forward_elements(model, widened, torch.randn(4, 3, 32, 32), 8)
    assert (2 * 8 + 8) / (8 + 8) < ratio < 4
